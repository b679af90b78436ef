//! AAC over RTP as MP4A-LATM (RFC 6416) with the configuration out of band (`cpresent=0`), as
//! ffmpeg (`-rtpflags latm`), GStreamer's `rtpmp4apay` and many IP cameras send it.
//!
//! Contract:
//! - [`config_from_fmtp`] reads the hex StreamMuxConfig of the `fmtp`'s `config` and returns the
//!   stream's [`AacConfig`] (its AudioSpecificConfig cut out of the StreamMuxConfig's bits). It
//!   takes what one-program, one-layer AAC senders write: audioMuxVersion 0, all streams with
//!   the same time framing, one subframe, frameLengthType 0, no other data; anything else (and
//!   `cpresent=1`, the configuration in band) is refused with the reason. A missing `cpresent`
//!   is read as 0 when a `config` is given, as ffmpeg reads it (RFC 6416's default is 1).
//! - [`LatmDepacketizer::push`] takes one RTP payload with its (extended) timestamp and marker
//!   and returns the raw AAC frames it completes: each AudioMuxElement is a PayloadLengthInfo
//!   (bytes summed up to the first that is not 255) and that many bytes of frame. A payload may
//!   hold several elements (frame `n` at `timestamp` plus `n` frame lengths, in the RTP clock
//!   rate, which may differ from the sampling rate), or one element may be
//!   split across payloads of the same timestamp, the last with the marker. A malformed payload
//!   is an error and drops only itself (and any element in progress).

use bytes::{Bytes, BytesMut};

use crate::aac::{decode_hex, unsupported, BitReader};
use crate::aac::{AacConfig, AacError, AacFrame, MAX_FRAMES_PER_PACKET, MAX_FRAME_LEN};

/// The stream's configuration from an MP4A-LATM `fmtp` value (without the payload type).
pub fn config_from_fmtp(fmtp: &str) -> Result<AacConfig, AacError> {
    let mut config = None;
    let mut cpresent = None;
    for param in fmtp.split(';') {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "config" => config = Some(value.trim()),
            "cpresent" => cpresent = Some(value.trim()),
            _ => {}
        }
    }
    if let Some(value) = cpresent.filter(|v| *v != "0") {
        return Err(unsupported("cpresent", value));
    }
    let config = config.ok_or(AacError::Missing("config"))?;
    let bytes = decode_hex(config).ok_or_else(|| unsupported("config", config))?;
    let asc = audio_specific_config_of(&bytes)?;
    AacConfig::from_audio_specific_config(Bytes::from(asc))
}

/// The AudioSpecificConfig inside a StreamMuxConfig (ISO/IEC 14496-3 §1.7.3), as bytes.
fn audio_specific_config_of(stream_mux_config: &[u8]) -> Result<Vec<u8>, AacError> {
    let truncated = || AacError::BadConfig("(in the LATM StreamMuxConfig) is truncated");
    let mut bits = BitReader::new(stream_mux_config);
    let field = |bits: &mut BitReader, n: u32| bits.read(n).ok_or_else(truncated);
    let expect = |name: &'static str, value: u32, wanted: u32| {
        if value == wanted {
            Ok(())
        } else {
            Err(unsupported(name, &value.to_string()))
        }
    };
    expect("audioMuxVersion", field(&mut bits, 1)?, 0)?;
    expect("allStreamsSameTimeFraming", field(&mut bits, 1)?, 1)?;
    expect("numSubFrames", field(&mut bits, 6)?, 0)?;
    expect("numProgram", field(&mut bits, 4)?, 0)?;
    expect("numLayer", field(&mut bits, 3)?, 0)?;
    let start = bits.position();
    skip_audio_specific_config(&mut bits)?;
    let end = bits.position();
    expect("frameLengthType", field(&mut bits, 3)?, 0)?;
    field(&mut bits, 8)?; // latmBufferFullness
    expect("otherDataPresent", field(&mut bits, 1)?, 0)?;
    Ok(bits.copy(start, end))
}

/// Reads past an AudioSpecificConfig of an AAC object type with a GASpecificConfig (Main, LC,
/// SSR, LTP) and a channel configuration (no program config element).
fn skip_audio_specific_config(bits: &mut BitReader) -> Result<(), AacError> {
    let truncated = || AacError::BadConfig("(in the LATM StreamMuxConfig) is truncated");
    let mut object_type = bits.read(5).ok_or_else(truncated)?;
    if object_type == 31 {
        object_type = 32 + bits.read(6).ok_or_else(truncated)?;
    }
    if !(1..=4).contains(&object_type) {
        return Err(unsupported("audioObjectType", &object_type.to_string()));
    }
    if bits.read(4).ok_or_else(truncated)? == 15 {
        bits.read(24).ok_or_else(truncated)?; // explicit sampling frequency
    }
    let channels = bits.read(4).ok_or_else(truncated)?;
    if channels == 0 {
        return Err(unsupported("channelConfiguration", "0"));
    }
    bits.read(1).ok_or_else(truncated)?; // frameLengthFlag
    if bits.read(1).ok_or_else(truncated)? == 1 {
        bits.read(14).ok_or_else(truncated)?; // coreCoderDelay
    }
    if bits.read(1).ok_or_else(truncated)? == 1 {
        bits.read(1).ok_or_else(truncated)?; // extensionFlag3
    }
    Ok(())
}

