//! Publisher SDP (ANNOUNCE bodies): parsing never panics, and whatever is accepted describes an
//! H.264 track whose parameter sets really are an SPS and a PPS.
//!
//! The check itself lives in `fuzz/checks/sdp_h264.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/sdp_h264.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
