//! Authentication and permissions for HTTP: a middleware in front of every route.
//!
//! Each request is classified ([`classify`]) as an [`Action`] on a stream path, or as needing
//! nothing (the dashboard's HTML and scripts, the clock, CORS preflights, which the CORS layer
//! answers before this; a plain OPTIONS reads its path: on a WHEP endpoint it carries TURN
//! credentials): LL-HLS, WHEP and the
//! player page read their path; the API's reads and Prometheus read every path (path `""`,
//! which only users without path restrictions cover); starting/stopping sources and
//! disconnecting readers are controls, refused to pages of another origin (`Origin` not the
//! `Host`). Credentials: `Authorization: Basic` or `Bearer`.
//! A 401 carries `WWW-Authenticate: Basic realm="livefeed"` (browsers ask for credentials);
//! wrong credentials are answered after [`livefeed_auth::FAILURE_DELAY`].

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use livefeed_auth::{Action, AuthRequest, Decision};

use crate::api::http::{webrtc_target, App, Conn, WebRtcEndpoint, DEFAULT_PATH};

/// What a request needs: `None` for nothing, else the action and the path it applies to.
/// The fixed routes (`/static/…`, `/api/…`) match the raw path, as the router does; a stream
/// request is classified percent-decoded, as its handler sees it, with the same parsers
/// (`/cam/%77hip` is `cam`'s WHIP endpoint; `a/whip/b/index.m3u8` is stream `a/whip/b`).
pub fn classify(method: &Method, path: &str) -> Option<(Action, String)> {
    let rest = path.trim_start_matches('/');
    let decoded = percent_encoding::percent_decode_str(rest).decode_utf8_lossy();
    if let Some(classified) = webrtc_or_publish_page(method, &decoded) {
        return Some(classified);
    }
    if method == Method::OPTIONS {
        // The CORS layer answers preflights before this. A plain OPTIONS of a WHEP endpoint
        // gives the ICE servers (TURN credentials), so every plain OPTIONS needs the right to
        // read its path: failing closed, whatever encoding the target uses.
        return Some((Action::Read, stream_path(&decoded)));
    }
    if rest.is_empty()
        || rest == "favicon.ico"
        || rest.starts_with("static/")
        || rest == "api/v1/time"
    {
        return None;
    }
    if let Some(source) = rest.strip_prefix("api/v1/sources/") {
        return Some((Action::Api, source.trim_matches('/').to_string()));
    }
    if let Some(recording) = rest.strip_prefix("api/v1/recordings/") {
        if method == Method::POST || method == Method::DELETE {
            return Some((Action::Api, recording.trim_matches('/').to_string()));
        }
    }
    if rest.starts_with("api/v1/readers/") {
        return Some((Action::Api, String::new()));
    }
    if rest.starts_with("api/") || rest == "metrics" {
        return Some((Action::Read, String::new()));
    }
    if rest == "live.m3u8" {
        return Some((Action::Read, DEFAULT_PATH.to_string()));
    }
    Some((Action::Read, stream_path(&decoded)))
}

/// A WebRTC endpoint or session as the non-GET routes parse it (WHIP: publish, WHEP: read), or
/// the publish page as GET parses it; `None` for anything else.
fn webrtc_or_publish_page(method: &Method, decoded: &str) -> Option<(Action, String)> {
    if method == Method::GET || method == Method::HEAD {
        let (dir, file) = decoded.rsplit_once('/')?;
        return (file == "publish").then(|| (Action::Publish, dir.to_string()));
    }
    let (endpoint, path, _) = webrtc_target(decoded).ok()?;
    let action = match endpoint {
        WebRtcEndpoint::Whip => Action::Publish,
        WebRtcEndpoint::Whep => Action::Read,
    };
    Some((action, path))
}

