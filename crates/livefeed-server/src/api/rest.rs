//! The JSON API under `/api/v1`:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/paths` | every path with a publisher or readers: publisher, stream, its tracks and the outputs carrying each, readers |
//! | `GET /api/v1/paths/{path}` | one path, 404 if unknown |
//! | `POST /api/v1/metrics` | `{"samples":[{path, stage, client, unix_ms, latency_ms}]}` (Content-Type: application/json, 415 otherwise; 403 from a page of another origin or name) → `{"accepted": n}` once committed |
//! | `GET /api/v1/metrics?path=&stage=&client=&since=&until=&step=` | points per stage/client and bucket (ms; defaults: the last 5 minutes, 1 s steps) |
//! | `GET /api/v1/time` | the server's clock (Unix ns), for clients' NTP-style offset estimates |
//! | `GET /api/v1/events` | Server-Sent Events: the dashboard's state once a second (see [`crate::api::events`]) |
//! | `POST /api/v1/sources/{path}` | start the built-in test pattern on `path`: `{width, height, fps, bitrate_kbps}` (all optional) → 201 |
//! | `DELETE /api/v1/sources/{path}` | stop it → 204, 404 if none |
//! | `DELETE /api/v1/readers/{id}` | disconnect an RTSP or WebRTC reader → 204, 404 if none |
//! | `GET /api/v1/recordings` | every recorded file: path, file, start time, size, URL |
//! | `GET /api/v1/recordings/{path}/{file}` | download one (video/mp4) |
//! | `POST /api/v1/recordings/{path}` / `DELETE` | start / stop recording a path → 201 / 204 |
//! | `GET /metrics` | Prometheus (see [`crate::api::prometheus`]) |
//!
//! Errors are JSON `{"error": "..."}` with the right status: bad input is 400, never 500.
//! Who may call what is decided in front of every route by [`crate::api::http_auth`]: without
//! configured users, controls (sources, readers) answer only clients on loopback (403).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use livefeed_store::{parse_samples_json, MetricsQuery, StoreError};
use serde_json::{json, Value};

use crate::api::http::{App, Conn};
use crate::hub::PathSnapshot;
use crate::ingest::sources::{SourceError, SourceParams};

/// A JSON error.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = if e.is_client_error() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn path_json(app: &App, p: &PathSnapshot, sources: &[(String, SourceParams)]) -> Value {
    let stream = p.stream.as_ref().and_then(|s| s.video.as_ref());
    let now = SystemTime::now();
    let publisher = p.publisher.as_ref().map(|pb| {
        json!({
            "protocol": pb.info.protocol,
            "remote": pb.info.remote,
            "since_unix_ms": unix_ms(pb.since),
            "uptime_s": now.duration_since(pb.since).map_or(0.0, |d| d.as_secs_f64()),
            "fps": pb.fps,
            "bitrate_bps": pb.bitrate_bps,
        })
    });
    let mut readers: Vec<Value> = p
        .clients()
        .map(|r| {
            json!({
                "id": r.id, "protocol": r.info.protocol, "remote": r.info.remote,
                "since_unix_ms": unix_ms(r.since), "drops": r.drops,
            })
        })
        .collect();
    let hls = app.hls_viewers.of(&p.name);
    readers.extend(hls.iter().map(|v| {
        json!({
            "id": null, "protocol": "hls", "remote": v.remote.to_string(),
            "since_unix_ms": unix_ms(v.since), "drops": null,
        })
    }));
    let count = |proto: &str| {
        p.clients()
            .filter(|r| r.info.protocol.starts_with(proto))
            .count()
    };
    let source = sources
        .iter()
        .find(|(name, _)| *name == p.name)
        .map(|(_, params)| params);
    json!({
        "name": p.name,
        "publisher": publisher,
        "width": stream.map(|s| s.width),
        "height": stream.map(|s| s.height),
        "codec": stream.map(|s| s.description.clone()),
        "readers": readers,
        "reader_counts": { "rtsp": count("rtsp"), "webrtc": count("webrtc"), "hls": hls.len() },
        "hls_requests_per_second": app.hls_viewers.requests_per_second(&p.name),
        "frames_in": p.frames_in,
        "bytes_in": p.bytes_in,
        "dropped_frames": p.drops,
        "skipped_after_loss": p.skipped_after_loss,
        "keyframe_requests": p.keyframe_requests,
        "tracks": tracks_json(p),
        "test_source": source,
        "pull_source": app.pull_sources.status(&p.name),
        "recording": app.recordings.is_recording(&p.name),
    })
}

