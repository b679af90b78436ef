//! `WWW-Authenticate` challenge parsing and answering (livefeed's RTSP client) never panic.
//!
//! The check itself lives in `fuzz/checks/rtsp_challenge.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/rtsp_challenge.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
