//! Pull sources: paths whose stream the server fetches from an RTSP server (an IP camera,
//! another livefeed) and publishes into the hub like a pushed stream (same per-path
//! one-publisher rule, same ingest of every track).
//!
//! Each source is one task. Always-on sources connect at start; on-demand ones when a reader
//! asks for the path ([`Hub::demand`]) and close [`PullSourceConfig::close_after`] after the
//! last reader left. A source that fails or drops reconnects with a capped backoff
//! ([`Backoff`]); readers stay through the hub's publisher grace. Video capture times are the
//! frames' livefeed stamps when they carry them (another livefeed upstream), else the sender's
//! RTCP reports, else the arrival time; [`SourceStatus`] says which, with the sender's clock
//! offset, for the API and the dashboard.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livefeed_media::rtp::DepacketizerLimits;
use livefeed_rtsp::client::{Error as ClientError, TransportKind};
use livefeed_rtsp::client_auth::without_userinfo;
use livefeed_rtsp::client_session::ClientError as SessionError;
use livefeed_rtsp::pull::{PacketKind, RtspPull};
use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{PullSourceConfig, RtspTransport};
use crate::hub::{Hub, PublisherInfo, StreamInfo, ON_DEMAND_START_TIMEOUT};
use crate::ingest::rtp_in::{IngestShared, TrackIngest};
use crate::measure::metrics::ServerMetrics;

/// The protocol name a pulled stream's publisher shows.
pub const PROTOCOL: &str = "rtsp-source";

/// Shortest wait before reconnecting.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// Longest wait before reconnecting.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How often an on-demand source counts its readers, and the status is refreshed.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Over `automatic` transport: UDP that delivers nothing for this long falls back to TCP.
const UDP_FIRST_PACKET: Duration = Duration::from_secs(3);

/// What the API and the dashboard show of a source.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceStatus {
    /// The URL, without credentials.
    pub url: String,
    /// `idle` (on demand, nobody reading), `connecting`, `streaming` or `retrying`.
    pub state: &'static str,
    /// Connects only while read.
    pub on_demand: bool,
    /// The transport in use or last used: `tcp` or `udp`.
    pub transport: Option<&'static str>,
    /// Why the last attempt failed or the stream ended.
    pub error: Option<String>,
    /// Where video capture times come from: `capture stamp`, `sender reports` or `arrival`.
    pub clock: Option<&'static str>,
    /// The sender's clock less the server's, ms (from its sender reports).
    pub clock_offset_ms: Option<f64>,
    /// Connections made so far.
    pub connections: u64,
}

/// The server's pull sources.
pub struct PullSources {
    sources: Vec<(String, Arc<Mutex<SourceStatus>>)>,
    tasks: Vec<JoinHandle<()>>,
}

/// What a source's task needs from the server.
#[derive(Clone)]
pub struct PullContext {
    /// The hub the streams are published into.
    pub hub: Arc<Hub>,
    /// Server latency windows (capture→ingest).
    pub metrics: Arc<ServerMetrics>,
    /// Caps on access units.
    pub limits: DepacketizerLimits,
    /// Silence after which a source is considered gone, and the bound of each exchange.
    pub timeout: Duration,
    /// Readers of a path the hub does not count (LL-HLS viewers).
    pub other_readers: Arc<dyn Fn(&str) -> usize + Send + Sync>,
}

impl PullSources {
    /// Starts one task per source.
    pub fn start(configs: &[PullSourceConfig], context: PullContext) -> Arc<Self> {
        let mut sources = Vec::new();
        let mut tasks = Vec::new();
        for config in configs {
            let status = Arc::new(Mutex::new(SourceStatus {
                url: without_userinfo(&config.url),
                state: if config.on_demand {
                    "idle"
                } else {
                    "connecting"
                },
                on_demand: config.on_demand,
                transport: None,
                error: None,
                clock: None,
                clock_offset_ms: None,
                connections: 0,
            }));
            let source = Source {
                demand: config
                    .on_demand
                    .then(|| context.hub.register_on_demand(&config.path)),
                config: config.clone(),
                context: context.clone(),
                status: status.clone(),
                udp_failed: false,
            };
            tasks.push(tokio::spawn(source.run()));
            sources.push((config.path.clone(), status));
        }
        Arc::new(PullSources { sources, tasks })
    }

