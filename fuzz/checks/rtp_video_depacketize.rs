//! RTP H.264 and H.265 depacketizers on arbitrary packets (no panic, output within the caps),
//! and packetize → depacketize round trips of arbitrary NAL units (same NAL units back).
//!
//! Shared by the `rtp_h264_depacketize` ([`check`]) and `rtp_h265_depacketize`
//! ([`check_h265`]) fuzz targets and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).
//!
//! Input layout: packets (and, for the round trip, NAL units) are chunks, each after a 2-byte
//! big-endian length (the last one truncated); the round trip takes the first byte as its
//! configuration (MTU and starting sequence number) and the chunks after it as NAL units.

use livefeed_media::rtp::{Depacketized, DepacketizerLimits, VideoDepacketizer, VideoPacketizer};
use livefeed_media::rtp::{MIN_MTU, RTP_HEADER_LEN};
use livefeed_media::{AccessUnit, VideoCodec};

/// Small caps so that inputs can reach them.
const LIMITS: DepacketizerLimits = DepacketizerLimits {
    max_access_unit_bytes: 64 * 1024,
    max_nals: 16,
};

/// Runs the H.264 check on one input; panics if an invariant does not hold.
#[allow(dead_code)] // each fuzz target uses one of the two checks
pub fn check(data: &[u8]) {
    depacketize_arbitrary(data, VideoCodec::H264);
    round_trip(data, VideoCodec::H264);
}

/// Runs the H.265 check on one input; panics if an invariant does not hold.
#[allow(dead_code)] // each fuzz target uses one of the two checks
pub fn check_h265(data: &[u8]) {
    depacketize_arbitrary(data, VideoCodec::H265);
    round_trip(data, VideoCodec::H265);
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

/// Pushes one packet and returns everything it finished (`push` then `pull` until `None`).
fn push_all(d: &mut VideoDepacketizer, packet: &[u8]) -> Vec<Depacketized> {
    let first = d.push(packet).ok().flatten();
    first
        .into_iter()
        .chain(std::iter::from_fn(|| d.pull()))
        .collect()
}

fn depacketize_arbitrary(data: &[u8], codec: VideoCodec) {
    let mut d = VideoDepacketizer::with_limits(codec, LIMITS);
    for packet in chunks(data) {
        for au in push_all(&mut d, packet) {
            let size: usize = au.nals.iter().map(|nal| nal.len()).sum();
            assert!(size <= LIMITS.max_access_unit_bytes, "{size} bytes");
            assert!(
                au.nals.len() <= LIMITS.max_nals,
                "{} NAL units",
                au.nals.len()
            );
            assert!(!au.nals.is_empty() && au.nals.iter().all(|nal| !nal.is_empty()));
        }
    }
}

/// A NAL unit the depacketizer takes as is: forbidden bit clear, a single-NAL type (H.264
/// 1..=23; H.265 0..=47 with a two-byte header).
fn sanitize(nal: &[u8], codec: VideoCodec) -> Option<Vec<u8>> {
    let mut nal = nal.to_vec();
    match codec {
        VideoCodec::H264 => {
            let header = nal.first_mut()?;
            *header = (*header & 0x60) | (1 + (*header & 0x1f) % 23);
        }
        VideoCodec::H265 => {
            if nal.len() < 2 {
                return None;
            }
            let nal_type = ((nal[0] >> 1) & 0x3f) % 48;
            nal[0] = (nal[0] & 0x01) | (nal_type << 1);
        }
    }
    Some(nal)
}

fn round_trip(data: &[u8], codec: VideoCodec) {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let mtu = MIN_MTU + usize::from(config) * 8;
    let nals: Vec<Vec<u8>> = chunks(rest)
        .filter(|nal| !nal.is_empty())
        .take(1024)
        .filter_map(|nal| sanitize(nal, codec))
        .collect();
    if nals.is_empty() {
        return;
    }
    let keyframe = nals.iter().any(|nal| codec.is_keyframe_nal(nal));
    let au = AccessUnit {
        codec,
        nals: nals.into_iter().map(Into::into).collect(),
        pts: 0,
        keyframe,
        capture: None,
    };
    // Start near the wrap so that long access units cross 65535 → 0.
    let mut packetizer = VideoPacketizer::new(codec, 1, 96, mtu, u16::MAX - u16::from(config));
    let mut packets = Vec::new();
    packetizer.packetize(&au, 0x1234_5678, &mut packets);
    let mut d = VideoDepacketizer::new(codec);
    let mut out = Vec::new();
    for packet in &packets {
        assert!(packet.len() <= mtu && packet.len() > RTP_HEADER_LEN);
        out.extend(push_all(&mut d, packet));
    }
    assert_eq!(d.stats().errors, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].nals, au.nals);
    assert_eq!(out[0].keyframe, au.keyframe);
    assert_eq!(out[0].rtp_timestamp, 0x1234_5678);
}
