//! Server configuration, defined once: the same [`ServerOptions`] struct is read from command
//! line flags, `LIVEFEED_*` environment variables and a TOML file. Precedence: flag or
//! environment variable, then the file, then the default. [`ServerOptions::resolve`] gives the
//! concrete [`ServerConfig`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use livefeed_auth::{Authenticator, OpenDefaults, UserConfig};
use livefeed_media::rtp::DepacketizerLimits;
use livefeed_rtsp::framing::Limits;
use livefeed_store::StoreConfig;

use anyhow::Context;
use serde::Deserialize;

use crate::hub::HubLimits;

pub mod path_sources;

use crate::ingest::rtsp_server::RtspConfig;
use crate::limits::conn_gate::GateLimits;
use crate::limits::http_listener::HttpTimeouts;
use crate::outputs::ice_host::IceHost;
use crate::outputs::ice_server::IceServer;
use crate::outputs::recordings::RecordConfig;
use path_sources::SourceDefaults;
pub use path_sources::{PathEntry, PullSourceConfig, RtspTransport, SourceArg};

/// Latency samples one client address may submit per second, by default: a demo reports about
/// 150 a second (five stages at 30 fps), a dashboard 30.
pub const DEFAULT_METRICS_RATE: u32 = 5000;

/// Default RTSP listen address.
pub const DEFAULT_RTSP_ADDRESS: &str = "0.0.0.0:8554";
/// Default HTTP listen address (LL-HLS, player pages).
pub const DEFAULT_HTTP_ADDRESS: &str = "0.0.0.0:8888";

