//! Latency the server measures itself: capture→ingest (from the SEI stamp, when the publisher
//! sends one) and the server's own added latency, ingest→egress (the last byte of an access
//! unit handed to a reader's socket), per path. Each window holds at most
//! [`MAX_SAMPLES_PER_WINDOW`] samples until it is taken.
//!
//! Every sample is also queued for the metrics store (client kind [`SERVER_CLIENT`]), at most
//! [`MAX_PENDING_SAMPLES`] between two [`ServerMetrics::take_samples`] calls (the rest are
//! counted and dropped), so the server's own stages appear on the dashboard and in its charts.

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

#[derive(Debug, Default)]
struct Pending {
    samples: Vec<Sample>,
    dropped: u64,
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

    fn queue(&self, path: &str, stage: &str, ms: f64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.samples.len() >= MAX_PENDING_SAMPLES {
            pending.dropped += 1;
            return;
        }
        pending.samples.push(Sample {
            path: path.to_string(),
            stage: stage.to_string(),
            client: SERVER_CLIENT.to_string(),
            unix_ms: livefeed_store::unix_now_ms(),
            latency_ms: ms,
        });
    }

    /// Records a capture→ingest sample.
    pub fn record_ingest(&self, path: &str, ms: f64) {
        self.with_path(path, |p| {
            if p.ingest.len() < MAX_SAMPLES_PER_WINDOW {
                p.ingest.record(ms);
            }
        });
        self.queue(path, stage::INGEST, ms);
    }

    /// Records an ingest→egress sample.
    pub fn record_egress(&self, path: &str, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.with_path(path, |p| {
            if p.server_added.len() < MAX_SAMPLES_PER_WINDOW {
                p.server_added.record(ms);
            }
        });
        self.queue(path, stage::SERVER_ADDED, ms);
    }

    /// Takes the samples queued for the store, and how many were dropped since the last take.
    pub fn take_samples(&self) -> (Vec<Sample>, u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = std::mem::take(&mut pending.dropped);
        (std::mem::take(&mut pending.samples), dropped)
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
