//! The RTSP listener: each connection runs a reader task (bytes in → [`FrameReader`] →
//! [`ServerSession`] / ingest) and a writer task (responses and, for TCP readers, media out).
//! All protocol decisions are in `livefeed-rtsp`; this module owns sockets, tasks and timers.
//!
//! Failure handling: malformed input gets an RTSP error response and closes that connection
//! only, with a log line naming the peer and the cause. A reader whose socket stops draining is
//! disconnected after the write timeout. A publisher that stops sending is dropped after the
//! read timeout. Nothing a connection does can block the hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livefeed_auth::{Action, AuthRequest, Authenticator, Credentials, Decision};
use livefeed_media::rtp::DepacketizerLimits;
use livefeed_media::sdp::{offer, AnnouncedStream, OfferParams};
use livefeed_rtsp::client_auth::without_userinfo;
use livefeed_rtsp::framing::{Frame, FrameReader, FramingError, Limits};
use livefeed_rtsp::rtp_sender::PAYLOAD_TYPE;
use livefeed_rtsp::server_session::{
    refusal_response, Action as SessionAction, AuthCheck, Done, Effect, PlayStart, Refusal, Role,
    ServerSession, ServerTransport, Step, TRACK_CONTROL,
};
use livefeed_rtsp::transport::{LowerTransport, TransportRequest};
use rtsp_types::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::hub::{
    Delivery, DirectSink, Hub, PublishError, Publisher, PublisherInfo, ReaderInfo, StreamInfo,
    SubscribeError,
};
use crate::limits::conn_gate::{self, ConnectionGate, Permit};
use crate::measure::metrics::ServerMetrics;

mod keyframe_requests;
mod play;

use super::rtp_in::{IngestShared, TrackIngest};

use play::{send_tcp_media, write_all, Destination, DirectPlay, Play, TcpOut, UdpOut, UdpPlay};

/// Timeouts and limits of the RTSP server.
#[derive(Debug, Clone)]
pub struct RtspConfig {
    /// A connection that has not started streaming and sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A publisher that sends no media for this long is dropped.
    pub read_timeout: Duration,
    /// A reader whose socket accepts nothing for this long is disconnected.
    pub write_timeout: Duration,
    /// Message size limits.
    pub limits: Limits,
    /// Offer and accept Basic authentication.
    pub basic_auth: bool,
    /// Offer and accept Digest authentication.
    pub digest_auth: bool,
    /// Caps on access units from publishers.
    pub depacketizer: DepacketizerLimits,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            basic_auth: true,
            digest_auth: true,
            depacketizer: DepacketizerLimits::default(),
        }
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    config: Arc<RtspConfig>,
    auth: Arc<Authenticator>,
    udp_destinations: Arc<UdpDestinations>,
}

