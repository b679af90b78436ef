//! RTCP sender reports (RFC 3550 section 6.4.1) and keyframe requests, sans-IO, built on
//! `rtcp-types`.
//!
//! A sender report ties an RTP timestamp to a wall-clock (NTP) time, so a receiver can tell when
//! a frame was sampled even without the in-band SEI stamp. [`SenderReport::to_bytes`] writes a
//! compound packet (SR, then SDES with CNAME, as RFC 3550 wants every compound packet to carry);
//! [`parse_sender_reports`] validates a compound packet and returns the SRs in it, skipping the
//! other packet types. [`RtcpSenderState`] counts what a sender sent, for its reports.
//!
//! [`CaptureClock`] turns a sender's RTP timestamps into capture times through its latest
//! sender report.
//!
//! Keyframe requests: [`picture_loss_indication`] writes an RFC 4585 PLI (after an empty
//! receiver report and an SDES CNAME), [`requests_keyframe`] finds a PLI or an RFC 5104 FIR in a
//! compound packet.

use rtcp_types::prelude::*;
use rtcp_types::{Compound, RtcpParseError, Sdes, SdesChunk, SdesItem, Unknown};

use crate::rtp::parse_rtp;

/// CNAME sent in the SDES of every report.
pub const CNAME: &str = "livefeed";

const PACKET_TYPE_SR: u8 = 200;

/// One RTCP sender report, without report blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wall-clock time of the report, 64-bit NTP (see [`crate::clock::unix_ns_to_ntp`]).
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// RTP packets sent since the start (wraps).
    pub packet_count: u32,
    /// RTP payload octets sent since the start (wraps).
    pub octet_count: u32,
}

impl SenderReport {
    /// The report as an RTCP compound packet: SR followed by SDES CNAME [`CNAME`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let sr = rtcp_types::SenderReport::builder(self.ssrc)
            .ntp_timestamp(self.ntp)
            .rtp_timestamp(self.rtp_timestamp)
            .packet_count(self.packet_count)
            .octet_count(self.octet_count);
        // No report blocks, no padding, one short CNAME.
        write_compound(
            Compound::builder()
                .add_packet(sr)
                .add_packet(cname_sdes(self.ssrc)),
        )
    }

    /// The report's wall-clock time in Unix nanoseconds.
    pub fn unix_ns(&self) -> u64 {
        crate::clock::ntp_to_unix_ns(self.ntp)
    }
}

/// Maps a sender's RTP timestamps to the wall-clock time they were captured at, from its
/// latest sender report (RFC 3550 §6.4.1: the report pairs an RTP time with an NTP time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureClock {
    clock_rate: u32,
    last: Option<SenderReport>,
}

impl CaptureClock {
    /// A clock for RTP timestamps at `clock_rate` Hz, with no report yet.
    pub fn new(clock_rate: u32) -> Self {
        CaptureClock {
            clock_rate: clock_rate.max(1),
            last: None,
        }
    }

    /// Takes the sender reports of an RTCP compound packet (the latest wins); malformed
    /// packets are errors and change nothing.
    pub fn on_rtcp(&mut self, packet: &[u8]) -> Result<(), RtcpError> {
        if let Some(sr) = parse_sender_reports(packet)?.pop() {
            self.take_report(sr);
        }
        Ok(())
    }

    /// Takes one sender report (already parsed and chosen by the caller).
    pub fn take_report(&mut self, report: SenderReport) {
        self.last = Some(report);
    }

    /// The capture time (Unix ns) of `rtp_timestamp`, once a report has been seen: its
    /// distance from the report's RTP time (±2³¹ ticks, wrapping) added to the report's wall
    /// time.
    pub fn capture_unix_ns(&self, rtp_timestamp: u32) -> Option<u64> {
        let sr = self.last?;
        let ticks = i128::from(rtp_timestamp.wrapping_sub(sr.rtp_timestamp) as i32);
        let ns = ticks * 1_000_000_000 / i128::from(self.clock_rate);
        let at = i128::from(sr.unix_ns()) + ns;
        u64::try_from(at).ok()
    }
}

/// Why an RTCP compound packet was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// The framing of the compound packet is wrong: a length past the end, trailing bytes,
    /// padding on a packet that is not the last, a wrong version.
    #[error("malformed RTCP compound packet of {len} bytes: {source}")]
    Compound {
        /// Length of the compound packet.
        len: usize,
        /// What `rtcp-types` found.
        source: RtcpParseError,
    },
    /// One packet inside the compound packet is malformed.
    #[error("malformed RTCP packet of type {packet_type} at byte {offset}: {source}")]
    Packet {
        /// Offset of the packet in the compound packet.
        offset: usize,
        /// RTCP packet type.
        packet_type: u8,
        /// What `rtcp-types` found.
        source: RtcpParseError,
    },
}

