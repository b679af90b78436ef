//! The HTTP server (axum): LL-HLS per path, WHEP, the dashboard and player pages, the API
//! (see [`crate::api::rest`]).
//!
//! | route | what |
//! |---|---|
//! | `/PATH/index.m3u8` | media playlist; `_HLS_msn`/`_HLS_part` block until that part exists (503 after 3 × target duration), `_HLS_skip=YES` gives a delta update |
//! | `/live.m3u8` | alias of `/live/index.m3u8` |
//! | `/PATH/init-HASH.mp4`, `/PATH/ID-segN.m4s`, `/PATH/ID-partN.I.m4s` | CMAF init, segments, parts as the playlist names them (also `init.mp4`, `segN.m4s`, `partN.I.m4s`); the preload-hinted part is streamed as its frames arrive |
//! | `/PATH/timestamps.json` | capture and availability time of every segment and part |
//! | `/` | the dashboard (paths, readers, video, stage breakdown, latency chart, controls) |
//! | `/PATH/` | the player page (hls.js, latency from the pixel timecode) |
//! | `/static/*` | the page's scripts |
//!
//! Path names follow [`livefeed_media::path`]; anything else is a 400. Every response allows any
//! origin (CORS). Caching is designed for HTTP caches in front (nginx, Varnish, CDNs): the
//! playlist names the init segment by a hash of its bytes (`init-<hash>.mp4`) and parts and
//! segments with an id of this run of the stream (`<id>-part3.1.m4s`), and those are immutable;
//! a playlist answering a blocking request may be kept for the blocking timeout, a plain one
//! for at most one part target (see [`playlist_cache_control`]). `init.mp4` and media names
//! without the id still work, marked `no-cache`. Every LL-HLS request is counted in
//! `livefeed_hls_requests_total` (kind, status).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use livefeed_hls::playlist::{self, Availability, PartState};
use livefeed_hls::query::{parse_query, PlaylistRequest, QueryError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::prometheus::HlsRequestKind;
use crate::api::web;
use crate::hub::{Hub, ReaderInfo};
use crate::outputs::hls_stream::{blocking_timeout, HlsStream, HlsStreams};
use crate::outputs::whep::WhepServer;
use livefeed_webrtc::WhepSession;

/// The path `/live.m3u8` is an alias for.
pub const DEFAULT_PATH: &str = "live";

/// Complete segments a new stream's playlist lists before its first answer. GStreamer 1.22's
/// hlsdemux2 (playbin3 on Debian 12) cannot follow a live playlist whose first load lists a
/// single segment: `gst_hls_media_playlist_sync_to_playlist` loops
/// `for (idx = len - 1; idx; idx--)`, never looks at the only segment, so the first reload
/// "could not synchronize", the recovery seek fails and it polls forever without downloading
/// (the player stays "buffering"). With two it syncs on the last one and plays.
pub const SEGMENTS_BEFORE_FIRST_ANSWER: u64 = 2;

/// A response header marking a part streamed while it is being written (the preload-hinted
/// part), for the request counter; also useful to see in a cache's logs.
const STREAMED_PART: &str = "x-livefeed-part";

/// Largest WHEP offer accepted (SDP offers are a few KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// What the handlers share: one [`Arc`] of [`AppState`]. Axum clones the state for every
/// extractor of every request; one reference count instead of one per field keeps that off the
/// profile (it was a fifth of the server's CPU under 500 polling LL-HLS clients).
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl App {
    /// Shares `state` with the handlers.
    pub fn new(state: AppState) -> Self {
        App(Arc::new(state))
    }
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// What the handlers share, through [`App`].
pub struct AppState {
    /// The path hub.
    pub hub: Arc<Hub>,
    /// LL-HLS streams.
    pub hls: Arc<HlsStreams>,
    /// WebRTC viewers.
    pub whep: Arc<WhepServer>,
    /// The metrics store.
    pub store: crate::measure::metrics_store::MetricsStore,
    /// LL-HLS viewers per path.
    pub hls_viewers: Arc<crate::outputs::hls_viewers::HlsViewers>,
    /// Paths pulled from other servers, with their status.
    pub pull_sources: Arc<crate::ingest::rtsp_pull::PullSources>,
    /// Server-side latency (and the samples it feeds the store).
    pub metrics: Arc<crate::measure::metrics::ServerMetrics>,
    /// The built-in test-pattern publishers, when the program provides them.
    pub sources: Arc<std::sync::OnceLock<Arc<dyn crate::ingest::sources::TestSources>>>,
    /// The dashboard's live feed (Server-Sent Events).
    pub events: crate::api::events::EventFeed,
    /// Prometheus histograms of every latency sample.
    pub prometheus: Arc<crate::api::prometheus::Prometheus>,
    /// The last seconds of latency samples, for the live figures.
    pub recent: Arc<crate::api::events::RecentLatency>,
    /// Who may do what.
    pub auth: Arc<livefeed_auth::Authenticator>,
    /// Recordings.
    pub recordings: Arc<crate::outputs::recordings::Recordings>,
    /// Host names controls are answered for, beyond IP addresses and `localhost`.
    pub allowed_hosts: Arc<[String]>,
    /// Latency samples per second and client address.
    pub sample_rate: Arc<crate::limits::rate_limit::RateLimiter>,
    /// Refused requests, logged once a second per kind.
    pub refusals: Arc<crate::limits::conn_gate::RefusalLog>,
    /// What a publisher's access unit may hold (WHIP publishers; RTSP and RTMP have theirs).
    pub depacketizer: livefeed_media::rtp::DepacketizerLimits,
}

impl App {
    /// Records latency samples everywhere they go: the store, then (once it committed them
    /// all) Prometheus and the live figures. A batch the store refuses is refused whole.
    /// `own`: the server's own samples (exempt from the store's series cap).
    pub async fn record_samples(
        &self,
        samples: Vec<livefeed_store::Sample>,
        own: bool,
    ) -> Result<usize, livefeed_store::StoreError> {
        let accepted = if own {
            self.store.insert_own(samples.clone()).await?
        } else {
            self.store.insert(samples.clone()).await?
        };
        self.prometheus.observe(&samples);
        self.recent.record(&samples);
        Ok(accepted)
    }
}

impl FromRef<App> for Arc<HlsStreams> {
    fn from_ref(app: &App) -> Self {
        app.hls.clone()
    }
}

/// Both ends of an HTTP connection: the local address is the one the client reached us on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Our address on this connection.
    pub local: Option<SocketAddr>,
    /// The client's address.
    pub remote: SocketAddr,
}

/// Starts serving HTTP on `listener`, admitting connections through `gate`.
pub fn spawn(
    listener: TcpListener,
    app: App,
    gate: Arc<crate::limits::conn_gate::ConnectionGate>,
    timeouts: crate::limits::http_listener::HttpTimeouts,
) -> JoinHandle<()> {
    tokio::spawn(crate::limits::http_listener::serve(
        listener,
        router(app),
        gate,
        timeouts,
    ))
}

/// The routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/live.m3u8", get(live_alias))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/static/{file}", get(static_file))
        .route("/api/v1/paths", get(crate::api::rest::paths))
        .route("/api/v1/paths/{*path}", get(crate::api::rest::path))
        .route(
            "/api/v1/metrics",
            get(crate::api::rest::get_metrics).post(crate::api::rest::post_metrics),
        )
        .route("/api/v1/time", get(crate::api::rest::time))
        .route("/api/v1/events", get(crate::api::events::events))
        .route(
            "/api/v1/sources/{*path}",
            axum::routing::post(crate::api::rest::start_source)
                .delete(crate::api::rest::stop_source),
        )
        .route(
            "/api/v1/readers/{id}",
            axum::routing::delete(crate::api::rest::disconnect_reader),
        )
        .route("/metrics", get(crate::api::rest::prometheus))
        .route("/api/v1/recordings", get(crate::api::rest::list_recordings))
        .route(
            "/api/v1/recordings/{*rest}",
            get(crate::api::rest::download_recording)
                .post(crate::api::rest::start_recording)
                .delete(crate::api::rest::stop_recording),
        )
        .route(
            "/{*rest}",
            get(dispatch)
                .options(whep_options)
                .post(webrtc_offer)
                .patch(whep_patch)
                .delete(whep_delete),
        )
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::api::http_auth::require,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            log_request,
        ))
        .layer(axum::middleware::from_fn(cors))
        .with_state(app)
}

