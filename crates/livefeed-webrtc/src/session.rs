//! One WHEP viewer: a str0m [`Rtc`] with one send-only H.264 video track and, when the viewer
//! offers to receive audio, one send-only Opus track.
//!
//! ## Contract
//!
//! [`WhepSession`] is sans-IO. The caller owns the UDP socket(s) and the clock:
//!
//! 1. [`WhepSession::accept_offer`] validates the viewer's offer and returns the answer SDP.
//! 2. Feed it: [`WhepSession::handle_datagram`] for every datagram that
//!    [`WhepSession::accepts`], [`WhepSession::handle_timeout`] when the instant from
//!    [`Poll::Wait`] is reached, [`WhepSession::write_access_unit`] for every access unit.
//! 3. After **each** of those calls, call [`WhepSession::poll`] until it returns
//!    [`Poll::Wait`]: send every [`Poll::Transmit`] datagram, then sleep until the instant (or
//!    the next datagram, or the next access unit).
//! 4. Once [`WhepSession::is_closed`] is `true` and [`WhepSession::poll`] returns
//!    [`Poll::Wait`], the session has nothing more to say: drop it.
//!
//! str0m requires its output to be drained after every mutation before the next one; the
//! session does that itself (into an internal queue that [`WhepSession::poll`] empties), so a
//! caller that writes two access units without polling in between is still correct — it only
//! delays the datagrams.
//!
//! ## Media
//!
//! An access unit is packetized once, however many viewers it goes to ([`SharedAccessUnit`],
//! with livefeed's [`VideoPacketizer`]: H.264 RFC 6184 packetization-mode 1 — single NAL
//! units, STAP-A, FU-A; H.265 RFC 7798 without DONL), all NAL units kept — including
//! livefeed's SEI capture stamp, which so reaches the browser. Every session hands the same
//! payloads to str0m (through its direct API, with its own sequence numbers), so the packets
//! str0m keeps for retransmission share their payloads across viewers. A viewer starts at a
//! keyframe: access units are skipped (and counted) until the peer is connected and then
//! until the first keyframe.
//! [`WhepSession::wants_keyframe`] tells the caller a keyframe is needed: to start, or because
//! the viewer asked for one (PLI/FIR); it stays set until a keyframe is written.
//!
//! Latency any player can read: when the viewer offers the `abs-capture-time` RTP header
//! extension (<http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time>), the answer
//! keeps it and every access unit with a capture stamp carries its capture time in it (in
//! the first packet of the frame, the extension's NTP format; no clock offset: the stamp is
//! in the capture system's clock). The `wallclock` the caller gives with each frame is what
//! RTCP sender reports map RTP time to: give the capture time, and a browser's
//! `requestVideoFrameCallback` `captureTime` is the capture time too.
//!
//! Opus packets ([`WhepSession::write_audio`]) are passed through as they came (RFC 7587: one
//! packet per RTP payload, 48 kHz clock), from the first keyframe written on; before that, and
//! without a negotiated audio track, they are skipped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use livefeed_media::rtp::{VideoPacketizer, RTP_HEADER_LEN};
use livefeed_media::{AccessUnit, CaptureStamp, VideoCodec};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::Protocol;
use str0m::rtp::{AbsCaptureTime, Extension, ExtensionMap, ExtensionValues, RtpWrite, SeqNo};
use str0m::stats::MediaEgressStats;
use str0m::{Event, IceConnectionState, Rtc, RtcConfig, RtcError};

use crate::answer::fix_answer;
use crate::error::WhepError;
use crate::offer::{audio_mids, check_envelope, check_video};
use crate::peer::{add_host_candidates, PeerCore, State};

/// H.264 payload types the server offers to negotiate: `(pt, rtx pt, profile-level-id)`, all
/// packetization-mode 1, most preferred first. livefeed sends constrained baseline (42C01E
/// from openh264); a constrained baseline stream is also a valid baseline stream, so a viewer
/// that only offers baseline (42001f) gets it too. The payload type numbers are only defaults:
/// the answer uses the viewer's.
const H264_PAYLOADS: [(u8, u8, u32); 2] = [(108, 109, 0x42e01f), (127, 121, 0x42001f)];

