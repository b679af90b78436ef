//! AAC over RTP as MPEG4-GENERIC (RFC 3640, modes AAC-hbr and AAC-lbr): the stream's
//! configuration from its `fmtp`, and the depacketizer that turns RTP payloads into raw AAC
//! frames (access units) with their timestamps.
//!
//! Contract:
//! - [`AacConfig::from_fmtp`] reads `mode`, `sizeLength`, `indexLength`, `indexDeltaLength` and
//!   `config` (the hex AudioSpecificConfig), and refuses what it cannot depacketize.
//! - [`AacDepacketizer::push`] takes one RTP payload with its (extended) timestamp and marker
//!   and returns the whole frames it completes: several per packet (AU headers), or one
//!   reassembled from fragments (a frame larger than a packet, sent with the marker on its
//!   last fragment). Frame `n` of a packet is at `timestamp + n * frame_length`. A malformed
//!   payload is an error and drops only itself (and any fragment in progress).

use bytes::{Bytes, BytesMut};

/// Samples per AAC frame unless the config says 960.
pub const FRAME_LENGTH: u32 = 1024;
/// Largest AAC frame accepted (6144 bits per channel, 8 channels).
pub const MAX_FRAME_LEN: usize = 6144;
/// Most frames one RTP payload may carry (RFC 3640 senders put a handful).
pub const MAX_FRAMES_PER_PACKET: usize = 64;
/// Sampling rates accepted: the standard table's (an explicit rate must be within them too).
pub const MIN_SAMPLE_RATE: u32 = 7_350;
/// See [`MIN_SAMPLE_RATE`].
pub const MAX_SAMPLE_RATE: u32 = 96_000;

/// Why an AAC stream or payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AacError {
    /// The fmtp lacks a parameter RFC 3640 needs.
    #[error("MPEG4-GENERIC fmtp has no {0}")]
    Missing(&'static str),
    /// A parameter has a value livefeed does not handle.
    #[error("MPEG4-GENERIC fmtp: unsupported {name}={value}")]
    Unsupported {
        /// Parameter name.
        name: &'static str,
        /// Its value (cut to 32 characters).
        value: String,
    },
    /// The AudioSpecificConfig cannot be read.
    #[error("AAC AudioSpecificConfig {0}")]
    BadConfig(&'static str),
    /// The payload is shorter than its AU headers say.
    #[error("AAC RTP payload truncated: {0}")]
    Truncated(&'static str),
    /// A frame larger than [`MAX_FRAME_LEN`].
    #[error("AAC frame of {0} bytes is larger than {MAX_FRAME_LEN}")]
    FrameTooLarge(usize),
}

/// What the SDP says about an AAC stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The AudioSpecificConfig (for the MP4 `esds`).
    pub audio_specific_config: Bytes,
    /// audioObjectType (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// channelConfiguration (1 = mono, 2 = stereo, …; 0 = defined in-band).
    pub channels: u8,
    /// Samples per frame (1024 or 960).
    pub frame_length: u32,
    size_length: u8,
    index_length: u8,
    index_delta_length: u8,
}

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// The sampling frequency index (ISO 14496-3) of `rate`, for a standard rate.
pub fn sampling_frequency_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|r| *r == rate)
        .map(|i| i as u8)
}

