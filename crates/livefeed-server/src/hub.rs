//! The path hub: one publisher per path fans its frames out to any number of readers.
//!
//! A path's stream is an H.264 or H.265 video track (track 0) and any other tracks (audio, …) the
//! publisher announced ([`TrackDescription`]); a [`HubFrame`] is a video access unit or one
//! RTP payload of another track ([`TrackPacket`]). Keyframes are the video's: the GOP cache
//! starts at one, a reader that falls behind skips every track to the next one, and payloads
//! of other tracks are dropped until the path's first video frame sets the timeline.
//!
//! Contract:
//! - [`Hub::claim_publisher`] reserves a path for one publisher (a second one is refused) and
//!   returns a [`Publisher`]; dropping it frees the path. Readers stay subscribed across a
//!   publisher leaving and a new one arriving.
//! - [`Publisher::publish`] never blocks on readers: each reader has a bounded queue; when it is
//!   full the reader skips everything up to the next keyframe and the skipped frames are counted
//!   as its drops. Other readers are untouched.
//! - [`Hub::subscribe`] starts a reader at the last keyframe (the GOP cache), so its first
//!   picture decodes at once.
//! - [`Hub::disconnect_reader`] drops a reader's queue: its [`Subscription::recv`] then ends
//!   (`None`) and the protocol shell closes that reader's session.
//! - [`Hub::snapshot`] describes every path for the API: publisher (with uptime, fps and
//!   bitrate over the last second), readers with their protocol, address and drops.
//! - Every keyframe handed to readers carries its parameter sets (H.264 SPS, PPS; H.265 VPS,
//!   SPS, PPS) in front of its slices.
//! - After loss at ingest ([`Publisher::publish_received`] with `lost_before`), the path's
//!   video skips to the next keyframe: no reader or cache gets a picture that may reference a
//!   lost one. Such skipped frames are counted per path.
//! - Timestamps stay monotonic for readers across publishers: a new publisher's `pts` are
//!   shifted to continue one frame after the previous publisher's last frame; other tracks
//!   are shifted by the same time, in their own clock.
//! - A path whose publisher left keeps its readers for [`HubLimits::publisher_grace`]; if no
//!   publisher returns by then, every reader is disconnected (their subscriptions end).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use livefeed_media::clock::{unix_now_ns, FrameDuration};
use livefeed_media::rate::RateMeter;
use livefeed_media::track::{TrackDescription, TrackPacket};
use livefeed_media::{h264, h265};
use livefeed_media::{AccessUnit, VideoCodec, VIDEO_CLOCK_RATE};
use livefeed_rtsp::fanout::{PathPacketizer, RtpFrame};
use livefeed_rtsp::server_session::PlayStart;
use tokio::sync::mpsc;

/// Limits of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Access units a reader may have queued before it starts skipping to the next keyframe
    /// (a path with tracks beside the video gets room for as many frames of each, up to two).
    pub reader_queue: usize,
    /// Access units kept in the GOP cache at most, the frames of other tracks not counted (a
    /// stream without keyframes stops caching).
    pub gop_cache_frames: usize,
    /// Bytes kept in the GOP cache at most (all tracks; a frame's RTP packets, once the path
    /// has RTSP readers, count beside its payload).
    pub gop_cache_bytes: usize,
    /// How long readers wait for a publisher that left to come back.
    pub publisher_grace: Duration,
    /// Client readers (not the server's own) per path at most.
    pub readers_per_path: usize,
}

/// Paths where a new publisher replaces the current one (`*` = every path).
#[derive(Debug, Clone, Default)]
pub struct Takeover(pub Vec<String>);

impl Takeover {
    fn allows(&self, path: &str) -> bool {
        self.0.iter().any(|p| p == "*" || p == path)
    }
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            reader_queue: 32,
            gop_cache_frames: 600,
            gop_cache_bytes: 32 << 20,
            publisher_grace: Duration::from_secs(10),
            readers_per_path: 500,
        }
    }
}

/// The parameters of a path's current stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The video codec.
    pub codec: VideoCodec,
    /// Video parameter set NAL unit (H.265; empty for H.264).
    pub vps: Bytes,
    /// Sequence parameter set NAL unit.
    pub sps: Bytes,
    /// Picture parameter set NAL unit.
    pub pps: Bytes,
    /// What the SPS says, when it could be read.
    pub video: Option<VideoInfo>,
    /// The tracks beside the video (track 1, 2, …), as the publisher announced them.
    pub others: Vec<TrackDescription>,
}

/// What a stream's SPS says, for the API and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Codec, profile and level, e.g. "H264 constrained baseline 3.1 640x480".
    pub description: String,
}

impl StreamInfo {
    /// Stream info from H.264 parameter sets.
    pub fn new(sps: Bytes, pps: Bytes) -> Self {
        let video = h264::SpsInfo::parse(&sps).ok().map(|i| VideoInfo {
            width: i.width,
            height: i.height,
            description: i.describe(),
        });
        StreamInfo {
            codec: VideoCodec::H264,
            vps: Bytes::new(),
            sps,
            pps,
            video,
            others: Vec::new(),
        }
    }

    /// Stream info from H.265 parameter sets.
    pub fn h265(vps: Bytes, sps: Bytes, pps: Bytes) -> Self {
        let video = h265::SpsInfo::parse(&sps).ok().map(|i| VideoInfo {
            width: i.width,
            height: i.height,
            description: i.describe(),
        });
        StreamInfo {
            codec: VideoCodec::H265,
            vps,
            sps,
            pps,
            video,
            others: Vec::new(),
        }
    }

