//! An RTSP reader's media out. Packets are built once per path, not per reader (see
//! [`livefeed_rtsp::fanout`] and [`crate::hub::Hub::subscribe_rtsp`]): a reader only chooses
//! which frames to send and where.
//!
//! Contract:
//! - TCP: each frame's shared interleaved bytes go out as they are (rewritten only for a reader
//!   that chose other channels). A live frame is written by the publisher's task itself when
//!   nothing waits ahead of it on the connection ([`DirectPlay`]); if the socket takes only part
//!   of it, the writer task sends the rest before anything else. Otherwise the frame is queued,
//!   and the connection's writer task sends whatever is queued, up to [`MAX_BATCH_BYTES`], in
//!   one vectored write, returning to its commands (responses) between batches. Bytes never
//!   interleave: the publisher writes only while the writer task has declared the connection
//!   idle ([`TcpOut`]).
//! - UDP: each frame's packets go to the reader's RTP port in as few system calls as the kernel
//!   allows: a run of equal-size packets (the last may be shorter) is one `sendmsg` with UDP
//!   segmentation offload where the kernel has it ([`GsoRun`]), else one per packet; sender
//!   reports go to its RTCP port; its receiver reports are read and discarded.
//! - A frame of a track the reader did not set up is skipped.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::hub::{Delivery, DirectSink, Subscription};
use crate::measure::metrics::ServerMetrics;
use livefeed_rtsp::fanout::RtpFrame;

/// Most bytes of queued frames written to a TCP reader in one go.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// A reader's media out: its subscription and where each set-up track goes.
pub struct Play {
    pub sub: Subscription,
    /// Tells this play from the connection's earlier ones (see [`TcpOut`]).
    pub id: u64,
    /// Set-up tracks (0 = video) and their destinations.
    outputs: Vec<(usize, Destination)>,
    /// The TCP write being built, and the frames in it (kept to reuse their allocations).
    batch: Batch,
    sent: Vec<Delivery>,
}

/// Where a track's packets go.
pub enum Destination {
    /// Interleaved on the RTSP connection on these RTP and RTCP channels.
    Interleaved(u8, u8),
    /// To the reader's UDP ports.
    Udp(Box<UdpOut>),
}

/// A track's UDP sockets and the reader's ports.
pub struct UdpOut {
    rtp: UdpSocket,
    /// Segmentation offload on `rtp` (one send for many datagrams); `None` where the socket
    /// could not be set up for it: one `send_to` per packet.
    gso: Option<quinn_udp::UdpSocketState>,
    rtcp: Arc<UdpSocket>,
    rtp_to: SocketAddr,
    rtcp_to: SocketAddr,
}

impl UdpOut {
    /// Sends RTP from `rtp` to `rtp_to` and sender reports from `rtcp` to `rtcp_to`.
    pub fn new(
        (rtp, rtp_to): (UdpSocket, SocketAddr),
        (rtcp, rtcp_to): (Arc<UdpSocket>, SocketAddr),
    ) -> Self {
        let gso = quinn_udp::UdpSocketState::new((&rtp).into())
            .inspect_err(|e| debug!(error = %e, "no UDP segmentation offload: one send per packet"))
            .ok();
        UdpOut {
            rtp,
            gso,
            rtcp,
            rtp_to,
            rtcp_to,
        }
    }

    /// Sends `frame`'s RTP packets, one run of equal-size packets per system call where the
    /// kernel segments them, then its sender report. A packet too big for the route is left
    /// out, as a lost one.
    async fn send(&self, frame: &RtpFrame, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let mut run = GsoRun::default();
        let max_segments = self.gso.as_ref().map_or(1, |g| g.max_gso_segments());
        buf.clear();
        for packet in frame.rtp_packets() {
            if !run.accepts(packet.len(), max_segments) {
                self.send_run(&run, buf).await?;
                run = GsoRun::default();
                buf.clear();
            }
            run.push(packet.len());
            buf.extend_from_slice(packet);
        }
        self.send_run(&run, buf).await?;
        if let Some(sr) = frame.rtcp_packet() {
            self.rtcp.send_to(sr, self.rtcp_to).await?;
        }
        Ok(())
    }