    /// The status of `path`'s source, if it has one.
    pub fn status(&self, path: &str) -> Option<SourceStatus> {
        self.sources
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, s)| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Every source's path and status.
    pub fn all(&self) -> Vec<(String, SourceStatus)> {
        self.sources
            .iter()
            .map(|(p, s)| {
                (
                    p.clone(),
                    s.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                )
            })
            .collect()
    }
}

impl Drop for PullSources {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Waits between reconnections: doubling from [`BACKOFF_FIRST`] up to [`BACKOFF_CAP`], back to
/// the start after a connection that streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        wait
    }

    /// A connection streamed: the next failure retries soon again.
    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// When an on-demand source closes: `close_after` from the last moment it had a reader. Until
/// a first reader arrived it waits at least [`ON_DEMAND_START_TIMEOUT`] (the reader that woke
/// it is still between DESCRIBE and PLAY, or waiting for its LL-HLS playlist).
#[derive(Debug, Clone, Copy)]
pub struct IdleClock {
    close_after: Duration,
    last_reader: Instant,
    had_reader: bool,
}

impl IdleClock {
    /// Starts counting at `now`.
    pub fn new(close_after: Duration, now: Instant) -> Self {
        IdleClock {
            close_after,
            last_reader: now,
            had_reader: false,
        }
    }

    /// Whether the source should close, given its `readers` at `now`.
    pub fn should_close(&mut self, readers: usize, now: Instant) -> bool {
        if readers > 0 {
            self.last_reader = now;
            self.had_reader = true;
            return false;
        }
        let wait = if self.had_reader {
            self.close_after
        } else {
            self.close_after.max(ON_DEMAND_START_TIMEOUT)
        };
        now.saturating_duration_since(self.last_reader) >= wait
    }
}

/// Why a relay ended.
enum RelayEnd {
    /// On demand, and nobody read for `close_after`.
    Idle,
    /// The connection failed or the stream stopped.
    Failed(String),
}

/// One source's task state.
struct Source {
    /// Woken when a reader asks for an on-demand source's path.
    demand: Option<Arc<tokio::sync::Notify>>,
    config: PullSourceConfig,
    context: PullContext,
    status: Arc<Mutex<SourceStatus>>,
    /// `automatic` transport found UDP does not work with this server.
    udp_failed: bool,
}

