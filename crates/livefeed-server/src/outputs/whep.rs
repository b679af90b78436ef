//! WebRTC (WHEP) viewers: one task owns the shared UDP socket (ICE host candidates all point at
//! its port) and every [`WhepSession`]; datagrams are routed to the session that accepts them.
//! Each viewer's frames come from its own hub subscription through a forwarding task, so a
//! viewer that cannot keep up skips to the next keyframe in the hub (its drops are counted)
//! and never slows the others. A new viewer starts from the GOP cache only while it is fresh
//! (see [`StaleStart`]); otherwise at the next keyframe, which it asks the publisher for
//! (as it does whenever its browser sends a PLI or FIR: [`Subscription::request_keyframe`]).
//! Sessions end on DELETE, when ICE disconnects, or when the server stops.
//!
//! Video is the path's H.264 or H.265 track; viewers that receive audio also get the path's first Opus
//! track, passed through, or else its AAC track transcoded to Opus ([`crate::outputs::transcode`], once
//! per path while viewers listen). Other tracks are skipped with one log line.
//!
//! A video frame is packetized once ([`SharedAccessUnit`]: its RTP payloads, shared), for the
//! viewers that get it at the same time; a viewer replaying the GOP cache while others are
//! live gets its own.
//!
//! ICE-TCP: with a TCP listener (`--webrtc-tcp-address`), every UDP host candidate has a
//! passive TCP twin on the listener's port, for viewers whose UDP is blocked; packets from
//! its connections ([`crate::outputs::whep_tcp`]) are routed like datagrams, and a connection
//! whose packets no session accepts is closed.
//!
//! WHIP publishers ([`crate::ingest::whip`]) live in the same loop, on the same socket and
//! listener: a datagram goes to the viewer or publisher session that accepts it, and what a
//! publisher's session receives goes to its [`WhipIngest`] at once.
//!
//! The str0m protocol work is in `livefeed-webrtc` (sans-IO); this module moves datagrams,
//! frames and timers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livefeed_media::clock::instant_of_unix_ns;
use livefeed_media::track::{Codec, TrackDescription};
use livefeed_media::AccessUnit;
use livefeed_webrtc::tcp_framing::frame;
use livefeed_webrtc::{Poll, SharedAccessUnit, Transport, WhepSession, WhipSession};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::hub::{Delivery, HubFrame, KeyframeRequester, Media, Subscription};
use crate::ingest::whip::WhipIngest;
use crate::limits::conn_gate::ConnectionGate;
use crate::measure::metrics::ServerMetrics;
use crate::outputs::ice_host::{resolve, IceHost};
use crate::outputs::ice_server::IceServer;
use crate::outputs::transcode::{Transcoders, TRANSCODED_TRACK};
use crate::outputs::whep_tcp::{self, TcpEvent};

/// Claims a WHIP publisher's path (once its session connected: an offer that never connects
/// must not take a path over).
pub type ClaimPath = Box<dyn FnOnce() -> Result<WhipIngest, crate::hub::PublishError> + Send>;

/// A viewer session's id, as it appears in its WHEP resource URL.
pub type SessionId = String;

/// Frames queued between the forwarding tasks and the media loop (all viewers together).
const MEDIA_QUEUE: usize = 1024;

/// Sessions whose ICE/DTLS has not completed yet, at most (they hold a reader slot each).
pub const MAX_CONNECTING: usize = 32;
/// The same, from one client address.
pub const MAX_CONNECTING_PER_ADDRESS: usize = 4;
/// A session that has not connected this long after its offer is closed: enough for ICE and
/// DTLS through a relay, short enough that offers never answered cannot hold reader slots.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// Sessions still connecting, in all and per client address.
#[derive(Default)]
struct Connecting {
    by_address: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// A connecting session's place under the caps; dropped when it connects or closes.
pub struct ConnectingSlot {
    connecting: Arc<Connecting>,
    ip: IpAddr,
}

impl Drop for ConnectingSlot {
    fn drop(&mut self) {
        let mut by_address = self.connecting.lock();
        if let Some(n) = by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.ip);
            }
        }
    }
}