/// Server options as given (every one optional).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerOptions {
    /// RTSP listen address [default: 0.0.0.0:8554]
    #[arg(long, env = "LIVEFEED_RTSP_ADDRESS")]
    pub rtsp_address: Option<SocketAddr>,
    /// Serve only these paths (repeat or comma-separate); any path when none is given. In the
    /// file also `[paths.NAME]` tables with a pull source (see [`path_sources`])
    #[arg(long = "path", env = "LIVEFEED_PATHS", value_delimiter = ',')]
    #[serde(default, deserialize_with = "path_sources::list_or_table")]
    pub paths: Vec<PathEntry>,
    /// Pull a path's stream from an RTSP server or camera: NAME=rtsp://[user:pass@]host[:port]/path (repeat)
    #[arg(long = "source", env = "LIVEFEED_SOURCES", value_delimiter = ' ')]
    #[serde(default)]
    pub sources: Vec<SourceArg>,
    /// Connect the --source streams only while someone reads them [default: false]
    #[arg(long, env = "LIVEFEED_SOURCE_ON_DEMAND", num_args = 0..=1, default_missing_value = "true")]
    pub source_on_demand: Option<bool>,
    /// Seconds an on-demand source stays connected after its last reader left [default: 10]
    #[arg(long, env = "LIVEFEED_SOURCE_ON_DEMAND_CLOSE_AFTER")]
    pub source_on_demand_close_after: Option<f64>,
    /// How pull sources' media travels: tcp, udp or automatic (UDP, then TCP if UDP fails) [default: automatic]
    #[arg(long, env = "LIVEFEED_RTSP_TRANSPORT")]
    pub rtsp_transport: Option<RtspTransport>,
    /// Access units a reader may fall behind before it skips to the next keyframe [default: 32]
    #[arg(long, env = "LIVEFEED_READER_QUEUE")]
    pub reader_queue: Option<usize>,
    /// Milliseconds a reader's socket may block before it is disconnected [default: 10000]
    #[arg(long, env = "LIVEFEED_WRITE_TIMEOUT_MS")]
    pub write_timeout_ms: Option<u64>,
    /// Milliseconds a publisher may send nothing before it is dropped [default: 10000]
    #[arg(long, env = "LIVEFEED_READ_TIMEOUT_MS")]
    pub read_timeout_ms: Option<u64>,
    /// An RTSP connection that is not streaming and sends nothing (or only part of a message)
    /// for this long is closed, in ms [default: 60000]
    #[arg(long, env = "LIVEFEED_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Accept publishers from addresses other than loopback [default: false]
    #[arg(long, env = "LIVEFEED_ALLOW_REMOTE_PUBLISH", num_args = 0..=1, default_missing_value = "true")]
    pub allow_remote_publish: Option<bool>,
    /// HTTP listen address for LL-HLS and the player page [default: 0.0.0.0:8888]
    #[arg(long, env = "LIVEFEED_HTTP_ADDRESS")]
    pub http_address: Option<SocketAddr>,
    /// LL-HLS part duration in seconds; hls.js stays 3 parts behind the live edge [default: 0.1]
    #[arg(long, env = "LIVEFEED_PART_DURATION")]
    pub part_duration: Option<f64>,
    /// LL-HLS segment duration in seconds; segments are cut at the first keyframe after it [default: 1.0]
    #[arg(long, env = "LIVEFEED_SEGMENT_DURATION")]
    pub segment_duration: Option<f64>,
    /// Segments listed in the LL-HLS playlist [default: 6]
    #[arg(long, env = "LIVEFEED_PLAYLIST_LENGTH")]
    pub playlist_length: Option<usize>,
    /// Segments kept fetchable (in memory and in --hls-dir) [default: 20]
    #[arg(long, env = "LIVEFEED_MAX_FILES")]
    pub max_files: Option<usize>,
    /// Absolute URL prefix written into playlists, e.g. http://192.168.1.5:8888 (when serving on 0.0.0.0)
    #[arg(long, env = "LIVEFEED_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Also write the LL-HLS files to this directory (atomically: temp file + rename)
    #[arg(long, env = "LIVEFEED_HLS_DIR")]
    pub hls_dir: Option<std::path::PathBuf>,
    /// Directory of the metrics store (one SQLite file) [default: ./livefeed-data]
    #[arg(long, env = "LIVEFEED_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// How long raw latency samples are kept, in seconds (exact percentiles) [default: 3600]
    #[arg(long, env = "LIVEFEED_METRICS_RAW_RETENTION")]
    pub metrics_raw_retention: Option<u64>,
    /// How long per-second latency aggregates are kept, in seconds [default: 604800 (7 days)]
    #[arg(long, env = "LIVEFEED_METRICS_RETENTION")]
    pub metrics_retention: Option<u64>,
    /// Latency samples one client address may submit per second (bursts of twice that, or one
    /// full batch); more are answered 429 [default: 5000]
    #[arg(long, env = "LIVEFEED_METRICS_RATE")]
    pub metrics_rate: Option<u32>,
    /// Size budget of the metrics store's file, bytes: retention deletes older samples early
    /// to stay under it [default: none, the retention windows bound it]
    #[arg(long, env = "LIVEFEED_METRICS_MAX_BYTES")]
    pub metrics_max_bytes: Option<u64>,
    /// Most series (path, stage, client) the metrics store keeps at once; samples naming new
    /// ones beyond are refused [default: 1000]
    #[arg(long, env = "LIVEFEED_METRICS_MAX_SERIES")]
    pub metrics_max_series: Option<usize>,
    /// UDP address for WebRTC (WHEP) media; its port is the ICE host candidates' port [default: 0.0.0.0:8189]
    #[arg(long, env = "LIVEFEED_WEBRTC_ADDRESS")]
    pub webrtc_address: Option<SocketAddr>,
    /// TCP address for WebRTC media over ICE-TCP (passive candidates, for viewers whose UDP is blocked); "" turns it off [default: the --webrtc-address, over TCP]
    #[arg(long, env = "LIVEFEED_WEBRTC_TCP_ADDRESS")]
    pub webrtc_tcp_address: Option<ListenAddress>,
    /// RTMP listen address for publishers (ffmpeg, OBS): rtmp://HOST:1935/PATH; "" turns it off [default: 0.0.0.0:1935, skipped with a warning when taken]
    #[arg(long, env = "LIVEFEED_RTMP_ADDRESS")]
    pub rtmp_address: Option<ListenAddress>,
    /// SRT listen address (UDP) for publishers (ffmpeg, OBS): srt://HOST:PORT?streamid=publish:PATH (MediaMTX's port is 8890) [default: off, until srt-protocol's listener is hardened: see the README]
    #[arg(long, env = "LIVEFEED_SRT_ADDRESS")]
    pub srt_address: Option<ListenAddress>,
    /// Extra addresses to announce as ICE host candidates (a public or LAN address mapped 1:1 to this host), or host names, resolved per offer
    #[arg(
        long = "webrtc-additional-host",
        env = "LIVEFEED_WEBRTC_ADDITIONAL_HOSTS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub webrtc_additional_hosts: Vec<IceHost>,
    /// STUN/TURN servers for WebRTC viewers: stun:HOST[:PORT] or turn:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]; livefeed's pages use them and WHEP announces them in Link headers
    #[arg(
        long = "webrtc-ice-server",
        env = "LIVEFEED_WEBRTC_ICE_SERVERS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub webrtc_ice_servers: Vec<IceServer>,
    /// Directory of recordings [default: ./recordings]
    #[arg(long, env = "LIVEFEED_RECORD_DIR")]
    pub record_dir: Option<std::path::PathBuf>,
    /// Record this path whenever it is published (repeatable; `*` = every path); others start from the API
    #[arg(long = "record", env = "LIVEFEED_RECORD", value_delimiter = ',')]
    #[serde(default)]
    pub record: Vec<String>,
    /// Length of a recording file in seconds, cut at the next keyframe [default: 60]
    #[arg(long, env = "LIVEFEED_RECORD_SEGMENT")]
    pub record_segment: Option<f64>,
    /// Delete recordings older than this many seconds [default: keep]
    #[arg(long, env = "LIVEFEED_RECORD_RETENTION")]
    pub record_retention: Option<u64>,
    /// Delete a path's oldest recordings beyond this many bytes [default: no limit]
    #[arg(long, env = "LIVEFEED_RECORD_MAX_BYTES")]
    pub record_max_bytes: Option<u64>,
    /// Most RTSP connections at once; more are answered 503 and closed [default: 1000]
    #[arg(long, env = "LIVEFEED_MAX_RTSP_SESSIONS")]
    pub max_rtsp_sessions: Option<usize>,
    /// Most HTTP connections at once; when full, the newest idle one is closed to make room,
    /// or the new one is answered 503 [default: 10000, and never more than the open-file
    /// limit allows]
    #[arg(long, env = "LIVEFEED_MAX_HTTP_CONNECTIONS")]
    pub max_http_connections: Option<usize>,
    /// Most connections from one client address, per listener (RTSP, HTTP, ICE-TCP); more are
    /// refused (HTTP 429, RTSP 503, ICE-TCP closed) [default: 256]
    #[arg(long, env = "LIVEFEED_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Milliseconds an HTTP request head may take to arrive whole, and a kept-alive connection
    /// may wait for its next request [default: 10000]
    #[arg(long, env = "LIVEFEED_HTTP_HEADER_TIMEOUT_MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Milliseconds an HTTP request body may go without delivering a byte [default: 10000]
    #[arg(long, env = "LIVEFEED_HTTP_BODY_TIMEOUT_MS")]
    pub http_body_timeout_ms: Option<u64>,
    /// Most readers (RTSP and WebRTC) of one path; more are refused [default: 500]
    #[arg(long, env = "LIVEFEED_MAX_READERS_PER_PATH")]
    pub max_readers_per_path: Option<usize>,
    /// Largest RTSP message head (request line and headers), bytes [default: 8192]
    #[arg(long, env = "LIVEFEED_MAX_RTSP_HEAD_BYTES")]
    pub max_rtsp_head_bytes: Option<usize>,
    /// Most RTSP header lines in one message [default: 64]
    #[arg(long, env = "LIVEFEED_MAX_RTSP_HEADERS")]
    pub max_rtsp_headers: Option<usize>,
    /// Largest RTSP message body (an ANNOUNCE's SDP), bytes [default: 131072]
    #[arg(long, env = "LIVEFEED_MAX_RTSP_BODY_BYTES")]
    pub max_rtsp_body_bytes: Option<usize>,
    /// Largest access unit a publisher may send, bytes [default: 8388608]
    #[arg(long, env = "LIVEFEED_MAX_ACCESS_UNIT_BYTES")]
    pub max_access_unit_bytes: Option<usize>,
    /// Most NAL units in one access unit [default: 1024]
    #[arg(long, env = "LIVEFEED_MAX_NALS_PER_ACCESS_UNIT")]
    pub max_nals_per_access_unit: Option<usize>,
    /// Seconds readers wait for a publisher that left to come back before they are disconnected [default: 10]
    #[arg(long, env = "LIVEFEED_PUBLISHER_GRACE")]
    pub publisher_grace: Option<f64>,
    /// Paths on which a new publisher replaces the current one instead of being refused (`*` = all)
    #[arg(
        long = "takeover-path",
        env = "LIVEFEED_TAKEOVER_PATHS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub takeover_paths: Vec<String>,
    /// Host names (without port) this server answers controls and metric submissions for, as
    /// well as IP addresses and `localhost` (repeat or comma-separate); a request whose `Host`
    /// is another name (a DNS-rebinding page) is refused 403 [default: none beyond those]
    #[arg(
        long = "allowed-host",
        env = "LIVEFEED_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// RTSP authentication schemes offered and accepted: basic, digest [default: both]
    #[arg(
        long = "rtsp-auth-methods",
        env = "LIVEFEED_RTSP_AUTH_METHODS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub rtsp_auth_methods: Vec<AuthMethod>,
    /// Users with their permissions, paths and networks: `[[users]]` tables of the config file
    /// only (see livefeed-auth); without any, reading is open and publishing and controls are
    /// for loopback.
    #[arg(skip)]
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