/// How far back a viewer's NACK can reach by default ([`WhepConfig::retransmit_history`]):
/// older packets are not kept for retransmission. A retransmission arriving later than this
/// would be too late for a low-latency player anyway (it asks for a keyframe instead). The
/// payloads kept are shared by all viewers ([`SharedAccessUnit`]); what each viewer pays is
/// str0m's slot per packet kept (~430 bytes: ~90 KB for 500 ms of a 2 Mbit/s stream).
pub const RETRANSMIT_HISTORY: Duration = Duration::from_millis(500);
/// The most video packets kept for retransmission, whatever the bitrate (str0m's slots for
/// them: ~170 KB per viewer at most).
pub const RETRANSMIT_MAX_PACKETS: usize = 400;
/// str0m's default cap on resends: queued resends are dropped beyond this share of the bytes.
const RETRANSMIT_RATIO_CAP: Option<f32> = Some(0.15);

/// The `abs-capture-time` extension's id in the server's own map; the answer uses the
/// viewer's id. Free in str0m's standard map (1–4, 10, 11, 13).
const ABS_CAPTURE_TIME_ID: u8 = 7;

/// The most RTP payload bytes in one packet: what str0m's own packetizer uses for its default
/// MTU (1150-byte datagrams, less the 16-byte SRTP tag, rounded down to the 16-byte SRTP
/// block), so that datagrams stay at ~1150–1190 bytes with the RTP header and extensions.
const RTP_PAYLOAD_BUDGET: usize = 1120;

/// Settings of WHEP sessions; [`Default`] is right for most servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhepConfig {
    /// Answer as an ICE-lite agent (the server only answers connectivity checks). Fine for a
    /// server reachable on its candidates; full ICE (the default) also copes with a viewer
    /// whose own candidates are unreachable (mDNS `.local`), through peer-reflexive candidates.
    pub ice_lite: bool,
    /// A session not connected (ICE + DTLS) this long after the offer closes itself.
    pub connect_timeout: Duration,
    /// A session whose ICE is disconnected this long closes itself. str0m's ICE reports
    /// "disconnected" only after ~21 s without answers to its checks (9 retransmissions, RTO up
    /// to 3 s) and may in principle come back (new candidates); the default, zero, closes at
    /// once.
    pub disconnect_timeout: Duration,
    /// How often str0m reports egress statistics (packets, NACKs, RTT) into
    /// [`WhepSession::stats`].
    pub stats_interval: Duration,
    /// How far back a viewer's NACK can reach (at most [`RETRANSMIT_MAX_PACKETS`] packets);
    /// zero keeps nothing for retransmission. Each packet kept costs every viewer a str0m slot
    /// of ~430 bytes (the payloads themselves are shared).
    pub retransmit_history: Duration,
    /// The stream's video codec: the offer must have it (livefeed does not transcode video).
    pub video_codec: VideoCodec,
}

impl Default for WhepConfig {
    fn default() -> Self {
        WhepConfig {
            ice_lite: false,
            connect_timeout: Duration::from_secs(15),
            disconnect_timeout: Duration::ZERO,
            stats_interval: Duration::from_secs(1),
            retransmit_history: RETRANSMIT_HISTORY,
            video_codec: VideoCodec::H264,
        }
    }
}

/// How a local candidate receives: UDP, or TCP (RFC 6544 passive: the viewer connects to it,
/// and each datagram travels framed by its length, RFC 4571, see [`crate::tcp_framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A UDP socket.
    Udp,
    /// A TCP connection the viewer opened to a passive TCP candidate.
    Tcp,
}

impl Transport {
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        }
    }
}

