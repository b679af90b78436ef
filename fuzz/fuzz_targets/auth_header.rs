//! `Authorization` header parsing and checking never panic on any input.
//!
//! The check itself lives in `fuzz/checks/auth_header.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/auth_header.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
