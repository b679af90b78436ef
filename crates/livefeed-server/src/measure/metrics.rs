//! Latency the server measures itself: capture→ingest (from the SEI stamp, when the publisher
//! sends one) and the server's own added latency, ingest→egress (the last byte of an access
//! unit handed to a reader's socket), per path. Each window holds at most
//! [`MAX_SAMPLES_PER_WINDOW`] samples until it is taken.
//!
//! Samples are also queued for the metrics store (client kind [`SERVER_CLIENT`]), at most
//! [`MAX_PENDING_SAMPLES`] between two [`ServerMetrics::take_samples`] calls (the rest are
//! counted and dropped), so the server's own stages appear on the dashboard and in its charts:
//! every capture→ingest sample, and one ingest→egress sample per frame (its first reader's:
//! with one reader, as in the demo and `bench/latency.sh`, every sample; with many, the
//! fastest, so the store's figures understate the tail that the windows, which keep every
//! reader's, show), so that the store's load does not grow with readers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use livefeed_media::latency::{stage, LatencyWindow};
use livefeed_store::Sample;

/// The client kind of the server's own samples.
pub const SERVER_CLIENT: &str = "server";

/// Samples queued for the store between two takes, at most.
pub const MAX_PENDING_SAMPLES: usize = 20_000;

/// Samples kept per window before further ones are ignored until the next `take`.
pub const MAX_SAMPLES_PER_WINDOW: usize = 100_000;

/// The two windows of one path.
#[derive(Debug, Default, Clone)]
pub struct PathLatency {
    /// Capture → complete at the server, ms.
    pub ingest: LatencyWindow,
    /// Ingest → written to a reader, ms.
    pub server_added: LatencyWindow,
}

/// Server-side latency windows, per path.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    paths: Mutex<HashMap<String, PathLatency>>,
    pending: Mutex<Pending>,
}

/// Server samples waiting for the store: per path and stage, plain `(unix_ms, ms)` pairs, so
/// recording one (per frame, per reader) allocates nothing once a path is known; the
/// [`Sample`]s are built once a second by [`ServerMetrics::take_samples`].
#[derive(Debug, Default)]
struct Pending {
    by_path: HashMap<String, PendingPath>,
    count: usize,
    dropped: u64,
}

#[derive(Debug, Default)]
struct PendingPath {
    ingest: Vec<(i64, f64)>,
    egress: Vec<(i64, f64)>,
}

impl ServerMetrics {
    /// New, empty.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_path(&self, path: &str, f: impl FnOnce(&mut PathLatency)) {
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = paths.get_mut(path) {
            f(p);
        } else {
            f(paths.entry(path.to_string()).or_default());
        }
    }

    fn queue(&self, path: &str, egress: bool, ms: f64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.count >= MAX_PENDING_SAMPLES {
            pending.dropped += 1;
            return;
        }
        pending.count += 1;
        let entry = (livefeed_store::unix_now_ms(), ms);
        let per_path = match pending.by_path.get_mut(path) {
            Some(p) => p,
            None => pending.by_path.entry(path.to_string()).or_default(),
        };
        if egress {
            per_path.egress.push(entry);
        } else {
            per_path.ingest.push(entry);
        }
    }

    /// Records a capture→ingest sample.
    pub fn record_ingest(&self, path: &str, ms: f64) {
        self.with_path(path, |p| {
            if p.ingest.len() < MAX_SAMPLES_PER_WINDOW {
                p.ingest.record(ms);
            }
        });
        self.queue(path, false, ms);
    }

    /// Records an ingest→egress sample; `stored`: also queue it for the store (the frame's
    /// first reader, see [`crate::hub::HubFrame::first_egress`]).
    pub fn record_egress(&self, path: &str, elapsed: Duration, stored: bool) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.with_path(path, |p| {
            if p.server_added.len() < MAX_SAMPLES_PER_WINDOW {
                p.server_added.record(ms);
            }
        });
        if stored {
            self.queue(path, true, ms);
        }
    }

    /// Takes the samples queued for the store, and how many were dropped since the last take.
    pub fn take_samples(&self) -> (Vec<Sample>, u64) {
        let (by_path, dropped) = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.count = 0;
            let dropped = std::mem::take(&mut pending.dropped);
            (std::mem::take(&mut pending.by_path), dropped)
        };
        let mut samples = Vec::new();
        for (path, p) in by_path {
            for (stage, entries) in [(stage::INGEST, p.ingest), (stage::SERVER_ADDED, p.egress)] {
                samples.extend(entries.into_iter().map(|(unix_ms, latency_ms)| Sample {
                    path: path.clone(),
                    stage: stage.to_string(),
                    client: SERVER_CLIENT.to_string(),
                    unix_ms,
                    latency_ms,
                }));
            }
        }
        (samples, dropped)
    }

    /// Takes the windows of one path, starting new ones.
    pub fn take_path(&self, path: &str) -> Option<PathLatency> {
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        paths.remove(path)
    }

    /// Takes the windows of every path, starting new ones.
    pub fn take(&self) -> HashMap<String, PathLatency> {
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_samples_come_out_per_path_and_stage_and_are_bounded() {
        let m = ServerMetrics::new();
        m.record_ingest("a", 2.0);
        m.record_egress("a", Duration::from_millis(1), true);
        m.record_egress("b", Duration::from_millis(3), true);
        m.record_egress("b", Duration::from_millis(4), false);
        let (mut samples, dropped) = m.take_samples();
        samples.sort_by(|x, y| (&x.path, &x.stage).cmp(&(&y.path, &y.stage)));
        let got: Vec<(&str, &str, &str, f64)> = samples
            .iter()
            .map(|s| {
                (
                    s.path.as_str(),
                    s.stage.as_str(),
                    s.client.as_str(),
                    s.latency_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", stage::INGEST, SERVER_CLIENT, 2.0),
                ("a", stage::SERVER_ADDED, SERVER_CLIENT, 1.0),
                ("b", stage::SERVER_ADDED, SERVER_CLIENT, 3.0),
            ]
        );
        assert_eq!(dropped, 0);
        assert!(m.take_samples().0.is_empty(), "taken once");
        for _ in 0..MAX_PENDING_SAMPLES + 5 {
            m.record_ingest("a", 1.0);
        }
        let (samples, dropped) = m.take_samples();
        assert_eq!((samples.len(), dropped), (MAX_PENDING_SAMPLES, 5));
    }
}