/// Accepts RTSP connections until the returned task is aborted; each is admitted by `gate`
/// (per-address cap, `max-rtsp-sessions`, idle connections shed when full).
pub fn spawn_listener(
    listener: TcpListener,
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    config: RtspConfig,
    auth: Arc<Authenticator>,
    gate: Arc<ConnectionGate>,
) -> JoinHandle<()> {
    let shared = Shared {
        hub,
        metrics,
        config: Arc::new(config),
        auth,
        udp_destinations: Arc::default(),
    };
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => match gate.admit(peer) {
                    Ok(permit) => {
                        tokio::spawn(serve_connection(stream, peer, shared.clone(), permit));
                    }
                    Err(refusal) => {
                        tokio::spawn(refuse_connection(stream, refusal, gate.slow_refusal()));
                    }
                },
                Err(e) => {
                    let nobody = SocketAddr::from(([0, 0, 0, 0], 0));
                    gate.log()
                        .note("rtsp", "connections not accepted", &e.to_string(), nobody);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
}

/// How long a path claimed by ANNOUNCE stays claimed without RECORD: SETUP and RECORD follow
/// at once in every real publisher; a claim left hanging would keep the path from others.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a refused connection may take to send its first request (for its CSeq).
const REFUSAL_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers a connection the gate refused: reads its first request (briefly, a bounded amount,
/// when it has a `slow` place; else the 503 goes out at once without a CSeq) so the 503
/// carries its CSeq, says why, and closes it.
async fn refuse_connection(
    mut stream: TcpStream,
    refusal: conn_gate::Refusal,
    slow: Option<conn_gate::SlowRefusal>,
) {
    let mut head = vec![0u8; 4096];
    let mut filled = 0;
    let deadline = tokio::time::Instant::now() + REFUSAL_READ_TIMEOUT;
    while slow.is_some()
        && filled < head.len()
        && !head[..filled].windows(4).any(|w| w == b"\r\n\r\n")
    {
        match tokio::time::timeout_at(deadline, stream.read(&mut head[filled..])).await {
            Ok(Ok(n)) if n > 0 => filled += n,
            _ => break,
        }
    }
    drop(slow);
    let cseq = cseq_of(&head[..filled])
        .map(|c| format!("CSeq: {c}\r\n"))
        .unwrap_or_default();
    let reason = format!("connection refused: {refusal}\n");
    let reply = format!(
        "RTSP/1.0 503 Service Unavailable\r\n{cseq}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reason}",
        reason.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(reply.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// The CSeq of a request head, if it has a well-formed one.
fn cseq_of(head: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("cseq") {
            return None;
        }
        value.trim().parse().ok()
    })
}

/// Commands for a connection's writer task.
enum WriterCommand {
    /// Bytes to write as they are (a response).
    Send(Vec<u8>),
    /// Start sending a path's media interleaved on the connection.
    StartPlay(Box<Play>),
    /// Stop sending media.
    StopPlay,
}

/// Kernel send buffer of an RTSP connection. Left to autotuning it grows to megabytes: many
/// seconds of stale video queued where the hub's skip-to-keyframe cannot reach it.
pub const SEND_BUFFER_BYTES: usize = 512 * 1024;

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Shared, permit: Permit) {
    let _ = stream.set_nodelay(true);
    if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES) {
        debug!(%peer, error = %e, "cannot bound the send buffer");
    }
    let local = stream.local_addr().ok();
    let (mut read, write) = stream.into_split();
    let write = Arc::new(TcpOut::new(write));
    let cancel = CancellationToken::new();
    let (out_tx, out_rx) = mpsc::channel(16);
    let writer = tokio::spawn(writer_loop(
        write.clone(),
        out_rx,
        peer,
        shared.clone(),
        cancel.clone(),
    ));
    let mut conn = Connection {
        session: ServerSession::new(format!("{:016x}", rand::random::<u64>())),
        handler: Handler::new(peer, local, shared.clone(), (out_tx, write), cancel.clone()),
        reader: FrameReader::new(shared.config.limits.clone()),
    };
    debug!(%peer, "RTSP connection opened");
    let mut buf = vec![0u8; 64 * 1024];
    let mut idle_close = false;
    let end = loop {
        let timeout = conn.read_timeout(&shared.config);
        let timeout = match conn.handler.announce_deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    idle_close = true;
                    break format!(
                        "announced but no RECORD within {ANNOUNCE_TIMEOUT:?}: path released"
                    );
                }
                timeout.min(left)
            }
            None => timeout,
        };
        let n = tokio::select! {
            _ = cancel.cancelled() => break "closed by the server".to_string(),
            _ = permit.cancel.cancelled() => {
                break "shed: idle while the server was full".to_string()
            }
            r = tokio::time::timeout(timeout, read.read(&mut buf)) => match r {
                Err(_) if conn.handler.announce_deadline().is_some() => continue,
                Err(_) => {
                    idle_close = true;
                    break format!("nothing received for {timeout:?}");
                }
                Ok(Err(e)) => break format!("read error: {e}"),
                Ok(Ok(0)) => break "peer closed the connection".to_string(),
                Ok(Ok(n)) => n,
            },
        };
        permit.activity.touch();
        conn.reader.push(&buf[..n]);
        if let Err(cause) = conn.process_frames().await {
            break cause;
        }
        permit.activity.set_streaming(conn.session.is_streaming());
    };
    if idle_close {
        // Silence or an incomplete message until the idle timeout: say who and why.
        warn!(%peer, cause = %end, "RTSP connection closed");
    } else {
        debug!(%peer, cause = %end, "RTSP connection closed");
    }
    conn.handler.teardown();
    drop(conn);
    // The writer ends once every command sender is gone and the responses queued are written.
    let _ = writer.await;
}

struct Connection {
    session: ServerSession,
    handler: Handler,
    reader: FrameReader,
}

impl Connection {
    fn read_timeout(&self, config: &RtspConfig) -> Duration {
        match self.session.transport() {
            Some((Role::Record, t)) if self.session.is_streaming() && is_tcp(&t) => {
                config.read_timeout
            }
            // Readers and UDP publishers may keep the control connection silent.
            _ if self.session.is_streaming() => Duration::from_secs(3600),
            _ => config.idle_timeout,
        }
    }