    /// Stream info from the parameter sets of `codec`, in [`VideoCodec::parameter_set_types`]
    /// order; `None` when one is missing.
    pub fn from_parameter_sets(codec: VideoCodec, sets: &[Bytes]) -> Option<Self> {
        match (codec, sets) {
            (VideoCodec::H264, [sps, pps]) => Some(Self::new(sps.clone(), pps.clone())),
            (VideoCodec::H265, [vps, sps, pps]) => {
                Some(Self::h265(vps.clone(), sps.clone(), pps.clone()))
            }
            _ => None,
        }
    }

    /// The parameter sets in the order a keyframe carries them.
    pub fn parameter_sets(&self) -> Vec<Bytes> {
        match self.codec {
            VideoCodec::H264 => vec![self.sps.clone(), self.pps.clone()],
            VideoCodec::H265 => vec![self.vps.clone(), self.sps.clone(), self.pps.clone()],
        }
    }
}

/// What a frame of the hub carries.
#[derive(Debug)]
pub enum Media {
    /// A video access unit (track 0).
    Video(AccessUnit),
    /// One RTP payload of another track.
    Packet(TrackPacket),
}

/// One frame as the hub hands it out.
#[derive(Debug)]
pub struct HubFrame {
    /// The media.
    pub media: Media,
    /// When it was complete at the server.
    pub ingest: Instant,
    /// Its RTP packets as every RTSP reader of the path sends them, once the path has had an
    /// RTSP reader (see [`Hub::subscribe_rtsp`]).
    rtp: OnceLock<RtpFrame>,
    /// Whether a reader has sent it yet (see [`HubFrame::first_egress`]).
    sent: AtomicBool,
}

impl HubFrame {
    /// A frame of `media`.
    pub fn new(media: Media, ingest: Instant) -> Self {
        HubFrame {
            media,
            ingest,
            rtp: OnceLock::new(),
            sent: AtomicBool::new(false),
        }
    }

    /// `true` for the first reader to say it sent this frame, `false` for every later one:
    /// the store keeps one server-added sample per frame.
    pub fn first_egress(&self) -> bool {
        !self.sent.swap(true, Ordering::Relaxed)
    }

    /// A video frame.
    pub fn video_frame(au: AccessUnit, ingest: Instant) -> Self {
        Self::new(Media::Video(au), ingest)
    }

    /// The frame's shared RTP packets (see [`Hub::subscribe_rtsp`]); `None` for a frame
    /// published before the path had an RTSP reader and not in its GOP cache then.
    pub fn rtp(&self) -> Option<&RtpFrame> {
        self.rtp.get()
    }

    /// The access unit, for a video frame.
    pub fn video(&self) -> Option<&AccessUnit> {
        match &self.media {
            Media::Video(au) => Some(au),
            Media::Packet(_) => None,
        }
    }

    /// Whether this is a video keyframe.
    pub fn is_keyframe(&self) -> bool {
        self.video().is_some_and(|au| au.keyframe)
    }

    /// Payload bytes.
    pub fn payload_len(&self) -> usize {
        match &self.media {
            Media::Video(au) => au.payload_len(),
            Media::Packet(p) => p.payload.len(),
        }
    }

    /// When it reached the server, Unix ns.
    pub fn ingest_unix_ns(&self) -> u64 {
        unix_now_ns().saturating_sub(self.ingest.elapsed().as_nanos() as u64)
    }

    /// The wall-clock time (Unix ns) a reader's sender reports map this frame's RTP time to,
    /// the same clock for every track: a video frame's capture stamp; a payload's capture
    /// time (from the publisher's reports) when the video's frames carry capture stamps too
    /// (`video_stamped`: both are then in the publisher's clock); otherwise the time it
    /// reached the server. Never the time it is sent, which for a frame from the GOP cache is
    /// up to a GOP later. Readers that sync tracks by sender reports then line them up
    /// whatever the publisher's clock says.
    pub fn sender_report_unix_ns(&self, video_stamped: bool) -> u64 {
        let captured = match &self.media {
            Media::Video(au) => au.capture.map(|c| c.unix_ns),
            Media::Packet(p) => p.capture_unix_ns.filter(|_| video_stamped),
        };
        captured.unwrap_or_else(|| self.ingest_unix_ns())
    }
}

/// An item in a reader's queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The frame.
    pub frame: Arc<HubFrame>,
    /// It came from the GOP cache at subscription (older than live).
    pub from_cache: bool,
}

/// A reader that can take a live frame straight from the publisher's task, without a hop
/// through its queue and task (see [`Hub::subscribe_rtsp`]). Called under the path's lock,
/// in publish order.
pub trait DirectSink: Send + Sync {
    /// Sends `delivery` now if nothing waits ahead of it, else puts it on `queue`. A `Full`
    /// or `Closed` error is the queue's, as from [`mpsc::Sender::try_send`].
    fn deliver(
        &self,
        delivery: Delivery,
        queue: &mpsc::Sender<Delivery>,
    ) -> Result<(), mpsc::error::TrySendError<Delivery>>;
}

/// Who publishes a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherInfo {
    /// Protocol and transport, e.g. `rtsp/tcp`.
    pub protocol: String,
    /// Remote address.
    pub remote: String,
}

/// Who reads a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Protocol, e.g. `rtsp/tcp`, `webrtc`, or `internal` for the server's own muxers.
    pub protocol: String,
    /// Remote address (`-` for internal readers).
    pub remote: String,
}

impl ReaderInfo {
    /// The protocol of the server's own readers (the LL-HLS muxer), which are not clients.
    pub const INTERNAL: &'static str = "internal";

