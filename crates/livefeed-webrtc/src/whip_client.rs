//! A WHIP publisher (RFC 9725), the client side: `livefeed publish --url http://…/PATH/whip`.
//! Send-only H.264 (and Opus when asked) over str0m, sans-IO.
//!
//! ## Contract
//!
//! [`WhipClient::new`] makes the offer (one host candidate: the UDP address the shell bound);
//! the shell POSTs it and gives the answer to [`WhipClient::accept_answer`]. Then the shell
//! moves datagrams in ([`WhipClient::handle_datagram`]) and out, and calls
//! [`WhipClient::poll`] after every input and at the instant it last returned. Frames written
//! before the connection is up are dropped ([`WhipClient::write_video`] says so); a keyframe
//! request of the server (PLI/FIR) comes out of [`WhipClient::poll`] for the encoder, and so
//! does the end: the server closing DTLS, or silent for [`SILENCE_LIMIT`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// What the shell does next.
#[derive(Debug)]
pub enum ClientPoll {
    /// Send `datagram` from `source` to `destination`.
    Transmit {
        /// The local address (the candidate's).
        source: SocketAddr,
        /// The server's.
        destination: SocketAddr,
        /// The datagram.
        datagram: Vec<u8>,
    },
    /// The connection is up: media may be written.
    Connected,
    /// The server asks for a keyframe.
    KeyframeRequest,
    /// The connection is gone (ICE disconnected, DTLS closed).
    Closed,
    /// Nothing to do until this instant (or the next input).
    Wait(Instant),
}

/// Why the client cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The local address cannot be a candidate.
    #[error("the local address {0} cannot be an ICE candidate")]
    Candidate(SocketAddr),
    /// str0m made no offer, or refused the answer.
    #[error("SDP: {0}")]
    Sdp(String),
    /// The server's answer has no H.264 that the client can send.
    #[error("the server's answer accepts no H.264")]
    NoH264,
    /// str0m failed.
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
}

/// One WHIP publishing session, before and after the answer.
pub struct WhipClient {
    rtc: Rtc,
    local: SocketAddr,
    video: Mid,
    audio: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    /// The payload types negotiated (see [`WhipClient::payload_type`]).
    video_pt: Option<Pt>,
    audio_pt: Option<Pt>,
    connected: bool,
    closed: bool,
    /// When the server was last heard from (a datagram).
    last_heard: Instant,
}

/// How long the server may stay silent before the session counts as closed: it sends RTCP
/// reports and ICE consent checks every second or so while it lives (str0m's own ICE takes
/// far longer to call a vanished peer disconnected).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);

impl WhipClient {
    /// A client sending from `local` (H.264, and Opus when `audio`); returns it with its SDP
    /// offer.
    pub fn new(
        now: Instant,
        local: SocketAddr,
        audio: bool,
    ) -> Result<(Self, String), ClientError> {
        // Only what it can send: H.264 (str0m's packetizer) and Opus.
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        let candidate = Candidate::host(local, "udp").map_err(|_| ClientError::Candidate(local))?;
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio = audio
            .then(|| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| ClientError::Sdp("str0m made no offer".into()))?;
        let client = WhipClient {
            rtc,
            local,
            video,
            audio,
            pending: Some(pending),
            video_pt: None,
            audio_pt: None,
            connected: false,
            closed: false,
            last_heard: now,
        };
        Ok((client, offer.to_sdp_string()))
    }