/// CORS, permissive: a page from anywhere may read (who may do what is the auth layer's
/// business, and controls refuse other origins there). A preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) is answered here; a plain `OPTIONS` (a WHEP player asking
/// for the ICE servers) goes on to the routes, which tower-http's `CorsLayer` would not let it.
async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let preflight = req.method() == axum::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut answer = StatusCode::OK.into_response();
        let headers = answer.headers_mut();
        let any = HeaderValue::from_static("*");
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, any.clone());
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, any);
        answer
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("location, link"),
    );
    response
}

/// Logs every request at debug level with its status and duration; refused ones (4xx/5xx)
/// also go to the refusal log, which says at most once a second per status how many there
/// were (a flood of bad requests must not become a flood of log lines).
async fn log_request(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(%method, %uri, status = status.as_u16(), ms, "HTTP request");
    if status.is_client_error() || status.is_server_error() {
        let what = status.canonical_reason().unwrap_or("refused");
        let cause = format!("{method} {uri} answered {}", status.as_u16());
        app.refusals.note("http", what, &cause, conn.remote);
    }
    response
}

/// An error answered as plain text: the status and the reason.
#[derive(Debug)]
pub struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(status, mut reason) = self;
        reason.push('\n');
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            reason,
        )
            .into_response()
    }
}

