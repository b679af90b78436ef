//! An RTSP reader's media out. Packets are built once per path, not per reader (see
//! [`livefeed_rtsp::fanout`] and [`crate::hub::Hub::subscribe_rtsp`]): a reader only chooses
//! which frames to send and where.
//!
//! Contract:
//! - TCP: each frame's shared interleaved bytes go out as they are (rewritten only for a reader
//!   that chose other channels); whatever frames are already queued for the reader, up to
//!   [`MAX_BATCH_BYTES`], go out in one vectored write.
//! - UDP: each packet is sent to the reader's RTP port, sender reports to its RTCP port; its
//!   receiver reports are read and discarded.
//! - A frame of a track the reader did not set up is skipped.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::hub::{Delivery, Subscription};
use crate::measure::metrics::ServerMetrics;

/// Most bytes of queued frames written to a TCP reader in one go.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// A reader's media out: its subscription and where each set-up track goes.
pub struct Play {
    pub sub: Subscription,
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
    pub rtp: UdpSocket,
    pub rtcp: Arc<UdpSocket>,
    pub rtp_to: SocketAddr,
    pub rtcp_to: SocketAddr,
}

impl Play {
    /// A reader of `sub` sending each set-up track (0 = video) to its destination.
    pub fn new(sub: Subscription, outputs: Vec<(usize, Destination)>) -> Self {
        Play {
            sub,
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
    write: &mut OwnedWriteHalf,
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
        _ => write_batch(write, &mut batch, timeout).await,
    };
    if written.is_ok() {
        for delivery in &sent {
            if !delivery.from_cache && delivery.frame.video().is_some() {
                let frame = &delivery.frame;
                let stored = frame.first_egress();
                metrics.record_egress(play.sub.path(), frame.ingest.elapsed(), stored);
            }
        }
    }
    sent.clear();
    batch.clear();
    play.batch = batch;
    play.sent = sent;
    written
}

/// Writes all of `batch` (vectored), or fails after `timeout`.
async fn write_batch(
    write: &mut OwnedWriteHalf,
    batch: &mut Batch,
    timeout: Duration,
) -> Result<(), String> {
    // Most batches fit in the socket's buffer at once: try that before arming a timer.
    let written = {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = batch.chunks_vectored(&mut slices);
        write.try_write_vectored(&slices[..n])
    };
    match written {
        Ok(n) => batch.advance(n),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(format!("write failed: {e}")),
    }
    if batch.remaining == 0 {
        return Ok(());
    }
    match tokio::time::timeout(timeout, write.write_all_buf(batch)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!(
            "reader stopped reading: write timed out after {timeout:?}"
        )),
    }
}

/// A reader playing over UDP.
pub struct UdpPlay {
    pub play: Play,
    pub peer: SocketAddr,
    pub metrics: Arc<ServerMetrics>,
    /// Ends the whole RTSP session when the hub drops this reader.
    pub session_end: CancellationToken,
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
            if !delivery.from_cache && delivery.frame.video().is_some() {
                let frame = &delivery.frame;
                let elapsed = frame.ingest.elapsed();
                self.metrics
                    .record_egress(self.play.sub.path(), elapsed, frame.first_egress());
            }
        }
    }

    /// Sends `delivery`'s packets to the reader's UDP ports, if its track is set up.
    async fn send(&self, delivery: &Delivery) -> std::io::Result<()> {
        let (Some(frame), Some(Destination::Udp(udp))) =
            (delivery.frame.rtp(), self.play.destination(delivery))
        else {
            return Ok(());
        };
        for packet in frame.rtp_packets() {
            udp.rtp.send_to(packet, udp.rtp_to).await?;
        }
        if let Some(sr) = frame.rtcp_packet() {
            udp.rtcp.send_to(sr, udp.rtcp_to).await?;
        }
        Ok(())
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
