//! LL-HLS playlist query strings and media file names: parsing never panics, and whatever is
//! accepted is consistent (see `fuzz/checks/hls_query.rs` for the invariants).
//!
//! The check itself lives in `fuzz/checks/hls_query.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/hls_query.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
