//! ICE-TCP for WHEP viewers (RFC 6544, passive candidates): the TCP listener and one task per
//! connection, a thin shell around [`livefeed_webrtc::tcp_framing`]. The WHEP media loop owns
//! the sessions; this module only moves packets between connections and it.
//!
//! Contract:
//! - Each accepted connection is announced ([`TcpEvent::Opened`], with the sender that writes
//!   framed packets to it), each whole packet it brings is passed on ([`TcpEvent::Packet`]), and
//!   its end is announced ([`TcpEvent::Closed`]). Dropping the sender closes the connection:
//!   the media loop does that to a connection no session accepts.
//! - Limits: at most [`MAX_CONNECTIONS`] at once (more are closed at once, logged); a
//!   connection whose first packet has not arrived within [`FIRST_PACKET_TIMEOUT`], or that
//!   sends a zero-length frame, is closed with a log line naming the peer and the cause; at
//!   most [`WRITE_QUEUE`] packets wait for one slow connection (more are dropped, as UDP
//!   would lose them).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livefeed_webrtc::tcp_framing::FrameReader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a new connection may take to send its first packet (a STUN binding request).
pub const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);
/// Framed packets waiting to be written to one connection.
pub const WRITE_QUEUE: usize = 512;

/// What happens on the connections, for the media loop.
#[derive(Debug)]
pub enum TcpEvent {
    /// A viewer connected from `peer` to our `local` address; `out` writes framed packets.
    Opened {
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
        /// The viewer's address.
        peer: SocketAddr,
    },
}

/// Accepts connections on `listener` until `events` is dropped.
pub fn spawn_listener(listener: TcpListener, events: mpsc::Sender<TcpEvent>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let open = Arc::new(AtomicUsize::new(0));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    debug!(error = %e, "ICE-TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if events.is_closed() {
                return;
            }
            if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                warn!(%peer, limit = MAX_CONNECTIONS, "ICE-TCP connection refused: too many at once");
                continue;
            }
            open.fetch_add(1, Ordering::Relaxed);
            let (events, open) = (events.clone(), open.clone());
            tokio::spawn(async move {
                serve(stream, peer, &events).await;
                let _ = events.send(TcpEvent::Closed { peer }).await;
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    })
}

/// One connection: reads frames into events, writes what the media loop sends.
async fn serve(stream: TcpStream, peer: SocketAddr, events: &mpsc::Sender<TcpEvent>) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (out, mut outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events
        .send(TcpEvent::Opened { peer, local, out })
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
        }
    };
    let read = async {
        let mut frames = FrameReader::default();
        let mut buf = vec![0; 16 * 1024];
        let mut first = true;
        loop {
            let read = reader.read(&mut buf);
            let n = if first {
                match tokio::time::timeout(FIRST_PACKET_TIMEOUT, read).await {
                    Ok(n) => n,
                    Err(_) => {
                        info!(%peer, timeout = ?FIRST_PACKET_TIMEOUT, "ICE-TCP connection closed: nothing sent");
                        return;
                    }
                }
            } else {
                read.await
            };
            match n {
                Ok(0) | Err(_) => return,
                Ok(n) => frames.push(&buf[..n]),
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
}