/// Every track of the path's stream and the outputs that carry it: the H.264 video goes
/// everywhere; other tracks pass through RTSP; the first AAC, Opus or G.711 track goes into
/// LL-HLS and recordings, and to WebRTC viewers the first Opus track, or else that track
/// transcoded to Opus.
fn tracks_json(p: &PathSnapshot) -> Vec<Value> {
    let Some(stream) = &p.stream else {
        return Vec::new();
    };
    // WebRTC carries H.265 only to viewers whose browser offers it.
    let video = json!({
        "id": 0, "media": "video", "codec": stream.codec.name(),
        "clock_rate": livefeed_media::VIDEO_CLOCK_RATE,
        "outputs": ["rtsp", "hls", "webrtc", "recording"],
        "webrtc_only_if_viewer_offers_codec": stream.codec == livefeed_media::VideoCodec::H265,
    });
    let muxed = stream
        .others
        .iter()
        .position(crate::outputs::audio_track::can_carry);
    let webrtc = crate::outputs::whep::webrtc_audio_track(&stream.others).map(|t| t - 1);
    let others = stream.others.iter().enumerate().map(|(i, t)| {
        let mut outputs = vec!["rtsp"];
        if muxed == Some(i) {
            outputs.extend(["hls", "recording"]);
        }
        if webrtc == Some(i) {
            outputs.push("webrtc");
        }
        json!({
            "id": i + 1, "media": t.media, "codec": t.codec.name(), "clock_rate": t.clock_rate,
            "outputs": outputs,
        })
    });
    std::iter::once(video).chain(others).collect()
}

fn running_sources(app: &App) -> Vec<(String, SourceParams)> {
    app.sources.get().map_or_else(Vec::new, |s| s.running())
}

/// Every path with a publisher, readers or a pull source.
pub fn paths_json(app: &App) -> Vec<Value> {
    let sources = running_sources(app);
    let snapshot = with_pull_sources(app, app.hub.snapshot());
    snapshot
        .iter()
        .map(|p| path_json(app, p, &sources))
        .collect()
}

/// `snapshot` with an empty entry for each pull-source path it lacks (an on-demand source
/// nobody reads, one that cannot connect), so its status shows.
fn with_pull_sources(app: &App, mut snapshot: Vec<PathSnapshot>) -> Vec<PathSnapshot> {
    for (path, _) in app.pull_sources.all() {
        if snapshot.iter().all(|p| p.name != path) {
            snapshot.push(PathSnapshot::empty(path));
        }
    }
    snapshot.sort_by(|a, b| a.name.cmp(&b.name));
    snapshot
}

/// `GET /api/v1/paths`.
pub async fn paths(State(app): State<App>) -> Response {
    Json(json!({ "paths": paths_json(&app) })).into_response()
}

fn bad_request(e: impl ToString) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

/// `GET /api/v1/paths/{path}`.
pub async fn path(State(app): State<App>, Path(name): Path<String>) -> ApiResult {
    let name = livefeed_media::path::validate(&name).map_err(bad_request)?;
    let snapshot = with_pull_sources(&app, app.hub.snapshot());
    let found = snapshot.iter().find(|p| p.name == name);
    let p = found.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no path {name:?}")))?;
    Ok(Json(path_json(&app, p, &running_sources(&app))).into_response())
}