/// Walks an RTCP compound packet and returns its sender reports in order. Other packet types
/// (RR, SDES, BYE, APP, feedback…) are skipped after their framing is checked.
pub fn parse_sender_reports(packet: &[u8]) -> Result<Vec<SenderReport>, RtcpError> {
    let compound_error = |source| RtcpError::Compound {
        len: packet.len(),
        source,
    };
    Compound::parse(packet).map_err(compound_error)?;
    let mut reports = Vec::new();
    let mut offset = 0;
    while let Some(rest) = packet.get(offset..).filter(|rest| !rest.is_empty()) {
        let (sub, packet_type) = split_packet(rest).map_err(compound_error)?;
        let packet_error = |source| RtcpError::Packet {
            offset,
            packet_type,
            source,
        };
        // Checks version and length of every packet, not just the first.
        Unknown::parse(sub).map_err(packet_error)?;
        if packet_type == PACKET_TYPE_SR {
            let sr = rtcp_types::SenderReport::parse(sub).map_err(packet_error)?;
            reports.push(SenderReport {
                ssrc: sr.ssrc(),
                ntp: sr.ntp_timestamp(),
                rtp_timestamp: sr.rtp_timestamp(),
                packet_count: sr.packet_count(),
                octet_count: sr.octet_count(),
            });
        }
        offset += sub.len();
    }
    Ok(reports)
}

/// A picture loss indication (RFC 4585 §6.3.1) from `sender_ssrc` about the stream
/// `media_ssrc`: the way to ask a video sender for a keyframe. Written as a compound packet
/// (RFC 3550 §6.1, RFC 4585 §3.1): an empty receiver report, an SDES with the CNAME, then the
/// PLI.
pub fn picture_loss_indication(sender_ssrc: u32, media_ssrc: u32) -> Vec<u8> {
    let report = rtcp_types::ReceiverReport::builder(sender_ssrc);
    let pli = rtcp_types::Pli::builder();
    let feedback = rtcp_types::PayloadFeedback::builder(&pli)
        .sender_ssrc(sender_ssrc)
        .media_ssrc(media_ssrc);
    // An empty report, one short CNAME and a PLI without padding.
    write_compound(
        Compound::builder()
            .add_packet(report)
            .add_packet(cname_sdes(sender_ssrc))
            .add_packet(feedback),
    )
}

/// The SDES packet every compound packet of `ssrc` carries: its CNAME, [`CNAME`].
fn cname_sdes(ssrc: u32) -> rtcp_types::SdesBuilder<'static> {
    let cname = SdesItem::builder(SdesItem::CNAME, CNAME);
    Sdes::builder().add_chunk(SdesChunk::builder(ssrc).add_item(cname))
}

/// Writes a compound packet livefeed built itself. Cannot fail for the layouts above (fixed
/// packets, no padding, one short CNAME), so a failure is a bug here, not bad input.
fn write_compound(compound: rtcp_types::CompoundBuilder<'_>) -> Vec<u8> {
    let size = compound
        .calculate_size()
        .expect("livefeed's RTCP layouts are valid");
    let mut buf = vec![0; size];
    let written = compound
        .write_into(&mut buf)
        .expect("buffer has the computed size");
    buf.truncate(written);
    buf
}

