//! Latency samples as clients submit them, their validation, and the JSON body of
//! `POST /api/v1/metrics`.
//!
//! A sample says: on `path`, at stage `stage`, a client of kind `client` measured `latency_ms` at
//! wall-clock time `unix_ms` (server clock, after the client corrected its offset). Names are
//! checked here; the time window a store accepts depends on its clock and retention and is
//! checked by [`crate::Store::insert_at`].

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The stages of the chain, in order; a sample's `stage` must be one of them.
pub const STAGES: [&str; 8] = [
    livefeed_media::latency::stage::ENCODED,
    livefeed_media::latency::stage::INGEST,
    livefeed_media::latency::stage::RECEIVED,
    livefeed_media::latency::stage::DECODED,
    STAGE_DISPLAYED,
    livefeed_media::latency::stage::SERVER_ADDED,
    livefeed_media::latency::stage::AUDIO_RECEIVED,
    livefeed_media::latency::stage::AV_OFFSET,
];

/// Capture to picture on screen in a browser (`requestVideoFrameCallback` + pixel timecode).
pub const STAGE_DISPLAYED: &str = "capture_to_displayed";

/// Longest client kind accepted.
pub const MAX_CLIENT_LEN: usize = 32;

/// Smallest latency accepted, ms. Slightly negative figures are legitimate: a client's clock
/// offset estimate has an uncertainty of a few ms. Beyond one second the clock is simply wrong
/// and the figure would poison the percentiles.
pub const MIN_LATENCY_MS: f64 = -1_000.0;

/// Largest latency accepted, ms (one hour): nothing later than that is "live".
pub const MAX_LATENCY_MS: f64 = 3_600_000.0;

/// One latency measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Stream path, as accepted by [`livefeed_media::path::validate`] (stored trimmed).
    pub path: String,
    /// One of [`STAGES`].
    pub stage: String,
    /// Client kind, e.g. `server`, `receiver`, `browser-hls`: 1..=32 of `[a-z0-9_-]`.
    pub client: String,
    /// When the measurement was taken, Unix ms, server clock.
    pub unix_ms: i64,
    /// The latency, ms, in [[`MIN_LATENCY_MS`], [`MAX_LATENCY_MS`]].
    pub latency_ms: f64,
}

/// The JSON body of `POST /api/v1/metrics`: `{"samples":[{...}, ...]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleBatch {
    /// The samples, in any order.
    pub samples: Vec<Sample>,
}

/// Parses a `POST /api/v1/metrics` body. Unknown fields anywhere are refused, `unix_ms` must be
/// an integer; any JSON error is a [`StoreError::Json`] (a client error) carrying serde's message
/// with line and column. Names and values are checked later by [`crate::Store::insert_at`] (or
/// [`Sample::validate`]).
pub fn parse_samples_json(body: &[u8]) -> Result<Vec<Sample>, StoreError> {
    serde_json::from_slice::<SampleBatch>(body)
        .map(|batch| batch.samples)
        .map_err(StoreError::Json)
}

impl Sample {
    /// Checks names and latency (everything except the time window, which depends on the
    /// store's clock). `index` is the sample's position in its batch, for the error.
    pub fn validate(&self, index: usize) -> Result<(), StoreError> {
        self.checked_path(index).map(|_| ())
    }

    /// [`Sample::validate`], returning the trimmed path to store.
    pub(crate) fn checked_path(&self, index: usize) -> Result<&str, StoreError> {
        let invalid = |field: &'static str, reason: String| StoreError::Invalid {
            index,
            field,
            reason,
        };
        let path = livefeed_media::path::validate(&self.path)
            .map_err(|e| invalid("path", e.to_string()))?;
        check_stage(&self.stage).map_err(|r| invalid("stage", r))?;
        check_client(&self.client).map_err(|r| invalid("client", r))?;
        check_latency(self.latency_ms).map_err(|r| invalid("latency_ms", r))?;
        Ok(path)
    }
}

/// Checks a stage name; the error is the reason.
pub fn check_stage(stage: &str) -> Result<(), String> {
    if STAGES.contains(&stage) {
        Ok(())
    } else {
        Err(format!(
            "unknown stage {:?}; expected one of {}",
            truncate(stage),
            STAGES.join(", ")
        ))
    }
}

/// Checks a client kind (1..=[`MAX_CLIENT_LEN`] of `[a-z0-9_-]`); the error is the reason.
pub fn check_client(client: &str) -> Result<(), String> {
    if client.is_empty() {
        return Err("empty".into());
    }
    if client.len() > MAX_CLIENT_LEN {
        return Err(format!(
            "{} bytes, at most {MAX_CLIENT_LEN} allowed",
            client.len()
        ));
    }
    if !client
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "{:?}: only a-z, 0-9, _ and - are allowed",
            truncate(client)
        ));
    }
    Ok(())
}

fn check_latency(ms: f64) -> Result<(), String> {
    if !ms.is_finite() {
        return Err(format!("{ms} is not a finite number"));
    }
    if !(MIN_LATENCY_MS..=MAX_LATENCY_MS).contains(&ms) {
        return Err(format!(
            "{ms} ms is outside [{MIN_LATENCY_MS}, {MAX_LATENCY_MS}]"
        ));
    }
    Ok(())
}

/// A prefix of a peer-supplied string for an error message, so errors stay short.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        Sample {
            path: "/live/".into(),
            stage: STAGE_DISPLAYED.into(),
            client: "browser-hls".into(),
            unix_ms: 1_000,
            latency_ms: 12.5,
        }
    }

    #[test]
    fn good_sample_passes_with_trimmed_path() {
        assert_eq!(sample().checked_path(0).ok(), Some("live"));
        let mut s = sample();
        s.latency_ms = -3.0;
        assert!(
            s.validate(0).is_ok(),
            "small negative figures are clock noise"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutate = fn(&mut Sample);
        let cases: [(Mutate, &str); 8] = [
            (|s| s.path = "a/../b".into(), "path"),
            (|s| s.stage = "capture-to-displayed".into(), "stage"),
            (|s| s.client = String::new(), "client"),
            (|s| s.client = "x".repeat(33), "client"),
            (|s| s.client = "Browser".into(), "client"),
            (|s| s.latency_ms = f64::NAN, "latency_ms"),
            (|s| s.latency_ms = f64::INFINITY, "latency_ms"),
            (|s| s.latency_ms = -1_000.5, "latency_ms"),
        ];
        for (mutate, want) in cases {
            let mut s = sample();
            mutate(&mut s);
            match s.validate(7) {
                Err(StoreError::Invalid {
                    index: 7, field, ..
                }) => assert_eq!(field, want),
                other => panic!("{s:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_round_trip_and_strictness() {
        let batch = SampleBatch {
            samples: vec![sample()],
        };
        let text = serde_json::to_vec(&batch).expect("serialize");
        assert_eq!(parse_samples_json(&text).expect("parse"), batch.samples);
        for bad in [
            &br#"{"samples":[{"path":"live"}]}"#[..],
            br#"{"samples":[],"extra":1}"#,
            br#"{"samples":[{"path":"live","stage":"capture_to_encoded","client":"server","unix_ms":1.5,"latency_ms":1}]}"#,
            b"{",
            b"",
        ] {
            let err = parse_samples_json(bad).expect_err("refused");
            assert!(err.is_client_error(), "{err}");
        }
    }
}