/// The stream path of `cam/1/index.m3u8`, `cam/1/whep/ID`, `cam/1/` or `cam/1`.
fn stream_path(rest: &str) -> String {
    if let Some((path, _)) = rest.split_once("/whep/") {
        return path.to_string();
    }
    if let Some(path) = rest.strip_suffix("/whep") {
        return path.to_string();
    }
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once('/') {
        Some((dir, file)) if file.contains('.') => dir.to_string(),
        None if rest.contains('.') => String::new(),
        _ => rest.to_string(),
    }
}

/// Whether the request carries an `Origin` that is not this server as the page reached it:
/// `http://` and the `Host` exactly (scheme included: livefeed serves plain HTTP).
fn cross_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false; // not from a browser page (curl, livefeed itself)
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    host.is_none_or(|h| {
        !origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(h))
    })
}

/// Why the request's `Host` is not one of this server's names, if it is not: an IP address,
/// `localhost` or one of `allowed` (ports ignored). A page served by another name that resolves
/// to this server (DNS rebinding) carries that name.
fn foreign_host(headers: &axum::http::HeaderMap, allowed: &[String]) -> Option<String> {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return Some("the request has no Host".into());
    };
    let name = host_name(host);
    let ours = name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name));
    (!ours).then(|| {
        format!("Host {host:?} is not one of this server's names (IP addresses, localhost, --allowed-host)")
    })
}

/// The name of a `Host` value: without its port, an IPv6 literal without brackets.
fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether the request changes something a page from elsewhere must not reach through the
/// browser: a control, samples written to the store, or publishing (WHIP: a page elsewhere
/// must not publish through a browser on the server's machine).
fn is_write(action: Action, method: &Method, path: &str) -> bool {
    matches!(action, Action::Api | Action::Publish)
        || (method == Method::POST && path == "/api/v1/metrics")
}

