//! The pages and scripts the HTTP server serves, embedded at build time: the dashboard
//! (`web/dashboard.html`, `dashboard.js`), the player page (`web/player.html`, `player.js`),
//! the publish page (`web/publish.html`, `publish.js`),
//! their shared `livefeed.js`, and hls.js and uPlot from npm (see `build.rs`); and the
//! `timestamps.json` document.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use livefeed_hls::playlist::SegmentTimes;
use serde_json::{json, Value};

const PLAYER_HTML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/player.html"
));
const PUBLISH_HTML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/publish.html"
));
const DASHBOARD_HTML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/dashboard.html"
));

const JS: &str = "text/javascript";

/// The static assets: (file name, content type, bytes).
const ASSETS: [(&str, &str, &[u8]); 7] = [
    (
        "publish.js",
        JS,
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/publish.js")),
    ),
    (
        "player.js",
        JS,
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/player.js")),
    ),
    (
        "livefeed.js",
        JS,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../web/livefeed.js"
        )),
    ),
    (
        "dashboard.js",
        JS,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../web/dashboard.js"
        )),
    ),
    (
        "hls.min.js",
        JS,
        include_bytes!(concat!(env!("OUT_DIR"), "/hls.min.js")),
    ),
    (
        "uPlot.iife.min.js",
        JS,
        include_bytes!(concat!(env!("OUT_DIR"), "/uPlot.iife.min.js")),
    ),
    (
        "uPlot.min.css",
        "text/css",
        include_bytes!(concat!(env!("OUT_DIR"), "/uPlot.min.css")),
    ),
];

/// A static asset by file name: its content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, Bytes)> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, bytes)| (*content_type, Bytes::from_static(bytes)))
}

/// The dashboard page.
pub fn dashboard_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

/// The player page of `path` (a validated path name: safe inside HTML attributes and text).
pub fn player_page(path: &str) -> Response {
    page_of(PLAYER_HTML, path)
}

/// The publish page of `path` (validated, as for [`player_page`]).
pub fn publish_page(path: &str) -> Response {
    page_of(PUBLISH_HTML, path)
}

fn page_of(template: &str, path: &str) -> Response {
    let html = template.replace("{{PATH}}", path);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// `timestamps.json`: for every retained segment and part, the capture time of its first frame
/// and when it became available on the server (Unix ns and ms), keyed for lookups by URI as
/// the original streamer's sidecar was (`segments`), with the parts listed per segment.
pub fn timestamps_json(times: &[SegmentTimes]) -> Value {
    let ms = |ns: Option<u64>| ns.map(|n| n / 1_000_000);
    let segments: Vec<Value> = times
        .iter()
        .map(|s| {
            let parts: Vec<Value> = s
                .parts
                .iter()
                .map(|p| {
                    json!({
                        "uri": p.uri,
                        "capture_unix_ns": p.capture_unix_ns,
                        "capture_unix_ms": ms(p.capture_unix_ns),
                        "available_unix_ns": p.available_unix_ns,
                        "available_unix_ms": p.available_unix_ns / 1_000_000,
                    })
                })
                .collect();
            json!({
                "msn": s.msn,
                "uri": s.uri,
                "capture_unix_ns": s.capture_unix_ns,
                "capture_unix_ms": ms(s.capture_unix_ns),
                "available_unix_ns": s.available_unix_ns,
                "available_unix_ms": ms(s.available_unix_ns),
                "parts": parts,
            })
        })
        .collect();
    json!({ "segments": segments })
}