pub(crate) fn error(status: StatusCode, reason: impl Into<String>) -> HttpError {
    HttpError(status, reason.into())
}

pub(crate) type HttpResult = Result<Response, HttpError>;

async fn index() -> Response {
    web::dashboard_page()
}

async fn live_alias(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    serve_playlist(&app, DEFAULT_PATH, conn.remote, query.as_deref()).await
}

/// A playlist request from `remote`: its viewer noted, its query parsed once, its answer
/// counted as a plain or a blocking playlist.
async fn serve_playlist(
    app: &App,
    path: &str,
    remote: SocketAddr,
    query: Option<&str>,
) -> HttpResult {
    app.hls_viewers.request(path, remote, query);
    let request = parse_query(query);
    let kind = match &request {
        Ok(q) if q.msn.is_some() => HlsRequestKind::BlockingPlaylist,
        _ => HlsRequestKind::Playlist,
    };
    let result = playlist(&app.hls, path, request).await;
    count_hls_request(app, path, kind, &result);
    result
}

async fn static_file(Path(file): Path<String>) -> HttpResult {
    let (content_type, bytes) = web::asset(&file)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no such file: {file}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

/// What the last segment of a request path names.
enum Resource {
    Playlist,
    Init(Option<u64>),
    /// A segment or a part, with the stream id its name carries (`""`: none).
    Media(String, MediaName),
    Timestamps,
    Player,
    /// The page that publishes a browser's camera over WHIP.
    Publish,
}

/// A segment (`msn`) or a part (`msn`, `index`).
#[derive(Clone, Copy)]
enum MediaName {
    Segment(u64),
    Part(u64, u32),
}

fn resource(file: &str) -> Option<Resource> {
    match file {
        "index.m3u8" => Some(Resource::Playlist),
        "timestamps.json" => Some(Resource::Timestamps),
        "" => Some(Resource::Player),
        "publish" => Some(Resource::Publish),
        media => {
            let (id, named) = playlist::Resource::parse_named(media)?;
            let media = |name| Resource::Media(id.to_string(), name);
            Some(match named {
                playlist::Resource::Init => Resource::Init(None),
                playlist::Resource::InitVersion(hash) => Resource::Init(Some(hash)),
                playlist::Resource::Segment(msn) => media(MediaName::Segment(msn)),
                playlist::Resource::Part(msn, i) => media(MediaName::Part(msn, i)),
            })
        }
    }
}

/// Splits `cam/1/index.m3u8` into the path `cam/1` and the resource; a bare path is the player.
fn split_request(rest: &str) -> Result<(String, Resource, bool), HttpError> {
    let (dir, file) = rest.rsplit_once('/').unwrap_or(("", rest));
    let (path_part, res, bare) = match resource(file) {
        Some(r) => (dir, r, false),
        None if !file.contains('.') || rest.ends_with('/') => {
            (rest, Resource::Player, !rest.ends_with('/'))
        }
        None => {
            // Name the real problem: a bad path beats "no such file".
            return Err(match livefeed_media::path::validate(rest) {
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
                Ok(_) => error(StatusCode::NOT_FOUND, format!("no such resource: {file}")),
            });
        }
    };
    let path = livefeed_media::path::validate(path_part)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok((path.to_string(), res, bare))
}

async fn dispatch(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    let (path, res, bare) = split_request(&rest)?;
    let hls = &app.hls;
    let kind = request_kind(&res);
    let result = match res {
        Resource::Player if bare => Ok(Redirect::permanent(&format!("/{path}/")).into_response()),
        Resource::Player => Ok(web::player_page(&path)),
        Resource::Publish => Ok(web::publish_page(&path)),
        Resource::Playlist => serve_playlist(&app, &path, conn.remote, query.as_deref()).await,
        Resource::Init(version) => init(hls, &path, version).await,
        Resource::Media(id, MediaName::Segment(msn)) => segment(hls, &path, &id, msn),
        Resource::Media(id, MediaName::Part(msn, i)) => part(hls, &path, &id, msn, i).await,
        Resource::Timestamps => timestamps(hls, &path),
    };
    if let Some(kind) = kind {
        count_hls_request(&app, &path, kind, &result);
    }
    result
}

/// The `kind` label of a media request in `livefeed_hls_requests_total` (playlists are
/// counted by [`serve_playlist`], which knows whether they block).
fn request_kind(res: &Resource) -> Option<HlsRequestKind> {
    Some(match res {
        Resource::Init(_) => HlsRequestKind::Init,
        Resource::Media(_, MediaName::Segment(_)) => HlsRequestKind::Segment,
        Resource::Media(_, MediaName::Part(..)) => HlsRequestKind::Part,
        Resource::Playlist | Resource::Timestamps | Resource::Player | Resource::Publish => {
            return None
        }
    })
}

fn count_hls_request(app: &App, path: &str, kind: HlsRequestKind, result: &HttpResult) {
    let (status, kind) = match result {
        Ok(response) => {
            // A part answered while it is still being written was the preload-hinted one.
            let streamed = response.headers().get(STREAMED_PART).is_some();
            let kind = match kind {
                HlsRequestKind::Part if streamed => HlsRequestKind::PreloadPart,
                other => other,
            };
            (response.status().as_u16(), kind)
        }
        Err(HttpError(status, _)) => (status.as_u16(), kind),
    };
    app.prometheus.hls_request(kind, status);
    app.hls_viewers.count_request(path);
}

/// The LL-HLS stream of `path`, started if it has a publisher.
fn running_stream_of(hls: &Arc<HlsStreams>, path: &str) -> Result<Arc<HlsStream>, HttpError> {
    hls.get_or_start(path).ok_or_else(|| no_stream(path))
}

fn no_stream(path: &str) -> HttpError {
    error(
        StatusCode::NOT_FOUND,
        format!("no stream is being published on path {path:?}"),
    )
}

/// The LL-HLS stream of `path`, started if it has a publisher (an on-demand source is woken
/// and awaited).
async fn stream_of(hls: &Arc<HlsStreams>, path: &str) -> Result<Arc<HlsStream>, HttpError> {
    hls.get_or_start_on_demand(path)
        .await
        .ok_or_else(|| no_stream(path))
}

/// The 503 of a playlist request that timed out, naming what the stream lacks: frames arrive
/// (`frames_published`) but none was a keyframe LL-HLS can start from, or nothing arrives.
fn stalled(state: &crate::outputs::hls_stream::HlsState, frames_published: u64) -> HttpError {
    if state.init.is_none() && frames_published > 0 {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no keyframe yet: the publisher sent {} frames, none of them a keyframe with \
                 SPS/PPS (it sends only P-frames, or keyframes further apart than 3 target \
                 durations); LL-HLS starts at a keyframe",
                frames_published
            ),
        );
    }
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the stream stalled: no new part within 3 target durations",
    )
}

