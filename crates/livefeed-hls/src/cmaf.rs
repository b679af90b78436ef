//! CMAF (fragmented MP4) muxing of H.264 or H.265 video, and of an audio track beside it,
//! without I/O.
//!
//! Two kinds of output, both plain bytes:
//!
//! - the **init segment** ([`init_segment`]): `ftyp` + `moov` describing one video track
//!   ([`TRACK_ID`], timescale [`TIMESCALE`]): H.264 as `avc1` with SPS and PPS in `avcC`, H.265
//!   as `hvc1` with VPS, SPS and PPS in `hvcC`. Served as the playlist's `EXT-X-MAP`.
//! - **chunks** ([`FragmentWriter::fragment`]): one `moof` + `mdat` carrying whole access units
//!   as AVCC samples ([`sample_from_access_unit`]).
//!
//! # Contract
//!
//! - **Whole frames only.** A [`Sample`] is one complete access unit; a chunk never splits one.
//! - **Any number of samples per chunk.** livefeed writes one sample per chunk (a CMAF chunk per
//!   frame, so an LL-HLS part can be streamed to players frame by frame), but any number works,
//!   as long as the samples of one chunk are contiguous: each starts where the previous one ends
//!   (`decode_time + duration`), because a `trun` has no other way to say when a sample starts.
//! - **Decode times never decrease** from one chunk to the next; gaps are fine (every chunk
//!   carries its own `tfdt`). A writer refuses a chunk that starts before the previous one's
//!   last sample; a stream whose clock restarts needs a new [`FragmentWriter`] (and a
//!   discontinuity in the playlist).
//! - **No B-frames**: decode time = presentation time (livefeed sends constrained baseline), so
//!   there are no composition offsets and no edit list.
//! - **Chunks concatenate.** Each chunk is self-contained (`default-base-is-moof`, data offsets
//!   relative to its own `moof`), so a part is the concatenation of its chunks and a segment the
//!   concatenation of its parts, byte for byte.
//! - **Audio is a second track** ([`AUDIO_TRACK_ID`], timescale = its sampling rate) in the
//!   same init segment ([`init_segment_with_audio`]): AAC (`mp4a`/`esds`) or Opus
//!   (`Opus`/`dOps`). Its fragments come from their own [`FragmentWriter::for_track`], one raw
//!   AAC frame or Opus packet per sample, every sample a sync sample.
//!   Video and audio chunks interleave in arrival order in parts and segments.
//! - **The init segment depends only on the parameter sets** (and the audio config). Samples
//!   never carry them (`avc1` and `hvc1` sample entries keep them in `avcC`/`hvcC`; `hvc1`, not
//!   `hev1`, is what Apple's HLS rules ask for), so when they change, build a new
//!   [`VideoTrack`] and init segment ([`VideoTrack::from_access_unit`] on each keyframe finds
//!   them; compare with `==`).
//!
//! # Choices
//!
//! - **Brands**: major `iso6`, compatible `iso6`, `cmfc`, `avc1`, `mp41`. `iso6` covers every
//!   feature written here (64-bit `tfdt`, version 1 `trun`/`mvhd`/`tkhd`/`mdhd`,
//!   `default-base-is-moof`); `cmfc` declares the CMAF structure; `avc1` the AVC file format;
//!   `mp41` keeps old MP4 readers happy. ffmpeg's own CMAF output (`-movflags cmaf`) uses
//!   `iso6`/`cmfc`/`mp41`, which Safari and hls.js play; hls.js and Chrome's MSE ignore `ftyp`.
//! - **Timescales**: 90 kHz everywhere (`mvhd`, `mdhd`): the RTP clock of
//!   [`AccessUnit::pts`], so times are copied, never rounded.
//! - **Box order**: the order of ISO/IEC 14496-12 table 1, which ffmpeg and most muxers write
//!   (`moov`: `mvhd`, `trak`, `mvex`; `minf`: `vmhd`, `dinf`, `stbl`). mp4-atom's own `Moov`
//!   and `Minf` encoders put `mvex` before `trak` and `vmhd` after `stbl` (legal, but unusual,
//!   and some readers are picky about order), so those four containers are written with
//!   mp4-atom's `BufMut::encode_atom` around mp4-atom's typed boxes; every box is still
//!   encoded by mp4-atom.

use bytes::Bytes;
use livefeed_media::aac::AacConfig;
use livefeed_media::h264::{self, nal_type, SpsError, SpsInfo};
use livefeed_media::{h265, AccessUnit, VideoCodec};
use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, BufMut as _, Codec, Dinf, Dops, Dref, Encode, Esds, FourCC, Ftyp,
    Hdlr, Header, Hvc1, HvcCArray, Hvcc, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mp4a, Mvex,
    Mvhd, Opus, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd,
};

/// Timescale of every time in the output (`mvhd`, `mdhd`, `tfdt`, `trun`): 90 kHz, the clock of
/// [`AccessUnit::pts`].
pub const TIMESCALE: u32 = 90_000;

/// The video track's ID (`tkhd`, `trex`, `tfhd`).
pub const TRACK_ID: u32 = 1;

/// The audio track's ID, when there is one.
pub const AUDIO_TRACK_ID: u32 = 2;

/// Sample flags of a sync sample (an IDR picture): `sample_depends_on` = 2 (depends on no other
/// picture), `sample_is_non_sync_sample` clear.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;

/// Sample flags of any other picture: `sample_depends_on` = 1, `sample_is_non_sync_sample` set.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Size of the `mdat` header written in front of the sample data (32-bit size + type).
const MDAT_HEADER_LEN: usize = 8;

/// Largest `mdat` payload a 32-bit box size can describe.
const MAX_MDAT_PAYLOAD: usize = u32::MAX as usize - MDAT_HEADER_LEN;

/// Bytes of a `moof` beyond its per-sample `trun` entries (its encoded size is 100 or 104).
const MOOF_FIXED_LEN: usize = 128;

/// Bytes of one `trun` entry: duration, size, flags.
const TRUN_ENTRY_LEN: usize = 12;

/// Bytes of an init segment beyond its SPS and PPS (its encoded size is about 700).
const INIT_FIXED_LEN: usize = 1024;

