//! The livefeed server: the path hub that fans access units out, the RTSP listener around it,
//! the server's own latency metrics and its configuration.
//!
//! - [`hub`]: paths, publishers, readers, GOP cache, bounded reader queues.
//! - [`rtsp_server`]: the RTSP listener (tokio shell around `livefeed-rtsp`'s session).
//! - [`metrics`]: capture→ingest and ingest→egress latency windows.
//! - [`config`]: one definition of the server's options for flags, env and the TOML file.
//! - [`Server`]: binds and starts all of it.

pub mod config;
pub mod hub;
pub mod metrics;
pub mod rtsp_server;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{ServerConfig, ServerOptions};
use hub::Hub;
use metrics::ServerMetrics;

/// A running server.
pub struct Server {
    /// The address RTSP listens on (with the real port when 0 was asked).
    pub rtsp_addr: SocketAddr,
    /// The path hub.
    pub hub: Arc<Hub>,
    /// Server-side latency windows.
    pub metrics: Arc<ServerMetrics>,
    rtsp_task: JoinHandle<()>,
}

impl Server {
    /// Binds the listeners and starts serving.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.rtsp_address)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for RTSP on {} (is another server running?)",
                    config.rtsp_address
                )
            })?;
        let rtsp_addr = listener
            .local_addr()
            .context("reading the RTSP listen address")?;
        let hub = Hub::new(config.allowed_paths(), config.hub_limits());
        let metrics = Arc::new(ServerMetrics::new());
        let rtsp_task = rtsp_server::spawn_listener(
            listener,
            hub.clone(),
            metrics.clone(),
            config.rtsp_config(),
        );
        tracing::info!(rtsp = %rtsp_addr, "livefeed server listening");
        Ok(Server {
            rtsp_addr,
            hub,
            metrics,
            rtsp_task,
        })
    }

    /// The `rtsp://` URL of `path` on this server, for clients on this host.
    pub fn rtsp_url(&self, path: &str) -> String {
        let ip = if self.rtsp_addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if self.rtsp_addr.is_ipv6() {
            format!("[{}]", self.rtsp_addr.ip())
        } else {
            self.rtsp_addr.ip().to_string()
        };
        format!("rtsp://{ip}:{}/{path}", self.rtsp_addr.port())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.rtsp_task.abort();
    }
}
