//! Prometheus `/metrics` (OpenMetrics text, through the `prometheus-client` crate):
//!
//! - `livefeed_latency_ms` — histogram per `path`, `stage`, `client` of every latency sample
//!   the server records or receives (`POST /api/v1/metrics`);
//! - `livefeed_fps`, `livefeed_bitrate_bps` — the publisher of each path over the last second;
//! - `livefeed_readers` — per `path` and `protocol` (`rtsp/tcp`, `rtsp/udp`, `webrtc`, `hls`);
//! - `livefeed_frames_in`, `livefeed_bytes_in`, `livefeed_dropped_frames` — counters per path
//!   (frames skipped by slow readers);
//! - `livefeed_hls_requests_total` — LL-HLS requests answered, by `kind` (playlist,
//!   blocking_playlist, part, preload_part, segment, init) and `status`: what an HTTP cache in
//!   front leaves for the origin;
//! - `livefeed_samples_dropped` — latency samples not recorded: the server's queue was full, or
//!   they would have made a series beyond [`MAX_LATENCY_SERIES`].
//!
//! Latency histograms are fed as samples arrive; the per-path figures are read from the hub at
//! scrape time.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use livefeed_store::Sample;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::hub::PathSnapshot;

type Labels = Vec<(String, String)>;

/// Latency bucket bounds, ms: from 1 ms to 10 s.
const LATENCY_BUCKETS_MS: [f64; 16] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 2000.0,
    5000.0, 10000.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_MS)
}

/// Counter totals last seen per path (counters only move forward by the difference).
#[derive(Default, Clone, Copy)]
struct Totals {
    frames: u64,
    bytes: u64,
    drops: u64,
}

/// What an LL-HLS request asked for, as the `kind` label of `livefeed_hls_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HlsRequestKind {
    /// A playlist, answered from the live edge at once.
    Playlist,
    /// A playlist with delivery directives (`_HLS_msn`…), held until it can be answered.
    BlockingPlaylist,
    /// A complete part.
    Part,
    /// The part being written (the preload hint), streamed as it grows.
    PreloadPart,
    /// A complete segment.
    Segment,
    /// An init segment.
    Init,
}

impl HlsRequestKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            HlsRequestKind::Playlist => "playlist",
            HlsRequestKind::BlockingPlaylist => "blocking_playlist",
            HlsRequestKind::Part => "part",
            HlsRequestKind::PreloadPart => "preload_part",
            HlsRequestKind::Segment => "segment",
            HlsRequestKind::Init => "init",
        }
    }
}

/// The server's Prometheus metrics.
pub struct Prometheus {
    registry: Registry,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    fps: Family<Labels, Gauge<f64, AtomicU64>>,
    bitrate: Family<Labels, Gauge<f64, AtomicU64>>,
    readers: Family<Labels, Gauge>,
    frames_in: Family<Labels, Counter>,
    bytes_in: Family<Labels, Counter>,
    drops: Family<Labels, Counter>,
    samples_dropped: Counter,
    hls_requests: Family<Labels, Counter>,
    hls_counters: Mutex<HashMap<(HlsRequestKind, u16), Counter>>,
    totals: Mutex<HashMap<String, Totals>>,
    /// Latency label sets created so far (clients name paths and kinds freely: bounded).
    latency_series: Mutex<std::collections::HashSet<Labels>>,
}

/// Latency label sets (path, stage, client) at most; samples of further ones are not observed.
pub const MAX_LATENCY_SERIES: usize = 1_000;

impl Default for Prometheus {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Prometheus {
    /// The registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("livefeed");
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let m = Prometheus {
            latency,
            fps: Family::default(),
            bitrate: Family::default(),
            readers: Family::default(),
            frames_in: Family::default(),
            bytes_in: Family::default(),
            drops: Family::default(),
            samples_dropped: Counter::default(),
            hls_requests: Family::default(),
            hls_counters: Mutex::new(HashMap::new()),
            totals: Mutex::new(HashMap::new()),
            latency_series: Mutex::new(std::collections::HashSet::new()),
            registry: Registry::default(),
        };
        registry.register(
            "latency_ms",
            "Latency per stage and client kind, ms",
            m.latency.clone(),
        );
        registry.register("fps", "Publisher frames per second", m.fps.clone());
        registry.register(
            "bitrate_bps",
            "Publisher payload bits per second",
            m.bitrate.clone(),
        );
        registry.register("readers", "Readers per protocol", m.readers.clone());
        registry.register("frames_in", "Access units published", m.frames_in.clone());
        registry.register("bytes_in", "Payload bytes published", m.bytes_in.clone());
        registry.register(
            "dropped_frames",
            "Frames skipped by readers that fell behind",
            m.drops.clone(),
        );
        registry.register(
            "samples_dropped",
            "Latency samples not recorded: server queue full, or a new series over the cap",
            m.samples_dropped.clone(),
        );
        registry.register(
            "hls_requests",
            "LL-HLS requests answered, by kind and status",
            m.hls_requests.clone(),
        );
        Prometheus { registry, ..m }
    }

