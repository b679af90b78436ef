//! [`Store`]: one SQLite file, one connection, synchronous calls.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use livefeed_media::latency::summarize;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::query::{bucket_of, Merge};
use crate::{schema, unix_now_ms, MetricsQuery, Point, Sample, StoreConfig, StoreError};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "metrics.sqlite3";

/// How far in the future (server clock) a sample's `unix_ms` may lie: clients correct their
/// clock to the server's within a few ms, so a minute ahead is a broken clock, and accepting it
/// would keep rows beyond retention.
pub const MAX_FUTURE_MS: i64 = 60_000;

/// How long a call waits for another connection's lock (e.g. an `sqlite3` shell) before
/// failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL is truncated back to this size after an automatic checkpoint (every 1000 pages, about
/// 4 MiB), so a burst does not leave a large WAL file behind even between [`Store::retain`]
/// calls.
const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// What [`Store::retain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retained {
    /// Raw samples deleted.
    pub raw_deleted: u64,
    /// Per-second aggregate rows deleted.
    pub aggregates_deleted: u64,
    /// Pending seconds folded into aggregates before their raw samples were deleted.
    pub folded: u64,
    /// The file was over its size budget and older data went early.
    pub shrunk: bool,
    /// A reader kept the WAL from being checkpointed (the file shrinks at the next run).
    pub checkpoint_blocked: bool,
}

/// The longest range answered from raw samples (exact percentiles), ms; longer ranges are
/// answered from per-second aggregates, so a query reads at most this window of raw rows.
pub const MAX_RAW_QUERY_MS: i64 = 15 * 60_000;

/// Raw samples kept at least, however small the size budget (ms).
const MIN_RAW_KEEP_MS: i64 = 10_000;
/// Aggregates kept at least, however small the size budget (ms).
const MIN_AGGREGATE_KEEP_MS: i64 = 60_000;

/// The latency metrics store. Not `Sync`: own it from one thread (or behind a mutex) and call it
/// from `spawn_blocking` or a dedicated thread; every call is a short synchronous transaction.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    config: StoreConfig,
    db_path: PathBuf,
    raw_retention_ms: i64,
    aggregate_retention_ms: i64,
    /// Raw samples before this instant may have been deleted (persisted in `meta`).
    raw_floor_ms: i64,
}

/// A sample that passed validation, path trimmed.
struct Row<'a> {
    key: (&'a str, &'a str, &'a str),
    unix_ms: i64,
    latency_ms: f64,
}

