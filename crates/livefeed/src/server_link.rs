//! A publisher's or receiver's link to a livefeed server's HTTP API (`--report URL`):
//! the clock offset to the server, estimated NTP-style through `GET /api/v1/time`, and the
//! local measurements, sent in batches to `POST /api/v1/metrics` once a second, so a client on
//! another machine (with its own, possibly wrong, clock) appears on the dashboard with right
//! figures.

use std::time::Duration;

use anyhow::Context;
use livefeed_media::clock::{corrected, estimate_offset, unix_now_ns, ClockOffset, TimeExchange};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::report::{Outgoing, SharedStats};

/// Exchanges per clock estimate (the one with the shortest round trip is used).
const EXCHANGES: usize = 8;

/// How often the clock offset is estimated again (clocks drift).
const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// How often measurements are sent.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// HTTP client of one server.
#[derive(Clone)]
pub struct ServerLink {
    agent: ureq::Agent,
    base: String,
    /// Simulated error of this host's clock, ns (tests; 0 normally).
    shift_ns: i64,
}

impl ServerLink {
    /// A link to the server at `base` (`http://HOST:PORT`); `shift_ms` pretends this host's
    /// clock is that far off.
    pub fn new(base: &str, shift_ms: f64) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            anyhow::bail!("--report wants an http:// URL of a livefeed server, got {base:?}");
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        Ok(ServerLink {
            agent,
            base,
            shift_ns: (shift_ms * 1e6) as i64,
        })
    }

    /// This host's clock (with the simulated shift).
    fn local_now_ns(&self) -> u64 {
        corrected(unix_now_ns(), self.shift_ns)
    }

    /// Measures the offset of the server's clock to this host's (blocking).
    pub fn estimate_offset(&self) -> anyhow::Result<ClockOffset> {
        let url = format!("{}/api/v1/time", self.base);
        let mut exchanges = Vec::with_capacity(EXCHANGES);
        for _ in 0..EXCHANGES {
            let sent_ns = self.local_now_ns();
            let body = self
                .agent
                .get(&url)
                .call()
                .with_context(|| format!("asking {url} for the time"))?
                .body_mut()
                .read_to_string()
                .with_context(|| format!("reading {url}"))?;
            let received_ns = self.local_now_ns();
            let answer: Value = serde_json::from_str(&body)
                .with_context(|| format!("{url} did not answer JSON"))?;
            let server_ns = answer["unix_ns"]
                .as_u64()
                .with_context(|| format!("{url} gave no unix_ns"))?;
            exchanges.push(TimeExchange {
                sent_ns,
                server_ns,
                received_ns,
            });
        }
        estimate_offset(&exchanges).context("no usable time exchange")
    }

    /// What to add to the real clock's readings to get server time: the simulated shift plus
    /// the estimated offset.
    pub fn correction_ns(&self, offset: &ClockOffset) -> i64 {
        self.shift_ns.saturating_add(offset.offset_ns)
    }

    /// Sends measurements of `path` (blocking).
    pub fn post_samples(&self, path: &str, samples: &[Outgoing]) -> anyhow::Result<()> {
        let samples: Vec<Value> = samples
            .iter()
            .map(|s| {
                json!({ "path": path, "stage": s.stage, "client": s.client,
                        "unix_ms": s.unix_ms, "latency_ms": s.latency_ms })
            })
            .collect();
        let url = format!("{}/api/v1/metrics", self.base);
        self.agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(json!({ "samples": samples }).to_string())
            .with_context(|| format!("sending {} samples to {url}", samples.len()))?;
        Ok(())
    }

    /// Estimates the clock offset and applies it to `stats` (blocking).
    pub fn sync_clock(&self, stats: &SharedStats) -> anyhow::Result<ClockOffset> {
        let offset = self.estimate_offset()?;
        let mut s = stats.lock();
        s.clock_correction_ns = self.correction_ns(&offset);
        s.clock = Some(offset);
        tracing::info!(
            offset_ms = offset.offset_ns as f64 / 1e6,
            uncertainty_ms = offset.uncertainty_ns as f64 / 1e6,
            "clock offset to the server"
        );
        Ok(offset)
    }
}

/// Sends `stats`' measurements once a second and re-estimates the clock every
/// [`RESYNC_EVERY`], until `stop` (then sends what is left). Runs on its own thread: the HTTP
/// client blocks.
pub fn spawn_reporting(
    link: ServerLink,
    stats: SharedStats,
    path: String,
    stop: CancellationToken,
) -> std::thread::JoinHandle<()> {
    stats.lock().enable_outbox();
    std::thread::spawn(move || {
        let mut last_sync = std::time::Instant::now();
        loop {
            // Once stopped (the pipeline has ended), one last round sends what is left.
            let stopping = stop.is_cancelled();
            if !stopping {
                std::thread::sleep(REPORT_EVERY);
            }
            let batch = stats.lock().take_outbox();
            if !batch.is_empty() {
                if let Err(e) = link.post_samples(&path, &batch) {
                    tracing::warn!(error = format!("{e:#}"), "cannot report to the server");
                }
            }
            if stopping {
                return;
            }
            if last_sync.elapsed() >= RESYNC_EVERY {
                last_sync = std::time::Instant::now();
                if let Err(e) = link.sync_clock(&stats) {
                    tracing::warn!(error = format!("{e:#}"), "clock offset estimate failed");
                }
            }
        }
    })
}

/// The path of an `rtsp://HOST:PORT/PATH` URL.
pub fn path_of_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .with_context(|| format!("{url:?} is not a URL"))?;
    let path = rest
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_matches('/');
    livefeed_media::path::validate(path)
        .map(str::to_string)
        .map_err(|e| anyhow::anyhow!("the URL {url:?} names no valid path: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_urls() {
        assert_eq!(
            path_of_url("rtsp://127.0.0.1:8554/live").ok().as_deref(),
            Some("live")
        );
        assert_eq!(
            path_of_url("rtsp://h/cam/1?x=y").ok().as_deref(),
            Some("cam/1")
        );
        assert!(path_of_url("rtsp://h").is_err());
        assert!(path_of_url("nothing").is_err());
    }
}
