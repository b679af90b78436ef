//! Ingest rate of the metrics store itself (no HTTP): inserts batches of samples into a fresh
//! store in a temporary directory for a few seconds per batch size, folding seconds once a
//! second as the server does, and prints one JSON line per batch size with samples/s and the
//! insert-call latency percentiles. Run by `bench/store_ingest.sh`:
//!
//! ```text
//! cargo run --release -p livefeed-store --example ingest_bench -- [SECONDS_PER_SIZE] [SIZES...]
//! ```

use std::time::{Duration, Instant};

use livefeed_media::latency::summarize;
use livefeed_store::{unix_now_ms, Sample, Store, StoreConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let sizes: Vec<usize> = {
        let v: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
        if v.is_empty() {
            vec![1, 10, 100, 1000]
        } else {
            v
        }
    };
    for size in sizes {
        let dir =
            std::env::temp_dir().join(format!("livefeed-ingest-{}-{size}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = match Store::open(&dir, StoreConfig::default()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot open a store in {}: {e}", dir.display());
                std::process::exit(1);
            }
        };
        let (inserted, call_ms, wall) = run(&mut store, size, Duration::from_secs_f64(seconds));
        let size_bytes = store.file_size().unwrap_or(0);
        let _ = store.close();
        let _ = std::fs::remove_dir_all(&dir);
        let s = summarize(&call_ms);
        println!(
            "{}",
            serde_json::json!({
                "batch": size,
                "seconds": wall,
                "samples": inserted,
                "samples_per_s": inserted as f64 / wall,
                "insert_ms": s.map(|s| serde_json::json!({"p50": s.p50, "p95": s.p95, "p99": s.p99, "max": s.max})),
                "file_bytes": size_bytes,
            })
        );
    }
}

/// Inserts batches of `size` for `duration`; returns samples inserted, each call's ms, wall s.
fn run(store: &mut Store, size: usize, duration: Duration) -> (u64, Vec<f64>, f64) {
    let clients = ["browser-hls", "browser-webrtc", "receiver", "server"];
    let start = Instant::now();
    let mut next_fold = start + Duration::from_secs(1);
    let mut inserted = 0u64;
    let mut call_ms = Vec::new();
    let mut n = 0u64;
    while start.elapsed() < duration {
        let now = unix_now_ms();
        let batch: Vec<Sample> = (0..size)
            .map(|i| {
                n += 1;
                Sample {
                    path: format!("cam{}", n % 3),
                    stage: "capture_to_displayed".into(),
                    client: clients[i % clients.len()].into(),
                    unix_ms: now,
                    latency_ms: 20.0 + (n % 97) as f64,
                }
            })
            .collect();
        let t = Instant::now();
        match store.insert(&batch) {
            Ok(k) => inserted += k as u64,
            Err(e) => {
                eprintln!("insert failed: {e}");
                std::process::exit(1);
            }
        }
        call_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if Instant::now() >= next_fold {
            next_fold += Duration::from_secs(1);
            if let Err(e) = store.aggregate(unix_now_ms()) {
                eprintln!("aggregate failed: {e}");
                std::process::exit(1);
            }
        }
    }
    (inserted, call_ms, start.elapsed().as_secs_f64())
}