/// The middleware.
pub async fn require(
    State(app): State<App>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
    next: Next,
) -> Response {
    let Some((action, path)) = classify(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    if is_write(action, req.method(), req.uri().path()) {
        // CORS lets any page *read*; a page from elsewhere — or from another name rebound to
        // this address — must not drive the controls or fill the store with the browser's
        // loopback address or stored credentials.
        if let Some(reason) = foreign_host(req.headers(), &app.allowed_hosts) {
            tracing::warn!(peer = %conn.remote, path = %path, %reason, "control request refused");
            return (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response();
        }
        if cross_origin(req.headers()) {
            tracing::warn!(peer = %conn.remote, path = %path, "cross-origin control request refused");
            return (
                StatusCode::FORBIDDEN,
                "controls and metric submissions are refused to pages from another origin\n",
            )
                .into_response();
        }
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let decision = app.auth.check(&AuthRequest {
        action,
        path: &path,
        ip: conn.remote.ip(),
        connection: None,
        authorization,
        method: req.method().as_str(),
        uri: req.uri().path(),
        now_secs: livefeed_media::clock::unix_now_ns() / 1_000_000_000,
    });
    match decision {
        Decision::Allowed { .. } => next.run(req).await,
        Decision::Unauthorized {
            reason,
            credentials_given,
        } => {
            tracing::warn!(peer = %conn.remote, path = %path, %reason, "HTTP authentication failed");
            if credentials_given {
                tokio::time::sleep(livefeed_auth::FAILURE_DELAY).await;
            }
            let challenges = app.auth.challenges(0, false);
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "authentication required: Basic or Bearer credentials\n",
            )
                .into_response();
            for c in challenges {
                if let Ok(v) = c.parse() {
                    response.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
            response
        }
        Decision::Forbidden { reason } => {
            tracing::warn!(peer = %conn.remote, path = %path, %reason, "HTTP request forbidden");
            (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_pages_may_control() {
        let headers = |origin: Option<&str>| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::HOST, "127.0.0.1:8888".parse().expect("host"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().expect("origin"));
            }
            h
        };
        assert!(!cross_origin(&headers(None)));
        assert!(!cross_origin(&headers(Some("http://127.0.0.1:8888"))));
        assert!(cross_origin(&headers(Some("http://evil.example"))));
        assert!(cross_origin(&headers(Some("null"))));
        // The scheme counts: an https page (or a bare host) is another origin.
        assert!(cross_origin(&headers(Some("https://127.0.0.1:8888"))));
        assert!(cross_origin(&headers(Some("127.0.0.1:8888"))));
    }

    #[test]
    fn only_this_servers_names_may_control() {
        let with_host = |host: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::HOST, host.parse().expect("host"));
            h
        };
        let allowed = vec!["cam.example.org".to_string()];
        for ours in [
            "127.0.0.1:8888",
            "192.168.1.20:8888",
            "[::1]:8888",
            "localhost:8888",
            "LOCALHOST",
            "cam.example.org:8888",
        ] {
            assert_eq!(foreign_host(&with_host(ours), &allowed), None, "{ours}");
        }
        // DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends its name.
        for foreign in [
            "evil.example:8888",
            "evil.example",
            "127.0.0.1.evil.example:8888",
        ] {
            assert!(
                foreign_host(&with_host(foreign), &allowed).is_some(),
                "{foreign}"
            );
        }
        assert!(foreign_host(&axum::http::HeaderMap::new(), &allowed).is_some());
    }

    #[test]
    fn requests_are_classified() {
        let get = Method::GET;
        assert_eq!(classify(&get, "/"), None);
        assert_eq!(classify(&get, "/static/hls.min.js"), None);
        let read = |p: &str| Some((Action::Read, p.to_string()));
        assert_eq!(classify(&Method::OPTIONS, "/cam/whep"), read("cam"));
        assert_eq!(classify(&Method::OPTIONS, "/cam/%77hep"), read("cam"));
        let publish = |p: &str| Some((Action::Publish, p.to_string()));
        assert_eq!(classify(&Method::POST, "/cam/1/whip"), publish("cam/1"));
        assert_eq!(classify(&Method::POST, "/cam/1/%77hip"), publish("cam/1"));
        assert_eq!(classify(&Method::DELETE, "/cam/whip/ab12"), publish("cam"));
        assert_eq!(classify(&Method::OPTIONS, "/cam/whip"), publish("cam"));
        assert_eq!(classify(&get, "/cam/publish"), publish("cam"));
        // The routes' parsers: a stream whose path has a `whip` segment is read as any other.
        assert_eq!(classify(&get, "/a/whip/b/index.m3u8"), read("a/whip/b"));
        assert_eq!(classify(&get, "/a/whip/index.m3u8"), read("a/whip"));
        assert_eq!(classify(&Method::POST, "/a/whip/b/whep"), read("a/whip/b"));
        // The fixed routes match the raw path: an encoded `static` is a stream path.
        assert_eq!(classify(&get, "/%73tatic/x/index.m3u8"), read("static/x"));
        assert_eq!(classify(&get, "/cam/1/index.m3u8"), read("cam/1"));
        assert_eq!(classify(&get, "/cam/1/part3.1.m4s"), read("cam/1"));
        assert_eq!(classify(&Method::POST, "/cam/1/whep"), read("cam/1"));
        assert_eq!(classify(&Method::DELETE, "/cam/1/whep/abc"), read("cam/1"));
        assert_eq!(classify(&get, "/cam/1/"), read("cam/1"));
        assert_eq!(classify(&get, "/live.m3u8"), read("live"));
        assert_eq!(classify(&get, "/api/v1/paths"), read(""));
        assert_eq!(classify(&get, "/metrics"), read(""));
        assert_eq!(
            classify(&Method::POST, "/api/v1/sources/cam/2"),
            Some((Action::Api, "cam/2".into()))
        );
        assert_eq!(
            classify(&Method::POST, "/api/v1/recordings/cam/2"),
            Some((Action::Api, "cam/2".into()))
        );
        assert_eq!(classify(&get, "/api/v1/recordings/cam/x.mp4"), read(""));
        assert_eq!(
            classify(&Method::DELETE, "/api/v1/readers/7"),
            Some((Action::Api, String::new()))
        );
    }
}
