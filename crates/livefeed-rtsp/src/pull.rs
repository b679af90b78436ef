//! Pulls a stream from an RTSP server (an IP camera, another livefeed) for relaying: OPTIONS,
//! DESCRIBE, SETUP of every track the description has, PLAY; then every RTP and RTCP packet is
//! handed out as it came, tagged with its track. Depacketizing is the caller's: the server's
//! ingest treats a pulled stream exactly like a pushed one.
//!
//! Credentials in the URL (`rtsp://user:pass@host/path`) answer a Basic or Digest challenge.
//! Over UDP, packets from any address but the server's are dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livefeed_media::sdp::{parse_announced, AnnouncedStream};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::{
    io_err, send_request, setup_media, Connection, Error, MediaPath, TransportKind,
    KEEPALIVE_INTERVAL,
};
use crate::client_session::{track_url, ClientSession};
use crate::framing::{Frame, FrameReader};

/// Packets queued between the socket readers and [`RtspPull::next`].
const QUEUE: usize = 1024;

/// Whether a pulled packet is RTP or RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// Media.
    Rtp,
    /// Control (sender reports).
    Rtcp,
}

/// One packet from the server.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The track: 0 for the video, then the description's other tracks in order (as
    /// [`AnnouncedStream::others`], track `i + 1`).
    pub track: usize,
    /// RTP or RTCP.
    pub kind: PacketKind,
    /// The packet.
    pub payload: Bytes,
}

/// A stream being pulled.
pub struct RtspPull {
    stream: AnnouncedStream,
    packets: mpsc::Receiver<Result<Pulled, Error>>,
    /// Asks the task that owns the connection's write half to tear the session down.
    teardown: Option<oneshot::Sender<oneshot::Sender<()>>>,
    /// The socket readers and the keep-alive writer.
    tasks: Vec<JoinHandle<()>>,
    timeout: Duration,
    /// When the last packet came (or PLAY was answered): silence is counted from it, so a
    /// caller may drop [`RtspPull::next`] and call it again (it is cancel-safe).
    last_packet: tokio::time::Instant,
}

impl RtspPull {
    /// Connects to `url` and starts playing every track of it over `kind`. `timeout` bounds
    /// each exchange and, later, the silence [`RtspPull::next`] accepts.
    pub async fn connect(url: &str, kind: TransportKind, timeout: Duration) -> Result<Self, Error> {
        let mut conn = Connection::open(url, timeout).await?;
        let (resp, base) = conn.describe().await?;
        let stream = parse_announced(resp.body())
            .map_err(|e| Error::Invalid(format!("stream description: {e}")))?;
        let mut media = Vec::new();
        for (index, control) in stream.controls().into_iter().enumerate() {
            let track = track_url(conn.session.url(), base.as_deref(), control)?;
            let index = u8::try_from(index)
                .map_err(|_| Error::Invalid("too many tracks in the description".into()))?;
            media.push(setup_media(&mut conn, track, index, kind, false).await?);
        }
        let req = conn.session.play();
        conn.roundtrip(req).await?;
        let server = conn.peer_ip();
        let (control_read, writer, control_reader, session) = conn.into_parts();
        let (tx, packets) = mpsc::channel(QUEUE);
        let mut tasks = spawn_readers(media, control_read, control_reader, server, tx);
        let (teardown, asked) = oneshot::channel();
        tasks.push(tokio::spawn(keep_alive(writer, session, asked)));
        Ok(RtspPull {
            stream,
            packets,
            teardown: Some(teardown),
            tasks,
            timeout,
            last_packet: tokio::time::Instant::now(),
        })
    }

    /// The stream as the server described it.
    pub fn stream(&self) -> &AnnouncedStream {
        &self.stream
    }

    /// The next packet. Errors when the server closes the connection, sends something that is
    /// not RTSP, or sends no packet for the timeout given at connect.
    pub async fn next(&mut self) -> Result<Pulled, Error> {
        let silent = || Error::Timeout(format!("no media from the server for {:?}", self.timeout));
        let deadline = self
            .last_packet
            .checked_add(self.timeout)
            .ok_or_else(silent)?;
        match tokio::time::timeout_at(deadline, self.packets.recv()).await {
            Err(_) => Err(silent()),
            Ok(None) => Err(Error::Closed),
            Ok(Some(packet)) => {
                self.last_packet = tokio::time::Instant::now();
                packet
            }
        }
    }

