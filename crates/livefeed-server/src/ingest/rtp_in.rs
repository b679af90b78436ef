//! A publisher's tracks, RTP in and hub frames out, whatever brought the packets: an RTSP
//! publisher's connection or UDP ports, or a stream pulled from another server. The video
//! track is depacketized into access units (a capture stamp taken from livefeed's SEI
//! message, or, for a pulled stream that asks for it, from the sender's RTCP reports); other
//! tracks pass their payloads on, re-timed onto the path's timeline.
//!
//! A bad packet is dropped and logged (the first five, then every 100th) naming the peer, the
//! path and the cause; it never ends the publisher.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use livefeed_media::clock::{elapsed_ms, unix_now_ns};
use livefeed_media::rtcp::{parse_sender_reports, CaptureClock};
use livefeed_media::rtp::{DepacketizeError, Depacketized, DepacketizerLimits, VideoDepacketizer};
use livefeed_media::sdp::AnnouncedStream;
use livefeed_media::track::{PacketTimeline, TrackDescription, TrackPacket};
use livefeed_media::{sei, AccessUnit, CaptureStamp, VideoCodec};
use tracing::{info, warn};

use crate::hub::Publisher;
use crate::measure::metrics::ServerMetrics;

/// What the tracks of one publisher share: its hold on the path, and the moment its first
/// video frame reached the hub (the zero of every track's timeline).
pub(crate) struct IngestShared {
    pub(crate) publisher: Publisher,
    /// Who sends: a socket address, or a pulled source's URL.
    peer: String,
    metrics: Arc<ServerMetrics>,
    started: OnceLock<Instant>,
    bad_packets: AtomicU64,
    /// The SSRC of the publisher's video RTP (for the RTCP sent to it) with bit 32 set once
    /// known; 0 before its first packet.
    video_ssrc: AtomicU64,
    /// Where the video's capture times come from ([`CaptureSource`] as a number).
    capture_source: AtomicU8,
    /// The sender's clock less the server's, µs, estimated from its video sender reports
    /// ([`i64::MIN`] before the first).
    clock_offset_us: AtomicI64,
}

impl IngestShared {
    /// The shared state of `publisher`'s tracks; `peer` names the sender in logs.
    pub(crate) fn new(publisher: Publisher, peer: String, metrics: Arc<ServerMetrics>) -> Self {
        IngestShared {
            publisher,
            peer,
            metrics,
            started: OnceLock::new(),
            bad_packets: AtomicU64::new(0),
            video_ssrc: AtomicU64::new(0),
            capture_source: AtomicU8::new(CaptureSource::Arrival as u8),
            clock_offset_us: AtomicI64::new(i64::MIN),
        }
    }

    /// Whether the first video frame has reached the hub.
    pub(crate) fn has_started(&self) -> bool {
        self.started.get().is_some()
    }

    /// Who sends.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// The SSRC of the video RTP, once a packet arrived.
    pub(crate) fn video_ssrc(&self) -> Option<u32> {
        let seen = self.video_ssrc.load(Ordering::Relaxed);
        (seen >> 32 == 1).then_some(seen as u32)
    }

    /// Where the video's capture times come from, and the sender's clock offset to the
    /// server's (ms) when it sends reports.
    pub(crate) fn clock(&self) -> (CaptureSource, Option<f64>) {
        let source = match self.capture_source.load(Ordering::Relaxed) {
            x if x == CaptureSource::Stamp as u8 => CaptureSource::Stamp,
            x if x == CaptureSource::SenderReport as u8 => CaptureSource::SenderReport,
            _ => CaptureSource::Arrival,
        };
        let offset = self.clock_offset_us.load(Ordering::Relaxed);
        (source, (offset != i64::MIN).then(|| offset as f64 / 1000.0))
    }

