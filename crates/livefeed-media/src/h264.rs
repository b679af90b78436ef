//! H.264 bitstream facts livefeed needs: splitting Annex B streams, NAL unit types, and what the
//! SPS says (picture size, `profile-level-id`). Parsing of SPS bits is done by `h264-reader`.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::BitReader;

/// NAL unit types (ITU-T H.264 table 7-1) that livefeed treats specially.
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The NAL unit type of a NAL unit (low five bits of its header), or `None` if it is empty.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// Whether a NAL unit is a coded slice (VCL NAL unit types 1..=5).
pub fn is_vcl(nal: &[u8]) -> bool {
    matches!(nal_unit_type(nal), Some(1..=5))
}

/// Splits an Annex B byte stream into NAL units (without start codes). Accepts 3- and 4-byte
/// start codes; empty NAL units are skipped; trailing zero bytes of a NAL unit are dropped.
pub fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i + 2 < stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            if let Some(s) = start {
                push_trimmed(&mut nals, &stream[s..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&mut nals, &stream[s..]);
    }
    nals
}

fn push_trimmed<'a>(nals: &mut Vec<&'a [u8]>, nal: &'a [u8]) {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        nals.push(&nal[..end]);
    }
}

/// What the SPS tells about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Picture width in pixels (after cropping).
    pub width: u32,
    /// Picture height in pixels (after cropping).
    pub height: u32,
    /// `profile_idc`, e.g. 66 for baseline.
    pub profile_idc: u8,
    /// The constraint flags byte (constraint_set0..5 flags and reserved bits).
    pub constraint_flags: u8,
    /// `level_idc`, e.g. 31 for level 3.1.
    pub level_idc: u8,
}

/// Why an SPS could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpsError {
    /// The NAL unit is not an SPS.
    #[error("not an SPS: NAL unit type {0:?}")]
    NotSps(Option<u8>),
    /// The SPS bits are truncated or invalid.
    #[error("invalid SPS ({len} bytes): {reason}")]
    Invalid {
        /// Size of the NAL unit.
        len: usize,
        /// What h264-reader reported.
        reason: String,
    },
}

impl SpsInfo {
    /// Reads an SPS NAL unit (with its header byte, emulation prevention bytes in place).
    pub fn parse(sps_nal: &[u8]) -> Result<SpsInfo, SpsError> {
        if nal_unit_type(sps_nal) != Some(nal_type::SPS) {
            return Err(SpsError::NotSps(nal_unit_type(sps_nal)));
        }
        let invalid = |reason: String| SpsError::Invalid {
            len: sps_nal.len(),
            reason,
        };
        let rbsp = h264_reader::rbsp::decode_nal(sps_nal).map_err(|e| invalid(e.to_string()))?;
        let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|e| invalid(format!("{e:?}")))?;
        let (width, height) = sps
            .pixel_dimensions()
            .map_err(|e| invalid(format!("{e:?}")))?;
        Ok(SpsInfo {
            width,
            height,
            profile_idc: sps.profile_idc.into(),
            constraint_flags: sps_nal.get(2).copied().unwrap_or(0),
            level_idc: sps.level_idc,
        })
    }

    /// The `profile-level-id` SDP parameter (RFC 6184): six hex digits.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// A human-readable codec name for logs, e.g. "H264 constrained baseline 3.1".
    pub fn describe(&self) -> String {
        let profile = match (self.profile_idc, self.constraint_flags & 0x40 != 0) {
            (66, true) => "constrained baseline",
            (66, false) => "baseline",
            (77, _) => "main",
            (100, _) => "high",
            _ => "other profile",
        };
        format!(
            "H264 {profile} {}.{} {}x{}",
            self.level_idc / 10,
            self.level_idc % 10,
            self.width,
            self.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS of a 640x480 constrained-baseline stream as OpenH264 writes it.
    pub(crate) const SPS_640X480: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f, 0x08, 0x84, 0x6a,
    ];

    #[test]
    fn split_annex_b_handles_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 0,
        ];
        let nals = split_annex_b(&stream);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
    }

    #[test]
    fn split_annex_b_of_garbage_is_empty() {
        assert!(split_annex_b(&[1, 2, 3, 4]).is_empty());
        assert!(split_annex_b(&[]).is_empty());
        assert!(split_annex_b(&[0, 0, 1]).is_empty());
    }

    #[test]
    fn sps_gives_size_and_profile_level_id() {
        let info = SpsInfo::parse(SPS_640X480).expect("valid SPS");
        assert_eq!((info.width, info.height), (640, 480));
        assert_eq!(info.profile_level_id(), "42C01E");
        assert!(info.describe().contains("constrained baseline"));
    }

    #[test]
    fn truncated_sps_is_an_error_not_a_panic() {
        for len in 0..SPS_640X480.len() - 1 {
            let _ = SpsInfo::parse(&SPS_640X480[..len]);
        }
        assert!(matches!(
            SpsInfo::parse(&[0x67]),
            Err(SpsError::Invalid { .. })
        ));
        assert!(matches!(
            SpsInfo::parse(&[0x68, 1]),
            Err(SpsError::NotSps(Some(8)))
        ));
    }
}
