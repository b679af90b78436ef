//! `livefeed publish --url http://HOST:8888/PATH/whip`: publishing over WHIP, the tokio shell
//! of [`WhipClient`]: one UDP socket, the offer POSTed with ureq (plain HTTP), a task that
//! moves datagrams and frames, `DELETE` of the session's resource on close.
//!
//! [`WhipPublisher::connect`] returns once ICE and DTLS are up (or fails within its timeout,
//! saying at which step); frames sent after that go out in order; a keyframe request of the
//! server bumps [`WhipPublisher::keyframe_requests`], as RTCP PLI does for the RTSP publisher.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use livefeed_media::AccessUnit;
use livefeed_rtsp::client_auth::without_userinfo;
use livefeed_webrtc::{ClientPoll, WhipClient};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Frames queued for the connection's task, at most.
const QUEUED_FRAMES: usize = 64;

/// What the publisher hands its task.
enum Outgoing {
    Video { annex_b: Vec<u8>, pts: u64 },
    Opus { packet: Bytes, pts: u64 },
}

/// A WHIP publishing session.
pub struct WhipPublisher {
    frames: mpsc::Sender<Outgoing>,
    keyframes: watch::Receiver<u64>,
    task: JoinHandle<anyhow::Result<()>>,
    /// The session's resource (the answer's `Location`), for `DELETE`.
    resource: Option<String>,
}

impl WhipPublisher {
    /// Offers H.264 (and Opus when `audio`) to the WHIP endpoint `url` and waits, at most
    /// `timeout`, until the connection is up.
    pub async fn connect(url: &str, audio: bool, timeout: Duration) -> anyhow::Result<Self> {
        let server = server_address(url).await?;
        let socket = UdpSocket::bind(SocketAddr::new(local_ip_towards(server)?, 0))
            .await
            .context("binding a UDP socket")?;
        let local = socket.local_addr()?;
        let (mut client, offer) = WhipClient::new(Instant::now(), local, audio)?;
        let (answer, resource) = post_offer(url, offer, timeout).await?;
        let connected = match client.accept_answer(&answer) {
            Ok(()) => {
                let (publisher, connected) = Self::start(client, socket);
                publisher.connected(connected, timeout).await
            }
            Err(e) => Err(anyhow::Error::new(e).context("the server's SDP answer")),
        };
        match connected {
            Ok(mut publisher) => {
                publisher.resource = resource;
                Ok(publisher)
            }
            Err(e) => {
                delete(resource).await; // the session the server made, not to be kept
                Err(e)
            }
        }
    }

    /// Starts the connection's task.
    fn start(client: WhipClient, socket: UdpSocket) -> (Self, oneshot::Receiver<()>) {
        let (frames, frames_rx) = mpsc::channel(QUEUED_FRAMES);
        let (keyframes_tx, keyframes) = watch::channel(0);
        let (connected_tx, connected) = oneshot::channel();
        let task = tokio::spawn(run(client, socket, frames_rx, keyframes_tx, connected_tx));
        let publisher = WhipPublisher {
            frames,
            keyframes,
            task,
            resource: None,
        };
        (publisher, connected)
    }

    /// Waits for the connection; its task's error when it ended first.
    async fn connected(
        mut self,
        connected: oneshot::Receiver<()>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        match tokio::time::timeout(timeout, connected).await {
            Ok(Ok(())) => Ok(self),
            Ok(Err(_)) => match (&mut self.task).await {
                Ok(Err(e)) => Err(e.context("the WebRTC connection")),
                _ => bail!("the WebRTC connection ended before it was up"),
            },
            Err(_) => {
                self.task.abort();
                bail!("no WebRTC connection within {timeout:?} (ICE/DTLS)")
            }
        }
    }

    /// Counts the server's keyframe requests (changes at each).
    pub fn keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframes.clone()
    }

    /// Sends a video access unit.
    pub async fn send(&mut self, au: &AccessUnit) -> anyhow::Result<()> {
        let mut annex_b = Vec::with_capacity(au.payload_len() + 4 * au.nals.len());
        au.write_annex_b(&mut annex_b);
        self.queue(Outgoing::Video {
            annex_b,
            pts: au.pts,
        })
        .await
    }

    /// Sends an Opus packet presented at `pts` (48 kHz).
    pub async fn send_audio(&mut self, packet: Bytes, pts: u64) -> anyhow::Result<()> {
        self.queue(Outgoing::Opus { packet, pts }).await
    }

    async fn queue(&mut self, frame: Outgoing) -> anyhow::Result<()> {
        if self.frames.send(frame).await.is_ok() {
            return Ok(());
        }
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            _ => bail!("the WebRTC connection ended"),
        }
    }

    /// Ends the session: `DELETE` of its resource, then the connection.
    pub async fn close(self) {
        delete(self.resource).await;
        self.task.abort();
    }
}