/// Why the muxer refused its input. Each variant names the box (and field) concerned.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum CmafError {
    /// A parameter set given for `avcC` is not the NAL unit it should be.
    #[error("avcC: expected {expected} NAL unit, got NAL unit type {actual:?} ({len} bytes)")]
    WrongParameterSet {
        /// "SPS" or "PPS".
        expected: &'static str,
        /// The NAL unit type found (`None`: empty).
        actual: Option<u8>,
        /// Size of the NAL unit given.
        len: usize,
    },
    /// The SPS for `avcC` cannot be read.
    #[error("avcC: unreadable SPS: {0}")]
    Sps(#[from] SpsError),
    /// A value does not fit the field of the box that carries it.
    #[error("{field}: {value} does not fit (at most {max})")]
    TooLarge {
        /// Box and field, e.g. "tkhd/avc1 width".
        field: &'static str,
        /// The value that does not fit.
        value: u64,
        /// The largest value the field holds.
        max: u64,
    },
    /// An access unit holds no coded slice once AUD, SPS and PPS are dropped.
    #[error("mdat: access unit at pts {pts} has no coded slice (NAL unit types {nal_types:?})")]
    NoPicture {
        /// Its presentation time (90 kHz).
        pts: u64,
        /// The types of the NAL units it had.
        nal_types: Vec<Option<u8>>,
    },
    /// [`FragmentWriter::fragment`] was given no sample.
    #[error("trun: a fragment needs at least one sample")]
    NoSamples,
    /// A sample of a fragment does not start where the previous one ends.
    #[error(
        "trun: sample {index} has decode time {actual}, but the previous sample ends at \
         {expected}; samples of one fragment must be contiguous"
    )]
    NotContiguous {
        /// Index of the sample in the slice given.
        index: usize,
        /// Previous sample's decode time + duration.
        expected: u64,
        /// This sample's decode time.
        actual: u64,
    },
    /// A fragment starts before the last sample of the previous one.
    #[error(
        "tfdt: decode time {decode_time} is before the previous fragment's last sample at \
         {previous} (fragment sequence number {sequence_number})"
    )]
    DecodeTimeWentBack {
        /// Decode time of the previous fragment's last sample.
        previous: u64,
        /// Decode time of this fragment's first sample.
        decode_time: u64,
        /// The `mfhd` sequence number this fragment would have had.
        sequence_number: u32,
    },
    /// mp4-atom refused to encode a box.
    #[error("{atom}: encoding failed: {source}")]
    Encode {
        /// The box being written.
        atom: &'static str,
        /// What mp4-atom reported.
        #[source]
        source: mp4_atom::Error,
    },
}

fn encode_error(atom: &'static str) -> impl FnOnce(mp4_atom::Error) -> CmafError {
    move |source| CmafError::Encode { atom, source }
}

fn too_large(field: &'static str, value: usize, max: u64) -> CmafError {
    CmafError::TooLarge {
        field,
        value: value as u64,
        max,
    }
}

/// The video track: what the init segment describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// H.264 or H.265.
    pub codec: VideoCodec,
    /// The H.265 video parameter set NAL unit (empty for H.264).
    pub vps: Bytes,
    /// The sequence parameter set NAL unit (header included, no start code).
    pub sps: Bytes,
    /// The picture parameter set NAL unit (header included, no start code).
    pub pps: Bytes,
    /// Picture width in pixels, from the SPS.
    pub width: u32,
    /// Picture height in pixels, from the SPS.
    pub height: u32,
}

impl VideoTrack {
    /// The H.264 track of a stream with these parameter sets; the picture size is read from
    /// the SPS.
    pub fn from_parameter_sets(sps: Bytes, pps: Bytes) -> Result<Self, CmafError> {
        let info = SpsInfo::parse(&sps)?;
        let size = (info.width, info.height);
        Self::checked(VideoCodec::H264, Bytes::new(), sps, pps, size)
    }

    /// The H.265 track of a stream with these parameter sets.
    pub fn from_h265_parameter_sets(vps: Bytes, sps: Bytes, pps: Bytes) -> Result<Self, CmafError> {
        let info = h265::SpsInfo::parse(&sps)?;
        let size = (info.width, info.height);
        Self::checked(VideoCodec::H265, vps, sps, pps, size)
    }

    /// A track of these parameter sets and picture size, if the muxer can write it.
    fn checked(
        codec: VideoCodec,
        vps: Bytes,
        sps: Bytes,
        pps: Bytes,
        (width, height): (u32, u32),
    ) -> Result<Self, CmafError> {
        let track = VideoTrack {
            codec,
            vps,
            sps,
            pps,
            width,
            height,
        };
        track.check()?;
        Ok(track)
    }

    /// The track described by the first parameter sets of an access unit (of its codec),
    /// `None` if it lacks one (livefeed keyframes carry them all).
    pub fn from_access_unit(au: &AccessUnit) -> Result<Option<Self>, CmafError> {
        let codec = au.codec;
        let find = |wanted| {
            au.nals
                .iter()
                .find(|nal| codec.nal_unit_type(nal) == Some(wanted))
                .cloned()
        };
        match codec {
            VideoCodec::H264 => match (find(nal_type::SPS), find(nal_type::PPS)) {
                (Some(sps), Some(pps)) => Self::from_parameter_sets(sps, pps).map(Some),
                _ => Ok(None),
            },
            VideoCodec::H265 => {
                let sets = (
                    find(h265::nal_type::VPS),
                    find(h265::nal_type::SPS),
                    find(h265::nal_type::PPS),
                );
                match sets {
                    (Some(vps), Some(sps), Some(pps)) => {
                        Self::from_h265_parameter_sets(vps, sps, pps).map(Some)
                    }
                    _ => Ok(None),
                }
            }
        }
    }

    /// The RFC 6381 codec string for the playlist's `CODECS` attribute: `avc1.42C01E` (H.264
    /// profile, constraint flags and level from the SPS) or `hvc1.1.6.L93.B0` (H.265).
    pub fn codec_string(&self) -> String {
        match self.codec {
            VideoCodec::H264 => {
                let byte = |i: usize| self.sps.get(i).copied().unwrap_or(0);
                format!("avc1.{:02X}{:02X}{:02X}", byte(1), byte(2), byte(3))
            }
            VideoCodec::H265 => h265::SpsInfo::parse(&self.sps)
                .map(|info| info.codec_string())
                .unwrap_or_else(|_| "hvc1".into()),
        }
    }

