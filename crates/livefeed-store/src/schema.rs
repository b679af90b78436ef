//! The SQLite schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! Version 1:
//! - `series(id, path, stage, client)`: one row per (path, stage, client), so raw and aggregate
//!   rows carry a small integer instead of three strings. A series row is removed by retention
//!   once no raw, aggregate or pending row refers to it.
//! - `raw(series, unix_ms, latency_ms)`, indexed on `(series, unix_ms)`: every accepted sample,
//!   kept for the raw retention window.
//! - `agg(series, second, count, p50, p95, max)`, keyed `(series, second)`: one row per Unix
//!   second that has samples; the row covers `[second * 1000, second * 1000 + 1000)` ms.
//! - `dirty(series, second)`: seconds that received samples since they were last folded into
//!   `agg` (new or late samples); `aggregate` recomputes exactly these from `raw`.
//! - `meta(key, value)`: `raw_floor_ms`, the instant before which raw samples may have been
//!   deleted by retention (inserts older than it are refused, so every aggregate can always be
//!   recomputed from complete raw data).

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Migration `i` takes the database from version `i` to `i + 1`.
const MIGRATIONS: [&str; 1] = [r#"
CREATE TABLE series (
    id     INTEGER PRIMARY KEY,
    path   TEXT NOT NULL,
    stage  TEXT NOT NULL,
    client TEXT NOT NULL,
    UNIQUE (path, stage, client)
);
CREATE TABLE raw (
    series     INTEGER NOT NULL,
    unix_ms    INTEGER NOT NULL,
    latency_ms REAL NOT NULL
);
CREATE INDEX raw_by_series_time ON raw (series, unix_ms);
CREATE TABLE agg (
    series INTEGER NOT NULL,
    second INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    p50    REAL NOT NULL,
    p95    REAL NOT NULL,
    max    REAL NOT NULL,
    PRIMARY KEY (series, second)
) WITHOUT ROWID;
CREATE TABLE dirty (
    series INTEGER NOT NULL,
    second INTEGER NOT NULL,
    PRIMARY KEY (series, second)
) WITHOUT ROWID;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('raw_floor_ms', 0);
"#];

/// The database's schema version; refuses one newer than this build, or a non-empty database
/// that is not ours (version 0 with tables).
pub fn check_version(conn: &Connection) -> Result<i64, StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Schema(format!(
            "schema version {version} is newer than this build supports ({SCHEMA_VERSION})"
        )));
    }
    if version == 0 {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(StoreError::Schema(
                "the file has tables but no livefeed schema version: not a metrics store".into(),
            ));
        }
    }
    Ok(version)
}

/// Applies every migration after `from`, each in its own transaction with its version bump.
pub fn migrate(conn: &mut Connection, from: i64) -> Result<(), StoreError> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let to = i as i64 + 1;
        if to <= from {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
        tracing::info!(version = to, "metrics store schema migrated");
    }
    Ok(())
}
