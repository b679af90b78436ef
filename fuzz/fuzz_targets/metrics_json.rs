//! `POST /api/v1/metrics` bodies: parsing arbitrary bytes never panics, validating whatever was
//! accepted never panics, and an accepted batch survives serialize → parse: names and times
//! exactly, latencies within a few ULPs (serde_json's default float parser is not correctly
//! rounded for long decimals; its `float_roundtrip` feature is off in this workspace).
//!
//! The check itself lives in `fuzz/checks/metrics_json.rs`, which the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`) shares.
#![no_main]

#[path = "../checks/metrics_json.rs"]
mod check;

/// The bundled SQLite (linked through livefeed-store) has two file-local arrays named `aiOff`,
/// which AddressSanitizer's one-definition-rule check reports at startup as a false positive.
#[no_mangle]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"detect_odr_violation=0".as_ptr()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
