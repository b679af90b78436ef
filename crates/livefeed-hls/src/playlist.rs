//! The LL-HLS media playlist as a sans-IO state machine (RFC 8216bis, protocol version 9).
//!
//! # Contract
//!
//! Feed [`Playlist::push`] one [`Chunk`] per access unit (the CMAF `moof`+`mdat` of exactly one
//! frame, its duration in 90 kHz ticks and its times). Nothing here reads a clock: every time
//! comes in with a chunk. After each push, HTTP handlers may ask for:
//!
//! - the playlist text, [`Playlist::render`] (`None` until the first part is complete);
//! - whether a blocking playlist request can be answered, [`Playlist::availability`];
//! - part bytes, [`Playlist::part`], and segment bytes, [`Playlist::segment`];
//! - the per-segment/part times for `/timestamps.json`, [`Playlist::timestamps`].
//!
//! [`Pushed`] says whether a part and/or a segment completed, so the caller knows when to wake
//! blocked playlist requests. Every accepted chunk also grows the open part, so requests
//! streaming an [`PartState::Open`] part should be woken after every push.
//!
//! # Segmentation
//!
//! - A segment is cut only at a keyframe, once it has lasted at least the segment target
//!   (so sparse keyframes give long segments, and `EXT-X-TARGETDURATION` grows to match).
//!   After [`Playlist::discontinuity`] the next keyframe cuts whatever the duration.
//!   As a memory guard a segment is also cut at any frame once it reaches
//!   [`FORCED_CUT_SECS`] (a publisher that never sends keyframes).
//! - A part closes as soon as its duration reaches the part target (whole frames only), or
//!   when its segment is cut. A part whose first frame is a keyframe is `INDEPENDENT=YES`.
//! - Chunks before the first keyframe are discarded ([`Pushed::discarded`]).
//!
//! # Playlist text
//!
//! Numbers are written with integer arithmetic (no float formatting), so golden tests are
//! exact:
//!
//! | value | format |
//! |---|---|
//! | `EXTINF`, `EXT-X-PART:DURATION` | seconds, 5 decimals, rounded to nearest (`0.20000`) |
//! | `PART-TARGET` | seconds, 3 decimals, rounded *up* (`0.200`) |
//! | `PART-HOLD-BACK` | 3 × `PART-TARGET`, 3 decimals (`0.600`) |
//! | `CAN-SKIP-UNTIL` | 6 × target duration, 1 decimal (`6.0`) |
//! | `EXT-X-PROGRAM-DATE-TIME` | capture time of the segment's first frame, UTC, milliseconds truncated |
//!
//! `PART-TARGET` is the configured part target, or the longest part seen if that is longer:
//! parts close at *or after* the target, and §4.4.4.9 requires every part to be no longer
//! than `PART-TARGET` (at 29.97 fps, six frames are 200.2 ms).
//!
//! `EXT-X-TARGETDURATION` is the longest complete segment seen, rounded to the nearest
//! second as §4.4.3.1 specifies for version ≥ 6, and never less than the segment target
//! rounded up. It never decreases.
//!
//! `EXT-X-VERSION` is always 9: the playlist advertises `CAN-SKIP-UNTIL`, and a Delta Update
//! (with `EXT-X-SKIP`) requires version 9 (§8). Full and delta responses keep one version.
//!
//! The playlist lists the last `playlist_segments` complete segments and the open one. Parts
//! are listed for the last three complete segments and the open one (§6.2.2 removes parts
//! more than three target durations from the end). The preload hint names the next part: in
//! the open segment, or part 0 of the next segment when the open part is empty, the segment
//! is due to be cut, and the keyframe rhythm so far says the next frame is a keyframe.
//!
//! # Delta updates (§6.2.5.1)
//!
//! With `skip`, the complete segments whose end lies more than the skip boundary
//! (`CAN-SKIP-UNTIL`) before the end of the playlist (the end of its last complete part) are
//! replaced by `#EXT-X-SKIP:SKIPPED-SEGMENTS=<n>`, with their tags (their
//! `EXT-X-PROGRAM-DATE-TIME` and `EXT-X-DISCONTINUITY` go with them; every segment carries its
//! own `EXT-X-PROGRAM-DATE-TIME`, so the remaining ones keep theirs). `EXT-X-MEDIA-SEQUENCE` and
//! `EXT-X-DISCONTINUITY-SEQUENCE` are unchanged. If nothing is that old, the full playlist is
//! rendered. With the default window (6 segments of 1 s, boundary 6 s) nothing ever is.
//!
//! # Memory
//!
//! At most `retained_segments` complete segments are kept. When a segment completes, its
//! parts are concatenated once into one [`Bytes`]; its parts are then served as zero-copy
//! slices of it, so parts stay fetchable as long as their segment is retained (§6.2.2 wants
//! parts downloadable for three target durations after they leave the playlist). The open
//! segment holds its complete parts (one `Bytes` each) and the chunks of its open part.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::query::parse_decimal;

/// Ticks per second of chunk durations (the 90 kHz video clock).
pub const TIMESCALE: u64 = 90_000;

/// A segment is cut at any frame (not only a keyframe) once it has lasted this long.
pub const FORCED_CUT_SECS: u64 = 30;

/// Parts are listed for this many of the last complete segments (plus the open one).
const SEGMENTS_WITH_PARTS: usize = 3;

/// How the playlist is cut and named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistConfig {
    /// Part target duration (default 200 ms). A part closes once it lasts at least this long.
    pub part_target: Duration,
    /// Segment target duration (default 1 s). A segment is cut at the first keyframe after it
    /// lasts at least this long.
    pub segment_target: Duration,
    /// Complete segments listed in the playlist (default 6, `--playlist-length`). At least 1.
    pub playlist_segments: usize,
    /// Complete segments whose bytes stay fetchable (default 20, `--max-files`). At least
    /// `playlist_segments`.
    pub retained_segments: usize,
    /// Prefix of every URI in the playlist: `""` for relative URIs, or an absolute one such as
    /// `http://1.2.3.4:8888/live/` (`--public-url`).
    pub uri_prefix: String,
    /// Names this instance of the stream in its part and segment URIs
    /// (`<id>-part<msn>.<i>.m4s`, `<id>-seg<msn>.m4s`), so a stream that starts again at MSN 0
    /// (the publisher came back after its grace period, or the server restarted) never reuses
    /// a URI an HTTP cache may hold. Empty: plain `part<msn>.<i>.m4s` / `seg<msn>.m4s`.
    pub stream_id: String,
}

impl Default for PlaylistConfig {
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(1),
            playlist_segments: 6,
            retained_segments: 20,
            uri_prefix: String::new(),
            stream_id: String::new(),
        }
    }
}

/// One CMAF chunk: the `moof`+`mdat` of exactly one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's bytes.
    pub bytes: Bytes,
    /// Duration of the frame, in 90 kHz ticks.
    pub duration: u32,
    /// Whether the frame is a keyframe (IDR).
    pub keyframe: bool,
    /// Capture wall-clock time of the frame (Unix ns), if known.
    pub capture_unix_ns: Option<u64>,
    /// Server wall-clock time at which the chunk became available (Unix ns).
    pub available_unix_ns: u64,
}

/// What one [`Playlist::push`] completed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// At least one part completed (the playlist text changed).
    pub part_completed: bool,
    /// A segment completed (it is now listed with `EXTINF` and fetchable whole).
    pub segment_completed: bool,
    /// The chunk was dropped because no keyframe has been seen yet.
    pub discarded: bool,
}

/// Whether a blocking playlist request (`_HLS_msn`, `_HLS_part`) can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The playlist contains what was asked for: answer now.
    Ready,
    /// Expected soon (up to one segment past the open one): wait for a push.
    Pending,
    /// More than two segments past the last complete one, or more than the Advance Part Limit
    /// of parts past the last part: §6.2.5.2 says answer 400.
    TooFarAhead,
    /// Older than every retained segment. The playlist already holds later segments, so
    /// §6.2.5.2 lets a playlist request be answered at once.
    Gone,
}

/// The state of one part, for a part request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartState {
    /// Complete: its bytes.
    Complete(Bytes),
    /// Being written: the chunks so far (possibly none). Chunks are only ever appended, and
    /// the complete part is their concatenation, so a response that has sent `n` bytes can go
    /// on with `bytes[n..]` once the part is complete. Note §6.2.6: a server should not send
    /// any byte of a part before all of it can go at link speed (for the client's bandwidth
    /// estimate), i.e. wait for [`PartState::Complete`]; streaming chunks is the caller's call.
    Open {
        /// The part's chunks so far, in order.
        chunks: Vec<Bytes>,
    },
    /// Not started and not hinted, but may come soon (in the open segment or the next one):
    /// wait for a push, with a time limit.
    NotYet,
    /// Its segment fell out of retention.
    Gone,
    /// Does not exist and will not (past the end of a complete segment, or far ahead).
    NotFound,
}

