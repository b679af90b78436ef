//! Latency the server measures itself: capture→ingest (from the SEI stamp, when the publisher
//! sends one) and the server's own added latency, ingest→egress (the last byte of an access
//! unit handed to a reader's socket), per path. Each window holds at most
//! [`MAX_SAMPLES_PER_WINDOW`] samples until it is taken.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use livefeed_media::latency::LatencyWindow;

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

    /// Records a capture→ingest sample.
    pub fn record_ingest(&self, path: &str, ms: f64) {
        self.with_path(path, |p| {
            if p.ingest.len() < MAX_SAMPLES_PER_WINDOW {
                p.ingest.record(ms);
            }
        });
    }

    /// Records an ingest→egress sample.
    pub fn record_egress(&self, path: &str, elapsed: Duration) {
        self.with_path(path, |p| {
            if p.server_added.len() < MAX_SAMPLES_PER_WINDOW {
                p.server_added.record(elapsed.as_secs_f64() * 1000.0);
            }
        });
    }

    /// Takes the windows of every path, starting new ones.
    pub fn take(&self) -> HashMap<String, PathLatency> {
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *paths)
    }
}