    /// Checks what the boxes need: NAL unit types, `avcC`/`hvcC` lengths, 16-bit picture size.
    fn check(&self) -> Result<(), CmafError> {
        if self.codec == VideoCodec::H265 {
            return self.check_h265();
        }
        for (nal, expected, wanted) in [
            (&self.sps, "SPS", nal_type::SPS),
            (&self.pps, "PPS", nal_type::PPS),
        ] {
            let actual = h264::nal_unit_type(nal);
            // avcC copies profile, constraint flags and level from SPS bytes 1..4.
            let min_len = if wanted == nal_type::SPS { 4 } else { 1 };
            if actual != Some(wanted) || nal.len() < min_len {
                return Err(CmafError::WrongParameterSet {
                    expected,
                    actual,
                    len: nal.len(),
                });
            }
        }
        let max_nal = u64::from(u16::MAX);
        if self.sps.len() > usize::from(u16::MAX) {
            return Err(too_large("avcC SPS length", self.sps.len(), max_nal));
        }
        if self.pps.len() > usize::from(u16::MAX) {
            return Err(too_large("avcC PPS length", self.pps.len(), max_nal));
        }
        self.size()?;
        Ok(())
    }

    fn check_h265(&self) -> Result<(), CmafError> {
        for (nal, expected, wanted) in [
            (&self.vps, "VPS", h265::nal_type::VPS),
            (&self.sps, "SPS", h265::nal_type::SPS),
            (&self.pps, "PPS", h265::nal_type::PPS),
        ] {
            let actual = h265::nal_unit_type(nal);
            if actual != Some(wanted) {
                return Err(CmafError::WrongParameterSet {
                    expected,
                    actual,
                    len: nal.len(),
                });
            }
            if nal.len() > usize::from(u16::MAX) {
                return Err(too_large(
                    "hvcC NAL unit length",
                    nal.len(),
                    u16::MAX.into(),
                ));
            }
        }
        self.size()?;
        Ok(())
    }

    /// The `stsd` sample entry: `avc1` with `avcC`, or `hvc1` with `hvcC`.
    fn sample_entry(&self, width: u16, height: u16) -> Result<Codec, CmafError> {
        let visual = Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        };
        Ok(match self.codec {
            VideoCodec::H264 => Avc1 {
                visual,
                avcc: Avcc::new(&self.sps, &self.pps).map_err(encode_error("avcC"))?,
                ..Default::default()
            }
            .into(),
            VideoCodec::H265 => Hvc1 {
                visual,
                hvcc: self.hvcc()?,
                ..Default::default()
            }
            .into(),
        })
    }

    /// The `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 8.3.3): profile, tier, level,
    /// chroma format and bit depths from the SPS; the three parameter sets as complete arrays.
    fn hvcc(&self) -> Result<Hvcc, CmafError> {
        let info = h265::SpsInfo::parse(&self.sps)?;
        let ptl = info.ptl;
        let array = |nal_unit_type, nal: &Bytes| HvcCArray {
            completeness: true,
            nal_unit_type,
            nalus: vec![nal.to_vec()],
        };
        Ok(Hvcc {
            configuration_version: 1,
            general_profile_space: ptl.profile_space,
            general_tier_flag: ptl.high_tier,
            general_profile_idc: ptl.profile_idc,
            general_profile_compatibility_flags: ptl.compatibility_flags.to_be_bytes(),
            general_constraint_indicator_flags: ptl.constraint_flags,
            general_level_idc: ptl.level_idc,
            min_spatial_segmentation_idc: 0,
            parallelism_type: 0,
            chroma_format_idc: info.chroma_format_idc,
            bit_depth_luma_minus8: info.bit_depth_luma_minus8,
            bit_depth_chroma_minus8: info.bit_depth_chroma_minus8,
            avg_frame_rate: 0,
            constant_frame_rate: 0,
            num_temporal_layers: info.sub_layers,
            temporal_id_nested: info.temporal_id_nesting,
            length_size_minus_one: 3,
            arrays: vec![
                array(h265::nal_type::VPS, &self.vps),
                array(h265::nal_type::SPS, &self.sps),
                array(h265::nal_type::PPS, &self.pps),
            ],
        })
    }

    /// Width and height as the 16-bit fields of `tkhd` and `avc1` hold them.
    fn size(&self) -> Result<(u16, u16), CmafError> {
        let max = u64::from(u16::MAX);
        let width = u16::try_from(self.width)
            .map_err(|_| too_large("tkhd/avc1 width", self.width as usize, max))?;
        let height = u16::try_from(self.height)
            .map_err(|_| too_large("tkhd/avc1 height", self.height as usize, max))?;
        Ok((width, height))
    }
}

/// The init segment (`ftyp` + `moov`) of a track: serve it as the playlist's `EXT-X-MAP`.
pub fn init_segment(track: &VideoTrack) -> Result<Bytes, CmafError> {
    init_segment_with_audio(track, None)
}

/// The audio track beside the video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTrack {
    /// AAC with its AudioSpecificConfig.
    Aac(AacConfig),
    /// Opus (48 kHz) with this many output channels.
    Opus {
        /// 1 or 2.
        channels: u8,
    },
}

impl AudioTrack {
    /// The track's timescale: its sampling rate.
    pub fn timescale(&self) -> u32 {
        match self {
            AudioTrack::Aac(c) => c.sample_rate,
            AudioTrack::Opus { .. } => livefeed_media::opus::CLOCK_RATE,
        }
    }

    /// The RFC 6381 codec string (`mp4a.40.2`, `opus`).
    pub fn codec_string(&self) -> String {
        match self {
            AudioTrack::Aac(c) => c.codec_string(),
            AudioTrack::Opus { .. } => "opus".into(),
        }
    }

    /// The `stsd` sample entry.
    fn sample_entry(&self) -> Codec {
        match self {
            AudioTrack::Aac(c) => aac_sample_entry(c).into(),
            AudioTrack::Opus { channels } => Opus {
                audio: Audio {
                    data_reference_index: 1,
                    channel_count: u16::from(*channels),
                    sample_size: 16,
                    sample_rate: 48_000u16.into(),
                },
                dops: Dops {
                    output_channel_count: *channels,
                    // RFC 7845's usual encoder delay; players trim it from the start.
                    pre_skip: 312,
                    input_sample_rate: livefeed_media::opus::CLOCK_RATE,
                    output_gain: 0,
                    channel_mapping: None,
                },
                btrt: None,
            }
            .into(),
        }
    }
}

/// The init segment of the video track and, if given, an audio track.
pub fn init_segment_with_audio(
    track: &VideoTrack,
    audio: Option<&AudioTrack>,
) -> Result<Bytes, CmafError> {
    track.check()?;
    let mut moov = moov(track)?;
    if let Some(audio) = audio {
        add_audio(&mut moov, audio)?;
    }
    let sets_len = track.vps.len() + track.sps.len() + track.pps.len();
    let mut out = Vec::with_capacity(INIT_FIXED_LEN + sets_len);
    ftyp(track.codec)
        .encode(&mut out)
        .map_err(encode_error("ftyp"))?;
    write_moov(&moov, &mut out).map_err(encode_error("moov"))?;
    Ok(out.into())
}

