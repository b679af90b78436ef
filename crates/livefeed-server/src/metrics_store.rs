//! The metrics store as a service: one thread owns the SQLite [`Store`] (rusqlite is
//! synchronous), takes requests over a channel, folds finished seconds every second and applies
//! retention every 30 s (or every half raw window, when that is shorter). Async callers await the answer; a slow disk delays only them.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use livefeed_store::{MetricsQuery, Point, Sample, Store, StoreConfig, StoreError};
use tokio::sync::oneshot;
use tracing::warn;

const AGGREGATE_EVERY: Duration = Duration::from_secs(1);
/// Retention runs this often at most (and twice per raw window when that is shorter).
const RETAIN_EVERY: Duration = Duration::from_secs(30);

enum Request {
    Insert(Vec<Sample>, oneshot::Sender<Result<usize, StoreError>>),
    Query(
        MetricsQuery,
        oneshot::Sender<Result<Vec<Point>, StoreError>>,
    ),
}

/// Handle to the store thread; dropping the last handle closes the store cleanly.
#[derive(Clone)]
pub struct MetricsStore {
    requests: std_mpsc::Sender<Request>,
}

/// The store thread stopped (it only does when the handle is gone or the store failed).
fn gone<T>() -> Result<T, StoreError> {
    Err(StoreError::Config(
        "the metrics store is not running".into(),
    ))
}

impl MetricsStore {
    /// Opens (or creates) the store in `dir` and starts its thread.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<MetricsStore, StoreError> {
        let retain_every = RETAIN_EVERY
            .min(config.raw_retention / 2)
            .max(Duration::from_millis(500));
        let store = Store::open(dir, config)?;
        let (requests, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("livefeed-store".into())
            .spawn(move || serve(store, rx, retain_every))
            .map_err(|e| StoreError::Config(format!("cannot start the store thread: {e}")))?;
        Ok(MetricsStore { requests })
    }

    /// Inserts a batch; `Ok` means committed.
    pub async fn insert(&self, samples: Vec<Sample>) -> Result<usize, StoreError> {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Insert(samples, tx)).is_err() {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }

    /// Runs a query.
    pub async fn query(&self, query: MetricsQuery) -> Result<Vec<Point>, StoreError> {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Query(query, tx)).is_err() {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }
}

fn serve(mut store: Store, requests: std_mpsc::Receiver<Request>, retain_every: Duration) {
    let mut next_aggregate = Instant::now() + AGGREGATE_EVERY;
    let mut next_retain = Instant::now() + retain_every;
    loop {
        let wait = next_aggregate.saturating_duration_since(Instant::now());
        match requests.recv_timeout(wait) {
            Ok(Request::Insert(samples, reply)) => {
                let _ = reply.send(store.insert(&samples));
            }
            Ok(Request::Query(query, reply)) => {
                let _ = reply.send(store.query(&query));
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= next_aggregate {
            next_aggregate = now + AGGREGATE_EVERY;
            if let Err(e) = store.aggregate(livefeed_store::unix_now_ms()) {
                warn!(error = %e, "metrics aggregation failed");
            }
        }
        if now >= next_retain {
            next_retain = now + retain_every;
            if let Err(e) = store.retain(livefeed_store::unix_now_ms()) {
                warn!(error = %e, "metrics retention failed");
            }
        }
    }
    if let Err(e) = store.close() {
        warn!(error = %e, "closing the metrics store failed");
    }
}