    /// Sends the packets of `run`, laid end to end in `bytes`.
    async fn send_run(&self, run: &GsoRun, bytes: &[u8]) -> std::io::Result<()> {
        if run.count == 0 {
            return Ok(());
        }
        let sent = self
            .transmit(bytes, (run.count > 1).then_some(run.segment))
            .await;
        match sent {
            Err(e) if run.count == 1 && quinn_udp::is_msg_size_err(&e) => Ok(()),
            // The kernel refused the offload (quinn-udp then stops offering it), or one of
            // the packets is too big for the route: one at a time.
            Err(_) if run.count > 1 => {
                for packet in bytes.chunks(run.segment) {
                    match self.transmit(packet, None).await {
                        Err(e) if !quinn_udp::is_msg_size_err(&e) => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            }
            sent => sent,
        }
    }

    async fn transmit(&self, contents: &[u8], segment_size: Option<usize>) -> std::io::Result<()> {
        let Some(gso) = &self.gso else {
            return self.rtp.send_to(contents, self.rtp_to).await.map(drop);
        };
        let transmit = quinn_udp::Transmit {
            destination: self.rtp_to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        self.rtp
            .async_io(tokio::io::Interest::WRITABLE, || {
                gso.try_send((&self.rtp).into(), &transmit)
            })
            .await
    }
}

/// Packets that can go out in one segmentation-offload send: all of the same size but the
/// last, which may be shorter, at most the kernel's segment count and 64 KB in all.
#[derive(Debug, Default)]
struct GsoRun {
    /// The size of every packet but the last.
    segment: usize,
    count: usize,
    bytes: usize,
    /// The last packet was shorter than `segment`: nothing more can follow.
    closed: bool,
}

/// The most bytes one segmentation-offload send carries: a cap chosen below a UDP datagram's
/// payload limit (65 507 bytes over IPv4).
const MAX_GSO_BYTES: usize = 65_000;

impl GsoRun {
    /// Whether a packet of `len` bytes can join this run (always, when it is empty).
    fn accepts(&self, len: usize, max_segments: usize) -> bool {
        self.count == 0
            || (!self.closed
                && len <= self.segment
                && self.count < max_segments
                && self.bytes + len <= MAX_GSO_BYTES)
    }

    fn push(&mut self, len: usize) {
        if self.count == 0 {
            self.segment = len;
        }
        self.closed = len < self.segment;
        self.count += 1;
        self.bytes += len;
    }
}

impl Play {
    /// A reader of `sub` sending each set-up track (0 = video) to its destination.
    pub fn new(sub: Subscription, id: u64, outputs: Vec<(usize, Destination)>) -> Self {
        Play {
            sub,
            id,
            outputs,
            batch: Batch::default(),
            sent: Vec::new(),
        }
    }

    /// The destination of `delivery`'s track, if the reader set it up.
    fn destination(&self, delivery: &Delivery) -> Option<&Destination> {
        let track = delivery.frame.rtp()?.track();
        self.outputs
            .iter()
            .find(|(t, _)| *t == track)
            .map(|(_, d)| d)
    }

    /// The interleaved bytes of `delivery` for this reader (`None` when its track is not set
    /// up here).
    fn interleaved(&self, delivery: &Delivery) -> Option<Bytes> {
        let Some(Destination::Interleaved(rtp, rtcp)) = self.destination(delivery) else {
            return None;
        };
        delivery
            .frame
            .rtp()
            .map(|frame| frame.interleaved_on((*rtp, *rtcp)))
    }
}

/// An RTSP connection's write half, shared by its writer task (responses, queued media) and,
/// while the connection plays, by the path's publisher ([`DirectPlay`]).
///
/// The writer task closes the connection to the publisher before it writes anything, and
/// reopens it, to one play, only once it has written everything queued for it
/// ([`TcpOut::reopen`]); the publisher writes only while it is open to its play, under the
/// same lock, and closes it when the socket does not take a frame whole.
pub struct TcpOut {
    socket: OwnedWriteHalf,
    state: Mutex<OutState>,
    /// Wakes the writer task when the publisher left it the rest of a frame.
    wake: Notify,
}

#[derive(Default)]
struct OutState {
    /// The play whose publisher may write: nothing is queued for it or being written by the
    /// writer task.
    open_to: Option<u64>,
    /// The rest of a frame the publisher wrote only in part, to go out before anything else.
    rest: Option<(Bytes, Delivery)>,
}

impl TcpOut {
    /// A connection's write half, closed to the publisher.
    pub fn new(socket: OwnedWriteHalf) -> Self {
        TcpOut {
            socket,
            state: Mutex::new(OutState::default()),
            wake: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the publisher writing (before the writer task writes itself), and hands over the
    /// rest of a frame it wrote in part, which must go out before anything else.
    pub fn close(&self) -> Option<(Bytes, Delivery)> {
        let mut state = self.state();
        state.open_to = None;
        state.rest.take()
    }

    /// Closes the connection to the publisher (see [`TcpOut::close`]) and sends the rest of a
    /// frame it wrote in part, recording its egress on `path` (the playing reader's).
    pub async fn close_and_finish(
        &self,
        path: Option<&str>,
        metrics: &ServerMetrics,
        timeout: Duration,
    ) -> Result<(), String> {
        let Some((mut rest, delivery)) = self.close() else {
            return Ok(());
        };
        write_all(self, &mut rest, timeout).await?;
        if let Some(path) = path {
            record_egress(metrics, path, &delivery);
        }
        Ok(())
    }

    /// Resolves when the publisher left the rest of a frame to send (or, harmlessly, for a
    /// notice left from an earlier one already sent).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The next frame queued for `play`, or `None` after opening the connection to its
    /// publisher because nothing is left. Called while the connection is closed, after
    /// [`TcpOut::close_and_finish`]: no rest of a frame can be pending then.
    pub fn reopen(&self, play: &mut Play) -> Option<Delivery> {
        let mut state = self.state();
        // Under the lock: the publisher queues only under it, so an empty queue stays empty
        // until it sees the connection open.
        let next = play.sub.try_recv();
        if next.is_none() {
            state.open_to = Some(play.id);
        }
        next
    }

    /// Shuts the write direction down (the reader sees the end of the stream).
    pub fn shutdown(&self) {
        let socket: &tokio::net::TcpStream = self.socket.as_ref();
        let _ = socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Write);
    }
}

/// A TCP reader's [`DirectSink`]: writes a live frame from the publisher's task when the
/// connection is open to it (see [`TcpOut`]) and the socket takes it whole or in part.
pub struct DirectPlay {
    pub out: Arc<TcpOut>,
    /// The [`Play::id`] of the reader.
    pub id: u64,
    /// Set-up tracks (0 = video) and their interleaved channels (RTP, RTCP).
    pub channels: Vec<(usize, (u8, u8))>,
    pub path: String,
    pub metrics: Arc<ServerMetrics>,
}

impl DirectSink for DirectPlay {
    fn deliver(
        &self,
        delivery: Delivery,
        queue: &mpsc::Sender<Delivery>,
    ) -> Result<(), mpsc::error::TrySendError<Delivery>> {
        let Some(frame) = delivery.frame.rtp() else {
            return Ok(());
        };
        let Some(&(_, channels)) = self.channels.iter().find(|(t, _)| *t == frame.track()) else {
            return Ok(()); // a track this reader did not set up
        };
        let mut state = self.out.state();
        if state.open_to != Some(self.id) {
            return queue.try_send(delivery);
        }
        let bytes = frame.interleaved_on(channels);
        match self.out.socket.try_write(&bytes) {
            Ok(n) if n == bytes.len() => {
                record_egress(&self.metrics, &self.path, &delivery);
                Ok(())
            }
            Ok(n) => {
                state.open_to = None;
                state.rest = Some((bytes.slice(n..), delivery));
                self.out.wake.notify_one();
                Ok(())
            }
            // Full, or failed: the writer task waits for room, or meets the error and ends.
            Err(_) => {
                state.open_to = None;
                queue.try_send(delivery)
            }
        }
    }
}

/// Records the server-added latency of a live video frame a reader finished sending.
pub fn record_egress(metrics: &ServerMetrics, path: &str, delivery: &Delivery) {
    if !delivery.from_cache && delivery.frame.video().is_some() {
        let frame = &delivery.frame;
        metrics.record_egress(path, frame.ingest.elapsed(), frame.first_egress());
    }
}

/// Frames waiting to be written to a TCP reader, written with as few system calls as the
/// socket allows (one `writev` of every part when it takes them all).
#[derive(Default)]
struct Batch {
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl Batch {
    fn clear(&mut self) {
        self.parts.clear();
        self.remaining = 0;
    }

    fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.remaining += bytes.len();
            self.parts.push_back(bytes);
        }
    }
}

impl Buf for Batch {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |b| &b[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        self.remaining = self.remaining.saturating_sub(cnt);
        while cnt > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.parts.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
}

/// Writes `first` and every frame already queued for the reader (up to [`MAX_BATCH_BYTES`])
/// to its connection, then records the egress of the live video frames among them.
pub async fn send_tcp_media(
    write: &TcpOut,
    play: &mut Play,
    first: Delivery,
    timeout: Duration,
    metrics: &ServerMetrics,
) -> Result<(), String> {
    let mut batch = std::mem::take(&mut play.batch);
    let mut sent = std::mem::take(&mut play.sent);
    let mut next = Some(first);
    while let Some(delivery) = next.take() {
        // Frames of tracks this reader did not set up are passed over.
        if let Some(bytes) = play.interleaved(&delivery) {
            batch.push(bytes);
            sent.push(delivery);
        }
        if batch.remaining < MAX_BATCH_BYTES {
            next = play.sub.try_recv();
        }
    }
    let written = match batch.remaining {
        0 => Ok(()),
        _ => write_all(write, &mut batch, timeout).await,
    };
    if written.is_ok() {
        for delivery in &sent {
            record_egress(metrics, play.sub.path(), delivery);
        }
    }
    sent.clear();
    batch.clear();
    play.batch = batch;
    play.sent = sent;
    written
}

/// Writes all of `buf` (vectored) while the connection is closed to the publisher, or fails
/// after `timeout`. Most writes fit in the socket's buffer at once: no timer is armed for them.
pub async fn write_all(out: &TcpOut, buf: &mut impl Buf, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    while buf.has_remaining() {
        let written = {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = buf.chunks_vectored(&mut slices);
            out.socket.try_write_vectored(&slices[..n])
        };
        match written {
            Ok(0) => return Err("write failed: the socket took nothing".to_string()),
            Ok(n) => buf.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                match tokio::time::timeout_at(deadline, out.socket.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("write failed: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "reader stopped reading: write timed out after {timeout:?}"
                        ))
                    }
                }
            }
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
    Ok(())
}

/// A reader playing over UDP.
pub struct UdpPlay {
    pub play: Play,
    pub peer: SocketAddr,
    pub metrics: Arc<ServerMetrics>,
    /// Ends the whole RTSP session when the hub drops this reader.
    pub session_end: CancellationToken,
    /// One send's packets, laid end to end (reused).
    pub buf: Vec<u8>,
}

impl UdpPlay {
    pub async fn run(mut self) {
        let mut rtcp_buf = [0u8; 1500];
        loop {
            let delivery = tokio::select! {
                d = self.play.sub.recv() => match d {
                    Some(d) => d,
                    None => {
                        info!(peer = %self.peer, "RTSP reader disconnected by the server");
                        self.session_end.cancel();
                        return;
                    }
                },
                // Receiver reports keep the socket drained; their content is not used yet.
                _ = drain(rtcp_socket(&self.play.outputs), &mut rtcp_buf) => continue,
            };
            if let Err(e) = self.send(&delivery).await {
                warn!(peer = %self.peer, error = %e, "UDP send to reader failed, stopping");
                return;
            }
            record_egress(&self.metrics, self.play.sub.path(), &delivery);
        }
    }

    /// Sends `delivery`'s packets to the reader's UDP ports, if its track is set up.
    async fn send(&mut self, delivery: &Delivery) -> std::io::Result<()> {
        let (Some(frame), Some(Destination::Udp(udp))) =
            (delivery.frame.rtp(), self.play.destination(delivery))
        else {
            return Ok(());
        };
        udp.send(frame, &mut self.buf).await
    }
}

/// The RTCP socket of the first UDP track, whose receiver reports are drained.
fn rtcp_socket(outputs: &[(usize, Destination)]) -> Option<&UdpSocket> {
    outputs.iter().find_map(|(_, d)| match d {
        Destination::Udp(u) => Some(&*u.rtcp),
        Destination::Interleaved(..) => None,
    })
}

/// Reads one datagram from `socket`; never completes without one.
async fn drain(socket: Option<&UdpSocket>, buf: &mut [u8]) {
    match socket {
        Some(socket) => {
            let _ = socket.recv_from(buf).await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Hub, HubLimits, Publisher, PublisherInfo, ReaderInfo};
    use livefeed_media::{AccessUnit, VideoCodec};
    use std::time::Instant;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    fn au(n: u64, slice_len: usize) -> AccessUnit {
        let keyframe = n == 0;
        let mut slice = vec![if keyframe { 0x65 } else { 0x41 }; slice_len.max(2)];
        slice[1] = 0x88;
        let mut nals = vec![Bytes::from(slice)];
        if keyframe {
            nals.insert(0, Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]));
            nals.insert(0, Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e]));
        }
        AccessUnit {
            codec: VideoCodec::H264,
            nals,
            pts: n * 3000,
            keyframe,
            capture: None,
        }
    }