    /// Counts one LL-HLS request answered with `status` (label sets: 6 kinds × the few
    /// statuses the server answers with).
    pub fn hls_request(&self, kind: HlsRequestKind, status: u16) {
        let mut counters = self.hls_counters.lock().unwrap_or_else(|p| p.into_inner());
        // The family's counter, looked up (and its labels made) once per kind and status.
        counters
            .entry((kind, status))
            .or_insert_with(|| {
                let key = labels(&[("kind", kind.label()), ("status", &status.to_string())]);
                self.hls_requests.get_or_create(&key).clone()
            })
            .inc();
    }

    /// Adds latency samples to the histograms.
    pub fn observe(&self, samples: &[Sample]) {
        let mut known = self
            .latency_series
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for s in samples {
            let key = labels(&[
                ("path", &s.path),
                ("stage", &s.stage),
                ("client", &s.client),
            ]);
            if !known.contains(&key) {
                if known.len() >= MAX_LATENCY_SERIES {
                    self.samples_dropped.inc();
                    continue;
                }
                known.insert(key.clone());
            }
            self.latency.get_or_create(&key).observe(s.latency_ms);
        }
    }

    /// Counts server samples that were not stored.
    pub fn samples_dropped(&self, n: u64) {
        self.samples_dropped.inc_by(n);
    }

    /// The exposition text, with the per-path figures of `paths` (`hls_viewers` gives the
    /// LL-HLS viewer count of a path).
    pub fn render(&self, paths: &[PathSnapshot], hls_viewers: impl Fn(&str) -> usize) -> String {
        self.fps.clear();
        self.bitrate.clear();
        self.readers.clear();
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        for p in paths {
            let path = labels(&[("path", &p.name)]);
            if let Some(publisher) = &p.publisher {
                self.fps.get_or_create(&path).set(publisher.fps);
                self.bitrate.get_or_create(&path).set(publisher.bitrate_bps);
            }
            let mut per_protocol: HashMap<&str, i64> = HashMap::new();
            for r in p.clients() {
                *per_protocol.entry(r.info.protocol.as_str()).or_default() += 1;
            }
            per_protocol.insert("hls", hls_viewers(&p.name) as i64);
            for (protocol, n) in per_protocol {
                let key = labels(&[("path", &p.name), ("protocol", protocol)]);
                self.readers.get_or_create(&key).set(n);
            }
            let last = totals.entry(p.name.clone()).or_default();
            let forward = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
            self.frames_in
                .get_or_create(&path)
                .inc_by(forward(p.frames_in, last.frames));
            self.bytes_in
                .get_or_create(&path)
                .inc_by(forward(p.bytes_in, last.bytes));
            self.drops
                .get_or_create(&path)
                .inc_by(forward(p.drops, last.drops));
            *last = Totals {
                frames: p.frames_in,
                bytes: p.bytes_in,
                drops: p.drops,
            };
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_histograms() {
        let m = Prometheus::new();
        m.observe(&[Sample {
            path: "live".into(),
            stage: "capture_to_displayed".into(),
            client: "browser-webrtc".into(),
            unix_ms: 0,
            latency_ms: 42.0,
        }]);
        let text = m.render(&[], |_| 0);
        assert!(
            text.contains("livefeed_latency_ms_bucket{le=\"50.0\",path=\"live\",stage=\"capture_to_displayed\",client=\"browser-webrtc\"} 1")
                || text.contains("path=\"live\",stage=\"capture_to_displayed\",client=\"browser-webrtc\",le=\"50.0\"} 1"),
            "{text}"
        );
        assert!(text.contains("livefeed_latency_ms_count{"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn hls_requests_are_counted_by_kind_and_status() {
        let m = Prometheus::new();
        m.hls_request(HlsRequestKind::BlockingPlaylist, 200);
        m.hls_request(HlsRequestKind::BlockingPlaylist, 200);
        m.hls_request(HlsRequestKind::PreloadPart, 404);
        let text = m.render(&[], |_| 0);
        assert!(
            text.contains("# TYPE livefeed_hls_requests counter"),
            "{text}"
        );
        assert!(
            text.contains(
                "livefeed_hls_requests_total{kind=\"blocking_playlist\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("livefeed_hls_requests_total{kind=\"preload_part\",status=\"404\"} 1"),
            "{text}"
        );
    }
}
