//! Keyframe requests to an RTSP publisher: whenever a reader of its path asks for a keyframe
//! (a WebRTC viewer's PLI/FIR, a viewer starting on a stale cache) or the hub loses video at
//! ingest, the publisher gets an RTCP picture loss indication (RFC 4585) on its video track's
//! RTCP channel (TCP) or port (UDP). Requests are merged: at most one PLI per
//! [`MIN_INTERVAL`], however many readers ask. Publishers that ignore PLI (ffmpeg) are
//! unharmed; livefeed's own publisher, GStreamer and most cameras answer with a keyframe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livefeed_media::rtcp::picture_loss_indication;
use livefeed_rtsp::rtp_sender::push_interleaved;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::WriterCommand;
use crate::ingest::rtp_in::IngestShared;

/// Shortest time between two PLIs to one publisher: a keyframe costs several frames' worth of
/// bits, and one answers every viewer waiting at that moment.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// How often a request made before the publisher's first RTP packet looks for its SSRC.
const SSRC_POLL: Duration = Duration::from_millis(20);

/// The SSRC livefeed's RTCP to publishers is sent from.
const SERVER_SSRC: u32 = 0x6c66_7364; // "lfsd"

/// Where a publisher's video RTCP goes.
pub enum Sink {
    /// Interleaved on the RTSP connection, on this channel.
    Tcp {
        out: mpsc::Sender<WriterCommand>,
        channel: u8,
    },
    /// From the server's RTCP socket of the track to the publisher's RTCP port.
    Udp {
        socket: Arc<UdpSocket>,
        to: SocketAddr,
    },
}

/// Sends a PLI to the publisher for each (merged) keyframe request until the publisher or its
/// connection is gone.
pub async fn forward(mut requests: watch::Receiver<u64>, sink: Sink, shared: Arc<IngestShared>) {
    let path = shared.publisher.path().to_string();
    let mut sent = 0u64;
    while requests.changed().await.is_ok() {
        // The PLI names the publisher's video SSRC, known from its first RTP packet (receivers
        // such as GStreamer's ignore feedback about another SSRC).
        let media_ssrc = loop {
            match shared.video_ssrc() {
                None => tokio::time::sleep(SSRC_POLL).await,
                Some(ssrc) => break ssrc,
            }
        };
        let pli = picture_loss_indication(SERVER_SSRC, media_ssrc);
        let delivered = match &sink {
            Sink::Tcp { out, channel } => {
                let mut framed = Vec::with_capacity(pli.len() + 4);
                push_interleaved(&mut framed, *channel, &pli);
                out.send(WriterCommand::Send(framed)).await.is_ok()
            }
            Sink::Udp { socket, to } => match socket.send_to(&pli, *to).await {
                Ok(_) => true,
                Err(e) => {
                    debug!(peer = shared.peer(), path, error = %e, "cannot send RTCP PLI");
                    true // a transient send error: try again on the next request
                }
            },
        };
        if !delivered {
            return;
        }
        sent += 1;
        if sent == 1 || sent.is_multiple_of(100) {
            info!(
                peer = shared.peer(),
                path, sent, "keyframe requested from the publisher (RTCP PLI)"
            );
        } else {
            debug!(
                peer = shared.peer(),
                path, sent, "keyframe requested from the publisher (RTCP PLI)"
            );
        }
        tokio::time::sleep(MIN_INTERVAL).await;
    }
}
