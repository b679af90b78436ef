//! Fan-out once, send many: one path's outgoing RTP streams, shared by all its RTSP readers.
//!
//! Contract:
//! - A [`PathPacketizer`] owns one RTP stream per track of a path (one SSRC, one sequence
//!   space, one timestamp base, one sender-report schedule), as other RTSP servers do. Frames
//!   go in once, in publish order; each becomes an [`RtpFrame`]: its RTP packets (and the
//!   stream's sender report when one is due) already `$`-framed for TCP readers, in one
//!   reference-counted buffer.
//! - Every reader sends the same bytes: a TCP reader whose channels are the track's
//!   [canonical channels](canonical_channels) writes the buffer as is (no copy); another gets a
//!   copy with the channel bytes rewritten ([`RtpFrame::interleaved_on`]). A UDP reader sends the
//!   packets inside it ([`RtpFrame::rtp_packets`], [`RtpFrame::rtcp_packet`]).
//! - A reader that skips frames (it fell behind) sees a gap in the sequence numbers, which is
//!   what loss looks like to it.
//! - [`RtpFrame::start`] gives RTP-Info: the sequence number and RTP time of the first packet
//!   a reader gets of a track.
//! - Every video keyframe carries a sender report, and so does the first payload of each other
//!   track after it (besides one a second): a reader starting at a keyframe can map every
//!   track's RTP time to capture time from its first packets.

use std::time::Instant;

use bytes::Bytes;
use livefeed_media::track::TrackPacket;
use livefeed_media::AccessUnit;

use crate::rtp_sender::{push_interleaved, RtpSender, TrackSender};
use crate::server_session::PlayStart;

/// The interleaved channels (RTP, RTCP) a track's shared bytes are built for: `2t` and `2t+1`,
/// what ffmpeg, GStreamer and livefeed's own client ask for when they set up every track.
pub fn canonical_channels(track: usize) -> (u8, u8) {
    let rtp = u8::try_from(track.saturating_mul(2)).unwrap_or(254);
    (rtp, rtp.saturating_add(1))
}

/// One frame's packets as every RTSP reader of a path sends them.
#[derive(Debug, Clone)]
pub struct RtpFrame {
    track: usize,
    /// The sender report (if one is due) on the track's canonical RTCP channel, then the
    /// `$`-framed RTP packets on its RTP channel. The report goes first so that a reader
    /// starting at this frame knows its capture time from its first packet on.
    interleaved: Bytes,
    /// Where each RTP packet's `$` header starts in `interleaved`.
    rtp_at: Vec<u32>,
    /// Where the sender report's `$` header starts, if there is one.
    rtcp_at: Option<u32>,
    start: PlayStart,
}

impl RtpFrame {
    /// The track (0 = video).
    pub fn track(&self) -> usize {
        self.track
    }

    /// Sequence number and RTP time of the frame's first packet.
    pub fn start(&self) -> PlayStart {
        self.start
    }

    /// The interleaved bytes on `channels` (RTP, RTCP): the shared buffer itself when they are
    /// the track's canonical channels, else a copy with the channel bytes rewritten.
    pub fn interleaved_on(&self, channels: (u8, u8)) -> Bytes {
        if channels == canonical_channels(self.track) {
            return self.interleaved.clone();
        }
        let mut copy = self.interleaved.to_vec();
        for &at in &self.rtp_at {
            copy[at as usize + 1] = channels.0;
        }
        if let Some(at) = self.rtcp_at {
            copy[at as usize + 1] = channels.1;
        }
        Bytes::from(copy)
    }

    /// The RTP packets, for a UDP reader.
    pub fn rtp_packets(&self) -> impl Iterator<Item = &[u8]> {
        self.rtp_at.iter().map(|&at| self.frame_at(at))
    }

    /// The RTCP sender report, if one went with this frame.
    pub fn rtcp_packet(&self) -> Option<&[u8]> {
        self.rtcp_at.map(|at| self.frame_at(at))
    }

