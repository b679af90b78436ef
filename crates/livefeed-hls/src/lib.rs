//! Low-Latency HLS for livefeed, without I/O.
//!
//! - [`cmaf`]: the CMAF (fragmented MP4) muxer: the init segment from SPS/PPS, and one
//!   `moof`+`mdat` chunk per access unit (whole frames only).
//! - [`playlist`]: the LL-HLS media playlist as a state machine: chunks in, parts and segments
//!   out, the playlist text rendered on demand (parts, preload hint, delta updates).
//! - [`query`]: the LL-HLS playlist request parameters (`_HLS_msn`, `_HLS_part`, `_HLS_skip`).

pub mod cmaf;
pub mod playlist;
pub mod query;
pub mod record;
