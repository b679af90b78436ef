//! The access unit: one encoded picture, the unit every input produces and every output consumes.

use bytes::Bytes;

/// Clock rate of [`AccessUnit::pts`]: the RTP clock rate for video.
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// When and which frame was captured: carried in-band (SEI) and in the pixels (timecode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaptureStamp {
    /// Capture wall-clock time, nanoseconds since the Unix epoch.
    pub unix_ns: u64,
    /// Frame number counted by the source from 0.
    pub frame: u64,
}

/// The video codecs a stream's video track can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VideoCodec {
    /// H.264 / AVC (RFC 6184 over RTP): one-byte NAL headers.
    #[default]
    H264,
    /// H.265 / HEVC (RFC 7798 over RTP): two-byte NAL headers.
    H265,
}

impl VideoCodec {
    /// The RTP encoding name (`H264`, `H265`).
    pub fn encoding_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H264",
            VideoCodec::H265 => "H265",
        }
    }

    /// A short lowercase name for logs and the API (`h264`, `h265`).
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
        }
    }

    /// The NAL unit type of a NAL unit of this codec, or `None` if its header is incomplete.
    pub fn nal_unit_type(self, nal: &[u8]) -> Option<u8> {
        match self {
            VideoCodec::H264 => crate::h264::nal_unit_type(nal),
            VideoCodec::H265 => crate::h265::nal_unit_type(nal),
        }
    }

    /// The parameter-set NAL unit types in the order a keyframe carries them: SPS, PPS for
    /// H.264; VPS, SPS, PPS for H.265.
    pub fn parameter_set_types(self) -> &'static [u8] {
        use crate::{h264, h265};
        match self {
            VideoCodec::H264 => &[h264::nal_type::SPS, h264::nal_type::PPS],
            VideoCodec::H265 => &[
                h265::nal_type::VPS,
                h265::nal_type::SPS,
                h265::nal_type::PPS,
            ],
        }
    }

    /// Whether `nal` is a parameter set (see [`VideoCodec::parameter_set_types`]).
    pub fn is_parameter_set(self, nal: &[u8]) -> bool {
        self.nal_unit_type(nal)
            .is_some_and(|t| self.parameter_set_types().contains(&t))
    }

    /// Whether `nal` is a slice of a picture a decoder can start from (H.264 IDR, H.265 IRAP).
    pub fn is_keyframe_nal(self, nal: &[u8]) -> bool {
        match self {
            VideoCodec::H264 => crate::h264::nal_unit_type(nal) == Some(crate::h264::nal_type::IDR),
            VideoCodec::H265 => crate::h265::nal_unit_type(nal).is_some_and(crate::h265::is_irap),
        }
    }

    /// Whether `nal` is an access unit delimiter, which MP4 samples leave out.
    pub fn is_access_unit_delimiter(self, nal: &[u8]) -> bool {
        match self {
            VideoCodec::H264 => crate::h264::nal_unit_type(nal) == Some(crate::h264::nal_type::AUD),
            VideoCodec::H265 => crate::h265::nal_unit_type(nal) == Some(crate::h265::nal_type::AUD),
        }
    }
}

/// One encoded picture of the video track.
///
/// `nals` hold NAL units without start codes or length prefixes, in decoding order. A keyframe
/// access unit carries its parameter sets (H.264 SPS and PPS; H.265 VPS, SPS and PPS) in front
/// of its slice(s), so any reader can start at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The codec of the NAL units.
    pub codec: VideoCodec,
    /// NAL units, each starting with its NAL header.
    pub nals: Vec<Bytes>,
    /// Presentation time in [`VIDEO_CLOCK_RATE`] ticks, from an arbitrary origin, never
    /// decreasing within a stream.
    pub pts: u64,
    /// Whether the picture is one a decoder can start from (H.264 IDR, H.265 IRAP).
    pub keyframe: bool,
    /// The capture stamp, when the stream carries one (livefeed publishers always do).
    pub capture: Option<CaptureStamp>,
}

impl AccessUnit {
    /// Total size of the NAL units in bytes (without any framing).
    pub fn payload_len(&self) -> usize {
        self.nals.iter().map(|n| n.len()).sum()
    }

    /// Writes the access unit as an Annex B byte stream (4-byte start codes), as decoders take it.
    pub fn write_annex_b(&self, out: &mut Vec<u8>) {
        for nal in &self.nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
}