    /// Logs the first few bad packets and then every 100th, naming the peer and the cause.
    pub(crate) fn bad_packet(&self, track: usize, cause: &dyn std::fmt::Display) {
        let count = self.bad_packets.fetch_add(1, Ordering::Relaxed) + 1;
        if count <= 5 || count.is_multiple_of(100) {
            warn!(peer = %self.peer, path = self.publisher.path(), track, cause = %cause, count, "bad RTP from publisher");
        }
    }
}

/// One track of a publisher, RTP in, hub frames out.
pub(crate) enum TrackIngest {
    Video(Box<VideoIngest>),
    Packets(PacketIngest),
}

impl TrackIngest {
    /// Track `track` of `announced` (0: the video). With `sender_report_clock`, video frames
    /// without livefeed's capture stamp are stamped from the sender's RTCP reports.
    pub(crate) fn new(
        shared: Arc<IngestShared>,
        track: usize,
        announced: &AnnouncedStream,
        limits: DepacketizerLimits,
        sender_report_clock: bool,
    ) -> Self {
        match track.checked_sub(1).and_then(|i| announced.others.get(i)) {
            Some(description) => Self::packets(shared, track, description),
            None => Self::video(
                shared,
                announced.video.codec,
                announced.video.payload_type,
                limits,
                sender_report_clock,
            ),
        }
    }

    /// The video track (track 0) in `codec`, RTP of `payload_type`.
    pub(crate) fn video(
        shared: Arc<IngestShared>,
        codec: VideoCodec,
        payload_type: u8,
        limits: DepacketizerLimits,
        sender_report_clock: bool,
    ) -> Self {
        TrackIngest::Video(Box::new(VideoIngest {
            shared,
            payload_type,
            depacketizer: VideoDepacketizer::with_limits(codec, limits),
            first_ts: None,
            sender_reports: sender_report_clock.then(|| SenderReportClock {
                clock: CaptureClock::new(livefeed_media::VIDEO_CLOCK_RATE),
                frames: 0,
                offsets: Default::default(),
            }),
        }))
    }

    /// Track `track` (1, 2, …) as `description` says.
    pub(crate) fn packets(
        shared: Arc<IngestShared>,
        track: usize,
        description: &TrackDescription,
    ) -> Self {
        TrackIngest::Packets(PacketIngest {
            shared,
            track,
            timeline: PacketTimeline::new(description.payload_type),
            clock_rate: description.clock_rate,
            anchor: None,
            capture: CaptureClock::new(description.clock_rate),
        })
    }

    /// A whole video access unit (from a protocol that does not packetize, such as RTMP).
    /// `Err` once another publisher took the path over; `Ok` (nothing done) for a track that
    /// is not the video.
    pub(crate) fn push_frame(&mut self, frame: Depacketized) -> Result<(), String> {
        let TrackIngest::Video(video) = self else {
            return Ok(());
        };
        if video.publish(frame) {
            return Ok(());
        }
        let shared = &video.shared;
        info!(peer = %shared.peer, path = shared.publisher.path(), "publisher replaced by a new one, closing");
        Err("another publisher took the path over".into())
    }

    /// `Err` once another publisher took the path over (the connection should close).
    pub(crate) fn push(&mut self, packet: &[u8]) -> Result<(), String> {
        let (taken, shared) = match self {
            TrackIngest::Video(v) => (v.push_rtp(packet), &v.shared),
            TrackIngest::Packets(p) => (p.push_rtp(packet), &p.shared),
        };
        if taken {
            return Ok(());
        }
        info!(peer = %shared.peer, path = shared.publisher.path(), "publisher replaced by a new one, closing");
        Err("another publisher took the path over".into())
    }

    /// Takes the publisher's RTCP for this track: the sender reports that tie a non-video
    /// track's RTP time to its capture time. (The video's capture time is its SEI stamp.)
    pub(crate) fn push_rtcp(&mut self, packet: &[u8]) {
        match self {
            TrackIngest::Packets(p) => {
                if let Err(e) = p.capture.on_rtcp(packet) {
                    p.shared.bad_packet(p.track, &e);
                }
            }
            TrackIngest::Video(v) => v.push_rtcp(packet),
        }
    }
}