    /// A reader inside the server (e.g. the LL-HLS muxer of `what`).
    pub fn internal() -> Self {
        ReaderInfo {
            protocol: Self::INTERNAL.into(),
            remote: "-".into(),
        }
    }

    /// Whether this is one of the server's own readers.
    pub fn is_internal(&self) -> bool {
        self.protocol == Self::INTERNAL
    }
}

/// A reader as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderSnapshot {
    /// Id for [`Hub::disconnect_reader`].
    pub id: u64,
    /// Protocol and address.
    pub info: ReaderInfo,
    /// When it subscribed.
    pub since: SystemTime,
    /// Frames it skipped because it fell behind.
    pub drops: u64,
}

/// A publisher as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherSnapshot {
    /// Protocol and address.
    pub info: PublisherInfo,
    /// When it claimed the path.
    pub since: SystemTime,
    /// Access units in the last second.
    pub fps: f64,
    /// Payload bits per second over the last second.
    pub bitrate_bps: f64,
}

/// Why a path cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The path is not configured.
    #[error("path {0:?} is not served")]
    NotServed(String),
    /// The path has as many readers as allowed.
    #[error("path {path:?} already has {limit} readers (max-readers-per-path)")]
    TooManyReaders {
        /// The path.
        path: String,
        /// The cap.
        limit: usize,
    },
}

/// Why a path cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Another publisher holds the path.
    #[error("path {path:?} already has a publisher ({by})")]
    Busy {
        /// The path.
        path: String,
        /// The current publisher's remote address.
        by: String,
    },
    /// The path is not configured.
    #[error("path {0:?} is not configured on this server")]
    UnknownPath(String),
}

struct ReaderSlot {
    id: u64,
    tx: mpsc::Sender<Delivery>,
    /// An RTSP reader (sends [`HubFrame::rtp`]).
    rtsp: bool,
    /// Takes live frames straight from the publisher (see [`DirectSink`]).
    direct: Option<Arc<dyn DirectSink>>,
    skipping: bool,
    drops: Arc<AtomicU64>,
    info: ReaderInfo,
    since: SystemTime,
}

/// What a new reader sends.
enum ReaderKind {
    /// Frames, from its queue.
    Plain,
    /// RTP packets of its path (see [`Hub::subscribe_rtsp`]).
    Rtsp(Option<Arc<dyn DirectSink>>),
}

struct PublisherSlot {
    id: u64,
    info: PublisherInfo,
    since: SystemTime,
    /// Added to this publisher's `pts` (set by its first access unit).
    pts_offset: Option<i64>,
    /// Video was lost at ingest: frames are skipped until the next keyframe.
    broken: bool,
}

#[derive(Default)]
struct PathInner {
    publisher: Option<PublisherSlot>,
    stream: Option<StreamInfo>,
    /// The current publisher's tracks beside the video.
    others: Vec<TrackDescription>,
    skipped_after_loss: u64,
    gop: Vec<Arc<HubFrame>>,
    gop_bytes: usize,
    /// Video frames in `gop`.
    gop_video: usize,
    readers: Vec<ReaderSlot>,
    frames_in: u64,
    bytes_in: u64,
    /// Frames and bytes published over the last second.
    rate: RateMeter,
    /// Drops of readers that have left.
    drops_of_gone_readers: u64,
    /// The frames handed out: the last `pts` and the frame duration, which place a new
    /// publisher's first frame one frame after the last one.
    frames: FrameDuration,
    /// The path's outgoing RTP streams, from its first RTSP reader on.
    rtp: Option<RtpFanout>,
    /// Counts publishers, so a grace timer knows whether one came back meanwhile.
    generation: u64,
}

/// One path's shared state.
pub struct PathState {
    name: String,
    inner: Mutex<PathInner>,
    /// Counts keyframe requests (a viewer's PLI, loss at ingest); the publisher watches it.
    keyframe_requests: tokio::sync::watch::Sender<u64>,
}

impl PathState {
    fn request_keyframe(&self) {
        self.keyframe_requests.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> MutexGuard<'_, PathInner> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than stopping the whole path, so poisoned locks are recovered.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The path name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A snapshot of a path for logs and the API.
#[derive(Debug, Clone)]
pub struct PathSnapshot {
    /// Path name.
    pub name: String,
    /// The publisher, if one is connected.
    pub publisher: Option<PublisherSnapshot>,
    /// Current stream parameters.
    pub stream: Option<StreamInfo>,
    /// Readers, the server's own (internal) ones included.
    pub readers: Vec<ReaderSnapshot>,
    /// Access units published so far.
    pub frames_in: u64,
    /// Payload bytes published so far.
    pub bytes_in: u64,
    /// Frames skipped by all readers so far (those that left included).
    pub drops: u64,
    /// Video frames skipped at ingest after loss, up to the next keyframe.
    pub skipped_after_loss: u64,
    /// Keyframe requests made to the publisher so far (viewers' PLI/FIR, loss at ingest).
    pub keyframe_requests: u64,
}

impl PathSnapshot {
    /// A path with nothing on it.
    pub fn empty(name: String) -> Self {
        PathSnapshot {
            name,
            publisher: None,
            stream: None,
            readers: Vec::new(),
            frames_in: 0,
            bytes_in: 0,
            drops: 0,
            skipped_after_loss: 0,
            keyframe_requests: 0,
        }
    }

    /// Readers that are clients (not the server's own muxers).
    pub fn clients(&self) -> impl Iterator<Item = &ReaderSnapshot> {
        self.readers.iter().filter(|r| !r.info.is_internal())
    }
}

/// All paths of a server.
pub struct Hub {
    paths: Mutex<HashMap<String, Arc<PathState>>>,
    allowed: Option<Vec<String>>,
    limits: HubLimits,
    takeover: Takeover,
    next_id: AtomicU64,
    /// Paths whose source connects when a reader asks (see [`Hub::register_on_demand`]).
    on_demand: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// How long a reader waits for an on-demand source to deliver its stream (MediaMTX's
/// `sourceOnDemandStartTimeout`).
pub const ON_DEMAND_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`Hub::stream_on_demand`] looks whether the source has delivered.
const ON_DEMAND_POLL: Duration = Duration::from_millis(10);

impl Hub {
    /// A hub serving any path (`allowed` = `None`) or only the listed ones.
    pub fn new(allowed: Option<Vec<String>>, limits: HubLimits) -> Arc<Self> {
        Self::with_takeover(allowed, limits, Takeover::default())
    }

    /// [`Hub::new`], where a new publisher on a path of `takeover` replaces the current one
    /// (whose [`Publisher::publish`] then answers `false`).
    pub fn with_takeover(
        allowed: Option<Vec<String>>,
        limits: HubLimits,
        takeover: Takeover,
    ) -> Arc<Self> {
        Arc::new(Hub {
            paths: Mutex::new(HashMap::new()),
            allowed,
            limits,
            takeover,
            next_id: AtomicU64::new(1),
            on_demand: Mutex::default(),
        })
    }

    fn path(&self, name: &str) -> Option<Arc<PathState>> {
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|p| p == name) {
                return None;
            }
        }
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let state = paths.entry(name.to_string()).or_insert_with(|| {
            Arc::new(PathState {
                name: name.to_string(),
                inner: Mutex::new(PathInner::default()),
                keyframe_requests: tokio::sync::watch::Sender::new(0),
            })
        });
        Some(state.clone())
    }