    /// A playing TCP reader of path "live" on a real loopback connection: the server's side
    /// and the reader's socket.
    async fn reader(hub: &Arc<Hub>, send_buffer: Option<usize>) -> (Arc<TcpOut>, Play, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        server.set_nodelay(true).expect("no delay");
        if let Some(bytes) = send_buffer {
            socket2::SockRef::from(&server)
                .set_send_buffer_size(bytes)
                .expect("send buffer");
            socket2::SockRef::from(&client)
                .set_recv_buffer_size(bytes)
                .expect("receive buffer");
        }
        let out = Arc::new(TcpOut::new(server.into_split().1));
        let direct = Arc::new(DirectPlay {
            out: out.clone(),
            id: 7,
            channels: vec![(0, (0, 1))],
            path: "live".into(),
            metrics: Arc::new(ServerMetrics::new()),
        });
        let info = ReaderInfo {
            protocol: "rtsp/tcp".into(),
            remote: "127.0.0.1:1".into(),
        };
        let (sub, _) = hub
            .subscribe_rtsp("live", info, &[0], Some(direct))
            .expect("subscribed");
        let play = Play::new(sub, 7, vec![(0, Destination::Interleaved(0, 1))]);
        (out, play, client)
    }

    fn publisher(hub: &Arc<Hub>) -> Publisher {
        let info = PublisherInfo {
            protocol: "rtsp/tcp".into(),
            remote: "127.0.0.1:2".into(),
        };
        hub.claim_publisher("live", info, None).expect("claimed")
    }