    /// Takes the server's answer.
    pub fn accept_answer(&mut self, answer: &str) -> Result<(), ClientError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| ClientError::Sdp(e.to_string()))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| ClientError::Sdp("the answer came twice".into()))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        self.video_pt = self.payload_type(self.video, Codec::H264);
        self.audio_pt = self
            .audio
            .and_then(|audio| self.payload_type(audio, Codec::Opus));
        if self.video_pt.is_none() {
            return Err(ClientError::NoH264);
        }
        Ok(())
    }

    /// Whether the connection is up.
    fn is_connected(&self) -> bool {
        self.connected && !self.closed
    }

    /// A datagram from `source` to the local address.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), ClientError> {
        let Ok(contents) = datagram.try_into() else {
            return Ok(()); // not a datagram str0m can take (empty, too large): ignored
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.last_heard = now;
            self.rtc.handle_input(input)?;
        }
        Ok(())
    }

    /// Writes a video access unit (Annex B) presented at `pts` (90 kHz). `Ok(false)`: not
    /// connected yet, dropped.
    pub fn write_video(
        &mut self,
        now: Instant,
        annex_b: Vec<u8>,
        pts: u64,
    ) -> Result<bool, ClientError> {
        let time = MediaTime::new(pts, Frequency::NINETY_KHZ);
        self.write(self.video, self.video_pt, now, time, annex_b)
    }

    /// Writes an Opus packet presented at `pts` (48 kHz). `Ok(false)`: not connected yet, or
    /// no audio was offered or accepted.
    pub fn write_opus(
        &mut self,
        now: Instant,
        packet: &[u8],
        pts: u64,
    ) -> Result<bool, ClientError> {
        let Some(audio) = self.audio else {
            return Ok(false);
        };
        let time = MediaTime::new(pts, Frequency::FORTY_EIGHT_KHZ);
        self.write(audio, self.audio_pt, now, time, packet.to_vec())
    }

    fn write(
        &mut self,
        mid: Mid,
        pt: Option<Pt>,
        now: Instant,
        time: MediaTime,
        data: Vec<u8>,
    ) -> Result<bool, ClientError> {
        if !self.is_connected() {
            return Ok(false);
        }
        let Some(pt) = pt else {
            return Ok(false); // not negotiated (the server took no audio)
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return Err(ClientError::Sdp(format!("no sender for {mid} any more")));
        };
        writer.write(pt, now, time, data)?;
        Ok(true)
    }

    /// The payload type to send `codec` with: for H.264, packetization mode 1 (what str0m's
    /// packetizer makes), constrained baseline first (what the encoders here emit).
    fn payload_type(&mut self, mid: Mid, codec: Codec) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mut candidates: Vec<_> = writer
            .payload_params()
            .filter(|p| p.spec().codec == codec)
            .filter(|p| codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
            .map(|p| (p.spec().format.profile_level_id, p.pt()))
            .collect();
        candidates.sort_by_key(|(profile, _)| *profile != Some(0x42e01f));
        candidates.first().map(|(_, pt)| *pt)
    }

    /// The next thing to do; call until [`ClientPoll::Wait`]. A timeout is fed to str0m at
    /// most once per call (a str0m that asks again at once is waited for 1 ms).
    pub fn poll(&mut self, now: Instant) -> Result<ClientPoll, ClientError> {
        if self.closed {
            return Ok(ClientPoll::Closed);
        }
        let silent_until = self.last_heard + SILENCE_LIMIT;
        if self.connected && now >= silent_until {
            return Ok(self.close());
        }
        let mut fed_timeout = false;
        loop {
            if !self.rtc.is_alive() {
                return Ok(self.close());
            }
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    return Ok(ClientPoll::Transmit {
                        source: t.source,
                        destination: t.destination,
                        datagram: t.contents.into(),
                    })
                }
                Output::Timeout(at) if at <= now && !fed_timeout => {
                    fed_timeout = true;
                    self.rtc.handle_input(Input::Timeout(now))?;
                }
                Output::Timeout(at) => {
                    let at = at.max(now + Duration::from_millis(1));
                    let at = if self.connected {
                        at.min(silent_until)
                    } else {
                        at
                    };
                    return Ok(ClientPoll::Wait(at));
                }
                Output::Event(Event::Connected) => {
                    self.connected = true;
                    return Ok(ClientPoll::Connected);
                }
                Output::Event(Event::KeyframeRequest(_)) => return Ok(ClientPoll::KeyframeRequest),
                Output::Event(Event::Closed) => return Ok(self.close()),
                Output::Event(_) => {}
            }
        }
    }

    fn close(&mut self) -> ClientPoll {
        self.closed = true;
        ClientPoll::Closed
    }
}