impl ServerOptions {
    /// Reads options from a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<ServerOptions> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// These options, with unset ones taken from `file`.
    pub fn over(self, file: ServerOptions) -> ServerOptions {
        ServerOptions {
            rtsp_address: self.rtsp_address.or(file.rtsp_address),
            paths: if self.paths.is_empty() {
                file.paths
            } else {
                self.paths
            },
            sources: if self.sources.is_empty() {
                file.sources
            } else {
                self.sources
            },
            source_on_demand: self.source_on_demand.or(file.source_on_demand),
            source_on_demand_close_after: self
                .source_on_demand_close_after
                .or(file.source_on_demand_close_after),
            rtsp_transport: self.rtsp_transport.or(file.rtsp_transport),
            reader_queue: self.reader_queue.or(file.reader_queue),
            write_timeout_ms: self.write_timeout_ms.or(file.write_timeout_ms),
            read_timeout_ms: self.read_timeout_ms.or(file.read_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(file.idle_timeout_ms),
            allow_remote_publish: self.allow_remote_publish.or(file.allow_remote_publish),
            http_address: self.http_address.or(file.http_address),
            part_duration: self.part_duration.or(file.part_duration),
            segment_duration: self.segment_duration.or(file.segment_duration),
            playlist_length: self.playlist_length.or(file.playlist_length),
            max_files: self.max_files.or(file.max_files),
            public_url: self.public_url.or(file.public_url),
            hls_dir: self.hls_dir.or(file.hls_dir),
            data_dir: self.data_dir.or(file.data_dir),
            metrics_raw_retention: self.metrics_raw_retention.or(file.metrics_raw_retention),
            metrics_rate: self.metrics_rate.or(file.metrics_rate),
            metrics_max_series: self.metrics_max_series.or(file.metrics_max_series),
            metrics_max_bytes: self.metrics_max_bytes.or(file.metrics_max_bytes),
            metrics_retention: self.metrics_retention.or(file.metrics_retention),
            webrtc_address: self.webrtc_address.or(file.webrtc_address),
            webrtc_tcp_address: self.webrtc_tcp_address.or(file.webrtc_tcp_address),
            rtmp_address: self.rtmp_address.or(file.rtmp_address),
            srt_address: self.srt_address.or(file.srt_address),
            webrtc_additional_hosts: if self.webrtc_additional_hosts.is_empty() {
                file.webrtc_additional_hosts
            } else {
                self.webrtc_additional_hosts
            },
            webrtc_ice_servers: if self.webrtc_ice_servers.is_empty() {
                file.webrtc_ice_servers
            } else {
                self.webrtc_ice_servers
            },
            publisher_grace: self.publisher_grace.or(file.publisher_grace),
            record_dir: self.record_dir.or(file.record_dir),
            record: if self.record.is_empty() {
                file.record
            } else {
                self.record
            },
            record_segment: self.record_segment.or(file.record_segment),
            record_retention: self.record_retention.or(file.record_retention),
            record_max_bytes: self.record_max_bytes.or(file.record_max_bytes),
            max_rtsp_sessions: self.max_rtsp_sessions.or(file.max_rtsp_sessions),
            max_readers_per_path: self.max_readers_per_path.or(file.max_readers_per_path),
            max_http_connections: self.max_http_connections.or(file.max_http_connections),
            max_connections_per_address: self
                .max_connections_per_address
                .or(file.max_connections_per_address),
            http_header_timeout_ms: self.http_header_timeout_ms.or(file.http_header_timeout_ms),
            http_body_timeout_ms: self.http_body_timeout_ms.or(file.http_body_timeout_ms),
            max_rtsp_head_bytes: self.max_rtsp_head_bytes.or(file.max_rtsp_head_bytes),
            max_rtsp_headers: self.max_rtsp_headers.or(file.max_rtsp_headers),
            max_rtsp_body_bytes: self.max_rtsp_body_bytes.or(file.max_rtsp_body_bytes),
            max_access_unit_bytes: self.max_access_unit_bytes.or(file.max_access_unit_bytes),
            max_nals_per_access_unit: self
                .max_nals_per_access_unit
                .or(file.max_nals_per_access_unit),
            takeover_paths: if self.takeover_paths.is_empty() {
                file.takeover_paths
            } else {
                self.takeover_paths
            },
            allowed_hosts: if self.allowed_hosts.is_empty() {
                file.allowed_hosts
            } else {
                self.allowed_hosts
            },
            rtsp_auth_methods: if self.rtsp_auth_methods.is_empty() {
                file.rtsp_auth_methods
            } else {
                self.rtsp_auth_methods
            },
            users: if self.users.is_empty() {
                file.users
            } else {
                self.users
            },
        }
    }

    /// The concrete configuration, with defaults for what is unset; an error names the
    /// option that is wrong.
    pub fn resolve(&self) -> anyhow::Result<ServerConfig> {
        let defaults = RtspConfig::default();
        let (paths, sources) = path_sources::resolve(
            &self.paths,
            &self.sources,
            SourceDefaults {
                on_demand: self.source_on_demand,
                close_after: self.source_on_demand_close_after,
                transport: self.rtsp_transport,
            },
        )
        .map_err(anyhow::Error::msg)?;
        Ok(ServerConfig {
            rtsp_address: self.rtsp_address.unwrap_or_else(|| {
                DEFAULT_RTSP_ADDRESS
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8554)))
            }),
            paths,
            sources,
            reader_queue: self
                .reader_queue
                .unwrap_or(HubLimits::default().reader_queue)
                .max(1),
            write_timeout: self
                .write_timeout_ms
                .map_or(defaults.write_timeout, Duration::from_millis),
            read_timeout: self
                .read_timeout_ms
                .map_or(defaults.read_timeout, Duration::from_millis),
            idle_timeout: self
                .idle_timeout_ms
                .map_or(defaults.idle_timeout, Duration::from_millis),
            allow_remote_publish: self.allow_remote_publish.unwrap_or(false),
            http_address: self
                .http_address
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8888))),
            hls: self.hls_config(),
            webrtc_address: self
                .webrtc_address
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8189))),
            webrtc_tcp_address: match self.webrtc_tcp_address {
                Some(ListenAddress::Off) => None,
                Some(ListenAddress::At(address)) => Some(address),
                None => Some(
                    self.webrtc_address
                        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8189))),
                ),
            },
            rtmp_address: match self.rtmp_address {
                Some(ListenAddress::Off) => DefaultListen::Off,
                Some(ListenAddress::At(address)) => DefaultListen::At(address),
                None => DefaultListen::Default(SocketAddr::from(([0, 0, 0, 0], DEFAULT_RTMP_PORT))),
            },
            srt_address: match self.srt_address {
                Some(ListenAddress::Off) => DefaultListen::Off,
                Some(ListenAddress::At(address)) => DefaultListen::At(address),
                None => DefaultListen::Off,
            },
            webrtc_additional_hosts: self.webrtc_additional_hosts.clone(),
            webrtc_ice_servers: self.webrtc_ice_servers.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from("livefeed-data")),
            store: self.store_config(),
            metrics_rate: self.metrics_rate.unwrap_or(DEFAULT_METRICS_RATE).max(1),
            takeover_paths: self.takeover_paths.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            publisher_grace: Duration::from_secs_f64(
                self.publisher_grace
                    .filter(|s| s.is_finite())
                    .unwrap_or(10.0)
                    .clamp(0.0, 3600.0),
            ),
            users: self.users.clone(),
            limits: self.limits(),
            record: RecordConfig {
                dir: self
                    .record_dir
                    .clone()
                    .unwrap_or_else(|| std::path::PathBuf::from("recordings")),
                paths: self.record.clone(),
                file_duration: Duration::from_secs_f64(
                    self.record_segment
                        .filter(|s| s.is_finite())
                        .unwrap_or(60.0)
                        .clamp(1.0, 24.0 * 3600.0),
                ),
                retention: self.record_retention.map(Duration::from_secs),
                max_bytes: self.record_max_bytes,
            },
            rtsp_auth_methods: if self.rtsp_auth_methods.is_empty() {
                vec![AuthMethod::Basic, AuthMethod::Digest]
            } else {
                self.rtsp_auth_methods.clone()
            },
        })
    }

    fn limits(&self) -> ServerLimits {
        let d = ServerLimits::default();
        ServerLimits {
            rtsp_sessions: self.max_rtsp_sessions.unwrap_or(d.rtsp_sessions).max(1),
            http_connections: self
                .max_http_connections
                .unwrap_or(d.http_connections)
                .max(1),
            connections_per_address: self
                .max_connections_per_address
                .unwrap_or(d.connections_per_address)
                .max(1),
            http_timeouts: HttpTimeouts {
                header: self
                    .http_header_timeout_ms
                    .map_or(d.http_timeouts.header, Duration::from_millis)
                    .max(Duration::from_millis(100)),
                body: self
                    .http_body_timeout_ms
                    .map_or(d.http_timeouts.body, Duration::from_millis)
                    .max(Duration::from_millis(100)),
            },
            readers_per_path: self
                .max_readers_per_path
                .unwrap_or(d.readers_per_path)
                .max(1),
            framing: Limits {
                max_head_bytes: self
                    .max_rtsp_head_bytes
                    .unwrap_or(d.framing.max_head_bytes)
                    .max(256),
                max_headers: self
                    .max_rtsp_headers
                    .unwrap_or(d.framing.max_headers)
                    .max(4),
                max_body_bytes: self.max_rtsp_body_bytes.unwrap_or(d.framing.max_body_bytes),
                ..d.framing
            },
            depacketizer: DepacketizerLimits {
                max_access_unit_bytes: self
                    .max_access_unit_bytes
                    .unwrap_or(d.depacketizer.max_access_unit_bytes)
                    .max(1024),
                max_nals: self
                    .max_nals_per_access_unit
                    .unwrap_or(d.depacketizer.max_nals)
                    .max(1),
            },
        }
    }

    fn store_config(&self) -> StoreConfig {
        let defaults = StoreConfig::default();
        let seconds = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
        StoreConfig {
            raw_retention: seconds(self.metrics_raw_retention, defaults.raw_retention),
            aggregate_retention: seconds(self.metrics_retention, defaults.aggregate_retention),
            max_series: self
                .metrics_max_series
                .unwrap_or(defaults.max_series)
                .max(1),
            ..defaults
        }
    }

    fn hls_config(&self) -> HlsConfig {
        let seconds = |v: Option<f64>, default: f64, min: f64| {
            Duration::from_secs_f64(
                v.filter(|s| s.is_finite())
                    .unwrap_or(default)
                    .clamp(min, 60.0),
            )
        };
        HlsConfig {
            part_target: seconds(self.part_duration, 0.1, 0.02),
            segment_target: seconds(self.segment_duration, 1.0, 0.1),
            playlist_segments: self.playlist_length.unwrap_or(6).clamp(1, 100),
            retained_segments: self.max_files.unwrap_or(20).clamp(1, 1000),
            public_url: self
                .public_url
                .clone()
                .map(|u| u.trim_end_matches('/').to_string()),
            hls_dir: self.hls_dir.clone(),
        }
    }
}