/// Times of one part, for `/timestamps.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTimes {
    /// Part index within its segment.
    pub index: u32,
    /// The part's URI, as in the playlist.
    pub uri: String,
    /// Duration in 90 kHz ticks.
    pub duration_ticks: u64,
    /// Whether the part starts with a keyframe.
    pub independent: bool,
    /// Capture time of its first frame (Unix ns), if known.
    pub capture_unix_ns: Option<u64>,
    /// When it completed: the `available_unix_ns` of the chunk whose push completed it.
    pub available_unix_ns: u64,
}

/// Times of one retained segment (or of the open one), for `/timestamps.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTimes {
    /// Media Sequence Number.
    pub msn: u64,
    /// The segment's URI, as in the playlist.
    pub uri: String,
    /// Duration of its complete parts, in 90 kHz ticks.
    pub duration_ticks: u64,
    /// Capture time of its first frame (Unix ns), if known.
    pub capture_unix_ns: Option<u64>,
    /// When it completed (the `available_unix_ns` of the keyframe chunk that cut it); `None`
    /// for the open segment.
    pub available_unix_ns: Option<u64>,
    /// Its complete parts.
    pub parts: Vec<PartTimes>,
}

/// A resource named by the playlist, parsed from the last path component of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `init.mp4`: whatever the init segment is now.
    Init,
    /// `init-<16 hex digits>.mp4`: one version of the init segment, named by
    /// [`init_name`]'s hash of its bytes.
    InitVersion(u64),
    /// `seg<msn>.m4s`
    Segment(u64),
    /// `part<msn>.<index>.m4s`
    Part(u64, u32),
}

/// Longest stream id accepted in a URI.
pub const MAX_STREAM_ID_LEN: usize = 32;

impl Resource {
    /// Parses `init.mp4`, `init-<hex>.mp4`, `seg<msn>.m4s` or `part<msn>.<index>.m4s` (plain
    /// decimal numbers).
    pub fn parse(name: &str) -> Option<Resource> {
        if name == "init.mp4" {
            return Some(Resource::Init);
        }
        if let Some(hex) = name
            .strip_prefix("init-")
            .and_then(|n| n.strip_suffix(".mp4"))
        {
            let valid = hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            return valid
                .then(|| u64::from_str_radix(hex, 16).ok())
                .flatten()
                .map(Resource::InitVersion);
        }
        let stem = name.strip_suffix(".m4s")?;
        if let Some(msn) = stem.strip_prefix("seg") {
            return parse_decimal(msn).map(Resource::Segment);
        }
        let (msn, index) = stem.strip_prefix("part")?.split_once('.')?;
        let index = u32::try_from(parse_decimal(index)?).ok()?;
        Some(Resource::Part(parse_decimal(msn)?, index))
    }

    /// Parses a name with an optional stream id (`<id>-seg3.m4s`, see
    /// [`PlaylistConfig::stream_id`]): the id (`""` without one) and the resource. An id is 1 to
    /// [`MAX_STREAM_ID_LEN`] ASCII letters and digits.
    pub fn parse_named(name: &str) -> Option<(&str, Resource)> {
        if let Some((id, rest)) = name.split_once('-') {
            let valid_id = !id.is_empty()
                && id.len() <= MAX_STREAM_ID_LEN
                && id.bytes().all(|b| b.is_ascii_alphanumeric());
            if valid_id && id != "init" {
                return match Resource::parse(rest)? {
                    r @ (Resource::Segment(_) | Resource::Part(..)) => Some((id, r)),
                    Resource::Init | Resource::InitVersion(_) => None,
                };
            }
        }
        Resource::parse(name).map(|r| ("", r))
    }
}

