//! H.265 (HEVC) bitstream facts livefeed needs: NAL unit types (two-byte headers), which
//! pictures a decoder can start from, and what the SPS says (picture size, the profile, tier
//! and level that `hvcC` and the RFC 6381 codec string carry). Emulation prevention and
//! Exp-Golomb reading come from `h264-reader`, whose RBSP reader skips H.265's two-byte header.

use std::num::NonZeroUsize;

use h264_reader::rbsp::{BitRead, BitReader, BitReaderError, ByteReader};

use crate::h264::SpsError;

/// NAL unit types (ITU-T H.265 table 7-1) that livefeed treats specially.
pub mod nal_type {
    /// First IRAP type (BLA_W_LP); IRAP pictures are types 16..=23.
    pub const BLA_W_LP: u8 = 16;
    /// Instantaneous decoding refresh (with leading pictures).
    pub const IDR_W_RADL: u8 = 19;
    /// Instantaneous decoding refresh (no leading pictures).
    pub const IDR_N_LP: u8 = 20;
    /// Clean random access.
    pub const CRA: u8 = 21;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
    /// Prefix SEI.
    pub const SEI_PREFIX: u8 = 39;
}

/// Bytes of an H.265 NAL unit header.
pub const NAL_HEADER_LEN: usize = 2;

/// The NAL unit type (bits 1..=6 of the first header byte), or `None` if the two-byte header is
/// incomplete.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    (nal.len() >= NAL_HEADER_LEN).then(|| (nal[0] >> 1) & 0x3f)
}

/// Whether a NAL unit type is an intra random access point picture (BLA, IDR, CRA: 16..=21,
/// and the reserved IRAP types 22, 23): a decoder can start there.
pub fn is_irap(nal_type: u8) -> bool {
    (nal_type::BLA_W_LP..=23).contains(&nal_type)
}

/// Whether a NAL unit type is a coded slice (VCL, types 0..=31).
pub fn is_vcl(nal_type: u8) -> bool {
    nal_type < 32
}