    /// Reserves `path` for a publisher of video only; `stream` is what its SDP announced, if
    /// anything.
    pub fn claim_publisher(
        self: &Arc<Self>,
        path: &str,
        info: PublisherInfo,
        stream: Option<StreamInfo>,
    ) -> Result<Publisher, PublishError> {
        self.claim_publisher_with(path, info, stream, Vec::new())
    }

    /// Reserves `path` for a publisher of video and the tracks `others` (tracks 1, 2, …).
    pub fn claim_publisher_with(
        self: &Arc<Self>,
        path: &str,
        info: PublisherInfo,
        stream: Option<StreamInfo>,
        others: Vec<TrackDescription>,
    ) -> Result<Publisher, PublishError> {
        let state = self
            .path(path)
            .ok_or_else(|| PublishError::UnknownPath(path.to_string()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut inner = state.lock();
            if let Some(current) = &inner.publisher {
                if !self.takeover.allows(path) {
                    return Err(PublishError::Busy {
                        path: path.to_string(),
                        by: current.info.remote.clone(),
                    });
                }
                tracing::info!(path, old = %current.info.remote, new = %info.remote,
                    "a new publisher takes the path over");
            }
            inner.publisher = Some(PublisherSlot {
                id,
                info,
                since: SystemTime::now(),
                pts_offset: None,
                broken: false,
            });
            inner.generation += 1;
            follow_others(&mut inner, &others, path);
            if let Some(stream) = stream {
                follow_codec(&mut inner, stream.codec, path);
                inner.stream = Some(stream);
            }
            inner.others = others;
            inner.gop.clear();
            inner.gop_bytes = 0;
            inner.gop_video = 0;
        }
        Ok(Publisher {
            state,
            id,
            limits: self.limits,
        })
    }

    /// Whether a publisher could claim `path` now ([`Hub::claim_publisher_with`] would not
    /// refuse it), without claiming it: a WHIP offer is answered at once, and the path claimed
    /// only once the session connected.
    pub fn check_publishable(&self, path: &str) -> Result<(), PublishError> {
        let state = self
            .path(path)
            .ok_or_else(|| PublishError::UnknownPath(path.to_string()))?;
        let inner = state.lock();
        match &inner.publisher {
            Some(current) if !self.takeover.allows(path) => Err(PublishError::Busy {
                path: path.to_string(),
                by: current.info.remote.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `path` has a publisher now.
    pub fn has_publisher(&self, path: &str) -> bool {
        let paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        paths
            .get(path)
            .is_some_and(|state| state.lock().publisher.is_some())
    }

    /// Access units published on `path` so far, if the path exists.
    pub fn frames_in(&self, path: &str) -> Option<u64> {
        let paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let state = paths.get(path)?;
        let frames = state.lock().frames_in;
        Some(frames)
    }

    /// The current stream parameters of `path`, if it has a stream.
    pub fn stream_info(&self, path: &str) -> Option<StreamInfo> {
        let paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let state = paths.get(path)?;
        let inner = state.lock();
        inner.publisher.as_ref()?;
        let mut stream = inner.stream.clone()?;
        stream.others = inner.others.clone();
        Some(stream)
    }

    /// Registers an on-demand source of `path`: the returned `Notify` is woken whenever a
    /// reader asks for the path ([`Hub::demand`]).
    pub fn register_on_demand(&self, path: &str) -> Arc<tokio::sync::Notify> {
        let mut on_demand = self.on_demand.lock().unwrap_or_else(|p| p.into_inner());
        on_demand.entry(path.to_string()).or_default().clone()
    }

    /// Tells `path`'s on-demand source a reader wants it; `false` if it has none.
    pub fn demand(&self, path: &str) -> bool {
        let on_demand = self.on_demand.lock().unwrap_or_else(|p| p.into_inner());
        on_demand.get(path).map(|n| n.notify_one()).is_some()
    }

    /// The stream of `path` ([`Hub::stream_info`]); when it has none but an on-demand source,
    /// the source is woken and its stream awaited for up to `timeout`.
    pub async fn stream_on_demand(&self, path: &str, timeout: Duration) -> Option<StreamInfo> {
        if let Some(stream) = self.stream_info(path) {
            return Some(stream);
        }
        if !self.demand(path) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(ON_DEMAND_POLL).await;
            if let Some(stream) = self.stream_info(path) {
                return Some(stream);
            }
        }
        None
    }

    /// The client readers of `path` (the server's own ones not counted).
    pub fn client_readers(&self, path: &str) -> usize {
        let paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        paths.get(path).map_or(0, |state| {
            let inner = state.lock();
            inner
                .readers
                .iter()
                .filter(|r| !r.info.is_internal())
                .count()
        })
    }

    /// Subscribes one of the server's own readers to `path` (see [`Hub::subscribe_as`]).
    pub fn subscribe(&self, path: &str) -> Option<Subscription> {
        self.subscribe_as(path, ReaderInfo::internal()).ok()
    }

    /// Subscribes a reader to `path`. `None` if the path is not served. The reader first gets
    /// the GOP cache (from the last keyframe), then live frames.
    /// Client readers beyond [`HubLimits::readers_per_path`] are refused.
    pub fn subscribe_as(
        &self,
        path: &str,
        info: ReaderInfo,
    ) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(path, info, ReaderKind::Plain, |_| ())
            .map(|(sub, ())| sub)
    }

    /// [`Hub::subscribe_as`] for an RTSP reader of `tracks`: while the path has one, every
    /// frame of it (and its GOP cache at the first one's arrival: a memory copy under the
    /// path's lock, bounded by [`HubLimits::gop_cache_bytes`]) is packetized once, in publish
    /// order, for all its RTSP readers ([`HubFrame::rtp`]). Returns the RTP-Info of each track
    /// the reader's first packet of is known (its first frame of it in the GOP cache): the
    /// sequence number and RTP time of that packet. With `direct`, live frames go through it
    /// rather than straight to the subscription's queue (the GOP cache always goes there).
    pub fn subscribe_rtsp(
        &self,
        path: &str,
        info: ReaderInfo,
        tracks: &[usize],
        direct: Option<Arc<dyn DirectSink>>,
    ) -> Result<(Subscription, Vec<(usize, PlayStart)>), SubscribeError> {
        let kind = ReaderKind::Rtsp(direct);
        self.subscribe_with(path, info, kind, |inner| {
            inner.rtp.get_or_insert_with(RtpFanout::default);
            let now = Instant::now();
            let gop = inner.gop.clone();
            for frame in &gop {
                packetize_for_rtsp_from(inner, frame, now);
            }
            tracks
                .iter()
                .filter_map(|&track| Some((track, rtp_start(&gop, track)?)))
                .collect()
        })
    }

    /// The SSRC of `path`'s track `track` (0 = video) as its RTSP readers get it (see
    /// [`Hub::subscribe_rtsp`]), for the reader's SETUP answer. `None` if the path is not
    /// published or has no such track.
    pub fn rtsp_ssrc(&self, path: &str, track: usize) -> Option<u32> {
        let state = self.path(path)?;
        let mut inner = state.lock();
        inner.publisher.as_ref()?;
        let payload_type = match track {
            0 => livefeed_rtsp::rtp_sender::PAYLOAD_TYPE,
            _ => inner.others.get(track - 1)?.payload_type,
        };
        let fanout = inner.rtp.get_or_insert_with(RtpFanout::default);
        Some(fanout.packetizer.ssrc(track, payload_type))
    }

    /// Subscribes a reader; `prepare` runs under the path's lock before the GOP cache is
    /// queued for it.
    fn subscribe_with<T>(
        &self,
        path: &str,
        info: ReaderInfo,
        kind: ReaderKind,
        prepare: impl FnOnce(&mut PathInner) -> T,
    ) -> Result<(Subscription, T), SubscribeError> {
        let state = self
            .path(path)
            .ok_or_else(|| SubscribeError::NotServed(path.to_string()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let drops = Arc::new(AtomicU64::new(0));
        let (rx, prepared) = {
            let mut inner = state.lock();
            let clients = inner
                .readers
                .iter()
                .filter(|r| !r.info.is_internal())
                .count();
            if !info.is_internal() && clients >= self.limits.readers_per_path {
                tracing::warn!(path, remote = %info.remote, limit = self.limits.readers_per_path,
                    "reader refused: max-readers-per-path reached");
                return Err(SubscribeError::TooManyReaders {
                    path: path.to_string(),
                    limit: self.limits.readers_per_path,
                });
            }
            let prepared = prepare(&mut inner);
            let tracks = 1 + inner.others.len().min(2);
            let capacity = self.limits.reader_queue * tracks + inner.gop.len();
            let (tx, rx) = mpsc::channel(capacity.max(1));
            for frame in &inner.gop {
                // The channel has room for the whole cache.
                let _ = tx.try_send(Delivery {
                    frame: frame.clone(),
                    from_cache: true,
                });
            }
            let skipping = inner.gop.is_empty();
            let (rtsp, direct) = match kind {
                ReaderKind::Plain => (false, None),
                ReaderKind::Rtsp(direct) => (true, direct),
            };
            inner.readers.push(ReaderSlot {
                id,
                tx,
                rtsp,
                direct,
                skipping,
                drops: drops.clone(),
                info,
                since: SystemTime::now(),
            });
            (rx, prepared)
        };
        let sub = Subscription {
            state,
            id,
            rx,
            drops,
            not_carried: NotCarried::default(),
        };
        Ok((sub, prepared))
    }

    /// Snapshots of all paths that have a publisher or readers.
    pub fn snapshot(&self) -> Vec<PathSnapshot> {
        let paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut out: Vec<PathSnapshot> = paths
            .values()
            .map(|state| snapshot_of(state, &mut state.lock(), now))
            .filter(|s| s.publisher.is_some() || !s.readers.is_empty())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Disconnects the client reader `id` (internal readers cannot be); `false` if there is
    /// none. Its subscription ends and its protocol shell closes the session.
    pub fn disconnect_reader(&self, id: u64) -> bool {
        let paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        for state in paths.values() {
            let mut inner = state.lock();
            let found = inner
                .readers
                .iter()
                .position(|r| r.id == id && !r.info.is_internal());
            if let Some(i) = found {
                let slot = inner.readers.remove(i);
                inner.drops_of_gone_readers += slot.drops.load(Ordering::Relaxed);
                tracing::info!(path = %state.name, reader = id, protocol = %slot.info.protocol,
                    remote = %slot.info.remote, "reader disconnected on request");
                return true;
            }
        }
        false
    }
}

fn snapshot_of(state: &PathState, inner: &mut PathInner, now: Instant) -> PathSnapshot {
    let name = &state.name;
    let rates = inner.rate.per_second(now);
    let (fps, bitrate_bps) = (rates.events, rates.amount * 8.0);
    let readers: Vec<ReaderSnapshot> = inner
        .readers
        .iter()
        .map(|r| ReaderSnapshot {
            id: r.id,
            info: r.info.clone(),
            since: r.since,
            drops: r.drops.load(Ordering::Relaxed),
        })
        .collect();
    let drops = inner.drops_of_gone_readers + readers.iter().map(|r| r.drops).sum::<u64>();
    PathSnapshot {
        name: name.to_string(),
        publisher: inner.publisher.as_ref().map(|p| PublisherSnapshot {
            info: p.info.clone(),
            since: p.since,
            fps,
            bitrate_bps,
        }),
        stream: inner.stream.clone().map(|mut s| {
            s.others = inner.others.clone();
            s
        }),
        readers,
        frames_in: inner.frames_in,
        bytes_in: inner.bytes_in,
        drops,
        skipped_after_loss: inner.skipped_after_loss,
        keyframe_requests: *state.keyframe_requests.borrow(),
    }
}

/// The right to publish one path; dropping it frees the path.
pub struct Publisher {
    state: Arc<PathState>,
    id: u64,
    limits: HubLimits,
}

impl Publisher {
    /// The path name.
    pub fn path(&self) -> &str {
        &self.state.name
    }

    /// Changes whenever someone asks this path's publisher for a keyframe (see
    /// [`Subscription::request_keyframe`]); requests made before this call are not seen.
    pub fn keyframe_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.keyframe_requests.subscribe()
    }

    /// Hands one access unit to every reader. Keyframes missing SPS/PPS get the known ones.
    /// `false` when another publisher has taken the path over: this one should stop.
    pub fn publish(&self, au: AccessUnit, ingest: Instant) -> bool {
        self.publish_received(au, ingest, false)
    }

    /// [`Publisher::publish`] for an access unit received from a network: `lost_before` says
    /// something was lost since the previous one, so the video skips to the next keyframe.
    pub fn publish_received(&self, mut au: AccessUnit, ingest: Instant, lost_before: bool) -> bool {
        let mut inner = self.state.lock();
        if inner.publisher.as_ref().is_none_or(|p| p.id != self.id) {
            return false;
        }
        follow_codec(&mut inner, au.codec, &self.state.name);
        let Some(slot) = inner.publisher.as_mut() else {
            return false;
        };
        let newly_broken = lost_before && !slot.broken && !au.keyframe;
        slot.broken = (slot.broken || lost_before) && !au.keyframe;
        if slot.broken {
            inner.skipped_after_loss += 1;
            drop(inner);
            if newly_broken {
                // The sooner the next keyframe, the shorter the gap every reader sees.
                self.state.request_keyframe();
            }
            return true;
        }
        if au.keyframe {
            complete_parameter_sets(&mut inner, &mut au);
        }
        continue_timestamps(&mut inner, &mut au);
        let size = au.payload_len();
        let frame = Arc::new(HubFrame::video_frame(au, ingest));
        packetize_for_rtsp(&mut inner, &frame);
        inner.frames_in += 1;
        inner.bytes_in += size as u64;
        inner.rate.record(ingest, size as u64);
        update_gop_cache(&mut inner, &frame, &self.limits);
        fan_out(&mut inner, &frame);
        true
    }

    /// Hands one payload of track `packet.track` (1, 2, …) to every reader, its `pts` moved
    /// onto the path's timeline. Dropped before the path's first video frame, and for a track
    /// this publisher did not announce. `false` as for [`Publisher::publish`].
    pub fn publish_packet(&self, mut packet: TrackPacket, ingest: Instant) -> bool {
        let mut inner = self.state.lock();
        let Some(slot) = inner.publisher.as_ref().filter(|p| p.id == self.id) else {
            return false;
        };
        let Some(offset) = slot.pts_offset else {
            return true;
        };
        let Some(track) = packet
            .track
            .checked_sub(1)
            .and_then(|i| inner.others.get(i))
        else {
            return true;
        };
        let scaled =
            i128::from(offset) * i128::from(track.clock_rate) / i128::from(VIDEO_CLOCK_RATE);
        packet.pts = packet
            .pts
            .saturating_add_signed(i64::try_from(scaled).unwrap_or(0));
        let size = packet.payload.len();
        let frame = Arc::new(HubFrame::new(Media::Packet(packet), ingest));
        packetize_for_rtsp(&mut inner, &frame);
        inner.bytes_in += size as u64;
        update_gop_cache(&mut inner, &frame, &self.limits);
        fan_out(&mut inner, &frame);
        true
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        if inner.publisher.as_ref().is_some_and(|p| p.id == self.id) {
            inner.publisher = None;
            inner.rate.clear();
            start_grace_timer(&self.state, inner.generation, self.limits.publisher_grace);
            inner.gop.clear();
            inner.gop_bytes = 0;
            inner.gop_video = 0;
        }
    }
}

/// Shifts `au.pts` so it continues the path's timeline (a new publisher starts one frame after
/// the previous one's last frame), and remembers it.
fn continue_timestamps(inner: &mut PathInner, au: &mut AccessUnit) {
    let last_pts = inner.frames.last_pts();
    let duration = u64::from(inner.frames.ticks());
    let Some(slot) = inner.publisher.as_mut() else {
        return;
    };
    let offset = *slot.pts_offset.get_or_insert_with(|| match last_pts {
        Some(last) => (last + duration) as i64 - au.pts as i64,
        None => 0,
    });
    au.pts = au.pts.saturating_add_signed(offset);
    inner.frames.observe(au.pts);
}

/// After `grace`, disconnects every reader of the path unless a publisher came back.
fn start_grace_timer(state: &Arc<PathState>, generation: u64, grace: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let state = state.clone();
    runtime.spawn(async move {
        tokio::time::sleep(grace).await;
        let mut inner = state.lock();
        if inner.publisher.is_some() || inner.generation != generation || inner.readers.is_empty()
        {
            return;
        }
        let gone: u64 = inner
            .readers
            .iter()
            .map(|r| r.drops.load(Ordering::Relaxed))
            .sum();
        inner.drops_of_gone_readers += gone;
        let n = inner.readers.len();
        inner.readers.clear();
        tracing::info!(path = %state.name, readers = n, ?grace, "no publisher came back: readers disconnected");
    });
}

/// A path whose video changes codec (a new publisher sends H.265 where the last sent H.264):
/// its client readers negotiated the old codec, so they are disconnected (they reconnect and
/// negotiate again); the server's own outputs (LL-HLS, recordings) follow the new stream.
fn follow_codec(inner: &mut PathInner, codec: VideoCodec, path: &str) {
    let Some(old) = inner
        .stream
        .as_ref()
        .map(|s| s.codec)
        .filter(|&c| c != codec)
    else {
        return;
    };
    inner.stream = None;
    let n = disconnect_clients(inner);
    tracing::info!(
        path,
        from = old.name(),
        to = codec.name(),
        readers = n,
        "the path's video codec changed: its readers are disconnected to negotiate again"
    );
}

/// A new publisher whose tracks beside the video differ from the last one's (AAC where Opus
/// was, another clock rate or payload type): client readers set them up as they were, so they
/// are disconnected to negotiate again, as for a change of video codec.
fn follow_others(inner: &mut PathInner, others: &[TrackDescription], path: &str) {
    if inner.stream.is_none() || inner.others == others {
        return;
    }
    let n = disconnect_clients(inner);
    if n > 0 {
        tracing::info!(
            path,
            readers = n,
            "the path's tracks changed: its readers are disconnected to negotiate again"
        );
    }
}

/// Disconnects every client reader (their subscriptions end); returns how many.
fn disconnect_clients(inner: &mut PathInner) -> usize {
    let before = inner.readers.len();
    let mut gone = 0;
    inner.readers.retain(|r| {
        let keep = r.info.is_internal();
        if !keep {
            gone += r.drops.load(Ordering::Relaxed);
        }
        keep
    });
    inner.drops_of_gone_readers += gone;
    before - inner.readers.len()
}

/// Learns the parameter sets from in-band keyframes, and adds them to keyframes that lack
/// them (when the path's known ones are of the same codec).
fn complete_parameter_sets(inner: &mut PathInner, au: &mut AccessUnit) {
    let codec = au.codec;
    let found: Option<Vec<Bytes>> = codec
        .parameter_set_types()
        .iter()
        .map(|&t| {
            au.nals
                .iter()
                .find(|n| codec.nal_unit_type(n) == Some(t))
                .cloned()
        })
        .collect();
    if let Some(sets) = found {
        let changed = inner
            .stream
            .as_ref()
            .is_none_or(|s| s.codec != codec || s.parameter_sets() != sets);
        if changed {
            inner.stream = StreamInfo::from_parameter_sets(codec, &sets);
        }
        return;
    }
    if let Some(stream) = inner.stream.as_ref().filter(|s| s.codec == codec) {
        au.nals.retain(|n| !codec.is_parameter_set(n));
        au.nals.splice(0..0, stream.parameter_sets());
    }
}

/// A path's outgoing RTP streams (see [`Hub::subscribe_rtsp`]).
#[derive(Default)]
struct RtpFanout {
    packetizer: PathPacketizer,
    /// Whether the last video frame carried a capture stamp (see
    /// [`HubFrame::sender_report_unix_ns`]).
    video_stamped: bool,
}

/// Packetizes `frame` for the path's RTSP readers, if it has any. Without, frames are not
/// packetized, but the path's RTP streams stay: the next RTSP reader's GOP cache is packetized
/// at its arrival where it left off, so its frames follow every earlier one's sequence.
fn packetize_for_rtsp(inner: &mut PathInner, frame: &HubFrame) {
    if inner.rtp.is_some() && inner.readers.iter().any(|r| r.rtsp) {
        packetize_for_rtsp_from(inner, frame, Instant::now());
    }
}

/// Packetizes `frame` (unless it already is), starting the path's RTP streams if needed.
fn packetize_for_rtsp_from(inner: &mut PathInner, frame: &HubFrame, now: Instant) {
    if frame.rtp.get().is_some() {
        return;
    }
    let payload_type = |track: usize| {
        track
            .checked_sub(1)
            .and_then(|i| inner.others.get(i))
            .map_or(livefeed_rtsp::rtp_sender::PAYLOAD_TYPE, |t| t.payload_type)
    };
    let packet_pt = match &frame.media {
        Media::Packet(p) => payload_type(p.track),
        Media::Video(_) => 0,
    };
    let fanout = inner.rtp.get_or_insert_with(RtpFanout::default);
    let packets = match &frame.media {
        Media::Video(au) => {
            fanout.video_stamped = au.capture.is_some();
            fanout.packetizer.video(au, frame.ingest_unix_ns(), now)
        }
        Media::Packet(p) => {
            let at = frame.sender_report_unix_ns(fanout.video_stamped);
            fanout.packetizer.packet(p, packet_pt, at, now)
        }
    };
    let _ = frame.rtp.set(packets);
}

/// RTP-Info of `track` for a reader that first gets `gop`: its first packet of the track
/// there. `None` when the GOP cache has none of it (the reader's first packet is one not
/// yet made: which, depends on when its first keyframe comes).
fn rtp_start(gop: &[Arc<HubFrame>], track: usize) -> Option<PlayStart> {
    gop.iter()
        .filter_map(|f| f.rtp())
        .find(|r| r.track() == track)
        .map(|frame| frame.start())
}

fn update_gop_cache(inner: &mut PathInner, frame: &Arc<HubFrame>, limits: &HubLimits) {
    if frame.is_keyframe() {
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_video = 0;
    } else if inner.gop.is_empty() {
        return; // no keyframe to start from: nothing worth caching
    }
    let size = frame.payload_len() + frame.rtp().map_or(0, RtpFrame::len);
    if inner.gop_video >= limits.gop_cache_frames || inner.gop_bytes + size > limits.gop_cache_bytes
    {
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_video = 0;
        return;
    }
    inner.gop.push(frame.clone());
    inner.gop_bytes += size;
    if frame.video().is_some() {
        inner.gop_video += 1;
    }
}

fn fan_out(inner: &mut PathInner, frame: &Arc<HubFrame>) {
    inner.readers.retain_mut(|reader| {
        if reader.skipping && !frame.is_keyframe() {
            if frame.video().is_some() {
                reader.drops.fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        let delivery = Delivery {
            frame: frame.clone(),
            from_cache: false,
        };
        let queued = match &reader.direct {
            Some(direct) => direct.deliver(delivery, &reader.tx),
            None => reader.tx.try_send(delivery),
        };
        match queued {
            Ok(()) => {
                reader.skipping = false;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                reader.skipping = true;
                if frame.video().is_some() {
                    reader.drops.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
}

/// A reader's subscription to a path; dropping it unsubscribes.
pub struct Subscription {
    state: Arc<PathState>,
    id: u64,
    rx: mpsc::Receiver<Delivery>,
    drops: Arc<AtomicU64>,
    not_carried: NotCarried,
}

/// Asks one path's publisher for keyframes (see [`Subscription::keyframe_requester`]).
#[derive(Clone)]
pub struct KeyframeRequester(Arc<PathState>);

impl KeyframeRequester {
    /// See [`Subscription::request_keyframe`].
    pub fn request(&self) {
        self.0.request_keyframe();
    }
}

/// Remembers which tracks an output said it does not carry, so it says so once per track.
#[derive(Debug, Default)]
pub struct NotCarried(u64);

impl NotCarried {
    /// Logs, the first time per track, that `output` does not carry `frame`'s track.
    pub fn note(&mut self, path: &str, output: &str, frame: &HubFrame) {
        let Media::Packet(packet) = &frame.media else {
            return;
        };
        let bit = 1u64 << packet.track.min(63);
        if self.0 & bit == 0 {
            self.0 |= bit;
            tracing::info!(
                path,
                output,
                track = packet.track,
                "this output does not carry the track yet: its frames are skipped"
            );
        }
    }
}

impl Subscription {
    /// The next frame for this reader; `None` only if the hub is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// The next frame for this reader if one is queued already.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    /// Frames this reader skipped because it fell behind.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    /// The path name.
    pub fn path(&self) -> &str {
        &self.state.name
    }

    /// The tracks beside the video that the path's publisher announced.
    pub fn others(&self) -> Vec<TrackDescription> {
        self.state.lock().others.clone()
    }

    /// Asks the path's publisher for a keyframe (a viewer lost a picture or needs one to
    /// start): the publisher's ingest passes it on (RTCP PLI to an RTSP publisher), at most a
    /// few times a second however many readers ask.
    pub fn request_keyframe(&self) {
        self.state.request_keyframe();
    }

    /// A handle that asks for keyframes like [`Subscription::request_keyframe`], for the part
    /// of an output that does not hold the subscription.
    pub fn keyframe_requester(&self) -> KeyframeRequester {
        KeyframeRequester(self.state.clone())
    }

    /// Logs once per track that `output` skips `frame`'s track (see [`NotCarried`]).
    pub fn note_not_carried(&mut self, output: &str, frame: &HubFrame) {
        self.not_carried.note(&self.state.name, output, frame);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let id = self.id;
        let mut inner = self.state.lock();
        if let Some(i) = inner.readers.iter().position(|r| r.id == id) {
            let slot = inner.readers.remove(i);
            inner.drops_of_gone_readers += slot.drops.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