    /// Handles every complete frame buffered; `Err` closes the connection with that cause.
    async fn process_frames(&mut self) -> Result<(), String> {
        loop {
            match self.reader.next_frame() {
                Ok(None) => return Ok(()),
                Ok(Some(Frame::Request(req))) => {
                    let resp = match self.session.handle(&req) {
                        Step::Respond(resp) => resp,
                        Step::Perform(effect) => {
                            let outcome = self.handler.perform_waiting(&effect).await;
                            self.session.complete(outcome)
                        }
                    };
                    log_exchange(&self.handler.peer, &req, &resp);
                    if resp.status() == StatusCode::Unauthorized
                        && req.header(&rtsp_types::headers::AUTHORIZATION).is_some()
                    {
                        // Wrong credentials: slow down guessing.
                        tokio::time::sleep(livefeed_auth::FAILURE_DELAY).await;
                    }
                    self.handler.send_response(&resp).await?;
                }
                Ok(Some(Frame::Response(_))) => {}
                Ok(Some(Frame::Interleaved { channel, payload })) => {
                    self.handler
                        .on_interleaved(&self.session, channel, &payload)?;
                }
                Err(e) => return Err(self.handler.framing_error(e).await),
            }
        }
    }
}

fn is_tcp(t: &TransportRequest) -> bool {
    matches!(t.lower, LowerTransport::Tcp { .. })
}

fn log_exchange(
    peer: &SocketAddr,
    req: &rtsp_types::Request<Vec<u8>>,
    resp: &rtsp_types::Response<Vec<u8>>,
) {
    let method: &str = req.method().into();
    let status: u16 = resp.status().into();
    let uri = req
        .request_uri()
        .map(|url| without_userinfo(url.as_str()))
        .unwrap_or_else(|| "*".into());
    if status >= 400 {
        warn!(%peer, method, uri, status, reason = resp.reason_phrase(), "RTSP request refused");
    } else {
        debug!(%peer, method, uri, status, "RTSP request");
    }
}

/// The connection's side of the session: what [`ServerSession`] asks the server to do.
struct Handler {
    peer: SocketAddr,
    local: Option<SocketAddr>,
    shared: Shared,
    out: mpsc::Sender<WriterCommand>,
    /// The connection's write half, for a TCP reader's [`DirectPlay`].
    socket: Arc<TcpOut>,
    /// Plays started on this connection (see [`Play::id`]).
    plays: u64,
    cancel: CancellationToken,
    /// The path claimed by ANNOUNCE until RECORD, and when it was claimed.
    publisher: Option<(Publisher, Instant)>,
    /// What the publisher announced.
    announced: Option<AnnouncedStream>,
    /// A TCP publisher's media in, once recording.
    ingest: Option<Ingest>,
    /// The tracks set up, in SETUP order.
    tracks: Vec<TrackTransport>,
    tasks: Vec<JoinHandle<()>>,
}

/// One set-up track: its transport and, for UDP, its sockets until PLAY or RECORD takes them.
struct TrackTransport {
    track: usize,
    transport: TransportRequest,
    /// RTP and RTCP sockets (the RTCP one shared with a publisher's keyframe requests).
    udp: Option<(UdpSocket, Arc<UdpSocket>)>,
    _claim: Option<UdpClaim>,
}

