//! The store against a real SQLite file: insert → aggregate → query, ranges and filters, late
//! samples, retention and the file's size, restarts, and bad input.

mod common;

use std::time::Duration;

use common::{all, figures, open, sample, short_config, shown, TempDir, T0};
use livefeed_media::latency::summarize;
use livefeed_store::{
    parse_samples_json, Durability, MetricsQuery, Store, StoreConfig, StoreError, MAX_FUTURE_MS,
};

/// Percentiles of `values` as `(count, p50, p95, max)`, from the shared summarize function.
fn expect(values: &[f64]) -> (u64, f64, f64, f64) {
    let s = summarize(values).expect("non-empty");
    (s.count as u64, s.p50, s.p95, s.max)
}

#[test]
fn insert_aggregate_query_gives_nearest_rank_figures() {
    let dir = TempDir::new("roundtrip");
    let mut store = open(&dir, short_config());
    // Second 0: latencies 1..=100 in scrambled order; second 1: 0.5, 1.0, ..., 10.0.
    let first: Vec<f64> = (0..100).map(|i| f64::from((i * 37) % 100 + 1)).collect();
    let second: Vec<f64> = (1..=20).map(|k| f64::from(k) * 0.5).collect();
    let mut batch: Vec<_> = first
        .iter()
        .enumerate()
        .map(|(i, &ms)| shown(T0 + i as i64 * 10, ms))
        .collect();
    batch.extend(
        second
            .iter()
            .enumerate()
            .map(|(k, &ms)| shown(T0 + 1000 + k as i64 * 40, ms)),
    );
    assert_eq!(store.insert_at(&batch, T0 + 5000).expect("insert"), 120);

    // Only finished seconds are folded, each once.
    assert_eq!(store.aggregate(T0 + 1999).expect("aggregate"), 1);
    assert_eq!(store.aggregate(T0 + 1999).expect("aggregate"), 0);
    assert_eq!(store.aggregate(T0 + 2000).expect("aggregate"), 1);
    assert_eq!(store.aggregate(T0 + 9000).expect("aggregate"), 0);

    let (a, b) = (expect(&first), expect(&second));
    assert_eq!((a.1, a.2, a.3), (50.0, 95.0, 100.0));
    let per_second = |exact| {
        vec![
            (0, a.0, a.1, a.2, a.3, exact),
            (1000, b.0, b.1, b.2, b.3, exact),
        ]
    };
    // Within raw retention: exact, from raw samples.
    assert_eq!(figures(&all(&store, T0, T0 + 2000, 1000)), per_second(true));
    let union: Vec<f64> = first.iter().chain(&second).copied().collect();
    let u = expect(&union);
    assert_eq!(
        figures(&all(&store, T0, T0 + 2000, 2000)),
        vec![(0, u.0, u.1, u.2, u.3, true)]
    );

    // Push the raw samples out; the per-second rows answer with the same figures.
    let done = store.retain(T0 + 2000 + 10_000).expect("retain");
    assert_eq!((done.raw_deleted, done.folded), (120, 0));
    assert_eq!(figures(&all(&store, T0, T0 + 2000, 1000)), per_second(true));
    // Merged seconds: counts summed, max of maxima, count-weighted mean of percentiles.
    let merged = all(&store, T0, T0 + 2000, 2000);
    let p50 = (100.0 * a.1 + 20.0 * b.1) / 120.0;
    let p95 = (100.0 * a.2 + 20.0 * b.2) / 120.0;
    assert_eq!(figures(&merged), vec![(0, 120, p50, p95, 100.0, false)]);
    assert_ne!((p50, p95), (u.1, u.2), "the merge is an approximation");
    let p = &merged[0];
    assert_eq!(
        (p.path.as_str(), p.stage.as_str(), p.client.as_str()),
        ("live", "capture_to_displayed", "browser-hls")
    );
}

