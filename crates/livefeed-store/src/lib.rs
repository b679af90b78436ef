//! The latency metrics store: samples from every stage and client, kept raw for a short window
//! and as per-second aggregates for longer, in one SQLite file.
//!
//! ```text
//! POST /api/v1/metrics ─▶ parse_samples_json ─▶ Store::insert ─▶ raw + pending seconds
//!                                     periodic: Store::aggregate(now) ─▶ per-second rows
//!                                     periodic: Store::retain(now)    ─▶ delete, shrink file
//! GET /api/v1/metrics  ─▶ MetricsQuery ─▶ Store::query ─▶ Vec<Point>
//! ```
//!
//! Contract:
//! - The API is synchronous; a [`Store`] owns one connection and is meant for one thread
//!   (`spawn_blocking` or a dedicated thread in the server). Time is passed in (`*_at`,
//!   `aggregate(now)`, `retain(now)`) so tests are deterministic; [`Store::insert`] reads the
//!   wall clock.
//! - [`Store::insert_at`] is all-or-nothing per batch; `Ok` means committed. The database runs in
//!   WAL mode; with the default [`Durability::ProcessCrash`] (`synchronous=NORMAL`) a committed
//!   batch survives a crash of the process and any restart, but the last batches before a power
//!   loss or kernel crash may be rolled back (never corrupted). That matches the promise "no
//!   acknowledged sample is lost on a clean shutdown or a restart" without an `fsync` per batch,
//!   which would cap the ingest rate at the disk's flush rate. [`Durability::PowerLoss`]
//!   (`synchronous=FULL`) is there for whoever wants that too.
//! - Aggregation is explicit: [`Store::aggregate`] folds finished seconds; late samples mark
//!   their second for recomputation. [`Store::retain`] folds whatever its deletion would lose.
//! - Errors caused by the caller's input ([`StoreError::is_client_error`]) leave the store
//!   unchanged and map to HTTP 400; the others are server faults.

#![deny(missing_docs)]

pub mod query;
mod sample;
mod schema;
mod store;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use query::{MetricsQuery, Point, MAX_BUCKETS, MAX_UNIX_MS};
pub use sample::{
    check_client, check_stage, parse_samples_json, Sample, SampleBatch, MAX_CLIENT_LEN,
    MAX_LATENCY_MS, MIN_LATENCY_MS, STAGES, STAGE_DISPLAYED,
};
pub use schema::SCHEMA_VERSION;
pub use store::{Retained, Store, StoreReader, DB_FILE, MAX_FUTURE_MS, MAX_RAW_QUERY_MS};

/// How much a committed insert survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: survives process crashes and restarts; a power loss may roll back
    /// the last commits. No `fsync` per commit (only at checkpoints).
    #[default]
    ProcessCrash,
    /// `synchronous=FULL`: also survives power loss, at one `fsync` per insert.
    PowerLoss,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::ProcessCrash => "NORMAL",
            Durability::PowerLoss => "FULL",
        }
    }
}

/// Store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// How long raw samples are kept (default 1 h); at least 1 s, at most
    /// `aggregate_retention`. Also how late a sample may arrive.
    pub raw_retention: Duration,
    /// How long per-second aggregates are kept (default 7 days).
    pub aggregate_retention: Duration,
    /// Most samples per insert call (default 10 000).
    pub max_batch: usize,
    /// Size budget of the database file (with its WAL), bytes: retention deletes older data
    /// early to stay under it (`None`: the retention windows alone bound the file).
    pub max_bytes: Option<u64>,
    /// Most series (path, stage, client) with data at once (default 1000): a batch that would
    /// add more is refused whole, so client-named series cannot grow the file without bound.
    pub max_series: usize,
    /// `synchronous` level (default [`Durability::ProcessCrash`]).
    pub durability: Durability,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            raw_retention: Duration::from_secs(3600),
            aggregate_retention: Duration::from_secs(7 * 24 * 3600),
            max_batch: 10_000,
            max_series: 1000,
            max_bytes: None,
            durability: Durability::default(),
        }
    }
}

impl StoreConfig {
    /// Checks the values; returns the retentions in ms.
    fn check(&self) -> Result<(i64, i64), StoreError> {
        let ms = |d: Duration, name: &str| {
            i64::try_from(d.as_millis())
                .ok()
                .filter(|&ms| (1000..=MAX_UNIX_MS).contains(&ms))
                .ok_or_else(|| StoreError::Config(format!("{name}: {d:?} is out of range")))
        };
        let raw = ms(self.raw_retention, "raw_retention")?;
        let agg = ms(self.aggregate_retention, "aggregate_retention")?;
        if raw > agg {
            return Err(StoreError::Config(
                "raw_retention is longer than aggregate_retention".into(),
            ));
        }
        if self.max_batch == 0 {
            return Err(StoreError::Config("max_batch is 0".into()));
        }
        Ok((raw, agg))
    }
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A sample of the batch is invalid; the batch was refused whole.
    #[error("sample {index}: {field}: {reason}")]
    Invalid {
        /// Position of the first bad sample in the batch.
        index: usize,
        /// Its bad field (`path`, `stage`, `client`, `unix_ms`, `latency_ms`).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The batch is larger than [`StoreConfig::max_batch`].
    #[error("batch of {len} samples exceeds the limit of {max}")]
    TooMany {
        /// Samples in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The batch would create more series than [`StoreConfig::max_series`].
    #[error(
        "the store holds {max} series (path, stage, client) already, the most it keeps; \
             this batch names new ones"
    )]
    TooManySeries {
        /// The limit.
        max: usize,
    },
    /// The request body is not the expected JSON.
    #[error("malformed metrics JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A query value is out of range; the message names the parameter.
    #[error("bad metrics query: {0}")]
    BadQuery(String),
    /// A [`StoreConfig`] value is unusable.
    #[error("bad metrics store configuration: {0}")]
    Config(String),
    /// The database file is not a metrics store this build can use.
    #[error("metrics store schema: {0}")]
    Schema(String),
    /// SQLite failed.
    #[error("metrics store sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// File system access failed.
    #[error("metrics store I/O on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the caller's input caused it (HTTP 400): [`StoreError::Invalid`],
    /// [`StoreError::TooMany`], [`StoreError::Json`], [`StoreError::BadQuery`].
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::Invalid { .. }
                | StoreError::TooManySeries { .. }
                | StoreError::TooMany { .. }
                | StoreError::Json(_)
                | StoreError::BadQuery(_)
        )
    }
}

/// The wall clock in Unix ms (0 before the epoch).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