/// What the caller should do next; see the [module contract](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Send this datagram from `source` (one of the candidates given to
    /// [`WhepSession::accept_offer`]) to `destination`, then poll again. Over TCP: on the
    /// connection from `destination` to `source`, framed.
    Transmit {
        /// The viewer's address.
        destination: SocketAddr,
        /// The local candidate address to send from.
        source: SocketAddr,
        /// UDP, or the TCP connection between the two.
        transport: Transport,
        /// The payload.
        datagram: Vec<u8>,
    },
    /// Nothing to send: call [`WhepSession::handle_timeout`] at this instant, unless a
    /// datagram or an access unit comes first. Far in the future once the session is closed.
    Wait(Instant),
}

/// What [`WhepSession::write_access_unit`] did with an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Packetized and queued for sending.
    Sent,
    /// Skipped: the viewer starts at a keyframe and this is not one.
    SkippedWaitingForKeyframe,
    /// Skipped: the viewer is not (or no longer) connected.
    NotConnected,
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// [`WhepSession::close`] was called (WHEP DELETE).
    Local,
    /// The viewer closed DTLS (or SCTP).
    Remote,
    /// ICE + DTLS did not connect within [`WhepConfig::connect_timeout`].
    ConnectTimeout,
    /// ICE was disconnected for [`WhepConfig::disconnect_timeout`].
    Disconnected,
    /// str0m failed; the message says how.
    Failed(String),
}

/// Counters of one session. The `rtp_*`, `*_received`, `rtt` and `loss` fields are str0m's
/// egress statistics, refreshed every [`WhepConfig::stats_interval`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    /// Access units handed to str0m.
    pub aus_sent: u64,
    /// Access units skipped because the viewer was not connected.
    pub aus_skipped_not_connected: u64,
    /// Access units skipped while waiting for a keyframe.
    pub aus_skipped_waiting_for_keyframe: u64,
    /// Opus packets handed to str0m.
    pub audio_packets_sent: u64,
    /// PLI + FIR received.
    pub keyframe_requests: u64,
    /// RTP packets sent, retransmissions included.
    pub rtp_packets_sent: u64,
    /// RTP bytes sent, retransmissions included.
    pub rtp_bytes_sent: u64,
    /// NACK packets received (each may ask for several RTP packets).
    pub nacks_received: u64,
    /// PLIs received (as counted by str0m).
    pub plis_received: u64,
    /// FIRs received (as counted by str0m).
    pub firs_received: u64,
    /// Round-trip time from the last RTCP receiver report.
    pub rtt: Option<Duration>,
    /// Fraction of packets lost, from the viewer's receiver reports.
    pub loss: Option<f32>,
}

/// An access unit packetized once, for any number of sessions ([`WhepSession::write_shared`]):
/// its RTP payloads, each in one shared buffer. str0m keeps a reference, not a copy, in its
/// send queue and for retransmission, so the payloads of one access unit are in memory once
/// however many viewers it goes to.
#[derive(Debug, Clone)]
pub struct SharedAccessUnit {
    payloads: Vec<Payload>,
    pts: u64,
    keyframe: bool,
    capture: Option<CaptureStamp>,
}

/// One RTP packet's payload, and whether it ends the access unit (the marker bit).
#[derive(Debug, Clone)]
struct Payload {
    data: Arc<[u8]>,
    marker: bool,
}

impl SharedAccessUnit {
    /// `au` packetized ([`VideoPacketizer`] for its codec, payloads of at most
    /// `RTP_PAYLOAD_BUDGET` bytes), every NAL unit kept.
    pub fn new(au: &AccessUnit) -> Self {
        let mtu = RTP_HEADER_LEN + RTP_PAYLOAD_BUDGET;
        // Only the payloads are kept: header fields (SSRC, sequence number, timestamp) are the
        // session's, str0m writes them.
        let mut packetizer = VideoPacketizer::new(au.codec, 0, 0, mtu, 0);
        let mut packets = Vec::new();
        packetizer.packetize(au, 0, &mut packets);
        let payloads = packets
            .iter()
            .map(|packet| Payload {
                data: Arc::from(&packet[RTP_HEADER_LEN..]),
                marker: packet[1] & 0x80 != 0,
            })
            .collect();
        SharedAccessUnit {
            payloads,
            pts: au.pts,
            keyframe: au.keyframe,
            capture: au.capture,
        }
    }
}

