//! Helpers shared by the store tests: temporary data directories and sample builders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use livefeed_store::{MetricsQuery, Point, Sample, Store, StoreConfig};

/// A minute boundary (so divisible by every step the tests use), in Unix ms.
pub const T0: i64 = 1_699_999_980_000;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "livefeed-store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Raw samples kept 10 s, aggregates 1 h: short enough to push data out of the raw window.
pub fn short_config() -> StoreConfig {
    StoreConfig {
        raw_retention: Duration::from_secs(10),
        aggregate_retention: Duration::from_secs(3600),
        ..StoreConfig::default()
    }
}

pub fn open(dir: &TempDir, config: StoreConfig) -> Store {
    Store::open(dir.path(), config).expect("open store")
}

pub fn sample(path: &str, stage: &str, client: &str, unix_ms: i64, latency_ms: f64) -> Sample {
    Sample {
        path: path.into(),
        stage: stage.into(),
        client: client.into(),
        unix_ms,
        latency_ms,
    }
}

/// A `capture_to_displayed` sample from `browser-hls` on `live`.
pub fn shown(unix_ms: i64, latency_ms: f64) -> Sample {
    sample(
        "live",
        "capture_to_displayed",
        "browser-hls",
        unix_ms,
        latency_ms,
    )
}

/// Every point in `[since, until)` with the given step, all series.
pub fn all(store: &Store, since: i64, until: i64, step: i64) -> Vec<Point> {
    store
        .query(&MetricsQuery::range(since, until, step))
        .expect("query")
}

/// `(bucket offset from T0, count, p50, p95, max, exact)` of each point, for compact asserts.
pub fn figures(points: &[Point]) -> Vec<(i64, u64, f64, f64, f64, bool)> {
    points
        .iter()
        .map(|p| (p.bucket_ms - T0, p.count, p.p50, p.p95, p.max, p.exact))
        .collect()
}
