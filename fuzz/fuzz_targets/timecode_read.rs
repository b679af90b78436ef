//! Reads a pixel timecode from an arbitrary luma plane of fuzzer-chosen size: must never panic.
//! Then draws a fuzzer-chosen timecode into that plane and checks it reads back.
//!
//! The check itself lives in `fuzz/checks/timecode_read.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/timecode_read.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