/// The negotiated video track: where and with which payload type to write.
#[derive(Debug, Clone, Copy)]
struct Track {
    mid: Mid,
    pt: Pt,
}

/// One WHEP viewer. See the [module docs](self) for the call contract.
pub struct WhepSession {
    core: PeerCore,
    track: Track,
    /// The negotiated Opus track, when the viewer receives audio.
    audio: Option<Track>,
    /// The sequence number of the next video packet (the session writes them, not str0m).
    next_seq: SeqNo,
    waiting_for_keyframe: bool,
    keyframe_requested: bool,
    stats: SessionStats,
}

impl std::fmt::Debug for WhepSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhepSession")
            .field("state", &self.core.state)
            .field("track", &self.track)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WhepSession {
    /// Validates the offer and answers it, with [`WhepConfig::default`]. `candidates` are the
    /// server's UDP socket addresses (loopback, LAN, a public 1:1 NAT address…), each put in
    /// the answer as a host candidate. str0m matches incoming connectivity checks by their
    /// destination address, so behind a 1:1 NAT give the socket's own address as well as the
    /// public one.
    pub fn accept_offer(
        offer_sdp: &str,
        candidates: &[SocketAddr],
        now: Instant,
    ) -> Result<(WhepSession, String), WhepError> {
        Self::accept_offer_with(&WhepConfig::default(), offer_sdp, candidates, now)
    }

    /// [`WhepSession::accept_offer`] with explicit settings.
    pub fn accept_offer_with(
        config: &WhepConfig,
        offer_sdp: &str,
        candidates: &[SocketAddr],
        now: Instant,
    ) -> Result<(WhepSession, String), WhepError> {
        Self::accept_offer_on(config, offer_sdp, candidates, &[], now)
    }

    /// [`WhepSession::accept_offer_with`], with passive TCP candidates (`tcp_candidates`, the
    /// server's listening addresses) besides the UDP ones, for viewers whose UDP to the server
    /// is blocked. TCP candidates alone are not enough: at least one UDP candidate is needed.
    pub fn accept_offer_on(
        config: &WhepConfig,
        offer_sdp: &str,
        candidates: &[SocketAddr],
        tcp_candidates: &[SocketAddr],
        now: Instant,
    ) -> Result<(WhepSession, String), WhepError> {
        check_envelope(offer_sdp)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| WhepError::InvalidSdp(e.to_string()))?;
        let codec = config.video_codec;
        let checked = check_video(offer_sdp, codec)?;
        let mut rtc = rtc_config(config).build(now);
        add_host_candidates(&mut rtc, candidates, tcp_candidates)?;
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| match e {
            RtcError::RemoteSdp(m) => WhepError::OfferRefused(m),
            RtcError::Sdp(e) => WhepError::InvalidSdp(e.to_string()),
            e => WhepError::Rtc(e),
        })?;

        // str0m announces media (Event::MediaAdded) only once connected; the track is known now
        // from the offer's mids and str0m's negotiation.
        let Some(track): Option<Track> = checked
            .video_mids
            .iter()
            .find_map(|mid| negotiated_track(&mut rtc, Mid::from(mid.as_str()), codec))
        else {
            // The text offered the codec, but not in a profile str0m matched to ours.
            let offered = checked.offered;
            return Err(match codec {
                VideoCodec::H264 => WhepError::NoH264 { offered },
                VideoCodec::H265 => WhepError::NoH265 { offered },
            });
        };

        if let Some(stream) = rtc.direct_api().stream_tx_by_mid(track.mid, None) {
            stream.set_rtx_cache(
                RETRANSMIT_MAX_PACKETS,
                config.retransmit_history,
                RETRANSMIT_RATIO_CAP,
            );
        }
        let audio = audio_mids(offer_sdp)
            .iter()
            .find_map(|mid| negotiated_audio(&mut rtc, Mid::from(mid.as_str())));
        let mut session = WhepSession {
            core: PeerCore::new(rtc, config.connect_timeout, config.disconnect_timeout, now),
            track,
            audio,
            next_seq: initial_seq_no(),
            waiting_for_keyframe: true,
            keyframe_requested: false,
            stats: SessionStats::default(),
        };
        session.drain()?;
        Ok((session, fix_answer(offer_sdp, &answer.to_sdp_string())))
    }

    /// Whether a datagram from `source` to `destination` belongs to this session: STUN with
    /// this session's ICE credentials, or DTLS/RTP/RTCP from the viewer's address. Use it to
    /// demultiplex a UDP socket shared by many sessions.
    pub fn accepts(
        &self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        self.core
            .accepts(now, transport, source, destination, datagram)
    }

    /// Feeds one datagram received on a local candidate address. A datagram that is not
    /// STUN/DTLS/RTP/RTCP is refused with [`WhepError::UnrecognizedDatagram`] and changes
    /// nothing; a str0m failure closes the session.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), WhepError> {
        let result = self
            .core
            .handle_datagram(now, transport, source, destination, datagram);
        self.absorb_events();
        result
    }

    /// Advances time: call it when the instant of [`Poll::Wait`] is reached (calling it earlier
    /// is harmless).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), WhepError> {
        let result = self.core.handle_timeout(now);
        self.absorb_events();
        result
    }

    /// The next thing to do: send a datagram, or wait until an instant. Call it until it
    /// returns [`Poll::Wait`] after every other call on the session.
    pub fn poll(&mut self) -> Poll {
        self.core.poll()
    }

    /// Writes one access unit: [`WhepSession::write_shared`] of it, built for this session
    /// alone.
    pub fn write_access_unit(
        &mut self,
        au: &AccessUnit,
        wallclock: Instant,
    ) -> Result<Written, WhepError> {
        self.write_shared(&SharedAccessUnit::new(au), wallclock)
    }

    /// Writes one access unit: its RTP packets to str0m (payloads shared, not copied: one
    /// [`SharedAccessUnit`] serves every viewer of a path), RTP time from its `pts` (90 kHz),
    /// `wallclock` (the instant the picture was captured, or reached the server) for RTCP
    /// sender reports, its capture stamp (if any) as `abs-capture-time` (if negotiated) in its
    /// first packet. Skipped and counted before the viewer is connected and until the first
    /// keyframe after connecting (or reconnecting, after ICE was disconnected). Writing a
    /// keyframe clears [`WhepSession::wants_keyframe`].
    pub fn write_shared(
        &mut self,
        au: &SharedAccessUnit,
        wallclock: Instant,
    ) -> Result<Written, WhepError> {
        if self.core.state != State::Connected {
            self.stats.aus_skipped_not_connected += 1;
            return Ok(Written::NotConnected);
        }
        if self.waiting_for_keyframe && !au.keyframe {
            self.stats.aus_skipped_waiting_for_keyframe += 1;
            return Ok(Written::SkippedWaitingForKeyframe);
        }
        let track = self.track;
        let mut direct = self.core.rtc.direct_api();
        let stream = direct
            .stream_tx_by_mid(track.mid, None)
            .ok_or(WhepError::NoTrack)?;
        // The 90 kHz RTP clock, wrapping as RTP time does (as str0m's writer does it).
        let rtp_time = au.pts as u32;
        for (i, payload) in au.payloads.iter().enumerate() {
            let mut ext_vals = ExtensionValues::default();
            if i == 0 {
                ext_vals.abs_capture_time = au.capture.map(|stamp| AbsCaptureTime {
                    capture_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(stamp.unix_ns),
                    clock_offset: None,
                });
            }
            let seq_no = self.next_seq.inc();
            stream.write_rtp(
                RtpWrite::new(track.pt, seq_no, rtp_time, wallclock, payload.data.clone())
                    .marker(payload.marker)
                    .nackable(true)
                    .ext_vals(ext_vals),
            );
        }
        self.waiting_for_keyframe = false;
        if au.keyframe {
            self.keyframe_requested = false;
        }
        self.stats.aus_sent += 1;
        self.drain()?;
        Ok(Written::Sent)
    }

    /// Whether the viewer receives an Opus track.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Writes one Opus packet at `pts` (48 kHz); `wallclock` as for
    /// [`WhepSession::write_access_unit`]. Skipped without an audio track, before the viewer is
    /// connected, and until its first keyframe was written.
    pub fn write_audio(
        &mut self,
        packet: &[u8],
        pts: u64,
        wallclock: Instant,
    ) -> Result<Written, WhepError> {
        let Some(track) = self.audio else {
            return Ok(Written::NotConnected);
        };
        if self.core.state != State::Connected {
            return Ok(Written::NotConnected);
        }
        if self.waiting_for_keyframe {
            return Ok(Written::SkippedWaitingForKeyframe);
        }
        let writer = self.core.rtc.writer(track.mid).ok_or(WhepError::NoTrack)?;
        writer.write(
            track.pt,
            wallclock,
            MediaTime::new(pts, Frequency::FORTY_EIGHT_KHZ),
            packet,
        )?;
        self.stats.audio_packets_sent += 1;
        self.drain()?;
        Ok(Written::Sent)
    }

    /// Makes the session skip access units until the next keyframe, e.g. after the caller had
    /// to drop some because this viewer fell behind.
    pub fn skip_to_next_keyframe(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Whether the connected viewer needs a keyframe: it asked for one (PLI/FIR) that has not
    /// been written yet, or the session waits for one to start (or restart, see
    /// [`WhepSession::skip_to_next_keyframe`]) at. The caller may skip ahead to a cached
    /// keyframe or ask the encoder for one. Always `false` while not connected.
    pub fn wants_keyframe(&self) -> bool {
        self.is_connected() && (self.keyframe_requested || self.waiting_for_keyframe)
    }

    /// Whether ICE and DTLS are up and media flows.
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// Whether the session is over: closed locally, by the viewer, by a timeout (connect or
    /// ICE disconnected) or by a str0m failure. Poll it dry, then drop it.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.core.close_reason()
    }

    /// Closes the session (WHEP DELETE): str0m queues RTCP BYE and DTLS close_notify, which
    /// [`WhepSession::poll`] hands out.
    pub fn close(&mut self) {
        self.core.close_because(CloseReason::Local);
        self.absorb_events();
    }

    /// The session's counters.
    pub fn stats(&self) -> SessionStats {
        self.stats.clone()
    }

    /// Drains str0m (after a write) and takes the events.
    fn drain(&mut self) -> Result<(), WhepError> {
        let result = self.core.drain();
        self.absorb_events();
        result
    }

    /// Acts on what str0m reported: keyframe requests, egress statistics, ICE lost.
    fn absorb_events(&mut self) {
        while let Some(event) = self.core.take_event() {
            match event {
                Event::KeyframeRequest(_) => {
                    self.keyframe_requested = true;
                    self.stats.keyframe_requests += 1;
                }
                Event::MediaEgressStats(s) => self.on_egress_stats(&s),
                // Whatever was in flight is lost to the decoder: restart at a keyframe.
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    self.waiting_for_keyframe = true;
                }
                _ => {}
            }
        }
    }

    fn on_egress_stats(&mut self, s: &MediaEgressStats) {
        if self.track.mid != s.mid {
            return;
        }
        self.stats.rtp_packets_sent = s.packets;
        self.stats.rtp_bytes_sent = s.bytes;
        self.stats.nacks_received = s.nacks;
        self.stats.plis_received = s.plis;
        self.stats.firs_received = s.firs;
        self.stats.rtt = s.rtt.or(self.stats.rtt);
        self.stats.loss = s.loss.or(self.stats.loss);
    }
}

