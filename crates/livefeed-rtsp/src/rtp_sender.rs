//! One outgoing RTP stream, without I/O: access units in, RTP packets and (once a second) an
//! RTCP sender report out. Used by publishers (client) and by the server for each path's
//! streams ([`crate::fanout`]).
//!
//! The RTP timestamp of an access unit is a random base plus its 90 kHz `pts`. The sender
//! report maps the wall-clock time the caller gives for the latest access unit or payload (NTP:
//! its capture stamp, or for a relay the time it arrived) to its RTP time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use livefeed_media::clock::unix_ns_to_ntp;
use livefeed_media::rtcp::SenderReport;
use livefeed_media::rtp::VideoPacketizer;
use livefeed_media::track::{PacketWriter, TrackPacket};
use livefeed_media::{AccessUnit, VideoCodec};

use crate::server_session::PlayStart;

/// RTP payload type livefeed sends video (H.264 or H.265) with.
pub const PAYLOAD_TYPE: u8 = 96;
/// Largest RTP packet livefeed sends (fits a 1500-byte MTU with room for tunnels).
pub const RTP_MTU: usize = 1200;
/// Interval between RTCP sender reports.
pub const SR_INTERVAL: Duration = Duration::from_secs(1);

/// State of one outgoing RTP stream.
pub struct RtpSender {
    packetizer: VideoPacketizer,
    rtp_base: u32,
    first_seq: u16,
    reports: Reports,
    packets: Vec<Bytes>,
}

/// What a sender report says of one outgoing stream: packets and payload octets so far, and
/// when the last report went out (one per [`SR_INTERVAL`]).
#[derive(Default)]
struct Reports {
    last_sr: Option<Instant>,
    packet_count: u32,
    octet_count: u32,
}

impl Reports {
    /// Makes the next report due whatever the time.
    fn report_next(&mut self) {
        self.last_sr = None;
    }

    /// Counts `packets` RTP packets of `octets` payload bytes.
    fn count(&mut self, packets: usize, octets: usize) {
        self.packet_count = self.packet_count.wrapping_add(packets as u32);
        self.octet_count = self.octet_count.wrapping_add(octets as u32);
    }

    /// A sender report mapping `wall_ns` (Unix ns) to `rtp_ts`, when one is due at `now`.
    fn due(&mut self, now: Instant, ssrc: u32, wall_ns: u64, rtp_ts: u32) -> Option<Vec<u8>> {
        if self
            .last_sr
            .is_some_and(|t| now.saturating_duration_since(t) < SR_INTERVAL)
        {
            return None;
        }
        self.last_sr = Some(now);
        let report = SenderReport {
            ssrc,
            ntp: unix_ns_to_ntp(wall_ns),
            rtp_timestamp: rtp_ts,
            packet_count: self.packet_count,
            octet_count: self.octet_count,
        };
        Some(report.to_bytes())
    }
}

/// The packets of one access unit, and a sender report when one is due.
pub struct Packets<'a> {
    /// RTP packets, in order.
    pub rtp: &'a [Bytes],
    /// An RTCP compound packet with a sender report, once per [`SR_INTERVAL`].
    pub rtcp: Option<Vec<u8>>,
}

impl RtpSender {
    /// A stream with random SSRC, first sequence number and timestamp base.
    pub fn new() -> Self {
        Self::with_ids(rand::random(), rand::random(), rand::random())
    }

    /// A stream with the given identifiers (tests).
    pub fn with_ids(ssrc: u32, first_seq: u16, rtp_base: u32) -> Self {
        RtpSender {
            packetizer: VideoPacketizer::new(
                VideoCodec::H264,
                ssrc,
                PAYLOAD_TYPE,
                RTP_MTU,
                first_seq,
            ),
            rtp_base,
            first_seq,
            reports: Reports::default(),
            packets: Vec::with_capacity(256),
        }
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }

