//! The server side of one RTSP connection, as a state machine without I/O.
//!
//! Feed each request from [`crate::framing`] to [`ServerSession::handle`] together with a
//! [`SessionHandler`]; it validates the request against the session state, asks the handler
//! for what only the server knows (stream descriptions, sockets, the hub), and returns the
//! response to write. It never panics on peer input and never touches a socket.
//!
//! One connection holds at most one session, with one SETUP per track: a publisher sets up the
//! tracks it announced (matched by their `a=control`), a reader the tracks livefeed offered
//! (`trackID=0` is the H.264 video, `trackID=1`… the others; a URL without a track is the
//! video). Every track of a session uses the same lower transport. The session lives as long
//! as the connection: a `Session` id that is not this connection's gets 454, so an id cannot be
//! used from another connection or address.
//!
//! A request is validated whole (URL, headers, state) before the handler is asked to act, so a
//! refused request has started nothing.
//!
//! States: `Init` → (ANNOUNCE) → `Init` with an announced stream → (SETUP) → `Ready` →
//! (PLAY) → `Playing` or (RECORD) → `Recording`; TEARDOWN returns to `Init`.

use livefeed_media::sdp::{parse_announced, AnnouncedStream};
use rtsp_types::headers;
use rtsp_types::{Method, Request, Response, StatusCode, Url, Version};

use crate::transport::{self, TransportRequest};

/// The `a=control` of the video track livefeed offers (track `N` is `trackID=N`).
pub const TRACK_CONTROL: &str = "trackID=0";
/// Seconds of silence after which a server may drop an idle session (sent as `timeout=`).
pub const SESSION_TIMEOUT_SECS: u64 = 60;
/// Longest path name accepted.
pub use livefeed_media::path::MAX_PATH_LEN;

/// A refusal: the status to answer with and a reason for the peer and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Status code of the response.
    pub status: StatusCode,
    /// Human-readable reason (sent as reason phrase and body).
    pub reason: String,
    /// `WWW-Authenticate` values (a 401's challenges).
    pub challenges: Vec<String>,
}

impl Refusal {
    /// A refusal with `status` and `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            challenges: Vec::new(),
        }
    }

    /// A 401 with the challenges to answer.
    pub fn unauthorized(reason: impl Into<String>, challenges: Vec<String>) -> Self {
        Refusal {
            challenges,
            ..Refusal::new(StatusCode::Unauthorized, reason)
        }
    }
}

/// What a request asks to be allowed, for [`SessionHandler::authorize`].
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// Read (DESCRIBE, SETUP for play) or publish (ANNOUNCE, SETUP for record).
    pub role: Role,
    /// The stream path.
    pub path: &'a str,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a str>,
    /// The method, e.g. `DESCRIBE`.
    pub method: &'a str,
    /// The request URI.
    pub uri: &'a str,
}

/// Whether the session reads or publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// DESCRIBE/SETUP/PLAY: the peer reads.
    Play,
    /// ANNOUNCE/SETUP/RECORD: the peer publishes.
    Record,
}

/// What the server's transport looks like after SETUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTransport {
    /// Server RTP/RTCP ports for UDP; `None` for TCP.
    pub server_ports: Option<(u16, u16)>,
    /// SSRC the server sends with (play) or expects (record; informational).
    pub ssrc: u32,
}

/// Where a player's RTP starts, for the `RTP-Info` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayStart {
    /// Sequence number of the first packet.
    pub seq: u16,
    /// RTP timestamp of the first packet.
    pub rtptime: u32,
}