/// Samples at T0, T0+999, T0+1000, T0+2500 on live/displayed/browser-hls, plus one on `cam/1`
/// (decoded, receiver) at T0+500 and one on live/ingest/server at T0+1500.
fn bounds_fixture(store: &mut Store) {
    let batch = vec![
        shown(T0, 10.0),
        shown(T0 + 999, 20.0),
        shown(T0 + 1000, 30.0),
        shown(T0 + 2500, 40.0),
        sample("/cam/1/", "capture_to_decoded", "receiver", T0 + 500, 5.0),
        sample("live", "capture_to_ingest", "server", T0 + 1500, 7.0),
    ];
    store.insert_at(&batch, T0 + 3000).expect("insert");
}

/// `(path, stage, bucket offset, count)` per point.
fn keyed(store: &Store, q: &MetricsQuery) -> Vec<(String, String, i64, u64)> {
    store
        .query(q)
        .expect("query")
        .into_iter()
        .map(|p| (p.path, p.stage, p.bucket_ms - T0, p.count))
        .collect()
}

fn key(path: &str, stage: &str, offset: i64, count: u64) -> (String, String, i64, u64) {
    (path.into(), stage.into(), offset, count)
}

const SHOWN: &str = "capture_to_displayed";

#[test]
fn raw_query_bounds_steps_and_filters() {
    let dir = TempDir::new("bounds-raw");
    let mut store = open(&dir, short_config());
    bounds_fixture(&mut store);
    let range = |since, until, step| MetricsQuery::range(T0 + since, T0 + until, step);

    // since inclusive, until exclusive, sorted by path, stage, client, bucket.
    assert_eq!(
        keyed(&store, &range(0, 1000, 1000)),
        vec![
            key("cam/1", "capture_to_decoded", 0, 1),
            key("live", SHOWN, 0, 2)
        ]
    );
    assert_eq!(
        keyed(&store, &range(999, 2500, 1000)),
        vec![
            key("live", SHOWN, 0, 1),
            key("live", SHOWN, 1000, 1),
            key("live", "capture_to_ingest", 1000, 1),
        ]
    );
    assert!(keyed(&store, &range(1000, 1000, 1000)).is_empty());
    // A wide step merges seconds; buckets stay aligned to the epoch, not to `since`.
    assert_eq!(
        keyed(&store, &range(1, 60_000, 60_000))
            .into_iter()
            .filter(|k| k.1 == SHOWN)
            .collect::<Vec<_>>(),
        vec![key("live", SHOWN, 0, 3)]
    );
    // Filters, alone and combined; the path filter is trimmed like sample paths.
    let mut q = range(0, 3000, 3000);
    q.path = Some("/cam/1".into());
    assert_eq!(
        keyed(&store, &q),
        vec![key("cam/1", "capture_to_decoded", 0, 1)]
    );
    let mut q = range(0, 3000, 3000);
    q.stage = Some("capture_to_ingest".into());
    assert_eq!(
        keyed(&store, &q),
        vec![key("live", "capture_to_ingest", 0, 1)]
    );
    let mut q = range(0, 3000, 3000);
    q.client = Some("browser-hls".into());
    assert_eq!(keyed(&store, &q), vec![key("live", SHOWN, 0, 4)]);
    q.path = Some("cam/1".into());
    assert!(keyed(&store, &q).is_empty());
    assert_eq!(store.paths().expect("paths"), vec!["cam/1", "live"]);
}

