//! Why a WHEP offer was refused or a session failed.
//!
//! Offer problems (the viewer's fault) say so in words fit for the body of an HTTP 400 reply;
//! [`WhepError::is_client_error`] tells them apart from internal failures (HTTP 500).

use std::net::SocketAddr;

/// Why a WHEP offer was refused, or what went wrong in a running session.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum WhepError {
    /// The offer body is larger than [`MAX_OFFER_BYTES`](crate::MAX_OFFER_BYTES); refused
    /// before any parsing.
    #[error("offer is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge {
        /// Size of the refused offer in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not SDP: it does not start with `v=0`. Carries the first few characters
    /// (escaped) for the log.
    #[error("offer is not SDP: it must start with \"v=0\", it starts with {0}")]
    NotSdp(String),
    /// The body looks like SDP but is malformed or inconsistent (str0m's parser says why).
    #[error("offer SDP is malformed: {0}")]
    InvalidSdp(String),
    /// The offer has no enabled `m=video` section.
    #[error("offer has no video media section (m=video)")]
    NoVideo,
    /// The offer's video sections do not receive (WHEP viewers offer `recvonly`).
    #[error("offer's video is {direction}; a WHEP viewer must offer recvonly (or sendrecv) video")]
    VideoNotReceiving {
        /// The direction the offer gave its video section(s).
        direction: String,
    },
    /// A WHIP publisher's video sections do not send.
    #[error(
        "offer's video is {direction}; a WHIP publisher must offer sendonly (or sendrecv) video"
    )]
    VideoNotSending {
        /// The direction the offer gave its video section(s).
        direction: String,
    },
    /// A WHIP publisher offers neither H.264 (packetization-mode 1) nor H.265 (livefeed does
    /// not transcode video: VP8, VP9 and AV1 cannot be served to its RTSP and LL-HLS readers).
    #[error(
        "offer's video has neither H.264 (packetization-mode=1) nor H.265, which livefeed \
         needs to serve it over RTSP, LL-HLS and WebRTC; offered: {offered}"
    )]
    NoPublishableVideo {
        /// The video codecs the offer listed.
        offered: String,
    },
    /// No H.264 with `packetization-mode=1` in a profile this server sends (constrained
    /// baseline, or baseline) among the offered video codecs.
    #[error(
        "offer's video has no H.264 with packetization-mode=1 in constrained baseline profile \
         (profile-level-id 42e01f); offered: {offered}"
    )]
    NoH264 {
        /// The video codecs the offer listed, for the error body and the log.
        offered: String,
    },
    /// The stream is H.265 and the offer has no H.265 (livefeed does not transcode video):
    /// the viewer's browser cannot play this stream over WebRTC.
    #[error(
        "this stream is H.265 and the offer's video has no H.265 (livefeed does not transcode \
         video; play it over LL-HLS or RTSP, or use a browser that offers H.265); offered: \
         {offered}"
    )]
    NoH265 {
        /// The video codecs the offer listed.
        offered: String,
    },
    /// str0m refused the offer (e.g. no `a=fingerprint`, no ICE credentials).
    #[error("offer refused: {0}")]
    OfferRefused(String),
    /// A datagram handed to [`WhepSession::handle_datagram`](crate::WhepSession::handle_datagram)
    /// is neither STUN, DTLS, RTP nor RTCP (RFC 7983 demultiplexing).
    #[error("datagram from {source_addr} is not STUN, DTLS, RTP or RTCP: {reason}")]
    UnrecognizedDatagram {
        /// Where it came from.
        source_addr: SocketAddr,
        /// str0m's reason.
        reason: String,
    },
    /// The server was given no ICE candidate to put in the answer.
    #[error("no local ICE candidate configured for WebRTC")]
    NoCandidates,
    /// A configured local candidate address is unusable (unspecified, multicast, link-local…).
    #[error("local ICE candidate {addr} is unusable: {reason}")]
    BadCandidate {
        /// The configured address.
        addr: SocketAddr,
        /// str0m's reason.
        reason: String,
    },
    /// The session's media track disappeared (str0m is closing).
    #[error("session has no video track to write to (closing)")]
    NoTrack,
    /// Any other str0m failure. A failure while handling input or polling closes the session.
    #[error("WebRTC engine: {0}")]
    Rtc(#[from] str0m::RtcError),
}

impl WhepError {
    /// Whether the offer lacks the stream's video codec: the viewer cannot play this stream
    /// (HTTP 406 Not Acceptable), as opposed to a malformed offer (400).
    pub fn is_codec_mismatch(&self) -> bool {
        matches!(
            self,
            WhepError::NoH264 { .. }
                | WhepError::NoH265 { .. }
                | WhepError::NoPublishableVideo { .. }
        )
    }

    /// Whether the fault lies with the peer (its offer or its packets) rather than with the
    /// server: `true` → answer HTTP 400 (415 for [`WhepError::NotSdp`] if the content type
    /// was wrong too), `false` → HTTP 500.
    pub fn is_client_error(&self) -> bool {
        match self {
            WhepError::TooLarge { .. }
            | WhepError::NotSdp(_)
            | WhepError::InvalidSdp(_)
            | WhepError::NoVideo
            | WhepError::VideoNotReceiving { .. }
            | WhepError::VideoNotSending { .. }
            | WhepError::NoPublishableVideo { .. }
            | WhepError::NoH264 { .. }
            | WhepError::NoH265 { .. }
            | WhepError::OfferRefused(_)
            | WhepError::UnrecognizedDatagram { .. } => true,
            WhepError::NoCandidates
            | WhepError::BadCandidate { .. }
            | WhepError::NoTrack
            | WhepError::Rtc(_) => false,
        }
    }
}
