//! One WHIP publisher (WebRTC-HTTP Ingestion Protocol, RFC 9725): a str0m [`Rtc`] that
//! receives one video track (H.264 packetization-mode 1 in any profile, else H.265) and, when offered, one
//! Opus track.
//!
//! ## Contract
//!
//! Sans-IO, driven exactly like [`crate::WhepSession`] (see its module docs): feed datagrams
//! and timeouts, poll until [`Poll::Wait`], drop once closed. What the publisher sends comes
//! out of [`WhipSession::take_received`] after each call: whole frames, depacketized and put
//! in order by str0m (its jitter buffer asks for retransmissions with NACK), Annex B for video
//! (start codes before each NAL unit), one Opus packet per item for audio, each with its RTP
//! time extended to 64 bits and the instant its first packet arrived.
//! [`WhipSession::request_keyframe`] sends the publisher a PLI (a reader needs a keyframe).
//! A browser's encoder makes keyframes only when asked: the session asks every
//! [`WhipConfig::keyframe_interval`] (2 s, as MediaMTX does), so that LL-HLS segments end and
//! a new reader finds a recent keyframe in the GOP cache.
//!
//! Transport-wide congestion control feedback is negotiated (str0m's default): a browser
//! sizes its encoder's bitrate from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livefeed_media::VideoCodec;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::{Event, Rtc, RtcError};

use crate::answer::fix_answer;
use crate::error::WhepError;
use crate::offer::{audio_mids, check_envelope, check_publish_video};
use crate::peer::{add_host_candidates, PeerCore};
use crate::session::{CloseReason, Poll, Transport};

/// H.264 profiles a publisher may send (`profile-level-id`, each with packetization-mode 1):
/// constrained baseline, baseline, main, constrained main, constrained high, high (str0m
/// matches them exactly: what browsers and OBS offer). The depacketizer and every output take
/// any of them; the payload type numbers are only defaults (the answer uses the publisher's).
const H264_PROFILES: [(u8, u8, u32); 6] = [
    (108, 109, 0x42e01f),
    (127, 121, 0x42001f),
    (123, 122, 0x4d001f),
    (125, 107, 0x4de01f),
    (112, 113, 0x640c1f),
    (114, 115, 0x64001f),
];

/// Settings of WHIP sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipConfig {
    /// A session not connected (ICE + DTLS) this long after the offer closes itself.
    pub connect_timeout: Duration,
    /// A session whose ICE is disconnected this long closes itself (zero: at once).
    pub disconnect_timeout: Duration,
    /// How often the publisher is asked for a keyframe (RTCP PLI) while connected; `None`:
    /// only when [`WhipSession::request_keyframe`] is called.
    pub keyframe_interval: Option<Duration>,
}

/// [`WhipConfig::keyframe_interval`] by default.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            connect_timeout: Duration::from_secs(15),
            disconnect_timeout: Duration::ZERO,
            keyframe_interval: Some(KEYFRAME_INTERVAL),
        }
    }
}

/// What the publisher sent: one whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A video access unit, Annex B.
    Video {
        /// Its NAL units, each after a start code.
        annex_b: Arc<[u8]>,
        /// RTP time, 90 kHz, extended to 64 bits.
        rtp_time: u64,
        /// Whether packets were lost since the previous frame (a decoder misses references
        /// until the next keyframe).
        lost_before: bool,
        /// When its first packet arrived.
        arrived: Instant,
    },
    /// One Opus packet.
    Audio {
        /// The packet as the encoder made it.
        packet: Arc<[u8]>,
        /// RTP time, 48 kHz, extended to 64 bits.
        rtp_time: u64,
        /// When it arrived.
        arrived: Instant,
    },
}

