//! The livefeed server: the path hub at the centre, where streams come in (ingest), what
//! serves them out (outputs), the HTTP API and pages, the server's own latency measurements
//! and the limits that hold under abuse. Modules are grouped by that job:
//!
//! - [`hub`]: paths, publishers, tracks, readers, GOP cache, bounded reader queues.
//! - [`ingest`]: where streams come in. [`ingest::rtsp_server`]: the RTSP listener (tokio
//!   shell around `livefeed-rtsp`'s session: publishers, and RTSP readers too);
//!   [`ingest::rtsp_pull`]: paths pulled from another RTSP server (cameras, another
//!   livefeed); [`ingest::rtp_in`]: a publisher's tracks, RTP in and hub frames out (push and
//!   pull alike); [`ingest::sources`]: the built-in test-pattern publishers the dashboard
//!   controls.
//! - [`outputs`]: what serves a path out besides RTSP. [`outputs::hls_stream`] /
//!   [`outputs::hls_files`] / [`outputs::hls_viewers`]: LL-HLS per path (CMAF chunks into the
//!   playlist), its optional on-disk mirror, who watches it; [`outputs::whep`]: WebRTC viewers
//!   on one shared UDP socket; [`outputs::recordings`]: fragmented-MP4 recording and retention;
//!   [`outputs::audio_track`]: the audio track the muxers carry; [`outputs::transcode`]:
//!   AAC → Opus for WebRTC viewers.
//! - [`api`]: HTTP. [`api::http`] / [`api::web`]: the HTTP server (LL-HLS, pages, API routes)
//!   and its embedded assets; [`api::rest`]: the JSON API; [`api::events`] /
//!   [`api::prometheus`]: the dashboard's live feed (SSE) and Prometheus `/metrics`;
//!   [`api::http_auth`]: the HTTP side of authentication (RTSP's is in the RTSP listener).
//! - [`measure`]: [`measure::metrics`]: capture→ingest and ingest→egress latency windows;
//!   [`measure::metrics_store`]: glue to the SQLite metrics store.
//! - [`limits`]: [`limits::conn_gate`] / [`limits::http_listener`]: admission of TCP
//!   connections (per-address and total caps under the open-file limit, idle ones shed when
//!   full) and the HTTP accept loop with its timeouts; [`limits::rate_limit`]: token buckets
//!   per client address.
//! - [`config`]: one definition of the server's options for flags, env and the TOML file.
//! - [`Server`]: binds and starts all of it.

pub mod config;
pub mod hub;

/// Where streams come in.
pub mod ingest {
    pub mod aac_rtp;
    pub mod rtmp;
    pub mod rtmp_guard;
    pub mod rtp_in;
    pub mod rtsp_pull;
    pub mod rtsp_server;
    pub mod sources;
    pub mod srt;
    pub mod whip;
}

/// What serves a path out (besides RTSP readers, served by the RTSP listener).
pub mod outputs {
    pub mod audio_track;
    pub mod hls_files;
    pub mod hls_stream;
    pub mod hls_viewers;
    pub mod ice_host;
    pub mod ice_server;
    pub mod recordings;
    pub mod srt_reader;
    pub mod transcode;
    pub mod whep;
    pub mod whep_tcp;
}

/// HTTP: the server, the JSON API, the live feeds and the pages.
pub mod api {
    pub mod events;
    pub mod http;
    pub mod http_auth;
    pub mod prometheus;
    pub mod rest;
    pub mod web;
    pub mod whip;
}

/// The server's own latency measurements and their store.
pub mod measure {
    pub mod metrics;
    pub mod metrics_store;
}

/// What holds under abuse: connection admission, accept loops, rate limits.
pub mod limits {
    pub mod conn_gate;
    pub mod http_listener;
    pub mod rate_limit;
}

use api::{events, http};
use ingest::{rtsp_server, sources};
use limits::{conn_gate, rate_limit};
use measure::{metrics, metrics_store};
use outputs::{hls_stream, recordings, transcode, whep};

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{ServerConfig, ServerOptions};
use hub::Hub;
use metrics::ServerMetrics;

/// The stack of the runtime's worker threads that a program embedding the server must give
/// them (`tokio::runtime::Builder::thread_stack_size`): 8 MiB, as the main thread has. The RTMP
/// guard's AMF size cap ([`ingest::rtmp_guard::MAX_AMF_MESSAGE`]) is sized against it, with a
/// test proving the deepest message it lets through parses in half of it.
pub const WORKER_STACK_BYTES: usize = 8 << 20;