async fn playlist(
    hls: &Arc<HlsStreams>,
    path: &str,
    request: Result<PlaylistRequest, QueryError>,
) -> HttpResult {
    let request = request.map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let stream = stream_of(hls, path).await?;
    let deadline = Instant::now() + blocking_timeout(&stream.lock());
    let ready = stream
        .wait_for_part(deadline, |state| {
            if state.ended {
                return Some(Err(error(StatusCode::NOT_FOUND, "the stream ended")));
            }
            // Players (hls.js) treat a playlist without a complete segment as empty and back
            // off, and GStreamer 1.22's hlsdemux2 stalls on a first playlist with only one
            // (SEGMENTS_BEFORE_FIRST_ANSWER): wait for two. The GOP cache completes the first
            // at once, the second follows one segment duration later.
            if state.playlist.open_msn() < SEGMENTS_BEFORE_FIRST_ANSWER {
                return None;
            }
            // Check before rendering: hundreds of blocked requests are woken on every frame.
            match request
                .msn
                .map(|msn| state.playlist.availability(msn, request.part))
            {
                None | Some(Availability::Ready) | Some(Availability::Gone) => {
                    state.playlist.render_shared(request.skip).map(Ok)
                }
                Some(Availability::TooFarAhead) => Some(Err(error(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn is more than two segments beyond the last one",
                ))),
                Some(Availability::Pending) => None,
            }
        })
        .await;
    // Sparse keyframes (long segments) may not complete two segments within the blocking
    // timeout: then one complete segment is answered rather than a 503.
    let ready = ready.or_else(|| {
        let state = stream.lock();
        (request.msn.is_none() && !state.ended && state.playlist.open_msn() >= 1)
            .then(|| state.playlist.render_shared(request.skip).map(Ok))
            .flatten()
    });
    let text = ready.ok_or_else(|| {
        let frames = hls.frames_published(path).unwrap_or(0);
        stalled(&stream.lock(), frames)
    })??;
    let cache_control = playlist_cache_control(&stream.lock(), request.msn.is_some());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::try_from(cache_control)
                    .unwrap_or(HeaderValue::from_static("no-cache")),
            ),
        ],
        text,
    )
        .into_response())
}