#[test]
fn aggregate_query_bounds_steps_and_filters() {
    let dir = TempDir::new("bounds-agg");
    let mut store = open(&dir, short_config());
    bounds_fixture(&mut store);
    assert_eq!(store.aggregate(T0 + 3000).expect("aggregate"), 5);
    store.retain(T0 + 3000 + 10_000).expect("retain");
    let range = |since, until, step| MetricsQuery::range(T0 + since, T0 + until, step);

    // Whole seconds whose start is in [since, until).
    assert_eq!(
        keyed(&store, &range(0, 1000, 1000)),
        vec![
            key("cam/1", "capture_to_decoded", 0, 1),
            key("live", SHOWN, 0, 2)
        ]
    );
    assert_eq!(
        keyed(&store, &range(1000, 3000, 1000)),
        vec![
            key("live", SHOWN, 1000, 1),
            key("live", SHOWN, 2000, 1),
            key("live", "capture_to_ingest", 1000, 1),
        ]
    );
    // An unaligned bound: the second starting at T0 begins before `since`, so it is left out.
    let mut q = range(1, 3000, 3000);
    q.stage = Some(SHOWN.into());
    assert_eq!(keyed(&store, &q), vec![key("live", SHOWN, 0, 2)]);
    let mut q = range(0, 3000, 3000);
    q.client = Some("browser-hls".into());
    assert_eq!(keyed(&store, &q), vec![key("live", SHOWN, 0, 4)]);
    q.path = Some("cam/1".into());
    assert!(keyed(&store, &q).is_empty());
    let mut q = range(0, 60_000, 60_000);
    q.path = Some("cam/1".into());
    q.stage = Some("capture_to_decoded".into());
    q.client = Some("receiver".into());
    assert_eq!(
        keyed(&store, &q),
        vec![key("cam/1", "capture_to_decoded", 0, 1)]
    );
}

#[test]
fn late_samples_recompute_their_second() {
    let dir = TempDir::new("late");
    let mut store = open(&dir, short_config());
    store
        .insert_at(&[shown(T0 + 100, 10.0), shown(T0 + 200, 20.0)], T0 + 1000)
        .expect("insert");
    assert_eq!(store.aggregate(T0 + 1000).expect("aggregate"), 1);
    // 4 s late, within raw retention: the second is recomputed from all three samples.
    store
        .insert_at(&[shown(T0 + 300, 30.0)], T0 + 5000)
        .expect("late insert");
    assert_eq!(store.aggregate(T0 + 5000).expect("aggregate"), 1);
    assert_eq!(store.aggregate(T0 + 5000).expect("aggregate"), 0);
    let done = store.retain(T0 + 20_000).expect("retain");
    assert_eq!((done.raw_deleted, done.folded), (3, 0));
    assert_eq!(
        figures(&all(&store, T0, T0 + 1000, 1000)),
        vec![(0, 3, 20.0, 30.0, 30.0, true)]
    );

    // Later than raw retention — by the clock, or by what retention already deleted even if the
    // clock steps back — a sample is refused: its second could no longer be recomputed.
    for now in [T0 + 20_000, T0 + 5000] {
        match store.insert_at(&[shown(T0 + 400, 40.0)], now) {
            Err(StoreError::Invalid {
                index: 0,
                field: "unix_ms",
                ..
            }) => {}
            other => panic!("now {now}: {other:?}"),
        }
    }
}

#[test]
fn retention_folds_pending_seconds_before_deleting_raw() {
    let dir = TempDir::new("fold");
    let mut store = open(&dir, short_config());
    store
        .insert_at(&[shown(T0, 5.0), shown(T0 + 1500, 9.0)], T0 + 2000)
        .expect("insert");
    let done = store.retain(T0 + 30_000).expect("retain");
    assert_eq!((done.raw_deleted, done.folded), (2, 2));
    assert_eq!(
        figures(&all(&store, T0, T0 + 2000, 2000)),
        vec![(0, 2, 7.0, 7.0, 9.0, false)]
    );
}