/// Turns RFC 6416 payloads (`cpresent=0`) into AAC frames.
#[derive(Debug)]
pub struct LatmDepacketizer {
    config: AacConfig,
    /// The RTP clock rate (RFC 6416 allows one other than the sampling rate, e.g. 90000).
    clock_rate: u32,
    /// An AudioMuxElement split across payloads: its timestamp and the bytes so far.
    fragment: Option<(u64, BytesMut)>,
}

/// What reading one AudioMuxElement found.
enum Element<'a> {
    /// A whole frame and the bytes after it.
    Whole(&'a [u8], &'a [u8]),
    /// The element goes on in the next payload.
    Cut,
}

impl LatmDepacketizer {
    /// A depacketizer for a stream described by `config` whose RTP timestamps run at
    /// `clock_rate`.
    pub fn new(config: AacConfig, clock_rate: u32) -> Self {
        LatmDepacketizer {
            config,
            clock_rate: clock_rate.max(1),
            fragment: None,
        }
    }

    /// The RTP time of frame `n` of a payload at `timestamp` (frames are `frame_length`
    /// samples at the sampling rate apart).
    fn frame_time(&self, timestamp: u64, n: u64) -> u64 {
        let samples = u128::from(n) * u128::from(self.config.frame_length);
        let ticks = samples * u128::from(self.clock_rate) / u128::from(self.config.sample_rate);
        timestamp.saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
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
        let continued = self.fragment.take().filter(|(ts, _)| *ts == timestamp);
        if let Some((ts, mut buf)) = continued {
            buf.extend_from_slice(payload);
            return match element(&buf)? {
                Element::Whole(frame, []) => Ok(vec![AacFrame {
                    data: Bytes::copy_from_slice(frame),
                    timestamp: ts,
                }]),
                Element::Whole(..) => Err(AacError::Truncated(
                    "a continued AudioMuxElement is followed by other bytes",
                )),
                Element::Cut if marker => Err(cut_short()),
                Element::Cut => {
                    self.fragment = Some((ts, buf));
                    Ok(Vec::new())
                }
            };
        }
        self.read(payload, timestamp, marker)
    }

    fn read(
        &mut self,
        payload: &[u8],
        timestamp: u64,
        marker: bool,
    ) -> Result<Vec<AacFrame>, AacError> {
        if payload.is_empty() {
            return Err(AacError::Truncated("an empty payload"));
        }
        let mut frames = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            if frames.len() == MAX_FRAMES_PER_PACKET {
                return Err(AacError::Truncated(
                    "more AudioMuxElements than a payload may hold",
                ));
            }
            match element(rest)? {
                Element::Whole(frame, after) => {
                    let ts = self.frame_time(timestamp, frames.len() as u64);
                    frames.push(AacFrame {
                        data: Bytes::copy_from_slice(frame),
                        timestamp: ts,
                    });
                    rest = after;
                }
                // Only a payload's one element may go on in the next payload.
                Element::Cut if frames.is_empty() && !marker => {
                    self.fragment = Some((timestamp, BytesMut::from(payload)));
                    return Ok(Vec::new());
                }
                Element::Cut => return Err(cut_short()),
            }
        }
        Ok(frames)
    }
}

fn cut_short() -> AacError {
    AacError::Truncated("an AudioMuxElement is longer than its payload")
}