impl Connecting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_address.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Command {
    Add {
        id: SessionId,
        path: String,
        session: Box<WhepSession>,
        sub: Subscription,
        transcoded: Option<broadcast::Receiver<Arc<HubFrame>>>,
        candidates: Vec<SocketAddr>,
        connecting: ConnectingSlot,
    },
    AddPublisher {
        id: SessionId,
        path: String,
        session: Box<WhipSession>,
        claim: ClaimPath,
        candidates: Vec<SocketAddr>,
        connecting: ConnectingSlot,
    },
    /// Ends a viewer's session, or a publisher's (`publisher`).
    Remove {
        id: SessionId,
        path: String,
        publisher: bool,
        done: oneshot::Sender<bool>,
    },
}

/// Handle to the WHEP media loop.
pub struct WhepServer {
    commands: mpsc::Sender<Command>,
    local: SocketAddr,
    /// The ICE-TCP listener's address, when there is one.
    tcp_local: Option<SocketAddr>,
    additional_hosts: Vec<IceHost>,
    ice_servers: Vec<IceServer>,
    next_id: AtomicU64,
    connecting: Arc<Connecting>,
    transcoders: Arc<Transcoders>,
    task: JoinHandle<()>,
}

impl WhepServer {
    /// Binds the UDP socket (and the ICE-TCP listener, at `tcp_address`, admitting its
    /// connections through `tcp_gate`) and starts the media loop.
    pub fn start(
        address: SocketAddr,
        tcp_address: Option<(SocketAddr, Arc<ConnectionGate>)>,
        additional_hosts: Vec<IceHost>,
        ice_servers: Vec<IceServer>,
        metrics: Arc<ServerMetrics>,
        transcoders: Arc<Transcoders>,
    ) -> std::io::Result<Arc<WhepServer>> {
        let socket = std::net::UdpSocket::bind(address)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let (commands, rx) = mpsc::channel(64);
        let mut media_loop = MediaLoop::new(socket, rx, metrics);
        let tcp_local = match tcp_address {
            Some((address, gate)) => {
                let listener = std::net::TcpListener::bind(address)?;
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let tcp_local = listener.local_addr()?;
                let (events, events_rx) = mpsc::channel(MEDIA_QUEUE);
                media_loop.tcp_events = Some(events_rx);
                whep_tcp::spawn_listener(listener, events, gate);
                Some(tcp_local)
            }
            None => None,
        };
        let task = tokio::spawn(media_loop.run());
        match tcp_local {
            Some(tcp) => info!(udp = %local, %tcp, "WebRTC (WHEP) listening"),
            None => info!(udp = %local, "WebRTC (WHEP) listening (no ICE-TCP)"),
        }
        Ok(Arc::new(WhepServer {
            commands,
            local,
            tcp_local,
            additional_hosts,
            ice_servers,
            next_id: AtomicU64::new(1),
            connecting: Arc::default(),
            transcoders,
            task,
        }))
    }