    /// Bytes of the interleaved form (what a TCP reader writes).
    pub fn len(&self) -> usize {
        self.interleaved.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.interleaved.is_empty()
    }

    /// The payload of the `$` frame whose header starts at `at`.
    fn frame_at(&self, at: u32) -> &[u8] {
        let at = at as usize;
        let len = usize::from(u16::from_be_bytes([
            self.interleaved[at + 2],
            self.interleaved[at + 3],
        ]));
        &self.interleaved[at + 4..at + 4 + len]
    }
}

/// Collects one frame's `$`-framed packets and where each starts.
struct FrameBuilder {
    bytes: Vec<u8>,
    rtp_at: Vec<u32>,
    rtcp_at: Option<u32>,
}

impl FrameBuilder {
    fn new(capacity: usize) -> Self {
        FrameBuilder {
            bytes: Vec::with_capacity(capacity),
            rtp_at: Vec::new(),
            rtcp_at: None,
        }
    }

    /// Adds an RTP packet; one too long for a `$` frame (never one livefeed packetizes; a
    /// publisher's payload could be) is left out, as a lost packet.
    fn rtp(&mut self, channel: u8, packet: &[u8]) {
        if packet.len() > usize::from(u16::MAX) {
            return;
        }
        self.rtp_at.push(self.bytes.len() as u32);
        push_interleaved(&mut self.bytes, channel, packet);
    }

    fn rtcp(&mut self, channel: u8, packet: &[u8]) {
        self.rtcp_at = Some(self.bytes.len() as u32);
        push_interleaved(&mut self.bytes, channel, packet);
    }

    fn finish(self, track: usize, start: PlayStart) -> RtpFrame {
        RtpFrame {
            track,
            interleaved: Bytes::from(self.bytes),
            rtp_at: self.rtp_at,
            rtcp_at: self.rtcp_at,
            start,
        }
    }
}

/// The outgoing RTP streams of one path (see the module docs).
#[derive(Default)]
pub struct PathPacketizer {
    video: Option<RtpSender>,
    /// Track `i + 1`'s stream and its payload type.
    others: Vec<Option<(u8, TrackSender)>>,
    rtp: Vec<u8>,
}

impl PathPacketizer {
    /// A path with no stream started yet (each track's is made at its first frame).
    pub fn new() -> Self {
        Self::default()
    }

    /// The SSRC of track `track` (0 = video; others sent with `payload_type`), its stream
    /// started if it was not, so a reader can be told it at SETUP before any packet exists.
    pub fn ssrc(&mut self, track: usize, payload_type: u8) -> u32 {
        match track {
            0 => self.video.get_or_insert_with(RtpSender::new).ssrc(),
            _ => other_stream(&mut self.others, track, payload_type).ssrc(),
        }
    }

    /// Packetizes one video access unit. Its sender reports map RTP time to the access
    /// unit's capture stamp, or to `unstamped_capture_ns` (Unix ns) for a frame without one.
    pub fn video(&mut self, au: &AccessUnit, unstamped_capture_ns: u64, now: Instant) -> RtpFrame {
        if au.keyframe {
            for (_, sender) in self.others.iter_mut().flatten() {
                sender.report_next();
            }
        }
        let sender = self.video.get_or_insert_with(RtpSender::new);
        if au.keyframe {
            sender.report_next();
        }
        let start = PlayStart {
            seq: sender.next_seq(),
            rtptime: sender.start(au.pts).rtptime,
        };
        let (rtp, rtcp) = canonical_channels(0);
        let packets = sender.packetize(au, unstamped_capture_ns, now);
        let size: usize = packets.rtp.iter().map(|p| p.len() + 4).sum();
        let mut frame = FrameBuilder::new(size + 64);
        if let Some(sr) = &packets.rtcp {
            frame.rtcp(rtcp, sr);
        }
        for p in packets.rtp {
            frame.rtp(rtp, p);
        }
        frame.finish(0, start)
    }

