//! The livefeed server: the path hub that fans access units out, the RTSP listener around it,
//! the server's own latency metrics and its configuration.
//!
//! - [`hub`]: paths, publishers, readers, GOP cache, bounded reader queues.
//! - [`rtsp_server`]: the RTSP listener (tokio shell around `livefeed-rtsp`'s session).
//! - [`hls_stream`] / [`hls_files`]: LL-HLS per path (CMAF chunks into the playlist), and its
//!   optional on-disk mirror.
//! - [`http`] / [`web`]: the HTTP server (LL-HLS, player page) and its embedded assets.
//! - [`whep`]: WebRTC viewers (WHEP) on one shared UDP socket.
//! - [`api`] / [`metrics_store`]: the JSON API and the SQLite metrics store behind it.
//! - [`metrics`]: capture→ingest and ingest→egress latency windows.
//! - [`config`]: one definition of the server's options for flags, env and the TOML file.
//! - [`Server`]: binds and starts all of it.

pub mod api;
pub mod config;
pub mod hls_files;
pub mod hls_stream;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod metrics_store;
pub mod rtsp_server;
pub mod web;
pub mod whep;

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
    /// The address HTTP listens on.
    pub http_addr: SocketAddr,
    /// LL-HLS streams.
    pub hls: Arc<hls_stream::HlsStreams>,
    /// WebRTC viewers.
    pub whep: Arc<whep::WhepServer>,
    /// The path hub.
    pub hub: Arc<Hub>,
    /// Server-side latency windows.
    pub metrics: Arc<ServerMetrics>,
    rtsp_task: JoinHandle<()>,
    http_task: JoinHandle<()>,
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
        let http_listener = TcpListener::bind(config.http_address)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for HTTP on {} (is another server running?)",
                    config.http_address
                )
            })?;
        let http_addr = http_listener
            .local_addr()
            .context("reading the HTTP listen address")?;
        let hls = hls_stream::HlsStreams::new(hub.clone(), config.hls.clone());
        let whep = whep::WhepServer::start(
            config.webrtc_address,
            config.webrtc_additional_hosts.clone(),
        )
        .with_context(|| {
            format!(
                "cannot bind the WebRTC UDP socket {}",
                config.webrtc_address
            )
        })?;
        let store = metrics_store::MetricsStore::open(&config.data_dir).with_context(|| {
            format!(
                "cannot open the metrics store in {}",
                config.data_dir.display()
            )
        })?;
        let app = http::App {
            store,
            hub: hub.clone(),
            hls: hls.clone(),
            whep: whep.clone(),
        };
        let http_task = http::spawn(http_listener, app);
        tracing::info!(rtsp = %rtsp_addr, http = %http_addr, "livefeed server listening");
        Ok(Server {
            rtsp_addr,
            http_addr,
            whep,
            hls,
            hub,
            metrics,
            rtsp_task,
            http_task,
        })
    }

    /// The `rtsp://` URL of `path` on this server, for clients on this host.
    pub fn rtsp_url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", host_for_clients(self.rtsp_addr))
    }

    /// The `http://` base URL of this server for clients on this host.
    pub fn http_url(&self) -> String {
        format!("http://{}", host_for_clients(self.http_addr))
    }
}

/// `ip:port` a client on this host can connect to (unspecified addresses become loopback).
fn host_for_clients(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.rtsp_task.abort();
        self.http_task.abort();
    }
}
