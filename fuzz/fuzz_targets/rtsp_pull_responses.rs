//! The pull client's handling of what a camera answers never panics.
//!
//! The check itself lives in `fuzz/checks/rtsp_pull_responses.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/rtsp_pull_responses.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
