//! RTP H.264 depacketizer on arbitrary packets (no panic, output within the caps), and
//! packetize → depacketize round trips of arbitrary NAL units (same NAL units back).
//!
//! Shared by the `rtp_h264_depacketize` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).
//!
//! Input layout: packets (and, for the round trip, NAL units) are chunks, each after a 2-byte
//! big-endian length (the last one truncated); the round trip takes the first byte as its
//! configuration (MTU and starting sequence number) and the chunks after it as NAL units.

use livefeed_media::rtp::{Depacketized, DepacketizerLimits, H264Depacketizer, H264Packetizer};
use livefeed_media::rtp::{MIN_MTU, RTP_HEADER_LEN};
use livefeed_media::AccessUnit;

/// Small caps so that inputs can reach them.
const LIMITS: DepacketizerLimits = DepacketizerLimits {
    max_access_unit_bytes: 64 * 1024,
    max_nals: 16,
};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    depacketize_arbitrary(data);
    round_trip(data);
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
fn push_all(d: &mut H264Depacketizer, packet: &[u8]) -> Vec<Depacketized> {
    let first = d.push(packet).ok().flatten();
    first
        .into_iter()
        .chain(std::iter::from_fn(|| d.pull()))
        .collect()
}

fn depacketize_arbitrary(data: &[u8]) {
    let mut d = H264Depacketizer::with_limits(LIMITS);
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

/// A NAL unit the depacketizer takes as is: forbidden bit clear, type 1..=23.
fn sanitize(nal: &[u8]) -> Vec<u8> {
    let mut nal = nal.to_vec();
    if let Some(header) = nal.first_mut() {
        *header = (*header & 0x60) | (1 + (*header & 0x1f) % 23);
    }
    nal
}

fn round_trip(data: &[u8]) {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let mtu = MIN_MTU + usize::from(config) * 8;
    let nals: Vec<Vec<u8>> = chunks(rest)
        .filter(|nal| !nal.is_empty())
        .take(1024)
        .map(sanitize)
        .collect();
    if nals.is_empty() {
        return;
    }
    let keyframe = nals
        .iter()
        .any(|nal| nal.first().is_some_and(|h| h & 0x1f == 5));
    let au = AccessUnit {
        nals: nals.into_iter().map(Into::into).collect(),
        pts: 0,
        keyframe,
        capture: None,
    };
    // Start near the wrap so that long access units cross 65535 → 0.
    let mut packetizer = H264Packetizer::new(1, 96, mtu, u16::MAX - u16::from(config));
    let mut packets = Vec::new();
    packetizer.packetize(&au, 0x1234_5678, &mut packets);
    let mut d = H264Depacketizer::new();
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
