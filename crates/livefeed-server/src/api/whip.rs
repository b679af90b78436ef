//! `POST /PATH/whip`: a WHIP publisher's offer (RFC 9725). The offer is checked and answered
//! (receive only: H.264 with packetization-mode 1, else H.265; Opus) if a publisher could claim
//! the path (409 while another holds it, 404 for a path not served), and the session handed to
//! the WebRTC media loop, which claims the path once the session connected (an offer that never
//! connects takes nothing over); `201 Created` carries the
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
    app.hub
        .check_publishable(&path)
        .map_err(|e| refused(peer, &path, e))?;
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
    let (video, audio) = (session.codec().name(), session.has_audio());
    let claim: crate::outputs::whep::ClaimPath = {
        let (hub, metrics, path) = (app.hub.clone(), app.metrics.clone(), path.clone());
        let (codec, limits) = (session.codec(), app.depacketizer);
        Box::new(move || WhipIngest::claim(&hub, metrics, &path, peer, codec, audio, limits))
    };
    let id = app.whep.new_id();
    if !app
        .whep
        .add_publisher(id.clone(), &path, session, claim, candidates, connecting)
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

/// The answer to an offer for a path a publisher cannot claim: 409 while another holds it, 404
/// for a path not served.
fn refused(peer: std::net::SocketAddr, path: &str, e: PublishError) -> crate::api::http::HttpError {
    tracing::warn!(%peer, path, error = %e, "WHIP publisher refused");
    let status = match e {
        PublishError::Busy { .. } => StatusCode::CONFLICT,
        PublishError::UnknownPath(_) => StatusCode::NOT_FOUND,
    };
    error(status, e.to_string())
}