impl Store {
    /// Opens (creating if needed) `dir/metrics.sqlite3`, creating `dir` too, and migrates the
    /// schema. A new file gets `auto_vacuum=INCREMENTAL` (see [`Store::retain`]); every open
    /// sets WAL mode and the `synchronous` level of [`StoreConfig::durability`].
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        let (raw_retention_ms, aggregate_retention_ms) = config.check()?;
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let db_path = dir.join(DB_FILE);
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let version = schema::check_version(&conn)?;
        if version == 0 {
            // Only effective before the first table exists; must precede the switch to WAL.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Schema(format!(
                "could not switch {} to WAL mode (got {mode})",
                db_path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", config.durability.pragma())?;
        let _: i64 =
            conn.pragma_update_and_check(None, "journal_size_limit", JOURNAL_SIZE_LIMIT, |r| {
                r.get(0)
            })?;
        schema::migrate(&mut conn, version)?;
        let raw_floor_ms: i64 = conn.query_row(
            "SELECT value FROM meta WHERE key = 'raw_floor_ms'",
            [],
            |r| r.get(0),
        )?;
        tracing::info!(path = %db_path.display(), "metrics store opened");
        Ok(Store {
            conn,
            config,
            db_path,
            raw_retention_ms,
            aggregate_retention_ms,
            raw_floor_ms,
        })
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// [`Store::insert_at`] with the wall clock as `now`.
    pub fn insert(&mut self, samples: &[Sample]) -> Result<usize, StoreError> {
        self.insert_at(samples, unix_now_ms())
    }

    /// [`Store::insert`] for the server's own samples: never refused for the series cap (which
    /// bounds what clients name, and must not let them shut the server's own figures out).
    pub fn insert_own(&mut self, samples: &[Sample]) -> Result<usize, StoreError> {
        self.insert_capped(samples, unix_now_ms(), usize::MAX)
    }

    /// Stores `samples` in one transaction and returns how many. All or nothing: a batch longer
    /// than [`StoreConfig::max_batch`] is [`StoreError::TooMany`]; the first sample that fails
    /// [`Sample::validate`], or whose `unix_ms` lies before `now_unix_ms - raw_retention` (or
    /// before data retention already deleted) or more than [`MAX_FUTURE_MS`] after
    /// `now_unix_ms`, makes it [`StoreError::Invalid`] with that sample's index and field, and
    /// nothing is written. When this returns `Ok` the transaction is committed: the samples
    /// survive a process crash and a restart (and a power loss under
    /// [`crate::Durability::PowerLoss`]).
    pub fn insert_at(&mut self, samples: &[Sample], now_unix_ms: i64) -> Result<usize, StoreError> {
        self.insert_capped(samples, now_unix_ms, self.config.max_series)
    }

    fn insert_capped(
        &mut self,
        samples: &[Sample],
        now_unix_ms: i64,
        max_series: usize,
    ) -> Result<usize, StoreError> {
        if samples.len() > self.config.max_batch {
            return Err(StoreError::TooMany {
                len: samples.len(),
                max: self.config.max_batch,
            });
        }
        let rows = self.check_samples(samples, now_unix_ms)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = series_ids(&tx, &rows, max_series)?;
        let mut seconds = HashSet::new();
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO raw (series, unix_ms, latency_ms) VALUES (?1, ?2, ?3)",
            )?;
            for row in &rows {
                let id = ids[&row.key];
                put.execute(params![id, row.unix_ms, row.latency_ms])?;
                seconds.insert((id, row.unix_ms.div_euclid(1000)));
            }
            let mut mark =
                tx.prepare_cached("INSERT OR IGNORE INTO dirty (series, second) VALUES (?1, ?2)")?;
            for (id, second) in seconds {
                mark.execute(params![id, second])?;
            }
        }
        tx.commit()?;
        Ok(rows.len())
    }

    fn check_samples<'a>(
        &self,
        samples: &'a [Sample],
        now_unix_ms: i64,
    ) -> Result<Vec<Row<'a>>, StoreError> {
        let oldest = self
            .raw_floor_ms
            .max(now_unix_ms.saturating_sub(self.raw_retention_ms));
        let newest = now_unix_ms.saturating_add(MAX_FUTURE_MS);
        samples
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let path = s.checked_path(index)?;
                if s.unix_ms < oldest || s.unix_ms > newest {
                    return Err(StoreError::Invalid {
                        index,
                        field: "unix_ms",
                        reason: format!(
                            "{} is outside the accepted window [{oldest}, {newest}] \
                             (raw retention back, {MAX_FUTURE_MS} ms ahead of the server clock)",
                            s.unix_ms
                        ),
                    });
                }
                Ok(Row {
                    key: (path, s.stage.as_str(), s.client.as_str()),
                    unix_ms: s.unix_ms,
                    latency_ms: s.latency_ms,
                })
            })
            .collect()
    }

    /// Folds every second that received samples since it was last folded, and that ended at or
    /// before `up_to_unix_ms` (seconds `s` with `(s + 1) * 1000 <= up_to_unix_ms`), into its
    /// per-second row: count, nearest-rank p50 and p95 ([`livefeed_media::latency::summarize`])
    /// and max, recomputed from all the second's raw samples. Late samples therefore update
    /// their second on the next call, and calling again with nothing new writes nothing.
    /// Returns the number of rows written.
    pub fn aggregate(&mut self, up_to_unix_ms: i64) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let written = fold_dirty(&tx, up_to_unix_ms.div_euclid(1000))?;
        tx.commit()?;
        Ok(written)
    }

    /// Points for `q` (see [`crate::query`] for bounds, buckets and exactness), ordered by
    /// path, stage, client and bucket. Invalid values are [`StoreError::BadQuery`].
    pub fn query(&self, q: &MetricsQuery) -> Result<Vec<Point>, StoreError> {
        query_points(&self.conn, self.raw_floor_ms, q)
    }

    /// A read-only handle on the same database, for queries on another thread: in WAL mode
    /// readers never wait for the writer, nor the writer for them.
    pub fn reader(&self) -> Result<StoreReader, StoreError> {
        StoreReader::open(&self.db_path)
    }

    /// Applies retention at `now_unix_ms`: folds pending seconds older than the raw cutoff (so
    /// no sample is lost unaggregated), deletes raw samples before `now - raw_retention` and
    /// aggregate rows of seconds before `now - aggregate_retention` (both rounded down to the
    /// second), and series left without data. Then, if anything was deleted, returns the freed
    /// pages to the file system with `PRAGMA incremental_vacuum`; and always checkpoints the
    /// WAL with `wal_checkpoint(TRUNCATE)`. Call it periodically (every 10–60 s is plenty).
    ///
    /// Why both: deleted rows only put pages on SQLite's free list. Those are reused by later
    /// inserts, so at a steady rate the file stops growing anyway, but it would stay at its
    /// high-water mark forever after a burst (a load test, a dashboard left open with many
    /// clients). The database is created with `auto_vacuum=INCREMENTAL`, so
    /// `incremental_vacuum` moves live pages down and truncates the free tail — cheap, as only
    /// this call's freed pages move, unlike a full `VACUUM` that rewrites the file and needs as
    /// much space again. In WAL mode those truncations land in the main file at checkpoint
    /// time; `TRUNCATE` does that checkpoint now and resets the WAL to zero bytes, so the WAL
    /// does not keep a burst's size either. The file is thus bounded by the live data of the
    /// retention windows plus one batch.
    ///
    /// With [`crate::StoreConfig::max_bytes`], a file still over that size afterwards is
    /// shrunk: the raw window is halved (down to 10 s), then the aggregate window (down to a
    /// minute), retention applied again each time, until the file fits.
    pub fn retain(&mut self, now_unix_ms: i64) -> Result<Retained, StoreError> {
        let (mut raw_keep, mut agg_keep) = (self.raw_retention_ms, self.aggregate_retention_ms);
        let mut done = self.retain_windows(now_unix_ms, raw_keep, agg_keep)?;
        let Some(max_bytes) = self.config.max_bytes else {
            return Ok(done);
        };
        // A blocked checkpoint leaves the freed pages in the file: shrinking further would only
        // delete more (the next run, with the checkpoint done, sees the true size).
        while !done.checkpoint_blocked && self.file_size()? > max_bytes {
            if raw_keep > MIN_RAW_KEEP_MS {
                raw_keep = (raw_keep / 2).max(MIN_RAW_KEEP_MS);
            } else if agg_keep > MIN_AGGREGATE_KEEP_MS {
                agg_keep = (agg_keep / 2).max(MIN_AGGREGATE_KEEP_MS);
            } else {
                break;
            }
            let more = self.retain_windows(now_unix_ms, raw_keep, agg_keep.max(raw_keep))?;
            done.raw_deleted += more.raw_deleted;
            done.aggregates_deleted += more.aggregates_deleted;
            done.folded += more.folded;
            done.shrunk = true;
            done.checkpoint_blocked = more.checkpoint_blocked;
        }
        if done.shrunk {
            tracing::warn!(
                max_bytes,
                raw_kept_s = raw_keep / 1000,
                aggregates_kept_s = agg_keep / 1000,
                "metrics store over its size budget: older samples deleted early"
            );
        }
        Ok(done)
    }

    /// Retention keeping `raw_keep_ms` of raw samples and `agg_keep_ms` of aggregates.
    fn retain_windows(
        &mut self,
        now_unix_ms: i64,
        raw_keep_ms: i64,
        agg_keep_ms: i64,
    ) -> Result<Retained, StoreError> {
        let raw_cutoff = floor_second(now_unix_ms.saturating_sub(raw_keep_ms));
        let raw_floor = self.raw_floor_ms.max(raw_cutoff);
        let agg_cutoff_second = now_unix_ms.saturating_sub(agg_keep_ms).div_euclid(1000);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = Retained {
            folded: fold_dirty(&tx, raw_floor.div_euclid(1000))? as u64,
            ..Retained::default()
        };
        let ids = tx
            .prepare("SELECT id FROM series")?
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        for id in ids {
            done.raw_deleted += tx.execute(
                "DELETE FROM raw WHERE series = ?1 AND unix_ms < ?2",
                params![id, raw_floor],
            )? as u64;
            done.aggregates_deleted += tx.execute(
                "DELETE FROM agg WHERE series = ?1 AND second < ?2",
                params![id, agg_cutoff_second],
            )? as u64;
        }
        tx.execute(
            "DELETE FROM series WHERE
                 NOT EXISTS (SELECT 1 FROM raw WHERE raw.series = series.id)
             AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.series = series.id)
             AND NOT EXISTS (SELECT 1 FROM dirty WHERE dirty.series = series.id)",
            [],
        )?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'raw_floor_ms'",
            [raw_floor],
        )?;
        tx.commit()?;
        self.raw_floor_ms = raw_floor;
        if done.raw_deleted + done.aggregates_deleted > 0 {
            self.incremental_vacuum()?;
        }
        done.checkpoint_blocked = !self.checkpoint()?;
        tracing::debug!(?done, raw_floor, "metrics retention applied");
        Ok(done)
    }

    /// Paths that have data (raw, pending or aggregated), sorted.
    pub fn paths(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT path FROM series ORDER BY path")?;
        let paths = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(paths)
    }

    /// Bytes on disk: the database file plus its WAL (the `-shm` index, a few tens of KiB of
    /// shared memory, is not counted).
    pub fn file_size(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        let wal = PathBuf::from(format!("{}-wal", self.db_path.display()));
        for path in [&self.db_path, &wal] {
            match std::fs::metadata(path) {
                Ok(m) => total += m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(total)
    }

    /// Returns every free page to the file system. The pragma frees one page per step, so it
    /// is stepped to the end (`execute_batch` steps once: one page).
    fn incremental_vacuum(&self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }

    /// Checkpoints the WAL into the database and truncates it.
    /// Returns whether it completed: a reader in the middle of a query blocks it, and then it
    /// gives up at once rather than hold up inserts (the next retention run tries again).
    fn checkpoint(&self) -> Result<bool, StoreError> {
        self.conn.busy_timeout(Duration::ZERO)?;
        let result: Result<(i64, i64, i64), _> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        let (busy, log, done) = result?;
        if busy != 0 {
            tracing::debug!(log, done, "metrics WAL checkpoint blocked by a reader");
        }
        Ok(busy == 0)
    }

    /// Checkpoints and closes, reporting errors that dropping would swallow. Dropping the store
    /// is also safe: committed data is in the WAL, which SQLite replays on the next open.
    pub fn close(self) -> Result<(), StoreError> {
        if !self.checkpoint()? {
            tracing::debug!("metrics WAL left for the next open (a reader was active)");
        }
        self.conn.close().map_err(|(_, e)| StoreError::Sqlite(e))
    }
}

/// `(count, p50, p95, max, exact)` of one bucket.
type Figures = (u64, f64, f64, f64, bool);

fn exact_figures((bucket, samples): (i64, Vec<f64>)) -> Option<(i64, Figures)> {
    summarize(&samples).map(|s| (bucket, (s.count as u64, s.p50, s.p95, s.max, true)))
}

/// The series id of every distinct key in `rows`, creating missing series.
fn series_ids<'a>(
    tx: &Transaction<'_>,
    rows: &[Row<'a>],
    max_series: usize,
) -> Result<HashMap<(&'a str, &'a str, &'a str), i64>, StoreError> {
    let mut ids = HashMap::new();
    let mut count: Option<usize> = None;
    let mut find =
        tx.prepare_cached("SELECT id FROM series WHERE path = ?1 AND stage = ?2 AND client = ?3")?;
    let mut create =
        tx.prepare_cached("INSERT INTO series (path, stage, client) VALUES (?1, ?2, ?3)")?;
    for row in rows {
        if ids.contains_key(&row.key) {
            continue;
        }
        let (path, stage, client) = row.key;
        let id = match find
            .query_row(params![path, stage, client], |r| r.get(0))
            .optional()?
        {
            Some(id) => id,
            None => {
                let n = match count {
                    Some(n) => n,
                    None => tx.query_row("SELECT COUNT(*) FROM series", [], |r| {
                        r.get::<_, i64>(0).map(|n| n.max(0) as usize)
                    })?,
                };
                if n >= max_series {
                    return Err(StoreError::TooManySeries { max: max_series });
                }
                count = Some(n + 1);
                create.execute(params![path, stage, client])?;
                tx.last_insert_rowid()
            }
        };
        ids.insert(row.key, id);
    }
    Ok(ids)
}

/// Recomputes the aggregate row of every pending second before `end_second` from its raw
/// samples and clears those pending marks; returns rows written.
fn fold_dirty(tx: &Transaction<'_>, end_second: i64) -> Result<usize, StoreError> {
    let pending = tx
        .prepare_cached("SELECT series, second FROM dirty WHERE second < ?1")?
        .query_map([end_second], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut read = tx.prepare_cached(
        "SELECT latency_ms FROM raw WHERE series = ?1 AND unix_ms >= ?2 AND unix_ms < ?3",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT INTO agg (series, second, count, p50, p95, max) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (series, second) DO UPDATE SET
             count = excluded.count, p50 = excluded.p50, p95 = excluded.p95, max = excluded.max",
    )?;
    let mut written = 0;
    for (series, second) in &pending {
        let start = second * 1000;
        let samples = read
            .query_map(params![series, start, start + 1000], |r| r.get::<_, f64>(0))?
            .collect::<Result<Vec<f64>, _>>()?;
        // Raw samples of a pending second are never deleted before it is folded, and inserts
        // older than the retention floor are refused, so `samples` is the complete second.
        if let Some(s) = summarize(&samples) {
            write.execute(params![series, second, s.count as i64, s.p50, s.p95, s.max])?;
            written += 1;
        }
    }
    tx.execute("DELETE FROM dirty WHERE second < ?1", [end_second])?;
    Ok(written)
}

fn floor_second(ms: i64) -> i64 {
    ms - ms.rem_euclid(1000)
}

/// The first second whose start is at or after `ms`.
fn ceil_second(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

/// Points for `q` (see [`crate::query`] for bounds, buckets and exactness), ordered by
/// path, stage, client and bucket. Invalid values are [`StoreError::BadQuery`].
fn query_points(
    conn: &Connection,
    raw_floor_ms: i64,
    q: &MetricsQuery,
) -> Result<Vec<Point>, StoreError> {
    let q = q.check()?;
    let mut sql = String::from("SELECT id, path, stage, client FROM series WHERE 1");
    let mut args: Vec<&str> = Vec::new();
    for (column, value) in [("path", q.path), ("stage", q.stage), ("client", q.client)] {
        if let Some(v) = value {
            args.push(v);
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    sql.push_str(" ORDER BY path, stage, client");
    let mut stmt = conn.prepare_cached(&sql)?;
    let series = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<Vec<(i64, String, String, String)>, _>>()?;
    // Raw samples give exact percentiles but are many (a flood of them is millions an hour):
    // only short ranges read them, longer ones the per-second aggregates.
    let from_raw = q.since_ms >= raw_floor_ms && q.until_ms - q.since_ms <= MAX_RAW_QUERY_MS;
    let mut points = Vec::new();
    for (id, path, stage, client) in series {
        let figures = if from_raw {
            raw_buckets(conn, id, q.since_ms, q.until_ms, q.step_ms)?
        } else {
            aggregate_buckets(conn, id, q.since_ms, q.until_ms, q.step_ms)?
        };
        points.extend(figures.into_iter().map(|(bucket_ms, f)| Point {
            path: path.clone(),
            stage: stage.clone(),
            client: client.clone(),
            bucket_ms,
            count: f.0,
            p50: f.1,
            p95: f.2,
            max: f.3,
            exact: f.4,
        }));
    }
    Ok(points)
}

/// Exact figures per bucket from raw samples in `[since, until)`.
fn raw_buckets(
    conn: &Connection,
    series: i64,
    since: i64,
    until: i64,
    step: i64,
) -> Result<Vec<(i64, Figures)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT unix_ms, latency_ms FROM raw
         WHERE series = ?1 AND unix_ms >= ?2 AND unix_ms < ?3 ORDER BY unix_ms",
    )?;
    let mut rows = stmt.query(params![series, since, until])?;
    let mut out = Vec::new();
    let mut current: Option<(i64, Vec<f64>)> = None;
    while let Some(row) = rows.next()? {
        let (t, ms): (i64, f64) = (row.get(0)?, row.get(1)?);
        let bucket = bucket_of(t, step);
        match &mut current {
            Some((b, v)) if *b == bucket => v.push(ms),
            _ => {
                if let Some(done) = current.replace((bucket, vec![ms])) {
                    out.extend(exact_figures(done));
                }
            }
        }
    }
    out.extend(current.and_then(exact_figures));
    Ok(out)
}

/// Merged figures per bucket from the per-second rows whose second starts in
/// `[since, until)`.
fn aggregate_buckets(
    conn: &Connection,
    series: i64,
    since: i64,
    until: i64,
    step: i64,
) -> Result<Vec<(i64, Figures)>, StoreError> {
    let first = ceil_second(since);
    let end = ceil_second(until);
    let mut stmt = conn.prepare_cached(
        "SELECT second, count, p50, p95, max FROM agg
         WHERE series = ?1 AND second >= ?2 AND second < ?3 ORDER BY second",
    )?;
    let mut rows = stmt.query(params![series, first, end])?;
    let mut out = Vec::new();
    let mut current: Option<(i64, Merge)> = None;
    while let Some(row) = rows.next()? {
        let second: i64 = row.get(0)?;
        let count = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
        let (p50, p95, max): (f64, f64, f64) = (row.get(2)?, row.get(3)?, row.get(4)?);
        let bucket = bucket_of(second * 1000, step);
        if current.as_ref().is_none_or(|(b, _)| *b != bucket) {
            if let Some((b, m)) = current.replace((bucket, Merge::default())) {
                out.push((b, m.finish()));
            }
        }
        if let Some((_, m)) = &mut current {
            m.add(count, p50, p95, max);
        }
    }
    out.extend(
        current
            .filter(|(_, m)| !m.is_empty())
            .map(|(b, m)| (b, m.finish())),
    );
    Ok(out)
}

/// A read-only connection to a store's file: queries without holding up inserts.
#[derive(Debug)]
pub struct StoreReader {
    conn: Connection,
}

impl StoreReader {
    fn open(db_path: &Path) -> Result<StoreReader, StoreError> {
        let conn = Connection::open_with_flags(
            db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(StoreReader { conn })
    }

    /// [`Store::query`], on this connection: the raw floor and every series are read in one
    /// read transaction, so retention running meanwhile cannot answer half a range.
    pub fn query(&self, q: &MetricsQuery) -> Result<Vec<Point>, StoreError> {
        let snapshot = self.conn.unchecked_transaction()?;
        let raw_floor_ms: i64 = snapshot.query_row(
            "SELECT value FROM meta WHERE key = 'raw_floor_ms'",
            [],
            |r| r.get(0),
        )?;
        let points = query_points(&snapshot, raw_floor_ms, q)?;
        snapshot.finish()?;
        Ok(points)
    }
}