/// The video track: RTP packets into access units.
pub(crate) struct VideoIngest {
    shared: Arc<IngestShared>,
    /// Packets of any other payload type are dropped (counted as bad).
    payload_type: u8,
    depacketizer: VideoDepacketizer,
    first_ts: Option<u64>,
    /// Stamps frames that carry no capture stamp, when asked to.
    sender_reports: Option<SenderReportClock>,
}

/// Capture times of a sender's video from its RTCP sender reports, and its clock's offset.
struct SenderReportClock {
    clock: CaptureClock,
    /// Frames stamped so far (the stamps' frame numbers).
    frames: u64,
    /// The last reports' (sender time − arrival time), µs: their largest is the estimate of
    /// the offset (the least delayed report), as NTP does.
    offsets: std::collections::VecDeque<i64>,
}

/// The largest sender clock offset (µs) whose reports still time frames: 5 s.
const MAX_SENDER_CLOCK_OFFSET_US: u64 = 5_000_000;

/// Sender reports the clock offset is estimated over.
const OFFSET_REPORTS: usize = 16;

impl VideoIngest {
    /// `false` once another publisher took the path over.
    fn push_rtp(&mut self, packet: &[u8]) -> bool {
        if let Some(ssrc) = packet.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            let seen = 1 << 32 | u64::from(u32::from_be_bytes(ssrc));
            self.shared.video_ssrc.store(seen, Ordering::Relaxed);
        }
        if let Some(second) = packet.get(1) {
            if second & 0x7f != self.payload_type {
                let cause = format!(
                    "unexpected payload type {} (announced {}), dropped",
                    second & 0x7f,
                    self.payload_type
                );
                self.shared.bad_packet(0, &cause);
                return true;
            }
        }
        let mut next = match self.depacketizer.push(packet) {
            Ok(out) => out,
            Err(e) => {
                self.bad_packet(&e);
                // An access unit finished before the bad packet is still waiting.
                self.depacketizer.pull()
            }
        };
        while let Some(out) = next {
            if !self.publish(out) {
                return false;
            }
            next = self.depacketizer.pull();
        }
        true
    }

    fn publish(&mut self, out: Depacketized) -> bool {
        let now = Instant::now();
        let first = *self.first_ts.get_or_insert(out.ext_timestamp);
        let codec = self.depacketizer.codec();
        // livefeed's capture stamp is an H.264 SEI message.
        let stamped = (codec == VideoCodec::H264)
            .then(|| sei::find_stamp(&out.nals))
            .flatten();
        let capture = stamped.or_else(|| self.sender_report_stamp(out.rtp_timestamp));
        let source = match (stamped, capture) {
            (Some(_), _) => CaptureSource::Stamp,
            (None, Some(_)) => CaptureSource::SenderReport,
            (None, None) => CaptureSource::Arrival,
        };
        let shared = &self.shared;
        shared.capture_source.store(source as u8, Ordering::Relaxed);
        if let Some(c) = capture {
            let ms = elapsed_ms(c.unix_ns, unix_now_ns());
            shared.metrics.record_ingest(shared.publisher.path(), ms);
        }
        let au = AccessUnit {
            codec,
            nals: out.nals,
            pts: out.ext_timestamp.saturating_sub(first),
            keyframe: out.keyframe,
            capture,
        };
        shared.started.get_or_init(|| now);
        shared
            .publisher
            .publish_received(au, now, out.lost_packets_before)
    }

    fn bad_packet(&self, e: &DepacketizeError) {
        self.shared.bad_packet(0, e);
    }

    /// A capture stamp from the sender's reports, when this track uses them and one came.
    fn sender_report_stamp(&mut self, rtp_timestamp: u32) -> Option<CaptureStamp> {
        let clock = self.sender_reports.as_mut()?;
        // A sender clock this far from the server's is not set (a camera counting from its
        // boot, or from 1900): its times would be years off, so arrival times are used.
        let offset = self.shared.clock_offset_us.load(Ordering::Relaxed);
        if offset == i64::MIN || offset.unsigned_abs() > MAX_SENDER_CLOCK_OFFSET_US {
            return None;
        }
        let unix_ns = clock.clock.capture_unix_ns(rtp_timestamp)?;
        let frame = clock.frames;
        clock.frames += 1;
        Some(CaptureStamp { unix_ns, frame })
    }

    /// Takes the sender's RTCP: with the sender-report clock, its reports time the frames.
    fn push_rtcp(&mut self, packet: &[u8]) {
        let Some(clock) = self.sender_reports.as_mut() else {
            return;
        };
        let reports = match parse_sender_reports(packet) {
            Ok(reports) => reports,
            Err(e) => return self.shared.bad_packet(0, &e),
        };
        // A report of another SSRC than the video's, or with no wall clock (NTP 0), says
        // nothing about these frames.
        let video_ssrc = self.shared.video_ssrc();
        let Some(report) = reports
            .iter()
            .rfind(|r| r.ntp != 0 && video_ssrc.is_none_or(|s| s == r.ssrc))
        else {
            return;
        };
        // The chosen report times the frames (not the packet's last, which may be another
        // SSRC's or carry no wall clock).
        clock.clock.take_report(*report);
        let offset_us = (report.unix_ns() as i64 - unix_now_ns() as i64) / 1000;
        if clock.offsets.len() == OFFSET_REPORTS {
            clock.offsets.pop_front();
        }
        clock.offsets.push_back(offset_us);
        if let Some(best) = clock.offsets.iter().max() {
            self.shared.clock_offset_us.store(*best, Ordering::Relaxed);
        }
    }
}