impl AacConfig {
    /// Reads an MPEG4-GENERIC `fmtp` value (without the payload type).
    pub fn from_fmtp(fmtp: &str) -> Result<Self, AacError> {
        let mut mode = None;
        let mut config = None;
        let (mut size, mut index, mut delta) = (None, None, None);
        for param in fmtp.split(';') {
            let Some((key, value)) = param.trim().split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "mode" => mode = Some(value.to_string()),
                "config" => config = Some(value.to_string()),
                "sizelength" => size = Some(small_number("sizeLength", value)?),
                "indexlength" => index = Some(small_number("indexLength", value)?),
                "indexdeltalength" => delta = Some(small_number("indexDeltaLength", value)?),
                _ => {}
            }
        }
        let mode = mode.ok_or(AacError::Missing("mode"))?;
        if !mode.eq_ignore_ascii_case("AAC-hbr") && !mode.eq_ignore_ascii_case("AAC-lbr") {
            return Err(unsupported("mode", &mode));
        }
        let size_length = size.ok_or(AacError::Missing("sizeLength"))?;
        // AAC-lbr uses 6 bits, AAC-hbr 13: shorter sizes would let a few header bits name
        // many empty frames.
        if !(6..=16).contains(&size_length) {
            return Err(unsupported("sizeLength", &size_length.to_string()));
        }
        let config = config.ok_or(AacError::Missing("config"))?;
        let asc = decode_hex(&config).ok_or_else(|| unsupported("config", &config))?;
        let mut parsed = Self::from_audio_specific_config(Bytes::from(asc))?;
        parsed.size_length = size_length;
        parsed.index_length = index.unwrap_or(0);
        parsed.index_delta_length = delta.unwrap_or(0);
        if parsed.index_length > 8 || parsed.index_delta_length > 8 {
            return Err(unsupported("indexLength", &parsed.index_length.to_string()));
        }
        Ok(parsed)
    }

    /// Reads an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1): object type, sampling rate,
    /// channels and frame length.
    pub fn from_audio_specific_config(asc: Bytes) -> Result<Self, AacError> {
        let mut bits = BitReader::new(&asc);
        let mut object_type = bits.read(5).ok_or(AacError::BadConfig("is empty"))? as u8;
        if object_type == 31 {
            object_type = 32 + bits.read(6).ok_or(AacError::BadConfig("is truncated"))? as u8;
        }
        let index = bits.read(4).ok_or(AacError::BadConfig("is truncated"))?;
        let sample_rate = match index {
            15 => bits.read(24).ok_or(AacError::BadConfig("is truncated"))?,
            i => *SAMPLE_RATES.get(i as usize).ok_or(AacError::BadConfig(
                "has a reserved sampling frequency index",
            ))?,
        };
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            return Err(AacError::BadConfig(
                "has a sampling rate outside 7350..=96000 Hz",
            ));
        }
        let channels = bits.read(4).ok_or(AacError::BadConfig("is truncated"))? as u8;
        // GASpecificConfig's frameLengthFlag, for the object types that have one.
        let short = matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23) && bits.read(1) == Some(1);
        Ok(AacConfig {
            audio_specific_config: asc,
            object_type,
            sample_rate,
            channels,
            frame_length: if short { 960 } else { FRAME_LENGTH },
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        })
    }

    /// The RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

fn small_number(name: &'static str, value: &str) -> Result<u8, AacError> {
    value.parse::<u8>().map_err(|_| unsupported(name, value))
}

pub(crate) fn unsupported(name: &'static str, value: &str) -> AacError {
    AacError::Unsupported {
        name,
        value: value.chars().take(32).collect(),
    }
}

/// Bytes of a hex string of at most 128 digits.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads bits most significant first.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&self, pos: usize) -> Option<u8> {
        Some((*self.data.get(pos / 8)? >> (7 - pos % 8)) & 1)
    }

    /// The next `n` (≤ 32) bits, or `None` past the end.
    pub(crate) fn read(&mut self, n: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..n {
            value = (value << 1) | u32::from(self.bit(self.pos)?);
            self.pos += 1;
        }
        Some(value)
    }

    /// How many bits have been read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bits `start..end` as bytes, the last one padded with zeros.
    pub(crate) fn copy(&self, start: usize, end: usize) -> Vec<u8> {
        let mut out = vec![0u8; end.saturating_sub(start).div_ceil(8)];
        for (i, pos) in (start..end).enumerate() {
            out[i / 8] |= self.bit(pos).unwrap_or(0) << (7 - i % 8);
        }
        out
    }
}

/// One raw AAC frame and its timestamp (the track's clock, as pushed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFrame {
    /// The raw frame (no ADTS header).
    pub data: Bytes,
    /// Its timestamp.
    pub timestamp: u64,
}

/// Turns RFC 3640 payloads into AAC frames.
#[derive(Debug)]
pub struct AacDepacketizer {
    config: AacConfig,
    /// A frame being reassembled from fragments: its expected size, timestamp and bytes.
    fragment: Option<(usize, u64, BytesMut)>,
}

impl AacDepacketizer {
    /// A depacketizer for a stream described by `config`.
    pub fn new(config: AacConfig) -> Self {
        AacDepacketizer {
            config,
            fragment: None,
        }
    }

    /// The stream's configuration.
    pub fn config(&self) -> &AacConfig {
        &self.config
    }