/// LL-HLS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsConfig {
    /// Part target duration.
    pub part_target: Duration,
    /// Segment target duration (segments are cut at keyframes).
    pub segment_target: Duration,
    /// Segments listed in the playlist.
    pub playlist_segments: usize,
    /// Segments kept fetchable.
    pub retained_segments: usize,
    /// Absolute URL prefix for playlist URIs (without the path), if any.
    pub public_url: Option<String>,
    /// Directory the files are also written to, if any.
    pub hls_dir: Option<std::path::PathBuf>,
}

/// The server's concrete configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// RTSP listen address.
    pub rtsp_address: SocketAddr,
    /// Paths served; all when empty.
    pub paths: Vec<String>,
    /// Paths whose stream is pulled from another server.
    pub sources: Vec<PullSourceConfig>,
    /// Reader queue length in access units.
    pub reader_queue: usize,
    /// Write timeout for readers.
    pub write_timeout: Duration,
    /// Read timeout for publishers.
    pub read_timeout: Duration,
    /// Idle timeout for connections that are not streaming.
    pub idle_timeout: Duration,
    /// Accept publishers from anywhere.
    pub allow_remote_publish: bool,
    /// HTTP listen address.
    pub http_address: SocketAddr,
    /// LL-HLS settings.
    pub hls: HlsConfig,
    /// UDP address for WebRTC media.
    pub webrtc_address: SocketAddr,
    /// TCP address for WebRTC media (ICE-TCP), if on.
    pub webrtc_tcp_address: Option<SocketAddr>,
    /// Where RTMP listens.
    pub rtmp_address: DefaultListen,
    /// Where SRT listens (UDP).
    pub srt_address: DefaultListen,
    /// Extra ICE host candidates: addresses or names.
    pub webrtc_additional_hosts: Vec<IceHost>,
    /// STUN/TURN servers for viewers.
    pub webrtc_ice_servers: Vec<IceServer>,
    /// Directory of the metrics store.
    pub data_dir: std::path::PathBuf,
    /// Retention of the metrics store (checked when it opens).
    pub store: StoreConfig,
    /// Latency samples one client address may submit per second.
    pub metrics_rate: u32,
    /// Paths where a new publisher takes over from the current one (`*` = all).
    pub takeover_paths: Vec<String>,
    /// Host names controls are answered for, beyond IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// How long readers wait for a publisher that left.
    pub publisher_grace: Duration,
    /// Users (checked when the server starts).
    pub users: Vec<UserConfig>,
    /// RTSP authentication schemes.
    pub rtsp_auth_methods: Vec<AuthMethod>,
    /// Caps on sessions, readers and message sizes.
    pub limits: ServerLimits,
    /// Recording.
    pub record: RecordConfig,
}

