//! FLV tag bodies as RTMP carries them (video and audio messages), sans-IO: H.264 (codec id 7)
//! and, as enhanced RTMP sends it, H.265 (FourCC `hvc1`); AAC audio (sound format 10).
//!
//! A sequence header gives the decoder configuration (SPS/PPS, or VPS/SPS/PPS, and the NAL
//! length size); coded frames are length-prefixed NAL units with a composition time offset.
//! Every length is checked against what is left, so a short or lying tag is an error, never a
//! panic or an over-read. The configuration records are read here rather than through
//! h264-reader's `avcc` (whose PPS accessor unwraps an offset it does not re-check).

use bytes::Bytes;

use crate::aac::AacConfig;
use crate::VideoCodec;

/// Why a tag cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The tag ends before a field it announces.
    #[error("FLV {0} is truncated")]
    Truncated(&'static str),
    /// A codec livefeed does not take.
    #[error("unsupported FLV {kind} {value}")]
    Unsupported {
        /// Video codec, FourCC, sound format, packet type.
        kind: &'static str,
        /// What was found.
        value: String,
    },
    /// A NAL length of 0, or a length size other than 1, 2 or 4.
    #[error("FLV NAL units: {0}")]
    BadNals(&'static str),
    /// The AudioSpecificConfig is not usable.
    #[error("AAC config: {0}")]
    BadAudioConfig(String),
}

/// A video tag's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// The decoder configuration.
    SequenceHeader(VideoConfig),
    /// One access unit, NAL units still length-prefixed (see [`split_nals`]).
    Frame {
        /// H.264 or H.265.
        codec: VideoCodec,
        /// A keyframe (FLV frame type 1).
        keyframe: bool,
        /// Presentation minus decode time, ms.
        composition_ms: i32,
        /// The length-prefixed NAL units.
        data: Bytes,
    },
    /// End of sequence, or a packet type without media (metadata, multitrack).
    Other,
}

/// A video decoder configuration from a sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// H.264 or H.265.
    pub codec: VideoCodec,
    /// The parameter sets (VPS, SPS, PPS), without start codes.
    pub parameter_sets: Vec<Bytes>,
    /// Bytes of each NAL length prefix (1, 2 or 4).
    pub nal_length_size: usize,
}

/// An audio tag's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// The AAC AudioSpecificConfig, read.
    AacConfig(AacConfig),
    /// One raw AAC frame.
    AacFrame(Bytes),
}

/// FLV video codec id of H.264.
const CODEC_AVC: u8 = 7;
/// Enhanced RTMP: the FourCC follows the first byte.
const EX_HEADER: u8 = 0x80;

/// Reads a video tag body.
pub fn parse_video_tag(data: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Truncated("video tag"))?;
    let frame_type = (first >> 4) & 0x07;
    if first & EX_HEADER != 0 {
        return parse_enhanced_video(first, frame_type, data);
    }
    let codec_id = first & 0x0f;
    if codec_id != CODEC_AVC {
        return Err(FlvError::Unsupported {
            kind: "video codec id",
            value: codec_id.to_string(),
        });
    }
    let header = data
        .get(1..5)
        .ok_or(FlvError::Truncated("AVC packet header"))?;
    let body = data.slice(5..);
    match header[0] {
        0 => Ok(VideoTag::SequenceHeader(avc_config(&body)?)),
        1 => Ok(VideoTag::Frame {
            codec: VideoCodec::H264,
            keyframe: frame_type == 1,
            composition_ms: si24(&header[1..4]),
            data: body,
        }),
        _ => Ok(VideoTag::Other),
    }
}

/// Enhanced RTMP (v1): packet type in the low bits, then a FourCC.
fn parse_enhanced_video(first: u8, frame_type: u8, data: &Bytes) -> Result<VideoTag, FlvError> {
    let packet_type = first & 0x0f;
    let fourcc = data.get(1..5).ok_or(FlvError::Truncated("FourCC"))?;
    if fourcc != b"hvc1" {
        return Err(FlvError::Unsupported {
            kind: "FourCC",
            value: String::from_utf8_lossy(fourcc).into_owned(),
        });
    }
    if frame_type == 5 {
        return Ok(VideoTag::Other); // a command frame, no media
    }
    match packet_type {
        0 => Ok(VideoTag::SequenceHeader(hevc_config(&data.slice(5..))?)),
        1 => {
            let cts = data
                .get(5..8)
                .ok_or(FlvError::Truncated("composition time"))?;
            Ok(VideoTag::Frame {
                codec: VideoCodec::H265,
                keyframe: frame_type == 1,
                composition_ms: si24(cts),
                data: data.slice(8..),
            })
        }
        3 => Ok(VideoTag::Frame {
            codec: VideoCodec::H265,
            keyframe: frame_type == 1,
            composition_ms: 0,
            data: data.slice(5..),
        }),
        _ => Ok(VideoTag::Other),
    }
}

