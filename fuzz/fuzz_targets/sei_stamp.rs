//! SEI capture stamps: decoding arbitrary NAL units never panics, and every stamp encodes to a
//! NAL unit that decodes back to the same stamp.
//!
//! The check itself lives in `fuzz/checks/sei_stamp.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/sei_stamp.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