/// The server's caps; each is configurable, and hitting one is logged with the peer and the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    /// RTSP connections at once.
    pub rtsp_sessions: usize,
    /// HTTP connections at once.
    pub http_connections: usize,
    /// Connections from one address, per listener.
    pub connections_per_address: usize,
    /// HTTP header-read and body-progress timeouts.
    pub http_timeouts: HttpTimeouts,
    /// Client readers (RTSP, WebRTC) per path.
    pub readers_per_path: usize,
    /// RTSP message sizes.
    pub framing: Limits,
    /// Access unit size and NAL count from publishers.
    pub depacketizer: DepacketizerLimits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            rtsp_sessions: 1000,
            http_connections: 10_000,
            connections_per_address: 256,
            http_timeouts: HttpTimeouts::default(),
            readers_per_path: 500,
            framing: Limits::default(),
            depacketizer: DepacketizerLimits::default(),
        }
    }
}

/// An RTSP authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// User and password in clear (base64).
    Basic,
    /// MD5 challenge-response.
    Digest,
}

impl ServerConfig {
    /// Who may do what, from the users (each checked: the error names the bad entry).
    pub fn authenticator(&self) -> anyhow::Result<Authenticator> {
        for (i, user) in self.users.iter().enumerate() {
            user.check()
                .map_err(|e| anyhow::anyhow!("[[users]] entry {}: {e}", i + 1))?;
        }
        Ok(Authenticator::new(
            self.users.clone(),
            OpenDefaults {
                allow_remote_publish: self.allow_remote_publish,
            },
        ))
    }