/// `POST /api/v1/sources/{path}`: starts the test pattern; the body (JSON, optional) sets its
/// parameters.
pub async fn start_source(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let name = livefeed_media::path::validate(&name).map_err(bad_request)?;
    let params: SourceParams = if body.iter().all(u8::is_ascii_whitespace) {
        SourceParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("bad JSON: {e}")))?
    };
    params.check().map_err(bad_request)?;
    let sources = app.sources.get().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "this server has no built-in test source".into(),
        )
    })?;
    sources.start(name, params).map_err(|e| match e {
        SourceError::Busy(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
        SourceError::Invalid(_) => bad_request(e),
        SourceError::TooMany(_) => ApiError(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
    })?;
    tracing::info!(peer = %conn.remote, path = name, ?params, "test source started");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "path": name, "test_source": params })),
    )
        .into_response())
}

/// `DELETE /api/v1/sources/{path}`.
pub async fn stop_source(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(name): Path<String>,
) -> ApiResult {
    let name = livefeed_media::path::validate(&name).map_err(bad_request)?;
    if app.sources.get().is_some_and(|s| s.stop(name)) {
        tracing::info!(peer = %conn.remote, path = name, "test source stopped");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("path {name:?} has no test source"),
        ))
    }
}

/// `DELETE /api/v1/readers/{id}`.
pub async fn disconnect_reader(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(id): Path<String>,
) -> ApiResult {
    let id: u64 = id
        .parse()
        .map_err(|_| bad_request(format!("reader id must be a number, got {id:?}")))?;
    if app.hub.disconnect_reader(id) {
        tracing::info!(peer = %conn.remote, reader = id, "reader disconnected on request");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no reader {id}")))
    }
}

/// `GET /metrics`: Prometheus exposition.
pub async fn prometheus(State(app): State<App>) -> Response {
    let snapshot = app.hub.snapshot();
    let text = app
        .prometheus
        .render(&snapshot, |path| app.hls_viewers.of(path).len());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `POST /api/v1/metrics`.
pub async fn post_metrics(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    require_json(&headers)?;
    let (ip, now) = (conn.remote.ip(), std::time::Instant::now());
    // An address over its rate is refused before its body is parsed (a flood must not cost a
    // parse per refused batch): one sample is charged first, the rest once they are counted.
    let over_rate = |wait: std::time::Duration| {
        app.refusals.note(
            "http",
            "metric samples refused",
            "over --metrics-rate",
            conn.remote,
        );
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "over {} samples a second from this address (--metrics-rate); retry in {} ms",
                app.sample_rate.rate(),
                wait.as_millis().min(60_000)
            ),
        )
    };
    app.sample_rate.take(ip, 1, now).map_err(over_rate)?;
    let samples = parse_samples_json(&body)?;
    app.sample_rate
        .take(ip, samples.len().saturating_sub(1), now)
        .map_err(over_rate)?;
    let accepted = app.record_samples(samples, false).await?;
    Ok(Json(json!({ "accepted": accepted })).into_response())
}

/// Refuses a body that is not declared JSON: a page of another site can send `text/plain`
/// (or a form) without the browser asking first, but never `application/json`.
fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("samples must be sent as Content-Type: application/json, got {content_type:?}"),
        ))
    }
}

/// `GET /api/v1/metrics`.
pub async fn get_metrics(
    State(app): State<App>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let query = metrics_query(&params, livefeed_store::unix_now_ms())?;
    let points = app.store.query(query).await?;
    Ok(Json(json!({ "points": points })).into_response())
}

/// Reads the query parameters, with defaults: the last five minutes in one-second steps.
fn metrics_query(params: &HashMap<String, String>, now_ms: i64) -> Result<MetricsQuery, ApiError> {
    let number = |name: &str, default: i64| -> Result<i64, ApiError> {
        match params.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{name} must be an integer (ms), got {v:?}"),
                )
            }),
        }
    };
    let until = number("until", now_ms)?;
    let since = number("since", until.saturating_sub(5 * 60 * 1000))?;
    let mut query = MetricsQuery::range(since, until, number("step", 1000)?);
    query.path = params.get("path").cloned();
    query.stage = params.get("stage").cloned();
    query.client = params.get("client").cloned();
    Ok(query)
}