/// Where a path's video capture times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CaptureSource {
    /// livefeed's SEI capture stamp in the frames (a livefeed publisher, or another livefeed).
    Stamp = 1,
    /// The sender's RTCP sender reports (its wall clock).
    SenderReport = 2,
    /// The time each frame reached the server.
    Arrival = 3,
}

impl CaptureSource {
    /// The name the API and the dashboard show.
    pub fn name(self) -> &'static str {
        match self {
            CaptureSource::Stamp => "capture stamp",
            CaptureSource::SenderReport => "sender reports",
            CaptureSource::Arrival => "arrival",
        }
    }
}

/// A track other than the video: RTP payloads passed on as they are, re-timed onto the
/// path's timeline (the track's first payload after the first video frame is placed at the
/// time it arrived, the rest follow their RTP timestamps).
pub(crate) struct PacketIngest {
    shared: Arc<IngestShared>,
    track: usize,
    timeline: PacketTimeline,
    clock_rate: u32,
    /// The track's first extended timestamp and the `pts` it was given.
    anchor: Option<(u64, u64)>,
    /// Capture times from the publisher's sender reports of this track.
    capture: CaptureClock,
}

impl PacketIngest {
    /// `false` once another publisher took the path over.
    fn push_rtp(&mut self, packet: &[u8]) -> bool {
        let payload = match self.timeline.push(packet) {
            Ok(Some(p)) => p,
            Ok(None) => return true,
            Err(e) => {
                self.shared.bad_packet(self.track, &e);
                return true;
            }
        };
        let Some(started) = self.shared.started.get() else {
            return true; // no video yet: nothing to place this on
        };
        let rate = u64::from(self.clock_rate);
        let (first, base) = *self.anchor.get_or_insert_with(|| {
            let elapsed = started.elapsed().as_nanos() as u64;
            let base = elapsed.saturating_mul(rate) / 1_000_000_000;
            (payload.ext_timestamp, base)
        });
        let packet = TrackPacket {
            track: self.track,
            pts: base + payload.ext_timestamp.saturating_sub(first),
            payload: payload.payload,
            marker: payload.marker,
            capture_unix_ns: self.capture.capture_unix_ns(payload.rtp_timestamp),
        };
        self.shared.publisher.publish_packet(packet, Instant::now())
    }
}