/// How long a cache may keep a playlist response.
///
/// A response to a blocking request (`_HLS_msn`, with or without `_HLS_part`/`_HLS_skip`)
/// contains what it asked for whenever it is served, so it may be kept: for the blocking
/// timeout (3 target durations, 3 s by default). Players ask for a given `_HLS_msn`/`_HLS_part`
/// only around the moment it appears, all within that time, so one origin request serves them
/// all; and should the stream start again from MSN 0 (its publisher came back after the grace
/// period, or the server restarted), the old stream's answer is served for at most that long.
/// A plain request is answered from the live edge, which moves every part: at most one part
/// target of freshness, in whole seconds (0 for parts under a second, so a cache revalidates).
fn playlist_cache_control(state: &crate::outputs::hls_stream::HlsState, blocking: bool) -> String {
    let secs = if blocking {
        blocking_timeout(state).as_secs()
    } else {
        state.playlist.config().part_target.as_secs()
    };
    format!("public, max-age={secs}")
}

/// `Cache-Control` of media whose name says which bytes it holds (the playlist's URIs: a
/// hashed init segment, parts and segments named with the stream id): kept for ever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of media asked for by a name that does not say which bytes (`init.mp4`,
/// parts and segments without the stream id): whatever the stream holds now.
const REVALIDATE: &str = "no-cache";

fn media(bytes: Bytes, cache_control: &'static str) -> HttpResult {
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, cache_control),
        ],
        bytes,
    )
        .into_response())
}

/// `init.mp4` (the current init segment) or one version of it, `init-<hash>.mp4`.
async fn init(hls: &Arc<HlsStreams>, path: &str, version: Option<u64>) -> HttpResult {
    let stream = stream_of(hls, path).await?;
    let Some(hash) = version else {
        let deadline = Instant::now() + blocking_timeout(&stream.lock());
        let init = stream.wait_for(deadline, |s| s.init.clone()).await;
        let init =
            init.ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "no keyframe received yet"))?;
        return media(init, REVALIDATE);
    };
    let init = stream.lock().init_named(hash);
    media(
        init.ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("init segment {hash:016x} is not (or no longer) this stream's"),
            )
        })?,
        IMMUTABLE,
    )
}