    /// Where new publishers take over.
    pub fn takeover(&self) -> crate::hub::Takeover {
        crate::hub::Takeover(self.takeover_paths.clone())
    }

    /// The path allow-list for the hub (`None` = any path).
    pub fn allowed_paths(&self) -> Option<Vec<String>> {
        (!self.paths.is_empty()).then(|| self.paths.clone())
    }

    /// Hub limits.
    pub fn hub_limits(&self) -> HubLimits {
        HubLimits {
            reader_queue: self.reader_queue,
            publisher_grace: self.publisher_grace,
            readers_per_path: self.limits.readers_per_path,
            ..HubLimits::default()
        }
    }

    /// Connection caps of the RTSP listener.
    pub fn rtsp_gate(&self) -> GateLimits {
        GateLimits {
            max_total: self.limits.rtsp_sessions,
            max_per_address: self.limits.connections_per_address,
            total_cap: "max-rtsp-sessions",
        }
    }

    /// Connection caps of the HTTP listener.
    pub fn http_gate(&self) -> GateLimits {
        GateLimits {
            max_total: self.limits.http_connections,
            max_per_address: self.limits.connections_per_address,
            total_cap: "max-http-connections",
        }
    }

    /// Connection caps of the ICE-TCP listener (WebRTC over TCP).
    pub fn webrtc_tcp_gate(&self) -> GateLimits {
        GateLimits {
            max_total: crate::outputs::whep_tcp::MAX_CONNECTIONS,
            max_per_address: self.limits.connections_per_address,
            total_cap: "the ICE-TCP listener's 512",
        }
    }