impl Handler {
    fn new(
        peer: SocketAddr,
        local: Option<SocketAddr>,
        shared: Shared,
        (out, socket): (mpsc::Sender<WriterCommand>, Arc<TcpOut>),
        cancel: CancellationToken,
    ) -> Self {
        Handler {
            peer,
            local,
            shared,
            out,
            socket,
            plays: 0,
            cancel,
            publisher: None,
            announced: None,
            ingest: None,
            tracks: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// When an ANNOUNCE that has not been followed by RECORD releases its path.
    fn announce_deadline(&self) -> Option<Instant> {
        self.publisher
            .as_ref()
            .map(|(_, at)| *at + ANNOUNCE_TIMEOUT)
    }

    async fn send_response(&self, resp: &rtsp_types::Response<Vec<u8>>) -> Result<(), String> {
        let mut bytes = Vec::with_capacity(512);
        resp.write(&mut bytes)
            .map_err(|e| format!("serializing response: {e}"))?;
        self.out
            .send(WriterCommand::Send(bytes))
            .await
            .map_err(|_| "writer gone".to_string())
    }

    /// Answers a framing error with its status and returns the cause to close with.
    async fn framing_error(&self, e: FramingError) -> String {
        warn!(peer = %self.peer, cause = %e, "malformed RTSP input, closing connection");
        let mut resp = refusal_response(&Refusal::new(e.status(), e.to_string()));
        if let Some(cseq) = e.cseq() {
            resp.insert_header(rtsp_types::headers::CSEQ, cseq.to_string());
        }
        let _ = self.send_response(&resp).await;
        format!("malformed input: {e}")
    }

    fn on_interleaved(
        &mut self,
        session: &ServerSession,
        channel: u8,
        payload: &Bytes,
    ) -> Result<(), String> {
        // Called for every RTP packet a TCP publisher sends: no allocation here.
        let mut tcp = self.tracks.iter().filter_map(|t| match t.transport.lower {
            LowerTransport::Tcp {
                rtp_channel,
                rtcp_channel,
            } => Some((t.track, rtp_channel, rtcp_channel)),
            LowerTransport::Udp { .. } => None,
        });
        let Some(first) = tcp.next() else {
            warn!(peer = %self.peer, channel, "interleaved frame without a TCP transport set up, closing");
            return Err(format!(
                "interleaved frame on channel {channel} before SETUP"
            ));
        };
        let mut track = None;
        for (t, rtp, rtcp) in std::iter::once(first).chain(tcp) {
            if rtcp == channel {
                // A publisher's sender reports time its tracks; a reader's reports are not used.
                if let Some(ingest) = self.ingest.as_mut().filter(|_| session.is_streaming()) {
                    ingest.push_rtcp(t, payload);
                }
                return Ok(());
            }
            if rtp == channel {
                track = Some(t);
            }
        }
        let Some(track) = track else {
            warn!(peer = %self.peer, channel, "interleaved frame on a channel never set up, closing");
            return Err(format!(
                "interleaved frame on channel {channel}, which was not set up"
            ));
        };
        match &mut self.ingest {
            Some(ingest) if session.is_streaming() => ingest.push(track, payload),
            _ => {
                debug!(peer = %self.peer, "RTP from a peer that is not recording: ignored");
                Ok(())
            }
        }
    }

    fn bind_udp(&self) -> Result<(UdpSocket, UdpSocket), Refusal> {
        let ip = self.local.map(|a| a.ip()).unwrap_or([0, 0, 0, 0].into());
        livefeed_rtsp::udp::bind_pair(ip, 0).map_err(|e| {
            warn!(peer = %self.peer, error = %e, "cannot bind UDP ports");
            Refusal::new(StatusCode::InternalServerError, "no UDP ports available")
        })
    }
}

/// The effects a session asks for, performed.
impl Handler {
    /// [`Handler::perform`]; a DESCRIBE of a path with an on-demand source that is not
    /// streaming wakes it (once the reader is authorized) and waits for its stream.
    async fn perform_waiting(&mut self, effect: &Effect) -> Result<Done, Refusal> {
        let SessionAction::Describe { path } = &effect.action else {
            return self.perform(effect);
        };
        if let Some(check) = &effect.authorize {
            self.authorize(check)?;
        }
        let hub = &self.shared.hub;
        hub.stream_on_demand(path, crate::hub::ON_DEMAND_START_TIMEOUT)
            .await;
        self.describe(path).map(Done::Described)
    }

    /// Checks the effect's permission, then performs its action.
    fn perform(&mut self, effect: &Effect) -> Result<Done, Refusal> {
        if let Some(check) = &effect.authorize {
            self.authorize(check)?;
        }
        match &effect.action {
            SessionAction::Describe { path } => self.describe(path).map(Done::Described),
            SessionAction::Announce { path, stream } => {
                self.announce(path, stream).map(|()| Done::Announced)
            }
            SessionAction::Setup {
                path,
                role,
                track,
                transport,
            } => self.setup(path, *role, *track, transport).map(Done::SetUp),
            SessionAction::Play { path } => self.play(path).map(Done::Playing),
            SessionAction::Record { path } => self.record(path).map(|()| Done::Recording),
            SessionAction::Teardown => {
                self.teardown();
                Ok(Done::TornDown)
            }
        }
    }

    fn authorize(&mut self, request: &AuthCheck) -> Result<(), Refusal> {
        let action = match request.role {
            Role::Play => Action::Read,
            Role::Record => Action::Publish,
        };
        let now_secs = livefeed_media::clock::unix_now_ns() / 1_000_000_000;
        let config = &self.shared.config;
        let scheme_allowed = match request
            .authorization
            .as_deref()
            .map(livefeed_auth::parse_authorization)
        {
            Some(Ok(Credentials::Basic { .. })) => config.basic_auth,
            Some(Ok(Credentials::Digest(_))) => config.digest_auth,
            _ => true,
        };
        let challenges = || {
            let mut c = self.shared.auth.challenges(now_secs, config.digest_auth);
            if !config.basic_auth {
                c.retain(|c| !c.starts_with("Basic"));
            }
            c
        };
        if !scheme_allowed {
            warn!(peer = %self.peer, path = %request.path, "RTSP credentials in a scheme this server does not accept");
            return Err(Refusal::unauthorized(
                "this authentication scheme is not accepted",
                challenges(),
            ));
        }
        let decision = self.shared.auth.check(&AuthRequest {
            action,
            path: &request.path,
            ip: self.peer.ip(),
            connection: Some(self.peer),
            authorization: request.authorization.as_deref(),
            method: &request.method,
            uri: &request.uri,
            now_secs,
        });
        match decision {
            Decision::Allowed { .. } => Ok(()),
            Decision::Unauthorized { reason, .. } => {
                warn!(peer = %self.peer, path = %request.path, %reason, "RTSP authentication failed");
                Err(Refusal::unauthorized(
                    "authentication required",
                    challenges(),
                ))
            }
            Decision::Forbidden { reason } => Err(Refusal::new(StatusCode::Forbidden, reason)),
        }
    }

    fn describe(&mut self, path: &str) -> Result<String, Refusal> {
        let stream = self.shared.hub.stream_info(path).ok_or_else(|| {
            Refusal::new(
                StatusCode::NotFound,
                format!("no stream is being published on path {path:?}"),
            )
        })?;
        let origin = self
            .local
            .map_or_else(|| "0.0.0.0".to_string(), |a| a.ip().to_string());
        Ok(offer(&OfferParams {
            codec: stream.codec,
            vps: &stream.vps,
            sps: &stream.sps,
            pps: &stream.pps,
            payload_type: PAYLOAD_TYPE,
            origin_address: origin,
            track_control: TRACK_CONTROL,
            others: &stream.others,
        }))
    }

    fn announce(&mut self, path: &str, announced: &AnnouncedStream) -> Result<(), Refusal> {
        let track = &announced.video;
        let sets: Vec<Bytes> = [&track.vps, &track.sps, &track.pps]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let stream = StreamInfo::from_parameter_sets(track.codec, &sets);
        let info = PublisherInfo {
            protocol: "rtsp".into(),
            remote: self.peer.to_string(),
        };
        let publisher = self
            .shared
            .hub
            .claim_publisher_with(path, info, stream, announced.others.clone())
            .map_err(|e| match e {
                PublishError::Busy { .. } => Refusal::new(StatusCode::Forbidden, e.to_string()),
                PublishError::UnknownPath(_) => Refusal::new(StatusCode::NotFound, e.to_string()),
            })?;
        let tracks: Vec<String> = std::iter::once(track.codec.name().to_string())
            .chain(announced.others.iter().map(|t| t.codec.name()))
            .collect();
        info!(peer = %self.peer, path, tracks = %tracks.join(","), "publisher announced");
        self.publisher = Some((publisher, Instant::now()));
        self.announced = Some(announced.clone());
        Ok(())
    }

    fn setup(
        &mut self,
        path: &str,
        role: Role,
        track: usize,
        transport: &TransportRequest,
    ) -> Result<ServerTransport, Refusal> {
        let mut ssrc = None;
        if role == Role::Play {
            let stream = self.shared.hub.stream_info(path).ok_or_else(|| {
                Refusal::new(
                    StatusCode::NotFound,
                    format!("no stream is being published on path {path:?}"),
                )
            })?;
            ssrc = self.shared.hub.rtsp_ssrc(path, track);
            if track > stream.others.len() || ssrc.is_none() {
                return Err(Refusal::new(
                    StatusCode::NotFound,
                    format!("path {path:?} has no track {track}"),
                ));
            }
        }
        let mut server_ports = None;
        let mut udp = None;
        let mut claim = None;
        if let LowerTransport::Udp { rtp_port, .. } = transport.lower {
            claim = Some(
                UdpClaim::take(&self.shared.udp_destinations, self.peer.ip(), rtp_port)
                    .ok_or_else(|| {
                        warn!(peer = %self.peer, rtp_port, "SETUP refused: client_port pair already in use");
                        Refusal::new(
                            StatusCode::BadRequest,
                            format!("client_port {rtp_port} of this address is already used by another session"),
                        )
                    })?,
            );
            let pair = self.bind_udp()?;
            let a = pair.0.local_addr().map(|a| a.port()).unwrap_or(0);
            server_ports = Some((a, a.wrapping_add(1)));
            udp = Some((pair.0, Arc::new(pair.1)));
        }
        self.tracks.push(TrackTransport {
            track,
            transport: *transport,
            udp,
            _claim: claim,
        });
        Ok(ServerTransport { server_ports, ssrc })
    }

    fn play(&mut self, path: &str) -> Result<Vec<(usize, PlayStart)>, Refusal> {
        let tcp = match self.tracks.first().map(|t| t.transport.lower) {
            Some(LowerTransport::Tcp { .. }) => true,
            Some(LowerTransport::Udp { .. }) => false,
            None => {
                return Err(Refusal::new(
                    StatusCode::MethodNotValidInThisState,
                    "no transport",
                ))
            }
        };
        if self.shared.hub.stream_info(path).is_none() {
            return Err(Refusal::new(
                StatusCode::NotFound,
                format!("no stream is being published on path {path:?}"),
            ));
        }
        let reader = ReaderInfo {
            protocol: if tcp { "rtsp/tcp" } else { "rtsp/udp" }.into(),
            remote: self.peer.to_string(),
        };
        let tracks: Vec<usize> = self.tracks.iter().map(|t| t.track).collect();
        self.plays += 1;
        let direct = tcp.then(|| self.direct_play(path, self.plays));
        let (sub, starts) = self
            .shared
            .hub
            .subscribe_rtsp(path, reader, &tracks, direct)
            .map_err(|e| match e {
                SubscribeError::NotServed(_) => Refusal::new(
                    StatusCode::NotFound,
                    format!("no stream is being published on path {path:?}"),
                ),
                SubscribeError::TooManyReaders { .. } => {
                    Refusal::new(StatusCode::ServiceUnavailable, e.to_string())
                }
            })?;
        let mut outputs = Vec::new();
        for t in &mut self.tracks {
            let destination = match t.transport.lower {
                LowerTransport::Tcp {
                    rtp_channel,
                    rtcp_channel,
                } => Destination::Interleaved(rtp_channel, rtcp_channel),
                LowerTransport::Udp {
                    rtp_port,
                    rtcp_port,
                } => {
                    let (rtp, rtcp) = t.udp.take().ok_or_else(|| {
                        Refusal::new(StatusCode::MethodNotValidInThisState, "no UDP ports")
                    })?;
                    let ip = self.peer.ip();
                    Destination::Udp(Box::new(UdpOut::new(
                        (rtp, SocketAddr::new(ip, rtp_port)),
                        (rtcp, SocketAddr::new(ip, rtcp_port)),
                    )))
                }
            };
            outputs.push((t.track, destination));
        }
        info!(peer = %self.peer, path, tracks = starts.len(), "reader started");
        let play = Play::new(sub, self.plays, outputs);
        if tcp {
            self.out
                .try_send(WriterCommand::StartPlay(Box::new(play)))
                .map_err(|_| Refusal::new(StatusCode::ServiceUnavailable, "connection busy"))?;
        } else {
            let job = UdpPlay {
                play,
                peer: self.peer,
                metrics: self.shared.metrics.clone(),
                session_end: self.cancel.clone(),
                buf: Vec::new(),
            };
            self.tasks.push(tokio::spawn(job.run()));
        }
        Ok(starts)
    }

    /// Live frames of `path` written from its publisher's task to this TCP reader's tracks.
    fn direct_play(&self, path: &str, id: u64) -> Arc<dyn DirectSink> {
        let channels = self
            .tracks
            .iter()
            .filter_map(|t| match t.transport.lower {
                LowerTransport::Tcp {
                    rtp_channel,
                    rtcp_channel,
                } => Some((t.track, (rtp_channel, rtcp_channel))),
                LowerTransport::Udp { .. } => None,
            })
            .collect();
        Arc::new(DirectPlay {
            out: self.socket.clone(),
            id,
            channels,
            path: path.to_string(),
            metrics: self.shared.metrics.clone(),
        })
    }

    fn record(&mut self, path: &str) -> Result<(), Refusal> {
        let ((publisher, _), announced) = self
            .publisher
            .take()
            .zip(self.announced.clone())
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::MethodNotValidInThisState,
                    "RECORD without ANNOUNCE",
                )
            })?;
        let shared = Arc::new(IngestShared::new(
            publisher,
            self.peer.to_string(),
            self.shared.metrics.clone(),
        ));
        let limits = self.shared.config.depacketizer;
        let mut tcp_tracks = Vec::new();
        for t in &mut self.tracks {
            let ingest = TrackIngest::new(shared.clone(), t.track, &announced, limits, false);
            let video_rtcp = match (t.track, t.transport.lower, &t.udp) {
                (0, LowerTransport::Tcp { rtcp_channel, .. }, _) => {
                    Some(keyframe_requests::Sink::Tcp {
                        out: self.out.clone(),
                        channel: rtcp_channel,
                    })
                }
                (0, LowerTransport::Udp { rtcp_port, .. }, Some((_, rtcp))) => {
                    Some(keyframe_requests::Sink::Udp {
                        socket: rtcp.clone(),
                        to: SocketAddr::new(self.peer.ip(), rtcp_port),
                    })
                }
                _ => None,
            };
            if let Some(sink) = video_rtcp {
                let requests = shared.publisher.keyframe_requests();
                let task = keyframe_requests::forward(requests, sink, shared.clone());
                self.tasks.push(tokio::spawn(task));
            }
            match t.udp.take() {
                Some((rtp, rtcp)) => {
                    let job = UdpRecord {
                        read_timeout: (t.track == 0).then_some(self.shared.config.read_timeout),
                        ingest,
                        rtp,
                        rtcp,
                        peer: self.peer,
                        cancel: self.cancel.clone(),
                    };
                    self.tasks.push(tokio::spawn(job.run()));
                }
                None => tcp_tracks.push((t.track, ingest)),
            }
        }
        info!(peer = %self.peer, path, tracks = self.tracks.len(), "publisher recording");
        self.ingest = Some(Ingest { tracks: tcp_tracks });
        Ok(())
    }

    fn teardown(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let _ = self.out.try_send(WriterCommand::StopPlay);
        self.ingest = None;
        self.publisher = None;
        self.announced = None;
        self.tracks.clear();
    }
}

