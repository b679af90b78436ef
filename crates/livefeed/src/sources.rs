//! The built-in test-pattern publishers behind the dashboard's start/stop control
//! (`POST`/`DELETE /api/v1/sources/{path}`) and `serve --test-src`: the test pattern, encoded by
//! OpenH264 and stamped like any publisher's, handed straight to the server's hub (no RTSP
//! round trip, so no credentials are needed and nothing can intercept it). The path is claimed
//! when the source starts, so a busy path is refused at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use livefeed_media::clock::{elapsed_ms, unix_now_ns};
use livefeed_server::hub::{Hub, PublishError, Publisher, PublisherInfo};
use livefeed_server::ingest::sources::{SourceError, SourceParams, TestSources, MAX_TEST_SOURCES};
use livefeed_server::measure::metrics::ServerMetrics;
use livefeed_source::capture::{self, CaptureSettings, SourceSpec};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    params: SourceParams,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Test sources publishing into one server's hub.
pub struct BuiltinSources {
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    runtime: Handle,
    running: Mutex<HashMap<String, Running>>,
}

impl BuiltinSources {
    /// Sources publishing into `hub`, recording capture→ingest into `metrics`.
    pub fn new(hub: Arc<Hub>, metrics: Arc<ServerMetrics>) -> Arc<Self> {
        Arc::new(BuiltinSources {
            hub,
            metrics,
            runtime: Handle::current(),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// The running sources (finished ones forgotten).
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, r| !r.task.is_finished());
        running
    }
}

/// The capture settings of a test source (one keyframe per second).
pub fn capture_settings(params: &SourceParams) -> CaptureSettings {
    CaptureSettings {
        source: SourceSpec::TestPattern,
        width: params.width as usize,
        height: params.height as usize,
        fps: params.fps as f64,
        bitrate_kbps: params.bitrate_kbps,
        gop: params.fps.max(1),
        clock_correction_ns: 0,
        encoder: Default::default(),
    }
}

impl TestSources for BuiltinSources {
    fn start(&self, path: &str, params: SourceParams) -> Result<(), SourceError> {
        params.check().map_err(SourceError::Invalid)?;
        let mut running = self.live();
        if running.contains_key(path) {
            return Err(SourceError::Busy(path.to_string()));
        }
        if running.len() >= MAX_TEST_SOURCES {
            return Err(SourceError::TooMany(MAX_TEST_SOURCES));
        }
        let info = PublisherInfo {
            protocol: "test-pattern".into(),
            remote: "built-in".into(),
        };
        let publisher = self
            .hub
            .claim_publisher(path, info, None)
            .map_err(|e| match e {
                PublishError::Busy { .. } => SourceError::Busy(path.to_string()),
                PublishError::UnknownPath(_) => SourceError::Invalid(e.to_string()),
            })?;
        let stop = CancellationToken::new();
        let job = run(publisher, params, self.metrics.clone(), stop.clone());
        let name = path.to_string();
        let task = self.runtime.spawn(async move {
            if let Err(e) = job.await {
                tracing::warn!(path = %name, error = format!("{e:#}"), "test source stopped");
            }
        });
        running.insert(path.to_string(), Running { params, stop, task });
        tracing::info!(path, ?params, "test source started");
        Ok(())
    }

    fn stop(&self, path: &str) -> bool {
        match self.live().remove(path) {
            Some(r) => {
                r.stop.cancel();
                true
            }
            None => false,
        }
    }

    fn running(&self) -> Vec<(String, SourceParams)> {
        let mut list: Vec<(String, SourceParams)> = self
            .live()
            .iter()
            .map(|(path, r)| (path.clone(), r.params))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}

/// Captures and encodes the pattern and publishes every frame until `stop` (or until another
/// publisher takes the path over).
async fn run(
    publisher: Publisher,
    params: SourceParams,
    metrics: Arc<ServerMetrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut capture = capture::start(capture_settings(&params))?;
    loop {
        let encoded = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            f = capture.frames.recv() => match f {
                Some(f) => f,
                None => break,
            },
        };
        if let Some(c) = encoded.au.capture {
            metrics.record_ingest(publisher.path(), elapsed_ms(c.unix_ns, unix_now_ns()));
        }
        if !publisher.publish(encoded.au, Instant::now()) {
            tracing::info!(
                path = publisher.path(),
                "test source replaced by another publisher"
            );
            break;
        }
    }
    drop(publisher);
    tokio::task::spawn_blocking(move || capture.join()).await??;
    Ok(())
}