    /// The frames `payload` completes (see the module docs).
    pub fn push(
        &mut self,
        payload: &[u8],
        timestamp: u64,
        marker: bool,
    ) -> Result<Vec<AacFrame>, AacError> {
        let result = self.read(payload, timestamp, marker);
        if result.is_err() {
            self.fragment = None;
        }
        result
    }

    fn read(
        &mut self,
        payload: &[u8],
        timestamp: u64,
        marker: bool,
    ) -> Result<Vec<AacFrame>, AacError> {
        let headers_bits = payload
            .get(..2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(AacError::Truncated("no AU-headers-length"))?;
        let headers_len = headers_bits.div_ceil(8);
        let headers = payload
            .get(2..2 + headers_len)
            .ok_or(AacError::Truncated("AU headers run past the payload"))?;
        let mut data = &payload[2 + headers_len..];
        let sizes = self.au_sizes(headers, headers_bits)?;
        // A fragment in progress continues only with the same timestamp (its last piece may be
        // lost).
        let continued = self.fragment.take().filter(|(_, ts, _)| *ts == timestamp);
        if let Some((expected, ts, mut buf)) = continued {
            // A continuation: one AU header naming the whole frame, data = the next piece.
            buf.extend_from_slice(data);
            if buf.len() > expected {
                return Err(AacError::Truncated("fragments longer than their frame"));
            }
            if buf.len() < expected && !marker {
                self.fragment = Some((expected, ts, buf));
                return Ok(Vec::new());
            }
            if buf.len() < expected {
                return Err(AacError::Truncated("last fragment leaves the frame short"));
            }
            return Ok(vec![AacFrame {
                data: buf.freeze(),
                timestamp: ts,
            }]);
        }
        let mut frames = Vec::with_capacity(sizes.len());
        for (i, size) in sizes.iter().copied().enumerate() {
            if size > MAX_FRAME_LEN {
                return Err(AacError::FrameTooLarge(size));
            }
            let ts = timestamp.saturating_add(i as u64 * u64::from(self.config.frame_length));
            if size == 0 {
                return Err(AacError::Truncated("an AU header names an empty frame"));
            }
            if size > data.len() {
                if sizes.len() == 1 && !marker {
                    let mut buf = BytesMut::with_capacity(size);
                    buf.extend_from_slice(data);
                    self.fragment = Some((size, ts, buf));
                    return Ok(frames);
                }
                return Err(AacError::Truncated(
                    "frame data shorter than its AU header says",
                ));
            }
            frames.push(AacFrame {
                data: Bytes::copy_from_slice(&data[..size]),
                timestamp: ts,
            });
            data = &data[size..];
        }
        Ok(frames)
    }

    /// The AU sizes of the AU-header section (`bits` long).
    fn au_sizes(&self, headers: &[u8], bits: usize) -> Result<Vec<usize>, AacError> {
        let c = &self.config;
        let first = usize::from(c.size_length + c.index_length);
        let next = usize::from(c.size_length + c.index_delta_length);
        let mut reader = BitReader::new(headers);
        let mut used = 0;
        let mut sizes = Vec::new();
        while used < bits {
            let header_len = if sizes.is_empty() { first } else { next };
            if used + header_len > bits {
                return Err(AacError::Truncated("partial AU header"));
            }
            let size = reader
                .read(u32::from(c.size_length))
                .ok_or(AacError::Truncated("AU header"))?;
            reader.read((header_len - usize::from(c.size_length)) as u32);
            sizes.push(size as usize);
            used += header_len;
            if sizes.len() > MAX_FRAMES_PER_PACKET {
                return Err(AacError::Truncated(
                    "more AU headers than frames a packet may carry",
                ));
            }
        }
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_FMTP: &str =
        "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1190";

    fn payload(frames: &[&[u8]]) -> Vec<u8> {
        let bits = (frames.len() * 16) as u16;
        let mut out = bits.to_be_bytes().to_vec();
        for f in frames {
            let header = (f.len() as u16) << 3;
            out.extend_from_slice(&header.to_be_bytes());
        }
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn ffmpeg_fmtp_is_read() {
        let c = AacConfig::from_fmtp(FFMPEG_FMTP).expect("valid");
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48_000, 2));
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!(c.frame_length, 1024);
        let mono_44k = AacConfig::from_audio_specific_config(Bytes::from_static(&[0x12, 0x08]))
            .expect("valid");
        assert_eq!((mono_44k.sample_rate, mono_44k.channels), (44_100, 1));
    }

    #[test]
    fn unsupported_or_broken_fmtp_is_refused() {
        assert_eq!(
            AacConfig::from_fmtp("mode=AAC-hbr;sizelength=13"),
            Err(AacError::Missing("config"))
        );
        assert!(matches!(
            AacConfig::from_fmtp("mode=CELP-cbr;sizelength=6;config=1190"),
            Err(AacError::Unsupported { name: "mode", .. })
        ));
        assert!(AacConfig::from_fmtp("mode=AAC-hbr;sizelength=13;config=zz").is_err());
        assert!(AacConfig::from_fmtp("mode=AAC-hbr;sizelength=99;config=1190").is_err());
        assert!(AacConfig::from_audio_specific_config(Bytes::from_static(&[0x17, 0x80])).is_err());
    }

    #[test]
    fn several_frames_in_one_packet_get_consecutive_timestamps() {
        let mut d = AacDepacketizer::new(AacConfig::from_fmtp(FFMPEG_FMTP).expect("valid"));
        let frames = d
            .push(&payload(&[b"abc", b"de"]), 1000, true)
            .expect("valid");
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (&frames[0].data[..], frames[0].timestamp),
            (&b"abc"[..], 1000)
        );
        assert_eq!(
            (&frames[1].data[..], frames[1].timestamp),
            (&b"de"[..], 2024)
        );
    }