/// Brands: `avc1` (the AVC file format) only for H.264.
fn ftyp(codec: VideoCodec) -> Ftyp {
    let brands: &[&[u8; 4]] = match codec {
        VideoCodec::H264 => &[b"iso6", b"cmfc", b"avc1", b"mp41"],
        VideoCodec::H265 => &[b"iso6", b"cmfc", b"mp41"],
    };
    Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: brands.iter().map(|b| FourCC::new(b)).collect(),
    }
}

/// The `moov` of a track as mp4-atom types; [`write_moov`] encodes it.
fn moov(track: &VideoTrack) -> Result<Moov, CmafError> {
    let (width, height) = track.size()?;
    let mvhd = Mvhd {
        timescale: TIMESCALE,
        duration: 0,
        rate: 1u16.into(),
        volume: 1u8.into(),
        next_track_id: TRACK_ID + 1,
        ..Default::default()
    };
    let tkhd = Tkhd {
        track_id: TRACK_ID,
        enabled: true,
        in_movie: true,
        width: width.into(),
        height: height.into(),
        ..Default::default()
    };
    let mdia = Mdia {
        mdhd: Mdhd {
            timescale: TIMESCALE,
            language: "und".into(),
            ..Default::default()
        },
        hdlr: Hdlr {
            handler: FourCC::new(b"vide"),
            name: "livefeed video".into(),
        },
        minf: minf(track, width, height)?,
    };
    let trex = Trex {
        track_id: TRACK_ID,
        default_sample_description_index: 1,
        default_sample_duration: 0,
        default_sample_size: 0,
        default_sample_flags: NON_SYNC_SAMPLE_FLAGS,
    };
    Ok(Moov {
        mvhd,
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![trex],
        }),
        trak: vec![Trak {
            tkhd,
            mdia,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// `minf` of the track: video header, "data is in this file", and an empty sample table (the
/// samples are in the fragments) whose one sample entry carries the parameter sets.
fn minf(track: &VideoTrack, width: u16, height: u16) -> Result<Minf, CmafError> {
    let entry = track.sample_entry(width, height)?;
    Ok(Minf {
        vmhd: Some(Vmhd::default()),
        dinf: Dinf {
            dref: Dref {
                entries: vec![Url::default().into()],
            },
        },
        stbl: Stbl {
            stsd: Stsd {
                codecs: vec![entry],
            },
            stco: Some(Stco::default()),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Encodes a `moov` built by [`moov`] with its children in ISO/IEC 14496-12 table 1 order (see
/// the module docs). Only the fields [`moov`] sets are written.
fn write_moov(moov: &Moov, out: &mut Vec<u8>) -> mp4_atom::Result<()> {
    out.encode_atom(Moov::KIND, |out| {
        moov.mvhd.encode(out)?;
        for trak in &moov.trak {
            out.encode_atom(Trak::KIND, |out| {
                trak.tkhd.encode(out)?;
                write_mdia(&trak.mdia, out)
            })?;
        }
        moov.mvex.encode(out)
    })
}

/// The `mp4a` sample entry of an AAC track.
fn aac_sample_entry(audio: &AacConfig) -> Mp4a {
    let rate = u16::try_from(audio.sample_rate).unwrap_or(0);
    Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(audio.channels.max(1)),
            sample_size: 16,
            sample_rate: rate.into(),
        },
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: AUDIO_TRACK_ID as u16,
                dec_config: DecoderConfig {
                    object_type_indication: 0x40, // MPEG-4 Audio
                    stream_type: 5,               // audio stream
                    dec_specific: Some(DecoderSpecific {
                        profile: audio.object_type,
                        chan_conf: audio.channels,
                        raw: audio.audio_specific_config.to_vec(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                sl_config: SLConfig {},
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    }
}

/// Adds the audio track (its `trak` and `trex`) to a `moov` built by [`moov`].
fn add_audio(moov: &mut Moov, audio: &AudioTrack) -> Result<(), CmafError> {
    let timescale = audio.timescale();
    let minf = Minf {
        smhd: Some(Smhd::default()),
        dinf: Dinf {
            dref: Dref {
                entries: vec![Url::default().into()],
            },
        },
        stbl: Stbl {
            stsd: Stsd {
                codecs: vec![audio.sample_entry()],
            },
            stco: Some(Stco::default()),
            ..Default::default()
        },
        ..Default::default()
    };
    moov.trak.push(Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            enabled: true,
            in_movie: true,
            alternate_group: 1,
            volume: 1u8.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(b"soun"),
                name: "livefeed audio".into(),
            },
            minf,
        },
        ..Default::default()
    });
    moov.mvhd.next_track_id = AUDIO_TRACK_ID + 1;
    if let Some(mvex) = moov.mvex.as_mut() {
        mvex.trex.push(Trex {
            track_id: AUDIO_TRACK_ID,
            default_sample_description_index: 1,
            default_sample_duration: 0,
            default_sample_size: 0,
            default_sample_flags: SYNC_SAMPLE_FLAGS,
        });
    }
    Ok(())
}

fn write_mdia(mdia: &Mdia, out: &mut Vec<u8>) -> mp4_atom::Result<()> {
    out.encode_atom(Mdia::KIND, |out| {
        mdia.mdhd.encode(out)?;
        mdia.hdlr.encode(out)?;
        out.encode_atom(Minf::KIND, |out| {
            mdia.minf.vmhd.encode(out)?;
            mdia.minf.smhd.encode(out)?;
            mdia.minf.dinf.encode(out)?;
            mdia.minf.stbl.encode(out)
        })
    })
}

/// The sample of one raw AAC frame at `decode_time` (the audio track's timescale).
pub fn audio_sample(frame: Bytes, decode_time: u64, duration: u32) -> Sample {
    Sample {
        data: frame,
        decode_time,
        duration,
        keyframe: true,
    }
}

/// One coded picture (or audio frame), ready for a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The NAL units in AVCC form: each prefixed with its 4-byte big-endian length.
    pub data: Bytes,
    /// Decode time in [`TIMESCALE`] ticks (= presentation time: no B-frames).
    pub decode_time: u64,
    /// Duration in [`TIMESCALE`] ticks.
    pub duration: u32,
    /// Whether a decoder can start here (an IDR picture).
    pub keyframe: bool,
}

/// Whether a NAL unit goes into a sample: AUDs are dropped (MP4 samples delimit pictures
/// themselves) and so are parameter sets (they live in `avcC`/`hvcC`, see [`init_segment`]).
/// Everything else stays, SEI in particular: the livefeed capture stamp must reach HLS players.
fn keep_in_sample(codec: VideoCodec, nal: &Bytes) -> bool {
    codec.nal_unit_type(nal).is_some()
        && !codec.is_access_unit_delimiter(nal)
        && !codec.is_parameter_set(nal)
}

/// Whether a NAL unit is a coded slice.
fn is_slice(codec: VideoCodec, nal: &[u8]) -> bool {
    match codec {
        VideoCodec::H264 => h264::is_vcl(nal),
        VideoCodec::H265 => h265::nal_unit_type(nal).is_some_and(h265::is_vcl),
    }
}

/// The sample of an access unit: its NAL units in AVCC form (AUD, SPS and PPS dropped, SEI
/// kept), decode time = `au.pts`, the given duration (90 kHz ticks).
///
/// Fails if no coded slice remains, or a NAL unit is 4 GiB or more.
pub fn sample_from_access_unit(au: &AccessUnit, duration: u32) -> Result<Sample, CmafError> {
    let codec = au.codec;
    let len: usize = au
        .nals
        .iter()
        .filter(|nal| keep_in_sample(codec, nal))
        .map(|nal| 4 + nal.len())
        .sum();
    let mut data = Vec::with_capacity(len);
    let mut has_slice = false;
    for nal in au.nals.iter().filter(|nal| keep_in_sample(codec, nal)) {
        let nal_len = u32::try_from(nal.len())
            .map_err(|_| too_large("mdat AVCC NAL unit length", nal.len(), u32::MAX.into()))?;
        data.extend_from_slice(&nal_len.to_be_bytes());
        data.extend_from_slice(nal);
        has_slice |= is_slice(codec, nal);
    }
    if !has_slice {
        return Err(CmafError::NoPicture {
            pts: au.pts,
            nal_types: au.nals.iter().map(|nal| codec.nal_unit_type(nal)).collect(),
        });
    }
    Ok(Sample {
        data: data.into(),
        decode_time: au.pts,
        duration,
        keyframe: au.keyframe,
    })
}

/// Writes the fragments (`moof` + `mdat`) of one track, numbering them from 1.
///
/// One writer per continuous stream: it checks that decode times do not go back.
#[derive(Debug)]
pub struct FragmentWriter {
    /// `mfhd` sequence number of the next fragment.
    next_sequence_number: u32,
    /// Decode time of the last sample written.
    last_decode_time: Option<u64>,
    /// The `moof` of the last fragment, refilled for the next so that a fragment costs no
    /// allocation besides its output. Always one `traf` holding one `trun`.
    moof: Moof,
}

impl Default for FragmentWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FragmentWriter {
    /// A writer of the video track whose first fragment has sequence number 1.
    pub fn new() -> Self {
        Self::for_track(TRACK_ID)
    }

    /// A writer of track `track_id` (e.g. [`AUDIO_TRACK_ID`]).
    pub fn for_track(track_id: u32) -> Self {
        let traf = Traf {
            tfhd: Tfhd {
                track_id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt::default()),
            trun: vec![Trun::default()],
            ..Default::default()
        };
        FragmentWriter {
            next_sequence_number: 1,
            last_decode_time: None,
            moof: Moof {
                mfhd: Mfhd { sequence_number: 1 },
                traf: vec![traf],
            },
        }
    }

    /// The `mfhd` sequence number the next fragment will carry.
    pub fn next_sequence_number(&self) -> u32 {
        self.next_sequence_number
    }

    /// One fragment: a `moof` (sequence number, `tfdt` = first sample's decode time, a `trun`
    /// with each sample's duration, size and sync flags) followed by an `mdat` holding the
    /// samples' data. See the module docs for what `samples` must satisfy.
    pub fn fragment(&mut self, samples: &[Sample]) -> Result<Bytes, CmafError> {
        let data_len = self.check(samples)?;
        let sequence_number = self.next_sequence_number;
        self.fill_moof(sequence_number, samples);

        let mut out = Vec::with_capacity(
            MOOF_FIXED_LEN + TRUN_ENTRY_LEN * samples.len() + MDAT_HEADER_LEN + data_len,
        );
        // The data offset (from the start of the moof to the first sample byte) depends on the
        // moof's own size, which a placeholder of the same width gives.
        self.moof.encode(&mut out).map_err(encode_error("moof"))?;
        let moof_len = out.len();
        let data_offset = moof_len + MDAT_HEADER_LEN;
        self.trun().data_offset = Some(
            i32::try_from(data_offset)
                .map_err(|_| too_large("trun data_offset", data_offset, i32::MAX as u64))?,
        );
        out.clear();
        self.moof.encode(&mut out).map_err(encode_error("moof"))?;
        debug_assert_eq!(
            out.len(),
            moof_len,
            "moof size changed with its data offset"
        );

        Header {
            kind: Mdat::KIND,
            size: Some(data_len),
        }
        .encode(&mut out)
        .map_err(encode_error("mdat"))?;
        debug_assert_eq!(out.len(), data_offset);
        for sample in samples {
            out.extend_from_slice(&sample.data);
        }

        self.next_sequence_number = sequence_number.wrapping_add(1).max(1);
        self.last_decode_time = samples.last().map(|s| s.decode_time);
        Ok(out.into())
    }

    /// Checks the samples against the contract; returns the size of their data.
    fn check(&self, samples: &[Sample]) -> Result<usize, CmafError> {
        let first = samples.first().ok_or(CmafError::NoSamples)?;
        if let Some(previous) = self.last_decode_time {
            if first.decode_time < previous {
                return Err(CmafError::DecodeTimeWentBack {
                    previous,
                    decode_time: first.decode_time,
                    sequence_number: self.next_sequence_number,
                });
            }
        }
        for (index, pair) in samples.windows(2).enumerate() {
            let expected = pair[0]
                .decode_time
                .saturating_add(u64::from(pair[0].duration));
            if pair[1].decode_time != expected {
                return Err(CmafError::NotContiguous {
                    index: index + 1,
                    expected,
                    actual: pair[1].decode_time,
                });
            }
        }
        let data_len = samples.iter().map(|s| s.data.len()).sum();
        if data_len > MAX_MDAT_PAYLOAD {
            return Err(too_large("mdat size", data_len, MAX_MDAT_PAYLOAD as u64));
        }
        Ok(data_len)
    }

    /// Puts the samples' values into the reused `moof`; the data offset is set by the caller.
    fn fill_moof(&mut self, sequence_number: u32, samples: &[Sample]) {
        self.moof.mfhd.sequence_number = sequence_number;
        let decode_time = samples.first().map_or(0, |s| s.decode_time);
        self.traf().tfdt = Some(Tfdt {
            base_media_decode_time: decode_time,
        });
        let trun = self.trun();
        let mut entries = match std::mem::take(&mut trun.samples) {
            TrunSamples::Explicit(entries) => entries,
            TrunSamples::Inherited { .. } => Vec::with_capacity(samples.len()),
        };
        entries.clear();
        entries.extend(samples.iter().map(|sample| TrunEntry {
            duration: Some(sample.duration),
            // Fits: check() bounds the sum of the sizes by u32::MAX.
            size: Some(sample.data.len() as u32),
            flags: Some(if sample.keyframe {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            }),
            cts: None,
        }));
        trun.samples = TrunSamples::Explicit(entries);
        trun.data_offset = Some(0);
    }

    // The moof always holds one traf with one trun (see `new`): indexing cannot fail.
    fn traf(&mut self) -> &mut Traf {
        &mut self.moof.traf[0]
    }

    fn trun(&mut self) -> &mut Trun {
        &mut self.traf().trun[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livefeed_media::h264::split_annex_b;
    use mp4_atom::{Codec, Decode, StszSamples};
    use std::process::Command;

    /// SPS of a 640x480 constrained-baseline stream as OpenH264 writes it (level 3.0).
    const SPS_640X480: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f, 0x08, 0x84, 0x6a,
    ];
    /// A PPS as OpenH264 writes it.
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn track() -> VideoTrack {
        VideoTrack::from_parameter_sets(Bytes::from_static(SPS_640X480), Bytes::from_static(PPS))
            .expect("valid parameter sets")
    }

    fn sample(decode_time: u64, keyframe: bool, len: usize) -> Sample {
        // One fake NAL unit in AVCC form; its bytes differ per sample so mixing them up shows.
        let nal_type = if keyframe { 0x65 } else { 0x41 };
        let mut data = (len as u32 - 4).to_be_bytes().to_vec();
        data.push(nal_type);
        data.extend((0..len - 5).map(|i| (decode_time as usize + i) as u8));
        Sample {
            data: data.into(),
            decode_time,
            duration: 3000,
            keyframe,
        }
    }

    /// The children of a box body: (type, body).
    fn children(mut body: &[u8]) -> Vec<(FourCC, &[u8])> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let header = Header::decode(&mut body).expect("box header");
            let size = header.size.expect("sized box");
            out.push((header.kind, &body[..size]));
            body = &body[size..];
        }
        out
    }

    fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        children(body)
            .into_iter()
            .find(|(k, _)| *k == FourCC::new(kind))
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("no {} box", FourCC::new(kind)))
    }

    fn kinds(body: &[u8]) -> Vec<String> {
        children(body)
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect()
    }

    #[test]
    fn track_from_parameter_sets_reads_size_and_codec() {
        let track = track();
        assert_eq!((track.width, track.height), (640, 480));
        assert_eq!(track.codec_string(), "avc1.42C01E");
    }

    #[test]
    fn track_refuses_swapped_or_broken_parameter_sets() {
        let swapped =
            VideoTrack::from_parameter_sets(Bytes::from_static(PPS), Bytes::from_static(PPS));
        assert!(matches!(swapped, Err(CmafError::Sps(_))), "{swapped:?}");
        let pps_is_sps = VideoTrack::from_parameter_sets(
            Bytes::from_static(SPS_640X480),
            Bytes::from_static(SPS_640X480),
        );
        assert!(
            matches!(
                pps_is_sps,
                Err(CmafError::WrongParameterSet {
                    expected: "PPS",
                    actual: Some(7),
                    ..
                })
            ),
            "{pps_is_sps:?}"
        );
        let truncated = VideoTrack::from_parameter_sets(
            Bytes::from_static(&SPS_640X480[..3]),
            Bytes::from_static(PPS),
        );
        assert!(truncated.is_err());
    }

    #[test]
    fn track_from_access_unit_finds_parameter_sets_of_keyframes_only() {
        let keyframe = AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals: vec![
                Bytes::from_static(&[0x09, 0xf0]),
                Bytes::from_static(SPS_640X480),
                Bytes::from_static(PPS),
                Bytes::from_static(&[0x65, 0x88]),
            ],
            pts: 0,
            keyframe: true,
            capture: None,
        };
        assert_eq!(
            VideoTrack::from_access_unit(&keyframe).unwrap(),
            Some(track())
        );
        let delta = AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals: vec![Bytes::from_static(&[0x41, 0x9a])],
            keyframe: false,
            ..keyframe
        };
        assert_eq!(VideoTrack::from_access_unit(&delta).unwrap(), None);
    }

    #[test]
    fn init_segment_decodes_back_with_expected_values() {
        let track = track();
        let init = init_segment(&track).expect("init segment");
        let mut buf = &init[..];
        let ftyp = Ftyp::decode(&mut buf).expect("ftyp");
        let moov = Moov::decode(&mut buf).expect("moov (strict)");
        assert!(buf.is_empty(), "{} bytes after moov", buf.len());

        assert_eq!(ftyp.major_brand, FourCC::new(b"iso6"));
        let brands: Vec<String> = ftyp
            .compatible_brands
            .iter()
            .map(|b| b.to_string())
            .collect();
        assert_eq!(brands, ["iso6", "cmfc", "avc1", "mp41"]);

        assert_eq!(moov.mvhd.timescale, TIMESCALE);
        assert_eq!(moov.mvhd.next_track_id, 2);
        let trex = &moov.mvex.as_ref().expect("mvex").trex;
        assert_eq!(trex.len(), 1);
        assert_eq!(trex[0].track_id, TRACK_ID);
        assert_eq!(trex[0].default_sample_description_index, 1);
        assert_eq!(trex[0].default_sample_flags, NON_SYNC_SAMPLE_FLAGS);

        assert_eq!(moov.trak.len(), 1);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, TRACK_ID);
        assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
        assert_eq!(trak.tkhd.width.integer(), 640);
        assert_eq!(trak.tkhd.height.integer(), 480);
        assert_eq!(trak.mdia.mdhd.timescale, TIMESCALE);
        assert_eq!(trak.mdia.mdhd.language, "und");
        assert_eq!(trak.mdia.hdlr.handler, FourCC::new(b"vide"));

        let minf = &trak.mdia.minf;
        assert!(minf.vmhd.is_some());
        assert_eq!(minf.dinf.dref.entries, vec![Url::default().into()]);
        let stbl = &minf.stbl;
        assert!(stbl.stts.entries.is_empty());
        assert!(stbl.stsc.entries.is_empty());
        assert_eq!(stbl.stsz.samples, StszSamples::Different { sizes: vec![] });
        assert_eq!(stbl.stco.as_ref().map(|s| s.entries.len()), Some(0));

        assert_eq!(stbl.stsd.codecs.len(), 1);
        let Codec::Avc1(avc1) = &stbl.stsd.codecs[0] else {
            panic!("sample entry is not avc1: {:?}", stbl.stsd.codecs[0]);
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (640, 480));
        assert_eq!(avc1.visual.data_reference_index, 1);
        let avcc = &avc1.avcc;
        assert_eq!(avcc.avc_profile_indication, 0x42);
        assert_eq!(avcc.profile_compatibility, 0xc0);
        assert_eq!(avcc.avc_level_indication, 0x1e);
        assert_eq!(avcc.length_size, 4);
        assert_eq!(avcc.sequence_parameter_sets, vec![SPS_640X480.to_vec()]);
        assert_eq!(avcc.picture_parameter_sets, vec![PPS.to_vec()]);

        assert_eq!(moov, super::moov(&track).unwrap(), "moov lost something");
    }

    #[test]
    fn init_segment_boxes_are_in_conventional_order() {
        let init = init_segment(&track()).unwrap();
        assert_eq!(kinds(&init), ["ftyp", "moov"]);
        let moov = child(&init, b"moov");
        assert_eq!(kinds(moov), ["mvhd", "trak", "mvex"]);
        let trak = child(moov, b"trak");
        assert_eq!(kinds(trak), ["tkhd", "mdia"]);
        let mdia = child(trak, b"mdia");
        assert_eq!(kinds(mdia), ["mdhd", "hdlr", "minf"]);
        let minf = child(mdia, b"minf");
        assert_eq!(kinds(minf), ["vmhd", "dinf", "stbl"]);
        assert_eq!(
            kinds(child(minf, b"stbl")),
            ["stsd", "stts", "stsc", "stsz", "stco"]
        );
    }

    #[test]
    fn init_segment_refuses_a_track_that_does_not_fit() {
        let mut wide = track();
        wide.width = 70_000;
        let err = init_segment(&wide).unwrap_err();
        assert!(err.to_string().contains("width"), "{err}");
        let mut no_sps = track();
        no_sps.sps = Bytes::new();
        assert!(init_segment(&no_sps).is_err());
    }

    /// Decodes a fragment with mp4-atom (strict) and checks what every fragment must satisfy.
    fn decode_fragment(chunk: &[u8], samples: &[Sample]) -> Moof {
        let mut buf = chunk;
        let moof = Moof::decode(&mut buf).expect("moof (strict)");
        let moof_len = chunk.len() - buf.len();
        let mdat = Mdat::decode(&mut buf).expect("mdat");
        assert!(buf.is_empty());

        let concatenated: Vec<u8> = samples.iter().flat_map(|s| s.data.to_vec()).collect();
        assert_eq!(mdat.data, concatenated);

        assert_eq!(moof.traf.len(), 1);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, TRACK_ID);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        assert_eq!(
            traf.tfdt.as_ref().map(|t| t.base_media_decode_time),
            Some(samples[0].decode_time)
        );
        assert_eq!(traf.trun.len(), 1);
        let trun = &traf.trun[0];
        let offset = usize::try_from(trun.data_offset.expect("data_offset")).unwrap();
        assert_eq!(
            offset,
            moof_len + 8,
            "data_offset must point past the mdat header"
        );
        assert_eq!(&chunk[offset..], &concatenated[..]);

        let entries: Vec<TrunEntry> = trun.samples.iter().collect();
        assert_eq!(entries.len(), samples.len());
        for (entry, sample) in entries.iter().zip(samples) {
            assert_eq!(entry.duration, Some(sample.duration));
            assert_eq!(entry.size, Some(sample.data.len() as u32));
            let flags = entry.flags.expect("sample flags");
            let non_sync = flags & 0x0001_0000 != 0;
            let depends_on = (flags >> 24) & 0b11;
            assert_eq!(non_sync, !sample.keyframe, "flags {flags:#010x}");
            assert_eq!(depends_on, if sample.keyframe { 2 } else { 1 });
            assert_eq!(entry.cts, None);
        }
        moof
    }

    #[test]
    fn fragments_of_one_and_three_samples_decode_back() {
        let mut writer = FragmentWriter::new();
        assert_eq!(writer.next_sequence_number(), 1);

        let one = [sample(90_000, true, 500)];
        let chunk = writer.fragment(&one).unwrap();
        assert_eq!(decode_fragment(&chunk, &one).mfhd.sequence_number, 1);

        let three = [
            sample(93_000, false, 120),
            sample(96_000, false, 90),
            sample(99_000, true, 700),
        ];
        let chunk = writer.fragment(&three).unwrap();
        assert_eq!(decode_fragment(&chunk, &three).mfhd.sequence_number, 2);

        // A single non-keyframe, decode time beyond 32 bits (tfdt version 1).
        let late = [sample(u64::from(u32::MAX) * 3, false, 64)];
        let chunk = writer.fragment(&late).unwrap();
        assert_eq!(decode_fragment(&chunk, &late).mfhd.sequence_number, 3);
        assert_eq!(writer.next_sequence_number(), 4);
    }

    #[test]
    fn fragment_refuses_what_it_cannot_describe() {
        let mut writer = FragmentWriter::new();
        assert!(matches!(writer.fragment(&[]), Err(CmafError::NoSamples)));

        let gap = [sample(0, true, 10), sample(6000, false, 10)];
        assert!(matches!(
            writer.fragment(&gap),
            Err(CmafError::NotContiguous {
                index: 1,
                expected: 3000,
                actual: 6000
            })
        ));

        writer.fragment(&[sample(9000, true, 10)]).unwrap();
        let err = writer.fragment(&[sample(6000, false, 10)]).unwrap_err();
        assert!(
            matches!(
                err,
                CmafError::DecodeTimeWentBack {
                    previous: 9000,
                    decode_time: 6000,
                    sequence_number: 2
                }
            ),
            "{err}"
        );
        // Refusals do not consume sequence numbers; a gap in time is fine.
        assert_eq!(writer.next_sequence_number(), 2);
        writer.fragment(&[sample(30_000, false, 10)]).unwrap();
    }

    #[test]
    fn sample_from_access_unit_is_avcc_without_parameter_sets() {
        let aud: &[u8] = &[0x09, 0xf0];
        let sei: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
        let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
        let au = AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals: [aud, SPS_640X480, PPS, sei, idr]
                .into_iter()
                .map(Bytes::from_static)
                .collect(),
            pts: 123_456,
            keyframe: true,
            capture: None,
        };
        let sample = sample_from_access_unit(&au, 3000).unwrap();
        let mut expected = vec![0, 0, 0, 5];
        expected.extend_from_slice(sei);
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(idr);
        assert_eq!(&sample.data[..], &expected[..]);
        assert_eq!(sample.decode_time, 123_456);
        assert_eq!(sample.duration, 3000);
        assert!(sample.keyframe);

        let slice: &[u8] = &[0x41, 0x9a, 0x02];
        let delta = AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals: vec![Bytes::from_static(slice), Bytes::new()],
            pts: 126_456,
            keyframe: false,
            capture: None,
        };
        let sample = sample_from_access_unit(&delta, 3000).unwrap();
        assert_eq!(&sample.data[..], &[0, 0, 0, 3, 0x41, 0x9a, 0x02][..]);
        assert!(!sample.keyframe);

        let no_picture = AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals: vec![Bytes::from_static(aud), Bytes::from_static(SPS_640X480)],
            ..delta
        };
        let err = sample_from_access_unit(&no_picture, 3000).unwrap_err();
        assert!(
            matches!(err, CmafError::NoPicture { pts: 126_456, .. }),
            "{err}"
        );
    }

    /// Runs a tool the test needs with whitespace-separated `args` (and a final path argument);
    /// returns its stdout. CI installs ffmpeg, so its absence is a failure, not a skip.
    fn run(program: &str, args: &str, path: Option<&str>) -> Vec<u8> {
        let args: Vec<&str> = args.split_whitespace().chain(path).collect();
        let output = Command::new(program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {program} ({e}): install ffmpeg (it provides ffmpeg and ffprobe)"
                )
            });
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// Splits an Annex B stream into access units, assuming one slice per picture (the encoder
    /// is told `slices=1`): a picture ends at the next slice, or at the next AUD/SPS/PPS/SEI
    /// after a slice. 30 fps: pts steps of 3000 ticks.
    fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
        let mut units = Vec::new();
        let mut nals: Vec<Bytes> = Vec::new();
        let mut has_slice = false;
        let mut finish = |nals: &mut Vec<Bytes>| {
            let keyframe = nals
                .iter()
                .any(|n| h264::nal_unit_type(n) == Some(nal_type::IDR));
            let pts = units.len() as u64 * 3000;
            units.push(AccessUnit {
                codec: livefeed_media::VideoCodec::H264,
                nals: std::mem::take(nals),
                pts,
                keyframe,
                capture: None,
            });
        };
        for nal in split_annex_b(stream) {
            let prefix = matches!(h264::nal_unit_type(nal), Some(6..=9));
            if has_slice && (h264::is_vcl(nal) || prefix) {
                finish(&mut nals);
                has_slice = false;
            }
            has_slice |= h264::is_vcl(nal);
            nals.push(Bytes::copy_from_slice(nal));
        }
        if has_slice {
            finish(&mut nals);
        }
        units
    }

    #[test]
    fn ffprobe_decodes_init_and_60_chunks_of_x264_output() {
        let annex_b = run(
            "ffmpeg",
            "-hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=30 -frames:v 60 \
             -c:v libx264 -profile:v baseline -g 30 -x264-params slices=1 \
             -bsf:v h264_mp4toannexb -f h264 -",
            None,
        );
        let units = access_units(&annex_b);
        assert_eq!(units.len(), 60, "access units split from ffmpeg's output");
        let keyframes: Vec<usize> = (0..60).filter(|&i| units[i].keyframe).collect();
        assert_eq!(keyframes, [0, 30]);

        let track = VideoTrack::from_access_unit(&units[0])
            .unwrap()
            .expect("SPS and PPS in the first access unit");
        assert_eq!((track.width, track.height), (320, 240));
        assert!(
            track.codec_string().starts_with("avc1.42"),
            "{}",
            track.codec_string()
        );

        let mut file = init_segment(&track).unwrap().to_vec();
        let mut writer = FragmentWriter::new();
        for (i, au) in units.iter().enumerate() {
            let sample = sample_from_access_unit(au, 3000).unwrap();
            let chunk = writer.fragment(std::slice::from_ref(&sample)).unwrap();
            if i == 0 {
                // x264 writes its version in an SEI: SEI must survive into the mdat.
                let x264 = chunk.windows(4).any(|w| w == b"x264");
                assert!(x264, "x264's SEI is missing from the first chunk");
            }
            file.extend_from_slice(&chunk);
        }

        let path =
            std::env::temp_dir().join(format!("livefeed-cmaf-ffprobe-{}.mp4", std::process::id()));
        std::fs::write(&path, &file).expect("write temp file");
        let path_str = path.to_str().expect("utf-8 temp path");
        let stream = run(
            "ffprobe",
            "-v error -count_frames -select_streams v:0 \
             -show_entries stream=nb_read_frames,codec_name,width,height -of csv=p=0",
            Some(path_str),
        );
        let packets = run(
            "ffprobe",
            "-v error -select_streams v:0 -show_entries packet=pts,dts,flags -of csv=p=0",
            Some(path_str),
        );
        std::fs::remove_file(&path).ok();

        let stream = String::from_utf8(stream).unwrap();
        assert_eq!(stream.trim(), "h264,320,240,60");
        let packets = String::from_utf8(packets).unwrap();
        let lines: Vec<&str> = packets.lines().collect();
        assert_eq!(lines.len(), 60, "{packets}");
        for (i, line) in lines.iter().enumerate() {
            // pts,dts,flags where flags is "K_" (ffmpeg 5) or "K__" (ffmpeg 6+) for keyframes.
            let fields: Vec<&str> = line.split(',').collect();
            let pts = (i * 3000).to_string();
            assert_eq!(
                fields[..2],
                [pts.as_str(), pts.as_str()],
                "packet {i}: {line}"
            );
            let keyframe = fields[2].starts_with('K');
            assert_eq!(keyframe, i % 30 == 0, "packet {i}: {line}");
        }
    }
}