/// `DELETE` of a session's resource, if any (failures only logged: the server also ends a
/// session whose peer is gone).
async fn delete(resource: Option<String>) {
    let Some(resource) = resource else {
        return;
    };
    let shown = without_userinfo(&resource);
    let deleted =
        tokio::task::spawn_blocking(move || agent(Duration::from_secs(2)).delete(&resource).call())
            .await;
    if let Ok(Err(e)) = deleted {
        tracing::debug!("WHIP DELETE {shown}: {e}");
    }
}

/// The server's address (host and port of `url`, resolved; IPv4 first: `localhost` often
/// resolves to ::1 first, and a server on 0.0.0.0, the default, offers IPv4 candidates only).
async fn server_address(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "http")
        .with_context(|| {
            format!(
                "{}: a WHIP URL is http://HOST:PORT/PATH/whip (https is not supported)",
                without_userinfo(url)
            )
        })?;
    let host = parsed.host_str().context("the WHIP URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(80);
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .with_context(|| format!("{host} resolves to no address"))
}

/// The local address the system would reach `server` from (the ICE host candidate).
fn local_ip_towards(server: SocketAddr) -> anyhow::Result<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe
        .connect(server)
        .with_context(|| format!("no route to {server}"))?;
    Ok(probe.local_addr()?.ip())
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs the offer; returns the answer and the session's resource URL.
async fn post_offer(
    url: &str,
    offer: String,
    timeout: Duration,
) -> anyhow::Result<(String, Option<String>)> {
    let target = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut response = agent(timeout)
            .post(&target)
            .header("Content-Type", "application/sdp")
            .send(offer)
            .with_context(|| "POST of the SDP offer")?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| absolute(&target, l));
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("the WHIP endpoint answered {status}: {}", body.trim());
        }
        Ok((body, location))
    })
    .await?
}

/// `location` (the answer's `Location`: absolute, or a reference) made absolute against `url`.
fn absolute(url: &str, location: &str) -> Option<String> {
    url::Url::parse(url)
        .and_then(|base| base.join(location))
        .ok()
        .map(String::from)
}

/// The connection's task: datagrams in and out, frames written, timeouts, until the
/// connection closes or the publisher goes.
async fn run(
    mut client: WhipClient,
    socket: UdpSocket,
    mut frames: mpsc::Receiver<Outgoing>,
    keyframes: watch::Sender<u64>,
    connected: oneshot::Sender<()>,
) -> anyhow::Result<()> {
    let mut connected = Some(connected);
    let mut buf = vec![0u8; 65_536];
    loop {
        let wait = loop {
            match client.poll(Instant::now())? {
                ClientPoll::Transmit {
                    destination,
                    datagram,
                    ..
                } => {
                    socket.send_to(&datagram, destination).await?;
                }
                ClientPoll::Connected => {
                    if let Some(tx) = connected.take() {
                        let _ = tx.send(());
                    }
                    keyframes.send_modify(|n| *n += 1); // start on a keyframe
                }
                ClientPoll::KeyframeRequest => keyframes.send_modify(|n| *n += 1),
                ClientPoll::Closed => bail!("the WebRTC connection closed"),
                ClientPoll::Wait(at) => break at,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, source) = received?;
                client.handle_datagram(Instant::now(), source, &buf[..len])?;
            }
            frame = frames.recv() => {
                let now = Instant::now();
                match frame {
                    None => return Ok(()),
                    Some(Outgoing::Video { annex_b, pts }) => {
                        client.write_video(now, annex_b, pts)?;
                    }
                    Some(Outgoing::Opus { packet, pts }) => {
                        client.write_opus(now, &packet, pts)?;
                    }
                }
            }
            () = tokio::time::sleep_until(wait.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_location_is_on_the_endpoint_s_host() {
        let at = |l| absolute("http://h:1/live/whip", l).expect("a URL");
        assert_eq!(at("/live/whip/abc"), "http://h:1/live/whip/abc");
        assert_eq!(at("http://other/x"), "http://other/x");
        assert_eq!(at("//other/x"), "http://other/x");
        assert_eq!(at("whip/abc"), "http://h:1/live/whip/abc");
        assert_eq!(at("../x"), "http://h:1/x");
    }
}
