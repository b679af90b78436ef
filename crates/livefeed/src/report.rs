//! Per-second status lines (or JSON objects) and the end-of-run summary.
//!
//! Stages: capture→encoded (publisher), capture→ingest and ingest→egress (server, demo only),
//! capture→received (SEI stamp at the receiver), capture→decoded (pixel timecode after
//! decode), and for a stream with the test tone, audio capture→received (from the audio
//! track's sender reports) and the A/V offset (beep vs the frame of the same second). A frame
//! whose timecode and SEI stamp disagree is counted as a mismatch.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use livefeed_media::clock::{corrected, elapsed_ms, ClockOffset};
use livefeed_media::latency::{stage, LatencySummary, LatencyWindow};
use livefeed_media::timecode::Timecode;
use livefeed_media::CaptureStamp;
use livefeed_rtsp::client::{AudioReceived, Received};
use livefeed_server::measure::metrics::{PathLatency, ServerMetrics};
use livefeed_source::capture::Encoded;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::pipeline::encoded_latency_ms;

/// The stages a report lists, in order.
const STAGES: [&str; 7] = [
    stage::ENCODED,
    stage::INGEST,
    stage::RECEIVED,
    stage::DECODED,
    stage::SERVER_ADDED,
    stage::AUDIO_RECEIVED,
    stage::AV_OFFSET,
];

/// Latency windows of every stage.
#[derive(Debug, Default, Clone)]
struct Windows {
    by_stage: [LatencyWindow; 7],
}

impl Windows {
    fn get(&mut self, name: &str) -> &mut LatencyWindow {
        let i = STAGES.iter().position(|s| *s == name).unwrap_or(0);
        &mut self.by_stage[i]
    }
}

/// Counters and windows; the interval part is reset every second, the totals never.
#[derive(Debug, Default)]
pub struct Stats {
    interval: Windows,
    total: Windows,
    published: u64,
    received: u64,
    decoded: u64,
    /// Frames whose pixel timecode and SEI stamp disagree.
    pub mismatches: u64,
    /// Decoded frames without a readable timecode.
    pub missing_timecode: u64,
    /// Access units received after a loss.
    pub lost: u64,
    /// Access units the decoder rejected.
    pub decode_errors: u64,
    total_published: u64,
    total_received: u64,
    total_decoded: u64,
    /// Added to this host's clock readings (receive and decode times), ns: the clock offset to
    /// the server plus any simulated shift (see `receive --clock-shift-ms`).
    pub clock_correction_ns: i64,
    /// The estimated offset to the server's clock, when one was measured.
    pub clock: Option<ClockOffset>,
    /// Samples waiting to be sent to the server (`--report`), when reporting.
    outbox: Option<Vec<Outgoing>>,
    /// How the camera delivers frames, when publishing one.
    camera: Option<CameraStats>,
}

/// How a camera delivers its frames: the gaps between its own timestamps, how long after its
/// stamp each frame was read (negative for a driver that stamps ahead), stamps that did not
/// increase, frames skipped, times lost.
#[derive(Debug, Default)]
struct CameraStats {
    device: String,
    format: String,
    interval: CameraWindow,
    total: CameraWindow,
    last_stamp_ns: Option<u64>,
    non_monotonic: u64,
    bad_frames: u64,
    lost: u64,
}

/// Frame gaps and ages over one report interval (or the whole run).
#[derive(Debug, Default)]
struct CameraWindow {
    frames: u64,
    gaps: LatencyWindow,
    min_gap_ms: Option<f64>,
    ages: LatencyWindow,
}

impl CameraWindow {
    fn record(&mut self, gap_ms: Option<f64>, age_ms: f64) {
        self.frames += 1;
        if let Some(gap) = gap_ms {
            self.gaps.record(gap);
            self.min_gap_ms = Some(self.min_gap_ms.map_or(gap, |m| m.min(gap)));
        }
        self.ages.record(age_ms);
    }

