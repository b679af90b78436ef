//! The tokio shell around [`crate::client_session`]: an RTSP publisher (ANNOUNCE/SETUP/RECORD,
//! then RTP out, and the server's RTCP keyframe requests in) and an RTSP player (DESCRIBE/SETUP/PLAY, then RTP in), over TCP-interleaved
//! or UDP transport. All protocol decisions live in the sans-IO modules; this file moves bytes.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livefeed_media::clock::unix_now_ns;
use livefeed_media::rtcp::CaptureClock;
use livefeed_media::rtp::VideoDepacketizer;
use livefeed_media::sdp::{offer, parse_announced, parse_h264_track, OfferParams, VideoTrack};
use livefeed_media::track::{Codec, PacketTimeline, TrackDescription, TrackPacket};
use livefeed_media::{sei, AccessUnit, VideoCodec};
use rtsp_types::headers::{self, TypedHeader};
use rtsp_types::{Request, Response, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::client_session::{track_url, ClientError, ClientSession};
use crate::framing::{Frame, FrameReader, FramingError, Limits};
use crate::rtp_sender::{push_interleaved, RtpSender, TrackSender, PAYLOAD_TYPE};
use crate::transport::{self, LowerTransport};

/// Interval between keep-alives while playing.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Lower transport for media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// Interleaved in the RTSP TCP connection.
    #[default]
    Tcp,
    /// Separate UDP sockets.
    Udp,
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(TransportKind::Tcp),
            "udp" => Ok(TransportKind::Udp),
            other => Err(format!("unknown transport {other:?} (tcp or udp)")),
        }
    }
}

/// What went wrong talking to an RTSP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server refused or answered wrongly.
    #[error(transparent)]
    Rtsp(#[from] ClientError),
    /// The server sent bytes that are not RTSP.
    #[error("server sent malformed RTSP: {0}")]
    Framing(#[from] FramingError),
    /// Nothing arrived in time.
    #[error("{0}")]
    Timeout(String),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The URL or the stream description is unusable.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// An RTSP control connection during setup: request out, response in.
pub(crate) struct Connection {
    stream: TcpStream,
    reader: FrameReader,
    pub(crate) session: ClientSession,
    timeout: Duration,
    peer: SocketAddr,
}

impl Connection {
    pub(crate) async fn open(url: &str, timeout: Duration) -> Result<Self, Error> {
        let url = Url::parse(url).map_err(|e| {
            let shown = crate::client_auth::without_userinfo(url);
            Error::Invalid(format!("invalid URL {shown:?}: {e}"))
        })?;
        if url.scheme() != "rtsp" {
            let shown = crate::client_auth::without_userinfo(url.as_str());
            return Err(Error::Invalid(format!("{shown} is not an rtsp:// URL")));
        }
        let host = url.host_str().ok_or_else(|| {
            let shown = crate::client_auth::without_userinfo(url.as_str());
            Error::Invalid(format!("{shown} has no host"))
        })?;
        let addr = format!(
            "{}:{}",
            host.trim_start_matches('[').trim_end_matches(']'),
            url.port().unwrap_or(8554)
        );
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| Error::Timeout(format!("connecting to {addr} timed out")))?
            .map_err(io_err(format!(
                "cannot connect to RTSP server at {addr} (is it running?)"
            )))?;
        stream
            .set_nodelay(true)
            .map_err(io_err("setting TCP_NODELAY"))?;
        let peer = stream.peer_addr().map_err(io_err("reading peer address"))?;
        Ok(Connection {
            stream,
            reader: FrameReader::new(Limits::default()),
            session: ClientSession::new(url),
            timeout,
            peer,
        })
    }

    /// Sends `req` and reads its response; after a 401 the URL's credentials can answer, the
    /// request goes once more with them.
    pub(crate) async fn roundtrip(
        &mut self,
        mut req: Request<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, Error> {
        loop {
            let mut out = Vec::new();
            req.write(&mut out)
                .map_err(|e| Error::Invalid(format!("serializing request: {e}")))?;
            self.stream
                .write_all(&out)
                .await
                .map_err(io_err("sending RTSP request"))?;
            let response = tokio::time::timeout(self.timeout, self.read_response())
                .await
                .map_err(|_| {
                    Error::Timeout(format!(
                        "no RTSP response from {} in {:?}",
                        self.peer, self.timeout
                    ))
                })??;
            match self.session.check_response(&response)? {
                Some(again) => req = again,
                None => return Ok(response),
            }
        }
    }

    /// OPTIONS, then DESCRIBE: the description and its Content-Base, if the server sent one.
    pub(crate) async fn describe(&mut self) -> Result<(Response<Vec<u8>>, Option<String>), Error> {
        let req = self.session.options();
        self.roundtrip(req).await?;
        let req = self.session.describe();
        let resp = self.roundtrip(req).await?;
        let base = resp
            .header(&headers::CONTENT_BASE)
            .map(|v| v.as_str().to_string());
        Ok((resp, base))
    }

    /// The server's address.
    pub(crate) fn peer_ip(&self) -> IpAddr {
        self.peer.ip()
    }

    /// Splits the connection once setup is done: media and later requests go separately.
    pub(crate) fn into_parts(self) -> (OwnedReadHalf, OwnedWriteHalf, FrameReader, ClientSession) {
        let (read, write) = self.stream.into_split();
        (read, write, self.reader, self.session)
    }

    async fn read_response(&mut self) -> Result<Response<Vec<u8>>, Error> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(frame) = self.reader.next_frame()? {
                if let Frame::Response(resp) = frame {
                    return Ok(resp);
                }
            }
            let n = self
                .stream
                .read(&mut buf)
                .await
                .map_err(io_err("reading RTSP response"))?;
            if n == 0 {
                return Err(Error::Closed);
            }
            self.reader.push(&buf[..n]);
        }
    }
}