    /// Sends what the writer task would, until the connection is open again.
    async fn send_pending(out: &TcpOut, play: &mut Play) -> usize {
        let metrics = ServerMetrics::new();
        let timeout = Duration::from_secs(5);
        let mut sent = 0;
        while let Some(d) = out.reopen(play) {
            sent += 1;
            send_tcp_media(out, play, d, timeout, &metrics)
                .await
                .expect("written");
        }
        sent
    }

    /// The RTP sequence numbers on channel 0 of everything `client` receives until `n`
    /// packets are in or the stream ends, checking the `$` framing on the way.
    async fn rtp_seqs(client: &mut TcpStream, n: usize) -> Vec<u16> {
        let mut seqs = Vec::new();
        let mut header = [0u8; 4];
        while seqs.len() < n {
            let read = tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut header))
                .await
                .expect("in time");
            if read.is_err() {
                break; // the end of the stream
            }
            assert_eq!(header[0], b'$', "interleaved framing intact");
            let mut packet = vec![0u8; usize::from(u16::from_be_bytes([header[2], header[3]]))];
            client.read_exact(&mut packet).await.expect("read");
            if header[1] == 0 {
                seqs.push(u16::from_be_bytes([packet[2], packet[3]]));
            }
        }
        seqs
    }

    fn consecutive(seqs: &[u16]) -> bool {
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
    }

    #[tokio::test]
    async fn the_publisher_writes_only_while_nothing_waits_ahead_of_its_frame() {
        let hub = Hub::new(None, HubLimits::default());
        let publisher = publisher(&hub);
        publisher.publish(au(0, 100), Instant::now());
        let (out, mut play, mut client) = reader(&hub, None).await;
        // Not yet opened (the PLAY answer is not out): a live frame queues behind the cache.
        publisher.publish(au(1, 100), Instant::now());
        assert_eq!(send_pending(&out, &mut play).await, 1, "one batch of both");
        // Open: the publisher's own call writes the next frames; nothing is queued.
        publisher.publish(au(2, 100), Instant::now());
        publisher.publish(au(3, 100), Instant::now());
        assert!(play.sub.try_recv().is_none(), "written by the publisher");
        // Closed by the writer task (say, for a response): frames queue again, in order.
        out.close();
        publisher.publish(au(4, 100), Instant::now());
        assert_eq!(send_pending(&out, &mut play).await, 1);
        publisher.publish(au(5, 100), Instant::now());
        let seqs = rtp_seqs(&mut client, 6).await;
        assert!(consecutive(&seqs), "every frame once, in order: {seqs:?}");
    }

    /// A playing reader with small socket buffers, open to the publisher, and a publisher
    /// that has just written a frame far bigger than both buffers: taken only in part.
    async fn a_frame_taken_in_part() -> (Publisher, Arc<TcpOut>, Play, TcpStream) {
        let hub = Hub::new(None, HubLimits::default());
        let publisher = publisher(&hub);
        publisher.publish(au(0, 100), Instant::now());
        let (out, mut play, client) = reader(&hub, Some(64 * 1024)).await;
        send_pending(&out, &mut play).await;
        publisher.publish(au(1, 4 << 20), Instant::now());
        (publisher, out, play, client)
    }

    #[tokio::test]
    async fn a_frame_the_socket_takes_in_part_is_finished_by_the_writer_before_the_next() {
        let (publisher, out, mut play, mut client) = a_frame_taken_in_part().await;
        publisher.publish(au(2, 100), Instant::now());
        let Some((mut rest, delivery)) = out.close() else {
            panic!("the rest of the big frame comes first");
        };
        assert!(delivery.frame.video().is_some_and(|v| v.pts == 3000));
        let reading = tokio::spawn(async move { rtp_seqs(&mut client, usize::MAX).await });
        write_all(&out, &mut rest, Duration::from_secs(5))
            .await
            .expect("rest written");
        assert_eq!(
            send_pending(&out, &mut play).await,
            1,
            "then the queued frame"
        );
        out.shutdown();
        let seqs = reading.await.expect("reader");
        assert!(seqs.len() > (4 << 20) / 1500, "{} packets", seqs.len());
        assert!(consecutive(&seqs), "no packet lost or repeated");
    }

    #[tokio::test]
    async fn a_response_waits_for_the_rest_of_a_frame_the_publisher_started() {
        let (_publisher, out, _play, mut client) = a_frame_taken_in_part().await;
        let reading = tokio::spawn(async move {
            let mut bytes = Vec::new();
            client.read_to_end(&mut bytes).await.expect("read");
            bytes
        });
        let timeout = Duration::from_secs(5);
        // What the writer task does before any command, then the command: a response.
        out.close_and_finish(Some("live"), &ServerMetrics::new(), timeout)
            .await
            .expect("rest written");
        let response = b"RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n";
        write_all(&out, &mut &response[..], timeout)
            .await
            .expect("response written");
        out.shutdown();
        let bytes = reading.await.expect("reader");
        let mut at = 0;
        let mut frames = 0;
        while bytes.get(at) == Some(&b'$') {
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            at += 4 + len;
            frames += 1;
        }
        assert!(frames > (4 << 20) / 1500, "{frames} interleaved frames");
        assert_eq!(&bytes[at..], response, "the response after the whole frame");
    }

    /// How `sizes` are grouped into segmentation-offload sends of at most `max` packets.
    fn runs(sizes: &[usize], max: usize) -> Vec<Vec<usize>> {
        let mut runs: Vec<Vec<usize>> = Vec::new();
        let mut run = GsoRun::default();
        for &len in sizes {
            if !run.accepts(len, max) {
                run = GsoRun::default();
            }
            if run.count == 0 {
                runs.push(Vec::new());
            }
            run.push(len);
            runs.last_mut().expect("a run").push(len);
        }
        runs
    }

    #[test]
    fn equal_size_packets_share_a_send_until_a_shorter_one_ends_it() {
        assert_eq!(
            runs(&[40, 1200, 1200, 1200, 500, 1200, 1200], 64),
            [vec![40], vec![1200, 1200, 1200, 500], vec![1200, 1200]],
            "a small first packet (a parameter set) stands alone; a short one closes a run"
        );
        assert_eq!(
            runs(&[1200; 5], 2),
            [vec![1200; 2], vec![1200; 2], vec![1200]]
        );
        assert_eq!(
            runs(&[1200; 3], 1),
            [vec![1200], vec![1200], vec![1200]],
            "no offload"
        );
        let big = runs(&[1200; 60], 64);
        assert!(
            big.iter().all(|r| r.iter().sum::<usize>() <= MAX_GSO_BYTES),
            "{big:?}"
        );
        assert_eq!(big.iter().map(Vec::len).sum::<usize>(), 60);
    }

    #[test]
    fn a_batch_hands_out_its_parts_in_order_across_partial_writes() {
        let mut batch = Batch::default();
        batch.push(Bytes::from_static(b"abc"));
        batch.push(Bytes::new());
        batch.push(Bytes::from_static(b"defg"));
        assert_eq!(batch.remaining(), 7);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(
            batch.chunks_vectored(&mut slices),
            2,
            "empty parts are left out"
        );
        batch.advance(2);
        assert_eq!(batch.chunk(), b"c");
        batch.advance(2);
        assert_eq!(batch.chunk(), b"efg");
        assert_eq!(batch.remaining(), 3);
        batch.advance(3);
        assert_eq!(batch.remaining(), 0);
        assert!(batch.chunk().is_empty());
    }
}