    fn json(&self, stats: &CameraStats) -> Value {
        let gaps = self.gaps.summary();
        let ages = self.ages.summary();
        json!({
            "device": stats.device,
            "format": stats.format,
            "frames": self.frames,
            "interval_ms": gaps.map(|g| json!({
                "min": round3(self.min_gap_ms.unwrap_or(g.p50)),
                "p50": round3(g.p50),
                "p95": round3(g.p95),
                "max": round3(g.max),
            })),
            "age_ms": ages.map(|a| json!({
                "p50": round3(a.p50),
                "p95": round3(a.p95),
                "max": round3(a.max),
            })),
            "non_monotonic": stats.non_monotonic,
            "bad_frames": stats.bad_frames,
            "lost": stats.lost,
        })
    }
}

/// Samples kept for the server between two reports at most (the rest are dropped).
const MAX_OUTBOX: usize = 10_000;

/// One measurement for the server's metrics store.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Client kind: `publisher` for capture→encoded, `receiver` for the others.
    pub client: &'static str,
    /// Stage name.
    pub stage: &'static str,
    /// When it was measured, Unix ms (server clock).
    pub unix_ms: i64,
    /// The latency, ms.
    pub latency_ms: f64,
}

/// Stats shared between the pipelines and the reporter.
#[derive(Debug, Clone, Default)]
pub struct SharedStats(Arc<Mutex<Stats>>);

impl SharedStats {
    /// Locks the stats.
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Stats {
    /// New shared stats.
    pub fn shared() -> SharedStats {
        SharedStats::default()
    }

    /// Records `ms` for stage `name`, measured at `at_ns` (server clock).
    fn record(&mut self, name: &'static str, ms: f64, at_ns: u64) {
        self.interval.get(name).record(ms);
        self.total.get(name).record(ms);
        if let Some(outbox) = self.outbox.as_mut().filter(|o| o.len() < MAX_OUTBOX) {
            let client = if name == stage::ENCODED {
                "publisher"
            } else {
                "receiver"
            };
            outbox.push(Outgoing {
                client,
                stage: name,
                unix_ms: (at_ns / 1_000_000) as i64,
                latency_ms: ms,
            });
        }
    }

    /// This host's clock reading `local_ns`, in server time.
    fn server_time(&self, local_ns: u64) -> u64 {
        corrected(local_ns, self.clock_correction_ns)
    }

    /// Starts keeping samples for the server.
    pub fn enable_outbox(&mut self) {
        self.outbox.get_or_insert_with(Vec::new);
    }

    /// The samples kept for the server since the last call.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        self.outbox.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Publishing `device`, opened in `format` (again, after it was lost).
    pub fn camera_opened(&mut self, device: &str, format: String) {
        let camera = self.camera.get_or_insert_with(CameraStats::default);
        camera.device = device.to_string();
        camera.format = format;
        camera.last_stamp_ns = None;
    }

    /// The camera being published went away.
    pub fn camera_lost(&mut self) {
        if let Some(camera) = &mut self.camera {
            camera.lost += 1;
        }
    }

    /// A frame was encoded and sent (its times are already in server time).
    pub fn record_published(&mut self, encoded: &Encoded) {
        self.published += 1;
        self.total_published += 1;
        if let (Some(camera), Some(timing)) = (&mut self.camera, encoded.camera) {
            let stamp = timing.stamp_unix_ns;
            let gap_ms = camera
                .last_stamp_ns
                .map(|last| (stamp as f64 - last as f64) / 1e6);
            if gap_ms.is_some_and(|g| g <= 0.0) {
                camera.non_monotonic += 1;
            }
            camera.last_stamp_ns = Some(stamp);
            camera.bad_frames = timing.bad_frames;
            let age_ms = (timing.read_unix_ns as f64 - stamp as f64) / 1e6;
            camera.interval.record(gap_ms, age_ms);
            camera.total.record(gap_ms, age_ms);
        }
        if let Some(ms) = encoded_latency_ms(encoded) {
            self.record(stage::ENCODED, ms, encoded.encoded_unix_ns);
        }
    }

    /// An access unit was received.
    pub fn record_received(&mut self, r: &Received) {
        self.received += 1;
        self.total_received += 1;
        if r.lost_before {
            self.lost += 1;
        }
        if let Some(c) = r.au.capture {
            let at = self.server_time(r.received_unix_ns);
            self.record(stage::RECEIVED, elapsed_ms(c.unix_ns, at), at);
        }
    }

    /// An audio payload was received: capture→received from the capture time the sender
    /// reports give it; returns its arrival in server time.
    pub fn record_audio_received(&mut self, a: &AudioReceived) -> u64 {
        let at = self.server_time(a.received_unix_ns);
        if let Some(capture) = a.capture_unix_ns {
            self.record(stage::AUDIO_RECEIVED, elapsed_ms(capture, at), at);
        }
        at
    }

    /// An A/V offset measured at `at_ns` (server time), ms.
    pub fn record_av_offset(&mut self, ms: f64, at_ns: u64) {
        self.record(stage::AV_OFFSET, ms, at_ns);
    }

    /// This host's clock reading `local_ns`, in server time.
    pub fn in_server_time(&self, local_ns: u64) -> u64 {
        self.server_time(local_ns)
    }

    /// A picture was decoded; `tc` is its timecode, `stamp` the SEI stamp of its access unit.
    pub fn record_decoded(
        &mut self,
        tc: Option<Timecode>,
        stamp: Option<CaptureStamp>,
        now_ns: u64,
    ) {
        self.decoded += 1;
        self.total_decoded += 1;
        let Some(tc) = tc else {
            self.missing_timecode += 1;
            return;
        };
        let at = self.server_time(now_ns);
        self.record(stage::DECODED, elapsed_ms(tc.unix_ns(), at), at);
        if let Some(stamp) = stamp {
            if !tc.matches(stamp.unix_ns, stamp.frame) {
                self.mismatches += 1;
            }
        }
    }

    /// The camera's figures for the interval just ended (then reset), as JSON.
    fn take_camera_interval(&mut self) -> Option<Value> {
        let camera = self.camera.as_mut()?;
        let window = std::mem::take(&mut camera.interval);
        Some(window.json(camera))
    }

    /// The camera's figures over the whole run, as JSON.
    fn camera_total(&self) -> Option<Value> {
        let camera = self.camera.as_ref()?;
        Some(camera.total.json(camera))
    }

    fn take_interval(&mut self) -> (Windows, [u64; 3]) {
        let counts = [self.published, self.received, self.decoded];
        self.published = 0;
        self.received = 0;
        self.decoded = 0;
        (std::mem::take(&mut self.interval), counts)
    }
}

/// Prints the report once a second and a summary at the end.
pub struct Reporter {
    stats: SharedStats,
    json: bool,
    server: Option<Arc<ServerMetrics>>,
    /// The path this reporter speaks for, when several are reported (lines get its name and
    /// only its server windows are taken).
    path: Option<String>,
}

impl Reporter {
    /// A reporter over `stats`; with `server`, server-side stages are included.
    pub fn new(stats: SharedStats, json: bool, server: Option<Arc<ServerMetrics>>) -> Self {
        Reporter {
            stats,
            json,
            server,
            path: None,
        }
    }