/// Whether an RTCP compound packet asks the video sender for a keyframe: it holds a picture
/// loss indication (RFC 4585) or a full intra request (RFC 5104). Malformed packets are errors.
pub fn requests_keyframe(packet: &[u8]) -> Result<bool, RtcpError> {
    let compound_error = |source| RtcpError::Compound {
        len: packet.len(),
        source,
    };
    let compound = Compound::parse(packet).map_err(compound_error)?;
    for parsed in compound {
        if let rtcp_types::Packet::PayloadFeedback(feedback) = parsed.map_err(compound_error)? {
            if feedback.parse_fci::<rtcp_types::Pli>().is_ok()
                || feedback.parse_fci::<rtcp_types::Fir>().is_ok()
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The first RTCP packet of `data` (by its length field) and its packet type.
fn split_packet(data: &[u8]) -> Result<(&[u8], u8), RtcpParseError> {
    let truncated = |expected| RtcpParseError::Truncated {
        expected,
        actual: data.len(),
    };
    let Some(&[_, packet_type, hi, lo]) = data.first_chunk::<4>() else {
        return Err(truncated(4));
    };
    let len = 4 * (usize::from(u16::from_be_bytes([hi, lo])) + 1);
    let sub = data.get(..len).ok_or(truncated(len))?;
    Ok((sub, packet_type))
}

/// Counts the RTP packets and payload octets a sender sent, for its sender reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpSenderState {
    ssrc: u32,
    packet_count: u32,
    octet_count: u32,
}

impl RtcpSenderState {
    /// Nothing sent yet by `ssrc`.
    pub fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            packet_count: 0,
            octet_count: 0,
        }
    }

    /// Counts one sent RTP packet: its payload octets, without header and padding (RFC 3550).
    /// Invalid RTP is not counted.
    pub fn on_rtp_sent(&mut self, packet: &[u8]) {
        if let Ok(rtp) = parse_rtp(packet) {
            self.packet_count = self.packet_count.wrapping_add(1);
            self.octet_count = self.octet_count.wrapping_add(rtp.payload.len() as u32);
        }
    }

    /// A report saying that `rtp_timestamp` corresponds to wall-clock `ntp`.
    pub fn sender_report(&self, ntp: u64, rtp_timestamp: u32) -> SenderReport {
        SenderReport {
            ssrc: self.ssrc,
            ntp,
            rtp_timestamp,
            packet_count: self.packet_count,
            octet_count: self.octet_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::unix_ns_to_ntp;
    use rtcp_types::{Bye, Packet, ReceiverReport, ReportBlock};

    fn report() -> SenderReport {
        SenderReport {
            ssrc: 0x1234_5678,
            ntp: unix_ns_to_ntp(1_763_700_000_123_456_789),
            rtp_timestamp: 0xdead_beef,
            packet_count: 1000,
            octet_count: 1_100_000,
        }
    }

    fn write(packet: impl RtcpPacketWriter) -> Vec<u8> {
        let mut buf = vec![0; packet.calculate_size().unwrap()];
        packet.write_into(&mut buf).unwrap();
        buf
    }

    #[test]
    fn a_capture_clock_maps_rtp_time_through_the_latest_report() {
        let mut clock = CaptureClock::new(48_000);
        assert_eq!(clock.capture_unix_ns(1000), None, "no report yet");
        let second = 1_700_000_000_000_000_000u64;
        let report = SenderReport {
            ssrc: 9,
            ntp: crate::clock::unix_ns_to_ntp(second),
            rtp_timestamp: u32::MAX - 479, // 480 ticks before the wrap
            packet_count: 1,
            octet_count: 1,
        };
        clock.on_rtcp(&report.to_bytes()).unwrap();
        let near = |got: Option<u64>, want: u64| got.is_some_and(|g| g.abs_diff(want) < 1_000);
        // 960 ticks later, across the wrap: 20 ms after the report.
        assert!(near(clock.capture_unix_ns(480), second + 20_000_000));
        assert!(near(
            clock.capture_unix_ns(u32::MAX - 959),
            second - 10_000_000
        ));
        assert!(clock.on_rtcp(&[0x80, 200, 0, 9]).is_err());
        assert!(
            near(clock.capture_unix_ns(480), second + 20_000_000),
            "unchanged"
        );
    }

    #[test]
    fn a_picture_loss_indication_asks_for_a_keyframe_and_a_report_does_not() {
        let pli = picture_loss_indication(1, 0x1234_5678);
        let sdes_len = 4 * (usize::from(u16::from_be_bytes([pli[10], pli[11]])) + 1);
        let at = 8 + sdes_len;
        assert_eq!(pli.len(), at + 12, "an empty RR, an SDES and a PLI");
        assert_eq!(
            (pli[1], pli[9], pli[at + 1], pli[at] & 0x1f),
            (201, 202, 206, 1)
        );
        assert_eq!(&pli[at + 8..at + 12], &0x1234_5678u32.to_be_bytes());
        assert_eq!(requests_keyframe(&pli), Ok(true));
        assert!(parse_sender_reports(&pli).unwrap().is_empty());
        let report = SenderReport {
            ssrc: 7,
            ntp: 1 << 32,
            rtp_timestamp: 90_000,
            packet_count: 1,
            octet_count: 100,
        };
        assert_eq!(requests_keyframe(&report.to_bytes()), Ok(false));
        assert!(requests_keyframe(&pli[..10]).is_err(), "truncated");
        assert!(requests_keyframe(&[]).is_err());
    }

    #[test]
    fn sender_report_round_trips() {
        let sr = report();
        let bytes = sr.to_bytes();
        assert_eq!(parse_sender_reports(&bytes), Ok(vec![sr]));
        assert!(sr.unix_ns().abs_diff(1_763_700_000_123_456_789) <= 1);
    }

    #[test]
    fn sender_report_carries_the_cname() {
        let bytes = report().to_bytes();
        let packets: Vec<_> = Compound::parse(&bytes).unwrap().collect();
        assert_eq!(packets.len(), 2);
        let Ok(Packet::Sdes(sdes)) = &packets[1] else {
            panic!("second packet is not SDES: {:?}", packets[1]);
        };
        let chunk = sdes.chunks().next().unwrap();
        assert_eq!(chunk.ssrc(), 0x1234_5678);
        let item = chunk.items().next().unwrap();
        assert_eq!(
            (item.type_(), item.value()),
            (SdesItem::CNAME, CNAME.as_bytes())
        );
    }

    #[test]
    fn other_packet_types_are_skipped() {
        let rr = ReceiverReport::builder(7).add_report_block(ReportBlock::builder(9));
        let bye = Bye::builder().add_source(0x1234_5678);
        let mut bytes = write(rr);
        bytes.extend(report().to_bytes());
        bytes.extend(write(bye));
        let second = SenderReport {
            ssrc: 42,
            ..report()
        };
        bytes.extend(second.to_bytes());
        assert_eq!(parse_sender_reports(&bytes), Ok(vec![report(), second]));
    }

    #[test]
    fn empty_and_short_input_is_rejected() {
        assert!(parse_sender_reports(&[]).is_err());
        assert!(parse_sender_reports(&[0x80, 200, 0]).is_err());
    }

    #[test]
    fn length_past_the_end_is_rejected() {
        let mut bytes = report().to_bytes();
        bytes[3] += 10; // SR claims 40 more bytes than the compound holds
        let err = parse_sender_reports(&bytes).unwrap_err();
        assert!(matches!(err, RtcpError::Compound { .. }), "{err}");
    }

    #[test]
    fn length_too_short_for_a_sender_report_is_rejected() {
        let mut bytes = report().to_bytes();
        bytes[3] = 4; // 20 bytes: shorter than the 28-byte SR; the rest misframes
        assert!(parse_sender_reports(&bytes).is_err());
        let mut single = report().to_bytes();
        single.truncate(28);
        single[3] = 5;
        single.truncate(24);
        let err = parse_sender_reports(&single).unwrap_err();
        assert!(
            matches!(
                err,
                RtcpError::Packet {
                    offset: 0,
                    packet_type: 200,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = report().to_bytes();
        bytes.extend([0x80, 0xc8]);
        assert!(parse_sender_reports(&bytes).is_err());
    }

    #[test]
    fn wrong_version_in_a_later_packet_is_rejected() {
        let mut bytes = report().to_bytes();
        bytes[28] = (bytes[28] & 0x3f) | 0x40; // the SDES claims version 1
        let err = parse_sender_reports(&bytes).unwrap_err();
        assert!(matches!(err, RtcpError::Packet { offset: 28, .. }), "{err}");
    }

    #[test]
    fn padding_on_a_packet_that_is_not_last_is_rejected() {
        let mut bytes = report().to_bytes();
        bytes[0] |= 0x20;
        assert!(parse_sender_reports(&bytes).is_err());
    }

    #[test]
    fn sender_state_counts_packets_and_payload_octets() {
        use crate::rtp::VideoPacketizer;
        use crate::AccessUnit;
        let mut packetizer = VideoPacketizer::new(crate::VideoCodec::H264, 5, 96, 1200, 0);
        let au = AccessUnit {
            codec: crate::VideoCodec::H264,
            nals: vec![bytes::Bytes::from(vec![0x65; 3000])],
            pts: 0,
            keyframe: true,
            capture: None,
        };
        let mut packets = Vec::new();
        packetizer.packetize(&au, 0, &mut packets);
        let mut state = RtcpSenderState::new(5);
        for packet in &packets {
            state.on_rtp_sent(packet);
        }
        state.on_rtp_sent(&[0; 4]); // not RTP: not counted
        let sr = state.sender_report(99, 1234);
        let octets: usize = packets.iter().map(|p| p.len() - 12).sum();
        assert_eq!((sr.ssrc, sr.ntp, sr.rtp_timestamp), (5, 99, 1234));
        assert_eq!((sr.packet_count, sr.octet_count), (3, octets as u32));
    }
}
