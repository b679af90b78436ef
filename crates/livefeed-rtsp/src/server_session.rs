//! The server side of one RTSP connection, as a state machine without I/O.
//!
//! Feed each request from [`crate::framing`] to [`ServerSession::handle`]. It validates the
//! request whole (version, session id, body, URL, headers, state) and either answers at once
//! ([`Step::Respond`]: OPTIONS, GET_PARAMETER, every refusal) or returns the [`Effect`] the
//! server must perform: a permission to check, then describe, claim the path, open a track's
//! transport (bind UDP), subscribe and start sending, start accepting media, or stop. The
//! shell performs it and passes the outcome to [`ServerSession::complete`], which makes the
//! state transition only on success and returns the response to write. So a refused request
//! has started nothing, and the session never panics on peer input or touches a socket.
//!
//! One connection holds at most one session, with one SETUP per track: a publisher sets up the
//! tracks it announced (matched by their `a=control`), a reader the tracks livefeed offered
//! (`trackID=0` is the video, `trackID=1`… the others; a URL without a track is the
//! video). Every track of a session uses the same lower transport. The session lives as long
//! as the connection: a `Session` id that is not this connection's gets 454, so an id cannot be
//! used from another connection or address.
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

/// What a request asks to be allowed: the shell checks it before it performs an [`Effect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCheck {
    /// Read (DESCRIBE, SETUP for play) or publish (ANNOUNCE, SETUP for record).
    pub role: Role,
    /// The stream path.
    pub path: String,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<String>,
    /// The method, e.g. `DESCRIBE`.
    pub method: String,
    /// The request URI.
    pub uri: String,
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
    /// The SSRC the server sends with (play): the path's, shared by its readers. `None` when
    /// the server does not choose it (record: the publisher's is its own).
    pub ssrc: Option<u32>,
}

/// Where a player's RTP starts, for the `RTP-Info` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayStart {
    /// Sequence number of the first packet.
    pub seq: u16,
    /// RTP timestamp of the first packet.
    pub rtptime: u32,
}

/// What a validated request asks the server to do. The shell checks [`Effect::authorize`]
/// first (a refusal is the answer), then performs [`Effect::action`] and hands the outcome to
/// [`ServerSession::complete`].
#[derive(Debug, Clone)]
pub struct Effect {
    /// The permission to check before acting, if the request needs one.
    pub authorize: Option<AuthCheck>,
    /// What to do.
    pub action: Action,
}

/// The server-side work a request needs; each has one [`Done`] answer.
#[derive(Debug, Clone)]
pub enum Action {
    /// Describe `path` for a reader: answer [`Done::Described`] with its SDP.
    Describe {
        /// The stream path.
        path: String,
    },
    /// Claim `path` for the publisher of `stream`: answer [`Done::Announced`].
    Announce {
        /// The stream path.
        path: String,
        /// What the publisher announced.
        stream: Box<AnnouncedStream>,
    },
    /// Set up `track`'s transport (bind UDP sockets when asked for UDP): answer
    /// [`Done::SetUp`].
    Setup {
        /// The stream path.
        path: String,
        /// Reading or publishing.
        role: Role,
        /// The track (index in the announced or offered stream).
        track: usize,
        /// The transport the client asked for, already validated.
        transport: TransportRequest,
    },
    /// Subscribe and start sending every set-up track to the reader: answer
    /// [`Done::Playing`] with where each track starts.
    Play {
        /// The stream path.
        path: String,
    },
    /// Start accepting the publisher's media: answer [`Done::Recording`].
    Record {
        /// The stream path.
        path: String,
    },
    /// Stop whatever the session started and release its resources: answer
    /// [`Done::TornDown`].
    Teardown,
}

/// The outcome of an [`Action`] the shell performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// [`Action::Describe`]: the SDP.
    Described(String),
    /// [`Action::Announce`].
    Announced,
    /// [`Action::Setup`]: the server's side of the transport.
    SetUp(ServerTransport),
    /// [`Action::Play`]: where each set-up track starts.
    Playing(Vec<(usize, PlayStart)>),
    /// [`Action::Record`].
    Recording,
    /// [`Action::Teardown`].
    TornDown,
}

