//! The JSON API under `/api/v1`:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/paths` | every path with a publisher or readers: publisher, stream, readers |
//! | `GET /api/v1/paths/{path}` | one path, 404 if unknown |
//! | `POST /api/v1/metrics` | `{"samples":[{path, stage, client, unix_ms, latency_ms}]}` → `{"accepted": n}` once committed |
//! | `GET /api/v1/metrics?path=&stage=&client=&since=&until=&step=` | points per stage/client and bucket (ms; defaults: the last 5 minutes, 1 s steps) |
//! | `GET /api/v1/time` | the server's clock (Unix ns), for clients' NTP-style offset estimates |
//!
//! Errors are JSON `{"error": "..."}` with the right status: bad input is 400, never 500.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use livefeed_store::{parse_samples_json, MetricsQuery, StoreError};
use serde_json::{json, Value};

use crate::http::App;
use crate::hub::PathSnapshot;

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

fn path_json(p: &PathSnapshot) -> Value {
    let stream = p.stream.as_ref().and_then(|s| s.sps_info);
    json!({
        "name": p.name,
        "publisher": p.publisher.as_ref().map(|pb| json!({ "protocol": pb.protocol, "remote": pb.remote })),
        "width": stream.map(|s| s.width),
        "height": stream.map(|s| s.height),
        "codec": stream.map(|s| s.describe()),
        "readers": p.readers,
        "frames_in": p.frames_in,
    })
}

/// `GET /api/v1/paths`.
pub async fn paths(State(app): State<App>) -> Response {
    let list: Vec<Value> = app.hub.snapshot().iter().map(path_json).collect();
    Json(json!({ "paths": list })).into_response()
}

/// `GET /api/v1/paths/{path}`.
pub async fn path(State(app): State<App>, Path(name): Path<String>) -> ApiResult {
    let name = livefeed_media::path::validate(&name)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let snapshot = app.hub.snapshot();
    let found = snapshot.iter().find(|p| p.name == name);
    let p = found.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no path {name:?}")))?;
    Ok(Json(path_json(p)).into_response())
}

/// `POST /api/v1/metrics`.
pub async fn post_metrics(State(app): State<App>, body: Bytes) -> ApiResult {
    let samples = parse_samples_json(&body)?;
    let accepted = app.store.insert(samples).await?;
    Ok(Json(json!({ "accepted": accepted })).into_response())
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