/// A signed 24-bit big-endian number.
fn si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

/// A cursor over a configuration record.
struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, FlvError> {
        let v = *self.data.get(self.at).ok_or(FlvError::Truncated(what))?;
        self.at += 1;
        Ok(v)
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, FlvError> {
        Ok(usize::from(self.u8(what)?) << 8 | usize::from(self.u8(what)?))
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), FlvError> {
        if self.data.len() < self.at + n {
            return Err(FlvError::Truncated(what));
        }
        self.at += n;
        Ok(())
    }

    /// A 16-bit length and that many bytes.
    fn unit(&mut self, what: &'static str) -> Result<Bytes, FlvError> {
        let len = self.u16(what)?;
        if len == 0 {
            return Err(FlvError::BadNals("an empty parameter set"));
        }
        let start = self.at;
        self.skip(len, what)?;
        Ok(self.data.slice(start..start + len))
    }
}

fn length_size(byte: u8) -> Result<usize, FlvError> {
    match (byte & 0x03) + 1 {
        3 => Err(FlvError::BadNals("a 3-byte length size")),
        n => Ok(usize::from(n)),
    }
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
fn avc_config(data: &Bytes) -> Result<VideoConfig, FlvError> {
    let mut r = Reader { data, at: 0 };
    r.skip(4, "avcC header")?;
    let nal_length_size = length_size(r.u8("avcC length size")?)?;
    let mut parameter_sets = Vec::new();
    let sps = r.u8("avcC SPS count")? & 0x1f;
    for _ in 0..sps {
        parameter_sets.push(r.unit("avcC SPS")?);
    }
    let pps = r.u8("avcC PPS count")?;
    for _ in 0..pps {
        parameter_sets.push(r.unit("avcC PPS")?);
    }
    Ok(VideoConfig {
        codec: VideoCodec::H264,
        parameter_sets,
        nal_length_size,
    })
}

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1).
fn hevc_config(data: &Bytes) -> Result<VideoConfig, FlvError> {
    let mut r = Reader { data, at: 0 };
    r.skip(21, "hvcC header")?;
    let nal_length_size = length_size(r.u8("hvcC length size")?)?;
    let arrays = r.u8("hvcC array count")?;
    let mut parameter_sets = Vec::new();
    for _ in 0..arrays {
        r.u8("hvcC array type")?;
        let count = r.u16("hvcC NAL count")?;
        for _ in 0..count {
            parameter_sets.push(r.unit("hvcC NAL unit")?);
        }
    }
    Ok(VideoConfig {
        codec: VideoCodec::H265,
        parameter_sets,
        nal_length_size,
    })
}

/// Splits length-prefixed NAL units (`length_size` bytes each, big-endian); at most `max`.
pub fn split_nals(data: &Bytes, length_size: usize, max: usize) -> Result<Vec<Bytes>, FlvError> {
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(FlvError::BadNals("a length size other than 1, 2 or 4"));
    }
    let mut nals = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let prefix = data
            .get(at..at + length_size)
            .ok_or(FlvError::Truncated("NAL length"))?;
        let len = prefix.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
        at += length_size;
        if len == 0 {
            return Err(FlvError::BadNals("a NAL length of 0"));
        }
        if data.len() - at < len {
            return Err(FlvError::Truncated("NAL unit"));
        }
        if nals.len() == max {
            return Err(FlvError::BadNals(
                "more NAL units than allowed in one frame",
            ));
        }
        nals.push(data.slice(at..at + len));
        at += len;
    }
    Ok(nals)
}

/// FLV sound format of AAC.
const SOUND_AAC: u8 = 10;

