//! LL-HLS playlist query strings (`_HLS_msn`, `_HLS_part`, `_HLS_skip`): parsing never panics,
//! and whatever is accepted is consistent: a part only with an msn, and only from a query
//! within the length limit.
//!
//! The check itself lives in `fuzz/checks/hls_query.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/hls_query.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