/// One WHIP publisher. See the [module docs](self) for the call contract.
pub struct WhipSession {
    core: PeerCore,
    codec: VideoCodec,
    video: Mid,
    audio: Option<Mid>,
    received: std::collections::VecDeque<Received>,
    keyframe_interval: Option<Duration>,
    /// When the next periodic keyframe request is due (set once connected).
    next_keyframe_request: Option<Instant>,
}

impl std::fmt::Debug for WhipSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipSession")
            .field("state", &self.core.state)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl WhipSession {
    /// Validates a publisher's offer and answers it (receive only). `candidates` and
    /// `tcp_candidates` as for [`crate::WhepSession::accept_offer_on`].
    pub fn accept_offer(
        config: &WhipConfig,
        offer_sdp: &str,
        candidates: &[std::net::SocketAddr],
        tcp_candidates: &[std::net::SocketAddr],
        now: Instant,
    ) -> Result<(WhipSession, String), WhepError> {
        check_envelope(offer_sdp)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| WhepError::InvalidSdp(e.to_string()))?;
        let (codec, checked) = check_publish_video(offer_sdp)?;
        let mut rtc = rtc_for(codec).build(now);
        add_host_candidates(&mut rtc, candidates, tcp_candidates)?;
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| match e {
            RtcError::RemoteSdp(m) => WhepError::OfferRefused(m),
            RtcError::Sdp(e) => WhepError::InvalidSdp(e.to_string()),
            e => WhepError::Rtc(e),
        })?;
        // The text offered the codec; str0m must also have matched a payload type of it (an
        // H.264 profile outside H264_PROFILES is not).
        let video = checked
            .video_mids
            .iter()
            .map(|mid| Mid::from(mid.as_str()))
            .find(|mid| receives(&rtc, *mid, MediaKind::Video) && negotiated(&mut rtc, *mid, codec))
            .ok_or(WhepError::NoPublishableVideo {
                offered: checked.offered,
            })?;
        let audio = audio_mids(offer_sdp)
            .iter()
            .map(|mid| Mid::from(mid.as_str()))
            .find(|mid| receives(&rtc, *mid, MediaKind::Audio));
        let mut session = WhipSession {
            core: PeerCore::new(rtc, config.connect_timeout, config.disconnect_timeout, now),
            codec,
            video,
            audio,
            received: Default::default(),
            keyframe_interval: config.keyframe_interval,
            next_keyframe_request: None,
        };
        session.drain()?;
        Ok((session, fix_answer(offer_sdp, &answer.to_sdp_string())))
    }

    /// The video codec the publisher sends.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Whether the publisher sends an Opus track.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Whether a datagram belongs to this session; see [`crate::WhepSession::accepts`].
    pub fn accepts(
        &self,
        now: Instant,
        transport: Transport,
        source: std::net::SocketAddr,
        destination: std::net::SocketAddr,
        datagram: &[u8],
    ) -> bool {
        self.core
            .accepts(now, transport, source, destination, datagram)
    }

    /// Feeds one datagram; see [`crate::WhepSession::handle_datagram`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: std::net::SocketAddr,
        destination: std::net::SocketAddr,
        datagram: &[u8],
    ) -> Result<(), WhepError> {
        let result = self
            .core
            .handle_datagram(now, transport, source, destination, datagram);
        self.absorb_events();
        result
    }

    /// Advances time; see [`crate::WhepSession::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), WhepError> {
        let result = self.core.handle_timeout(now);
        self.absorb_events();
        self.periodic_keyframe_request(now);
        result
    }

    /// The next datagram to send, or when to call [`WhipSession::handle_timeout`].
    pub fn poll(&mut self) -> Poll {
        match (self.core.poll(), self.next_keyframe_request) {
            (Poll::Wait(at), Some(due)) if self.core.is_connected() => Poll::Wait(at.min(due)),
            (poll, _) => poll,
        }
    }

    /// Asks for a keyframe when the interval has passed (the first interval counts from the
    /// connection: the encoder starts with one).
    fn periodic_keyframe_request(&mut self, now: Instant) {
        let Some(interval) = self.keyframe_interval else {
            return;
        };
        if !self.core.is_connected() {
            return;
        }
        match self.next_keyframe_request {
            None => self.next_keyframe_request = Some(now + interval),
            Some(due) if now >= due => {
                self.request_keyframe();
                self.next_keyframe_request = Some(now + interval);
            }
            Some(_) => {}
        }
    }

    /// The next frame the publisher sent, in the order they were completed.
    pub fn take_received(&mut self) -> Option<Received> {
        self.received.pop_front()
    }

    /// Asks the publisher for a keyframe (RTCP PLI), once connected.
    pub fn request_keyframe(&mut self) {
        if !self.core.is_connected() {
            return;
        }
        if let Some(mut writer) = self.core.rtc.writer(self.video) {
            if let Err(e) = writer.request_keyframe(None, KeyframeRequestKind::Pli) {
                tracing::debug!(error = %e, "WHIP keyframe request not sent");
            }
        }
        if let Err(e) = self.drain() {
            tracing::debug!(error = %e, "str0m drain after a keyframe request");
        }
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// Whether the session is over (poll it dry, then drop it).
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.core.close_reason()
    }

    /// Closes the session (WHIP DELETE, or the path was taken over).
    pub fn close(&mut self) {
        self.core.close_because(CloseReason::Local);
        self.absorb_events();
    }

    fn drain(&mut self) -> Result<(), WhepError> {
        let result = self.core.drain();
        self.absorb_events();
        result
    }

    fn absorb_events(&mut self) {
        while let Some(event) = self.core.take_event() {
            if let Event::MediaData(data) = event {
                if let Some(received) = self.frame(data) {
                    self.received.push_back(received);
                }
            }
        }
    }

    /// The frame in `data`, if it is of the video or audio track in the negotiated codec.
    fn frame(&self, data: MediaData) -> Option<Received> {
        let codec = data.params.spec().codec;
        if data.mid == self.video && matches!(codec, Codec::H264 | Codec::H265) {
            return Some(Received::Video {
                annex_b: data.data,
                rtp_time: data.time.numer(),
                lost_before: !data.contiguous,
                arrived: data.network_time,
            });
        }
        if Some(data.mid) == self.audio && codec == Codec::Opus {
            return Some(Received::Audio {
                packet: data.data,
                rtp_time: data.time.numer(),
                arrived: data.network_time,
            });
        }
        None
    }
}