    /// Sends TEARDOWN (waiting at most the timeout for it to be written) and closes the
    /// connection.
    pub async fn close(mut self) {
        let Some(teardown) = self.teardown.take() else {
            return;
        };
        let (done, written) = oneshot::channel();
        if teardown.send(done).is_ok() {
            let _ = tokio::time::timeout(self.timeout, written).await;
        }
    }
}

impl Drop for RtspPull {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Owns the connection's write half: a keep-alive every [`KEEPALIVE_INTERVAL`] (a request
/// written whole, whatever the caller does meanwhile), and TEARDOWN when asked.
async fn keep_alive(
    mut writer: OwnedWriteHalf,
    mut session: ClientSession,
    mut asked: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + KEEPALIVE_INTERVAL,
        KEEPALIVE_INTERVAL,
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let req = session.keepalive();
                if send_request(&mut writer, &req).await.is_err() {
                    return; // the readers see the connection end
                }
            }
            done = &mut asked => {
                let req = session.teardown();
                let _ = send_request(&mut writer, &req).await;
                if let Ok(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}

/// Starts the tasks that read the control connection (interleaved media, responses) and, over
/// UDP, each track's two sockets.
fn spawn_readers(
    media: Vec<MediaPath>,
    control_read: OwnedReadHalf,
    control_reader: FrameReader,
    server: IpAddr,
    tx: mpsc::Sender<Result<Pulled, Error>>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut channels = Vec::new();
    for (track, path) in media.into_iter().enumerate() {
        match path {
            MediaPath::Tcp {
                rtp_channel,
                rtcp_channel,
            } => {
                channels.push((rtp_channel, track, PacketKind::Rtp));
                channels.push((rtcp_channel, track, PacketKind::Rtcp));
            }
            MediaPath::Udp { rtp, rtcp, .. } => {
                let rtp = Arc::new(rtp);
                for (socket, kind) in [(rtp, PacketKind::Rtp), (rtcp, PacketKind::Rtcp)] {
                    let task = read_udp(socket, server, track, kind, tx.clone());
                    tasks.push(tokio::spawn(task));
                }
            }
        }
    }
    tasks.push(tokio::spawn(read_control(
        control_read,
        control_reader,
        channels,
        tx,
    )));
    tasks
}

/// Reads the control connection: interleaved frames on a known channel go out as packets,
/// responses (to keep-alives) and unknown channels are dropped. Ends with the error that ended
/// the connection.
async fn read_control(
    mut read: OwnedReadHalf,
    mut reader: FrameReader,
    channels: Vec<(u8, usize, PacketKind)>,
    tx: mpsc::Sender<Result<Pulled, Error>>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            match reader.next_frame() {
                Ok(Some(Frame::Interleaved { channel, payload })) => {
                    let Some(&(_, track, kind)) = channels.iter().find(|c| c.0 == channel) else {
                        continue;
                    };
                    let packet = Pulled {
                        track,
                        kind,
                        payload,
                    };
                    if tx.send(Ok(packet)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
        let end = match read.read(&mut buf).await {
            Ok(0) => Error::Closed,
            Err(e) => io_err("reading from the RTSP connection")(e),
            Ok(n) => {
                reader.push(&buf[..n]);
                continue;
            }
        };
        let _ = tx.send(Err(end)).await;
        return;
    }
}

/// Reads one UDP socket of a track; datagrams from other hosts than the server are dropped.
async fn read_udp(
    socket: Arc<UdpSocket>,
    server: IpAddr,
    track: usize,
    kind: PacketKind,
    tx: mpsc::Sender<Result<Pulled, Error>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) if from.ip() == server => {
                let packet = Pulled {
                    track,
                    kind,
                    payload: Bytes::copy_from_slice(&buf[..n]),
                };
                if tx.send(Ok(packet)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(io_err("receiving over UDP")(e))).await;
                return;
            }
        }
    }
}