/// The UDP destinations (client address, RTP port) sessions send to: each belongs to one
/// session at a time, so two sessions never stream into the same client ports.
#[derive(Default)]
struct UdpDestinations(std::sync::Mutex<std::collections::HashSet<(std::net::IpAddr, u16)>>);

/// One session's hold on a UDP destination, released when dropped.
struct UdpClaim {
    set: Arc<UdpDestinations>,
    key: (std::net::IpAddr, u16),
}

impl UdpClaim {
    /// Takes `(ip, rtp_port)`; `None` if another session holds it.
    fn take(set: &Arc<UdpDestinations>, ip: std::net::IpAddr, rtp_port: u16) -> Option<Self> {
        let mut held = set.0.lock().unwrap_or_else(|p| p.into_inner());
        held.insert((ip, rtp_port)).then(|| UdpClaim {
            set: set.clone(),
            key: (ip, rtp_port),
        })
    }
}

impl Drop for UdpClaim {
    fn drop(&mut self) {
        let mut held = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
    }
}

enum WriterEvent {
    Command(Option<WriterCommand>),
    Media(Option<Delivery>),
    /// The publisher left the rest of a frame (see [`TcpOut`]).
    Woken,
}

/// Writes the connection's responses and, while it plays, the media its publisher did not
/// write itself (see [`TcpOut`]); ends the connection when a write fails or times out.
async fn writer_loop(
    out: Arc<TcpOut>,
    mut rx: mpsc::Receiver<WriterCommand>,
    peer: SocketAddr,
    shared: Shared,
    cancel: CancellationToken,
) {
    let timeout = shared.config.write_timeout;
    let mut play: Option<Box<Play>> = None;
    // Media waits for the PLAY response, the command after `StartPlay`: a player drops
    // interleaved data that comes before its answer, and with it the first keyframe.
    let mut answered = true;
    loop {
        let event = match play.as_mut() {
            Some(p) => tokio::select! {
                biased;
                c = rx.recv() => WriterEvent::Command(c),
                _ = out.woken(), if answered => WriterEvent::Woken,
                d = p.sub.recv(), if answered => WriterEvent::Media(d),
            },
            None => WriterEvent::Command(rx.recv().await),
        };
        if let WriterEvent::Command(None) = event {
            break;
        }
        // Whatever comes next, the rest of a frame the publisher started goes first.
        let path = play.as_ref().map(|p| p.sub.path());
        let mut result = out.close_and_finish(path, &shared.metrics, timeout).await;
        if result.is_ok() {
            result = match event {
                WriterEvent::Command(None) | WriterEvent::Woken => Ok(()),
                WriterEvent::Command(Some(WriterCommand::Send(bytes))) => {
                    answered = true;
                    write_all(&out, &mut &bytes[..], timeout).await
                }
                WriterEvent::Command(Some(WriterCommand::StartPlay(p))) => {
                    play = Some(p);
                    answered = false;
                    Ok(())
                }
                WriterEvent::Command(Some(WriterCommand::StopPlay)) => {
                    play = None;
                    Ok(())
                }
                WriterEvent::Media(None) => Err("disconnected by the server".to_string()),
                WriterEvent::Media(Some(delivery)) => match play.as_mut() {
                    Some(p) => send_tcp_media(&out, p, delivery, timeout, &shared.metrics).await,
                    None => Ok(()),
                },
            };
        }
        let result = match (result, play.as_mut()) {
            (Ok(()), Some(p)) if answered => send_pending(&out, p, &rx, timeout, &shared).await,
            (result, _) => result,
        };
        if let Err(cause) = result {
            let drops = play.as_ref().map_or(0, |p| p.sub.drops());
            warn!(%peer, cause = %cause, dropped_frames = drops, "disconnecting RTSP reader");
            break;
        }
    }
    out.close();
    out.shutdown();
    cancel.cancel();
}