    /// The UDP address media uses.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The ICE-TCP listener's address, if it listens.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.tcp_local
    }

    /// The passive TCP candidates twinning `udp_candidates` (same addresses, the listener's
    /// port); none without a listener. A listener bound to one address has that one instead
    /// of the UDP socket's own address (the additional hosts, a 1:1 NAT's public address,
    /// stay).
    pub fn tcp_candidates(&self, udp_candidates: &[SocketAddr]) -> Vec<SocketAddr> {
        let Some(tcp) = self.tcp_local else {
            return Vec::new();
        };
        let bound = !tcp.ip().is_unspecified();
        let mut candidates: Vec<SocketAddr> = bound.then_some(tcp).into_iter().collect();
        let twins = udp_candidates
            .iter()
            .filter(|c| !bound || *c != &self.local)
            .map(|c| SocketAddr::new(c.ip(), tcp.port()));
        for twin in twins {
            if !candidates.contains(&twin) {
                candidates.push(twin);
            }
        }
        candidates
    }

    /// The STUN/TURN servers viewers may use, as `Link` header values.
    pub fn ice_server_links(&self) -> Vec<String> {
        self.ice_servers.iter().map(IceServer::link).collect()
    }

    /// The host candidates to announce to a viewer that reached the HTTP server at
    /// `http_local`: that address (the one the viewer can evidently reach), loopback, and the
    /// configured additional hosts (names resolved now), all on the media port.
    pub async fn candidates(&self, http_local: Option<IpAddr>) -> Vec<SocketAddr> {
        let port = self.local.port();
        let mut ips: Vec<IpAddr> = Vec::new();
        if !self.local.ip().is_unspecified() {
            ips.push(self.local.ip());
        } else {
            ips.extend(http_local.filter(|ip| !ip.is_unspecified()));
            ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        ips.extend(resolve(&self.additional_hosts).await);
        let mut seen = Vec::new();
        ips.retain(|ip| {
            let new = !seen.contains(ip);
            seen.push(*ip);
            new
        });
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    }

    /// A place for a new session from `ip` among those still connecting, or why there is none
    /// ([`MAX_CONNECTING`] in all, [`MAX_CONNECTING_PER_ADDRESS`] from one address).
    pub fn reserve_connecting(&self, ip: IpAddr) -> Result<ConnectingSlot, String> {
        let mut by_address = self.connecting.lock();
        let total: usize = by_address.values().sum();
        let from_ip = by_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= MAX_CONNECTING_PER_ADDRESS {
            return Err(format!(
                "{from_ip} WebRTC sessions from this address are still connecting (the most at once)"
            ));
        }
        if total >= MAX_CONNECTING {
            return Err(format!(
                "{total} WebRTC sessions are still connecting (the most at once); try again"
            ));
        }
        *by_address.entry(ip).or_default() += 1;
        Ok(ConnectingSlot {
            connecting: self.connecting.clone(),
            ip,
        })
    }

    /// The session settings for a stream of `codec`: connecting sessions expire after
    /// [`CONNECT_TIMEOUT`].
    pub fn session_config(codec: livefeed_media::VideoCodec) -> livefeed_webrtc::WhepConfig {
        livefeed_webrtc::WhepConfig {
            connect_timeout: CONNECT_TIMEOUT,
            video_codec: codec,
            ..Default::default()
        }
    }

    /// A new, unique session id.
    pub fn new_id(&self) -> SessionId {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{n:x}{:016x}", rand::random::<u64>())
    }

    /// Hands a negotiated session, its subscription and the candidates it was given to the
    /// media loop.
    pub async fn add(
        &self,
        id: SessionId,
        path: &str,
        session: WhepSession,
        sub: Subscription,
        candidates: Vec<SocketAddr>,
        connecting: ConnectingSlot,
    ) -> bool {
        let others = sub.others();
        let transcoded = if session.has_audio() && opus_track(&others).is_none() {
            self.transcoders.listen(path, &others)
        } else {
            None
        };
        let cmd = Command::Add {
            id,
            path: path.to_string(),
            session: Box::new(session),
            sub,
            transcoded,
            candidates,
            connecting,
        };
        self.commands.send(cmd).await.is_ok()
    }

    /// Hands a WHIP publisher's negotiated session to the media loop, with what claims its
    /// path once it connected.
    pub async fn add_publisher(
        &self,
        id: SessionId,
        path: &str,
        session: WhipSession,
        claim: ClaimPath,
        candidates: Vec<SocketAddr>,
        connecting: ConnectingSlot,
    ) -> bool {
        let cmd = Command::AddPublisher {
            id,
            path: path.to_string(),
            session: Box::new(session),
            claim,
            candidates,
            connecting,
        };
        self.commands.send(cmd).await.is_ok()
    }

    /// Ends a viewer's session (WHEP) or, with `publisher`, a publisher's (WHIP); `false` if
    /// no such session of `path` has that id.
    pub async fn remove(&self, path: &str, id: &str, publisher: bool) -> bool {
        let (done, answer) = oneshot::channel();
        let cmd = Command::Remove {
            id: id.to_string(),
            path: path.to_string(),
            publisher,
            done,
        };
        if self.commands.send(cmd).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

impl Drop for WhepServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Viewer {
    path: String,
    session: Box<WhepSession>,
    /// Asks the path's publisher for a keyframe while the session wants one.
    keyframes: KeyframeRequester,
    /// When this viewer last asked.
    keyframe_asked: Option<Instant>,
    forward: JoinHandle<()>,
    candidates: Vec<SocketAddr>,
    /// Held until the session connects (or closes).
    connecting: Option<ConnectingSlot>,
    /// Whether the last video frame carried a capture stamp (see
    /// [`HubFrame::sender_report_unix_ns`]).
    video_stamped: bool,
}

/// How often a viewer that still waits for a keyframe asks again.
const KEYFRAME_ASK_AGAIN: Duration = Duration::from_secs(1);

impl Viewer {
    /// Passes the session's need for a keyframe (its browser's PLI/FIR, or a start that waits
    /// for one) to the publisher, at most once per [`KEYFRAME_ASK_AGAIN`] however often the
    /// browser asks (so one viewer cannot make the publisher send keyframes back to back).
    fn ask_for_keyframe_if_wanted(&mut self) {
        if !self.session.wants_keyframe() {
            return;
        }
        let now = Instant::now();
        if self
            .keyframe_asked
            .is_none_or(|at| now.duration_since(at) >= KEYFRAME_ASK_AGAIN)
        {
            self.keyframes.request();
            self.keyframe_asked = Some(now);
        }
    }
}

/// The local candidate (of `candidates`, a session's) a datagram from `source` arrived on.
/// The socket may be bound to an unspecified address, where the real destination is not
/// reported: loopback peers reached the loopback candidate, others the first other one.
fn destination(candidates: &[SocketAddr], source: SocketAddr, socket: SocketAddr) -> SocketAddr {
    if !socket.ip().is_unspecified() {
        return socket;
    }
    let wanted = |c: &&SocketAddr| c.ip().is_loopback() == source.ip().is_loopback();
    candidates
        .iter()
        .find(wanted)
        .or(candidates.first())
        .copied()
        .unwrap_or(socket)
}

/// A WHIP publisher in the media loop.
struct Publishing {
    path: String,
    session: Box<WhipSession>,
    /// Claims the path when the session connects.
    claim: Option<ClaimPath>,
    /// The path's tracks, once claimed.
    ingest: Option<Box<WhipIngest>>,
    candidates: Vec<SocketAddr>,
    /// Held until the session connects (or closes).
    connecting: Option<ConnectingSlot>,
}

impl Publishing {
    /// Claims the path once the session connected (closing it if the path is refused), then
    /// moves what the session received into the hub; closes the session when the hub refuses
    /// it (the path taken over, a frame over the limits).
    fn take_frames(&mut self, id: &str) {
        if self.ingest.is_none() && self.session.is_connected() {
            if let Some(claim) = self.claim.take() {
                match claim() {
                    Ok(ingest) => {
                        info!(session = %id, path = %self.path, "WHIP publisher streaming");
                        self.ingest = Some(Box::new(ingest));
                    }
                    Err(e) => {
                        warn!(session = %id, path = %self.path, error = %e, "WHIP publisher refused once connected");
                        self.session.close();
                        return;
                    }
                }
            }
        }
        let Some(ingest) = self.ingest.as_mut() else {
            return;
        };
        while let Some(received) = self.session.take_received() {
            if let Err(cause) = ingest.push(received) {
                info!(session = %id, path = %self.path, %cause, "WHIP publisher closed");
                self.session.close();
                return;
            }
        }
    }
}

struct MediaLoop {
    socket: UdpSocket,
    local: SocketAddr,
    commands: mpsc::Receiver<Command>,
    media_tx: mpsc::Sender<(SessionId, Option<Delivery>)>,
    media_rx: mpsc::Receiver<(SessionId, Option<Delivery>)>,
    viewers: HashMap<SessionId, Viewer>,
    publishers: HashMap<SessionId, Publishing>,
    buf: Vec<u8>,
    metrics: Arc<ServerMetrics>,
    /// ICE-TCP connection events, when there is a listener.
    tcp_events: Option<mpsc::Receiver<TcpEvent>>,
    /// Open ICE-TCP connections by the viewer's address.
    tcp_connections: HashMap<SocketAddr, TcpConnection>,
    /// Per path, the last video frame written, as str0m takes it: built once, shared by every
    /// viewer of the path (they get the same frame at about the same time).
    shared: HashMap<String, (Arc<HubFrame>, SharedAccessUnit)>,
}

/// An open ICE-TCP connection.
struct TcpConnection {
    /// Its id from the listener.
    id: u64,
    /// Takes framed packets to write to it.
    out: mpsc::Sender<Vec<u8>>,
}

impl MediaLoop {
    fn new(
        socket: UdpSocket,
        commands: mpsc::Receiver<Command>,
        metrics: Arc<ServerMetrics>,
    ) -> Self {
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (media_tx, media_rx) = mpsc::channel(MEDIA_QUEUE);
        MediaLoop {
            socket,
            local,
            commands,
            media_tx,
            media_rx,
            viewers: HashMap::new(),
            publishers: HashMap::new(),
            buf: vec![0; 2048],
            metrics,
            tcp_events: None,
            tcp_connections: HashMap::new(),
            shared: HashMap::new(),
        }
    }

    async fn run(mut self) {
        loop {
            // Closed sessions get their last datagrams (RTCP BYE, DTLS close) out before they go.
            let wake = self.drive().await;
            self.reap();
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
            tokio::select! {
                r = self.socket.recv_from(&mut self.buf) => match r {
                    Ok((n, source)) => self.datagram(n, source),
                    Err(e) => debug!(error = %e, "WebRTC UDP receive error"),
                },
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                Some((id, delivery)) = self.media_rx.recv() => self.media(&id, &delivery),
                Some(event) = next_tcp_event(&mut self.tcp_events) => self.tcp_event(event),
                _ = sleep => self.timeouts(),
            }
        }
    }

    /// Sends everything the sessions want to send; returns when the next timeout is due.
    async fn drive(&mut self) -> Instant {
        let mut wake = Instant::now() + Duration::from_millis(500);
        for (id, viewer) in self.viewers.iter_mut() {
            viewer.ask_for_keyframe_if_wanted();
            let at = transmit(&self.socket, &self.tcp_connections, id, || {
                viewer.session.poll()
            })
            .await;
            wake = wake.min(at);
        }
        for (id, publisher) in self.publishers.iter_mut() {
            if publisher.session.is_connected()
                && publisher
                    .ingest
                    .as_mut()
                    .is_some_and(|i| i.keyframe_wanted())
            {
                publisher.session.request_keyframe();
            }
            let at = transmit(&self.socket, &self.tcp_connections, id, || {
                publisher.session.poll()
            })
            .await;
            wake = wake.min(at);
        }
        wake
    }

    fn datagram(&mut self, n: usize, source: SocketAddr) {
        let now = Instant::now();
        let data = &self.buf[..n];
        let socket = self.local;
        let found = self.viewers.iter_mut().find(|(_, v)| {
            let destination = destination(&v.candidates, source, socket);
            v.session
                .accepts(now, Transport::Udp, source, destination, data)
        });
        if let Some((id, viewer)) = found {
            let destination = destination(&viewer.candidates, source, socket);
            if let Err(e) =
                viewer
                    .session
                    .handle_datagram(now, Transport::Udp, source, destination, data)
            {
                debug!(session = %id, %source, error = %e, "bad datagram");
            }
            return;
        }
        let found = self.publishers.iter_mut().find(|(_, p)| {
            let destination = destination(&p.candidates, source, socket);
            p.session
                .accepts(now, Transport::Udp, source, destination, data)
        });
        let Some((id, publisher)) = found else {
            debug!(%source, len = n, "datagram for no WebRTC session");
            return;
        };
        let destination = destination(&publisher.candidates, source, socket);
        if let Err(e) =
            publisher
                .session
                .handle_datagram(now, Transport::Udp, source, destination, data)
        {
            debug!(session = %id, %source, error = %e, "bad datagram");
        }
        publisher.take_frames(id);
    }

    /// An ICE-TCP connection opened, brought a packet, or closed. A connection whose packet
    /// no session accepts is closed (its writer dropped).
    fn tcp_event(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Opened { id, peer, out, .. } => {
                self.tcp_connections.insert(peer, TcpConnection { id, out });
            }
            TcpEvent::Closed { id, peer } => {
                if self.tcp_connections.get(&peer).is_some_and(|c| c.id == id) {
                    self.tcp_connections.remove(&peer);
                }
            }
            TcpEvent::Packet {
                peer,
                local,
                packet,
            } => {
                let now = Instant::now();
                let found = self
                    .viewers
                    .iter_mut()
                    .find(|(_, v)| v.session.accepts(now, Transport::Tcp, peer, local, &packet));
                if let Some((id, viewer)) = found {
                    if let Err(e) =
                        viewer
                            .session
                            .handle_datagram(now, Transport::Tcp, peer, local, &packet)
                    {
                        debug!(session = %id, %peer, error = %e, "bad ICE-TCP packet");
                    }
                    return;
                }
                let found = self
                    .publishers
                    .iter_mut()
                    .find(|(_, p)| p.session.accepts(now, Transport::Tcp, peer, local, &packet));
                let Some((id, publisher)) = found else {
                    if self.tcp_connections.remove(&peer).is_some() {
                        info!(%peer, "ICE-TCP connection closed: for no WebRTC session");
                    }
                    return;
                };
                if let Err(e) =
                    publisher
                        .session
                        .handle_datagram(now, Transport::Tcp, peer, local, &packet)
                {
                    debug!(session = %id, %peer, error = %e, "bad ICE-TCP packet");
                }
                publisher.take_frames(id);
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add {
                id,
                path,
                session,
                sub,
                transcoded,
                candidates,
                connecting,
            } => {
                let keyframes = sub.keyframe_requester();
                let forward =
                    tokio::spawn(forward(id.clone(), sub, transcoded, self.media_tx.clone()));
                info!(session = %id, path, "WebRTC viewer added");
                self.viewers.insert(
                    id,
                    Viewer {
                        path,
                        session,
                        keyframes,
                        keyframe_asked: None,
                        forward,
                        candidates,
                        connecting: Some(connecting),
                        video_stamped: false,
                    },
                );
            }
            Command::AddPublisher {
                id,
                path,
                session,
                claim,
                candidates,
                connecting,
            } => {
                info!(session = %id, path, "WebRTC (WHIP) publisher added");
                self.publishers.insert(
                    id,
                    Publishing {
                        path,
                        session,
                        claim: Some(claim),
                        ingest: None,
                        candidates,
                        connecting: Some(connecting),
                    },
                );
            }
            Command::Remove {
                id,
                path,
                publisher,
                done,
            } => {
                // Reaped after the next drive, once its goodbye datagrams are sent.
                let mut found = false;
                if publisher {
                    if let Some(p) = self.publishers.get_mut(&id).filter(|p| p.path == path) {
                        p.session.close();
                        info!(session = %id, path, "WebRTC (WHIP) publisher removed (DELETE)");
                        found = true;
                    }
                } else if let Some(viewer) = self.viewers.get_mut(&id).filter(|v| v.path == path) {
                    viewer.session.close();
                    viewer.forward.abort();
                    info!(session = %id, path, "WebRTC viewer removed (DELETE)");
                    found = true;
                }
                let _ = done.send(found);
            }
        }
    }

    /// A frame for a viewer, or `None` when the hub disconnected it (its session closes).
    fn media(&mut self, id: &str, delivery: &Option<Delivery>) {
        let Some(viewer) = self.viewers.get_mut(id) else {
            return;
        };
        let Some(delivery) = delivery else {
            info!(session = %id, path = %viewer.path, "WebRTC viewer disconnected by the server");
            viewer.session.close();
            return;
        };
        let frame = &delivery.frame;
        if let Media::Video(au) = &frame.media {
            viewer.video_stamped = au.capture.is_some();
        }
        // What the sender reports map RTP time to: capture time where known, as for RTSP.
        let wallclock = instant_of_unix_ns(frame.sender_report_unix_ns(viewer.video_stamped));
        let au = match &frame.media {
            Media::Video(au) => shared_access_unit(&mut self.shared, &viewer.path, frame, au),
            Media::Packet(p) => {
                // The forwarding task passes the path's Opus track only.
                if let Err(e) = viewer.session.write_audio(&p.payload, p.pts, wallclock) {
                    debug!(session = %id, error = %e, "cannot send audio to WebRTC viewer");
                }
                return;
            }
        };
        if let Err(e) = viewer.session.write_shared(au, wallclock) {
            debug!(session = %id, error = %e, "cannot send to WebRTC viewer");
        } else if !delivery.from_cache {
            // Handed to str0m, which packetizes and sends on the next drive.
            self.metrics
                .record_egress(&viewer.path, frame.ingest.elapsed(), frame.first_egress());
        }
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        for (id, viewer) in self.viewers.iter_mut() {
            if let Err(e) = viewer.session.handle_timeout(now) {
                debug!(session = %id, error = %e, "WebRTC timeout handling failed");
            }
        }
        for (id, publisher) in self.publishers.iter_mut() {
            if let Err(e) = publisher.session.handle_timeout(now) {
                debug!(session = %id, error = %e, "WHIP timeout handling failed");
            }
            publisher.take_frames(id);
        }
    }

    /// Drops sessions whose peer is gone.
    fn reap(&mut self) {
        self.viewers.retain(|id, viewer| {
            if viewer.session.is_connected() {
                viewer.connecting = None;
            }
            if viewer.session.is_closed() {
                viewer.forward.abort();
                info!(session = %id, path = %viewer.path, "WebRTC viewer left");
                return false;
            }
            true
        });
        let viewers = &self.viewers;
        self.shared
            .retain(|path, _| viewers.values().any(|v| &v.path == path));
        self.publishers.retain(|id, publisher| {
            if publisher.session.is_connected() {
                publisher.connecting = None;
            }
            if publisher.session.is_closed() {
                let reason = publisher.session.close_reason();
                info!(session = %id, path = %publisher.path, ?reason, "WebRTC (WHIP) publisher left");
                return false;
            }
            true
        });
    }
}

/// `frame`'s access unit as str0m takes it: from `shared` when it is the frame cached there
/// for `path`, else built and cached (once per frame and path, however many viewers).
fn shared_access_unit<'a>(
    shared: &'a mut HashMap<String, (Arc<HubFrame>, SharedAccessUnit)>,
    path: &str,
    frame: &Arc<HubFrame>,
    au: &AccessUnit,
) -> &'a SharedAccessUnit {
    let cached = shared.get(path).is_some_and(|(f, _)| Arc::ptr_eq(f, frame));
    if !cached {
        shared.insert(path.to_string(), (frame.clone(), SharedAccessUnit::new(au)));
    }
    &shared[path].1
}

