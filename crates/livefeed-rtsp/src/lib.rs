//! RTSP 1.0 for livefeed: sans-IO sessions and a thin tokio client shell.
//!
//! - [`framing`]: byte stream → RTSP messages and `$` interleaved frames, with limits.
//! - [`transport`]: choosing and validating the `Transport` a peer asks for.
//! - [`server_session`]: the server side of one RTSP connection as a state machine that returns
//!   [`server_session::Effect`]s (check a permission, claim a path, open a transport, start
//!   sending); the server performs them and reports the outcome.
//! - [`client_session`]: the client side (publish: ANNOUNCE/SETUP/RECORD, play:
//!   DESCRIBE/SETUP/PLAY) as request builders and response checks.
//! - [`rtp_sender`]: one outgoing RTP stream (packets, RTP clock, sender reports).
//! - [`fanout`]: a path's outgoing RTP streams, packetized once and shared by all its readers.
//! - [`pull`]: [`pull::RtspPull`], every track of a remote stream as raw RTP/RTCP, for relaying.
//! - [`client`]: the tokio shell around the client session: [`client::RtspPublisher`] and
//!   [`client::RtspPlayer`], over TCP-interleaved or UDP transport.
//!
//! Message syntax is `rtsp-types`; this crate adds limits, state and meaning.

pub mod client;
pub mod client_auth;
pub mod client_session;
pub mod fanout;
pub mod framing;
pub mod pull;
pub mod rtp_sender;
pub mod server_session;
pub mod transport;
pub mod udp;

/// The `Server`/`User-Agent` value livefeed sends.
pub const PRODUCT: &str = concat!("livefeed/", env!("CARGO_PKG_VERSION"));
