//! Audio over RTP from arbitrary input: the RFC 3640 (AAC) fmtp reader, AudioSpecificConfig
//! reader and depacketizer, the RFC 6416 (MP4A-LATM) fmtp reader and depacketizer, the Opus TOC
//! reader, and the timeline of a passthrough track. No
//! panic; frames stay within their caps and keep their order; a payload read back from the
//! timeline is the packet's own payload.
//!
//! Shared by the `rtp_audio_depacketize` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).
//!
//! Input layout: a first line (up to `\n`) is an MPEG4-GENERIC or MP4A-LATM fmtp (each reader
//! falls back to a valid one of its own when the line is not); then chunks, each after a
//! 2-byte big-endian length (the last one truncated), are RTP packets of payload type 97.

use bytes::Bytes;
use livefeed_media::aac::{AacConfig, AacDepacketizer, AacError, AacFrame, MAX_FRAME_LEN};
use livefeed_media::latm::{self, LatmDepacketizer};
use livefeed_media::opus;
use livefeed_media::rtp::parse_rtp;
use livefeed_media::track::PacketTimeline;

/// An fmtp ffmpeg sends, for inputs whose own is unusable.
const DEFAULT_FMTP: &str =
    "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190";
/// The MP4A-LATM fmtp ffmpeg sends (`-rtpflags latm`, 48 kHz stereo).
const DEFAULT_LATM_FMTP: &str = "profile-level-id=41;cpresent=0;config=400023203fc0";

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let (line, packets) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let fmtp = String::from_utf8_lossy(line);
    let _ = AacConfig::from_audio_specific_config(Bytes::copy_from_slice(line));
    let config = AacConfig::from_fmtp(&fmtp)
        .or_else(|_| AacConfig::from_fmtp(DEFAULT_FMTP))
        .expect("the default fmtp is valid");
    assert!(config.sample_rate > 0);
    let mut aac = AacDepacketizer::new(config);
    let latm_config = latm::config_from_fmtp(&fmtp)
        .or_else(|_| latm::config_from_fmtp(DEFAULT_LATM_FMTP))
        .expect("the default LATM fmtp is valid");
    assert!(latm_config.sample_rate > 0 && latm_config.channels > 0);
    let mut latm = LatmDepacketizer::new(latm_config, 90_000);
    let mut timeline = PacketTimeline::new(97);
    for packet in chunks(packets) {
        if let Some(samples) = opus::packet_samples(packet) {
            assert!((1..=opus::MAX_PACKET_SAMPLES).contains(&samples));
        }
        if let Ok(Some(timed)) = timeline.push(packet) {
            let rtp = parse_rtp(packet).expect("the timeline took a valid packet");
            assert_eq!(&timed.payload[..], rtp.payload);
            assert_eq!(timed.marker, rtp.marker);
        }
        let payload = parse_rtp(packet).map(|p| p.payload).unwrap_or(packet);
        let marker = packet.first().is_some_and(|b| b & 1 == 1);
        assert_frames_bounded_and_in_order(aac.push(payload, 1000, marker));
        assert_frames_bounded_and_in_order(latm.push(payload, 1000, marker));
    }
}

fn assert_frames_bounded_and_in_order(frames: Result<Vec<AacFrame>, AacError>) {
    let Ok(frames) = frames else { return };
    let mut last = None;
    for frame in frames {
        assert!(!frame.data.is_empty() && frame.data.len() <= MAX_FRAME_LEN);
        assert!(last.is_none_or(|t| frame.timestamp > t));
        last = Some(frame.timestamp);
    }
}

/// Splits `data` into chunks, each after a 2-byte big-endian length (the last one truncated).
fn chunks(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (&[hi, lo], rest) = data.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len());
        let (chunk, rest) = rest.split_at(len);
        data = rest;
        Some(chunk)
    })
}