#[test]
fn retention_deletes_old_aggregates_and_empty_series() {
    let dir = TempDir::new("expire");
    let config = StoreConfig {
        raw_retention: Duration::from_secs(10),
        aggregate_retention: Duration::from_secs(60),
        ..StoreConfig::default()
    };
    let mut store = open(&dir, config);
    let old = sample("old", "capture_to_encoded", "server", T0, 1.0);
    store.insert_at(&[old], T0 + 1000).expect("insert");
    store
        .insert_at(&[shown(T0 + 50_000, 2.0)], T0 + 51_000)
        .expect("insert");
    store.aggregate(T0 + 51_000).expect("aggregate");
    let done = store.retain(T0 + 61_000).expect("retain");
    assert_eq!((done.raw_deleted, done.aggregates_deleted), (2, 1));
    assert_eq!(store.paths().expect("paths"), vec!["live"]);
    let done = store.retain(T0 + 200_000).expect("retain");
    assert_eq!((done.raw_deleted, done.aggregates_deleted), (0, 1));
    assert!(store.paths().expect("paths").is_empty());
    assert!(all(&store, T0, T0 + 200_000, 1000).is_empty());
}

/// 200 000 samples, 2 000 per simulated second over four series, with aggregate + retain every
/// second: the file must level off at what the retention windows hold.
///
/// The bound: 10 s of raw data is at most 11 rounds × 2 000 = 22 000 rows. A raw row costs
/// about 25 bytes in the table b-tree plus about 15 in the `(series, unix_ms)` index, about
/// 50 bytes with b-tree slack, so about 1.1 MB (measured: the file settles near 1.0 MB); the
/// WAL is emptied by every `retain`, and aggregates are 60 s × 4 series, a few KiB. 2 MiB
/// leaves room for page-fill variation; the same 200 000 samples without retention take
/// about 12 MB.
#[test]
fn file_size_levels_off_under_retention() {
    let dir = TempDir::new("size");
    let config = StoreConfig {
        raw_retention: Duration::from_secs(10),
        aggregate_retention: Duration::from_secs(60),
        ..StoreConfig::default()
    };
    let mut store = open(&dir, config);
    let clients = ["server", "receiver", "browser-hls", "browser-webrtc"];
    let mut sizes = Vec::new();
    for round in 0..100_i64 {
        let start = T0 + round * 1000;
        let batch: Vec<_> = (0..2000_i64)
            .map(|i| {
                let client = clients[(i % 4) as usize];
                let ms = 20.0 + (i * 7919 % 1000) as f64 / 10.0;
                sample("live", "capture_to_displayed", client, start + i / 2, ms)
            })
            .collect();
        let now = start + 1000;
        store.insert_at(&batch, now).expect("insert");
        store.aggregate(now).expect("aggregate");
        store.retain(now).expect("retain");
        sizes.push(store.file_size().expect("size"));
    }
    let settled = *sizes[20..50].iter().max().expect("sizes");
    let last = *sizes[50..].iter().max().expect("sizes");
    assert!(
        last <= settled + settled / 10,
        "still growing: max {settled} B in rounds 20-49, {last} B after"
    );
    assert!(last < 2 << 20, "file is {last} B");
    let q = MetricsQuery::range(T0, T0 + 100_000, 10_000);
    let counts: u64 = store
        .query(&q)
        .expect("query")
        .iter()
        .map(|p| p.count)
        .sum();
    assert_eq!(counts, 60 * 2000, "the last 60 s of aggregates remain");
}

#[test]
fn acknowledged_samples_survive_close_and_reopen() {
    let dir = TempDir::new("restart");
    let mut store = open(&dir, short_config());
    store
        .insert_at(&[shown(T0, 1.0), shown(T0 + 1000, 2.0)], T0 + 2000)
        .expect("insert");
    store.aggregate(T0 + 1000).expect("aggregate");
    let before = all(&store, T0, T0 + 2000, 1000);
    store.close().expect("close");

    let mut store = open(&dir, short_config());
    assert_eq!(all(&store, T0, T0 + 2000, 1000), before);
    // The pending second is still pending and folds after the restart.
    assert_eq!(store.aggregate(T0 + 2000).expect("aggregate"), 1);
    store.retain(T0 + 20_000).expect("retain");
    drop(store);
    // The retention floor is persisted: the raw answer is not trusted for deleted data.
    let store = open(&dir, short_config());
    assert_eq!(
        figures(&all(&store, T0, T0 + 2000, 1000)),
        vec![(0, 1, 1.0, 1.0, 1.0, true), (1000, 1, 2.0, 2.0, 2.0, true)]
    );
}