/// Sends what is queued for `play`, until the connection can be opened to its publisher
/// again (see [`TcpOut::reopen`]), or a command waits: then it stays closed, and this is
/// called again once the command is done.
async fn send_pending(
    out: &TcpOut,
    play: &mut Play,
    commands: &mpsc::Receiver<WriterCommand>,
    timeout: Duration,
    shared: &Shared,
) -> Result<(), String> {
    while commands.is_empty() {
        let Some(delivery) = out.reopen(play) else {
            break;
        };
        send_tcp_media(out, play, delivery, timeout, &shared.metrics).await?;
    }
    Ok(())
}

/// A TCP publisher's media: each interleaved RTP packet goes to its track.
struct Ingest {
    tracks: Vec<(usize, TrackIngest)>,
}

impl Ingest {
    /// `Err` once another publisher took the path over (the connection should close).
    fn push(&mut self, track: usize, packet: &[u8]) -> Result<(), String> {
        match self.tracks.iter_mut().find(|(t, _)| *t == track) {
            Some((_, ingest)) => ingest.push(packet),
            None => Ok(()),
        }
    }

    /// RTCP for `track` from the publisher.
    fn push_rtcp(&mut self, track: usize, packet: &[u8]) {
        if let Some((_, ingest)) = self.tracks.iter_mut().find(|(t, _)| *t == track) {
            ingest.push_rtcp(packet);
        }
    }
}