/// Reads an audio tag body.
pub fn parse_audio_tag(data: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Truncated("audio tag"))?;
    let format = first >> 4;
    if format != SOUND_AAC {
        return Err(FlvError::Unsupported {
            kind: "sound format",
            value: format.to_string(),
        });
    }
    let packet_type = *data.get(1).ok_or(FlvError::Truncated("AAC packet type"))?;
    let body = data.slice(2..);
    match packet_type {
        0 => AacConfig::from_audio_specific_config(body)
            .map(AudioTag::AacConfig)
            .map_err(|e| FlvError::BadAudioConfig(e.to_string())),
        1 => Ok(AudioTag::AacFrame(body)),
        other => Err(FlvError::Unsupported {
            kind: "AAC packet type",
            value: other.to_string(),
        }),
    }
}

/// The video tag body of an H.264 sequence header (an AVCDecoderConfigurationRecord with one
/// SPS and one PPS, 4-byte NAL lengths). `None` when the SPS is too short to name its profile
/// or a set is over 65535 bytes.
pub fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Option<Bytes> {
    let profile = sps.get(1..4)?;
    let (sps_len, pps_len) = (
        u16::try_from(sps.len()).ok()?,
        u16::try_from(pps.len()).ok()?,
    );
    let mut tag = vec![0x17, 0, 0, 0, 0, 1];
    tag.extend(profile);
    tag.extend([0xff, 0xe1]);
    tag.extend(sps_len.to_be_bytes());
    tag.extend(sps);
    tag.push(1);
    tag.extend(pps_len.to_be_bytes());
    tag.extend(pps);
    Some(Bytes::from(tag))
}

