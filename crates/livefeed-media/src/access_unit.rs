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

/// One encoded H.264 picture.
///
/// `nals` hold NAL units without start codes or length prefixes, in decoding order. A keyframe
/// access unit carries its SPS and PPS in front of the IDR slice(s), so any reader can start at
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL units, each starting with its one-byte NAL header.
    pub nals: Vec<Bytes>,
    /// Presentation time in [`VIDEO_CLOCK_RATE`] ticks, from an arbitrary origin, never
    /// decreasing within a stream.
    pub pts: u64,
    /// Whether the picture is an IDR picture a decoder can start from.
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
