//! Publisher SDP (ANNOUNCE bodies): parsing never panics, and whatever is accepted describes an
//! H.264 track whose parameter sets really are an SPS and a PPS.
//!
//! Shared by the `sdp_h264` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_media::sdp::parse_h264_track;

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    if let Ok(track) = parse_h264_track(data) {
        if let Some(sps) = &track.sps {
            assert_eq!(sps.first().map(|b| b & 0x1f), Some(7));
        }
        if let Some(pps) = &track.pps {
            assert_eq!(pps.first().map(|b| b & 0x1f), Some(8));
        }
    }
}