/// Where RTP goes, or comes from, after SETUP.
pub(crate) enum MediaPath {
    Tcp {
        rtp_channel: u8,
        rtcp_channel: u8,
    },
    Udp {
        rtp: UdpSocket,
        /// Shared with the task that reads the server's RTCP.
        rtcp: Arc<UdpSocket>,
        server_rtp: SocketAddr,
        server_rtcp: SocketAddr,
    },
}

/// Sets up the `index`th track (0: video) at `track`: over TCP on channels `2 × index` and
/// `2 × index + 1`, over UDP on a new pair of ports.
pub(crate) async fn setup_media(
    conn: &mut Connection,
    track: Url,
    index: u8,
    kind: TransportKind,
    record: bool,
) -> Result<MediaPath, Error> {
    match kind {
        TransportKind::Tcp => {
            let channels = (2 * index, 2 * index + 1);
            let lower = LowerTransport::Tcp {
                rtp_channel: channels.0,
                rtcp_channel: channels.1,
            };
            let req = conn.session.setup(track, &lower, record);
            let resp = conn.roundtrip(req).await?;
            let (rtp_channel, rtcp_channel) = reply_transports(&resp)
                .and_then(|t| transport::interleaved_channels(&t))
                .unwrap_or(channels);
            Ok(MediaPath::Tcp {
                rtp_channel,
                rtcp_channel,
            })
        }
        TransportKind::Udp => {
            let local_ip = conn
                .stream
                .local_addr()
                .map_err(io_err("reading local address"))?
                .ip();
            let (rtp, rtcp) = crate::udp::bind_pair(unspecified_like(local_ip), 0)
                .map_err(io_err("binding client UDP ports"))?;
            let rtp_port = rtp.local_addr().map_err(io_err("UDP address"))?.port();
            let lower = LowerTransport::Udp {
                rtp_port,
                rtcp_port: rtp_port + 1,
            };
            let req = conn.session.setup(track, &lower, record);
            let resp = conn.roundtrip(req).await?;
            let (a, b) = reply_transports(&resp)
                .and_then(|t| transport::server_ports(&t))
                .ok_or_else(|| Error::Invalid("SETUP reply has no server_port".into()))?;
            let ip = conn.peer.ip();
            Ok(MediaPath::Udp {
                rtp,
                rtcp: Arc::new(rtcp),
                server_rtp: SocketAddr::new(ip, a),
                server_rtcp: SocketAddr::new(ip, b),
            })
        }
    }
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

fn reply_transports(resp: &Response<Vec<u8>>) -> Option<headers::Transports> {
    headers::Transports::from_headers(resp).ok().flatten()
}

/// Publishes access units, and optionally one audio track, to an RTSP server
/// (ANNOUNCE/SETUP/RECORD).
pub struct RtspPublisher {
    writer: OwnedWriteHalf,
    media: MediaPath,
    sender: RtpSender,
    /// The audio track (`trackID=1`), if one was announced.
    audio: Option<(MediaPath, TrackSender)>,
    /// Fault injection: every Nth RTP packet is left out (see [`RtspPublisher::drop_every`]).
    drop_every: Option<u32>,
    packets: u64,
    out: Vec<u8>,
    drain: tokio::task::JoinHandle<()>,
    /// Reads the server's RTCP on UDP (over TCP, `drain` does).
    rtcp_reader: Option<tokio::task::JoinHandle<()>>,
    /// Counts the keyframe requests (RTCP PLI/FIR) the server sent.
    keyframe_requests: Arc<watch::Sender<u64>>,
    session: ClientSession,
}

impl RtspPublisher {
    /// Connects and starts recording on `url`, describing the stream with `sps` and `pps` and,
    /// when given, an `audio` track beside the video (sent with [`RtspPublisher::send_audio`]).
    pub async fn connect(
        url: &str,
        kind: TransportKind,
        sps: &[u8],
        pps: &[u8],
        audio: Option<&TrackDescription>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let mut conn = Connection::open(url, timeout).await?;
        let req = conn.session.options();
        conn.roundtrip(req).await?;
        let sdp = offer(&OfferParams {
            codec: VideoCodec::H264,
            vps: &[],
            sps,
            pps,
            payload_type: PAYLOAD_TYPE,
            origin_address: conn.peer.ip().to_string(),
            track_control: "trackID=0",
            others: audio.map(std::slice::from_ref).unwrap_or_default(),
        });
        let req = conn.session.announce(sdp);
        conn.roundtrip(req).await?;
        let track = track_url(conn.session.url(), None, Some("trackID=0"))?;
        let media = setup_media(&mut conn, track, 0, kind, true).await?;
        let audio = match audio {
            Some(description) => {
                let track = track_url(conn.session.url(), None, Some("trackID=1"))?;
                let path = setup_media(&mut conn, track, 1, kind, true).await?;
                Some((path, TrackSender::new(description.payload_type)))
            }
            None => None,
        };
        let req = conn.session.record();
        conn.roundtrip(req).await?;
        let (read, writer, reader, session) = conn.into_parts();
        let keyframe_requests = Arc::new(watch::Sender::new(0));
        let (rtcp_channel, rtcp_reader) = match &media {
            MediaPath::Tcp { rtcp_channel, .. } => (Some(*rtcp_channel), None),
            MediaPath::Udp {
                rtcp, server_rtcp, ..
            } => {
                let task = read_rtcp(rtcp.clone(), server_rtcp.ip(), keyframe_requests.clone());
                (None, Some(tokio::spawn(task)))
            }
        };
        let drain = drain_control(read, reader, rtcp_channel, keyframe_requests.clone());
        Ok(RtspPublisher {
            writer,
            media,
            sender: RtpSender::new(),
            audio,
            drop_every: None,
            packets: 0,
            out: Vec::with_capacity(256 * 1024),
            drain: tokio::spawn(drain),
            rtcp_reader,
            keyframe_requests,
            session,
        })
    }

    /// Changes each time the server asks for a keyframe (an RTCP PLI or FIR: a viewer lost a
    /// picture or needs one to start); the caller's encoder should make its next picture an
    /// IDR picture.
    pub fn keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframe_requests.subscribe()
    }

    /// Whether the server has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.drain.is_finished()
    }

    /// Fault injection for tests: leaves out every `n`th RTP packet (sequence numbers still
    /// count it, so the server sees the loss it would on a lossy network).
    pub fn drop_every(&mut self, n: Option<u32>) {
        self.drop_every = n.filter(|n| *n > 0);
    }

    /// Whether the next RTP packet is one to leave out.
    fn drops_next(&mut self) -> bool {
        self.packets += 1;
        self.drop_every
            .is_some_and(|n| self.packets.is_multiple_of(u64::from(n)))
    }

    /// Sends one access unit as RTP (and an RTCP sender report once a second).
    pub async fn send(&mut self, au: &AccessUnit) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let (rtp_packets, sender_report) = {
            let packets = self.sender.packetize(au, unix_now_ns(), Instant::now());
            (packets.rtp.to_vec(), packets.rtcp)
        };
        let rtp_packets: Vec<Bytes> = rtp_packets
            .into_iter()
            .filter(|_| !self.drops_next())
            .collect();
        let out = &mut self.out;
        send_media(
            &mut self.writer,
            out,
            &self.media,
            &rtp_packets,
            sender_report,
        )
        .await
    }

    /// Sends one payload of the audio track (pts in its clock rate; its first sample captured
    /// at Unix time `capture_unix_ns`, which its sender reports map to), and an RTCP sender
    /// report once a second. Nothing happens without an audio track.
    pub async fn send_audio(
        &mut self,
        payload: Bytes,
        pts: u64,
        capture_unix_ns: u64,
    ) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let Some((media, sender)) = &mut self.audio else {
            return Ok(());
        };
        let packet = TrackPacket {
            track: 1,
            pts,
            payload,
            marker: true,
            capture_unix_ns: Some(capture_unix_ns),
        };
        let mut rtp = Vec::with_capacity(packet.payload.len() + 16);
        let report = sender.write_captured(&packet, capture_unix_ns, Instant::now(), &mut rtp);
        let rtp = [Bytes::from(rtp)];
        send_media(&mut self.writer, &mut self.out, media, &rtp, report).await
    }

    /// Sends TEARDOWN and closes the connection.
    pub async fn close(mut self) {
        let req = self.session.teardown();
        let _ = send_request(&mut self.writer, &req).await;
        let _ = self.writer.shutdown().await;
        self.drain.abort();
    }
}