    /// Packetizes one payload of track `packet.track` (1, 2, …), sent with `payload_type`. Its
    /// sender reports map RTP time to `capture_unix_ns` (see [`TrackSender::write_captured`]).
    pub fn packet(
        &mut self,
        packet: &TrackPacket,
        payload_type: u8,
        capture_unix_ns: u64,
        now: Instant,
    ) -> RtpFrame {
        let track = packet.track;
        let sender = other_stream(&mut self.others, track, payload_type);
        let start = PlayStart {
            seq: sender.next_seq(),
            rtptime: sender.start(packet.pts).rtptime,
        };
        self.rtp.clear();
        let sr = sender.write_captured(packet, capture_unix_ns, now, &mut self.rtp);
        let (rtp, rtcp) = canonical_channels(track);
        let mut frame =
            FrameBuilder::new(self.rtp.len() + 4 + sr.as_ref().map_or(0, |s| s.len() + 4));
        if let Some(sr) = &sr {
            frame.rtcp(rtcp, sr);
        }
        frame.rtp(rtp, &self.rtp);
        frame.finish(track, start)
    }
}

/// Track `track`'s stream in `others`, made (or made again, for a new payload type) as needed.
fn other_stream(
    others: &mut Vec<Option<(u8, TrackSender)>>,
    track: usize,
    payload_type: u8,
) -> &mut TrackSender {
    let index = track.saturating_sub(1);
    if others.len() <= index {
        others.resize_with(index + 1, || None);
    }
    let slot = &mut others[index];
    if slot.as_ref().is_none_or(|(pt, _)| *pt != payload_type) {
        *slot = None;
    }
    &mut slot
        .get_or_insert_with(|| (payload_type, TrackSender::new(payload_type)))
        .1
}

#[cfg(test)]
mod tests {
    use super::*;
    use livefeed_media::rtcp::parse_sender_reports;
    use livefeed_media::rtp::parse_rtp;
    use livefeed_media::VideoCodec;

    fn au(pts: u64, size: usize) -> AccessUnit {
        AccessUnit {
            codec: VideoCodec::H264,
            nals: vec![Bytes::from(vec![0x65; size])],
            pts,
            keyframe: true,
            capture: None,
        }
    }

    fn opus(pts: u64) -> TrackPacket {
        TrackPacket {
            track: 1,
            pts,
            payload: Bytes::from_static(b"opus"),
            marker: true,
            capture_unix_ns: None,
        }
    }

