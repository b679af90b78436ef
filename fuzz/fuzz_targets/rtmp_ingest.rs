//! RTMP chunk stream, AMF0 commands and FLV tags as the RTMP listener reads them never panic.
//!
//! The check itself lives in `fuzz/checks/rtmp_ingest.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/rtmp_ingest.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
