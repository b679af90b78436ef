//! Publisher SDP (ANNOUNCE bodies): parsing never panics, and whatever is accepted describes an
//! H.264 track whose parameter sets really are an SPS and a PPS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livefeed_media::sdp::parse_h264_track;

fuzz_target!(|data: &[u8]| {
    if let Ok(track) = parse_h264_track(data) {
        if let Some(sps) = &track.sps {
            assert_eq!(sps.first().map(|b| b & 0x1f), Some(7));
        }
        if let Some(pps) = &track.pps {
            assert_eq!(pps.first().map(|b| b & 0x1f), Some(8));
        }
    }
});