    /// Splits interleaved bytes into (channel, payload) frames.
    fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            assert_eq!(rest[0], b'$');
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            out.push((rest[1], rest[4..4 + len].to_vec()));
            rest = &rest[4 + len..];
        }
        out
    }

    #[test]
    fn video_frames_share_one_sequence_space_and_start_at_their_first_packet() {
        let mut p = PathPacketizer::new();
        let t0 = Instant::now();
        let a = p.video(&au(0, 3000), 1, t0);
        let b = p.video(&au(3000, 100), 1, t0);
        let a_frames = frames(&a.interleaved_on((0, 1)));
        assert_eq!(a_frames.len(), 4, "three RTP packets and the first report");
        assert_eq!(a_frames[0].0, 1, "the report first, on the RTCP channel");
        assert!(parse_sender_reports(&a_frames[0].1).is_ok());
        assert!(a_frames[1..].iter().all(|(channel, _)| *channel == 0));
        let seqs: Vec<u16> = a
            .rtp_packets()
            .chain(b.rtp_packets())
            .map(|r| parse_rtp(r).expect("valid RTP").sequence_number)
            .collect();
        assert_eq!(seqs.len(), 4);
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1));
        }
        assert_eq!(a.start().seq, seqs[0]);
        assert_eq!(b.start().seq, seqs[3]);
        let b_rtp = parse_rtp(b.rtp_packets().next().expect("one packet")).expect("valid");
        assert_eq!(b.start().rtptime, b_rtp.timestamp);
        assert!(b.rtcp_packet().is_some(), "a keyframe carries a report");
        let mut delta = au(6000, 100);
        delta.keyframe = false;
        let c = p.video(&delta, 1, t0);
        assert!(
            c.rtcp_packet().is_none(),
            "other frames: one report a second"
        );
        assert_eq!(c.start().seq, seqs[3].wrapping_add(1));
    }

    #[test]
    fn after_a_keyframe_each_other_track_reports_with_its_first_payload() {
        let mut p = PathPacketizer::new();
        let t0 = Instant::now();
        p.video(&au(0, 10), 1, t0);
        assert!(p.packet(&opus(0), 111, 1, t0).rtcp_packet().is_some());
        assert!(p.packet(&opus(960), 111, 1, t0).rtcp_packet().is_none());
        p.video(&au(3000, 10), 1, t0);
        assert!(
            p.packet(&opus(1920), 111, 1, t0).rtcp_packet().is_some(),
            "a reader starting at that keyframe has the audio's mapping at once"
        );
        assert!(p.packet(&opus(2880), 111, 1, t0).rtcp_packet().is_none());
    }

    #[test]
    fn a_packet_too_long_for_a_dollar_frame_is_left_out() {
        let mut p = PathPacketizer::new();
        let mut huge = opus(0);
        huge.payload = Bytes::from(vec![0u8; 70_000]);
        let f = p.packet(&huge, 111, 1, Instant::now());
        assert_eq!(f.rtp_packets().count(), 0);
        assert!(frames(&f.interleaved_on(canonical_channels(1)))
            .iter()
            .all(|(channel, _)| *channel == 3));
    }

    #[test]
    fn canonical_channels_share_the_buffer_and_other_channels_get_a_rewritten_copy() {
        let mut p = PathPacketizer::new();
        let f = p.video(&au(0, 2500), 1, Instant::now());
        let shared = f.interleaved_on((0, 1));
        assert_eq!(
            shared.as_ptr(),
            f.interleaved_on((0, 1)).as_ptr(),
            "no copy"
        );
        let moved = f.interleaved_on((6, 7));
        assert_ne!(moved.as_ptr(), shared.as_ptr());
        let (a, b) = (frames(&shared), frames(&moved));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.1, y.1, "same packets");
            assert_eq!(y.0, x.0 + 6);
        }
    }

    #[test]
    fn other_tracks_have_their_own_stream_on_their_own_channels() {
        let mut p = PathPacketizer::new();
        let t0 = Instant::now();
        let v = p.video(&au(0, 10), 1, t0);
        let a = p.packet(&opus(0), 111, 1, t0);
        let b = p.packet(&opus(960), 111, 1, t0);
        assert_eq!(a.track(), 1);
        let a_frames = frames(&a.interleaved_on(canonical_channels(1)));
        assert_eq!(a_frames[0].0, 3, "a report before the first packet");
        assert_eq!(a_frames[1].0, 2);
        let ra = parse_rtp(a.rtp_packets().next().expect("packet")).expect("valid");
        let rb = parse_rtp(b.rtp_packets().next().expect("packet")).expect("valid");
        let rv = parse_rtp(v.rtp_packets().next().expect("packet")).expect("valid");
        assert_eq!(ra.payload_type, 111);
        assert_ne!(ra.ssrc, rv.ssrc);
        assert_eq!(rb.sequence_number, ra.sequence_number.wrapping_add(1));
        assert_eq!(rb.timestamp, ra.timestamp.wrapping_add(960));
        assert_eq!(a.start().seq, ra.sequence_number);
        assert_eq!(a.start().rtptime, ra.timestamp);
        assert!(b.rtcp_packet().is_none());
    }
}