    /// This reporter speaks for `path` only (one of several).
    pub fn for_path(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }

    /// Reports until `stop`, then prints the summary.
    pub async fn run(self, stop: CancellationToken) {
        let start = Instant::now();
        let mut last = start;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let secs = now.duration_since(last).as_secs_f64().max(1e-3);
            last = now;
            let (mut windows, counts) = self.stats.lock().take_interval();
            self.merge_server(&mut windows);
            let fps = counts.map(|c| c as f64 / secs);
            let elapsed = now.duration_since(start).as_secs_f64();
            self.print_interval(elapsed, &mut windows, fps);
        }
        self.print_summary(start.elapsed().as_secs_f64());
    }

    fn merge_server(&self, windows: &mut Windows) {
        let Some(server) = &self.server else { return };
        let taken: Vec<PathLatency> = match &self.path {
            Some(p) => server.take_path(p).into_iter().collect(),
            None => server.take().into_values().collect(),
        };
        for path in taken {
            windows.get(stage::INGEST).extend(&path.ingest);
            windows.get(stage::SERVER_ADDED).extend(&path.server_added);
            let mut stats = self.stats.lock();
            stats.total.get(stage::INGEST).extend(&path.ingest);
            stats
                .total
                .get(stage::SERVER_ADDED)
                .extend(&path.server_added);
        }
    }

