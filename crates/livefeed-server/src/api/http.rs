//! The HTTP server (axum): LL-HLS per path, WHEP, the dashboard and player pages, the API
//! (see [`crate::api::rest`]).
//!
//! | route | what |
//! |---|---|
//! | `/PATH/index.m3u8` | media playlist; `_HLS_msn`/`_HLS_part` block until that part exists (503 after 3 × target duration), `_HLS_skip=YES` gives a delta update |
//! | `/live.m3u8` | alias of `/live/index.m3u8` |
//! | `/PATH/init.mp4`, `/PATH/segN.m4s`, `/PATH/partN.I.m4s` | CMAF init, segments, parts; the preload-hinted part is streamed as its frames arrive |
//! | `/PATH/timestamps.json` | capture and availability time of every segment and part |
//! | `/` | the dashboard (paths, readers, video, stage breakdown, latency chart, controls) |
//! | `/PATH/` | the player page (hls.js, latency from the pixel timecode) |
//! | `/static/*` | the page's scripts |
//!
//! Path names follow [`livefeed_media::path`]; anything else is a 400. Every response allows any
//! origin (CORS), playlists are never cached, parts/segments/init are immutable.

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
use livefeed_hls::query::parse_query;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::cors::CorsLayer;

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

/// Largest WHEP offer accepted (SDP offers are a few KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct App {
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
                .post(whep_offer)
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
        .layer(CorsLayer::permissive().expose_headers([header::LOCATION]))
        .with_state(app)
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

fn error(status: StatusCode, reason: impl Into<String>) -> HttpError {
    HttpError(status, reason.into())
}

type HttpResult = Result<Response, HttpError>;

async fn index() -> Response {
    web::dashboard_page()
}

async fn live_alias(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    app.hls_viewers
        .request(DEFAULT_PATH, conn.remote, query.as_deref());
    playlist(&app.hls, DEFAULT_PATH, query.as_deref()).await
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
    Init,
    Segment(u64),
    Part(u64, u32),
    Timestamps,
    Player,
}

fn resource(file: &str) -> Option<Resource> {
    match file {
        "index.m3u8" => Some(Resource::Playlist),
        "timestamps.json" => Some(Resource::Timestamps),
        "" => Some(Resource::Player),
        media => Some(match playlist::Resource::parse(media)? {
            playlist::Resource::Init => Resource::Init,
            playlist::Resource::Segment(msn) => Resource::Segment(msn),
            playlist::Resource::Part(msn, i) => Resource::Part(msn, i),
        }),
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
    match res {
        Resource::Player if bare => Ok(Redirect::permanent(&format!("/{path}/")).into_response()),
        Resource::Player => Ok(web::player_page(&path)),
        Resource::Playlist => {
            app.hls_viewers
                .request(&path, conn.remote, query.as_deref());
            playlist(hls, &path, query.as_deref()).await
        }
        Resource::Init => init(hls, &path).await,
        Resource::Segment(msn) => segment(hls, &path, msn),
        Resource::Part(msn, i) => part(hls, &path, msn, i).await,
        Resource::Timestamps => timestamps(hls, &path),
    }
}

fn stream_of(hls: &Arc<HlsStreams>, path: &str) -> Result<Arc<HlsStream>, HttpError> {
    hls.get_or_start(path).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no stream is being published on path {path:?}"),
        )
    })
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

async fn playlist(hls: &Arc<HlsStreams>, path: &str, query: Option<&str>) -> HttpResult {
    let request = parse_query(query).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let stream = stream_of(hls, path)?;
    let deadline = Instant::now() + blocking_timeout(&stream.lock());
    let ready = stream
        .wait_for(deadline, |state| {
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
                    state.playlist.render(request.skip).map(Ok)
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
            .then(|| state.playlist.render(request.skip).map(Ok))
            .flatten()
    });
    let text = ready.ok_or_else(|| {
        let frames = hls.frames_published(path).unwrap_or(0);
        stalled(&stream.lock(), frames)
    })??;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        text,
    )
        .into_response())
}

fn media(bytes: Bytes) -> HttpResult {
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response())
}