#[test]
fn acknowledged_samples_survive_a_drop_without_close() {
    for durability in [Durability::ProcessCrash, Durability::PowerLoss] {
        let config = || StoreConfig {
            durability,
            ..short_config()
        };
        let dir = TempDir::new("drop");
        let mut store = open(&dir, config());
        store
            .insert_at(&[shown(T0, 3.0)], T0 + 500)
            .expect("insert");
        drop(store);
        let store = open(&dir, config());
        assert_eq!(
            figures(&all(&store, T0, T0 + 1000, 1000)),
            vec![(0, 1, 3.0, 3.0, 3.0, true)],
            "{durability:?}"
        );
    }
}

const CRASH_DIR_VAR: &str = "LIVEFEED_STORE_CRASH_DIR";

/// Run by `acknowledged_samples_survive_a_process_crash` in a child process: inserts, then
/// aborts without running any destructor (no close, no checkpoint).
#[test]
#[ignore = "helper: runs only as a child of acknowledged_samples_survive_a_process_crash"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
        return;
    };
    let mut store = Store::open(dir.as_ref(), short_config()).expect("open");
    let batch: Vec<_> = (0..500).map(|i| shown(T0 + i, i as f64)).collect();
    store.insert_at(&batch, T0 + 1000).expect("insert");
    std::process::abort();
}

#[test]
fn acknowledged_samples_survive_a_process_crash() {
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().expect("test binary");
    let status = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "crash_child", "--quiet"])
        .env(CRASH_DIR_VAR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(!status.success(), "the child must have aborted");
    let store = open(&dir, short_config());
    let points = all(&store, T0, T0 + 1000, 1000);
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 500);
}

/// Everything a client can observe of the store.
fn snapshot(store: &Store) -> (Vec<livefeed_store::Point>, Vec<String>) {
    (
        all(store, 0, livefeed_store::MAX_UNIX_MS, 1_000_000_000_000),
        store.paths().expect("paths"),
    )
}