/// One track of a publisher sending over UDP. Packets from any address but the RTSP peer's
/// are ignored. The video track's silence for `read_timeout` ends the session.
struct UdpRecord {
    ingest: TrackIngest,
    rtp: UdpSocket,
    rtcp: Arc<UdpSocket>,
    peer: SocketAddr,
    read_timeout: Option<Duration>,
    cancel: CancellationToken,
}

impl UdpRecord {
    async fn run(mut self) {
        let mut buf = vec![0u8; 65536];
        let mut rtcp_buf = [0u8; 1500];
        loop {
            tokio::select! {
                r = tokio::time::timeout(self.read_timeout.unwrap_or(Duration::MAX), self.rtp.recv_from(&mut buf)) => match r {
                    Ok(Ok((n, from))) if from.ip() == self.peer.ip() => {
                        if self.ingest.push(&buf[..n]).is_err() {
                            self.cancel.cancel();
                            return;
                        }
                    }
                    Ok(Ok((_, from))) => debug!(peer = %self.peer, %from, "RTP from a foreign address ignored"),
                    Ok(Err(e)) => debug!(peer = %self.peer, error = %e, "UDP receive error"),
                    Err(_) => {
                        warn!(peer = %self.peer, timeout = ?self.read_timeout, "publisher sent no RTP, dropping it");
                        self.cancel.cancel();
                        return;
                    }
                },
                r = self.rtcp.recv_from(&mut rtcp_buf) => match r {
                    Ok((n, from)) if from.ip() == self.peer.ip() => self.ingest.push_rtcp(&rtcp_buf[..n]),
                    _ => {}
                },
            }
        }
    }
}