/// A running server.
pub struct Server {
    /// The address RTSP listens on (with the real port when 0 was asked).
    pub rtsp_addr: SocketAddr,
    /// The address HTTP listens on.
    pub http_addr: SocketAddr,
    /// The address RTMP listens on, if it does.
    pub rtmp_addr: Option<SocketAddr>,
    /// Where SRT listens (UDP), unless it is off or its default port was taken.
    pub srt_addr: Option<SocketAddr>,
    /// LL-HLS streams.
    pub hls: Arc<hls_stream::HlsStreams>,
    /// WebRTC viewers.
    pub whep: Arc<whep::WhepServer>,
    /// The path hub.
    pub hub: Arc<Hub>,
    /// Server-side latency windows.
    pub metrics: Arc<ServerMetrics>,
    sources: Arc<OnceLock<Arc<dyn sources::TestSources>>>,
    tasks: Vec<JoinHandle<()>>,
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
        let auth = Arc::new(config.authenticator()?);
        let hub = Hub::with_takeover(
            config.allowed_paths(),
            config.hub_limits(),
            config.takeover(),
        );
        let metrics = Arc::new(ServerMetrics::new());
        let budget = conn_gate::FdBudget::for_this_process();
        let rtmp_listener = bind_rtmp(config.rtmp_address).await?;
        let rtmp_addr = rtmp_listener.as_ref().and_then(|l| l.local_addr().ok());
        let srt_listener = bind_srt(config.srt_address).await?;
        let srt_addr = srt_listener.as_ref().map(|(_, _, addr)| *addr);
        let auth_for_rtmp = auth.clone();
        let budget_for_rtmp = budget.clone();
        let (auth_for_srt, budget_for_srt) = (auth.clone(), budget.clone());
        let refusals = Arc::new(conn_gate::RefusalLog::default());
        tracing::debug!(
            connections = budget.limit(),
            "connection budget (open-file limit less a reserve)"
        );
        let rtsp_task = rtsp_server::spawn_listener(
            listener,
            hub.clone(),
            metrics.clone(),
            config.rtsp_config(),
            auth.clone(),
            conn_gate::ConnectionGate::new(
                "rtsp",
                config.rtsp_gate(),
                budget.clone(),
                refusals.clone(),
            ),
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
            config.webrtc_tcp_address.map(|address| {
                let gate = conn_gate::ConnectionGate::new(
                    "webrtc-tcp",
                    config.webrtc_tcp_gate(),
                    budget.clone(),
                    refusals.clone(),
                );
                (address, gate)
            }),
            config.webrtc_additional_hosts.clone(),
            config.webrtc_ice_servers.clone(),
            metrics.clone(),
            transcode::Transcoders::new(hub.clone()),
        )
        .with_context(|| {
            format!(
                "cannot bind the WebRTC UDP socket {}",
                config.webrtc_address
            )
        })?;
        let store = metrics_store::MetricsStore::open(&config.data_dir, config.store.clone())
            .with_context(|| {
                format!(
                    "cannot open the metrics store in {}",
                    config.data_dir.display()
                )
            })?;
        let sources = Arc::new(OnceLock::new());
        let hls_viewers = Arc::new(crate::outputs::hls_viewers::HlsViewers::default());
        let pull_sources = ingest::rtsp_pull::PullSources::start(
            &config.sources,
            ingest::rtsp_pull::PullContext {
                hub: hub.clone(),
                metrics: metrics.clone(),
                limits: config.rtsp_config().depacketizer,
                timeout: config.read_timeout,
                other_readers: {
                    let viewers = hls_viewers.clone();
                    Arc::new(move |path: &str| viewers.of(path).len())
                },
            },
        );
        let recordings = recordings::Recordings::new(hub.clone(), config.record.clone());
        let app = http::App::new(http::AppState {
            store,
            hub: hub.clone(),
            hls: hls.clone(),
            whep: whep.clone(),
            hls_viewers,
            pull_sources,
            metrics: metrics.clone(),
            sources: sources.clone(),
            events: events::EventFeed::default(),
            prometheus: Arc::default(),
            recent: Arc::default(),
            auth,
            recordings: recordings.clone(),
            allowed_hosts: config.allowed_hosts.clone().into(),
            refusals: refusals.clone(),
            depacketizer: config.limits.depacketizer,
            sample_rate: Arc::new(rate_limit::RateLimiter::new(
                config.metrics_rate,
                config
                    .metrics_rate
                    .saturating_mul(2)
                    .max(config.store.max_batch as u32),
            )),
        });
        let mut tasks = vec![
            rtsp_task,
            conn_gate::RefusalLog::spawn_flusher(refusals.clone()),
            events::EventFeed::spawn_publisher(app.clone()),
            tokio::spawn(store_server_samples(app.clone())),
            http::spawn(
                http_listener,
                app,
                conn_gate::ConnectionGate::new(
                    "http",
                    config.http_gate(),
                    budget,
                    refusals.clone(),
                ),
                config.limits.http_timeouts,
            ),
        ];
        tasks.extend(recordings.spawn_auto());
        if let Some(listener) = rtmp_listener {
            tasks.push(ingest::rtmp::spawn_listener(
                listener,
                hub.clone(),
                metrics.clone(),
                auth_for_rtmp,
                conn_gate::ConnectionGate::new(
                    "rtmp",
                    config.rtmp_gate(),
                    budget_for_rtmp,
                    refusals.clone(),
                ),
                config.rtmp_config(),
            ));
        }
        if let Some((listener, incoming, _)) = srt_listener {
            tasks.push(ingest::srt::spawn_listener(
                listener,
                incoming,
                hub.clone(),
                metrics.clone(),
                auth_for_srt,
                conn_gate::ConnectionGate::new(
                    "srt",
                    config.rtmp_gate(),
                    budget_for_srt,
                    refusals.clone(),
                ),
                config.srt_config(),
            ));
        }
        tracing::info!(rtsp = %rtsp_addr, http = %http_addr, "livefeed server listening");
        Ok(Server {
            rtsp_addr,
            http_addr,
            rtmp_addr,
            srt_addr,
            whep,
            hls,
            hub,
            metrics,
            sources,
            tasks,
        })
    }

    /// Installs the built-in test-pattern publishers the dashboard and API control (once;
    /// later calls are ignored).
    pub fn install_sources(&self, sources: Arc<dyn sources::TestSources>) {
        let _ = self.sources.set(sources);
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

/// The RTMP listener as configured: `None` when off, or when the default port is taken.
async fn bind_rtmp(at: config::DefaultListen) -> anyhow::Result<Option<TcpListener>> {
    match at {
        config::DefaultListen::Off => Ok(None),
        config::DefaultListen::At(address) => TcpListener::bind(address)
            .await
            .map(Some)
            .with_context(|| format!("cannot listen for RTMP on {address}")),
        config::DefaultListen::Default(address) => match TcpListener::bind(address).await {
            Ok(listener) => Ok(Some(listener)),
            Err(e) => {
                tracing::warn!(%address, error = %e, "RTMP not served: its default address is taken (set --rtmp-address, or \"\" to turn it off)");
                Ok(None)
            }
        },
    }
}

/// The SRT listener as configured: `None` when off, or when the default port is taken.
async fn bind_srt(
    at: config::DefaultListen,
) -> anyhow::Result<Option<(srt_tokio::SrtListener, srt_tokio::SrtIncoming, SocketAddr)>> {
    match at {
        config::DefaultListen::Off => Ok(None),
        config::DefaultListen::At(address) => ingest::srt::bind(address)
            .await
            .map(Some)
            .with_context(|| format!("cannot listen for SRT on {address}")),
        config::DefaultListen::Default(address) => match ingest::srt::bind(address).await {
            Ok(bound) => Ok(Some(bound)),
            Err(e) => {
                tracing::warn!(%address, error = %e, "SRT not served: its default address is taken (set --srt-address, or \"\" to turn it off)");
                Ok(None)
            }
        },
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

/// Samples per store insert (below the store's batch limit).
const SERVER_SAMPLE_BATCH: usize = 5000;

/// Moves the server's own latency samples (capture→ingest, ingest→egress) into the store,
/// the live figures and Prometheus once a second.
async fn store_server_samples(app: http::App) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (samples, dropped) = app.metrics.take_samples();
        if dropped > 0 {
            app.prometheus.samples_dropped(dropped);
            tracing::debug!(dropped, "server latency samples dropped (queue full)");
        }
        for batch in samples.chunks(SERVER_SAMPLE_BATCH) {
            if let Err(e) = app.record_samples(batch.to_vec(), true).await {
                tracing::warn!(error = %e, "cannot store the server's latency samples");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
