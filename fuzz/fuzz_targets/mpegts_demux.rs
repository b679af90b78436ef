//! See `fuzz/checks/mpegts_demux.rs` for what this target checks; the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) runs the same check on the committed seeds.
#![no_main]

#[path = "../checks/mpegts_demux.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