    /// RTSP listener configuration.
    pub fn rtsp_config(&self) -> RtspConfig {
        RtspConfig {
            write_timeout: self.write_timeout,
            read_timeout: self.read_timeout,
            idle_timeout: self.idle_timeout,
            basic_auth: self.rtsp_auth_methods.contains(&AuthMethod::Basic),
            limits: self.limits.framing.clone(),
            depacketizer: self.limits.depacketizer,
            digest_auth: self.rtsp_auth_methods.contains(&AuthMethod::Digest),
        }
    }
}

/// MediaMTX's (and everyone's) RTMP port.
pub const DEFAULT_RTMP_PORT: u16 = 1935;

/// Where a listener with a default address (RTMP, SRT) goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultListen {
    /// `--rtmp-address ""`, `--srt-address ""`.
    Off,
    /// Asked for: failing to bind it stops the server.
    At(SocketAddr),
    /// Not asked for: when the port is taken, the server starts without RTMP (with a warning).
    Default(SocketAddr),
}

impl ServerConfig {
    /// Timeouts and limits of the RTMP listener.
    pub fn rtmp_config(&self) -> crate::ingest::rtmp::RtmpConfig {
        crate::ingest::rtmp::RtmpConfig {
            idle_timeout: self.idle_timeout,
            read_timeout: self.read_timeout,
            limits: self.limits.depacketizer,
        }
    }

