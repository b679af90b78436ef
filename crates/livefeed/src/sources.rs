//! The built-in test-pattern publishers behind the dashboard's start/stop control
//! (`POST`/`DELETE /api/v1/sources/{path}`) and `serve --test-src`: each one is the normal
//! publish pipeline (pattern → OpenH264 → RTSP) pointed at this server over loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use livefeed_rtsp::client::TransportKind;
use livefeed_server::hub::Hub;
use livefeed_server::sources::{SourceError, SourceParams, TestSources};
use livefeed_source::capture::{CaptureSettings, SourceSpec};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{self, PublishJob};
use crate::report::Stats;

struct Running {
    params: SourceParams,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Test sources publishing to one server.
pub struct BuiltinSources {
    /// `rtsp://HOST:PORT` of the server.
    rtsp_base: String,
    hub: Arc<Hub>,
    runtime: Handle,
    running: Mutex<HashMap<String, Running>>,
}

impl BuiltinSources {
    /// Sources publishing to `rtsp_base` (`rtsp://HOST:PORT`), whose paths live in `hub`.
    pub fn new(rtsp_base: String, hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(BuiltinSources {
            rtsp_base,
            hub,
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

    fn has_publisher(&self, path: &str) -> bool {
        self.hub
            .snapshot()
            .iter()
            .any(|p| p.name == path && p.publisher.is_some())
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
    }
}

impl TestSources for BuiltinSources {
    fn start(&self, path: &str, params: SourceParams) -> Result<(), SourceError> {
        params.check().map_err(SourceError::Invalid)?;
        let mut running = self.live();
        if running.contains_key(path) || self.has_publisher(path) {
            return Err(SourceError::Busy(path.to_string()));
        }
        let stop = CancellationToken::new();
        let job = PublishJob {
            url: format!("{}/{path}", self.rtsp_base),
            transport: TransportKind::Tcp,
            capture: capture_settings(&params),
            stats: Stats::shared(),
            stop: stop.clone(),
        };
        let name = path.to_string();
        let task = self.runtime.spawn(async move {
            if let Err(e) = pipeline::publish(job).await {
                tracing::warn!(path = %name, error = format!("{e:#}"), "test source stopped");
            }
        });
        running.insert(path.to_string(), Running { params, stop, task });
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
