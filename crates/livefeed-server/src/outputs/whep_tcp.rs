//! ICE-TCP for WHEP viewers (RFC 6544, passive candidates): the TCP listener and one task per
//! connection, a thin shell around [`livefeed_webrtc::tcp_framing`]. The WHEP media loop owns
//! the sessions; this module only moves packets between connections and it.
//!
//! Contract:
//! - Each accepted connection is announced ([`TcpEvent::Opened`], with the sender that writes
//!   framed packets to it), each whole packet it brings is passed on ([`TcpEvent::Packet`]), and
//!   its end is announced ([`TcpEvent::Closed`]). Dropping the sender closes the connection:
//!   the media loop does that to a connection no session accepts.
//! - Limits: connections are admitted by the listener's [`ConnectionGate`] like the RTSP and
//!   HTTP listeners' (at most [`MAX_CONNECTIONS`], `--max-connections-per-address` from one
//!   address, within the process's descriptor budget; when full, the newest idle connection
//!   is shed, else the new one is closed at once; refusals are logged at most once a second);
//!   a connection whose first whole packet has not
//!   arrived [`FIRST_PACKET_TIMEOUT`] after it opened, that then sends nothing for
//!   [`IDLE_TIMEOUT`] (a live viewer's ICE checks come every few seconds), or that sends a
//!   zero-length frame, is closed with a log line naming the peer and the cause; at most
//!   [`WRITE_QUEUE`] packets wait for one slow connection (more are dropped, as UDP would
//!   lose them).
//! - Every event names the connection by its peer and an id, so that a connection's late
//!   `Closed` never removes a newer one from the same address and port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livefeed_webrtc::tcp_framing::FrameReader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::limits::conn_gate::{ConnectionGate, Permit};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a new connection may take to send its first packet (a STUN binding request).
pub const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an established connection may stay silent.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Framed packets waiting to be written to one connection.
pub const WRITE_QUEUE: usize = 512;

/// What happens on the connections, for the media loop.
#[derive(Debug)]
pub enum TcpEvent {
    /// A viewer connected from `peer` to our `local` address; `out` writes framed packets.
    Opened {
        /// This connection among all the listener accepted.
        id: u64,
        /// The viewer's address.
        peer: SocketAddr,
        /// Our address on the connection (a TCP candidate's address).
        local: SocketAddr,
        /// Takes framed packets to write; dropping it closes the connection.
        out: mpsc::Sender<Vec<u8>>,
    },
    /// One whole packet from `peer`.
    Packet {
        /// The viewer's address.
        peer: SocketAddr,
        /// Our address on the connection.
        local: SocketAddr,
        /// The packet (STUN, DTLS, RTP or RTCP), unframed.
        packet: Vec<u8>,
    },
    /// The connection from `peer` ended.
    Closed {
        /// The connection, as in [`TcpEvent::Opened`].
        id: u64,
        /// The viewer's address.
        peer: SocketAddr,
    },
}

/// Accepts connections on `listener`, admitted by `gate`, until `events` is dropped.
pub fn spawn_listener(
    listener: TcpListener,
    events: mpsc::Sender<TcpEvent>,
    gate: Arc<ConnectionGate>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = events.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    debug!(error = %e, "ICE-TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // A refusal is logged by the gate; the connection is closed here.
            let Ok(permit) = gate.admit(peer) else {
                continue;
            };
            next_id += 1;
            let (id, events) = (next_id, events.clone());
            tokio::spawn(async move {
                let shed = permit.cancel.clone();
                tokio::select! {
                    () = serve(stream, id, peer, &events, permit) => {}
                    () = shed.cancelled() => {
                        info!(%peer, "ICE-TCP connection shed: the listener was full and it was idle");
                    }
                }
                let _ = events.send(TcpEvent::Closed { id, peer }).await;
            });
        }
    })
}

/// One connection: reads frames into events, writes what the media loop sends; every byte
/// moved counts as activity for `permit`'s gate. The permit is given back before the socket
/// closes, so a peer that sees the close and connects again is counted right.
async fn serve(
    stream: TcpStream,
    id: u64,
    peer: SocketAddr,
    events: &mpsc::Sender<TcpEvent>,
    permit: Permit,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (out, mut outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events
        .send(TcpEvent::Opened {
            id,
            peer,
            local,
            out,
        })
        .await
        .is_err()
    {
        return;
    }
    let write = async {
        while let Some(framed) = outgoing.recv().await {
            if let Err(e) = writer.write_all(&framed).await {
                debug!(%peer, error = %e, "ICE-TCP write failed");
                return;
            }
            permit.activity.touch();
        }
    };
    let read = async {
        let mut frames = FrameReader::default();
        let mut buf = vec![0; 16 * 1024];
        let first_deadline = tokio::time::Instant::now() + FIRST_PACKET_TIMEOUT;
        let mut first = true;
        loop {
            let deadline = if first {
                first_deadline
            } else {
                tokio::time::Instant::now() + IDLE_TIMEOUT
            };
            let n = match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
                Ok(n) => n,
                Err(_) => {
                    let cause = if first {
                        "no whole packet in time"
                    } else {
                        "silent"
                    };
                    info!(%peer, cause, "ICE-TCP connection closed");
                    return;
                }
            };
            match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    permit.activity.touch();
                    frames.push(&buf[..n]);
                }
            }
            loop {
                match frames.next_frame() {
                    Ok(Some(packet)) => {
                        first = false;
                        let packet = packet.to_vec();
                        if events
                            .send(TcpEvent::Packet {
                                peer,
                                local,
                                packet,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(%peer, cause = %e, "ICE-TCP connection closed: bad framing");
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = write => {}
        () = read => {}
    }
    drop(permit);
    drop((reader, writer));
}