    /// Connection caps of the RTMP listener.
    pub fn rtmp_gate(&self) -> GateLimits {
        GateLimits {
            max_total: self.limits.rtsp_sessions,
            max_per_address: self.limits.connections_per_address,
            total_cap: "max-rtsp-sessions",
        }
    }
}

impl ServerConfig {
    /// Timeouts and limits of the SRT listener.
    pub fn srt_config(&self) -> crate::ingest::srt::SrtConfig {
        crate::ingest::srt::SrtConfig {
            read_timeout: self.read_timeout,
            limits: self.limits.depacketizer,
        }
    }
}

/// A listener's address, or `""`: off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ListenAddress {
    /// Not listening.
    Off,
    /// Listening here.
    At(SocketAddr),
}

impl std::str::FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Ok(ListenAddress::Off);
        }
        text.parse()
            .map(ListenAddress::At)
            .map_err(|e| format!("{text:?} is not an address (IP:PORT) or \"\" (off): {e}"))
    }
}

impl TryFrom<String> for ListenAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: ServerOptions = toml::from_str(
            "rtsp-address = \"127.0.0.1:9554\"\npaths = [\"cam\"]\nreader-queue = 8\n",
        )
        .expect("valid TOML");
        let flags = ServerOptions {
            reader_queue: Some(4),
            ..Default::default()
        };
        let config = flags.over(file).resolve().expect("valid options");
        assert_eq!(config.rtsp_address, "127.0.0.1:9554".parse().expect("addr"));
        assert_eq!(config.paths, ["cam"]);
        assert_eq!(config.reader_queue, 4);
        assert_eq!(config.write_timeout, Duration::from_secs(10));
        assert!(!config.allow_remote_publish);
    }

    #[test]
    fn ice_servers_and_additional_hosts_come_from_the_file_as_strings() {
        let file: ServerOptions = toml::from_str(
            "webrtc-ice-servers = [\"stun:stun.example.net\", \"turn:u:p@turn.example.net\"]\n\
             webrtc-additional-hosts = [\"203.0.113.5\", \"cam.example.net\"]\n",
        )
        .expect("valid TOML");
        let config = ServerOptions::default()
            .over(file)
            .resolve()
            .expect("valid options");
        assert_eq!(config.webrtc_ice_servers.len(), 2);
        assert_eq!(
            config.webrtc_ice_servers[1].credentials,
            Some(("u".into(), "p".into()))
        );
        assert_eq!(
            config.webrtc_additional_hosts,
            [
                IceHost::Ip("203.0.113.5".parse().expect("ip")),
                IceHost::Name("cam.example.net".into())
            ]
        );
        let bad = toml::from_str::<ServerOptions>("webrtc-ice-servers = [\"http://x\"]");
        assert!(bad.is_err_and(|e| e.to_string().contains("expected stun:")));
    }

    #[test]
    fn ice_tcp_listens_where_udp_does_unless_told_otherwise_or_off() {
        let default = ServerOptions::default().resolve().expect("valid options");
        assert_eq!(
            default.webrtc_tcp_address,
            Some("0.0.0.0:8189".parse().expect("addr"))
        );
        let follows: ServerOptions =
            toml::from_str("webrtc-address = \"127.0.0.1:0\"").expect("valid");
        assert_eq!(
            follows.resolve().expect("valid options").webrtc_tcp_address,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        let off: ServerOptions = toml::from_str("webrtc-tcp-address = \"\"").expect("valid");
        assert_eq!(
            off.resolve().expect("valid options").webrtc_tcp_address,
            None
        );
        let at: ServerOptions =
            toml::from_str("webrtc-tcp-address = \"127.0.0.1:9189\"").expect("valid");
        assert_eq!(
            at.resolve().expect("valid options").webrtc_tcp_address,
            Some("127.0.0.1:9189".parse().expect("addr"))
        );
        assert!(toml::from_str::<ServerOptions>("webrtc-tcp-address = \"x\"").is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        assert!(toml::from_str::<ServerOptions>("rtsp-adress = \"x\"").is_err());
    }
}