#[test]
fn bad_samples_are_refused_whole_and_change_nothing() {
    let dir = TempDir::new("bad");
    let mut store = open(&dir, StoreConfig::default());
    let now = T0 + 10_000;
    store
        .insert_at(&[shown(T0, 1.0), shown(T0 + 1, 2.0)], now)
        .expect("insert");
    let before = snapshot(&store);

    let with = |bad| vec![shown(T0, 1.0), shown(T0, 2.0), bad];
    let cases = [
        (with(shown(T0, f64::NAN)), "latency_ms"),
        (with(shown(T0, f64::NEG_INFINITY)), "latency_ms"),
        (with(shown(T0, -5_000.0)), "latency_ms"),
        (with(shown(T0, 4_000_000.0)), "latency_ms"),
        (with(sample("live", SHOWN, "", T0, 1.0)), "client"),
        (
            with(sample("live", SHOWN, &"c".repeat(33), T0, 1.0)),
            "client",
        ),
        (
            with(sample("live", SHOWN, "Browser HLS", T0, 1.0)),
            "client",
        ),
        (with(sample("", SHOWN, "server", T0, 1.0)), "path"),
        (
            with(sample(&"p".repeat(129), SHOWN, "server", T0, 1.0)),
            "path",
        ),
        (with(sample("a/../b", SHOWN, "server", T0, 1.0)), "path"),
        (with(sample("live", "capture", "server", T0, 1.0)), "stage"),
        (with(shown(now - 3_600_001, 1.0)), "unix_ms"),
        (with(shown(now + MAX_FUTURE_MS + 1, 1.0)), "unix_ms"),
    ];
    for (batch, field) in cases {
        let err = store.insert_at(&batch, now).expect_err("refused");
        match &err {
            StoreError::Invalid {
                index: 2, field: f, ..
            } if *f == field => {}
            other => panic!("{field}: {other:?}"),
        }
        assert!(err.is_client_error());
        assert!(err.to_string().starts_with("sample 2: "), "{err}");
    }

    let oversize = vec![shown(T0, 1.0); 10_001];
    let err = store.insert_at(&oversize, now).expect_err("too many");
    assert!(matches!(
        err,
        StoreError::TooMany {
            len: 10_001,
            max: 10_000
        }
    ));
    assert!(err.is_client_error());

    for body in [
        &b"{\"samples\": [" [..],
        b"not json",
        br#"{"samples":[{"path":"live","stage":"capture_to_displayed","client":"browser-hls","unix_ms":1,"latency_ms":1,"extra":true}]}"#,
        br#"{"samples":[],"token":"x"}"#,
    ] {
        let err = parse_samples_json(body).expect_err("malformed");
        assert!(matches!(err, StoreError::Json(_)), "{err:?}");
        assert!(err.is_client_error());
    }

    let query = |since, until, step| MetricsQuery::range(since, until, step);
    let mut bad_path = query(T0, now, 1000);
    bad_path.path = Some("../etc".into());
    let mut bad_stage = query(T0, now, 1000);
    bad_stage.stage = Some("latency".into());
    for (q, word) in [
        (query(T0, now, 0), "step"),
        (query(T0, now, 1500), "step"),
        (query(now, T0, 1000), "since"),
        (query(T0, T0 + 100_000_000, 1000), "buckets"),
        (bad_path, "path"),
        (bad_stage, "stage"),
    ] {
        match store.query(&q) {
            Err(err @ StoreError::BadQuery(_)) => {
                assert!(err.is_client_error());
                assert!(err.to_string().contains(word), "{err}");
            }
            other => panic!("{q:?}: {other:?}"),
        }
    }
    assert_eq!(snapshot(&store), before);
}

#[test]
fn open_sets_wal_and_incremental_vacuum_and_refuses_foreign_files() {
    let dir = TempDir::new("open");
    let store = open(&dir, StoreConfig::default());
    let path = store.db_path().to_path_buf();
    let peek = rusqlite::Connection::open(&path).expect("peek");
    let pragma = |name| -> String {
        peek.pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .expect("pragma")
    };
    assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
    assert_eq!(pragma("auto_vacuum"), "Integer(2)", "2 = incremental");
    assert_eq!(pragma("user_version"), "Integer(1)");
    drop(peek);
    drop(store);

    let foreign = TempDir::new("foreign");
    std::fs::create_dir_all(foreign.path()).expect("mkdir");
    let conn =
        rusqlite::Connection::open(foreign.path().join(livefeed_store::DB_FILE)).expect("create");
    conn.execute_batch("CREATE TABLE t (x)").expect("table");
    drop(conn);
    let err = Store::open(foreign.path(), StoreConfig::default()).expect_err("foreign");
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");

    let conn = rusqlite::Connection::open(&path).expect("reopen");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = Store::open(dir.path(), StoreConfig::default()).expect_err("newer");
    assert!(err.to_string().contains("99"), "{err}");

    let bad = StoreConfig {
        raw_retention: Duration::from_secs(7200),
        aggregate_retention: Duration::from_secs(3600),
        ..StoreConfig::default()
    };
    let err = Store::open(dir.path(), bad).expect_err("config");
    assert!(matches!(err, StoreError::Config(_)) && !err.is_client_error());
}