async fn init(hls: &Arc<HlsStreams>, path: &str) -> HttpResult {
    let stream = stream_of(hls, path)?;
    let deadline = Instant::now() + blocking_timeout(&stream.lock());
    let init = stream.wait_for(deadline, |s| s.init.clone()).await;
    media(init.ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "no keyframe received yet"))?)
}

fn segment(hls: &Arc<HlsStreams>, path: &str, msn: u64) -> HttpResult {
    let bytes = stream_of(hls, path)?.lock().playlist.segment(msn);
    media(bytes.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("segment {msn} is not available"),
        )
    })?)
}

/// A part: complete parts are sent at once; the part being written (or about to be, when the
/// playlist hinted it) is streamed chunk by chunk as its frames arrive.
async fn part(hls: &Arc<HlsStreams>, path: &str, msn: u64, index: u32) -> HttpResult {
    let stream = stream_of(hls, path)?;
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
        Some(PartState::Complete(bytes)) => media(bytes),
        Some(PartState::Open { .. }) => Ok(stream_part(stream, msn, index)),
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
fn stream_part(stream: Arc<HlsStream>, msn: u64, index: u32) -> Response {
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
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
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
    let times = stream_of(hls, path)?.lock().playlist.timestamps();
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

/// The path of a WHEP endpoint `PATH/whep`, or of a session resource `PATH/whep/ID`.
fn whep_target(rest: &str) -> Result<(String, Option<String>), HttpError> {
    let (path, id) = match rest.rsplit_once("/whep/") {
        Some((path, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (path, Some(id.to_string()))
        }
        Some(_) => return Err(error(StatusCode::NOT_FOUND, "no such WHEP session")),
        None => match rest.strip_suffix("/whep") {
            Some(path) => (path, None),
            None => return Err(error(StatusCode::NOT_FOUND, "WHEP endpoints are PATH/whep")),
        },
    };
    let path = livefeed_media::path::validate(path)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok((path.to_string(), id))
}

/// WHEP: an SDP offer in, `201 Created` with the answer and the session's `Location` out.
async fn whep_offer(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let (path, id) = whep_target(&rest)?;
    if id.is_some() {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST goes to PATH/whep",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case("application/sdp") {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a WHEP offer needs Content-Type: application/sdp",
        ));
    }
    let Some(stream) = app.hub.stream_info(&path) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no stream is being published on path {path:?}"),
        ));
    };
    let offer = std::str::from_utf8(&body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text"))?;
    let connecting = app
        .whep
        .reserve_connecting(conn.remote.ip())
        .map_err(|reason| {
            tracing::warn!(peer = %conn.remote, path, %reason, "WHEP offer refused");
            error(StatusCode::SERVICE_UNAVAILABLE, reason)
        })?;
    let candidates = app.whep.candidates(conn.local.map(|a| a.ip()));
    let config = crate::outputs::whep::WhepServer::session_config(stream.codec);
    let (session, answer) =
        WhepSession::accept_offer_with(&config, offer, &candidates, Instant::now()).map_err(
            |e| {
                let status = if e.is_codec_mismatch() {
                    StatusCode::NOT_ACCEPTABLE
                } else if e.is_client_error() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                tracing::warn!(peer = %conn.remote, path, error = %e, "WHEP offer refused");
                error(status, e.to_string())
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
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, format!("/{path}/whep/{id}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        answer,
    )
        .into_response())
}

/// WHEP session resource: DELETE ends the session.
async fn whep_delete(State(app): State<App>, Path(rest): Path<String>) -> HttpResult {
    let (path, id) = whep_target(&rest)?;
    let id = id.ok_or_else(|| {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE goes to the session's Location",
        )
    })?;
    if app.whep.remove(&path, &id).await {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("no WHEP session {id} on path {path:?}"),
        ))
    }
}

/// Trickle ICE is not offered: the answer carries every server candidate.
async fn whep_patch(Path(rest): Path<String>) -> HttpResult {
    whep_target(&rest)?;
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
        assert!(matches!(resource("seg12.m4s"), Some(Resource::Segment(12))));
        assert!(matches!(
            resource("part12.3.m4s"),
            Some(Resource::Part(12, 3))
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