/// `GET /api/v1/time`: the server's wall clock, read as late as possible before answering.
pub async fn time() -> Response {
    let unix_ns = livefeed_media::clock::unix_now_ns();
    Json(json!({ "unix_ns": unix_ns, "unix_ms": unix_ns / 1_000_000 })).into_response()
}

/// `GET /api/v1/recordings`.
pub async fn list_recordings(State(app): State<App>) -> Response {
    let recordings = app.recordings.clone();
    // A directory walk: off the async threads.
    let listed = tokio::task::spawn_blocking(move || recordings.list())
        .await
        .unwrap_or_default();
    let files: Vec<Value> = listed
        .into_iter()
        .map(|f| {
            let url = format!("/api/v1/recordings/{}/{}", f.path, f.file);
            json!({ "path": f.path, "file": f.file, "start_unix_ms": f.start_unix_ms,
                    "bytes": f.bytes, "url": url })
        })
        .collect();
    Json(json!({ "recordings": files })).into_response()
}

/// `GET /api/v1/recordings/{path}/{file}`: the file, as video/mp4.
pub async fn download_recording(State(app): State<App>, Path(rest): Path<String>) -> ApiResult {
    let (path, file) = rest
        .rsplit_once('/')
        .ok_or_else(|| bad_request("expected /api/v1/recordings/PATH/FILE.mp4"))?;
    let path = livefeed_media::path::validate(path).map_err(bad_request)?;
    if crate::outputs::recordings::parse_file_name(file).is_none() {
        return Err(bad_request(format!(
            "{file:?} is not a recording's file name"
        )));
    }
    let full = app
        .recordings
        .file(path, file)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no recording {path}/{file}")))?;
    let file_handle = tokio::fs::File::open(&full).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {path}/{file}: {e}"),
        )
    })?;
    let length = file_handle.metadata().await.map(|m| m.len()).ok();
    // Streamed: a recording may be gigabytes.
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file_handle));
    let mut response = (
        [
            (axum::http::header::CONTENT_TYPE, "video/mp4".to_string()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response();
    if let Some(len) = length {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_LENGTH, len.into());
    }
    Ok(response)
}

/// `POST /api/v1/recordings/{path}`.
pub async fn start_recording(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(name): Path<String>,
) -> ApiResult {
    let name = livefeed_media::path::validate(&name).map_err(bad_request)?;
    app.recordings.start(name).map_err(|e| match e {
        crate::outputs::recordings::RecordError::AlreadyRecording(_) => {
            ApiError(StatusCode::CONFLICT, e.to_string())
        }
        crate::outputs::recordings::RecordError::NotPublished(_) => {
            ApiError(StatusCode::NOT_FOUND, e.to_string())
        }
    })?;
    tracing::info!(peer = %conn.remote, path = name, "recording started on request");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "path": name, "recording": true })),
    )
        .into_response())
}

/// `DELETE /api/v1/recordings/{path}`.
pub async fn stop_recording(State(app): State<App>, Path(name): Path<String>) -> ApiResult {
    let name = livefeed_media::path::validate(&name).map_err(bad_request)?;
    if app.recordings.stop(name) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("path {name:?} is not being recorded"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_and_bad_numbers() {
        let q = metrics_query(&HashMap::new(), 1_000_000)
            .ok()
            .expect("defaults");
        assert_eq!(
            (q.since_ms, q.until_ms, q.step_ms),
            (700_000, 1_000_000, 1000)
        );
        let bad = HashMap::from([("since".to_string(), "yesterday".to_string())]);
        assert!(matches!(
            metrics_query(&bad, 0),
            Err(ApiError(StatusCode::BAD_REQUEST, _))
        ));
    }
}
