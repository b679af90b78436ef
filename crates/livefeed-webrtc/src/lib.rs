//! WHEP (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep) viewers and WHIP (WebRTC-HTTP
//! Ingestion Protocol, RFC 9725) publishers for livefeed, on str0m, sans-IO.
//!
//! A browser POSTs an SDP offer to `/<path>/whep`; [`WhepSession::accept_offer`] checks it
//! (size, SDP, video, H.264) and answers it; the session then sends the path's access units to
//! that one viewer over ICE/DTLS/SRTP. No sockets, no threads, no clock here: the server's
//! tokio shell moves datagrams, timeouts and access units in and out (see [`session`] for the
//! call contract), and tests drive two peers on a simulated clock.
//!
//! - [`offer`]: the first look at an offer, before str0m parses it — one error per problem.
//! - [`session`]: one viewer — str0m configuration, keyframe gating, keyframe requests, stats.
//! - [`whip`]: one publisher — receive-only str0m, whole frames out.
//! - [`whip_client`]: publishing over WHIP — send-only str0m, the client side.
//! - `peer` (private): the str0m connection both share (state, timeouts, datagram queue).
//! - [`tcp_framing`]: RFC 4571 frames of ICE-TCP, for the shell's TCP connections.
//! - [`error`]: [`WhepError`], with [`WhepError::is_client_error`] to pick HTTP 400 or 500.
//! - `answer` (private): touch-ups of str0m's answer that browsers need (a format on rejected
//!   m-lines, ICE candidates in the first accepted section, `rrtr` feedback).
//!
//! str0m is built with its pure-Rust crypto backend (`rust-crypto`: RustCrypto + dimpl DTLS),
//! so the build needs no C toolchain for crypto.
#![warn(missing_docs)]

mod answer;
pub mod error;
pub mod offer;
mod peer;
pub mod session;
pub mod tcp_framing;
pub mod whip;
pub mod whip_client;

pub use error::WhepError;
pub use offer::MAX_OFFER_BYTES;
pub use session::{
    CloseReason, Poll, SessionStats, SharedAccessUnit, Transport, WhepConfig, WhepSession, Written,
};
pub use whip::{Received, WhipConfig, WhipSession};
pub use whip_client::{ClientError, ClientPoll, WhipClient};
