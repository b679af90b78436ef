//! Publisher SDP with several tracks (ANNOUNCE bodies): parsing never panics; whatever is
//! accepted has at most `MAX_TRACKS` sections, bounded attributes and clock rates above zero;
//! and livefeed's own offer of the accepted tracks parses back to the same tracks.
//!
//! Shared by the `sdp_tracks` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_media::sdp::{offer, parse_announced, OfferParams, MAX_TRACKS};
use livefeed_media::track::MAX_ATTRIBUTE_LEN;

const VPS: &[u8] = &[0x40, 0x01, 0x0c, 0x01];
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x8d, 0x40];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let Ok(stream) = parse_announced(data) else {
        return;
    };
    assert!(stream.others.len() < MAX_TRACKS);
    for track in &stream.others {
        assert!(track.clock_rate > 0);
        assert!(track.payload_type < 128);
        for value in [&track.rtpmap, &track.fmtp, &track.control]
            .into_iter()
            .flatten()
        {
            assert!(value.chars().count() <= MAX_ATTRIBUTE_LEN);
        }
    }
    let offer = offer(&OfferParams {
        codec: stream.video.codec,
        vps: VPS,
        sps: SPS,
        pps: PPS,
        payload_type: 96,
        origin_address: "127.0.0.1".into(),
        track_control: "trackID=0",
        others: &stream.others,
    });
    // Attributes with line breaks or leading/trailing blanks cannot survive an SDP line.
    let writable = stream.others.iter().all(|t| {
        [&t.rtpmap, &t.fmtp, &t.control, &Some(t.media.clone())]
            .into_iter()
            .flatten()
            .all(|v| !v.contains(['\r', '\n']) && v.trim() == v && !v.is_empty())
            && !t.media.contains(' ')
    });
    if !writable {
        return;
    }
    let back = parse_announced(offer.as_bytes())
        .unwrap_or_else(|e| panic!("own offer refused: {e}\n{offer}"));
    assert_eq!(back.others.len(), stream.others.len(), "{offer}");
    for (a, b) in back.others.iter().zip(&stream.others) {
        assert_eq!(
            (&a.codec, a.clock_rate, &a.fmtp),
            (&b.codec, b.clock_rate, &b.fmtp)
        );
    }
}