/// The `Cache-Control` of a part or segment named with stream id `id`, or a 404 if the name
/// belongs to another run of the stream (a cache must never get this run's bytes for it).
fn media_cache_control(stream: &HlsStream, id: &str) -> Result<&'static str, HttpError> {
    if id.is_empty() {
        return Ok(REVALIDATE);
    }
    if id == stream.lock().stream_id() {
        return Ok(IMMUTABLE);
    }
    Err(error(
        StatusCode::NOT_FOUND,
        format!("{id:?} names an earlier run of this stream, whose media is gone"),
    ))
}

fn segment(hls: &Arc<HlsStreams>, path: &str, id: &str, msn: u64) -> HttpResult {
    let stream = running_stream_of(hls, path)?;
    let cache_control = media_cache_control(&stream, id)?;
    let bytes = stream.lock().playlist.segment(msn);
    let bytes = bytes.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("segment {msn} is not available"),
        )
    })?;
    media(bytes, cache_control)
}

/// A part: complete parts are sent at once; the part being written (or about to be, when the
/// playlist hinted it) is streamed chunk by chunk as its frames arrive.
async fn part(hls: &Arc<HlsStreams>, path: &str, id: &str, msn: u64, index: u32) -> HttpResult {
    let stream = stream_of(hls, path).await?;
    let cache_control = media_cache_control(&stream, id)?;
    let deadline = Instant::now() + blocking_timeout(&stream.lock());
    let first = stream
        .wait_for(deadline, |s| match s.playlist.part(msn, index) {
            PartState::NotYet
                if s.playlist.availability(msn, Some(index)) == Availability::Pending =>
            {
                None
            }
            // A hinted part may still turn out not to exist (the segment was cut at a
            // keyframe first): commit to a 200 only once its first frame is there.
            PartState::Open { chunks } if chunks.is_empty() => None,
            other => Some(other),
        })
        .await;
    match first {
        None => Err(error(StatusCode::SERVICE_UNAVAILABLE, "the stream stalled")),
        Some(PartState::Complete(bytes)) => media(bytes, cache_control),
        Some(PartState::Open { .. }) => Ok(stream_part(stream, msn, index, cache_control)),
        Some(PartState::Gone) => Err(error(
            StatusCode::NOT_FOUND,
            format!("part {msn}.{index} is gone"),
        )),
        Some(PartState::NotYet | PartState::NotFound) => Err(error(
            StatusCode::NOT_FOUND,
            format!("part {msn}.{index} does not exist"),
        )),
    }
}

/// Streams an open part: what exists now, then each new chunk, until the part is complete.
fn stream_part(
    stream: Arc<HlsStream>,
    msn: u64,
    index: u32,
    cache_control: &'static str,
) -> Response {
    let body = futures_util::stream::unfold(
        (stream, 0usize, false),
        move |(stream, sent, done)| async move {
            if done {
                return None;
            }
            let deadline = Instant::now() + blocking_timeout(&stream.lock());
            let next = stream
                .wait_for(deadline, |s| match s.playlist.part(msn, index) {
                    PartState::Complete(bytes) => {
                        Some((bytes.slice(sent.min(bytes.len())..), true))
                    }
                    PartState::Open { chunks } => {
                        let have: usize = chunks.iter().map(Bytes::len).sum();
                        (have > sent).then(|| (concat_from(&chunks, sent), false))
                    }
                    PartState::NotYet => None,
                    PartState::Gone | PartState::NotFound => Some((Bytes::new(), true)),
                })
                .await;
            let (bytes, complete) = next?;
            let sent = sent + bytes.len();
            Some((Ok::<Bytes, Infallible>(bytes), (stream, sent, complete)))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, cache_control),
            (header::HeaderName::from_static(STREAMED_PART), "streamed"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The bytes of `chunks` from offset `from` on.
fn concat_from(chunks: &[Bytes], from: usize) -> Bytes {
    let mut skip = from;
    let mut out = Vec::new();
    for chunk in chunks {
        if skip >= chunk.len() {
            skip -= chunk.len();
            continue;
        }
        out.extend_from_slice(&chunk[skip..]);
        skip = 0;
    }
    Bytes::from(out)
}

fn timestamps(hls: &Arc<HlsStreams>, path: &str) -> HttpResult {
    let times = running_stream_of(hls, path)?.lock().playlist.timestamps();
    let json = web::timestamps_json(&times).to_string();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        json,
    )
        .into_response())
}

/// A WebRTC endpoint: WHEP to play, WHIP to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebRtcEndpoint {
    Whep,
    Whip,
}

