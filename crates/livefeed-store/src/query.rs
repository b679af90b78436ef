//! Range queries over the store and the points they return.
//!
//! A [`MetricsQuery`] selects samples with `since_ms <= t < until_ms` (since inclusive, until
//! exclusive; for aggregated data `t` is the start of the sample's second) and groups them per
//! (path, stage, client) into buckets of `step_ms`. Buckets are aligned to multiples of `step_ms`
//! since the Unix epoch — not to `since_ms` — so a chart that polls with a sliding window sees
//! the same bucket keep its key; the first and last bucket may hold only part of their span.
//!
//! Which data answers (see [`Point::exact`]):
//! - when the whole range is still within raw retention (`since_ms` at or after the oldest
//!   instant whose raw samples are all kept) and spans at most
//!   [`crate::MAX_RAW_QUERY_MS`] (15 minutes), points are computed from the raw samples:
//!   p50/p95 are exact nearest-rank percentiles, and samples not yet folded by
//!   [`crate::Store::aggregate`] (the current second, late arrivals) are included;
//! - otherwise from the per-second aggregates: `count` is summed and `max` is the max of the
//!   maxima (both exact), while p50/p95 are the count-weighted means of the per-second
//!   percentiles — an approximation (a mean of percentiles is not a percentile; it can be above
//!   or below the true one), exact only when `step_ms` is 1000. Only seconds that were folded
//!   are seen.

use serde::Serialize;

use crate::sample::{check_client, check_stage};
use crate::StoreError;

/// Most buckets one query may ask for per series (`(until - since) / step`).
pub const MAX_BUCKETS: i64 = 10_000;

/// Latest instant a query may name (9999-12-31T23:59:59.999Z); keeps arithmetic far from
/// overflow.
pub const MAX_UNIX_MS: i64 = 253_402_300_799_999;

/// What to read: filters (None = all), a time range and a bucket width.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsQuery {
    /// Only this path.
    pub path: Option<String>,
    /// Only this stage.
    pub stage: Option<String>,
    /// Only this client kind.
    pub client: Option<String>,
    /// Start of the range, Unix ms, inclusive; `>= 0`.
    pub since_ms: i64,
    /// End of the range, Unix ms, exclusive; `>= since_ms`, `<=` [`MAX_UNIX_MS`].
    pub until_ms: i64,
    /// Bucket width, ms: a positive multiple of 1000.
    pub step_ms: i64,
}

/// Latency figures of one bucket of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Stream path.
    pub path: String,
    /// Stage.
    pub stage: String,
    /// Client kind.
    pub client: String,
    /// Start of the bucket, Unix ms (a multiple of the query's step).
    pub bucket_ms: i64,
    /// Samples in the bucket (within the query's range).
    pub count: u64,
    /// Median latency, ms.
    pub p50: f64,
    /// 95th percentile latency, ms.
    pub p95: f64,
    /// Largest latency, ms.
    pub max: f64,
    /// Whether p50/p95 are exact nearest-rank percentiles of the bucket's samples (from raw
    /// samples, or one aggregated second), rather than merged from per-second aggregates.
    pub exact: bool,
}

/// A query whose values were checked, with the path trimmed.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub path: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub client: Option<&'a str>,
    pub since_ms: i64,
    pub until_ms: i64,
    pub step_ms: i64,
}

impl MetricsQuery {
    /// A query over `[since_ms, until_ms)` in buckets of `step_ms`, all series.
    pub fn range(since_ms: i64, until_ms: i64, step_ms: i64) -> Self {
        Self {
            since_ms,
            until_ms,
            step_ms,
            ..Self::default()
        }
    }

