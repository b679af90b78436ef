//! The metrics store as a service: one thread owns the SQLite [`Store`] (rusqlite is
//! synchronous), takes inserts over a channel, folds finished seconds every second and applies
//! retention every 30 s (or every half raw window, when that is shorter). Queries go to a
//! second thread with its own read-only connection ([`StoreReader`]): in WAL mode a long query
//! never holds up inserts, nor inserts a query. Async callers await the answer; a slow disk
//! delays only them.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use livefeed_store::{MetricsQuery, Point, Sample, Store, StoreConfig, StoreError, StoreReader};
use tokio::sync::oneshot;
use tracing::warn;

const AGGREGATE_EVERY: Duration = Duration::from_secs(1);
/// Retention runs this often at most (and twice per raw window when that is shorter).
const RETAIN_EVERY: Duration = Duration::from_secs(30);

/// Samples, whether they are the server's own (never refused for the series cap), the answer.
type Insert = (
    Vec<Sample>,
    bool,
    oneshot::Sender<Result<usize, StoreError>>,
);
type Query = (
    MetricsQuery,
    oneshot::Sender<Result<Vec<Point>, StoreError>>,
);

/// Handle to the store's threads; dropping the last handle closes the store cleanly.
#[derive(Clone)]
pub struct MetricsStore {
    inserts: std_mpsc::Sender<Insert>,
    queries: std_mpsc::Sender<Query>,
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
        let reader = store.reader()?;
        let (inserts, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("livefeed-store".into())
            .spawn(move || serve(store, rx, retain_every))
            .map_err(|e| StoreError::Config(format!("cannot start the store thread: {e}")))?;
        let (queries, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("livefeed-store-read".into())
            .spawn(move || answer_queries(reader, rx))
            .map_err(|e| StoreError::Config(format!("cannot start the store reader: {e}")))?;
        Ok(MetricsStore { inserts, queries })
    }

    /// Inserts a batch of clients' samples; `Ok` means committed.
    pub async fn insert(&self, samples: Vec<Sample>) -> Result<usize, StoreError> {
        self.insert_from(samples, false).await
    }

    /// Inserts a batch of the server's own samples (exempt from the series cap).
    pub async fn insert_own(&self, samples: Vec<Sample>) -> Result<usize, StoreError> {
        self.insert_from(samples, true).await
    }

    async fn insert_from(&self, samples: Vec<Sample>, own: bool) -> Result<usize, StoreError> {
        let (tx, rx) = oneshot::channel();
        if self.inserts.send((samples, own, tx)).is_err() {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }

    /// Runs a query.
    pub async fn query(&self, query: MetricsQuery) -> Result<Vec<Point>, StoreError> {
        let (tx, rx) = oneshot::channel();
        if self.queries.send((query, tx)).is_err() {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }
}

fn answer_queries(reader: StoreReader, queries: std_mpsc::Receiver<Query>) {
    while let Ok((query, reply)) = queries.recv() {
        let _ = reply.send(reader.query(&query));
    }
}

fn serve(mut store: Store, inserts: std_mpsc::Receiver<Insert>, retain_every: Duration) {
    let mut next_aggregate = Instant::now() + AGGREGATE_EVERY;
    let mut next_retain = Instant::now() + retain_every;
    loop {
        let wait = next_aggregate.saturating_duration_since(Instant::now());
        match inserts.recv_timeout(wait) {
            Ok((samples, own, reply)) => {
                let inserted = if own {
                    store.insert_own(&samples)
                } else {
                    store.insert(&samples)
                };
                let _ = reply.send(inserted);
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