impl WebRtcEndpoint {
    /// The last segment of its URL (`PATH/whep`, `PATH/whip`).
    fn word(self) -> &'static str {
        match self {
            WebRtcEndpoint::Whep => "whep",
            WebRtcEndpoint::Whip => "whip",
        }
    }
}

/// The endpoint and path of `PATH/whep` or `PATH/whip`, and the session id of a session
/// resource `PATH/whep/ID`, `PATH/whip/ID`.
pub(crate) fn webrtc_target(
    rest: &str,
) -> Result<(WebRtcEndpoint, String, Option<String>), HttpError> {
    for endpoint in [WebRtcEndpoint::Whep, WebRtcEndpoint::Whip] {
        let word = endpoint.word();
        let (path, id) = match rest.rsplit_once(&format!("/{word}/")) {
            Some((path, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (path, Some(id.to_string()))
            }
            Some(_) => {
                let what = word.to_ascii_uppercase();
                return Err(error(
                    StatusCode::NOT_FOUND,
                    format!("no such {what} session"),
                ));
            }
            None => match rest.strip_suffix(&format!("/{word}")) {
                Some(path) => (path, None),
                None => continue,
            },
        };
        let path = livefeed_media::path::validate(path)
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
        return Ok((endpoint, path.to_string(), id));
    }
    Err(error(
        StatusCode::NOT_FOUND,
        "WebRTC endpoints are PATH/whep (to play) and PATH/whip (to publish)",
    ))
}

/// `POST PATH/whep` or `POST PATH/whip`.
async fn webrtc_offer(
    state: State<App>,
    conn: ConnectInfo<Conn>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let (endpoint, path, id) = webrtc_target(&rest)?;
    if id.is_some() {
        let word = endpoint.word();
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("POST goes to PATH/{word}"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case("application/sdp") {
        let what = endpoint.word().to_ascii_uppercase();
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a {what} offer needs Content-Type: application/sdp"),
        ));
    }
    let offer = std::str::from_utf8(&body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text"))?;
    match endpoint {
        WebRtcEndpoint::Whep => whep_offer(state, conn, path, offer).await,
        WebRtcEndpoint::Whip => crate::api::whip::offer(state, conn, path, offer).await,
    }
}

/// The status of a refused offer: 406 when the codecs do not fit, 400 for a bad offer, 500
/// for the server's own failure.
pub(crate) fn offer_refusal_status(e: &livefeed_webrtc::WhepError) -> StatusCode {
    if e.is_codec_mismatch() {
        StatusCode::NOT_ACCEPTABLE
    } else if e.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// WHEP: an SDP offer in, `201 Created` with the answer and the session's `Location` out.
async fn whep_offer(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    path: String,
    offer: &str,
) -> HttpResult {
    let waited = app
        .hub
        .stream_on_demand(&path, crate::hub::ON_DEMAND_START_TIMEOUT)
        .await;
    let Some(stream) = waited else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no stream is being published on path {path:?}"),
        ));
    };
    let connecting = app
        .whep
        .reserve_connecting(conn.remote.ip())
        .map_err(|reason| {
            tracing::warn!(peer = %conn.remote, path, %reason, "WHEP offer refused");
            error(StatusCode::SERVICE_UNAVAILABLE, reason)
        })?;
    let candidates = app.whep.candidates(conn.local.map(|a| a.ip())).await;
    let tcp_candidates = app.whep.tcp_candidates(&candidates);
    let config = crate::outputs::whep::WhepServer::session_config(stream.codec);
    let now = Instant::now();
    let (session, answer) =
        WhepSession::accept_offer_on(&config, offer, &candidates, &tcp_candidates, now).map_err(
            |e| {
                tracing::warn!(peer = %conn.remote, path, error = %e, "WHEP offer refused");
                error(offer_refusal_status(&e), e.to_string())
            },
        )?;
    let reader = ReaderInfo {
        protocol: "webrtc".into(),
        remote: conn.remote.to_string(),
    };
    let sub = app.hub.subscribe_as(&path, reader).map_err(|e| match e {
        crate::hub::SubscribeError::NotServed(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        crate::hub::SubscribeError::TooManyReaders { .. } => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    })?;
    let id = app.whep.new_id();
    if !app
        .whep
        .add(id.clone(), &path, session, sub, candidates, connecting)
        .await
    {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the WebRTC media loop is not running",
        ));
    }
    tracing::info!(peer = %conn.remote, path, session = %id, "WHEP session created");
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, format!("/{path}/whep/{id}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        answer,
    )
        .into_response();
    add_ice_server_links(&app, &mut response);
    Ok(response)
}