/// What [`ServerSession::handle`] returns: an answer now, or work for the shell first.
#[derive(Debug)]
pub enum Step {
    /// Send this response; nothing else happens.
    Respond(Response<Vec<u8>>),
    /// Perform this effect, then pass its outcome to [`ServerSession::complete`] and send the
    /// response that returns.
    Perform(Effect),
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

/// A request whose effect the shell is performing: what [`ServerSession::complete`] needs to
/// finish its transition and answer.
#[derive(Debug)]
struct Pending {
    cseq: Option<String>,
    /// The action asked for: its outcome is checked against it, and its fields are the state
    /// the session takes on success.
    action: Action,
    /// The request URL, without a trailing `/`: a DESCRIBE's `Content-Base`, a PLAY's
    /// `RTP-Info` base.
    url: String,
}

/// The state of one RTSP connection's session.
pub struct ServerSession {
    id: String,
    state: State,
    announced: Option<(String, AnnouncedStream)>,
    setup: Option<SetUp>,
    pending: Option<Pending>,
}

type Planned = Result<(Option<AuthCheck>, Action), Refusal>;

impl ServerSession {
    /// A new session; `id` is sent in the `Session` header from the first SETUP on (use an
    /// unguessable random value).
    pub fn new(id: String) -> Self {
        ServerSession {
            id,
            state: State::Init,
            announced: None,
            setup: None,
            pending: None,
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

    /// Validates one request whole against the session state. A request that needs nothing
    /// from the server, or is refused, is answered at once ([`Step::Respond`]; a refusal is a
    /// 4xx/5xx with the reason as reason phrase and text body) and changes nothing. Otherwise
    /// the session waits for the outcome of the [`Step::Perform`] effect and changes state only
    /// when [`ServerSession::complete`] gets a success.
    pub fn handle(&mut self, req: &Request<Vec<u8>>) -> Step {
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().to_string());
        if self.pending.is_some() {
            let refusal = Refusal::new(
                StatusCode::InternalServerError,
                "the previous request is still being handled",
            );
            return Step::Respond(finish(refusal_response(&refusal), cseq));
        }
        match self.plan(req) {
            Ok(Plan::Answer(response)) => Step::Respond(finish(response, cseq)),
            Ok(Plan::Act(authorize, action)) => {
                let url = request_url(req)
                    .map(|u| u.as_str().trim_end_matches('/').to_string())
                    .unwrap_or_default();
                self.pending = Some(Pending {
                    cseq,
                    action: action.clone(),
                    url,
                });
                Step::Perform(Effect { authorize, action })
            }
            Err(refusal) => Step::Respond(finish(refusal_response(&refusal), cseq)),
        }
    }

    /// Finishes the request whose effect the shell performed: on success the session makes its
    /// transition; a refusal (from the permission check or the action) is the answer and
    /// changes nothing, except that a TEARDOWN always ends the session. An outcome that is not
    /// the one the effect asked for is answered 500.
    pub fn complete(&mut self, outcome: Result<Done, Refusal>) -> Response<Vec<u8>> {
        let Some(Pending { cseq, action, url }) = self.pending.take() else {
            let refusal = Refusal::new(StatusCode::InternalServerError, "no request in progress");
            return finish(refusal_response(&refusal), None);
        };
        if matches!(action, Action::Teardown) {
            self.reset();
        }
        let response = match outcome {
            Ok(done) => self.transition(action, &url, done),
            Err(refusal) => Err(refusal),
        };
        finish(
            response.unwrap_or_else(|refusal| refusal_response(&refusal)),
            cseq,
        )
    }

    fn plan(&mut self, req: &Request<Vec<u8>>) -> Result<Plan, Refusal> {
        if req.version() != Version::V1_0 {
            return Err(Refusal::new(
                StatusCode::RTSPVersionNotSupported,
                "only RTSP/1.0 is supported",
            ));
        }
        self.check_session_header(req)?;
        check_body_allowed(req)?;
        let planned = match req.method() {
            Method::Options => return Ok(Plan::Answer(options_response())),
            Method::GetParameter | Method::SetParameter => return Ok(Plan::Answer(self.ok())),
            Method::Describe => self.describe(req),
            Method::Announce => self.announce(req),
            Method::Setup => self.setup(req),
            Method::Play => self.play(req),
            Method::Record => self.record(req),
            Method::Teardown => Ok((None, Action::Teardown)),
            Method::Pause => Err(Refusal::new(
                StatusCode::MethodNotValidInThisState,
                "PAUSE is not supported on live streams",
            )),
            other => Err(Refusal::new(
                StatusCode::NotImplemented,
                format!("method {} is not implemented", method_name(other)),
            )),
        };
        planned.map(|(authorize, action)| Plan::Act(authorize, action))
    }

    /// The state change and the response for an effect that succeeded.
    fn transition(
        &mut self,
        action: Action,
        url: &str,
        done: Done,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        match (action, done) {
            (Action::Describe { .. }, Done::Described(sdp)) => {
                Ok(Response::builder(Version::V1_0, StatusCode::Ok)
                    .header(headers::CONTENT_TYPE, "application/sdp")
                    .header(headers::CONTENT_BASE, format!("{url}/"))
                    .build(sdp.into_bytes()))
            }
            (Action::Announce { path, stream }, Done::Announced) => {
                self.announced = Some((path, *stream));
                Ok(self.ok())
            }
            (
                Action::Setup {
                    path,
                    role,
                    track,
                    transport,
                },
                Done::SetUp(server),
            ) => {
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
            (Action::Play { .. }, Done::Playing(starts)) => {
                self.state = State::Playing;
                Ok(self.play_response(url, &starts))
            }
            (Action::Record { .. }, Done::Recording) => {
                self.state = State::Recording;
                Ok(self.ok())
            }
            (Action::Teardown, Done::TornDown) => {
                Ok(Response::builder(Version::V1_0, StatusCode::Ok).build(Vec::new()))
            }
            (action, done) => Err(Refusal::new(
                StatusCode::InternalServerError,
                format!("outcome {done:?} does not answer {action:?}"),
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

    fn describe(&mut self, req: &Request<Vec<u8>>) -> Planned {
        let url = request_url(req)?;
        let path = path_of(url)?;
        let check = auth_check(req, Role::Play, &path)?;
        Ok((Some(check), Action::Describe { path }))
    }

    fn announce(&mut self, req: &Request<Vec<u8>>) -> Planned {
        if self.state != State::Init || self.setup.is_some() {
            return Err(not_in_state("ANNOUNCE after SETUP"));
        }
        let path = path_of(request_url(req)?)?;
        let content_type = req.header(&headers::CONTENT_TYPE).map(|v| v.as_str());
        if !content_type.is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")) {
            return Err(Refusal::new(
                StatusCode::UnsupportedMediaType,
                "ANNOUNCE needs Content-Type: application/sdp",
            ));
        }
        let stream = parse_announced(req.body())
            .map(Box::new)
            .map_err(|e| Refusal::new(StatusCode::BadRequest, e.to_string()))?;
        let check = auth_check(req, Role::Record, &path)?;
        Ok((Some(check), Action::Announce { path, stream }))
    }

    fn setup(&mut self, req: &Request<Vec<u8>>) -> Planned {
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
        let check = auth_check(req, role, &path)?;
        let action = Action::Setup {
            path,
            role,
            track,
            transport,
        };
        Ok((Some(check), action))
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

    fn play(&mut self, req: &Request<Vec<u8>>) -> Planned {
        request_url(req)?;
        let path = self.ready_for(Role::Play, "PLAY")?;
        Ok((None, Action::Play { path }))
    }

    fn play_response(&self, url: &str, starts: &[(usize, PlayStart)]) -> Response<Vec<u8>> {
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
        let response = Response::builder(Version::V1_0, StatusCode::Ok)
            .header(headers::SESSION, self.session_value())
            .header(headers::RANGE, "npt=0.000-");
        // Tracks whose first packet is not known yet (RFC 2326 12.33: the fields are optional)
        // are left out; with none known, so is the header.
        let response = match rtp_info.is_empty() {
            true => response,
            false => response.header(headers::RTP_INFO, rtp_info),
        };
        response.build(Vec::new())
    }

    fn record(&mut self, req: &Request<Vec<u8>>) -> Planned {
        request_url(req)?;
        let path = self.ready_for(Role::Record, "RECORD")?;
        // The video sets the path's timeline and keyframes: a publisher without it has nothing
        // readers could start from (and nothing whose silence would end its session).
        if !self
            .setup
            .as_ref()
            .is_some_and(|s| s.tracks.iter().any(|(t, _)| *t == 0))
        {
            return Err(not_in_state("RECORD without the video track set up"));
        }
        Ok((None, Action::Record { path }))
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

    fn reset(&mut self) {
        self.state = State::Init;
        self.setup = None;
        self.announced = None;
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

/// What a valid request leads to.
enum Plan {
    /// A response that needs nothing from the server.
    Answer(Response<Vec<u8>>),
    /// An effect (after an optional permission check) and the transition it allows.
    Act(Option<AuthCheck>, Action),
}

/// Adds the headers every response carries: the request's `CSeq` and `Server`.
fn finish(mut response: Response<Vec<u8>>, cseq: Option<String>) -> Response<Vec<u8>> {
    if let Some(cseq) = cseq {
        response.insert_header(headers::CSEQ, cseq);
    }
    response.insert_header(headers::SERVER, crate::PRODUCT);
    response
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

/// The permission `req` needs to take `role` on `path`.
fn auth_check(req: &Request<Vec<u8>>, role: Role, path: &str) -> Result<AuthCheck, Refusal> {
    Ok(AuthCheck {
        role,
        path: path.to_string(),
        authorization: req
            .header(&headers::AUTHORIZATION)
            .map(|v| v.as_str().to_string()),
        method: method_name(req.method()),
        uri: request_url(req)?.as_str().to_string(),
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
