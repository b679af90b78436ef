//! `POST /PATH/whip`: a WHIP publisher's offer (RFC 9725). The offer is checked and answered
//! (receive only: H.264 in any profile with packetization-mode 1, else H.265; Opus), the path
//! claimed for the publisher like an RTSP ANNOUNCE would (409 while another holds it, 404 for a
//! path not served), and the session handed to the WebRTC media loop; `201 Created` carries the
//! answer and the session's `Location` (`/PATH/whip/ID`, which DELETE ends). Auth (the
//! `publish` action on the path) is the HTTP auth layer's.

use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use livefeed_webrtc::{WhipConfig, WhipSession};

use crate::api::http::{error, offer_refusal_status, App, Conn, HttpResult};
use crate::hub::PublishError;
use crate::ingest::whip::WhipIngest;
use crate::outputs::whep::CONNECT_TIMEOUT;

/// Answers a publisher's `offer` for `path`.
pub(crate) async fn offer(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    path: String,
    offer: &str,
) -> HttpResult {
    let peer = conn.remote;
    let connecting = app.whep.reserve_connecting(peer.ip()).map_err(|reason| {
        tracing::warn!(%peer, path, %reason, "WHIP offer refused");
        error(StatusCode::SERVICE_UNAVAILABLE, reason)
    })?;
    let candidates = app.whep.candidates(conn.local.map(|a| a.ip())).await;
    let tcp_candidates = app.whep.tcp_candidates(&candidates);
    let config = WhipConfig {
        connect_timeout: CONNECT_TIMEOUT,
        ..WhipConfig::default()
    };
    let (session, answer) =
        WhipSession::accept_offer(&config, offer, &candidates, &tcp_candidates, Instant::now())
            .map_err(|e| {
                tracing::warn!(%peer, path, error = %e, "WHIP offer refused");
                error(offer_refusal_status(&e), e.to_string())
            })?;
    let ingest = WhipIngest::claim(
        &app.hub,
        app.metrics.clone(),
        &path,
        peer,
        session.codec(),
        session.has_audio(),
        app.depacketizer,
    )
    .map_err(|e| {
        tracing::warn!(%peer, path, error = %e, "WHIP publisher refused");
        let status = match e {
            PublishError::Busy { .. } => StatusCode::CONFLICT,
            PublishError::UnknownPath(_) => StatusCode::NOT_FOUND,
        };
        error(status, e.to_string())
    })?;
    let id = app.whep.new_id();
    let (video, audio) = (session.codec().name(), session.has_audio());
    if !app
        .whep
        .add_publisher(id.clone(), &path, session, ingest, candidates, connecting)
        .await
    {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the WebRTC media loop is not running",
        ));
    }
    tracing::info!(%peer, path, session = %id, video, audio, "WHIP session created");
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, format!("/{path}/whip/{id}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        answer,
    )
        .into_response();
    crate::api::http::add_ice_server_links(&app, &mut response);
    Ok(response)
}
