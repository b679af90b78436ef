//! The HTTP server (axum): LL-HLS per path, the player page and its scripts.
//!
//! | route | what |
//! |---|---|
//! | `/PATH/index.m3u8` | media playlist; `_HLS_msn`/`_HLS_part` block until that part exists (503 after 3 × target duration), `_HLS_skip=YES` gives a delta update |
//! | `/live.m3u8` | alias of `/live/index.m3u8` |
//! | `/PATH/init.mp4`, `/PATH/segN.m4s`, `/PATH/partN.I.m4s` | CMAF init, segments, parts; the preload-hinted part is streamed as its frames arrive |
//! | `/PATH/timestamps.json` | capture and availability time of every segment and part |
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
use axum::extract::{Path, RawQuery, State};
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

use crate::hls_stream::{blocking_timeout, HlsStream, HlsStreams};
use crate::web;

/// The path `/live.m3u8` is an alias for.
pub const DEFAULT_PATH: &str = "live";

/// Starts serving HTTP on `listener`.
pub fn spawn(listener: TcpListener, hls: Arc<HlsStreams>) -> JoinHandle<()> {
    let app = router(hls);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}

/// The routes.
pub fn router(hls: Arc<HlsStreams>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/live.m3u8", get(live_alias))
        .route("/static/{file}", get(static_file))
        .route("/{*rest}", get(dispatch))
        .layer(CorsLayer::permissive())
        .with_state(hls)
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
    Redirect::temporary(&format!("/{DEFAULT_PATH}/")).into_response()
}

async fn live_alias(State(hls): State<Arc<HlsStreams>>, RawQuery(query): RawQuery) -> HttpResult {
    playlist(&hls, DEFAULT_PATH, query.as_deref()).await
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
    State(hls): State<Arc<HlsStreams>>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
) -> HttpResult {
    let (path, res, bare) = split_request(&rest)?;
    match res {
        Resource::Player if bare => Ok(Redirect::permanent(&format!("/{path}/")).into_response()),
        Resource::Player => Ok(web::player_page(&path)),
        Resource::Playlist => playlist(&hls, &path, query.as_deref()).await,
        Resource::Init => init(&hls, &path).await,
        Resource::Segment(msn) => segment(&hls, &path, msn),
        Resource::Part(msn, i) => part(&hls, &path, msn, i).await,
        Resource::Timestamps => timestamps(&hls, &path),
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

async fn playlist(hls: &Arc<HlsStreams>, path: &str, query: Option<&str>) -> HttpResult {
    let request = parse_query(query).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let stream = stream_of(hls, path)?;
    let deadline = Instant::now() + blocking_timeout(&stream.lock());
    let ready = stream
        .wait_for(deadline, |state| {
            if state.ended {
                return Some(Err(error(StatusCode::NOT_FOUND, "the stream ended")));
            }
            let text = state.playlist.render(request.skip)?;
            match request
                .msn
                .map(|msn| state.playlist.availability(msn, request.part))
            {
                None | Some(Availability::Ready) | Some(Availability::Gone) => Some(Ok(text)),
                Some(Availability::TooFarAhead) => Some(Err(error(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn is more than two segments beyond the last one",
                ))),
                Some(Availability::Pending) => None,
            }
        })
        .await;
    let text = ready.ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the stream stalled: no new part within 3 target durations",
        )
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