/// The name of an init segment: `init-<16 hex digits>.mp4`, the FNV-1a 64-bit hash of its
/// bytes, so the URI changes whenever the init segment does (new parameter sets, new audio
/// track) and an HTTP cache can keep each version for ever. (FNV-1a: stable across builds and
/// platforms, unlike std's hasher; collisions need not be resisted against a publisher, who
/// can only change its own stream.)
pub fn init_name(init: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in init {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("init-{hash:016x}.mp4")
}

#[derive(Debug, Clone)]
struct PartInfo {
    duration: u64,
    independent: bool,
    capture_unix_ns: Option<u64>,
    available_unix_ns: u64,
}

/// A part of a complete segment: a byte range of the segment's bytes.
#[derive(Debug, Clone)]
struct SlicedPart {
    info: PartInfo,
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct Segment {
    msn: u64,
    bytes: Bytes,
    parts: Vec<SlicedPart>,
    duration: u64,
    capture_unix_ns: Option<u64>,
    available_unix_ns: u64,
    discontinuity: bool,
    /// The name of the init segment its media needs.
    init: Arc<str>,
}

#[derive(Debug, Default)]
struct OpenPart {
    chunks: Vec<Bytes>,
    duration: u64,
    independent: bool,
    capture_unix_ns: Option<u64>,
    /// A video chunk is in the part (companion chunks alone do not make it start).
    has_video: bool,
}

#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    parts: Vec<(PartInfo, Bytes)>,
    current: OpenPart,
    /// Duration of the complete parts and the open part.
    duration: u64,
    capture_unix_ns: Option<u64>,
    discontinuity: bool,
    init: Arc<str>,
}

impl OpenSegment {
    fn new(msn: u64, discontinuity: bool, init: Arc<str>) -> Self {
        Self {
            msn,
            parts: Vec::new(),
            current: OpenPart::default(),
            duration: 0,
            capture_unix_ns: None,
            discontinuity,
            init,
        }
    }

    fn has_media(&self) -> bool {
        !self.parts.is_empty() || !self.current.chunks.is_empty()
    }

    fn complete_parts_duration(&self) -> u64 {
        self.parts.iter().map(|(info, _)| info.duration).sum()
    }

    /// Concatenates the complete parts (the open part must be empty) into a segment.
    fn finish(self, available_unix_ns: u64) -> Segment {
        let total = self.parts.iter().map(|(_, b)| b.len()).sum();
        let mut bytes = BytesMut::with_capacity(total);
        let mut parts = Vec::with_capacity(self.parts.len());
        for (info, part) in &self.parts {
            let start = bytes.len();
            bytes.extend_from_slice(part);
            parts.push(SlicedPart {
                info: info.clone(),
                start,
                end: bytes.len(),
            });
        }
        Segment {
            msn: self.msn,
            bytes: bytes.freeze(),
            parts,
            duration: self.duration,
            capture_unix_ns: self.capture_unix_ns,
            available_unix_ns,
            discontinuity: self.discontinuity,
            init: self.init,
        }
    }
}

/// The LL-HLS media playlist of one stream. See the [module docs](self) for the rules.
#[derive(Debug)]
pub struct Playlist {
    config: PlaylistConfig,
    part_target_ticks: u64,
    segment_target_ticks: u64,
    /// Complete, retained segments, oldest first, consecutive MSNs.
    segments: VecDeque<Segment>,
    open: OpenSegment,
    started: bool,
    longest_segment: u64,
    longest_part: u64,
    /// Ticks from the start of the last keyframe to the end of the last chunk.
    since_keyframe: Option<u64>,
    /// Ticks between the last two keyframes.
    last_gop: Option<u64>,
    pending_discontinuity: bool,
    discontinuities: u64,
    dropped_discontinuities: u64,
    /// Chunks of other tracks waiting for the next video chunk.
    companions: Vec<Bytes>,
    /// The name of the current init segment (`init.mp4` until [`Playlist::set_init`]).
    init: Arc<str>,
    /// The text [`Playlist::render_shared`] gave, full and delta, until the next change.
    rendered: [OnceLock<Option<Bytes>>; 2],
}

/// The init segment's name before [`Playlist::set_init`].
const DEFAULT_INIT: &str = "init.mp4";

/// Companion chunks (audio) that may wait for the next video chunk: about 2 s of AAC.
pub const MAX_PENDING_COMPANIONS: usize = 100;

impl Playlist {
    /// An empty playlist; the first segment will have Media Sequence Number 0.
    pub fn new(mut config: PlaylistConfig) -> Self {
        config.playlist_segments = config.playlist_segments.max(1);
        config.retained_segments = config.retained_segments.max(config.playlist_segments);
        Self {
            part_target_ticks: to_ticks(config.part_target).max(1),
            segment_target_ticks: to_ticks(config.segment_target).max(1),
            config,
            segments: VecDeque::new(),
            open: OpenSegment::new(0, false, Arc::from(DEFAULT_INIT)),
            init: Arc::from(DEFAULT_INIT),
            rendered: Default::default(),
            started: false,
            companions: Vec::new(),
            longest_segment: 0,
            longest_part: 0,
            since_keyframe: None,
            last_gop: None,
            pending_discontinuity: false,
            discontinuities: 0,
            dropped_discontinuities: 0,
        }
    }

    /// Names the init segment the media pushed from now on needs ([`init_name`]): segments
    /// opened from now on (and the open one, while it has no media) list it in an
    /// `EXT-X-MAP` tag. Change it together with [`Playlist::discontinuity`].
    pub fn set_init(&mut self, name: &str) {
        self.invalidate();
        self.init = Arc::from(name);
        if !self.open.has_media() {
            self.open.init = self.init.clone();
        }
    }

    /// The configuration in use (after clamping `playlist_segments` and `retained_segments`).
    pub fn config(&self) -> &PlaylistConfig {
        &self.config
    }

    /// Appends one chunk (one frame) to the open part.
    pub fn push(&mut self, chunk: Chunk) -> Pushed {
        self.invalidate();
        let mut pushed = Pushed::default();
        if !self.started {
            if !chunk.keyframe {
                pushed.discarded = true;
                return pushed;
            }
            self.started = true;
            self.pending_discontinuity = false;
        }
        if chunk.keyframe {
            if let Some(since) = self.since_keyframe {
                self.last_gop = Some(since);
            }
            self.since_keyframe = Some(0);
        }
        if let Some(discontinuity) = self.cut_before(&chunk) {
            self.cut_segment(chunk.available_unix_ns, discontinuity, &mut pushed);
        }
        self.append(chunk, &mut pushed);
        pushed
    }

    /// Queues a chunk of another track (audio): it goes into the part of the next video chunk,
    /// just before it. Companions have no duration here and never decide where a part or
    /// segment ends (the video does), and no part holds companions alone. Dropped before the
    /// first keyframe (`Pushed::discarded`); at most [`MAX_PENDING_COMPANIONS`] wait (the
    /// oldest is dropped) while the video stalls.
    pub fn push_companion(&mut self, bytes: Bytes) -> Pushed {
        self.invalidate();
        let mut pushed = Pushed::default();
        if !self.started {
            pushed.discarded = true;
            return pushed;
        }
        if self.companions.len() >= MAX_PENDING_COMPANIONS {
            self.companions.remove(0);
            pushed.discarded = true;
        }
        self.companions.push(bytes);
        pushed
    }

    /// Marks a discontinuity (e.g. the publisher's SPS changed): the next keyframe starts a new
    /// segment, whatever the current one's duration, preceded by `#EXT-X-DISCONTINUITY`.
    /// Ignored before the first keyframe.
    pub fn discontinuity(&mut self) {
        self.invalidate();
        if self.started {
            self.pending_discontinuity = true;
        }
    }

    /// `Some(discontinuity)` if `chunk` must start a new segment.
    fn cut_before(&self, chunk: &Chunk) -> Option<bool> {
        if !self.open.has_media() {
            return None;
        }
        if chunk.keyframe
            && (self.open.duration >= self.segment_target_ticks || self.pending_discontinuity)
        {
            return Some(self.pending_discontinuity);
        }
        (self.open.duration >= FORCED_CUT_SECS * TIMESCALE).then_some(false)
    }

    fn cut_segment(&mut self, now: u64, discontinuity: bool, pushed: &mut Pushed) {
        if !self.open.current.chunks.is_empty() {
            self.close_part(now);
            pushed.part_completed = true;
        }
        if discontinuity {
            self.pending_discontinuity = false;
            self.discontinuities += 1;
        }
        let next = OpenSegment::new(self.open.msn + 1, discontinuity, self.init.clone());
        let segment = std::mem::replace(&mut self.open, next).finish(now);
        self.longest_segment = self.longest_segment.max(segment.duration);
        self.segments.push_back(segment);
        pushed.segment_completed = true;
        while self.segments.len() > self.config.retained_segments {
            if let Some(old) = self.segments.pop_front() {
                self.dropped_discontinuities += u64::from(old.discontinuity);
            }
        }
    }

    fn append(&mut self, chunk: Chunk, pushed: &mut Pushed) {
        let duration = u64::from(chunk.duration);
        if !self.open.has_media() {
            self.open.capture_unix_ns = chunk.capture_unix_ns;
        }
        let current = &mut self.open.current;
        if !current.has_video {
            current.has_video = true;
            current.independent = chunk.keyframe;
            current.capture_unix_ns = chunk.capture_unix_ns;
        }
        current.chunks.append(&mut self.companions);
        current.chunks.push(chunk.bytes);
        current.duration += duration;
        self.open.duration += duration;
        self.since_keyframe = self.since_keyframe.map(|t| t + duration);
        if self.open.current.duration >= self.part_target_ticks {
            self.close_part(chunk.available_unix_ns);
            pushed.part_completed = true;
        }
    }

    fn close_part(&mut self, now: u64) {
        let part = std::mem::take(&mut self.open.current);
        let info = PartInfo {
            duration: part.duration,
            independent: part.independent,
            capture_unix_ns: part.capture_unix_ns,
            available_unix_ns: now,
        };
        self.longest_part = self.longest_part.max(part.duration);
        self.open.parts.push((info, concat(&part.chunks)));
    }

    /// The playlist text, or `None` until the first part is complete. With `skip`, a Playlist
    /// Delta Update if any segment is old enough to be skipped (else the full playlist).
    pub fn render(&self, skip: bool) -> Option<String> {
        if self.segments.is_empty() && self.open.parts.is_empty() {
            return None;
        }
        let mut text = String::with_capacity(2048);
        self.write_playlist(&mut text, skip).ok()?;
        Some(text)
    }

    /// [`Playlist::render`] rendered once per change of the playlist and shared: every request
    /// between two pushes gets the same bytes (hundreds of blocked requests are woken by each
    /// part; each used to render its own copy).
    pub fn render_shared(&self, skip: bool) -> Option<Bytes> {
        self.rendered[usize::from(skip)]
            .get_or_init(|| self.render(skip).map(Bytes::from))
            .clone()
    }

    /// Forgets the shared renders: the playlist is about to change.
    fn invalidate(&mut self) {
        self.rendered = Default::default();
    }

    fn write_playlist(&self, out: &mut String, skip: bool) -> fmt::Result {
        let first = self
            .segments
            .len()
            .saturating_sub(self.config.playlist_segments);
        let skipped = if skip { self.skippable(first) } else { 0 };
        // The EXT-X-MAP in the header is the first listed segment's; a later segment that
        // needs another init segment gets its own tag.
        let mut map = self
            .segments
            .get(first + skipped)
            .map_or(&self.open.init, |s| &s.init);
        self.write_header(out, first, map)?;
        if skipped > 0 {
            writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")?;
        }
        let parts_from = self.segments.len().saturating_sub(SEGMENTS_WITH_PARTS);
        for (i, segment) in self.segments.iter().enumerate().skip(first + skipped) {
            let new_map = (segment.init != *map).then_some(&*segment.init);
            map = &segment.init;
            self.write_segment(out, segment, new_map, i >= parts_from)?;
        }
        let new_map = (self.open.init != *map).then_some(&*self.open.init);
        self.write_open_segment(out, new_map)?;
        let (msn, index) = self.preload_hint();
        writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            self.part_uri(msn, index)
        )
    }

    fn write_header(&self, out: &mut String, first: usize, map: &str) -> fmt::Result {
        let part_target_ms = self.part_target_ms();
        let target = self.target_duration_secs();
        let first_msn = self.segments.get(first).map_or(self.open.msn, |s| s.msn);
        writeln!(out, "#EXTM3U")?;
        writeln!(out, "#EXT-X-VERSION:9")?;
        writeln!(out, "#EXT-X-TARGETDURATION:{target}")?;
        writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={}",
            millis(part_target_ms)
        )?;
        writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}.0",
            millis(3 * part_target_ms),
            6 * target
        )?;
        writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}")?;
        if self.discontinuities > 0 {
            let before: u64 = self
                .segments
                .iter()
                .take(first)
                .map(|s| u64::from(s.discontinuity))
                .sum();
            let sequence = self.dropped_discontinuities + before;
            writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{sequence}")?;
        }
        self.write_map(out, map)
    }

    fn write_map(&self, out: &mut String, init: &str) -> fmt::Result {
        writeln!(out, "#EXT-X-MAP:URI=\"{}{init}\"", self.config.uri_prefix)
    }

    fn write_segment(
        &self,
        out: &mut String,
        segment: &Segment,
        map: Option<&str>,
        with_parts: bool,
    ) -> fmt::Result {
        if segment.discontinuity {
            writeln!(out, "#EXT-X-DISCONTINUITY")?;
        }
        if let Some(init) = map {
            self.write_map(out, init)?;
        }
        write_program_date_time(out, segment.capture_unix_ns)?;
        if with_parts {
            for (i, part) in segment.parts.iter().enumerate() {
                self.write_part(out, segment.msn, i, &part.info)?;
            }
        }
        writeln!(out, "#EXTINF:{},", seconds(segment.duration))?;
        writeln!(out, "{}", self.segment_uri(segment.msn))
    }

    fn write_open_segment(&self, out: &mut String, map: Option<&str>) -> fmt::Result {
        if self.open.parts.is_empty() {
            return Ok(());
        }
        if self.open.discontinuity {
            writeln!(out, "#EXT-X-DISCONTINUITY")?;
        }
        if let Some(init) = map {
            self.write_map(out, init)?;
        }
        write_program_date_time(out, self.open.capture_unix_ns)?;
        for (i, (info, _)) in self.open.parts.iter().enumerate() {
            self.write_part(out, self.open.msn, i, info)?;
        }
        Ok(())
    }

    fn write_part(&self, out: &mut String, msn: u64, index: usize, info: &PartInfo) -> fmt::Result {
        write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            seconds(info.duration),
            self.part_uri(msn, index as u32)
        )?;
        if info.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
        Ok(())
    }

    /// How many of the listed segments (from index `first`) a delta update skips.
    fn skippable(&self, first: usize) -> usize {
        let boundary = 6 * self.target_duration_secs() * TIMESCALE;
        let listed = self.segments.iter().skip(first);
        // Media after the end of the current segment, up to the end of the playlist.
        let mut after: u64 =
            listed.clone().map(|s| s.duration).sum::<u64>() + self.open.complete_parts_duration();
        let mut skipped = 0;
        for segment in listed {
            after -= segment.duration;
            if after <= boundary {
                break;
            }
            skipped += 1;
        }
        skipped
    }

    /// The part the preload hint names: `(msn, part index)`.
    pub fn preload_hint(&self) -> (u64, u32) {
        if self.open.current.chunks.is_empty() && self.cut_is_due() {
            (self.open.msn + 1, 0)
        } else {
            (self.open.msn, self.open.parts.len() as u32)
        }
    }

    /// Whether the next chunk is expected to be a keyframe that cuts the open segment.
    fn cut_is_due(&self) -> bool {
        let keyframe_due = matches!(
            (self.since_keyframe, self.last_gop),
            (Some(since), Some(gop)) if gop > 0 && since >= gop
        );
        keyframe_due
            && self.open.has_media()
            && (self.open.duration >= self.segment_target_ticks || self.pending_discontinuity)
    }

    /// Whether a blocking playlist request for segment `msn` (and part `part`) can be
    /// answered. Implements §6.2.5.2: a segment is in the playlist once complete; a part once
    /// complete; a part index past the end of a complete segment means part 0 of the next one.
    pub fn availability(&self, msn: u64, part: Option<u32>) -> Availability {
        if msn < self.first_retained_msn() {
            return Availability::Gone;
        }
        match part {
            None if self.complete_segment(msn).is_some() => Availability::Ready,
            None if msn <= self.open.msn + 1 => Availability::Pending,
            None => Availability::TooFarAhead,
            Some(part) => self.part_availability(msn, part),
        }
    }

    fn part_availability(&self, mut msn: u64, mut part: u32) -> Availability {
        if let Some(segment) = self.complete_segment(msn) {
            if (part as usize) < segment.parts.len() || self.complete_segment(msn + 1).is_some() {
                return Availability::Ready;
            }
            msn += 1;
            part = 0;
        }
        let complete = self.open.parts.len() as u64;
        let ahead = if msn == self.open.msn {
            if u64::from(part) < complete {
                return Availability::Ready;
            }
            u64::from(part) + 1 - complete
        } else if msn == self.open.msn + 1 {
            u64::from(part) + 1
        } else {
            return Availability::TooFarAhead;
        };
        if ahead > self.advance_part_limit() {
            Availability::TooFarAhead
        } else {
            Availability::Pending
        }
    }

    /// The state of part `index` of segment `msn`.
    pub fn part(&self, msn: u64, index: u32) -> PartState {
        if let Some(segment) = self.complete_segment(msn) {
            return match segment.parts.get(index as usize) {
                Some(p) => PartState::Complete(segment.bytes.slice(p.start..p.end)),
                None => PartState::NotFound,
            };
        }
        if msn < self.first_retained_msn() {
            return PartState::Gone;
        }
        let complete = self.open.parts.len() as u64;
        let index = u64::from(index);
        let ahead = if msn == self.open.msn {
            if let Some((_, bytes)) = self.open.parts.get(index as usize) {
                return PartState::Complete(bytes.clone());
            }
            if index == complete {
                let chunks = self.open.current.chunks.clone();
                return PartState::Open { chunks };
            }
            index + 1 - complete
        } else if msn == self.open.msn + 1 {
            if index == 0 && self.preload_hint() == (msn, 0) {
                return PartState::Open { chunks: Vec::new() };
            }
            index + 1
        } else {
            return PartState::NotFound;
        };
        if ahead > self.advance_part_limit() {
            PartState::NotFound
        } else {
            PartState::NotYet
        }
    }

    /// The bytes of complete, retained segment `msn`.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.complete_segment(msn).map(|s| s.bytes.clone())
    }

    /// Times of every retained segment and its parts, oldest first, then the open segment if
    /// it has a complete part.
    pub fn timestamps(&self) -> Vec<SegmentTimes> {
        let mut all: Vec<SegmentTimes> = self
            .segments
            .iter()
            .map(|s| SegmentTimes {
                msn: s.msn,
                uri: self.segment_uri(s.msn),
                duration_ticks: s.duration,
                capture_unix_ns: s.capture_unix_ns,
                available_unix_ns: Some(s.available_unix_ns),
                parts: self.part_times(s.msn, s.parts.iter().map(|p| &p.info)),
            })
            .collect();
        if !self.open.parts.is_empty() {
            all.push(SegmentTimes {
                msn: self.open.msn,
                uri: self.segment_uri(self.open.msn),
                duration_ticks: self.open.complete_parts_duration(),
                capture_unix_ns: self.open.capture_unix_ns,
                available_unix_ns: None,
                parts: self.part_times(self.open.msn, self.open.parts.iter().map(|(i, _)| i)),
            });
        }
        all
    }

    fn part_times<'a>(
        &self,
        msn: u64,
        parts: impl Iterator<Item = &'a PartInfo>,
    ) -> Vec<PartTimes> {
        parts
            .enumerate()
            .map(|(i, info)| PartTimes {
                index: i as u32,
                uri: self.part_uri(msn, i as u32),
                duration_ticks: info.duration,
                independent: info.independent,
                capture_unix_ns: info.capture_unix_ns,
                available_unix_ns: info.available_unix_ns,
            })
            .collect()
    }

    /// `EXT-X-TARGETDURATION`, in seconds: the longest complete segment rounded to the nearest
    /// second, at least the segment target rounded up (and at least 1).
    pub fn target_duration_secs(&self) -> u64 {
        let configured = self.segment_target_ticks.div_ceil(TIMESCALE);
        let longest = (self.longest_segment + TIMESCALE / 2) / TIMESCALE;
        configured.max(longest).max(1)
    }

    /// `PART-TARGET` in milliseconds, rounded up.
    fn part_target_ms(&self) -> u64 {
        let ticks = self.part_target_ticks.max(self.longest_part);
        (ticks * 1000).div_ceil(TIMESCALE)
    }

    /// §6.2.5.2: 3 / PART-TARGET if that is under one second, else 3.
    fn advance_part_limit(&self) -> u64 {
        let ms = self.part_target_ms().max(1);
        if ms < 1000 {
            3000_u64.div_ceil(ms)
        } else {
            3
        }
    }

    /// The Media Sequence Number of the open segment (the next to complete).
    pub fn open_msn(&self) -> u64 {
        self.open.msn
    }

    /// The URI of part `index` of segment `msn`.
    pub fn part_uri(&self, msn: u64, index: u32) -> String {
        format!("{}{}", self.config.uri_prefix, self.part_name(msn, index))
    }

    /// The URI of segment `msn`.
    pub fn segment_uri(&self, msn: u64) -> String {
        format!("{}{}", self.config.uri_prefix, self.segment_name(msn))
    }

    /// The file name of part `index` of segment `msn` (its URI without the prefix).
    pub fn part_name(&self, msn: u64, index: u32) -> String {
        format!("{}part{msn}.{index}.m4s", self.id_prefix())
    }

    /// The file name of segment `msn`.
    pub fn segment_name(&self, msn: u64) -> String {
        format!("{}seg{msn}.m4s", self.id_prefix())
    }

    /// The file name of the current init segment.
    pub fn init_name(&self) -> &str {
        &self.init
    }

    fn id_prefix(&self) -> String {
        if self.config.stream_id.is_empty() {
            String::new()
        } else {
            format!("{}-", self.config.stream_id)
        }
    }

    fn first_retained_msn(&self) -> u64 {
        self.segments.front().map_or(self.open.msn, |s| s.msn)
    }

    fn complete_segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let index = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.segments.get(index)
    }
}

