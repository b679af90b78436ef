//! Sans-IO media core of livefeed.
//!
//! Everything here is pure: bytes, values and time go in, bytes and values come out. No sockets,
//! no threads, no async. A stream is a video track (H.264 or H.265, [`VideoCodec`]), whose
//! unit is the [`AccessUnit`] (one encoded picture with its presentation time and its capture
//! wall-clock stamp), and any other tracks beside it, whose unit is the [`track::TrackPacket`]
//! (one RTP payload on the path's timeline).
//!
//! - [`aac`]: AAC over RTP (RFC 3640): stream config and depacketizer.
//! - [`latm`]: AAC over RTP as MP4A-LATM (RFC 6416, `cpresent=0`): config and depacketizer.
//! - [`opus`]: Opus over RTP (RFC 7587): packet durations, channels.
//! - [`h264`]: Annex B splitting, NAL types, SPS facts (size, profile-level-id).
//! - [`h265`]: H.265 NAL types, SPS facts (size, profile/tier/level, `hvc1` codec string).
//! - [`sei`]: the livefeed capture stamp carried in an SEI `user_data_unregistered` message.
//! - [`rtp`] / [`rtcp`]: RTP H.264 and H.265 packetizer and depacketizer (RFC 6184, RFC
//!   7798), RTCP sender reports.
//! - [`sdp`]: the SDP livefeed offers and the stream (H.264 or H.265 video and other tracks)
//!   it accepts from publishers.
//! - [`timecode`]: the pixel timecode strip drawn into, and read back from, a picture.
//! - [`clock`]: wall-clock helpers shared by every stage that measures latency.
//! - [`path`]: stream path names, the same for every protocol.
//! - [`latency`]: per-stage latency samples and their percentiles.
//! - [`track`]: the tracks beside the video (audio, …) and their RTP payloads.
//! - [`mpegts`] / [`mpegts_mux`]: MPEG-TS in (SRT publishers) and out (SRT readers).
#![warn(missing_docs)]

pub mod aac;
pub mod access_unit;
pub mod clock;
pub mod flv;
pub mod h264;
pub mod h265;
pub mod latency;
pub mod latm;
pub mod mpegts;
pub mod mpegts_mux;
pub mod opus;
pub mod path;
pub mod rate;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod sei;
pub mod timecode;
pub mod track;

pub use access_unit::{AccessUnit, CaptureStamp, VideoCodec, VIDEO_CLOCK_RATE};

/// One frame at 30 fps in 90 kHz ticks: the frame duration assumed until two frames of a
/// stream have been seen.
pub const DEFAULT_FRAME_TICKS: u32 = 3000;