/// What the server shell provides to the session: knowledge of streams and ownership of
/// sockets and tasks. Every method may refuse with a status and a reason.
pub trait SessionHandler {
    /// May this request read or publish its path? Called before DESCRIBE, ANNOUNCE and SETUP
    /// act; a refusal (401 with challenges, 403) is the answer.
    fn authorize(&mut self, request: &AuthContext<'_>) -> Result<(), Refusal>;
    /// The SDP describing `path` for a reader; `base` is the URL the SDP is relative to.
    fn describe(&mut self, path: &str) -> Result<String, Refusal>;
    /// A publisher announces `stream` on `path`.
    fn announce(&mut self, path: &str, stream: &AnnouncedStream) -> Result<(), Refusal>;
    /// Sets up the transport of `track` (binds UDP sockets when asked for UDP).
    fn setup(
        &mut self,
        path: &str,
        role: Role,
        track: usize,
        transport: &TransportRequest,
    ) -> Result<ServerTransport, Refusal>;
    /// Starts sending media of every set-up track to the reader: where each track starts.
    fn play(&mut self, path: &str) -> Result<Vec<(usize, PlayStart)>, Refusal>;
    /// Starts accepting media from the publisher.
    fn record(&mut self, path: &str) -> Result<(), Refusal>;
    /// Stops whatever the session started and releases its resources.
    fn teardown(&mut self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Init,
    Ready,
    Playing,
    Recording,
}

#[derive(Debug, Clone)]
struct SetUp {
    path: String,
    role: Role,
    /// Set-up tracks and their transports, in SETUP order.
    tracks: Vec<(usize, TransportRequest)>,
}

/// The state of one RTSP connection's session.
pub struct ServerSession {
    id: String,
    state: State,
    announced: Option<(String, AnnouncedStream)>,
    setup: Option<SetUp>,
}

type Reply = Result<Response<Vec<u8>>, Refusal>;

impl ServerSession {
    /// A new session; `id` is sent in the `Session` header from the first SETUP on (use an
    /// unguessable random value).
    pub fn new(id: String) -> Self {
        ServerSession {
            id,
            state: State::Init,
            announced: None,
            setup: None,
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The transport of the first track set up, with the role, once SETUP succeeded (every
    /// track of a session has the same lower transport).
    pub fn transport(&self) -> Option<(Role, TransportRequest)> {
        let setup = self.setup.as_ref()?;
        setup.tracks.first().map(|(_, t)| (setup.role, *t))
    }

    /// Whether media is flowing (PLAY or RECORD done).
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Playing | State::Recording)
    }

    /// The path set up, once SETUP succeeded.
    pub fn path(&self) -> Option<&str> {
        self.setup.as_ref().map(|s| s.path.as_str())
    }

    /// Handles one request and returns the response to send. A refusal becomes a 4xx/5xx
    /// response with the reason as reason phrase and as a text body.
    pub fn handle(
        &mut self,
        req: &Request<Vec<u8>>,
        handler: &mut dyn SessionHandler,
    ) -> Response<Vec<u8>> {
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().to_string());
        let result = self.dispatch(req, handler);
        let mut response = result.unwrap_or_else(|refusal| refusal_response(&refusal));
        if let Some(cseq) = cseq {
            response.insert_header(headers::CSEQ, cseq);
        }
        response.insert_header(headers::SERVER, crate::PRODUCT);
        response
    }

    fn dispatch(&mut self, req: &Request<Vec<u8>>, handler: &mut dyn SessionHandler) -> Reply {
        if req.version() != Version::V1_0 {
            return Err(Refusal::new(
                StatusCode::RTSPVersionNotSupported,
                "only RTSP/1.0 is supported",
            ));
        }
        self.check_session_header(req)?;
        check_body_allowed(req)?;
        match req.method() {
            Method::Options => Ok(options_response()),
            Method::Describe => self.describe(req, handler),
            Method::Announce => self.announce(req, handler),
            Method::Setup => self.setup(req, handler),
            Method::Play => self.play(req, handler),
            Method::Record => self.record(req, handler),
            Method::Teardown => Ok(self.teardown(handler)),
            Method::GetParameter | Method::SetParameter => Ok(self.ok()),
            Method::Pause => Err(Refusal::new(
                StatusCode::MethodNotValidInThisState,
                "PAUSE is not supported on live streams",
            )),
            other => Err(Refusal::new(
                StatusCode::NotImplemented,
                format!("method {} is not implemented", method_name(other)),
            )),
        }
    }

    fn check_session_header(&self, req: &Request<Vec<u8>>) -> Result<(), Refusal> {
        let Some(value) = req.header(&headers::SESSION) else {
            return Ok(());
        };
        let id = value.as_str().split(';').next().unwrap_or("").trim();
        if self.setup.is_some() && id == self.id {
            return Ok(());
        }
        Err(Refusal::new(
            StatusCode::SessionNotFound,
            "session not found on this connection",
        ))
    }

    fn describe(&mut self, req: &Request<Vec<u8>>, handler: &mut dyn SessionHandler) -> Reply {
        let url = request_url(req)?;
        let path = path_of(url)?;
        authorize(req, handler, Role::Play, &path)?;
        let sdp = handler.describe(&path)?;
        let base = format!("{}/", url.as_str().trim_end_matches('/'));
        Ok(Response::builder(Version::V1_0, StatusCode::Ok)
            .header(headers::CONTENT_TYPE, "application/sdp")
            .header(headers::CONTENT_BASE, base)
            .build(sdp.into_bytes()))
    }

    fn announce(&mut self, req: &Request<Vec<u8>>, handler: &mut dyn SessionHandler) -> Reply {
        if self.state != State::Init || self.setup.is_some() {
            return Err(not_in_state("ANNOUNCE after SETUP"));
        }
        let path = path_of(request_url(req)?)?;
        authorize(req, handler, Role::Record, &path)?;
        let content_type = req.header(&headers::CONTENT_TYPE).map(|v| v.as_str());
        if !content_type.is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")) {
            return Err(Refusal::new(
                StatusCode::UnsupportedMediaType,
                "ANNOUNCE needs Content-Type: application/sdp",
            ));
        }
        let stream = parse_announced(req.body())
            .map_err(|e| Refusal::new(StatusCode::BadRequest, e.to_string()))?;
        handler.announce(&path, &stream)?;
        self.announced = Some((path, stream));
        Ok(self.ok())
    }

    fn setup(&mut self, req: &Request<Vec<u8>>, handler: &mut dyn SessionHandler) -> Reply {
        if self.is_streaming() {
            return Err(not_in_state("SETUP while streaming"));
        }
        let transports = req
            .typed_header::<headers::Transports>()
            .map_err(|_| Refusal::new(StatusCode::BadRequest, "malformed Transport header"))?;
        let transport = transport::choose(transports.as_ref())
            .map_err(|e| Refusal::new(StatusCode::UnsupportedTransport, e.to_string()))?;
        let (path, role, track) = self.setup_target(request_url(req)?, transport.record)?;
        self.check_joins_session(&path, role, track, &transport)?;
        authorize(req, handler, role, &path)?;
        let server = handler.setup(&path, role, track, &transport)?;
        let reply = transport::reply_header(
            &transport.lower,
            server.server_ports,
            server.ssrc,
            role == Role::Record,
        );
        self.setup
            .get_or_insert_with(|| SetUp {
                path,
                role,
                tracks: Vec::new(),
            })
            .tracks
            .push((track, transport));
        self.state = State::Ready;
        Ok(Response::builder(Version::V1_0, StatusCode::Ok)
            .header(headers::TRANSPORT, reply)
            .header(headers::SESSION, self.session_value())
            .build(Vec::new()))
    }

    /// Whether a SETUP of `track` on `path` as `role` over `transport` fits the tracks the
    /// session has set up already.
    fn check_joins_session(
        &self,
        path: &str,
        role: Role,
        track: usize,
        transport: &TransportRequest,
    ) -> Result<(), Refusal> {
        let Some(setup) = &self.setup else {
            return Ok(());
        };
        if setup.path != path {
            return Err(Refusal::new(
                StatusCode::AggregateOperationNotAllowed,
                format!("this session is set up for {:?}, not {path:?}", setup.path),
            ));
        }
        if setup.role != role {
            return Err(not_in_state("SETUP for the other direction"));
        }
        if setup.tracks.iter().any(|(t, _)| *t == track) {
            return Err(Refusal::new(
                StatusCode::AggregateOperationNotAllowed,
                format!("track {track} is already set up in this session"),
            ));
        }
        for (_, other) in &setup.tracks {
            transport::check_compatible(&other.lower, &transport.lower)
                .map_err(|e| Refusal::new(StatusCode::UnsupportedTransport, e))?;
        }
        Ok(())
    }

    /// Which path, role and track a SETUP URL refers to.
    fn setup_target(&self, url: &Url, record_mode: bool) -> Result<(String, Role, usize), Refusal> {
        let full = path_of(url)?;
        if let Some((announced, stream)) = &self.announced {
            let track = announced_track(url, &full, announced, stream).ok_or_else(|| {
                Refusal::new(
                    StatusCode::BadRequest,
                    format!("SETUP for {full:?} matches no track the session announced on {announced:?}"),
                )
            })?;
            return Ok((announced.clone(), Role::Record, track));
        }
        if record_mode {
            return Err(not_in_state("SETUP with mode=record before ANNOUNCE"));
        }
        Ok(offered_track(full)).map(|(path, track)| (path, Role::Play, track))
    }

    fn play(&mut self, req: &Request<Vec<u8>>, handler: &mut dyn SessionHandler) -> Reply {
        let url = request_url(req)?.as_str().trim_end_matches('/').to_string();
        let path = self.ready_for(Role::Play, "PLAY")?;
        let starts = handler.play(&path)?;
        self.state = State::Playing;
        let rtp_info = starts
            .iter()
            .map(|(track, start)| {
                format!(
                    "url={url}/trackID={track};seq={};rtptime={}",
                    start.seq, start.rtptime
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        Ok(Response::builder(Version::V1_0, StatusCode::Ok)
            .header(headers::SESSION, self.session_value())
            .header(headers::RANGE, "npt=0.000-")
            .header(headers::RTP_INFO, rtp_info)
            .build(Vec::new()))
    }

    fn record(&mut self, req: &Request<Vec<u8>>, handler: &mut dyn SessionHandler) -> Reply {
        request_url(req)?;
        let path = self.ready_for(Role::Record, "RECORD")?;
        // The video sets the path's timeline and keyframes: a publisher without it has nothing
        // readers could start from (and nothing whose silence would end its session).
        if !self
            .setup
            .as_ref()
            .is_some_and(|s| s.tracks.iter().any(|(t, _)| *t == 0))
        {
            return Err(not_in_state("RECORD without the H.264 video track set up"));
        }
        handler.record(&path)?;
        self.state = State::Recording;
        Ok(self.ok())
    }

    /// The set-up path if the session is in `Ready` (or already streaming) with `role`.
    fn ready_for(&self, role: Role, method: &str) -> Result<String, Refusal> {
        match &self.setup {
            Some(s) if s.role == role && self.state == State::Ready => Ok(s.path.clone()),
            Some(s) if s.role == role => Err(not_in_state(&format!("{method} twice"))),
            Some(_) => Err(not_in_state(&format!(
                "{method} on a session set up for the other direction"
            ))),
            None => Err(not_in_state(&format!("{method} without SETUP"))),
        }
    }

    fn teardown(&mut self, handler: &mut dyn SessionHandler) -> Response<Vec<u8>> {
        handler.teardown();
        self.state = State::Init;
        self.setup = None;
        self.announced = None;
        Response::builder(Version::V1_0, StatusCode::Ok).build(Vec::new())
    }

    fn ok(&self) -> Response<Vec<u8>> {
        let builder = Response::builder(Version::V1_0, StatusCode::Ok);
        if self.setup.is_some() {
            builder
                .header(headers::SESSION, self.session_value())
                .build(Vec::new())
        } else {
            builder.build(Vec::new())
        }
    }

    fn session_value(&self) -> String {
        format!("{};timeout={SESSION_TIMEOUT_SECS}", self.id)
    }
}

/// The track of `full` (a SETUP URL's path) among those announced on `announced`: the one
/// whose `a=control` names it, relative to the path or as an absolute URL; with a single
/// track, any URL under the path.
fn announced_track(
    url: &Url,
    full: &str,
    announced: &str,
    stream: &AnnouncedStream,
) -> Option<usize> {
    let controls = stream.controls();
    let named = controls.iter().position(|control| {
        control.is_some_and(|c| {
            let c = c.trim();
            if c.contains("://") {
                Url::parse(c).is_ok_and(|u| u.path() == url.path())
            } else {
                full == format!("{announced}/{}", c.trim_start_matches('/'))
            }
        })
    });
    let under = full == announced || full.starts_with(&format!("{announced}/"));
    named.or_else(|| (controls.len() == 1 && under).then_some(0))
}

/// The path and track a reader's SETUP URL names: `path/trackID=N` is track `N`, anything else
/// the path's video (track 0).
fn offered_track(full: String) -> (String, usize) {
    if let Some((path, last)) = full.rsplit_once('/') {
        if let Some(n) = last.strip_prefix("trackID=").and_then(|n| n.parse().ok()) {
            return (path.to_string(), n);
        }
    }
    (full, 0)
}

fn options_response() -> Response<Vec<u8>> {
    Response::builder(Version::V1_0, StatusCode::Ok)
        .header(
            headers::PUBLIC,
            "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, GET_PARAMETER, SET_PARAMETER, TEARDOWN",
        )
        .build(Vec::new())
}

/// Builds the response for a refusal: status, reason phrase and a text/plain body.
pub fn refusal_response(refusal: &Refusal) -> Response<Vec<u8>> {
    let reason = sanitize_reason(&refusal.reason);
    let mut response = Response::builder(Version::V1_0, refusal.status)
        .reason_phrase(reason.clone())
        .header(headers::CONTENT_TYPE, "text/plain")
        .build(format!("{reason}\n").into_bytes());
    for challenge in &refusal.challenges {
        response.append_header(headers::WWW_AUTHENTICATE, challenge.as_str());
    }
    response
}

/// Asks `handler` whether `req` may take `role` on `path`.
fn authorize(
    req: &Request<Vec<u8>>,
    handler: &mut dyn SessionHandler,
    role: Role,
    path: &str,
) -> Result<(), Refusal> {
    let uri = request_url(req)?.as_str();
    let method = method_name(req.method());
    handler.authorize(&AuthContext {
        role,
        path,
        authorization: req.header(&headers::AUTHORIZATION).map(|v| v.as_str()),
        method: &method,
        uri,
    })
}

/// Keeps a reason phrase on one printable line, so nothing a peer sent can inject headers.
fn sanitize_reason(reason: &str) -> String {
    reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

fn not_in_state(what: &str) -> Refusal {
    Refusal::new(
        StatusCode::MethodNotValidInThisState,
        format!("{what} is not valid in this state"),
    )
}

fn check_body_allowed(req: &Request<Vec<u8>>) -> Result<(), Refusal> {
    let may_have_body = matches!(
        req.method(),
        Method::Announce | Method::GetParameter | Method::SetParameter
    );
    if !req.body().is_empty() && !may_have_body {
        return Err(Refusal::new(
            StatusCode::BadRequest,
            format!("{} must not carry a body", method_name(req.method())),
        ));
    }
    Ok(())
}

fn method_name(method: &Method) -> String {
    let name: &str = method.into();
    name.chars().take(32).collect()
}

fn request_url(req: &Request<Vec<u8>>) -> Result<&Url, Refusal> {
    req.request_uri()
        .ok_or_else(|| Refusal::new(StatusCode::BadRequest, "request URI must be an rtsp:// URL"))
}

/// The stream path named by a URL: `rtsp://host:8554/cam/1` → `cam/1` (see
/// [`livefeed_media::path`] for what a valid name is).
pub fn path_of(url: &Url) -> Result<String, Refusal> {
    livefeed_media::path::validate(url.path())
        .map(str::to_string)
        .map_err(|e| Refusal::new(StatusCode::BadRequest, e.to_string()))
}

#[cfg(test)]
mod tests;