/// Sends what a session's `poll` hands out until it says to wait; returns until when.
async fn transmit(
    socket: &UdpSocket,
    tcp_connections: &HashMap<SocketAddr, TcpConnection>,
    id: &str,
    mut poll: impl FnMut() -> Poll,
) -> Instant {
    loop {
        match poll() {
            Poll::Transmit {
                destination,
                transport: Transport::Tcp,
                datagram,
                ..
            } => send_tcp(tcp_connections, id, destination, &datagram),
            Poll::Transmit {
                destination,
                datagram,
                ..
            } => {
                if let Err(e) = socket.send_to(&datagram, destination).await {
                    debug!(session = %id, error = %e, "WebRTC UDP send failed");
                }
            }
            Poll::Wait(at) => return at,
        }
    }
}

/// The next ICE-TCP event; never, without a listener.
async fn next_tcp_event(events: &mut Option<mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes `packet` framed to the viewer's ICE-TCP connection from `destination`; when its
/// queue is full the packet is lost, as it would be over UDP.
fn send_tcp(
    connections: &HashMap<SocketAddr, TcpConnection>,
    session: &str,
    destination: SocketAddr,
    packet: &[u8],
) {
    let Some(TcpConnection { out, .. }) = connections.get(&destination) else {
        debug!(session, %destination, "no ICE-TCP connection to send on");
        return;
    };
    let Some(framed) = frame(packet) else {
        debug!(session, len = packet.len(), "packet too long for ICE-TCP");
        return;
    };
    if out.try_send(framed).is_err() {
        debug!(session, %destination, "ICE-TCP connection full or closed: packet dropped");
    }
}

/// Moves one viewer's frames from its hub subscription to the media loop.
async fn forward(
    id: SessionId,
    mut sub: Subscription,
    mut transcoded: Option<broadcast::Receiver<Arc<HubFrame>>>,
    media: mpsc::Sender<(SessionId, Option<Delivery>)>,
) {
    let mut gate = StaleStart::default();
    let mut opus = opus_track(&sub.others());
    if transcoded.is_some() {
        opus = Some(TRANSCODED_TRACK);
    }
    loop {
        let delivery = match transcoded.as_mut() {
            Some(rx) => tokio::select! {
                d = sub.recv() => d,
                t = rx.recv() => match t {
                    Ok(frame) => Some(Delivery { frame, from_cache: false }),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => {
                        transcoded = None;
                        continue;
                    }
                },
            },
            None => sub.recv().await,
        };
        if let Some(d) = &delivery {
            if d.frame.is_keyframe() && transcoded.is_none() {
                opus = opus_track(&sub.others()); // a new publisher may bring another track
            }
            let passed = match &d.frame.media {
                Media::Video(_) => true,
                Media::Packet(p) => Some(p.track) == opus,
            };
            if !passed {
                sub.note_not_carried("WebRTC", &d.frame);
                continue;
            }
            let was_waiting = gate.waiting_for_keyframe;
            if !gate.pass(d, d.frame.ingest.elapsed()) {
                if !was_waiting && gate.waiting_for_keyframe {
                    sub.request_keyframe(); // the cache was stale: ask for a fresh start
                }
                continue;
            }
        }
        let end = delivery.is_none();
        if media.send((id.clone(), delivery)).await.is_err() || end {
            return;
        }
    }
}

/// The track WebRTC viewers hear (1, 2, …): the first Opus track (passed through), or else the
/// muxers' audio track (AAC or G.711, transcoded) when libopus is there.
pub fn webrtc_audio_track(others: &[TrackDescription]) -> Option<usize> {
    opus_track(others).or_else(|| {
        livefeed_transcode::opus_encoder::available().ok()?;
        others
            .iter()
            .position(crate::outputs::audio_track::can_carry)
            .map(|i| i + 1)
    })
}

/// The track WebRTC viewers get as audio: the path's first Opus track (passed through).
fn opus_track(others: &[TrackDescription]) -> Option<usize> {
    others
        .iter()
        .position(|t| t.codec == Codec::Opus && t.clock_rate == livefeed_media::opus::CLOCK_RATE)
        .map(|i| i + 1)
}

/// A viewer's start from the GOP cache is worth it only while the cache is fresh: cached frames
/// older than [`MAX_CACHED_AGE`] when they reach the viewer (a busy media loop, a long GOP) are
/// dropped, and so is everything after them up to the next keyframe, so the first picture a
/// viewer sees is never stale and every picture it gets is decodable.
#[derive(Debug, Default)]
struct StaleStart {
    waiting_for_keyframe: bool,
}

/// The oldest cached frame a new viewer is given.
const MAX_CACHED_AGE: Duration = Duration::from_millis(400);

impl StaleStart {
    /// Whether to send `delivery`, which the hub ingested `age` ago.
    fn pass(&mut self, delivery: &Delivery, age: Duration) -> bool {
        if delivery.from_cache && age > MAX_CACHED_AGE {
            self.waiting_for_keyframe = true;
            return false;
        }
        if self.waiting_for_keyframe && !delivery.frame.is_keyframe() {
            return false;
        }
        self.waiting_for_keyframe = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::HubFrame;
    use livefeed_media::AccessUnit;

    fn delivery(keyframe: bool, from_cache: bool) -> Delivery {
        Delivery {
            frame: Arc::new(HubFrame::video_frame(
                AccessUnit {
                    codec: livefeed_media::VideoCodec::H264,
                    nals: Vec::new(),
                    pts: 0,
                    keyframe,
                    capture: None,
                },
                Instant::now(),
            )),
            from_cache,
        }
    }

    #[test]
    fn a_fresh_cache_is_sent_and_a_stale_one_waits_for_the_next_keyframe() {
        let ms = Duration::from_millis;
        let mut fresh = StaleStart::default();
        assert!(fresh.pass(&delivery(true, true), ms(100)));
        assert!(fresh.pass(&delivery(false, true), ms(50)));
        assert!(fresh.pass(&delivery(false, false), ms(1)));

        let mut stale = StaleStart::default();
        assert!(
            !stale.pass(&delivery(true, true), ms(900)),
            "old cached keyframe"
        );
        assert!(
            !stale.pass(&delivery(false, true), ms(100)),
            "a fresh P-frame after it"
        );
        assert!(
            !stale.pass(&delivery(false, false), ms(1)),
            "live, but no keyframe yet"
        );
        assert!(
            stale.pass(&delivery(true, false), ms(1)),
            "the next keyframe"
        );
        assert!(stale.pass(&delivery(false, false), ms(1)));
    }
}
