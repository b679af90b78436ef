//! Feeds arbitrary bytes to the RTSP framing reader three ways — whole, split in two at a
//! data-derived point, and in small data-derived pieces — and checks that all three give the
//! same frames and the same final error, and that the buffer never holds more than the limits
//! allow plus the latest push, and that rtsp-types never refuses a message the checks passed.
//!
//! The check itself lives in `fuzz/checks/rtsp_framing.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/rtsp_framing.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