impl Drop for RtspPublisher {
    fn drop(&mut self) {
        self.drain.abort();
        if let Some(task) = &self.rtcp_reader {
            task.abort();
        }
    }
}

/// Sends a track's RTP packets and, when due, its sender report: interleaved on the
/// connection (built in `out`) or to the server's UDP ports.
async fn send_media(
    writer: &mut OwnedWriteHalf,
    out: &mut Vec<u8>,
    media: &MediaPath,
    rtp_packets: &[Bytes],
    sender_report: Option<Vec<u8>>,
) -> Result<(), Error> {
    match media {
        MediaPath::Tcp {
            rtp_channel,
            rtcp_channel,
        } => {
            out.clear();
            for p in rtp_packets {
                push_interleaved(out, *rtp_channel, p);
            }
            if let Some(sr) = &sender_report {
                push_interleaved(out, *rtcp_channel, sr);
            }
            writer
                .write_all(out)
                .await
                .map_err(io_err("sending RTP over TCP"))
        }
        MediaPath::Udp {
            rtp,
            rtcp,
            server_rtp,
            server_rtcp,
        } => {
            for p in rtp_packets {
                rtp.send_to(p, *server_rtp)
                    .await
                    .map_err(io_err("sending RTP over UDP"))?;
            }
            if let Some(sr) = &sender_report {
                rtcp.send_to(sr, *server_rtcp)
                    .await
                    .map_err(io_err("sending RTCP"))?;
            }
            Ok(())
        }
    }
}