/// Whether media `mid` is of `kind` and received by the server.
fn receives(rtc: &Rtc, mid: Mid, kind: MediaKind) -> bool {
    rtc.media(mid).is_some_and(|m| {
        m.kind() == kind && matches!(m.direction(), Direction::RecvOnly | Direction::SendRecv)
    })
}

/// Whether str0m negotiated a payload type of `codec` for media `mid`.
fn negotiated(rtc: &mut Rtc, mid: Mid, codec: VideoCodec) -> bool {
    let wanted = match codec {
        VideoCodec::H264 => Codec::H264,
        VideoCodec::H265 => Codec::H265,
    };
    rtc.writer(mid).is_some_and(|w| {
        w.payload_params().any(|p| {
            let spec = p.spec();
            spec.codec == wanted
                && (wanted != Codec::H264 || spec.format.packetization_mode == Some(1))
        })
    })
}

/// str0m configured to receive `codec` and Opus.
fn rtc_for(codec: VideoCodec) -> str0m::RtcConfig {
    let mut rtc = Rtc::builder().clear_codecs();
    let codecs = rtc.codec_config();
    match codec {
        VideoCodec::H264 => {
            for (pt, rtx, profile_level_id) in H264_PROFILES {
                codecs.add_h264(pt.into(), Some(rtx.into()), true, profile_level_id);
            }
        }
        VideoCodec::H265 => codecs.enable_h265(true),
    }
    codecs.enable_opus(true, false);
    rtc
}