impl Source {
    fn update(&self, change: impl FnOnce(&mut SourceStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn status(&self) -> SourceStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn shown_url(&self) -> String {
        without_userinfo(&self.config.url)
    }

    async fn run(mut self) {
        loop {
            if let Some(demand) = self.demand.clone() {
                self.update(|s| s.state = "idle");
                // A wake-up left from while it streamed or retried is not a new reader.
                let _ = tokio::time::timeout(Duration::ZERO, demand.notified()).await;
                demand.notified().await;
                info!(path = %self.config.path, source = %self.shown_url(), "a reader asked: connecting the on-demand source");
            }
            self.stream_while_wanted().await;
        }
    }

    /// Connects, relays and reconnects until an on-demand source is left without readers (an
    /// always-on one: forever).
    async fn stream_while_wanted(&mut self) {
        let mut backoff = Backoff::default();
        let mut idle = IdleClock::new(self.config.close_after, Instant::now());
        loop {
            let transport = self.transport();
            self.update(|s| {
                s.state = "connecting";
                s.transport = Some(transport_name(transport));
            });
            let end = if let Some(by) = self.other_publisher() {
                // Someone publishes the path: no connection to the camera until it leaves.
                RelayEnd::Failed(format!("the path has another publisher ({by})"))
            } else {
                match RtspPull::connect(&self.config.url, transport, self.context.timeout).await {
                    Ok(pull) => self.relay(pull, transport, &mut backoff).await,
                    Err(e) => {
                        if transport == TransportKind::Udp && refused_transport(&e) {
                            self.note_udp_failed();
                        }
                        RelayEnd::Failed(explain(&e))
                    }
                }
            };
            match end {
                RelayEnd::Idle => {
                    info!(path = %self.config.path, source = %self.shown_url(), "no reader left: on-demand source closed");
                    self.update(|s| {
                        s.error = None;
                        s.clock = None;
                        s.clock_offset_ms = None;
                    });
                    return;
                }
                RelayEnd::Failed(cause) => {
                    // Said once per cause: a camera that stays down does not flood the log.
                    let repeated = self.status().error.as_deref() == Some(cause.as_str());
                    if repeated {
                        debug!(path = %self.config.path, source = %self.shown_url(), %cause, "pull source failed again, retrying");
                    } else {
                        warn!(path = %self.config.path, source = %self.shown_url(), %cause, "pull source failed, retrying");
                    }
                    self.update(|s| {
                        s.state = "retrying";
                        s.error = Some(cause);
                    });
                }
            }
            let wait = backoff.next_wait();
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                tokio::time::sleep(CHECK_EVERY.min(wait)).await;
                if self.config.on_demand && idle.should_close(self.readers(), Instant::now()) {
                    return;
                }
            }
        }
    }

    fn transport(&self) -> TransportKind {
        match self.config.transport {
            RtspTransport::Tcp => TransportKind::Tcp,
            RtspTransport::Udp => TransportKind::Udp,
            RtspTransport::Automatic if self.udp_failed => TransportKind::Tcp,
            RtspTransport::Automatic => TransportKind::Udp,
        }
    }

    fn note_udp_failed(&mut self) {
        if self.config.transport == RtspTransport::Automatic && !self.udp_failed {
            info!(path = %self.config.path, source = %self.shown_url(), "UDP does not work with this source: switching to TCP");
            self.udp_failed = true;
        }
    }

    /// The remote of another publisher holding the path, if one does.
    fn other_publisher(&self) -> Option<String> {
        let paths = self.context.hub.snapshot();
        let path = paths.iter().find(|p| p.name == self.config.path)?;
        path.publisher.as_ref().map(|p| p.info.remote.clone())
    }

    fn readers(&self) -> usize {
        let path = &self.config.path;
        self.context.hub.client_readers(path) + (self.context.other_readers)(path)
    }

    /// Publishes what `pull` delivers until it fails, another publisher takes the path, or
    /// (on demand) nobody reads.
    async fn relay(
        &mut self,
        mut pull: RtspPull,
        transport: TransportKind,
        backoff: &mut Backoff,
    ) -> RelayEnd {
        let announced = pull.stream().clone();
        let sets: Vec<bytes::Bytes> = [
            &announced.video.vps,
            &announced.video.sps,
            &announced.video.pps,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        let stream = StreamInfo::from_parameter_sets(announced.video.codec, &sets);
        let info = PublisherInfo {
            protocol: PROTOCOL.into(),
            remote: self.shown_url(),
        };
        let publisher = match self.context.hub.claim_publisher_with(
            &self.config.path,
            info,
            stream,
            announced.others.clone(),
        ) {
            Ok(p) => p,
            Err(e) => {
                pull.close().await;
                return RelayEnd::Failed(e.to_string());
            }
        };
        let shared = Arc::new(IngestShared::new(
            publisher,
            self.shown_url(),
            self.context.metrics.clone(),
        ));
        let mut tracks: Vec<TrackIngest> = (0..=announced.others.len())
            .map(|t| TrackIngest::new(shared.clone(), t, &announced, self.context.limits, true))
            .collect();
        let tracks_named: Vec<String> = std::iter::once(announced.video.codec.name().to_string())
            .chain(announced.others.iter().map(|t| t.codec.name()))
            .collect();
        info!(path = %self.config.path, source = %self.shown_url(), transport = transport_name(transport), tracks = %tracks_named.join(","), "pull source connected");
        self.update(|s| {
            s.state = "streaming";
            s.error = None;
            s.connections += 1;
        });
        let mut idle = IdleClock::new(self.config.close_after, Instant::now());
        let mut check = tokio::time::interval(CHECK_EVERY);
        let connected = Instant::now();
        let mut got_packet = false;
        let mut last_video = Instant::now();
        loop {
            tokio::select! {
                packet = pull.next() => {
                    let packet = match packet {
                        Ok(p) => p,
                        Err(e) => {
                            if !got_packet && transport == TransportKind::Udp {
                                self.note_udp_failed();
                            }
                            return RelayEnd::Failed(explain(&e));
                        }
                    };
                    got_packet = true;
                    let Some(track) = tracks.get_mut(packet.track) else { continue };
                    match packet.kind {
                        PacketKind::Rtp => {
                            if packet.track == 0 {
                                last_video = Instant::now();
                            }
                            if let Err(cause) = track.push(&packet.payload) {
                                pull.close().await;
                                return RelayEnd::Failed(cause);
                            }
                        }
                        PacketKind::Rtcp => track.push_rtcp(&packet.payload),
                    }
                }
                _ = check.tick() => {
                    let (clock, offset) = shared.clock();
                    let started = shared.has_started();
                    if started {
                        backoff.reset(); // it streamed: a later failure retries soon again
                    }
                    if last_video.elapsed() >= self.context.timeout {
                        pull.close().await;
                        return RelayEnd::Failed(format!("no video for {:?}", self.context.timeout));
                    }
                    self.update(|s| {
                        s.clock = started.then(|| clock.name());
                        s.clock_offset_ms = offset;
                    });
                    if !got_packet && transport == TransportKind::Udp
                        && self.config.transport == RtspTransport::Automatic
                        && connected.elapsed() >= UDP_FIRST_PACKET
                    {
                        self.note_udp_failed();
                        pull.close().await;
                        return RelayEnd::Failed("no packet arrived over UDP".into());
                    }
                    if self.config.on_demand && idle.should_close(self.readers(), Instant::now()) {
                        pull.close().await;
                        return RelayEnd::Idle;
                    }
                }
            }
        }
    }
}

fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Tcp => "tcp",
        TransportKind::Udp => "udp",
    }
}