    fn print_interval(&self, elapsed: f64, windows: &mut Windows, fps: [f64; 3]) {
        let mut stats = self.stats.lock();
        let camera = stats.take_camera_interval();
        if self.json {
            let mut obj = Map::new();
            if let Some(path) = &self.path {
                obj.insert("path".into(), json!(path));
            }
            obj.insert("t".into(), json!((elapsed * 10.0).round() / 10.0));
            obj.insert("publisher_fps".into(), json!(round1(fps[0])));
            obj.insert("receiver_fps".into(), json!(round1(fps[1])));
            obj.insert("decoded_fps".into(), json!(round1(fps[2])));
            obj.insert("stages".into(), stages_json(windows));
            obj.insert("mismatches".into(), json!(stats.mismatches));
            obj.insert("lost".into(), json!(stats.lost));
            if let Some(camera) = camera {
                obj.insert("camera".into(), camera);
            }
            println!("{}", Value::Object(obj));
        } else {
            let mut line = match &self.path {
                Some(path) => format!("[{path}] "),
                None => String::new(),
            };
            line.push_str(&format!(
                "pub {:>4.1} fps  recv {:>4.1} fps",
                fps[0], fps[1]
            ));
            for (name, short) in [
                (stage::ENCODED, "encoded"),
                (stage::RECEIVED, "received"),
                (stage::DECODED, "decoded"),
                (stage::SERVER_ADDED, "server+"),
                (stage::AUDIO_RECEIVED, "audio"),
                (stage::AV_OFFSET, "a/v"),
            ] {
                if let Some(s) = windows.get(name).summary() {
                    line.push_str(&format!(
                        "  | {short} p50 {:.1} p95 {:.1} max {:.1} ms",
                        s.p50, s.p95, s.max
                    ));
                }
            }
            line.push_str(&format!(
                "  | mismatch {} lost {}",
                stats.mismatches, stats.lost
            ));
            println!("{line}");
        }
    }

    fn print_summary(&self, elapsed: f64) {
        // Server samples of the last partial second.
        self.merge_server(&mut Windows::default());
        let mut stats = self.stats.lock();
        let frames = [
            stats.total_published,
            stats.total_received,
            stats.total_decoded,
        ];
        let (mismatches, missing, lost, errors) = (
            stats.mismatches,
            stats.missing_timecode,
            stats.lost,
            stats.decode_errors,
        );
        if self.json {
            let summary = json!({
                "summary": true,
                "path": self.path,
                "seconds": round1(elapsed),
                "frames_published": frames[0],
                "frames_received": frames[1],
                "frames_decoded": frames[2],
                "mismatches": mismatches,
                "missing_timecode": missing,
                "lost": lost,
                "decode_errors": errors,
                "stages": stages_json(&mut stats.total),
                "camera": stats.camera_total(),
                "clock": stats.clock.map(|c| json!({
                    "offset_ms": round3(c.offset_ns as f64 / 1e6),
                    "uncertainty_ms": round3(c.uncertainty_ns as f64 / 1e6),
                })),
            });
            println!("{summary}");
        } else {
            if let Some(path) = &self.path {
                print!("[{path}] ");
            }
            println!(
                "summary: {:.1} s, frames published {} received {} decoded {}, mismatches {mismatches}, no timecode {missing}, lost {lost}, decode errors {errors}",
                elapsed, frames[0], frames[1], frames[2]
            );
            for name in STAGES {
                if let Some(s) = stats.total.get(name).summary() {
                    println!(
                        "  {name:<26} n={:<6} p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2} ms",
                        s.count, s.p50, s.p95, s.p99, s.max
                    );
                }
            }
        }
    }
}

fn stages_json(windows: &mut Windows) -> Value {
    let mut obj = Map::new();
    for name in STAGES {
        if let Some(s) = windows.get(name).summary() {
            obj.insert(name.into(), summary_json(&s));
        }
    }
    Value::Object(obj)
}

fn summary_json(s: &LatencySummary) -> Value {
    json!({ "count": s.count, "p50": round3(s.p50), "p95": round3(s.p95), "p99": round3(s.p99), "max": round3(s.max) })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