    /// Where the stream starts, for RTP-Info: the first sequence number and the RTP time of
    /// `first_pts`.
    pub fn start(&self, first_pts: u64) -> PlayStart {
        PlayStart {
            seq: self.first_seq,
            rtptime: self.rtp_time(first_pts),
        }
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.packetizer.next_seq()
    }

    /// Sends a sender report with the next access unit, whenever the last one went.
    pub fn report_next(&mut self) {
        self.reports.report_next();
    }

    fn rtp_time(&self, pts: u64) -> u32 {
        self.rtp_base.wrapping_add(pts as u32)
    }

    /// Packetizes one access unit, in the payload format of its codec. Its sender reports map
    /// RTP time to the access unit's capture stamp, or to `unstamped_capture_ns` (Unix ns: for
    /// a relay, when the frame reached it) for a frame without one.
    pub fn packetize(
        &mut self,
        au: &AccessUnit,
        unstamped_capture_ns: u64,
        now: Instant,
    ) -> Packets<'_> {
        if au.codec != self.packetizer.codec() {
            let p = &self.packetizer;
            self.packetizer =
                VideoPacketizer::new(au.codec, p.ssrc(), PAYLOAD_TYPE, RTP_MTU, p.next_seq());
        }
        let rtp_ts = self.rtp_time(au.pts);
        self.packets.clear();
        self.packetizer.packetize(au, rtp_ts, &mut self.packets);
        let payload: usize = self
            .packets
            .iter()
            .map(|p| p.len().saturating_sub(12))
            .sum();
        self.reports.count(self.packets.len(), payload);
        let capture_ns = au.capture.map_or(unstamped_capture_ns, |c| c.unix_ns);
        let ssrc = self.ssrc();
        let rtcp = self.reports.due(now, ssrc, capture_ns, rtp_ts);
        Packets {
            rtp: &self.packets,
            rtcp,
        }
    }
}

/// One outgoing stream of a non-video track: the publisher's payloads re-stamped with this
/// stream's SSRC, sequence numbers and timestamp base, and a sender report once a second that
/// maps the wall-clock time the caller gives for the latest payload to its RTP time.
pub struct TrackSender {
    writer: PacketWriter,
    first_seq: u16,
    reports: Reports,
}

impl TrackSender {
    /// A stream for payload type `payload_type` with random identifiers.
    pub fn new(payload_type: u8) -> Self {
        let first_seq = rand::random();
        TrackSender {
            writer: PacketWriter::new(rand::random(), payload_type, first_seq, rand::random()),
            first_seq,
            reports: Reports::default(),
        }
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.writer.ssrc()
    }

    /// Where the stream starts, for RTP-Info.
    pub fn start(&self, first_pts: u64) -> PlayStart {
        PlayStart {
            seq: self.first_seq,
            rtptime: self.writer.rtp_time(first_pts),
        }
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.writer.next_seq()
    }

    /// Sends a sender report with the next payload, whenever the last one went.
    pub fn report_next(&mut self) {
        self.reports.report_next();
    }

    /// Appends the RTP packet of `packet` to `rtp`, and returns a sender report when one is
    /// due. Its first sample was captured at Unix time `capture_unix_ns` (for a relay: the
    /// time it arrived, when the capture time is unknown), which the reports map its RTP time
    /// to.
    pub fn write_captured(
        &mut self,
        packet: &TrackPacket,
        capture_unix_ns: u64,
        now: Instant,
        rtp: &mut Vec<u8>,
    ) -> Option<Vec<u8>> {
        self.writer.write(packet, rtp);
        self.reports.count(1, packet.payload.len());
        let rtp_ts = self.writer.rtp_time(packet.pts);
        self.reports
            .due(now, self.writer.ssrc(), capture_unix_ns, rtp_ts)
    }
}

