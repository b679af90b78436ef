//! RTP H.264 depacketizer on arbitrary packets (no panic, output within the caps), and
//! packetize → depacketize round trips of arbitrary NAL units (same NAL units back).
//!
//! The check itself lives in `fuzz/checks/rtp_video_depacketize.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/rtp_video_depacketize.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