/// Reads one AudioMuxElement (PayloadLengthInfo, then the frame) from the start of `data`.
fn element(data: &[u8]) -> Result<Element<'_>, AacError> {
    let mut len = 0usize;
    let mut at = 0;
    loop {
        let Some(&byte) = data.get(at) else {
            return Ok(Element::Cut);
        };
        at += 1;
        len += usize::from(byte);
        if len > MAX_FRAME_LEN {
            return Err(AacError::FrameTooLarge(len));
        }
        if byte != 255 {
            break;
        }
    }
    if len == 0 {
        return Err(AacError::Truncated(
            "an AudioMuxElement with an empty frame",
        ));
    }
    match data.get(at..at + len) {
        Some(frame) => Ok(Element::Whole(frame, &data[at + len..])),
        None => Ok(Element::Cut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ffmpeg writes for a 48 kHz stereo AAC-LC stream (`-rtpflags latm`).
    const FFMPEG_48K_STEREO: &str = "profile-level-id=41;cpresent=0;config=400023203fc0";

    /// An AudioMuxElement of `frame`.
    fn element_of(frame: &[u8]) -> Vec<u8> {
        let mut out = vec![255u8; frame.len() / 255];
        out.push((frame.len() % 255) as u8);
        out.extend_from_slice(frame);
        out
    }

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    fn config() -> AacConfig {
        config_from_fmtp(FFMPEG_48K_STEREO).expect("ffmpeg's config")
    }

    #[test]
    fn ffmpeg_config_is_48_khz_stereo_aac_lc() {
        let c = config();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48_000, 2));
        assert_eq!(c.frame_length, 1024);
        // AAC-LC, index 3 (48 kHz), 2 channels: 00010 0011 0010 000 → 0x11 0x90.
        assert_eq!(&c.audio_specific_config[..], &[0x11, 0x90]);
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn unsupported_configs_are_refused_with_the_reason() {
        let cases = [
            ("cpresent=1;config=400023203fc0", "cpresent=1"),
            ("cpresent=0", "no config"),
            ("cpresent=0;config=4", "config=4"),
            ("cpresent=0;config=zz", "config=zz"),
            ("cpresent=0;config=c00023203fc0", "audioMuxVersion=1"),
            ("cpresent=0;config=410023203fc0", "numSubFrames=1"),
            ("cpresent=0;config=4000", "truncated"),
            // HE-AAC (object type 5) is not read here.
            ("cpresent=0;config=400053203fc0", "audioObjectType=5"),
        ];
        for (fmtp, reason) in cases {
            let err = config_from_fmtp(fmtp).expect_err(fmtp);
            assert!(err.to_string().contains(reason), "{fmtp}: {err}");
        }
    }

    #[test]
    fn several_elements_in_one_payload_are_frames_one_frame_length_apart() {
        let mut d = LatmDepacketizer::new(config(), 48_000);
        let (a, b) = (frame(300, 1), frame(20, 2));
        let payload = [element_of(&a), element_of(&b)].concat();
        let frames = d.push(&payload, 5000, true).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!((&frames[0].data[..], frames[0].timestamp), (&a[..], 5000));
        assert_eq!((&frames[1].data[..], frames[1].timestamp), (&b[..], 6024));
    }

    #[test]
    fn frames_of_one_payload_are_spaced_in_the_rtp_clock() {
        let mut d = LatmDepacketizer::new(config(), 90_000);
        let payload = [element_of(&frame(30, 1)), element_of(&frame(30, 2))].concat();
        let frames = d.push(&payload, 1000, true).unwrap();
        // 1024 samples at 48 kHz are 1920 ticks of a 90 kHz clock.
        assert_eq!(frames[1].timestamp, 1000 + 1920);
    }

    #[test]
    fn an_element_split_across_payloads_is_reassembled() {
        let mut d = LatmDepacketizer::new(config(), 48_000);
        let big = frame(1500, 3);
        let whole = element_of(&big);
        let (first, second) = whole.split_at(700);
        assert!(d.push(first, 9000, false).unwrap().is_empty());
        let frames = d.push(second, 9000, true).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0].data[..], &big[..]);
        // A lost last piece: the next payload (another timestamp) starts afresh.
        assert!(d.push(first, 10024, false).unwrap().is_empty());
        let next = element_of(&frame(10, 4));
        assert_eq!(d.push(&next, 11048, true).unwrap().len(), 1);
    }

    #[test]
    fn malformed_payloads_are_errors_and_the_next_one_still_comes_out() {
        let mut d = LatmDepacketizer::new(config(), 48_000);
        let too_long = [vec![255u8; 30], vec![1]].concat();
        let cases: [(&[u8], &str); 4] = [
            (&[], "empty payload"),
            (&[0, 1, 2], "empty frame"),
            (&[9, 1, 2], "longer than its payload"),
            (&too_long, "larger than"),
        ];
        for (payload, reason) in cases {
            let err = d.push(payload, 0, true).expect_err(reason);
            assert!(err.to_string().contains(reason), "{reason}: {err}");
        }
        // An element cut after a whole one, without the marker, is an error too.
        let cut = [element_of(&frame(5, 5)), vec![40, 1]].concat();
        assert!(d.push(&cut, 0, false).is_err());
        let fine = element_of(&frame(50, 6));
        assert_eq!(d.push(&fine, 1024, true).unwrap().len(), 1);
    }
}
