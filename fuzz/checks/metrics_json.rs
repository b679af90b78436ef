//! `POST /api/v1/metrics` bodies: parsing arbitrary bytes never panics, validating whatever was
//! accepted never panics, and an accepted batch survives serialize → parse: names and times
//! exactly, latencies within a few ULPs (serde_json's default float parser is not correctly
//! rounded for long decimals; its `float_roundtrip` feature is off in this workspace).
//!
//! Shared by the `metrics_json` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_store::{parse_samples_json, Sample, SampleBatch};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
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
}