/// The video tag body of one H.264 access unit (composition time 0: the frames are sent in
/// presentation order), NAL units with 4-byte lengths.
pub fn avc_frame(nals: &[Bytes], keyframe: bool) -> Bytes {
    let size: usize = nals.iter().map(|n| n.len() + 4).sum();
    let mut tag = Vec::with_capacity(5 + size);
    tag.extend([if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
    for nal in nals {
        tag.extend((nal.len() as u32).to_be_bytes());
        tag.extend(nal.iter());
    }
    Bytes::from(tag)
}

/// The first byte of an AAC audio tag: AAC, 44 kHz, 16-bit, stereo (as FLV always says for
/// AAC; the AudioSpecificConfig tells the truth).
const AAC_TAG: u8 = 0xaf;

/// The audio tag body of an AAC sequence header.
pub fn aac_sequence_header(audio_specific_config: &[u8]) -> Bytes {
    let mut tag = vec![AAC_TAG, 0];
    tag.extend(audio_specific_config);
    Bytes::from(tag)
}

/// The audio tag body of one raw AAC frame.
pub fn aac_frame(frame: &[u8]) -> Bytes {
    let mut tag = Vec::with_capacity(2 + frame.len());
    tag.extend([AAC_TAG, 1]);
    tag.extend(frame);
    Bytes::from(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_sequence_header() -> Bytes {
        let mut tag = vec![0x17, 0, 0, 0, 0]; // keyframe, AVC, sequence header, cts 0
        tag.extend([
            1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e,
        ]);
        tag.extend([1, 0, 3, 0x68, 0xce, 0x3c]);
        Bytes::from(tag)
    }

    #[test]
    fn an_avc_sequence_header_gives_sps_pps_and_the_length_size() {
        let VideoTag::SequenceHeader(config) = parse_video_tag(&sample_sequence_header()).unwrap()
        else {
            panic!("not a sequence header");
        };
        assert_eq!(config.codec, VideoCodec::H264);
        assert_eq!(config.nal_length_size, 4);
        assert_eq!(config.parameter_sets.len(), 2);
        assert_eq!(&config.parameter_sets[1][..], &[0x68, 0xce, 0x3c]);
    }

    #[test]
    fn a_frame_keeps_its_composition_time_and_splits_into_nals() {
        let tag = Bytes::from_static(&[
            0x27, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 2, 0x41, 0x9a, 0, 0, 0, 1, 0x06,
        ]);
        let VideoTag::Frame {
            keyframe,
            composition_ms,
            data,
            ..
        } = parse_video_tag(&tag).unwrap()
        else {
            panic!("not a frame");
        };
        assert!(!keyframe);
        assert_eq!(composition_ms, -33);
        let nals = split_nals(&data, 4, 16).unwrap();
        assert_eq!(nals.len(), 2);
        assert_eq!(&nals[0][..], &[0x41, 0x9a]);
    }

    #[test]
    fn short_or_lying_tags_are_errors() {
        let full = sample_sequence_header();
        for cut in 0..full.len() {
            let part = full.slice(..cut);
            assert!(parse_video_tag(&part).is_err(), "cut at {cut}");
        }
        let lying = Bytes::from_static(&[0, 0, 0, 9, 0x41]);
        assert_eq!(
            split_nals(&lying, 4, 16),
            Err(FlvError::Truncated("NAL unit"))
        );
        assert!(split_nals(&Bytes::from_static(&[0, 0, 0, 0]), 4, 16).is_err());
        assert!(split_nals(&Bytes::from_static(&[0, 1, 9, 0, 1, 9]), 2, 1).is_err());
        assert!(
            parse_video_tag(&Bytes::from_static(&[0x12, 0, 0])).is_err(),
            "Sorenson"
        );
        assert!(
            parse_audio_tag(&Bytes::from_static(&[0x2f, 0])).is_err(),
            "MP3"
        );
    }

    #[test]
    fn enhanced_hevc_frames_are_read() {
        let mut header = vec![0x90, b'h', b'v', b'c', b'1'];
        header.extend([0u8; 21]);
        header.extend([0x0f, 1, 0x20, 0, 1, 0, 2, 0x40, 0x01]);
        let VideoTag::SequenceHeader(config) = parse_video_tag(&Bytes::from(header)).unwrap()
        else {
            panic!("not a sequence header");
        };
        assert_eq!(config.codec, VideoCodec::H265);
        assert_eq!(config.parameter_sets, [Bytes::from_static(&[0x40, 0x01])]);
        let frame = Bytes::from_static(&[0x93, b'h', b'v', b'c', b'1', 0, 0, 0, 2, 0x26, 0x01]);
        let VideoTag::Frame {
            codec, keyframe, ..
        } = parse_video_tag(&frame).unwrap()
        else {
            panic!("not a frame");
        };
        assert_eq!((codec, keyframe), (VideoCodec::H265, true));
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1']);
        assert!(parse_video_tag(&av1).is_err());
    }

    #[test]
    fn written_tags_read_back() {
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0xd9];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let header = avc_sequence_header(&sps, &pps).expect("a header");
        let VideoTag::SequenceHeader(config) = parse_video_tag(&header).unwrap() else {
            panic!("not a sequence header");
        };
        assert_eq!(config.parameter_sets, [&sps[..], &pps[..]]);
        let nals = [
            Bytes::from_static(&[0x65, 1, 2]),
            Bytes::from_static(&[0x06, 5]),
        ];
        let VideoTag::Frame { keyframe, data, .. } =
            parse_video_tag(&avc_frame(&nals, true)).unwrap()
        else {
            panic!("not a frame");
        };
        assert!(keyframe);
        assert_eq!(split_nals(&data, 4, 8).unwrap(), nals);
        let AudioTag::AacConfig(c) = parse_audio_tag(&aac_sequence_header(&[0x11, 0x90])).unwrap()
        else {
            panic!("not a config");
        };
        assert_eq!(c.sample_rate, 48_000);
        assert_eq!(
            parse_audio_tag(&aac_frame(&[7, 8])).unwrap(),
            AudioTag::AacFrame(Bytes::from_static(&[7, 8]))
        );
        assert!(avc_sequence_header(&[0x67], &pps).is_none());
    }

    #[test]
    fn aac_config_and_frames_are_told_apart() {
        let config = Bytes::from_static(&[0xaf, 0, 0x11, 0x90]); // AAC-LC, 48 kHz, stereo
        let AudioTag::AacConfig(c) = parse_audio_tag(&config).unwrap() else {
            panic!("not a config");
        };
        assert_eq!((c.sample_rate, c.channels), (48_000, 2));
        let frame = Bytes::from_static(&[0xaf, 1, 0x21, 0x10]);
        assert_eq!(
            parse_audio_tag(&frame).unwrap(),
            AudioTag::AacFrame(Bytes::from_static(&[0x21, 0x10]))
        );
    }
}
