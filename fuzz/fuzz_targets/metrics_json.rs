//! `POST /api/v1/metrics` bodies: parsing arbitrary bytes never panics, validating whatever was
//! accepted never panics, and an accepted batch survives serialize → parse: names and times
//! exactly, latencies within a few ULPs (serde_json's default float parser is not correctly
//! rounded for long decimals; its `float_roundtrip` feature is off in this workspace).
#![no_main]

use libfuzzer_sys::fuzz_target;
use livefeed_store::{parse_samples_json, Sample, SampleBatch};

/// The bundled SQLite (linked through livefeed-store) has two file-local arrays named `aiOff`,
/// which AddressSanitizer's one-definition-rule check reports at startup as a false positive.
#[no_mangle]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"detect_odr_violation=0".as_ptr()
}

fuzz_target!(|data: &[u8]| {
    let Ok(samples) = parse_samples_json(data) else {
        return;
    };
    for (index, sample) in samples.iter().enumerate() {
        let _ = Sample::validate(sample, index);
    }
    let batch = SampleBatch { samples };
    let text = serde_json::to_vec(&batch).expect("a parsed batch serializes");
    let again = parse_samples_json(&text).expect("a serialized batch parses");
    assert_eq!(again.len(), batch.samples.len());
    for (a, b) in again.iter().zip(&batch.samples) {
        assert_eq!(
            (&a.path, &a.stage, &a.client, a.unix_ms),
            (&b.path, &b.stage, &b.client, b.unix_ms)
        );
        let tolerance = b.latency_ms.abs() * 4.0 * f64::EPSILON;
        assert!(
            (a.latency_ms - b.latency_ms).abs() <= tolerance,
            "{a:?} vs {b:?}"
        );
    }
});