fn write_program_date_time(out: &mut String, capture: Option<u64>) -> fmt::Result {
    if let Some(ns) = capture {
        writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", program_date_time(ns))?;
    }
    Ok(())
}

fn concat(chunks: &[Bytes]) -> Bytes {
    if let [only] = chunks {
        return only.clone();
    }
    let mut bytes = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in chunks {
        bytes.extend_from_slice(chunk);
    }
    bytes.freeze()
}

/// A duration in 90 kHz ticks, rounded to the nearest tick.
fn to_ticks(duration: Duration) -> u64 {
    let ticks = (duration.as_nanos() * u128::from(TIMESCALE) + 500_000_000) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Ticks as seconds with 5 decimals, rounded to nearest: `18000` → `0.20000`.
fn seconds(ticks: u64) -> String {
    let units = (u128::from(ticks) * 100_000 + u128::from(TIMESCALE) / 2) / u128::from(TIMESCALE);
    format!("{}.{:05}", units / 100_000, units % 100_000)
}

/// Milliseconds as seconds with 3 decimals: `200` → `0.200`.
fn millis(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// ISO 8601 UTC with milliseconds (truncated): `2026-11-21T05:43:01.123Z`.
fn program_date_time(unix_ns: u64) -> String {
    let ms = unix_ns / 1_000_000;
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21T05:43:01.123Z
    const BASE_NS: u64 = 1_795_239_781_123_000_000;

    /// A fake 30 fps publisher: 3000-tick frames, a keyframe every `gop` frames, capture times
    /// from [`BASE_NS`], available 5 ms after capture. Frame `n`'s bytes are `[n]`.
    struct Source {
        frame: u64,
        gop: u64,
    }

    impl Source {
        fn new(gop: u64) -> Self {
            Self { frame: 0, gop }
        }

        fn chunk(&mut self) -> Chunk {
            let n = self.frame;
            self.frame += 1;
            let capture = BASE_NS + n * 1_000_000_000 / 30;
            Chunk {
                bytes: Bytes::from(format!("[{n}]")),
                duration: 3000,
                keyframe: n.checked_rem(self.gop) == Some(0),
                capture_unix_ns: Some(capture),
                available_unix_ns: capture + 5_000_000,
            }
        }

        fn push(&mut self, playlist: &mut Playlist, frames: u64) -> Vec<Pushed> {
            (0..frames).map(|_| playlist.push(self.chunk())).collect()
        }
    }

    fn frames(range: std::ops::Range<u64>) -> Bytes {
        Bytes::from(range.map(|n| format!("[{n}]")).collect::<String>())
    }

    fn config(playlist_segments: usize, retained_segments: usize) -> PlaylistConfig {
        PlaylistConfig {
            playlist_segments,
            retained_segments,
            ..PlaylistConfig::default()
        }
    }

    /// Renders, parses the text back with m3u8-rs, and checks the parse agrees with the state.
    fn render_checked(playlist: &Playlist, skip: bool) -> String {
        let text = playlist.render(skip).expect("a part is complete");
        let parsed = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            other => panic!("not a media playlist: {other:?}\n{text}"),
        };
        let listed = playlist
            .segments
            .len()
            .min(playlist.config.playlist_segments);
        let first_msn = playlist.open.msn - listed as u64;
        let skipped = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
            .map_or(0, |n| n.parse::<usize>().unwrap());
        assert_eq!(parsed.version, Some(9));
        assert_eq!(parsed.media_sequence, first_msn, "{text}");
        assert_eq!(parsed.segments.len(), listed - skipped, "{text}");
        assert_eq!(parsed.target_duration, playlist.target_duration_secs());
        assert!(!parsed.end_list);
        for (i, segment) in parsed.segments.iter().enumerate() {
            let msn = first_msn + (skipped + i) as u64;
            assert_eq!(segment.uri, playlist.segment_uri(msn));
            assert!(segment.duration > 0.0);
            assert!(
                segment.duration.round() as u64 <= parsed.target_duration,
                "{text}"
            );
            assert!(segment.program_date_time.is_some());
        }
        assert!(text.ends_with('\n'));
        text
    }

    #[test]
    fn nothing_to_render_before_the_first_part() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        assert_eq!(playlist.render(false), None);
        let pushed = Source::new(30).push(&mut playlist, 5);
        assert!(pushed.iter().all(|p| *p == Pushed::default()));
        assert_eq!(playlist.render(false), None);
        assert_eq!(playlist.render(true), None);
        assert_eq!(playlist.preload_hint(), (0, 0));
        assert!(playlist.timestamps().is_empty());
    }

    #[test]
    fn golden_first_part() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let pushed = Source::new(30).push(&mut playlist, 6);
        assert_eq!(
            pushed[5],
            Pushed {
                part_completed: true,
                ..Pushed::default()
            }
        );
        assert_eq!(
            render_checked(&playlist, false),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.0
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:01.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part0.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part0.1.m4s\"
"
        );
        // Nothing to skip: the delta update is the full playlist.
        assert_eq!(playlist.render(true), playlist.render(false));
    }

    #[test]
    fn part_closes_on_the_sixth_frame() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        let pushed = source.push(&mut playlist, 12);
        let completed: Vec<usize> = (0..12).filter(|&i| pushed[i].part_completed).collect();
        assert_eq!(completed, [5, 11]);
        assert!(pushed.iter().all(|p| !p.segment_completed));
        assert_eq!(playlist.part(0, 0), PartState::Complete(frames(0..6)));
        assert_eq!(playlist.part(0, 1), PartState::Complete(frames(6..12)));
        assert_eq!(playlist.preload_hint(), (0, 2));
    }

    #[test]
    fn golden_segment_roll_over_at_the_keyframe_after_one_second() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        let pushed = source.push(&mut playlist, 30);
        assert!(pushed.iter().all(|p| !p.segment_completed));
        // One second is done, but the cut waits for the keyframe; the keyframe rhythm is not
        // known yet, so the hint stays in segment 0.
        assert_eq!(playlist.preload_hint(), (0, 5));
        assert_eq!(playlist.segment(0), None);
        let pushed = source.push(&mut playlist, 1);
        assert_eq!(
            pushed[0],
            Pushed {
                part_completed: false,
                segment_completed: true,
                discarded: false
            }
        );
        assert_eq!(playlist.segment(0), Some(frames(0..30)));
        // The hinted part 0.5 will never exist.
        assert_eq!(playlist.part(0, 5), PartState::NotFound);
        source.push(&mut playlist, 5);
        assert_eq!(
            render_checked(&playlist, false),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.0
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:01.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part0.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.4.m4s\"
#EXTINF:1.00000,
seg0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:02.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part1.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.1.m4s\"
"
        );
    }

    #[test]
    fn hint_names_the_next_segment_once_the_keyframe_rhythm_is_known() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        source.push(&mut playlist, 59);
        assert_eq!(playlist.preload_hint(), (1, 4));
        source.push(&mut playlist, 1);
        // Segment 1 lasted 1 s and the keyframe is due next: hint part 2.0.
        assert_eq!(playlist.preload_hint(), (2, 0));
        let text = render_checked(&playlist, false);
        assert!(text.ends_with(
            "#EXT-X-PART:DURATION=0.20000,URI=\"part1.4.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.0.m4s\"\n"
        ));
        // The hinted part can be requested now: it is open, with nothing in it yet.
        assert_eq!(playlist.part(2, 0), PartState::Open { chunks: vec![] });
        source.push(&mut playlist, 1);
        assert_eq!(
            playlist.part(2, 0),
            PartState::Open {
                chunks: vec![frames(60..61)]
            }
        );
    }

    #[test]
    fn a_wrong_keyframe_guess_keeps_the_part_in_the_open_segment() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        source.push(&mut playlist, 60);
        assert_eq!(playlist.preload_hint(), (2, 0));
        // The publisher skips its keyframe: frame 60 is not one.
        let mut chunk = source.chunk();
        chunk.keyframe = false;
        let pushed = playlist.push(chunk);
        assert!(!pushed.segment_completed);
        assert_eq!(playlist.preload_hint(), (1, 5));
        assert_eq!(playlist.part(2, 0), PartState::NotYet);
        assert_eq!(
            playlist.part(1, 5),
            PartState::Open {
                chunks: vec![frames(60..61)]
            }
        );
    }

    #[test]
    fn independent_only_on_parts_starting_with_a_keyframe() {
        // Keyframes every 15 frames: at the start of parts 0.0 and 1.0, inside 0.2 and 1.2.
        let mut playlist = Playlist::new(PlaylistConfig::default());
        Source::new(15).push(&mut playlist, 36);
        let text = render_checked(&playlist, false);
        let independent: Vec<&str> = text
            .lines()
            .filter(|l| l.ends_with(",INDEPENDENT=YES"))
            .collect();
        assert_eq!(
            independent,
            [
                "#EXT-X-PART:DURATION=0.20000,URI=\"part0.0.m4s\",INDEPENDENT=YES",
                "#EXT-X-PART:DURATION=0.20000,URI=\"part1.0.m4s\",INDEPENDENT=YES",
            ]
        );
        assert_eq!(text.matches("#EXT-X-PART:").count(), 6);
    }

    #[test]
    fn golden_window_trimmed_after_eight_segments() {
        let mut playlist = Playlist::new(config(6, 20));
        let pushed = Source::new(30).push(&mut playlist, 8 * 30 + 6);
        assert_eq!(pushed.iter().filter(|p| p.segment_completed).count(), 8);
        assert_eq!(
            render_checked(&playlist, false),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.0
#EXT-X-MEDIA-SEQUENCE:2
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:03.123Z
#EXTINF:1.00000,
seg2.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:04.123Z
#EXTINF:1.00000,
seg3.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:05.123Z
#EXTINF:1.00000,
seg4.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:06.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part5.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part5.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part5.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part5.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part5.4.m4s\"
#EXTINF:1.00000,
seg5.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:07.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part6.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part6.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part6.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part6.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part6.4.m4s\"
#EXTINF:1.00000,
seg6.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:08.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part7.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part7.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part7.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part7.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part7.4.m4s\"
#EXTINF:1.00000,
seg7.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:09.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part8.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.1.m4s\"
"
        );
        // Out of the playlist but retained: still fetchable, whole and by part.
        assert_eq!(playlist.segment(0), Some(frames(0..30)));
        assert_eq!(playlist.part(0, 4), PartState::Complete(frames(24..30)));
        assert_eq!(playlist.availability(0, None), Availability::Ready);
    }

    #[test]
    fn retention_drops_the_oldest_segment() {
        let mut playlist = Playlist::new(config(6, 20));
        let mut source = Source::new(30);
        source.push(&mut playlist, 20 * 30 + 1);
        assert_eq!(playlist.segment(0), Some(frames(0..30)));
        assert_eq!(playlist.availability(0, None), Availability::Ready);
        source.push(&mut playlist, 30);
        assert_eq!(playlist.segments.len(), 20);
        assert_eq!(playlist.availability(0, None), Availability::Gone);
        assert_eq!(playlist.availability(0, Some(0)), Availability::Gone);
        assert_eq!(playlist.segment(0), None);
        assert_eq!(playlist.part(0, 0), PartState::Gone);
        assert_eq!(playlist.segment(1), Some(frames(30..60)));
        assert_eq!(playlist.part(1, 0), PartState::Complete(frames(30..36)));
        let times = playlist.timestamps();
        // Segments 1..=20; the open segment 21 has no complete part yet.
        assert_eq!(times.len(), 20);
        assert_eq!(times[0].msn, 1);
        assert_eq!(times[19].msn, 20);
        render_checked(&playlist, false);
    }

    #[test]
    fn memory_stays_bounded_over_a_long_run() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        for _ in 0..200 {
            source.push(&mut playlist, 30);
            assert!(playlist.segments.len() <= 20);
            assert!(playlist.open.parts.len() <= 5);
        }
        let retained: usize = playlist.segments.iter().map(|s| s.bytes.len()).sum();
        assert!(retained < 20 * 30 * 8, "{retained}");
    }

    #[test]
    fn golden_delta_update_skips_old_segments() {
        let mut playlist = Playlist::new(config(10, 20));
        let mut source = Source::new(30);
        source.push(&mut playlist, 10 * 30 + 6);
        // Ten segments of 1 s and one 0.2 s part: the end of seg3 is 6.2 s from the end, more
        // than CAN-SKIP-UNTIL (6 s); the end of seg4 is 5.2 s from it.
        assert_eq!(
            render_checked(&playlist, true),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.0
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-SKIP:SKIPPED-SEGMENTS=4
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:05.123Z
#EXTINF:1.00000,
seg4.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:06.123Z
#EXTINF:1.00000,
seg5.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:07.123Z
#EXTINF:1.00000,
seg6.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:08.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part7.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part7.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part7.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part7.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part7.4.m4s\"
#EXTINF:1.00000,
seg7.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:09.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part8.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part8.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part8.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part8.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part8.4.m4s\"
#EXTINF:1.00000,
seg8.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:10.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part9.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part9.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part9.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part9.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part9.4.m4s\"
#EXTINF:1.00000,
seg9.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:11.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part10.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part10.1.m4s\"
"
        );
        // The full playlist lists all ten.
        let full = render_checked(&playlist, false);
        assert_eq!(full.matches("#EXTINF:").count(), 10);
        assert!(!full.contains("#EXT-X-SKIP"));
    }

    #[test]
    fn delta_update_is_the_full_playlist_when_nothing_is_old_enough() {
        // The default window (6 × 1 s) never reaches the 6 s skip boundary.
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        for _ in 0..12 {
            source.push(&mut playlist, 30);
            assert_eq!(playlist.render(true), playlist.render(false));
        }
        // Seven segments (and the open part) do reach it.
        let mut playlist = Playlist::new(config(7, 20));
        let mut source = Source::new(30);
        source.push(&mut playlist, 7 * 30);
        assert_eq!(playlist.render(true), playlist.render(false));
        source.push(&mut playlist, 1 + 6);
        let delta = render_checked(&playlist, true);
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n"),
            "{delta}"
        );
    }

    #[test]
    fn golden_absolute_uri_prefix() {
        let mut playlist = Playlist::new(PlaylistConfig {
            uri_prefix: "http://1.2.3.4:8888/live/".into(),
            ..PlaylistConfig::default()
        });
        Source::new(30).push(&mut playlist, 36);
        assert_eq!(
            render_checked(&playlist, false),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.0
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"http://1.2.3.4:8888/live/init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:01.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"http://1.2.3.4:8888/live/part0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"http://1.2.3.4:8888/live/part0.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"http://1.2.3.4:8888/live/part0.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"http://1.2.3.4:8888/live/part0.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"http://1.2.3.4:8888/live/part0.4.m4s\"
#EXTINF:1.00000,
http://1.2.3.4:8888/live/seg0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:02.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"http://1.2.3.4:8888/live/part1.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"http://1.2.3.4:8888/live/part1.1.m4s\"
"
        );
        assert_eq!(
            playlist.timestamps()[0].parts[0].uri,
            "http://1.2.3.4:8888/live/part0.0.m4s"
        );
    }

    #[test]
    fn golden_sparse_keyframes_grow_the_target_duration() {
        // Keyframes every 2.5 s with a 1 s segment target: 2.5 s segments, TARGETDURATION 3.
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(75);
        source.push(&mut playlist, 74);
        assert_eq!(playlist.target_duration_secs(), 1);
        source.push(&mut playlist, 1 + 6);
        assert_eq!(playlist.target_duration_secs(), 3);
        assert_eq!(
            render_checked(&playlist, false),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:3
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=18.0
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:01.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part0.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.4.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.5.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.6.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.7.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.8.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.9.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.10.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.11.m4s\"
#EXT-X-PART:DURATION=0.10000,URI=\"part0.12.m4s\"
#EXTINF:2.50000,
seg0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:03.623Z
#EXT-X-PART:DURATION=0.20000,URI=\"part1.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.1.m4s\"
"
        );
    }

    #[test]
    fn part_target_follows_parts_longer_than_the_target() {
        // 29.97 fps: six frames are 200.2 ms, so PART-TARGET is rounded up to 0.201 s.
        let mut playlist = Playlist::new(PlaylistConfig::default());
        for n in 0..6 {
            playlist.push(Chunk {
                bytes: Bytes::from_static(b"x"),
                duration: 3003,
                keyframe: n == 0,
                capture_unix_ns: None,
                available_unix_ns: n,
            });
        }
        let text = playlist.render(false).unwrap();
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.201\n"),
            "{text}"
        );
        assert!(text.contains("PART-HOLD-BACK=0.603,"), "{text}");
        assert!(text.contains("#EXT-X-PART:DURATION=0.20020,"), "{text}");
        // Capture time unknown: no EXT-X-PROGRAM-DATE-TIME.
        assert!(!text.contains("PROGRAM-DATE-TIME"), "{text}");
    }

    #[test]
    fn target_duration_rounds_to_the_nearest_second() {
        // 29.97 fps, GOP 30: 1.001 s segments keep TARGETDURATION at 1.
        let mut playlist = Playlist::new(PlaylistConfig::default());
        for n in 0..61_u64 {
            playlist.push(Chunk {
                bytes: Bytes::from_static(b"x"),
                duration: 3003,
                keyframe: n.checked_rem(30) == Some(0),
                capture_unix_ns: Some(BASE_NS + n * 33_366_667),
                available_unix_ns: 0,
            });
        }
        assert_eq!(playlist.target_duration_secs(), 1);
        let text = render_checked(&playlist, false);
        assert!(text.contains("#EXTINF:1.00100,\n"), "{text}");
    }

    #[test]
    fn availability_of_blocking_requests() {
        use Availability::*;
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        // Nothing yet: segment 0 and 1 are pending, 2 is too far.
        assert_eq!(playlist.availability(0, None), Pending);
        assert_eq!(playlist.availability(0, Some(0)), Pending);
        assert_eq!(playlist.availability(1, None), Pending);
        assert_eq!(playlist.availability(2, None), TooFarAhead);
        // Two segments complete, the open segment 2 has two parts.
        source.push(&mut playlist, 2 * 30 + 12);
        assert_eq!(playlist.open_msn(), 2);
        assert_eq!(playlist.availability(0, None), Ready);
        assert_eq!(playlist.availability(1, None), Ready);
        assert_eq!(playlist.availability(2, None), Pending);
        assert_eq!(playlist.availability(3, None), Pending);
        assert_eq!(playlist.availability(4, None), TooFarAhead);
        assert_eq!(playlist.availability(u64::MAX, None), TooFarAhead);
        assert_eq!(playlist.availability(2, Some(0)), Ready);
        assert_eq!(playlist.availability(2, Some(1)), Ready);
        assert_eq!(playlist.availability(2, Some(2)), Pending);
        // Advance Part Limit: 3 s / 0.2 s = 15 parts past the last one (2.1).
        assert_eq!(playlist.availability(2, Some(16)), Pending);
        assert_eq!(playlist.availability(2, Some(17)), TooFarAhead);
        assert_eq!(playlist.availability(3, Some(0)), Pending);
        assert_eq!(playlist.availability(3, Some(14)), Pending);
        assert_eq!(playlist.availability(3, Some(15)), TooFarAhead);
        assert_eq!(playlist.availability(4, Some(0)), TooFarAhead);
        assert_eq!(playlist.availability(2, Some(u32::MAX)), TooFarAhead);
        // A part index past the end of a complete segment means part 0 of the next one.
        assert_eq!(playlist.availability(1, Some(5)), Ready);
        assert_eq!(playlist.availability(1, Some(99)), Ready);
    }

    #[test]
    fn part_past_the_end_waits_for_the_next_segment() {
        use Availability::*;
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        source.push(&mut playlist, 30);
        // hls.js asks for 0.5 after seeing 0.4; it turns out to be 1.0.
        assert_eq!(playlist.availability(0, Some(5)), Pending);
        source.push(&mut playlist, 1);
        assert_eq!(playlist.availability(0, Some(5)), Pending);
        let pushed = source.push(&mut playlist, 5);
        assert!(pushed[4].part_completed);
        assert_eq!(playlist.availability(0, Some(5)), Ready);
        assert_eq!(playlist.availability(1, Some(0)), Ready);
    }

    #[test]
    fn preload_hint_part_is_open_with_the_bytes_so_far() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        source.push(&mut playlist, 8);
        assert_eq!(playlist.preload_hint(), (0, 1));
        assert_eq!(
            playlist.part(0, 1),
            PartState::Open {
                chunks: vec![frames(6..7), frames(7..8)]
            }
        );
        assert_eq!(playlist.part(0, 2), PartState::NotYet);
        assert_eq!(playlist.part(1, 0), PartState::NotYet);
        assert_eq!(playlist.part(0, 500), PartState::NotFound);
        assert_eq!(playlist.part(2, 0), PartState::NotFound);
        source.push(&mut playlist, 4);
        assert_eq!(playlist.part(0, 1), PartState::Complete(frames(6..12)));
    }

    #[test]
    fn segment_bytes_are_the_parts_concatenated() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        Source::new(30).push(&mut playlist, 61);
        for msn in 0..2 {
            let segment = playlist.segment(msn).unwrap();
            let mut joined = Vec::new();
            for index in 0..5 {
                match playlist.part(msn, index) {
                    PartState::Complete(bytes) => joined.extend_from_slice(&bytes),
                    other => panic!("{msn}.{index}: {other:?}"),
                }
            }
            assert_eq!(segment, joined);
        }
        assert_eq!(playlist.segment(2), None);
        assert_eq!(playlist.segment(u64::MAX), None);
    }

    #[test]
    fn chunks_before_the_first_keyframe_are_discarded() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(30);
        source.frame = 25;
        let pushed = source.push(&mut playlist, 5);
        assert!(pushed.iter().all(|p| p.discarded));
        source.push(&mut playlist, 6);
        assert_eq!(playlist.part(0, 0), PartState::Complete(frames(30..36)));
    }

    #[test]
    fn timestamps_of_segments_and_parts() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        Source::new(30).push(&mut playlist, 36);
        let times = playlist.timestamps();
        assert_eq!(times.len(), 2);
        let first = &times[0];
        assert_eq!(first.uri, "seg0.m4s");
        assert_eq!(first.duration_ticks, 90_000);
        assert_eq!(first.capture_unix_ns, Some(BASE_NS));
        // Complete when frame 30 (the next keyframe) arrived.
        assert_eq!(
            first.available_unix_ns,
            Some(BASE_NS + 1_000_000_000 + 5_000_000)
        );
        assert_eq!(first.parts.len(), 5);
        assert_eq!(
            first.parts[1],
            PartTimes {
                index: 1,
                uri: "part0.1.m4s".into(),
                duration_ticks: 18_000,
                independent: false,
                capture_unix_ns: Some(BASE_NS + 200_000_000),
                available_unix_ns: BASE_NS + 11 * 1_000_000_000 / 30 + 5_000_000,
            }
        );
        let open = &times[1];
        assert_eq!(open.msn, 1);
        assert_eq!(open.available_unix_ns, None);
        assert_eq!(open.duration_ticks, 18_000);
        assert_eq!(open.parts.len(), 1);
        assert!(open.parts[0].independent);
    }

    #[test]
    fn golden_discontinuity() {
        let mut playlist = Playlist::new(config(2, 2));
        let mut source = Source::new(15);
        source.push(&mut playlist, 36);
        // The SPS changes: the next keyframe (frame 45) cuts the segment at 0.5 s.
        playlist.discontinuity();
        let pushed = source.push(&mut playlist, 9);
        assert!(pushed.iter().all(|p| !p.segment_completed));
        let pushed = source.push(&mut playlist, 1);
        assert!(pushed[0].segment_completed);
        source.push(&mut playlist, 5);
        assert_eq!(
            render_checked(&playlist, false),
            "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.0
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:01.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part0.1.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.2.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.3.m4s\"
#EXT-X-PART:DURATION=0.20000,URI=\"part0.4.m4s\"
#EXTINF:1.00000,
seg0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:02.123Z
#EXT-X-PART:DURATION=0.20000,URI=\"part1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"part1.1.m4s\"
#EXT-X-PART:DURATION=0.10000,URI=\"part1.2.m4s\"
#EXTINF:0.50000,
seg1.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T05:43:02.623Z
#EXT-X-PART:DURATION=0.20000,URI=\"part2.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part2.1.m4s\"
"
        );
        // Two more segments: the discontinuity leaves the window of two, but the segments
        // after it keep their Discontinuity Sequence Number 1.
        source.push(&mut playlist, 3 * 30);
        let text = render_checked(&playlist, false);
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
    }

    #[test]
    fn a_segment_without_keyframes_is_cut_at_the_memory_guard() {
        let mut playlist = Playlist::new(PlaylistConfig::default());
        let mut source = Source::new(u64::MAX);
        source.frame = 0;
        let frames_per_cut = FORCED_CUT_SECS * 30;
        let pushed = source.push(&mut playlist, frames_per_cut + 1);
        assert_eq!(pushed.iter().filter(|p| p.segment_completed).count(), 1);
        assert!(pushed[frames_per_cut as usize].segment_completed);
    }

    #[test]
    fn random_streams_keep_the_invariants() {
        // A small LCG instead of a rand dependency: jittery frame durations, irregular
        // keyframes, discontinuities, unknown capture times, several configurations.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        for round in 0..6 {
            let mut playlist = Playlist::new(PlaylistConfig {
                part_target: Duration::from_millis(100 + 50 * round),
                segment_target: Duration::from_millis(500 + 250 * round),
                playlist_segments: 1 + round as usize * 2,
                retained_segments: 3 + round as usize * 3,
                uri_prefix: String::new(),
                stream_id: if round % 2 == 0 {
                    String::new()
                } else {
                    format!("s{round}")
                },
            });
            for n in 0..800_u64 {
                if next(200) == 0 {
                    playlist.discontinuity();
                    playlist.set_init(&init_name(&n.to_be_bytes()));
                }
                let pushed = playlist.push(Chunk {
                    bytes: Bytes::from(n.to_be_bytes().to_vec()),
                    duration: 1500 + next(4000) as u32,
                    keyframe: next(20) == 0,
                    capture_unix_ns: (next(10) != 0).then_some(BASE_NS + n * 33_000_000),
                    available_unix_ns: BASE_NS + n * 33_000_000,
                });
                if pushed.discarded {
                    continue;
                }
                check_invariants(&playlist);
            }
        }
    }

    fn check_invariants(playlist: &Playlist) {
        assert!(playlist.segments.len() <= playlist.config.retained_segments);
        let Some(text) = playlist.render(false) else {
            assert!(playlist.segments.is_empty() && playlist.open.parts.is_empty());
            return;
        };
        // Render with capture times possibly missing: parse without the PDT assertion.
        let parsed = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            other => panic!("not a media playlist: {other:?}\n{text}"),
        };
        let mut map = None;
        let listed = playlist
            .segments
            .len()
            .min(playlist.config.playlist_segments);
        let first = playlist.segments.len() - listed;
        for (i, segment) in parsed.segments.iter().enumerate() {
            assert!(
                segment.duration.round() as u64 <= parsed.target_duration,
                "{text}"
            );
            // Every segment plays with the init segment its media was muxed for.
            map = segment.map.as_ref().map(|m| m.uri.clone()).or(map);
            assert_eq!(
                map.as_deref(),
                Some(&*playlist.segments[first + i].init),
                "{text}"
            );
        }
        let part_target_ms = playlist.part_target_ms();
        for segment in &playlist.segments {
            let joined: Vec<u8> = (0..segment.parts.len() as u32)
                .flat_map(|i| match playlist.part(segment.msn, i) {
                    PartState::Complete(bytes) => bytes.to_vec(),
                    other => panic!("{}.{i}: {other:?}", segment.msn),
                })
                .collect();
            assert_eq!(playlist.segment(segment.msn).unwrap(), joined);
            let total: u64 = segment.parts.iter().map(|p| p.info.duration).sum();
            assert_eq!(total, segment.duration);
            for part in &segment.parts {
                assert!(part.info.duration * 1000 <= part_target_ms * TIMESCALE);
            }
        }
        let (msn, index) = playlist.preload_hint();
        assert_eq!(
            playlist.availability(msn, Some(index)),
            Availability::Pending
        );
        assert!(matches!(playlist.part(msn, index), PartState::Open { .. }));
        if let Some(delta) = playlist.render(true) {
            assert!(m3u8_rs::parse_playlist_res(delta.as_bytes()).is_ok());
        }
    }

    #[test]
    fn resource_names() {
        assert_eq!(Resource::parse("init.mp4"), Some(Resource::Init));
        assert_eq!(Resource::parse("seg12.m4s"), Some(Resource::Segment(12)));
        assert_eq!(Resource::parse("part12.3.m4s"), Some(Resource::Part(12, 3)));
        for bad in [
            "",
            "seg.m4s",
            "seg+1.m4s",
            "seg1.mp4",
            "part1.m4s",
            "part1..m4s",
            "part1.2.3.m4s",
            "part1.4294967296.m4s",
            "seg99999999999999999999999.m4s",
            "../seg1.m4s",
            "index.m3u8",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Resource::parse("init-00000000000000ff.mp4"),
            Some(Resource::InitVersion(255))
        );
        for bad in [
            "init-ff.mp4",
            "init-00000000000000fg.mp4",
            "init-.mp4",
            "init-0000000000000000ff.mp4",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Resource::parse_named("a1b2-seg12.m4s"),
            Some(("a1b2", Resource::Segment(12)))
        );
        assert_eq!(
            Resource::parse_named("a1b2-part12.3.m4s"),
            Some(("a1b2", Resource::Part(12, 3)))
        );
        assert_eq!(
            Resource::parse_named("seg12.m4s"),
            Some(("", Resource::Segment(12)))
        );
        assert_eq!(
            Resource::parse_named("init-00000000000000ff.mp4"),
            Some(("", Resource::InitVersion(255)))
        );
        let long = format!("{}-seg1.m4s", "a".repeat(MAX_STREAM_ID_LEN + 1));
        for bad in [
            "-seg1.m4s",
            "a.b-seg1.m4s",
            "x-init.mp4",
            "x-y-seg1.m4s",
            long.as_str(),
        ] {
            assert_eq!(Resource::parse_named(bad), None, "{bad}");
        }
    }

    #[test]
    fn shared_renders_follow_every_change() {
        let mut playlist = Playlist::new(PlaylistConfig {
            part_target: Duration::from_millis(100),
            ..PlaylistConfig::default()
        });
        let mut source = Source::new(30);
        assert_eq!(playlist.render_shared(false), None);
        for frames in [40, 1, 1, 2, 30] {
            source.push(&mut playlist, frames);
            for skip in [false, true] {
                let shared = playlist.render_shared(skip).expect("a part is complete");
                assert_eq!(
                    Some(shared.to_vec()),
                    playlist.render(skip).map(String::into_bytes)
                );
                // Asked again without a change: the same bytes, not a new render.
                let again = playlist.render_shared(skip).expect("rendered");
                assert_eq!(shared.as_ptr(), again.as_ptr());
            }
        }
        let before = playlist.render_shared(false).expect("rendered");
        playlist.discontinuity();
        playlist.set_init("init-00000000000000aa.mp4");
        source.push(&mut playlist, 1);
        assert_ne!(playlist.render_shared(false), Some(before));
    }

    #[test]
    fn init_names_follow_the_bytes() {
        assert_eq!(init_name(b""), "init-cbf29ce484222325.mp4");
        assert_ne!(init_name(b"sps A"), init_name(b"sps B"));
        let name = init_name(b"moov");
        assert!(matches!(
            Resource::parse(&name),
            Some(Resource::InitVersion(_))
        ));
    }

    #[test]
    fn a_new_init_segment_is_named_where_its_media_starts() {
        let mut playlist = Playlist::new(PlaylistConfig {
            part_target: Duration::from_millis(100),
            playlist_segments: 3,
            stream_id: "k7".into(),
            ..PlaylistConfig::default()
        });
        playlist.set_init("init-0000000000000001.mp4");
        let mut source = Source::new(30);
        source.push(&mut playlist, 45);
        playlist.discontinuity();
        playlist.set_init("init-0000000000000002.mp4");
        source.push(&mut playlist, 45);
        let text = render_checked(&playlist, false);
        let maps: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-MAP"))
            .collect();
        assert_eq!(
            maps,
            [
                "#EXT-X-MAP:URI=\"init-0000000000000001.mp4\"",
                "#EXT-X-MAP:URI=\"init-0000000000000002.mp4\""
            ],
            "{text}"
        );
        // The second map follows the discontinuity, before the first segment that needs it.
        let at = text.find("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-0000000000000002.mp4\"");
        assert!(at.is_some(), "{text}");
        assert!(text.contains("\nk7-seg0.m4s\n"), "{text}");
        assert!(text.contains("URI=\"k7-part"), "{text}");
        // Once the old segments leave the playlist, the header names the new init.
        source.push(&mut playlist, 150);
        let text = render_checked(&playlist, false);
        let maps: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-MAP"))
            .collect();
        assert_eq!(
            maps,
            ["#EXT-X-MAP:URI=\"init-0000000000000002.mp4\""],
            "{text}"
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(seconds(18_000), "0.20000");
        assert_eq!(seconds(90_000), "1.00000");
        assert_eq!(seconds(3003), "0.03337");
        assert_eq!(seconds(1), "0.00001");
        assert_eq!(seconds(0), "0.00000");
        assert_eq!(millis(600), "0.600");
        assert_eq!(millis(12_345), "12.345");
        assert_eq!(to_ticks(Duration::from_millis(200)), 18_000);
        assert_eq!(program_date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            program_date_time(BASE_NS + 999_999),
            "2026-11-21T05:43:01.123Z"
        );
        assert_eq!(
            program_date_time(951_825_600_000_000_000),
            "2000-02-29T12:00:00.000Z"
        );
        assert_eq!(
            program_date_time(4_107_542_399_999_000_000),
            "2100-02-28T23:59:59.999Z"
        );
    }

    #[test]
    fn companion_chunks_ride_in_front_of_the_next_video_chunk() {
        let mut playlist = Playlist::new(config(3, 10));
        let mut source = Source::new(30);
        assert!(
            playlist.push_companion(Bytes::from_static(b"a")).discarded,
            "before the first keyframe"
        );
        source.push(&mut playlist, 1);
        playlist.push_companion(Bytes::from_static(b"<a1>"));
        playlist.push_companion(Bytes::from_static(b"<a2>"));
        source.push(&mut playlist, 59);
        playlist.push_companion(Bytes::from_static(b"<a3>"));
        source.push(&mut playlist, 1); // frame 60, a keyframe: cuts segment 1
        source.push(&mut playlist, 60);
        let first = playlist.segment(0).expect("complete");
        let expected = format!("[0]<a1><a2>{}", String::from_utf8_lossy(&frames(1..30)));
        assert!(
            String::from_utf8_lossy(&first).starts_with(&expected),
            "{first:?}"
        );
        let third = playlist.segment(2).expect("complete");
        assert!(
            third.starts_with(b"<a3>[60]"),
            "the companion queued before the cut opens the next segment: {third:?}"
        );
        let text = render_checked(&playlist, false);
        assert!(
            !text.contains("DURATION=0.0"),
            "no part without video:\n{text}"
        );
        for _ in 0..MAX_PENDING_COMPANIONS {
            playlist.push_companion(Bytes::from_static(b"x"));
        }
        assert!(
            playlist.push_companion(Bytes::from_static(b"y")).discarded,
            "bounded"
        );
    }
}