    #[test]
    fn a_fragmented_frame_is_reassembled() {
        let mut d = AacDepacketizer::new(AacConfig::from_fmtp(FFMPEG_FMTP).expect("valid"));
        let whole = vec![7u8; 10];
        let mut first = payload(&[&whole]);
        first.truncate(4 + 6);
        assert_eq!(d.push(&first, 5, false).expect("valid"), []);
        let mut second = payload(&[&whole]);
        second.truncate(4);
        second.extend_from_slice(&whole[6..]);
        let frames = d.push(&second, 5, true).expect("valid");
        assert_eq!(
            frames,
            [AacFrame {
                data: Bytes::from(whole),
                timestamp: 5
            }]
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut d = AacDepacketizer::new(AacConfig::from_fmtp(FFMPEG_FMTP).expect("valid"));
        assert!(d.push(&[], 0, true).is_err());
        assert!(d.push(&[0, 16, 0], 0, true).is_err(), "header past the end");
        assert!(d.push(&[0, 8, 0], 0, true).is_err(), "partial header");
        let mut short = payload(&[b"abcdef"]);
        short.truncate(6);
        assert!(
            d.push(&short, 0, true).is_err(),
            "marker set on a short frame"
        );
        let huge = [0x00, 0x10, 0xff, 0xf8];
        assert!(matches!(
            d.push(&huge, 0, false),
            Err(AacError::FrameTooLarge(8191))
        ));
    }

    #[test]
    fn header_floods_odd_rates_and_stale_fragments_are_refused() {
        assert!(
            AacConfig::from_fmtp("mode=AAC-hbr;sizelength=1;indexlength=0;config=1190").is_err()
        );
        // An explicit sampling rate of 1 Hz (index 15).
        let one_hz = [0x17, 0x80, 0x00, 0x00, 0x08];
        assert!(AacConfig::from_audio_specific_config(Bytes::copy_from_slice(&one_hz)).is_err());
        let mut d = AacDepacketizer::new(AacConfig::from_fmtp(FFMPEG_FMTP).expect("valid"));
        assert!(d.push(&payload(&[b""]), 0, true).is_err(), "an empty frame");
        let many: Vec<&[u8]> = vec![b"x"; MAX_FRAMES_PER_PACKET + 1];
        assert!(
            d.push(&payload(&many), 0, true).is_err(),
            "too many AU headers"
        );
        let whole = vec![7u8; 10];
        let mut first = payload(&[&whole]);
        first.truncate(4 + 6);
        assert_eq!(d.push(&first, 5, false).expect("valid"), []);
        // The last fragment was lost: the next packet (another timestamp) stands on its own.
        let frames = d.push(&payload(&[b"abc"]), 1029, true).expect("valid");
        assert_eq!(
            frames,
            [AacFrame {
                data: Bytes::from_static(b"abc"),
                timestamp: 1029
            }]
        );
    }
}