/// A batch naming more series than `max_series` allows is refused whole; once retention frees
/// series, new ones are taken again.
#[test]
fn series_are_capped_and_freed_by_retention() {
    let dir = TempDir::new("series-cap");
    let config = StoreConfig {
        max_series: 3,
        ..short_config()
    };
    let mut store = open(&dir, config);
    let at = |client: &str, t: i64| sample("live", "capture_to_displayed", client, t, 5.0);
    let two = [at("a", T0), at("b", T0)];
    assert_eq!(store.insert_at(&two, T0).expect("two series"), 2);
    let over = [at("a", T0 + 1), at("c", T0 + 1), at("d", T0 + 1)];
    let refused = store.insert_at(&over, T0 + 1).expect_err("a fourth series");
    assert!(
        matches!(refused, StoreError::TooManySeries { max: 3 }),
        "{refused}"
    );
    assert!(refused.is_client_error());
    let stored = store
        .query(&MetricsQuery::range(T0, T0 + 1000, 1000))
        .expect("query");
    assert_eq!(
        stored.iter().map(|p| p.count).sum::<u64>(),
        2,
        "nothing of the refused batch was stored: {stored:?}"
    );
    assert_eq!(
        store
            .insert_at(&[at("c", T0 + 2)], T0 + 2)
            .expect("a third"),
        1
    );
    // All of them age out of both windows: the series go, new ones fit.
    let later = T0 + 2 * 3_600_000;
    store.retain(later).expect("retain");
    let fresh = [at("x", later), at("y", later), at("z", later)];
    assert_eq!(store.insert_at(&fresh, later).expect("three new series"), 3);
}

/// Queries on a reader (its own read-only connection, another thread) see committed samples
/// and run while the writer inserts.
#[test]
fn a_reader_queries_beside_the_writer() {
    let dir = TempDir::new("reader");
    let mut store = open(&dir, short_config());
    let reader = store.reader().expect("reader");
    let batch: Vec<_> = (0..1000).map(|i| shown(T0 + i, 10.0)).collect();
    store.insert_at(&batch, T0 + 1000).expect("insert");
    store.aggregate(T0 + 2000).expect("aggregate");
    let q = MetricsQuery::range(T0, T0 + 1000, 1000);
    let asked = q.clone();
    let from_reader = std::thread::spawn(move || reader.query(&asked).expect("query"))
        .join()
        .expect("reader thread");
    assert_eq!(from_reader, store.query(&q).expect("writer query"));
    assert_eq!(from_reader.iter().map(|p| p.count).sum::<u64>(), 1000);
}

/// With a size budget, retention deletes older samples early until the file fits; the newest
/// stay queryable.
#[test]
fn a_size_budget_is_kept_by_deleting_older_samples_early() {
    let dir = TempDir::new("budget");
    let budget = 1024 * 1024;
    let config = StoreConfig {
        raw_retention: Duration::from_secs(3600),
        aggregate_retention: Duration::from_secs(7200),
        max_bytes: Some(budget),
        ..StoreConfig::default()
    };
    let mut store = open(&dir, config);
    // 20 minutes of 50 samples a second: far more than 1 MiB.
    let start = T0;
    for minute in 0..20 {
        let batch: Vec<_> = (0..3000)
            .map(|i| shown(start + minute * 60_000 + i * 20, f64::from(i as u32 % 50)))
            .collect();
        let now = start + (minute + 1) * 60_000;
        store.insert_at(&batch, now).expect("insert");
        store.aggregate(now).expect("aggregate");
    }
    let now = start + 20 * 60_000;
    let before = store.file_size().expect("size");
    assert!(
        before > budget,
        "the test needs a file over budget: {before}"
    );
    let done = store.retain(now).expect("retain");
    assert!(done.shrunk && done.raw_deleted > 0, "{done:?}");
    let after = store.file_size().expect("size");
    assert!(
        after <= budget,
        "{after} bytes after retention, budget {budget}"
    );
    let last_minute = all(&store, now - 60_000, now, 60_000);
    assert_eq!(
        last_minute.iter().map(|p| p.count).sum::<u64>(),
        3000,
        "the newest are kept"
    );
}