/// Counts a keyframe request if `rtcp` (a compound packet from the server) holds one.
fn note_keyframe_request(rtcp: &[u8], requests: &watch::Sender<u64>) {
    if livefeed_media::rtcp::requests_keyframe(rtcp).unwrap_or(false) {
        requests.send_modify(|n| *n += 1);
    }
}

/// Reads what a server sends on a recording connection: RTCP on `rtcp_channel` is checked for
/// keyframe requests, the rest is discarded. Ends when the server closes.
async fn drain_control(
    mut read: OwnedReadHalf,
    mut reader: FrameReader,
    rtcp_channel: Option<u8>,
    keyframe_requests: Arc<watch::Sender<u64>>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                reader.push(&buf[..n]);
                loop {
                    match reader.next_frame() {
                        Ok(Some(Frame::Interleaved { channel, payload }))
                            if Some(channel) == rtcp_channel =>
                        {
                            note_keyframe_request(&payload, &keyframe_requests);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// Reads the server's RTCP on a publisher's UDP RTCP socket for keyframe requests; datagrams
/// from other addresses are ignored.
async fn read_rtcp(socket: Arc<UdpSocket>, server: IpAddr, requests: Arc<watch::Sender<u64>>) {
    let mut buf = vec![0u8; 1500];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) if from.ip() == server => note_keyframe_request(&buf[..n], &requests),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// One access unit as a player received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The access unit (pts counted from the first one received).
    pub au: AccessUnit,
    /// When its last packet arrived, Unix ns.
    pub received_unix_ns: u64,
    /// Packets were lost before it.
    pub lost_before: bool,
}

/// One audio payload as a player received it.
#[derive(Debug, Clone)]
pub struct AudioReceived {
    /// The RTP payload (an Opus packet).
    pub payload: Bytes,
    /// Its RTP timestamp, unwrapped, counted from the first one received (48 kHz).
    pub pts: u64,
    /// Capture time of its first sample, Unix ns, from the server's sender reports.
    pub capture_unix_ns: Option<u64>,
    /// When it arrived, Unix ns.
    pub received_unix_ns: u64,
}

/// What a player receives: a video access unit or an audio payload.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A complete access unit.
    Video(Received),
    /// One payload of the audio track.
    Audio(AudioReceived),
}

/// The Opus track a player set up beside the video.
struct AudioIn {
    media: MediaPath,
    timeline: PacketTimeline,
    clock: CaptureClock,
}

/// What one read from the network was.
enum Packet {
    Video(Bytes),
    Audio(Bytes),
    AudioRtcp(Bytes),
}

/// Plays a stream from an RTSP server (DESCRIBE/SETUP/PLAY): its video and, when asked, its
/// Opus audio track.
pub struct RtspPlayer {
    track: VideoTrack,
    audio: Option<AudioIn>,
    control_read: OwnedReadHalf,
    control_reader: FrameReader,
    writer: OwnedWriteHalf,
    media: MediaPath,
    session: ClientSession,
    depacketizer: VideoDepacketizer,
    first_ts: Option<u64>,
    pending: VecDeque<Received>,
    timeout: Duration,
    buf: Vec<u8>,
}

impl RtspPlayer {
    /// Connects and starts playing `url`; with `audio`, also the stream's first Opus track
    /// (48 kHz), if it has one.
    pub async fn connect(
        url: &str,
        kind: TransportKind,
        audio: bool,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let mut conn = Connection::open(url, timeout).await?;
        let (resp, base) = conn.describe().await?;
        let track = parse_h264_track(resp.body())
            .map_err(|e| Error::Invalid(format!("stream description: {e}")))?;
        let opus = audio
            .then(|| parse_announced(resp.body()).ok())
            .flatten()
            .and_then(|stream| {
                stream
                    .others
                    .into_iter()
                    .find(|t| t.codec == Codec::Opus && t.clock_rate == 48_000)
            });
        let track_url = track_url(
            conn.session.url(),
            base.as_deref(),
            track.control.as_deref(),
        )?;
        let media = setup_media(&mut conn, track_url, 0, kind, false).await?;
        let audio = match opus {
            Some(opus) => {
                let url = crate::client_session::track_url(
                    conn.session.url(),
                    base.as_deref(),
                    opus.control.as_deref(),
                )?;
                let media = setup_media(&mut conn, url, 1, kind, false).await?;
                Some(AudioIn {
                    media,
                    timeline: PacketTimeline::new(opus.payload_type),
                    clock: CaptureClock::new(opus.clock_rate),
                })
            }
            None => None,
        };
        let req = conn.session.play();
        conn.roundtrip(req).await?;
        let (control_read, writer, reader, session) = conn.into_parts();
        Ok(RtspPlayer {
            track,
            audio,
            control_read,
            control_reader: reader,
            writer,
            media,
            session,
            depacketizer: VideoDepacketizer::new(VideoCodec::H264),
            first_ts: None,
            pending: VecDeque::new(),
            timeout,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// The video track as the server described it.
    pub fn track(&self) -> &VideoTrack {
        &self.track
    }

    /// Whether an audio track was set up.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Waits for the next complete access unit or audio payload. Errors when the server closes
    /// the stream or nothing arrives for the timeout given at connect.
    pub async fn next(&mut self) -> Result<Incoming, Error> {
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_INTERVAL,
            KEEPALIVE_INTERVAL,
        );
        if let Some(received) = self.pending.pop_front() {
            return Ok(Incoming::Video(received));
        }
        loop {
            let packet = tokio::select! {
                p = tokio::time::timeout(self.timeout, self.next_rtp()) => {
                    p.map_err(|_| Error::Timeout(format!("no media from the server for {:?}", self.timeout)))??
                }
                _ = keepalive.tick() => {
                    self.send_keepalive().await?;
                    continue;
                }
            };
            match packet {
                Packet::Video(packet) => self.depacketize(&packet),
                Packet::Audio(packet) => {
                    if let Some(audio) = self.audio_payload(&packet) {
                        return Ok(Incoming::Audio(audio));
                    }
                }
                Packet::AudioRtcp(packet) => {
                    if let Some(audio) = self.audio.as_mut() {
                        if let Err(e) = audio.clock.on_rtcp(&packet) {
                            tracing::debug!(error = %e, "dropping audio RTCP");
                        }
                    }
                }
            }
            if let Some(received) = self.pending.pop_front() {
                return Ok(Incoming::Video(received));
            }
        }
    }

    /// One audio RTP packet as an [`AudioReceived`]; `None` for a late, duplicate or bad one.
    fn audio_payload(&mut self, packet: &[u8]) -> Option<AudioReceived> {
        let audio = self.audio.as_mut()?;
        let timed = match audio.timeline.push(packet) {
            Ok(timed) => timed?,
            Err(e) => {
                tracing::debug!(error = %e, "dropping audio RTP packet");
                return None;
            }
        };
        Some(AudioReceived {
            capture_unix_ns: audio.clock.capture_unix_ns(timed.rtp_timestamp),
            payload: timed.payload,
            pts: timed.ext_timestamp,
            received_unix_ns: unix_now_ns(),
        })
    }

    /// Feeds one packet; finished access units go to `pending`.
    fn depacketize(&mut self, packet: &[u8]) {
        let mut next = match self.depacketizer.push(packet) {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!(error = %e, "dropping RTP packet");
                // An access unit finished before the bad packet is still waiting.
                self.depacketizer.pull()
            }
        };
        while let Some(out) = next {
            let first = *self.first_ts.get_or_insert(out.ext_timestamp);
            let capture = sei::find_stamp(&out.nals);
            self.pending.push_back(Received {
                au: AccessUnit {
                    codec: livefeed_media::VideoCodec::H264,
                    nals: out.nals,
                    pts: out.ext_timestamp.saturating_sub(first),
                    keyframe: out.keyframe,
                    capture,
                },
                received_unix_ns: unix_now_ns(),
                lost_before: out.lost_packets_before,
            });
            next = self.depacketizer.pull();
        }
    }

    /// The next media packet: video RTP, audio RTP or audio RTCP, from the TCP connection or
    /// the UDP sockets.
    async fn next_rtp(&mut self) -> Result<Packet, Error> {
        let audio_channels = match self.audio.as_ref().map(|a| &a.media) {
            Some(MediaPath::Tcp {
                rtp_channel,
                rtcp_channel,
            }) => Some((*rtp_channel, *rtcp_channel)),
            _ => None,
        };
        loop {
            if let MediaPath::Tcp { rtp_channel, .. } = self.media {
                while let Some(frame) = self.control_reader.next_frame()? {
                    if let Frame::Interleaved { channel, payload } = frame {
                        if channel == rtp_channel {
                            return Ok(Packet::Video(payload));
                        }
                        match audio_channels {
                            Some((rtp, _)) if channel == rtp => return Ok(Packet::Audio(payload)),
                            Some((_, rtcp)) if channel == rtcp => {
                                return Ok(Packet::AudioRtcp(payload))
                            }
                            _ => {}
                        }
                    }
                }
            }
            match &self.media {
                MediaPath::Tcp { .. } => self.read_control().await?,
                MediaPath::Udp {
                    rtp, server_rtp, ..
                } => {
                    let server_ip = server_rtp.ip();
                    let (audio_rtp, audio_rtcp) = match self.audio.as_ref().map(|a| &a.media) {
                        Some(MediaPath::Udp { rtp, rtcp, .. }) => (Some(rtp), Some(&**rtcp)),
                        _ => (None, None),
                    };
                    let mut audio_buf = [0u8; 1500];
                    let mut rtcp_buf = [0u8; 1500];
                    tokio::select! {
                        r = rtp.recv_from(&mut self.buf) => {
                            let (n, from) = r.map_err(io_err("receiving RTP over UDP"))?;
                            if from.ip() == server_ip {
                                return Ok(Packet::Video(Bytes::copy_from_slice(&self.buf[..n])));
                            }
                        }
                        Some(r) = recv_if(audio_rtp, &mut audio_buf) => {
                            let (n, from) = r.map_err(io_err("receiving audio RTP over UDP"))?;
                            if from.ip() == server_ip {
                                return Ok(Packet::Audio(Bytes::copy_from_slice(&audio_buf[..n])));
                            }
                        }
                        Some(r) = recv_if(audio_rtcp, &mut rtcp_buf) => {
                            let (n, from) = r.map_err(io_err("receiving audio RTCP over UDP"))?;
                            if from.ip() == server_ip {
                                return Ok(Packet::AudioRtcp(Bytes::copy_from_slice(&rtcp_buf[..n])));
                            }
                        }
                        r = read_into(&mut self.control_read, &mut self.control_reader) => {
                            r?;
                            // Responses to keep-alives and server requests are not media.
                            while self.control_reader.next_frame()?.is_some() {}
                        }
                    }
                }
            }
        }
    }

    async fn read_control(&mut self) -> Result<(), Error> {
        read_into(&mut self.control_read, &mut self.control_reader).await
    }

    async fn send_keepalive(&mut self) -> Result<(), Error> {
        let req = self.session.keepalive();
        send_request(&mut self.writer, &req).await
    }

    /// Sends TEARDOWN and closes the connection.
    pub async fn close(mut self) {
        let req = self.session.teardown();
        let _ = send_request(&mut self.writer, &req).await;
        let _ = self.writer.shutdown().await;
    }
}

/// A datagram from `socket`, or never when there is none.
async fn recv_if(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> Option<std::io::Result<(usize, SocketAddr)>> {
    match socket {
        Some(socket) => Some(socket.recv_from(buf).await),
        None => std::future::pending().await,
    }
}

/// Writes a request without waiting for its response (keep-alive, teardown).
pub(crate) async fn send_request(
    writer: &mut OwnedWriteHalf,
    req: &Request<Vec<u8>>,
) -> Result<(), Error> {
    let mut out = Vec::with_capacity(256);
    req.write(&mut out)
        .map_err(|e| Error::Invalid(format!("serializing request: {e}")))?;
    writer
        .write_all(&out)
        .await
        .map_err(io_err("sending RTSP request"))
}

async fn read_into(read: &mut OwnedReadHalf, reader: &mut FrameReader) -> Result<(), Error> {
    let mut buf = [0u8; 16 * 1024];
    let n = read
        .read(&mut buf)
        .await
        .map_err(io_err("reading from the RTSP connection"))?;
    if n == 0 {
        return Err(Error::Closed);
    }
    reader.push(&buf[..n]);
    Ok(())
}