    /// Checks every value; errors are [`StoreError::BadQuery`] naming the parameter.
    pub(crate) fn check(&self) -> Result<Checked<'_>, StoreError> {
        let bad = |msg: String| Err(StoreError::BadQuery(msg));
        if self.step_ms < 1000 || self.step_ms % 1000 != 0 {
            return bad(format!(
                "step: {} ms, must be a positive multiple of 1000",
                self.step_ms
            ));
        }
        if self.since_ms < 0 || self.since_ms > MAX_UNIX_MS {
            return bad(format!(
                "since: {} out of range 0..={MAX_UNIX_MS}",
                self.since_ms
            ));
        }
        if self.until_ms < 0 || self.until_ms > MAX_UNIX_MS {
            return bad(format!(
                "until: {} out of range 0..={MAX_UNIX_MS}",
                self.until_ms
            ));
        }
        if self.since_ms > self.until_ms {
            return bad(format!(
                "since ({}) is after until ({})",
                self.since_ms, self.until_ms
            ));
        }
        let buckets = (self.until_ms - self.since_ms) / self.step_ms;
        if buckets > MAX_BUCKETS {
            return bad(format!(
                "range / step gives {buckets} buckets, at most {MAX_BUCKETS} allowed"
            ));
        }
        let path = match &self.path {
            Some(p) => Some(
                livefeed_media::path::validate(p)
                    .map_err(|e| StoreError::BadQuery(format!("path: {e}")))?,
            ),
            None => None,
        };
        if let Some(stage) = &self.stage {
            check_stage(stage).map_err(|r| StoreError::BadQuery(format!("stage: {r}")))?;
        }
        if let Some(client) = &self.client {
            check_client(client).map_err(|r| StoreError::BadQuery(format!("client: {r}")))?;
        }
        Ok(Checked {
            path,
            stage: self.stage.as_deref(),
            client: self.client.as_deref(),
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            step_ms: self.step_ms,
        })
    }
}

/// The bucket a millisecond instant falls in.
pub(crate) fn bucket_of(unix_ms: i64, step_ms: i64) -> i64 {
    unix_ms - unix_ms.rem_euclid(step_ms)
}

/// Accumulates per-second aggregate rows into one bucket.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    count: u64,
    seconds: u32,
    weighted_p50: f64,
    weighted_p95: f64,
    max: f64,
}

impl Merge {
    /// Adds one second's row.
    pub fn add(&mut self, count: u64, p50: f64, p95: f64, max: f64) {
        let w = count as f64;
        self.max = if self.count == 0 {
            max
        } else {
            self.max.max(max)
        };
        self.count += count;
        self.seconds += 1;
        self.weighted_p50 += w * p50;
        self.weighted_p95 += w * p95;
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `(count, p50, p95, max, exact)`.
    pub fn finish(&self) -> (u64, f64, f64, f64, bool) {
        let w = self.count as f64;
        (
            self.count,
            self.weighted_p50 / w,
            self.weighted_p95 / w,
            self.max,
            self.seconds == 1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_the_epoch() {
        assert_eq!(bucket_of(12_345, 5_000), 10_000);
        assert_eq!(bucket_of(10_000, 5_000), 10_000);
        assert_eq!(bucket_of(9_999, 1_000), 9_000);
    }

    #[test]
    fn merge_weights_by_count() {
        let mut m = Merge::default();
        m.add(1, 10.0, 20.0, 30.0);
        m.add(3, 30.0, 40.0, 25.0);
        assert_eq!(m.finish(), (4, 25.0, 35.0, 30.0, false));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let cases = [
            (MetricsQuery::range(0, 1000, 0), "step"),
            (MetricsQuery::range(0, 1000, 1500), "step"),
            (MetricsQuery::range(-1, 1000, 1000), "since"),
            (MetricsQuery::range(0, i64::MAX, 1000), "until"),
            (MetricsQuery::range(2000, 1000, 1000), "since"),
            (MetricsQuery::range(0, 100_000_000, 1000), "buckets"),
        ];
        for (q, word) in cases {
            match q.check() {
                Err(StoreError::BadQuery(msg)) => assert!(msg.contains(word), "{msg}"),
                other => panic!("{q:?}: {other:?}"),
            }
        }
        let mut q = MetricsQuery::range(0, 1000, 1000);
        q.path = Some("/live/".into());
        assert_eq!(q.check().expect("ok").path, Some("live"));
    }
}