/// `general_profile_tier_level` of an SPS: what `hvcC` and the codec string repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileTierLevel {
    /// `general_profile_space` (0 in every stream seen).
    pub profile_space: u8,
    /// `general_tier_flag`: false = Main tier, true = High tier.
    pub high_tier: bool,
    /// `general_profile_idc`: 1 Main, 2 Main 10, 3 Main Still Picture, 4 range extensions.
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[0..32]`, flag 0 in the most significant bit.
    pub compatibility_flags: u32,
    /// The 48 constraint bits (progressive, interlaced, …), first byte first.
    pub constraint_flags: [u8; 6],
    /// `general_level_idc`: 30 × the level (93 = level 3.1).
    pub level_idc: u8,
}

/// What the SPS tells about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Picture width in pixels (after the conformance window).
    pub width: u32,
    /// Picture height in pixels (after the conformance window).
    pub height: u32,
    /// Profile, tier and level.
    pub ptl: ProfileTierLevel,
    /// `sps_max_sub_layers_minus1` + 1.
    pub sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u8,
    /// `bit_depth_luma_minus8`.
    pub bit_depth_luma_minus8: u8,
    /// `bit_depth_chroma_minus8`.
    pub bit_depth_chroma_minus8: u8,
}

/// Largest picture dimension accepted from an SPS (the H.265 level 6.2 maximum is 8444).
const MAX_DIMENSION: u32 = 16_888;

impl SpsInfo {
    /// Reads an SPS NAL unit (two-byte header included, emulation prevention bytes in place).
    pub fn parse(sps_nal: &[u8]) -> Result<SpsInfo, SpsError> {
        if nal_unit_type(sps_nal) != Some(nal_type::SPS) {
            return Err(SpsError::NotSps(nal_unit_type(sps_nal)));
        }
        let invalid = |reason: String| SpsError::Invalid {
            len: sps_nal.len(),
            reason,
        };
        let skip = NonZeroUsize::new(NAL_HEADER_LEN).unwrap_or(NonZeroUsize::MIN);
        let mut bits = BitReader::new(ByteReader::skipping_bytes(sps_nal, skip));
        read_sps(&mut bits)
            .map_err(|e| invalid(format!("{e:?}")))?
            .check()
            .map_err(invalid)
    }

    fn check(self) -> Result<SpsInfo, String> {
        if self.width == 0 || self.height == 0 {
            return Err(format!("picture size {}x{}", self.width, self.height));
        }
        if self.width > MAX_DIMENSION || self.height > MAX_DIMENSION {
            return Err(format!(
                "picture size {}x{} too large",
                self.width, self.height
            ));
        }
        Ok(self)
    }

    /// The RFC 6381 / ISO/IEC 14496-15 annex E codec string for an `hvc1` track, e.g.
    /// `hvc1.1.6.L93.B0`: profile space and profile, compatibility flags (bit-reversed, hex),
    /// tier and level, then the constraint bytes up to the last non-zero one.
    pub fn codec_string(&self) -> String {
        let ptl = &self.ptl;
        let space = match ptl.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let tier = if ptl.high_tier { 'H' } else { 'L' };
        let mut out = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            ptl.profile_idc,
            ptl.compatibility_flags.reverse_bits(),
            ptl.level_idc
        );
        let used = ptl
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last + 1);
        for byte in &ptl.constraint_flags[..used] {
            out.push_str(&format!(".{byte:X}"));
        }
        out
    }

    /// A human-readable codec name for logs, e.g. "H265 main L3.1 1280x720".
    pub fn describe(&self) -> String {
        let profile = match self.ptl.profile_idc {
            1 => "main",
            2 => "main 10",
            3 => "main still picture",
            4 => "range extensions",
            _ => "other profile",
        };
        let level = u32::from(self.ptl.level_idc);
        format!(
            "H265 {profile} {}{}.{} {}x{}",
            if self.ptl.high_tier { "H" } else { "L" },
            level / 30,
            level % 30 / 3,
            self.width,
            self.height
        )
    }
}

type Bits<'a> = BitReader<ByteReader<&'a [u8]>>;

/// Reads the SPS fields up to the bit depths (ITU-T H.265 7.3.2.2.1).
fn read_sps(bits: &mut Bits<'_>) -> Result<SpsInfo, BitReaderError> {
    bits.skip(4, "sps_video_parameter_set_id")?;
    let max_sub_layers_minus1: u8 = bits.read::<3, u8>("sps_max_sub_layers_minus1")?;
    let temporal_id_nesting = bits.read_bit("sps_temporal_id_nesting_flag")?;
    let ptl = read_profile_tier_level(bits, max_sub_layers_minus1)?;
    bits.read_ue("sps_seq_parameter_set_id")?;
    let chroma_format_idc = bits.read_ue("chroma_format_idc")?;
    if chroma_format_idc == 3 {
        bits.read_bit("separate_colour_plane_flag")?;
    }
    let width = bits.read_ue("pic_width_in_luma_samples")?;
    let height = bits.read_ue("pic_height_in_luma_samples")?;
    let (mut crop_x, mut crop_y) = (0u32, 0u32);
    if bits.read_bit("conformance_window_flag")? {
        let (sub_width, sub_height) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let left = bits.read_ue("conf_win_left_offset")?;
        let right = bits.read_ue("conf_win_right_offset")?;
        let top = bits.read_ue("conf_win_top_offset")?;
        let bottom = bits.read_ue("conf_win_bottom_offset")?;
        crop_x = left.saturating_add(right).saturating_mul(sub_width);
        crop_y = top.saturating_add(bottom).saturating_mul(sub_height);
    }
    let bit_depth_luma_minus8 = bits.read_ue("bit_depth_luma_minus8")?;
    let bit_depth_chroma_minus8 = bits.read_ue("bit_depth_chroma_minus8")?;
    Ok(SpsInfo {
        width: width.saturating_sub(crop_x),
        height: height.saturating_sub(crop_y),
        ptl,
        sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting,
        chroma_format_idc: u8::try_from(chroma_format_idc.min(3)).unwrap_or(1),
        bit_depth_luma_minus8: u8::try_from(bit_depth_luma_minus8.min(7)).unwrap_or(0),
        bit_depth_chroma_minus8: u8::try_from(bit_depth_chroma_minus8.min(7)).unwrap_or(0),
    })
}

/// `profile_tier_level(1, max_sub_layers_minus1)` (ITU-T H.265 7.3.3): the general part is
/// kept, the sub-layer parts are skipped.
fn read_profile_tier_level(
    bits: &mut Bits<'_>,
    max_sub_layers_minus1: u8,
) -> Result<ProfileTierLevel, BitReaderError> {
    let profile_space = bits.read::<2, u8>("general_profile_space")?;
    let high_tier = bits.read_bit("general_tier_flag")?;
    let profile_idc = bits.read::<5, u8>("general_profile_idc")?;
    let compatibility_flags = bits.read::<32, u32>("general_profile_compatibility_flags")?;
    let mut constraint_flags = [0u8; 6];
    for byte in &mut constraint_flags {
        *byte = bits.read::<8, u8>("general_constraint_flags")?;
    }
    let level_idc = bits.read::<8, u8>("general_level_idc")?;
    let sub_layers = usize::from(max_sub_layers_minus1);
    let mut present = [(false, false); 7];
    for flags in present.iter_mut().take(sub_layers) {
        *flags = (
            bits.read_bit("sub_layer_profile_present_flag")?,
            bits.read_bit("sub_layer_level_present_flag")?,
        );
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            bits.skip(2, "reserved_zero_2bits")?;
        }
    }
    for (profile_present, level_present) in present.iter().take(sub_layers) {
        if *profile_present {
            bits.skip(88, "sub_layer_profile")?;
        }
        if *level_present {
            bits.skip(8, "sub_layer_level_idc")?;
        }
    }
    Ok(ProfileTierLevel {
        profile_space,
        high_tier,
        profile_idc,
        compatibility_flags,
        constraint_flags,
        level_idc,
    })
}

/// Parameter sets of a real stream, for tests.
#[cfg(test)]
pub(crate) mod samples {
    /// The SPS libx265 writes for 320x240 Main, level 2 (ffmpeg `-c:v libx265`), with its
    /// emulation prevention bytes.
    pub(crate) const SPS_320X240: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x10,
    ];

    /// The VPS and PPS of the same stream.
    pub(crate) const VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09,
    ];
    pub(crate) const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
}

#[cfg(test)]
mod tests {
    use super::samples::SPS_320X240;
    use super::*;

    #[test]
    fn reads_size_profile_and_level_of_a_libx265_sps() {
        let info = SpsInfo::parse(SPS_320X240).expect("valid SPS");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.ptl.profile_idc, 1);
        assert_eq!(info.ptl.level_idc, 60);
        assert!(!info.ptl.high_tier);
        assert_eq!(info.ptl.compatibility_flags, 0x6000_0000);
        assert_eq!(info.ptl.constraint_flags, [0x90, 0, 0, 0, 0, 0]);
        assert_eq!(info.chroma_format_idc, 1);
        assert_eq!(info.codec_string(), "hvc1.1.6.L60.90");
        assert_eq!(info.describe(), "H265 main L2.0 320x240");
    }

    #[test]
    fn truncated_or_foreign_nal_units_are_errors_not_panics() {
        for len in 0..SPS_320X240.len() {
            let _ = SpsInfo::parse(&SPS_320X240[..len]);
        }
        assert!(matches!(
            SpsInfo::parse(&[0x40, 0x01, 0x0c]),
            Err(SpsError::NotSps(Some(nal_type::VPS)))
        ));
        assert!(matches!(
            SpsInfo::parse(&[0x42]),
            Err(SpsError::NotSps(None))
        ));
    }

    #[test]
    fn nal_types_and_random_access_points() {
        assert_eq!(nal_unit_type(&[0x40, 0x01]), Some(nal_type::VPS));
        assert_eq!(nal_unit_type(&[0x26, 0x01]), Some(nal_type::IDR_W_RADL));
        assert_eq!(nal_unit_type(&[0x2a, 0x01]), Some(nal_type::CRA));
        assert!(is_irap(nal_type::IDR_N_LP) && is_irap(nal_type::CRA));
        assert!(!is_irap(1) && !is_irap(nal_type::VPS));
        assert!(is_vcl(1) && !is_vcl(nal_type::SPS));
    }
}