/// The track of media `mid` if it is video we send, with its negotiated H.264 packetization-mode
/// 1 payload type (constrained baseline first).
fn negotiated_track(rtc: &mut Rtc, mid: Mid, codec: VideoCodec) -> Option<Track> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Video
        || !matches!(media.direction(), Direction::SendOnly | Direction::SendRecv)
    {
        return None;
    }
    let writer = rtc.writer(mid)?;
    if codec == VideoCodec::H265 {
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::H265)?
            .pt();
        return Some(Track { mid, pt });
    }
    let pt = writer
        .payload_params()
        .filter(|p| {
            let spec = p.spec();
            spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
        })
        .max_by_key(|p| profile_rank(p.spec().format.profile_level_id))?
        .pt();
    Some(Track { mid, pt })
}

/// The track of media `mid` if it is audio we send, with its negotiated Opus payload type.
fn negotiated_audio(rtc: &mut Rtc, mid: Mid) -> Option<Track> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Audio
        || !matches!(media.direction(), Direction::SendOnly | Direction::SendRecv)
    {
        return None;
    }
    let writer = rtc.writer(mid)?;
    let pt = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)?
        .pt();
    Some(Track { mid, pt })
}

/// Preference among negotiated H.264 profiles: constrained baseline (what livefeed sends) over
/// baseline.
fn profile_rank(profile_level_id: Option<u32>) -> u8 {
    let Some(id) = profile_level_id else {
        return 0;
    };
    let profile_idc = (id >> 16) as u8;
    let constraint_set1 = (id >> 8) as u8 & 0x40 != 0;
    match (profile_idc, constraint_set1) {
        (0x42, true) => 2,
        (0x42, false) => 1,
        _ => 0,
    }
}