/// Whether the server refused a UDP transport (461 Unsupported Transport, or any SETUP refusal).
fn refused_transport(e: &ClientError) -> bool {
    matches!(e, ClientError::Rtsp(SessionError::Refused { method, .. }) if method == "SETUP")
}

/// The error as a dashboard reader needs it: wrong credentials said as such.
fn explain(e: &ClientError) -> String {
    match e {
        ClientError::Rtsp(SessionError::Refused { status: 401, .. }) => {
            format!("wrong or missing credentials: {e}")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..7).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait(), BACKOFF_FIRST);
    }

    #[test]
    fn an_idle_clock_closes_only_after_close_after_without_readers() {
        let t0 = Instant::now();
        let mut idle = IdleClock::new(Duration::from_secs(10), t0);
        assert!(!idle.should_close(0, t0 + Duration::from_secs(9)));
        assert!(!idle.should_close(2, t0 + Duration::from_secs(12)));
        assert!(!idle.should_close(0, t0 + Duration::from_secs(21)));
        assert!(idle.should_close(0, t0 + Duration::from_secs(22)));
        // close-after 0: the reader that woke it still gets the start timeout to arrive.
        let mut idle = IdleClock::new(Duration::ZERO, t0);
        assert!(!idle.should_close(0, t0 + Duration::from_secs(1)));
        assert!(idle.should_close(0, t0 + ON_DEMAND_START_TIMEOUT));
        let mut idle = IdleClock::new(Duration::ZERO, t0);
        assert!(!idle.should_close(1, t0 + Duration::from_secs(1)));
        assert!(idle.should_close(0, t0 + Duration::from_secs(1)));
    }
}