/// `OPTIONS PATH/whep` or `PATH/whip` (not a CORS preflight, which the CORS layer answers): the STUN/TURN
/// servers a viewer may use, as `Link` headers (RFC 9725 section 4.6), before it makes its
/// offer.
async fn whep_options(State(app): State<App>, Path(rest): Path<String>) -> HttpResult {
    let allow = match webrtc_target(&rest) {
        Ok((_, _, Some(_))) => "DELETE, OPTIONS",
        Ok((_, _, None)) => "POST, OPTIONS",
        // Not a WHEP resource: what it allows, and no ICE servers.
        Err(_) => {
            let allow = [(header::ALLOW, "GET, HEAD, OPTIONS")];
            return Ok((StatusCode::NO_CONTENT, allow).into_response());
        }
    };
    let mut response = (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, allow), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response();
    add_ice_server_links(&app, &mut response);
    Ok(response)
}

pub(crate) fn add_ice_server_links(app: &App, response: &mut Response) {
    for link in app.whep.ice_server_links() {
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, value);
        }
    }
}

/// WHEP or WHIP session resource: DELETE ends the session.
async fn whep_delete(State(app): State<App>, Path(rest): Path<String>) -> HttpResult {
    let (endpoint, path, id) = webrtc_target(&rest)?;
    let what = endpoint.word().to_ascii_uppercase();
    let id = id.ok_or_else(|| {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE goes to the session's Location",
        )
    })?;
    let publisher = endpoint == WebRtcEndpoint::Whip;
    if app.whep.remove(&path, &id, publisher).await {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("no {what} session {id} on path {path:?}"),
        ))
    }
}

/// Trickle ICE is not offered: the answer carries every server candidate.
async fn whep_patch(Path(rest): Path<String>) -> HttpResult {
    webrtc_target(&rest)?;
    Ok((
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE, OPTIONS")],
        "trickle ICE is not supported: the answer already lists every candidate\n",
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_recognised() {
        assert!(matches!(resource("index.m3u8"), Some(Resource::Playlist)));
        assert!(matches!(
            resource("seg12.m4s"),
            Some(Resource::Media(id, MediaName::Segment(12))) if id.is_empty()
        ));
        assert!(matches!(
            resource("ab12-part12.3.m4s"),
            Some(Resource::Media(id, MediaName::Part(12, 3))) if id == "ab12"
        ));
        assert!(matches!(resource("init.mp4"), Some(Resource::Init(None))));
        assert!(matches!(
            resource("init-00000000000000ff.mp4"),
            Some(Resource::Init(Some(255)))
        ));
        assert!(resource("part12.m4s").is_none());
        assert!(resource("seg-1.m4s").is_none());
        assert!(resource("segx.m4s").is_none());
    }

    #[test]
    fn requests_split_into_path_and_resource() {
        assert!(
            matches!(split_request("cam/1/index.m3u8"), Ok((p, Resource::Playlist, false)) if p == "cam/1")
        );
        assert!(matches!(split_request("live/"), Ok((p, Resource::Player, false)) if p == "live"));
        assert!(matches!(split_request("live"), Ok((p, Resource::Player, true)) if p == "live"));
        for bad in [
            "../etc/index.m3u8",
            "a/../b/index.m3u8",
            "a\\b/index.m3u8",
            "/index.m3u8",
            "a//b/",
        ] {
            assert!(split_request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn concat_from_skips_what_was_sent() {
        let chunks = [Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        assert_eq!(&concat_from(&chunks, 0)[..], b"abcde");
        assert_eq!(&concat_from(&chunks, 2)[..], b"cde");
        assert_eq!(&concat_from(&chunks, 3)[..], b"de");
        assert_eq!(&concat_from(&chunks, 5)[..], b"");
    }
}