fn rtc_config(config: &WhepConfig) -> RtcConfig {
    let mut rtc = Rtc::builder()
        .set_ice_lite(config.ice_lite)
        .set_stats_interval(Some(config.stats_interval))
        .set_extension_map(extension_map())
        .clear_codecs();
    let codecs = rtc.codec_config();
    match config.video_codec {
        VideoCodec::H264 => {
            for (pt, rtx, profile_level_id) in H264_PAYLOADS {
                codecs.add_h264(pt.into(), Some(rtx.into()), true, profile_level_id);
            }
        }
        // str0m's H.265 entries; the viewer's fmtp (profile, tier, level) is negotiated.
        VideoCodec::H265 => codecs.enable_h265(true),
    }
    codecs.enable_opus(true, false);
    // No transport-wide congestion control feedback: see `extension_map`.
    for params in codecs.iter_mut() {
        params.set_fb_transport_cc(false);
    }
    rtc
}

/// str0m's standard header extensions, less transport-wide sequence numbers (TWCC), plus
/// `abs-capture-time`. TWCC feeds only str0m's bandwidth estimation, which the server does not
/// use (it sends the stream as it comes); with it negotiated, str0m records every packet sent
/// for the viewer's TWCC feedback (1000 records, ~90 KB per viewer) and the viewer sends that
/// feedback several times a second for nothing.
fn extension_map() -> ExtensionMap {
    let mut exts = ExtensionMap::empty();
    exts.set(1, Extension::AudioLevel);
    exts.set(2, Extension::AbsoluteSendTime);
    exts.set(4, Extension::RtpMid);
    exts.set(10, Extension::RtpStreamId);
    exts.set(11, Extension::RepairedRtpStreamId);
    exts.set(13, Extension::VideoOrientation);
    exts.set(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime);
    exts
}

/// A random first RTP sequence number (RFC 3550 5.1), in the lower half of the 16-bit space as
/// libwebrtc picks it (no wrap-around right at the start).
fn initial_seq_no() -> SeqNo {
    SeqNo::from(u64::from(rand::random::<u16>() & 0x7fff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_rank_prefers_constrained_baseline() {
        assert_eq!(profile_rank(Some(0x42e01f)), 2);
        assert_eq!(profile_rank(Some(0x42c01e)), 2);
        assert_eq!(profile_rank(Some(0x42001f)), 1);
        assert_eq!(profile_rank(Some(0x64001f)), 0);
        assert_eq!(profile_rank(None), 0);
    }
}