impl Default for RtpSender {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends one `$`-framed interleaved frame (payloads are at most 65535 bytes; RTP packets
/// livefeed builds are far smaller).
pub fn push_interleaved(out: &mut Vec<u8>, channel: u8, payload: &[u8]) {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use livefeed_media::clock::unix_now_ns;
    use livefeed_media::rtcp::parse_sender_reports;

    fn au(pts: u64) -> AccessUnit {
        AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals: vec![Bytes::from(vec![0x65; 3000])],
            pts,
            keyframe: true,
            capture: None,
        }
    }

    #[test]
    fn timestamps_follow_pts_from_the_base_and_reports_come_once_a_second() {
        let mut s = RtpSender::with_ids(7, 100, u32::MAX - 10);
        let t0 = Instant::now();
        let first = s.packetize(&au(0), unix_now_ns(), t0);
        assert_eq!(first.rtp.len(), 3);
        let sr = first.rtcp.expect("first access unit carries a report");
        let reports = parse_sender_reports(&sr).expect("valid RTCP");
        assert_eq!(reports[0].ssrc, 7);
        assert_eq!(reports[0].rtp_timestamp, u32::MAX - 10);
        assert!(s
            .packetize(&au(3000), unix_now_ns(), t0 + Duration::from_millis(33))
            .rtcp
            .is_none());
        let later = s.packetize(&au(90_000), unix_now_ns(), t0 + SR_INTERVAL);
        let reports = parse_sender_reports(&later.rtcp.expect("due")).expect("valid");
        assert_eq!(reports[0].rtp_timestamp, 90_000 - 11, "wraps");
        assert_eq!(
            s.start(0),
            PlayStart {
                seq: 100,
                rtptime: u32::MAX - 10
            }
        );
    }

    #[test]
    fn interleaved_frames_are_dollar_framed() {
        let mut s = RtpSender::with_ids(1, 1, 0);
        let mut out = Vec::new();
        let packets = s.packetize(&au(0), unix_now_ns(), Instant::now());
        for p in packets.rtp {
            push_interleaved(&mut out, 2, p);
        }
        if let Some(sr) = &packets.rtcp {
            push_interleaved(&mut out, 3, sr);
        }
        assert_eq!(out[0], b'$');
        assert_eq!(out[1], 2);
        let len = u16::from_be_bytes([out[2], out[3]]) as usize;
        assert!(len <= RTP_MTU);
        assert!(
            out.windows(2).any(|w| w == [b'$', 3]),
            "an RTCP frame on channel 3"
        );
    }

    #[test]
    fn a_track_sender_restamps_payloads_and_reports_once_a_second() {
        let mut s = TrackSender::new(97);
        let packet = |pts| TrackPacket {
            track: 1,
            pts,
            payload: Bytes::from_static(b"opus"),
            marker: true,
            capture_unix_ns: None,
        };
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut first = Vec::new();
        let sr = s.write_captured(&packet(0), unix_now_ns(), t0, &mut first);
        push_interleaved(&mut out, 2, &first);
        if let Some(sr) = sr {
            push_interleaved(&mut out, 3, &sr);
        }
        assert_eq!(&out[..2], &[b'$', 2]);
        let rtp = livefeed_media::rtp::parse_rtp(&out[4..4 + 16]).expect("valid RTP");
        assert_eq!(
            (rtp.payload_type, rtp.marker, rtp.payload),
            (97, true, &b"opus"[..])
        );
        assert_eq!(rtp.timestamp, s.start(0).rtptime);
        assert!(
            out.windows(2).any(|w| w == [b'$', 3]),
            "the first packet carries a report"
        );
        let mut rtp_only = Vec::new();
        assert!(s
            .write_captured(
                &packet(960),
                unix_now_ns(),
                t0 + Duration::from_millis(20),
                &mut rtp_only
            )
            .is_none());
        let sr = s
            .write_captured(
                &packet(48_000),
                unix_now_ns(),
                t0 + SR_INTERVAL,
                &mut rtp_only,
            )
            .expect("due");
        let reports = parse_sender_reports(&sr).expect("valid RTCP");
        assert_eq!(reports[0].packet_count, 3);
        assert_eq!(reports[0].rtp_timestamp, s.start(48_000).rtptime);
    }
}
