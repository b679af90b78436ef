//! RTP for H.264 (RFC 6184, packetization-mode 1) and H.265 (RFC 7798, no DONL), sans-IO.
//!
//! - [`parse_rtp`] validates an RTP packet and returns its header fields and payload.
//! - [`VideoPacketizer`] turns an [`AccessUnit`] into RTP packets: a single NAL unit packet for
//!   a NAL unit that fits, one aggregation packet (H.264 STAP-A; H.265 AP) for consecutive NAL
//!   units that fit together, fragmentation units (H.264 FU-A; H.265 FU) for a NAL unit that
//!   does not fit. No packet exceeds the MTU; the last one carries the marker.
//! - [`VideoDepacketizer`] turns RTP packets back into access units. H.265 PACI packets and
//!   streams that send decoding order numbers (`sprop-max-don-diff` > 0, refused at the SDP) are
//!   not supported.
//!
//! # Depacketizer contract
//!
//! Push the packets of one RTP stream in arrival order with [`VideoDepacketizer::push`]; there is
//! no jitter buffer, so reorder first if the network reorders. An access unit ends at a packet
//! with the marker bit or, if the sender left the marker out, at the first packet with another
//! RTP timestamp. `push` returns the oldest finished access unit. When one push finishes two (a
//! timestamp change and a marker in the same packet) or finishes one and then fails, the other
//! waits in a small queue: call [`VideoDepacketizer::pull`] after each `push` until it returns
//! `None` to get it at once; otherwise the next `push` returns it. Nothing is lost either way.
//!
//! Late and duplicate packets are dropped and counted. An access unit that loses packets (a
//! sequence gap within its timestamp, or an unfinished one followed by a gap) or contains a bad
//! packet is discarded whole, its remaining packets skipped: a decoder is better served by a
//! missing picture than by a damaged one. The next emitted access unit then has
//! [`Depacketized::lost_packets_before`] set. After a gap, a packet with a new timestamp starts
//! a new access unit; if it is a fragment whose start was lost (or came before the first packet
//! pushed), that access unit is skipped without an error. An error describes one packet and
//! never poisons the state: the next packet is handled normally. A new SSRC resets sequence and
//! timestamp tracking.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use rtp_types::{RtpPacket, RtpPacketBuilder, RtpParseError};

use crate::{AccessUnit, VideoCodec};

mod h265;

/// Size of an RTP header without CSRCs or extension; the packetizer writes exactly this.
pub const RTP_HEADER_LEN: usize = 12;
/// Default maximum RTP packet size (header included): safe on any path, tunnels included.
pub const DEFAULT_MTU: usize = 1200;
/// Smallest MTU the packetizer accepts: a header plus a fragmentation unit with one byte of
/// NAL data (H.264 FU-A: 2 bytes of FU headers; H.265 FU: 3).
pub const MIN_MTU: usize = RTP_HEADER_LEN + 4;
/// Largest MTU the packetizer accepts: an RTP packet must fit a 16-bit length (interleaved
/// RTSP framing, STAP-A sizes).
pub const MAX_MTU: usize = u16::MAX as usize;

const NAL_FORBIDDEN_BIT: u8 = 0x80;
const NAL_NRI_MASK: u8 = 0x60;
const NAL_TYPE_MASK: u8 = 0x1f;
const STAP_A: u8 = 24;
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_A: u8 = 28;
const FU_B: u8 = 29;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// A backward sequence step up to this size is a late or duplicate packet (RFC 3550 A.1).
const MAX_MISORDER: u16 = 100;
/// A forward sequence step above this size is a restart, not a count of lost packets.
const MAX_DROPOUT: u16 = 3000;
/// Finished access units kept for [`VideoDepacketizer::pull`] before the oldest is dropped.
const MAX_READY: usize = 8;

/// The fields of a valid RTP packet and its payload (padding removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacketInfo<'a> {
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp (90 kHz for video).
    pub timestamp: u32,
    /// Marker bit: for H.264, the last packet of an access unit.
    pub marker: bool,
    /// Synchronization source.
    pub ssrc: u32,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Payload after CSRCs and header extension, without padding. May be empty.
    pub payload: &'a [u8],
}

/// Why a byte string is not a valid RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte header")]
    TooShort {
        /// Packet length.
        len: usize,
    },
    /// Version field is not 2.
    #[error("unsupported RTP version {version} (expected 2)")]
    Version {
        /// The version found.
        version: u8,
    },
    /// The CSRC count names more CSRCs than the packet holds.
    #[error("RTP CSRC count {count} runs past the end of the {len}-byte packet")]
    CsrcPastEnd {
        /// CSRC count from the header.
        count: u8,
        /// Packet length.
        len: usize,
    },
    /// The header extension runs past the end of the packet.
    #[error("RTP header extension needs {needed} bytes, the packet has {len}")]
    ExtensionPastEnd {
        /// Bytes needed up to the end of the extension.
        needed: usize,
        /// Packet length.
        len: usize,
    },
    /// The padding count is larger than what follows the headers.
    #[error(
        "RTP padding of {padding} bytes is larger than the {available} bytes after the header"
    )]
    PaddingTooLarge {
        /// Padding count (last byte of the packet).
        padding: u8,
        /// Bytes after the header, CSRCs and extension.
        available: usize,
    },
    /// Padding bit set with a padding count of zero.
    #[error("RTP padding bit set with a padding count of 0")]
    ZeroPadding,
}

/// Parses and validates an RTP packet (via `rtp-types`), rejecting truncated headers, CSRC lists
/// and extensions, and padding larger than the payload. An empty payload is valid RTP.
pub fn parse_rtp(packet: &[u8]) -> Result<RtpPacketInfo<'_>, RtpError> {
    let rtp = RtpPacket::parse(packet).map_err(|err| classify_parse_error(packet, err))?;
    let start = rtp.payload_offset();
    // `RtpPacket::payload` borrows the parser, so slice the input to keep its lifetime.
    let payload = packet
        .get(start..start + rtp.payload_len())
        .ok_or(RtpError::TooShort { len: packet.len() })?;
    Ok(RtpPacketInfo {
        sequence_number: rtp.sequence_number(),
        timestamp: rtp.timestamp(),
        marker: rtp.marker_bit(),
        ssrc: rtp.ssrc(),
        payload_type: rtp.payload_type(),
        payload,
    })
}

/// Turns `rtp-types`' generic "truncated" into which part of the packet is too short.
fn classify_parse_error(packet: &[u8], err: RtpParseError) -> RtpError {
    match err {
        RtpParseError::UnsupportedVersion(version) => RtpError::Version { version },
        RtpParseError::PaddingInvalid(_) => RtpError::ZeroPadding,
        RtpParseError::Truncated { .. } => classify_truncation(packet),
    }
}

fn classify_truncation(packet: &[u8]) -> RtpError {
    let len = packet.len();
    let Some(&first) = packet.first().filter(|_| len >= RTP_HEADER_LEN) else {
        return RtpError::TooShort { len };
    };
    let count = first & 0x0f;
    let csrc_end = RTP_HEADER_LEN + 4 * usize::from(count);
    if len < csrc_end {
        return RtpError::CsrcPastEnd { count, len };
    }
    let mut header_end = csrc_end;
    if first & 0x10 != 0 {
        header_end = match packet.get(csrc_end + 2..csrc_end + 4) {
            Some(&[hi, lo]) => csrc_end + 4 + 4 * usize::from(u16::from_be_bytes([hi, lo])),
            _ => csrc_end + 4,
        };
        if len < header_end {
            return RtpError::ExtensionPastEnd {
                needed: header_end,
                len,
            };
        }
    }
    RtpError::PaddingTooLarge {
        padding: packet.last().copied().unwrap_or(0),
        available: len - header_end,
    }
}

/// Splits access units into RTP packets (RFC 6184 non-interleaved mode; RFC 7798 without
/// DONL).
#[derive(Debug, Clone)]
pub struct VideoPacketizer {
    codec: VideoCodec,
    ssrc: u32,
    payload_type: u8,
    mtu: usize,
    next_seq: u16,
}

impl VideoPacketizer {
    /// A packetizer of `codec` writing packets of at most `mtu` bytes (RTP header included;
    /// clamped to [`MIN_MTU`]..=[`MAX_MTU`]). `payload_type` is masked to 7 bits.
    pub fn new(
        codec: VideoCodec,
        ssrc: u32,
        payload_type: u8,
        mtu: usize,
        initial_seq: u16,
    ) -> Self {
        Self {
            codec,
            ssrc,
            payload_type: payload_type & 0x7f,
            mtu: mtu.clamp(MIN_MTU, MAX_MTU),
            next_seq: initial_seq,
        }
    }

    /// Sequence number of the next packet (RTSP `RTP-Info: seq=`).
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// The SSRC written into every packet.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The payload type written into every packet.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Maximum packet size, RTP header included.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The codec packetized.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    fn payload_budget(&self) -> usize {
        self.mtu - RTP_HEADER_LEN
    }

    /// Appends the RTP packets of `au` to `out`, all with `rtp_timestamp`; the last one has the
    /// marker bit. Empty NAL units are skipped; an access unit without NAL units writes nothing.
    pub fn packetize(&mut self, au: &AccessUnit, rtp_timestamp: u32, out: &mut Vec<Bytes>) {
        let Some(last) = au.nals.iter().rposition(|nal| !nal.is_empty()) else {
            return;
        };
        let nals = &au.nals[..=last];
        let mut i = 0;
        while let Some(rest) = nals.get(i..) {
            let Some(nal) = rest.first() else { break };
            if nal.is_empty() {
                i += 1;
                continue;
            }
            let header_len = self.aggregation_header_len();
            let (taken, count) = aggregation_group(rest, header_len, self.payload_budget());
            let consumed = if count >= 2 { taken } else { 1 };
            let marker = i + consumed == nals.len();
            if count >= 2 {
                self.write_aggregate(&rest[..taken], rtp_timestamp, marker, out);
            } else if nal.len() <= self.payload_budget() {
                self.write_packet(rtp_timestamp, marker, &[nal], out);
            } else {
                match self.codec {
                    VideoCodec::H264 => self.write_fu_a(nal, rtp_timestamp, marker, out),
                    VideoCodec::H265 => self.write_h265_fu(nal, rtp_timestamp, marker, out),
                }
            }
            i += consumed;
        }
    }

    /// Bytes of the aggregation packet's own header (STAP-A: 1, AP: 2).
    fn aggregation_header_len(&self) -> usize {
        match self.codec {
            VideoCodec::H264 => 1,
            VideoCodec::H265 => h265::PAYLOAD_HEADER_LEN,
        }
    }

    fn write_aggregate(&mut self, nals: &[Bytes], ts: u32, marker: bool, out: &mut Vec<Bytes>) {
        let nals = nals.iter().filter(|nal| !nal.is_empty());
        let header_len = self.aggregation_header_len();
        let payload_len = header_len + nals.clone().map(|nal| 2 + nal.len()).sum::<usize>();
        let mut buf = self.start_packet(ts, marker, payload_len);
        match self.codec {
            VideoCodec::H264 => buf.push(stap_a_header(nals.clone())),
            VideoCodec::H265 => buf.extend_from_slice(&h265::ap_header(nals.clone())),
        }
        for nal in nals {
            // Fits: each NAL is at most the payload budget, which is below MAX_MTU.
            buf.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            buf.extend_from_slice(nal);
        }
        self.finish_packet(buf, out);
    }

    fn write_h265_fu(&mut self, nal: &[u8], ts: u32, marker: bool, out: &mut Vec<Bytes>) {
        let Some((payload_header, type_bits, body)) = h265::fu_parts(nal) else {
            return;
        };
        let fragment_len = self.payload_budget() - h265::FU_OVERHEAD;
        let count = body.len().div_ceil(fragment_len);
        for (k, fragment) in body.chunks(fragment_len).enumerate() {
            let end = k + 1 == count;
            let fu_header = (u8::from(k == 0) << 7) | (u8::from(end) << 6) | type_bits;
            let [h0, h1] = payload_header;
            self.write_packet(ts, marker && end, &[&[h0, h1, fu_header], fragment], out);
        }
    }

    fn write_fu_a(&mut self, nal: &[u8], ts: u32, marker: bool, out: &mut Vec<Bytes>) {
        let Some((&header, body)) = nal.split_first() else {
            return;
        };
        let indicator = (header & (NAL_FORBIDDEN_BIT | NAL_NRI_MASK)) | FU_A;
        let fragment_len = self.payload_budget() - 2;
        let count = body.len().div_ceil(fragment_len);
        for (k, fragment) in body.chunks(fragment_len).enumerate() {
            let end = k + 1 == count;
            let fu_header =
                (u8::from(k == 0) << 7) | (u8::from(end) << 6) | (header & NAL_TYPE_MASK);
            self.write_packet(ts, marker && end, &[&[indicator, fu_header], fragment], out);
        }
    }

    fn write_packet(&mut self, ts: u32, marker: bool, parts: &[&[u8]], out: &mut Vec<Bytes>) {
        let payload_len = parts.iter().map(|part| part.len()).sum();
        let mut buf = self.start_packet(ts, marker, payload_len);
        for part in parts {
            buf.extend_from_slice(part);
        }
        self.finish_packet(buf, out);
    }

    /// A buffer of exactly the packet's size holding the RTP header: freezing it into `Bytes`
    /// then costs no further allocation.
    fn start_packet(&self, ts: u32, marker: bool, payload_len: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(RTP_HEADER_LEN + payload_len);
        // Unchecked is fine: the only check that could fail, payload type <= 127, holds by
        // construction.
        RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(self.payload_type)
            .sequence_number(self.next_seq)
            .timestamp(ts)
            .ssrc(self.ssrc)
            .marker_bit(marker)
            .write_into_vec_unchecked(&mut buf);
        buf
    }

    fn finish_packet(&mut self, buf: Vec<u8>, out: &mut Vec<Bytes>) {
        out.push(Bytes::from(buf));
        self.next_seq = self.next_seq.wrapping_add(1);
    }
}

/// The STAP-A header byte: the highest NRI of the aggregated NAL units, F if any has it.
fn stap_a_header<'a>(nals: impl Iterator<Item = &'a Bytes> + Clone) -> u8 {
    let headers = nals.filter_map(|nal| nal.first());
    let f = headers
        .clone()
        .fold(0, |acc, h| acc | (h & NAL_FORBIDDEN_BIT));
    let nri = headers.map(|h| h & NAL_NRI_MASK).max().unwrap_or(0);
    f | nri | STAP_A
}

/// How many of `nals` (the first one non-empty) fit in one aggregation packet of `budget`
/// bytes whose own header is `header_len` bytes: returns (entries taken, empty ones included;
/// non-empty NAL units among them).
fn aggregation_group(nals: &[Bytes], header_len: usize, budget: usize) -> (usize, usize) {
    let (mut size, mut taken, mut count) = (header_len, 0, 0);
    for nal in nals {
        if !nal.is_empty() {
            if size + 2 + nal.len() > budget {
                break;
            }
            size += 2 + nal.len();
            count += 1;
        }
        taken += 1;
    }
    (taken, count)
}

/// Caps on one access unit being reassembled; over a cap the access unit is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepacketizerLimits {
    /// Maximum total size of the NAL units, in bytes. Default 8 MiB.
    pub max_access_unit_bytes: usize,
    /// Maximum number of NAL units. Default 1024.
    pub max_nals: usize,
}

impl Default for DepacketizerLimits {
    fn default() -> Self {
        Self {
            max_access_unit_bytes: 8 * 1024 * 1024,
            max_nals: 1024,
        }
    }
}

/// One access unit rebuilt from RTP packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depacketized {
    /// NAL units without start codes, in transmission order.
    pub nals: Vec<Bytes>,
    /// RTP timestamp as sent.
    pub rtp_timestamp: u32,
    /// RTP timestamp unwrapped to 64 bits: keeps counting across the 32-bit wrap. Starts at the
    /// stream's first timestamp; a jump backwards moves it back (saturating at 0).
    pub ext_timestamp: u64,
    /// Whether a NAL unit is a slice a decoder can start from (H.264 IDR, H.265 IRAP).
    pub keyframe: bool,
    /// Whether something was lost since the previous emitted access unit: packets missing, or
    /// an access unit discarded (error, cap, unfinished fragment). A decoder should expect
    /// missing references until the next keyframe.
    pub lost_packets_before: bool,
    /// SSRC of the packets.
    pub ssrc: u32,
}

/// Counters since the depacketizer was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Valid RTP packets pushed (late ones included).
    pub packets: u64,
    /// Packets missing according to sequence numbers.
    pub lost: u64,
    /// Late or duplicate packets dropped.
    pub late_or_duplicate: u64,
    /// Access units emitted.
    pub access_units: u64,
    /// Access units discarded after loss, an error, a cap or an unfinished fragment.
    pub discarded_access_units: u64,
    /// `push` calls that returned an error.
    pub errors: u64,
    /// Times the SSRC changed.
    pub ssrc_changes: u64,
}

/// Why a packet could not be depacketized. The access unit it belonged to is discarded; the
/// depacketizer goes on with the next packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DepacketizeError {
    /// Not a valid RTP packet.
    #[error("invalid RTP packet: {0}")]
    Rtp(#[from] RtpError),
    /// RTP packet without payload.
    #[error("empty RTP payload (seq {seq})")]
    EmptyPayload {
        /// Sequence number.
        seq: u16,
    },
    /// NAL (or packet) header with the forbidden_zero_bit set.
    #[error("NAL header with the forbidden bit set, type {nal_type} (seq {seq})")]
    ForbiddenBit {
        /// Sequence number.
        seq: u16,
        /// NAL unit type of the header.
        nal_type: u8,
    },
    /// STAP-B, MTAP16, MTAP24 or FU-B: interleaved mode only, not supported.
    #[error("unsupported packet type {nal_type} ({}) (seq {seq})", packet_type_name(.nal_type))]
    Unsupported {
        /// Sequence number.
        seq: u16,
        /// Packet type.
        nal_type: u8,
    },
    /// STAP-A with no NAL unit.
    #[error("aggregation packet (STAP-A/AP) without NAL units (seq {seq})")]
    StapAEmpty {
        /// Sequence number.
        seq: u16,
    },
    /// STAP-A ending in the middle of a 2-byte size field.
    #[error(
        "aggregation packet (STAP-A/AP) size field truncated at payload byte {offset} (seq {seq})"
    )]
    StapATruncated {
        /// Sequence number.
        seq: u16,
        /// Offset of the size field in the payload.
        offset: usize,
    },
    /// A NAL unit shorter than its header (an H.265 NAL unit of one byte).
    #[error("NAL unit of {len} byte(s) is shorter than its header (seq {seq})")]
    NalTooShort {
        /// Sequence number.
        seq: u16,
        /// Its length.
        len: usize,
    },
    /// STAP-A NAL unit size of 0.
    #[error("aggregation packet (STAP-A/AP) NAL size 0 at payload byte {offset} (seq {seq})")]
    StapAZeroLength {
        /// Sequence number.
        seq: u16,
        /// Offset of the size field in the payload.
        offset: usize,
    },
    /// STAP-A NAL unit size larger than the bytes left.
    #[error("aggregation packet (STAP-A/AP) NAL size {len} at payload byte {offset} exceeds the {remaining} bytes left (seq {seq})")]
    StapALengthTooLong {
        /// Sequence number.
        seq: u16,
        /// Offset of the size field in the payload.
        offset: usize,
        /// Size announced.
        len: usize,
        /// Bytes left after the size field.
        remaining: usize,
    },
    /// FU-A without an FU header.
    #[error("fragmentation unit (FU-A/FU) without FU header (seq {seq})")]
    FuATooShort {
        /// Sequence number.
        seq: u16,
    },
    /// FU-A with both start and end bits: a NAL unit must not be "fragmented" into one FU.
    #[error("fragmentation unit (FU-A/FU) with both start and end bits set (seq {seq})")]
    FuAStartAndEnd {
        /// Sequence number.
        seq: u16,
    },
    /// FU-A start while another fragmented NAL unit is unfinished; both are discarded.
    #[error(
        "fragmentation unit (FU-A/FU) start while a fragmented NAL unit is still open (seq {seq})"
    )]
    FuAStartWhileOpen {
        /// Sequence number.
        seq: u16,
    },
    /// FU-A middle fragment with no start before it.
    #[error("fragmentation unit (FU-A/FU) middle fragment without start (seq {seq})")]
    FuAMiddleWithoutStart {
        /// Sequence number.
        seq: u16,
    },
    /// FU-A end fragment with no start before it.
    #[error("fragmentation unit (FU-A/FU) end without start (seq {seq})")]
    FuAEndWithoutStart {
        /// Sequence number.
        seq: u16,
    },
    /// A non-FU packet arrived while a fragmented NAL unit was unfinished.
    #[error("NAL packet type {nal_type} while a fragmented (FU-A/FU) NAL unit is unfinished (seq {seq})")]
    FuAUnfinished {
        /// Sequence number.
        seq: u16,
        /// Type of the interrupting packet.
        nal_type: u8,
    },
    /// The access unit grew over [`DepacketizerLimits::max_access_unit_bytes`].
    #[error("access unit at RTP timestamp {rtp_timestamp} would be {size} bytes, over the {max}-byte cap (seq {seq})")]
    AccessUnitTooLarge {
        /// Sequence number.
        seq: u16,
        /// RTP timestamp of the access unit.
        rtp_timestamp: u32,
        /// Size it would have reached.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The access unit grew over [`DepacketizerLimits::max_nals`].
    #[error(
        "access unit at RTP timestamp {rtp_timestamp} over the {max}-NAL-unit cap (seq {seq})"
    )]
    TooManyNals {
        /// Sequence number.
        seq: u16,
        /// RTP timestamp of the access unit.
        rtp_timestamp: u32,
        /// The cap.
        max: usize,
    },
}

impl DepacketizeError {
    /// FU-A middle or end without its start.
    fn is_orphan_fragment(&self) -> bool {
        matches!(
            self,
            Self::FuAMiddleWithoutStart { .. } | Self::FuAEndWithoutStart { .. }
        )
    }
}

fn packet_type_name(nal_type: &u8) -> &'static str {
    match *nal_type {
        STAP_B => "STAP-B",
        MTAP16 => "MTAP16",
        MTAP24 => "MTAP24",
        FU_B => "FU-B",
        h265::PACI => "PACI",
        _ => "unknown",
    }
}

/// Where the stream is: last accepted sequence number and timestamp.
#[derive(Debug, Clone, Copy)]
struct StreamPos {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    ext_timestamp: u64,
}

impl StreamPos {
    fn advance_timestamp(&mut self, timestamp: u32) {
        let delta = timestamp.wrapping_sub(self.timestamp) as i32;
        self.ext_timestamp = self.ext_timestamp.saturating_add_signed(i64::from(delta));
        self.timestamp = timestamp;
    }
}

/// How a packet's sequence number relates to the last accepted one.
enum Arrival {
    /// First packet of the stream (or of a new SSRC).
    First,
    InOrder,
    /// Packets are missing (`lost` of them; 0 for a jump too big to count as loss).
    Gap {
        lost: u16,
    },
    Late,
}

/// The access unit being reassembled: all NAL bytes in one buffer, split when emitted.
#[derive(Debug, Default)]
struct AuAssembler {
    codec: VideoCodec,
    /// RTP and extended timestamp, once the access unit's first packet arrived.
    timestamp: Option<(u32, u64)>,
    data: BytesMut,
    nals: Vec<Range<usize>>,
    keyframe: bool,
    /// Offset in `data` of the NAL unit being reassembled from FU-A fragments.
    fu_start: Option<usize>,
}

impl AuAssembler {
    fn has_data(&self) -> bool {
        !self.nals.is_empty() || self.fu_start.is_some()
    }

    fn clear(&mut self) {
        // The codec stays.
        self.timestamp = None;
        self.data.clear();
        self.nals.clear();
        self.keyframe = false;
        self.fu_start = None;
    }

    fn check_caps(
        &self,
        bytes: usize,
        nals: usize,
        limits: &DepacketizerLimits,
        seq: u16,
    ) -> Result<(), DepacketizeError> {
        let rtp_timestamp = self.timestamp.map_or(0, |(ts, _)| ts);
        let size = self.data.len().saturating_add(bytes);
        if size > limits.max_access_unit_bytes {
            let max = limits.max_access_unit_bytes;
            return Err(DepacketizeError::AccessUnitTooLarge {
                seq,
                rtp_timestamp,
                size,
                max,
            });
        }
        if self.nals.len() + usize::from(self.fu_start.is_some()) + nals > limits.max_nals {
            let max = limits.max_nals;
            return Err(DepacketizeError::TooManyNals {
                seq,
                rtp_timestamp,
                max,
            });
        }
        Ok(())
    }

    fn push_nal(
        &mut self,
        nal: &[u8],
        limits: &DepacketizerLimits,
        seq: u16,
    ) -> Result<(), DepacketizeError> {
        let Some(nal_type) = self.codec.nal_unit_type(nal) else {
            let len = nal.len();
            return Err(DepacketizeError::NalTooShort { seq, len });
        };
        if nal.first().is_some_and(|h| h & NAL_FORBIDDEN_BIT != 0) {
            return Err(DepacketizeError::ForbiddenBit { seq, nal_type });
        }
        self.check_caps(nal.len(), 1, limits, seq)?;
        let start = self.data.len();
        self.data.extend_from_slice(nal);
        self.nals.push(start..self.data.len());
        self.keyframe |= self.codec.is_keyframe_nal(nal);
        Ok(())
    }

    /// Starts a fragmented NAL unit with its rebuilt NAL header (1 or 2 bytes).
    fn fu_begin(
        &mut self,
        header: &[u8],
        body: &[u8],
        limits: &DepacketizerLimits,
        seq: u16,
    ) -> Result<(), DepacketizeError> {
        if self.fu_start.is_some() {
            return Err(DepacketizeError::FuAStartWhileOpen { seq });
        }
        self.check_caps(header.len() + body.len(), 1, limits, seq)?;
        self.fu_start = Some(self.data.len());
        self.data.extend_from_slice(header);
        self.data.extend_from_slice(body);
        Ok(())
    }

    fn fu_continue(
        &mut self,
        body: &[u8],
        end: bool,
        limits: &DepacketizerLimits,
        seq: u16,
    ) -> Result<(), DepacketizeError> {
        let Some(start) = self.fu_start else {
            return Err(if end {
                DepacketizeError::FuAEndWithoutStart { seq }
            } else {
                DepacketizeError::FuAMiddleWithoutStart { seq }
            });
        };
        self.check_caps(body.len(), 0, limits, seq)?;
        self.data.extend_from_slice(body);
        if end {
            let nal = self.data.get(start..).unwrap_or_default();
            self.keyframe |= self.codec.is_keyframe_nal(nal);
            self.nals.push(start..self.data.len());
            self.fu_start = None;
        }
        Ok(())
    }

    /// The finished access unit, if it has NAL units; clears the assembler either way.
    fn take(&mut self, ssrc: u32, lost_packets_before: bool) -> Option<Depacketized> {
        let (rtp_timestamp, ext_timestamp) = self.timestamp?;
        if self.nals.is_empty() {
            self.clear();
            return None;
        }
        let all = self.data.split().freeze();
        let nals = self.nals.drain(..).map(|range| all.slice(range)).collect();
        let keyframe = self.keyframe;
        self.clear();
        Some(Depacketized {
            nals,
            rtp_timestamp,
            ext_timestamp,
            keyframe,
            lost_packets_before,
            ssrc,
        })
    }
}

/// Rebuilds access units from RTP H.264 or H.265 packets. See the [module docs](self) for the
/// contract.
#[derive(Debug, Default)]
pub struct VideoDepacketizer {
    limits: DepacketizerLimits,
    stats: DepacketizerStats,
    stream: Option<StreamPos>,
    au: AuAssembler,
    /// Drop packets with this timestamp: the rest of a discarded access unit.
    skip_timestamp: Option<u32>,
    /// Something was lost since the last emitted access unit.
    loss_pending: bool,
    ready: VecDeque<Depacketized>,
}

impl VideoDepacketizer {
    /// A depacketizer of `codec` with the default [`DepacketizerLimits`].
    pub fn new(codec: VideoCodec) -> Self {
        Self::with_limits(codec, DepacketizerLimits::default())
    }

    /// A depacketizer of `codec` with the given caps.
    pub fn with_limits(codec: VideoCodec, limits: DepacketizerLimits) -> Self {
        Self {
            limits,
            au: AuAssembler {
                codec,
                ..AuAssembler::default()
            },
            ..Self::default()
        }
    }

    /// The codec depacketized.
    pub fn codec(&self) -> VideoCodec {
        self.au.codec
    }

    /// The caps in force.
    pub fn limits(&self) -> DepacketizerLimits {
        self.limits
    }

    /// Counters so far.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Takes one RTP packet; returns the oldest finished access unit, if any. On error the
    /// packet's access unit is discarded and the state stays usable.
    pub fn push(&mut self, packet: &[u8]) -> Result<Option<Depacketized>, DepacketizeError> {
        match self.handle(packet) {
            Ok(()) => Ok(self.ready.pop_front()),
            Err(err) => {
                self.stats.errors += 1;
                Err(err)
            }
        }
    }

    /// Another finished access unit, if the last `push` finished more than one (or failed
    /// after finishing one).
    pub fn pull(&mut self) -> Option<Depacketized> {
        self.ready.pop_front()
    }

    fn handle(&mut self, packet: &[u8]) -> Result<(), DepacketizeError> {
        let rtp = parse_rtp(packet)?;
        self.stats.packets += 1;
        let (gap, joined) = match self.arrival(&rtp) {
            Arrival::Late => {
                self.stats.late_or_duplicate += 1;
                return Ok(());
            }
            Arrival::Gap { lost } => {
                self.stats.lost += u64::from(lost);
                self.loss_pending = true;
                (true, false)
            }
            Arrival::First => (false, true),
            Arrival::InOrder => (false, false),
        };
        let same_au = self.au.timestamp.map(|(ts, _)| ts == rtp.timestamp);
        match (same_au, gap) {
            // Packets of the access unit in progress are missing.
            (Some(true), true) => {
                self.abandon_au(&rtp);
                return Ok(());
            }
            // The previous access unit may have lost its end.
            (Some(false), true) => self.drop_au(),
            (Some(false), false) => self.finish_au(),
            _ => {}
        }
        if self.skipping(&rtp) {
            return Ok(());
        }
        if self.au.timestamp.is_none() {
            let ext = self.stream.map_or(0, |pos| pos.ext_timestamp);
            self.au.timestamp = Some((rtp.timestamp, ext));
        }
        if let Err(err) = self.depacketize_payload(&rtp) {
            self.abandon_au(&rtp);
            // A fragment whose start was lost, or sent before we joined, is not a bad packet.
            return if (gap || joined) && err.is_orphan_fragment() {
                Ok(())
            } else {
                Err(err)
            };
        }
        if rtp.marker {
            self.finish_au();
        }
        Ok(())
    }

    /// Tracks SSRC, sequence number and timestamp; resets on a new SSRC.
    fn arrival(&mut self, rtp: &RtpPacketInfo<'_>) -> Arrival {
        if self.stream.is_some_and(|pos| pos.ssrc != rtp.ssrc) {
            self.stats.ssrc_changes += 1;
            self.drop_au();
            self.skip_timestamp = None;
            self.stream = None;
        }
        let Some(pos) = self.stream.as_mut() else {
            self.stream = Some(StreamPos {
                ssrc: rtp.ssrc,
                seq: rtp.sequence_number,
                timestamp: rtp.timestamp,
                ext_timestamp: u64::from(rtp.timestamp),
            });
            return Arrival::First;
        };
        let step = rtp.sequence_number.wrapping_sub(pos.seq);
        if step == 0 || step > u16::MAX - MAX_MISORDER {
            return Arrival::Late;
        }
        pos.seq = rtp.sequence_number;
        pos.advance_timestamp(rtp.timestamp);
        match step {
            1 => Arrival::InOrder,
            s if s <= MAX_DROPOUT => Arrival::Gap { lost: s - 1 },
            _ => Arrival::Gap { lost: 0 },
        }
    }

    /// Whether the packet belongs to a discarded access unit; ends the skip at its marker or at
    /// another timestamp.
    fn skipping(&mut self, rtp: &RtpPacketInfo<'_>) -> bool {
        match self.skip_timestamp {
            Some(ts) if ts == rtp.timestamp => {
                if rtp.marker {
                    self.skip_timestamp = None;
                }
                true
            }
            Some(_) => {
                self.skip_timestamp = None;
                false
            }
            None => false,
        }
    }

    fn depacketize_payload(&mut self, rtp: &RtpPacketInfo<'_>) -> Result<(), DepacketizeError> {
        match self.au.codec {
            VideoCodec::H264 => self.depacketize_h264(rtp),
            VideoCodec::H265 => self.depacketize_h265(rtp),
        }
    }

    fn depacketize_h264(&mut self, rtp: &RtpPacketInfo<'_>) -> Result<(), DepacketizeError> {
        let seq = rtp.sequence_number;
        let Some((&header, rest)) = rtp.payload.split_first() else {
            return Err(DepacketizeError::EmptyPayload { seq });
        };
        let nal_type = header & NAL_TYPE_MASK;
        if header & NAL_FORBIDDEN_BIT != 0 {
            return Err(DepacketizeError::ForbiddenBit { seq, nal_type });
        }
        if self.au.fu_start.is_some() && nal_type != FU_A {
            return Err(DepacketizeError::FuAUnfinished { seq, nal_type });
        }
        let limits = self.limits;
        match nal_type {
            1..=23 => self.au.push_nal(rtp.payload, &limits, seq),
            STAP_A => self.push_stap_a(rest, seq),
            FU_A => self.push_fu_a(header, rest, seq),
            STAP_B | MTAP16 | MTAP24 | FU_B => Err(DepacketizeError::Unsupported { seq, nal_type }),
            // 0, 30, 31: undefined; RFC 6184 section 5.2 says receivers ignore them.
            _ => Ok(()),
        }
    }

    /// The NAL units of an aggregation packet's body (after its header): STAP-A and AP alike.
    fn push_stap_a(&mut self, mut rest: &[u8], seq: u16) -> Result<(), DepacketizeError> {
        if rest.is_empty() {
            return Err(DepacketizeError::StapAEmpty { seq });
        }
        let limits = self.limits;
        // Offsets in the payload: the STAP-A header is 1 byte, the AP payload header 2.
        let mut offset = match self.au.codec {
            VideoCodec::H264 => 1,
            VideoCodec::H265 => h265::PAYLOAD_HEADER_LEN,
        };
        while !rest.is_empty() {
            let Some((&[hi, lo], after)) = rest.split_first_chunk::<2>() else {
                return Err(DepacketizeError::StapATruncated { seq, offset });
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len == 0 {
                return Err(DepacketizeError::StapAZeroLength { seq, offset });
            }
            let Some((nal, after)) = after.split_at_checked(len) else {
                let remaining = after.len();
                return Err(DepacketizeError::StapALengthTooLong {
                    seq,
                    offset,
                    len,
                    remaining,
                });
            };
            self.au.push_nal(nal, &limits, seq)?;
            rest = after;
            offset += 2 + len;
        }
        Ok(())
    }

    fn push_fu_a(&mut self, indicator: u8, rest: &[u8], seq: u16) -> Result<(), DepacketizeError> {
        let Some((&fu_header, body)) = rest.split_first() else {
            return Err(DepacketizeError::FuATooShort { seq });
        };
        let limits = self.limits;
        let (start, end) = (fu_header & FU_START != 0, fu_header & FU_END != 0);
        match (start, end) {
            (true, true) => Err(DepacketizeError::FuAStartAndEnd { seq }),
            (true, false) => {
                let header = (indicator & !NAL_TYPE_MASK) | (fu_header & NAL_TYPE_MASK);
                self.au.fu_begin(&[header], body, &limits, seq)
            }
            (false, end) => self.au.fu_continue(body, end, &limits, seq),
        }
    }

    /// Emits the access unit in progress, or discards it if a fragmented NAL is unfinished.
    fn finish_au(&mut self) {
        if self.au.fu_start.is_some() {
            self.drop_au();
            return;
        }
        let ssrc = self.stream.map_or(0, |pos| pos.ssrc);
        if let Some(au) = self.au.take(ssrc, self.loss_pending) {
            self.loss_pending = false;
            self.emit(au);
        }
    }

    fn emit(&mut self, mut au: Depacketized) {
        if self.ready.len() >= MAX_READY {
            self.ready.pop_front();
            self.stats.discarded_access_units += 1;
            au.lost_packets_before = true;
        }
        self.stats.access_units += 1;
        self.ready.push_back(au);
    }

    /// Discards the access unit in progress, counting it if it had data.
    fn drop_au(&mut self) {
        if self.au.has_data() {
            self.stats.discarded_access_units += 1;
            self.loss_pending = true;
        }
        self.au.clear();
    }

    /// Discards the access unit of `rtp` and skips its remaining packets.
    fn abandon_au(&mut self, rtp: &RtpPacketInfo<'_>) {
        if self.skip_timestamp != Some(rtp.timestamp) {
            self.stats.discarded_access_units += 1;
        }
        self.au.clear();
        self.loss_pending = true;
        self.skip_timestamp = (!rtp.marker).then_some(rtp.timestamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSRC: u32 = 0x1234_5678;
    const PT: u8 = 96;

    /// A NAL unit of `len` bytes (header included) with NRI 3 and a recognizable body.
    fn nal(nal_type: u8, len: usize, seed: u8) -> Bytes {
        let body = (1..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed));
        std::iter::once(0x60 | nal_type).chain(body).collect()
    }

    fn access_unit(nals: Vec<Bytes>) -> AccessUnit {
        let keyframe = nals
            .iter()
            .any(|n| n.first().is_some_and(|h| h & 0x1f == 5));
        AccessUnit {
            codec: crate::VideoCodec::H264,
            nals,
            pts: 0,
            keyframe,
            capture: None,
        }
    }

    /// Pushes every packet (all must be accepted) and collects what comes out, `pull` included.
    fn depacketize_all<P: AsRef<[u8]>>(
        d: &mut VideoDepacketizer,
        packets: &[P],
    ) -> Vec<Depacketized> {
        let mut out = Vec::new();
        for packet in packets {
            let first = d.push(packet.as_ref()).expect("packet accepted");
            out.extend(first);
            out.extend(std::iter::from_fn(|| d.pull()));
        }
        out
    }

    fn rtp_with_ssrc(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(PT)
            .ssrc(ssrc)
            .sequence_number(seq)
            .timestamp(ts)
            .marker_bit(marker)
            .payload(payload)
            .write_vec()
            .unwrap()
    }

    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        rtp_with_ssrc(SSRC, seq, ts, marker, payload)
    }

    const GOOD_NAL: [u8; 4] = [0x65, 0xaa, 0xbb, 0xcc];

    /// After an error, a following one-packet access unit still comes out, flagged as following
    /// a loss.
    fn assert_recovers(d: &mut VideoDepacketizer, seq: u16) {
        let au = d
            .push(&rtp(seq, 900_000, true, &GOOD_NAL))
            .expect("good packet accepted")
            .expect("good access unit emitted");
        assert_eq!(au.nals, vec![Bytes::copy_from_slice(&GOOD_NAL)]);
        assert!(au.keyframe);
        assert!(au.lost_packets_before);
        assert_eq!(au.rtp_timestamp, 900_000);
    }

    /// Pushes `setup` (accepted), then `bad`, which must fail with `expected`; then recovery.
    fn assert_rejected(setup: &[Vec<u8>], bad: Vec<u8>, expected: DepacketizeError) {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        depacketize_all(&mut d, setup);
        assert_eq!(d.push(&bad), Err(expected));
        assert_eq!(d.stats().errors, 1);
        assert_recovers(&mut d, setup.len() as u16 + 1);
    }

    fn check_packets(packets: &[Bytes], mtu: usize, first_seq: u16, ts: u32) {
        for (i, packet) in packets.iter().enumerate() {
            assert!(
                packet.len() <= mtu,
                "packet {i} is {} > {mtu}",
                packet.len()
            );
            let info = parse_rtp(packet).unwrap();
            assert_eq!(info.marker, i + 1 == packets.len(), "marker on packet {i}");
            assert_eq!(info.sequence_number, first_seq.wrapping_add(i as u16));
            assert_eq!(
                (info.timestamp, info.ssrc, info.payload_type),
                (ts, SSRC, PT)
            );
        }
    }

    fn round_trip(nals: Vec<Bytes>, mtu: usize, first_seq: u16, ts: u32) -> Vec<Bytes> {
        let au = access_unit(nals);
        let mut packetizer = VideoPacketizer::new(VideoCodec::H264, SSRC, PT, mtu, first_seq);
        let mut packets = Vec::new();
        packetizer.packetize(&au, ts, &mut packets);
        check_packets(&packets, mtu, first_seq, ts);
        assert_eq!(
            packetizer.next_seq(),
            first_seq.wrapping_add(packets.len() as u16)
        );
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let out = depacketize_all(&mut d, &packets);
        assert_eq!(out.len(), 1);
        let got = &out[0];
        assert_eq!(got.nals, au.nals);
        assert_eq!(got.keyframe, au.keyframe);
        assert_eq!((got.rtp_timestamp, got.ext_timestamp), (ts, u64::from(ts)));
        assert!(!got.lost_packets_before);
        packets
    }

    fn payload_type_of(packet: &[u8]) -> u8 {
        parse_rtp(packet).unwrap().payload[0] & 0x1f
    }

    #[test]
    fn round_trip_nal_sizes_around_the_mtu() {
        for mtu in [DEFAULT_MTU, 100] {
            let sizes = [
                1,
                2,
                mtu - 13,
                mtu - 12,
                mtu - 11,
                mtu,
                mtu + 1,
                2 * mtu,
                100_000,
            ];
            for size in sizes {
                let packets = round_trip(vec![nal(5, size, 7)], mtu, 1000, 3000);
                if size <= mtu - RTP_HEADER_LEN {
                    assert_eq!(packets.len(), 1, "size {size}: single NAL unit packet");
                    assert_eq!(packets[0].len(), RTP_HEADER_LEN + size);
                } else {
                    assert!(
                        packets.iter().all(|p| payload_type_of(p) == FU_A),
                        "size {size}"
                    );
                }
            }
        }
    }

    #[test]
    fn parameter_sets_and_sei_go_in_one_stap_a_before_the_idr_fragments() {
        let nals = vec![nal(7, 25, 1), nal(8, 4, 2), nal(6, 40, 3), nal(5, 5000, 4)];
        let packets = round_trip(nals, DEFAULT_MTU, 7, 90_000);
        assert_eq!(payload_type_of(&packets[0]), STAP_A);
        let stap = parse_rtp(&packets[0]).unwrap().payload;
        assert_eq!(
            stap.len(),
            1 + (2 + 25) + (2 + 4) + (2 + 40),
            "SPS+PPS+SEI, not the IDR"
        );
        assert_eq!(
            stap[0],
            0x60 | STAP_A,
            "STAP-A NRI is the highest of its NAL units"
        );
        assert!(packets[1..].iter().all(|p| payload_type_of(p) == FU_A));
    }

    #[test]
    fn many_small_nal_units_fill_several_stap_as() {
        let nals: Vec<Bytes> = (0..50).map(|i| nal(1, 100, i)).collect();
        let packets = round_trip(nals, DEFAULT_MTU, 0, 0);
        assert_eq!(
            packets.len(),
            5,
            "11 NAL units of 102 bytes per 1188-byte budget"
        );
        assert!(packets.iter().all(|p| payload_type_of(p) == STAP_A));
    }

    #[test]
    fn empty_nal_units_are_skipped_and_empty_access_units_write_nothing() {
        let mut packetizer = VideoPacketizer::new(VideoCodec::H264, SSRC, PT, DEFAULT_MTU, 0);
        let mut packets = Vec::new();
        packetizer.packetize(&access_unit(vec![Bytes::new()]), 0, &mut packets);
        assert!(packets.is_empty());
        let nals = vec![
            Bytes::new(),
            nal(1, 10, 0),
            Bytes::new(),
            nal(1, 10, 1),
            Bytes::new(),
        ];
        packetizer.packetize(&access_unit(nals), 0, &mut packets);
        assert_eq!(packets.len(), 1);
        let out = depacketize_all(&mut VideoDepacketizer::new(VideoCodec::H264), &packets);
        assert_eq!(out[0].nals, vec![nal(1, 10, 0), nal(1, 10, 1)]);
    }

    #[test]
    fn packetizer_clamps_mtu_and_masks_payload_type() {
        let p = VideoPacketizer::new(VideoCodec::H264, SSRC, 0xff, 3, 0);
        assert_eq!((p.mtu(), p.payload_type(), p.ssrc()), (MIN_MTU, 0x7f, SSRC));
        round_trip(vec![nal(5, 50, 0)], MIN_MTU, 0, 0);
        let p = VideoPacketizer::new(VideoCodec::H264, SSRC, PT, usize::MAX, 0);
        assert_eq!(p.mtu(), MAX_MTU);
    }

    #[test]
    fn sequence_wraps_in_the_middle_of_an_access_unit() {
        let packets = round_trip(vec![nal(5, 10_000, 9)], DEFAULT_MTU, 65_533, 0);
        let seqs: Vec<u16> = packets
            .iter()
            .map(|p| parse_rtp(p).unwrap().sequence_number)
            .collect();
        assert_eq!(seqs[..5], [65_533, 65_534, 65_535, 0, 1]);
    }

    #[test]
    fn ext_timestamp_keeps_counting_across_the_32_bit_wrap() {
        let mut packetizer = VideoPacketizer::new(VideoCodec::H264, SSRC, PT, DEFAULT_MTU, 0);
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let start = u32::MAX - 6000;
        for i in 0..5u32 {
            let ts = start.wrapping_add(i * 3000);
            let mut packets = Vec::new();
            packetizer.packetize(&access_unit(vec![nal(1, 10, 0)]), ts, &mut packets);
            let out = depacketize_all(&mut d, &packets);
            assert_eq!(out[0].rtp_timestamp, ts);
            assert_eq!(out[0].ext_timestamp, u64::from(start) + u64::from(i) * 3000);
        }
    }

    /// Tiny deterministic PRNG so the property test needs no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_nal(rng: &mut XorShift, mtu: usize) -> Bytes {
        let len = match rng.below(10) {
            0..=5 => 1 + rng.below(40),
            6..=8 => 1 + rng.below(3 * mtu),
            _ => 1 + rng.below(30_000),
        };
        let header = (rng.next() as u8 & 0x60) | (1 + rng.below(23) as u8);
        let body = (1..len).map(|_| rng.next() as u8);
        std::iter::once(header).chain(body).collect()
    }

    #[test]
    fn property_random_access_units_round_trip() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for mtu in [MIN_MTU, 300, DEFAULT_MTU, 1500] {
            let seq = rng.next() as u16;
            let mut ts = rng.next() as u32;
            let mut ext = u64::from(ts);
            let mut packetizer = VideoPacketizer::new(VideoCodec::H264, SSRC, PT, mtu, seq);
            let mut d = VideoDepacketizer::new(VideoCodec::H264);
            for _ in 0..100 {
                let count = 1 + rng.below(8);
                let au = access_unit((0..count).map(|_| random_nal(&mut rng, mtu)).collect());
                let mut packets = Vec::new();
                packetizer.packetize(&au, ts, &mut packets);
                assert!(packets.iter().all(|p| p.len() <= mtu));
                let out = depacketize_all(&mut d, &packets);
                assert_eq!(out.len(), 1, "mtu {mtu}");
                assert_eq!((&out[0].nals, out[0].keyframe), (&au.nals, au.keyframe));
                assert_eq!((out[0].rtp_timestamp, out[0].ext_timestamp), (ts, ext));
                let step = 1 + rng.below(6000) as u32;
                ts = ts.wrapping_add(step);
                ext += u64::from(step);
            }
            let stats = d.stats();
            assert_eq!((stats.access_units, stats.errors, stats.lost), (100, 0, 0));
        }
    }

    // --- parse_rtp ---

    #[test]
    fn parse_rtp_reads_fields_past_csrcs_extension_and_padding() {
        let packet = RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(97)
            .sequence_number(4711)
            .timestamp(123_456)
            .ssrc(SSRC)
            .marker_bit(true)
            .add_csrc(1)
            .add_csrc(2)
            .extension(0xbede, &[1, 2, 3, 4])
            .payload(&[0x41, 9, 9])
            .padding(3)
            .write_vec()
            .unwrap();
        let info = parse_rtp(&packet).unwrap();
        let expected = RtpPacketInfo {
            sequence_number: 4711,
            timestamp: 123_456,
            marker: true,
            ssrc: SSRC,
            payload_type: 97,
            payload: &[0x41, 9, 9],
        };
        assert_eq!(info, expected);
    }

    #[test]
    fn parse_rtp_accepts_a_12_byte_packet_with_empty_payload() {
        let packet = rtp(1, 2, false, &[]);
        assert_eq!(packet.len(), 12);
        assert!(parse_rtp(&packet).unwrap().payload.is_empty());
    }

    #[test]
    fn parse_rtp_rejects_short_packets() {
        assert_eq!(parse_rtp(&[]), Err(RtpError::TooShort { len: 0 }));
        assert_eq!(parse_rtp(&[0x80; 11]), Err(RtpError::TooShort { len: 11 }));
    }

    #[test]
    fn parse_rtp_rejects_wrong_version() {
        let mut packet = rtp(1, 2, false, &[0x41]);
        packet[0] = 0x40;
        assert_eq!(parse_rtp(&packet), Err(RtpError::Version { version: 1 }));
    }

    #[test]
    fn parse_rtp_rejects_csrc_count_past_the_end() {
        let mut packet = rtp(1, 2, false, &[0x41, 0, 0, 0]);
        packet[0] |= 2; // two CSRCs need 8 bytes, 4 follow
        assert_eq!(
            parse_rtp(&packet),
            Err(RtpError::CsrcPastEnd { count: 2, len: 16 })
        );
    }

    #[test]
    fn parse_rtp_rejects_extension_past_the_end() {
        let mut packet = rtp(1, 2, false, &[0xbe, 0xde, 0, 3, 1, 2, 3, 4]);
        packet[0] |= 0x10; // extension of 3 words, 1 present
        let err = RtpError::ExtensionPastEnd {
            needed: 28,
            len: 20,
        };
        assert_eq!(parse_rtp(&packet), Err(err));
        let mut packet = rtp(1, 2, false, &[0xbe]);
        packet[0] |= 0x10; // not even the extension header
        let err = RtpError::ExtensionPastEnd {
            needed: 16,
            len: 13,
        };
        assert_eq!(parse_rtp(&packet), Err(err));
    }

    #[test]
    fn parse_rtp_rejects_padding_larger_than_the_payload() {
        let mut packet = rtp(1, 2, false, &[0x41, 0, 0, 9]);
        packet[0] |= 0x20;
        let err = RtpError::PaddingTooLarge {
            padding: 9,
            available: 4,
        };
        assert_eq!(parse_rtp(&packet), Err(err));
        let mut packet = rtp(1, 2, false, &[0x41, 0]);
        packet[0] |= 0x20;
        assert_eq!(parse_rtp(&packet), Err(RtpError::ZeroPadding));
    }

    // --- depacketizer: bad inputs, each followed by a good access unit ---

    #[test]
    fn invalid_rtp_is_an_error_and_the_stream_goes_on() {
        let mut bad = rtp(1, 1000, true, &GOOD_NAL);
        bad[0] = 0x40;
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let err = DepacketizeError::Rtp(RtpError::Version { version: 1 });
        assert_eq!(d.push(&bad), Err(err));
        let au = d.push(&rtp(2, 900_000, true, &GOOD_NAL)).unwrap().unwrap();
        assert_eq!(au.nals, vec![Bytes::copy_from_slice(&GOOD_NAL)]);
    }

    #[test]
    fn empty_payload_is_an_error() {
        let err = DepacketizeError::EmptyPayload { seq: 0 };
        assert_rejected(&[], rtp(0, 1000, false, &[]), err);
    }

    #[test]
    fn forbidden_bit_discards_the_access_unit() {
        let setup = [rtp(0, 1000, false, &[0x67, 1, 2])];
        let err = DepacketizeError::ForbiddenBit {
            seq: 1,
            nal_type: 5,
        };
        assert_rejected(&setup, rtp(1, 1000, false, &[0xe5, 1, 2]), err);
    }

    #[test]
    fn forbidden_bit_inside_a_stap_a_is_an_error() {
        let stap = [STAP_A, 0, 2, 0x67, 1, 0, 2, 0x88, 1];
        let err = DepacketizeError::ForbiddenBit {
            seq: 0,
            nal_type: 8,
        };
        assert_rejected(&[], rtp(0, 1000, false, &stap), err);
    }

    #[test]
    fn stap_a_zero_length_is_an_error() {
        let stap = [STAP_A, 0, 2, 0x67, 1, 0, 0, 0x68];
        let err = DepacketizeError::StapAZeroLength { seq: 0, offset: 5 };
        assert_rejected(&[], rtp(0, 1000, false, &stap), err);
    }

    #[test]
    fn stap_a_over_long_length_is_an_error() {
        let stap = [STAP_A, 0, 2, 0x67, 1, 0x12, 0x34, 0x68, 1];
        let err = DepacketizeError::StapALengthTooLong {
            seq: 0,
            offset: 5,
            len: 0x1234,
            remaining: 2,
        };
        assert_rejected(&[], rtp(0, 1000, false, &stap), err);
    }

    #[test]
    fn stap_a_truncated_size_field_is_an_error() {
        let stap = [STAP_A, 0, 2, 0x67, 1, 0];
        let err = DepacketizeError::StapATruncated { seq: 0, offset: 5 };
        assert_rejected(&[], rtp(0, 1000, false, &stap), err);
    }

    #[test]
    fn stap_a_without_nal_units_is_an_error() {
        let err = DepacketizeError::StapAEmpty { seq: 0 };
        assert_rejected(&[], rtp(0, 1000, false, &[STAP_A]), err);
    }

    #[test]
    fn fu_a_middle_without_start_is_an_error() {
        let setup = [rtp(0, 500, true, &GOOD_NAL)];
        let err = DepacketizeError::FuAMiddleWithoutStart { seq: 1 };
        assert_rejected(&setup, rtp(1, 1000, false, &[0x7c, 0x05, 1, 2]), err);
    }

    #[test]
    fn fu_a_end_without_start_is_an_error() {
        let err = DepacketizeError::FuAEndWithoutStart { seq: 4711 };
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        assert!(d.push(&rtp(4710, 500, true, &GOOD_NAL)).unwrap().is_some());
        let end_fragment = rtp(4711, 1000, true, &[0x7c, 0x45, 1, 2]);
        assert_eq!(d.push(&end_fragment), Err(err));
        assert_recovers(&mut d, 4712);
    }

    #[test]
    fn fu_a_start_while_one_is_open_discards_both() {
        let setup = [rtp(0, 1000, false, &[0x7c, 0x85, 1, 2])];
        let err = DepacketizeError::FuAStartWhileOpen { seq: 1 };
        assert_rejected(&setup, rtp(1, 1000, false, &[0x7c, 0x85, 3, 4]), err);
    }

    #[test]
    fn fu_a_start_and_end_bits_both_set_is_an_error() {
        let err = DepacketizeError::FuAStartAndEnd { seq: 0 };
        assert_rejected(&[], rtp(0, 1000, false, &[0x7c, 0xc5, 1, 2]), err);
    }

    #[test]
    fn fu_a_without_fu_header_is_an_error() {
        let err = DepacketizeError::FuATooShort { seq: 0 };
        assert_rejected(&[], rtp(0, 1000, false, &[0x7c]), err);
    }

    #[test]
    fn fu_a_interrupted_by_another_packet_is_an_error() {
        let setup = [rtp(0, 1000, false, &[0x7c, 0x85, 1, 2])];
        let err = DepacketizeError::FuAUnfinished {
            seq: 1,
            nal_type: 1,
        };
        assert_rejected(&setup, rtp(1, 1000, false, &[0x41, 1]), err);
    }

    #[test]
    fn fu_a_unfinished_at_the_marker_discards_the_access_unit() {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        assert_eq!(d.push(&rtp(0, 1000, true, &[0x7c, 0x85, 1, 2])), Ok(None));
        assert_eq!(d.stats().discarded_access_units, 1);
        assert_recovers(&mut d, 1);
    }

    #[test]
    fn interleaved_mode_types_are_unsupported() {
        for nal_type in [STAP_B, MTAP16, MTAP24, FU_B] {
            let err = DepacketizeError::Unsupported { seq: 0, nal_type };
            let packet = rtp(0, 1000, false, &[0x60 | nal_type, 0, 0, 0, 0, 0]);
            assert_rejected(&[], packet, err.clone());
            assert!(err.to_string().contains("unsupported"), "{err}");
        }
    }

    #[test]
    fn undefined_types_are_ignored() {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let packets = [
            rtp(0, 1000, false, &[0x00, 1]),
            rtp(1, 1000, false, &[0x1e, 1]),
            rtp(2, 1000, false, &GOOD_NAL),
            rtp(3, 1000, true, &[0x1f, 1]),
        ];
        let out = depacketize_all(&mut d, &packets);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].nals, vec![Bytes::copy_from_slice(&GOOD_NAL)]);
    }

    #[test]
    fn access_unit_over_the_byte_cap_is_discarded() {
        assert_eq!(DepacketizerLimits::default().max_access_unit_bytes, 8 << 20);
        let limits = DepacketizerLimits {
            max_access_unit_bytes: 2500,
            max_nals: 1024,
        };
        let mut d = VideoDepacketizer::with_limits(VideoCodec::H264, limits);
        let mut packets = Vec::new();
        let au = access_unit(vec![nal(5, 3000, 0)]);
        VideoPacketizer::new(VideoCodec::H264, SSRC, PT, DEFAULT_MTU, 0).packetize(
            &au,
            1000,
            &mut packets,
        );
        assert_eq!(d.push(&packets[0]), Ok(None));
        assert_eq!(d.push(&packets[1]), Ok(None));
        let err = DepacketizeError::AccessUnitTooLarge {
            seq: 2,
            rtp_timestamp: 1000,
            size: 3000,
            max: 2500,
        };
        assert_eq!(d.push(&packets[2]), Err(err));
        assert_recovers(&mut d, 3);
    }

    #[test]
    fn access_unit_over_the_nal_cap_is_discarded() {
        assert_eq!(DepacketizerLimits::default().max_nals, 1024);
        let limits = DepacketizerLimits {
            max_access_unit_bytes: 1 << 20,
            max_nals: 3,
        };
        let mut d = VideoDepacketizer::with_limits(VideoCodec::H264, limits);
        let stap = [STAP_A, 0, 1, 0x67, 0, 1, 0x68, 0, 1, 0x06];
        assert_eq!(d.push(&rtp(0, 1000, false, &stap)), Ok(None));
        let err = DepacketizeError::TooManyNals {
            seq: 1,
            rtp_timestamp: 1000,
            max: 3,
        };
        assert_eq!(d.push(&rtp(1, 1000, false, &GOOD_NAL)), Err(err));
        assert_eq!(
            d.push(&rtp(2, 1000, true, &GOOD_NAL)),
            Ok(None),
            "rest skipped"
        );
        assert_recovers(&mut d, 3);
    }

    // --- depacketizer: stream events ---

    /// Packets of `count` access units of two FU-A packets each, from sequence number `seq`.
    fn two_packet_aus(count: u32, seq: u16) -> Vec<Bytes> {
        let mut packetizer = VideoPacketizer::new(VideoCodec::H264, SSRC, PT, 100, seq);
        let mut packets = Vec::new();
        for i in 0..count {
            let au = access_unit(vec![nal(1, 150, i as u8)]);
            packetizer.packetize(&au, i * 3000, &mut packets);
        }
        assert_eq!(packets.len(), 2 * count as usize);
        packets
    }

    #[test]
    fn loss_inside_a_frame_discards_it_and_flags_the_next() {
        let mut packets = two_packet_aus(3, 10);
        packets.remove(3); // second half of access unit 1
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let out = depacketize_all(&mut d, &packets);
        let got: Vec<(u32, bool)> = out
            .iter()
            .map(|a| (a.rtp_timestamp, a.lost_packets_before))
            .collect();
        assert_eq!(got, [(0, false), (6000, true)]);
        let stats = d.stats();
        assert_eq!(
            (stats.lost, stats.discarded_access_units, stats.errors),
            (1, 1, 0)
        );
    }

    #[test]
    fn loss_of_a_frame_start_skips_its_remainder() {
        let mut packets = two_packet_aus(3, 10);
        packets.remove(2); // first half of access unit 1
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let out = depacketize_all(&mut d, &packets);
        let got: Vec<(u32, bool)> = out
            .iter()
            .map(|a| (a.rtp_timestamp, a.lost_packets_before))
            .collect();
        assert_eq!(got, [(0, false), (6000, true)]);
        assert_eq!(
            d.stats().errors,
            0,
            "the orphan end is skipped, not an error"
        );
    }

    #[test]
    fn joining_in_the_middle_of_a_fragmented_nal_skips_it_silently() {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        assert_eq!(d.push(&rtp(7, 1000, false, &[0x7c, 0x05, 1])), Ok(None));
        assert_eq!(d.push(&rtp(8, 1000, true, &[0x7c, 0x45, 2])), Ok(None));
        let au = d.push(&rtp(9, 4000, true, &GOOD_NAL)).unwrap().unwrap();
        assert_eq!(au.rtp_timestamp, 4000);
        assert_eq!(d.stats().errors, 0);
    }

    #[test]
    fn late_and_duplicate_packets_around_the_wrap_are_dropped() {
        let p = |seq: u16, ts: u32| rtp(seq, ts, true, &[0x41, seq as u8]);
        let packets = [
            p(65_534, 0),
            p(65_535, 3000),
            p(65_535, 3000), // duplicate
            p(0, 6000),
            p(65_534, 0), // late, from before the wrap
            p(1, 9000),
        ];
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let out = depacketize_all(&mut d, &packets);
        let ts: Vec<u32> = out.iter().map(|a| a.rtp_timestamp).collect();
        assert_eq!(ts, [0, 3000, 6000, 9000]);
        assert!(out.iter().all(|a| !a.lost_packets_before));
        let stats = d.stats();
        assert_eq!(
            (stats.late_or_duplicate, stats.lost, stats.packets),
            (2, 0, 6)
        );
    }

    #[test]
    fn ssrc_change_mid_stream_resets_and_continues() {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        assert_eq!(d.push(&rtp(500, 1000, false, &[0x7c, 0x85, 1])), Ok(None));
        let other = rtp_with_ssrc(0xabcd, 3, 77, true, &GOOD_NAL);
        let au = d.push(&other).unwrap().expect("new stream's access unit");
        assert_eq!(
            (au.ssrc, au.rtp_timestamp, au.ext_timestamp),
            (0xabcd, 77, 77)
        );
        assert!(
            au.lost_packets_before,
            "old stream's access unit was cut off"
        );
        let stats = d.stats();
        assert_eq!(
            (stats.ssrc_changes, stats.discarded_access_units, stats.lost),
            (1, 1, 0)
        );
        let next = rtp_with_ssrc(0xabcd, 4, 3077, true, &GOOD_NAL);
        assert!(!d.push(&next).unwrap().unwrap().lost_packets_before);
    }

    #[test]
    fn timestamp_jumps_backwards_and_far_forwards_keep_going() {
        let timestamps = [1_000_000, 10, 10 + 3_000_000_000u32, 5, 5 + i32::MAX as u32];
        let packets: Vec<Vec<u8>> = (0..)
            .zip(timestamps)
            .map(|(seq, ts)| rtp(seq, ts, true, &GOOD_NAL))
            .collect();
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        let out = depacketize_all(&mut d, &packets);
        let ext: Vec<u64> = out.iter().map(|a| a.ext_timestamp).collect();
        // A forward jump over 2^31 reads as backwards; the unwrapped value saturates at 0 and
        // unwrapping goes on from there.
        let after_saturation = 5u32.wrapping_sub(10 + 3_000_000_000) as u64;
        let expected = [
            1_000_000,
            10,
            0,
            after_saturation,
            after_saturation + i32::MAX as u64,
        ];
        assert_eq!(ext, expected);
    }

    #[test]
    fn timestamp_change_without_marker_ends_the_access_unit() {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        assert_eq!(d.push(&rtp(0, 1000, false, &[0x41, 1])), Ok(None));
        let first = d.push(&rtp(1, 4000, true, &[0x41, 2])).unwrap().unwrap();
        assert_eq!((first.rtp_timestamp, first.nals.len()), (1000, 1));
        let second = d.pull().expect("the marked one waits for pull");
        assert_eq!(second.rtp_timestamp, 4000);
        assert_eq!(d.pull(), None);
    }

    #[test]
    fn error_after_a_timestamp_change_keeps_the_finished_access_unit() {
        let mut d = VideoDepacketizer::new(VideoCodec::H264);
        assert_eq!(d.push(&rtp(0, 1000, false, &[0x41, 1])), Ok(None));
        let err = DepacketizeError::EmptyPayload { seq: 1 };
        assert_eq!(d.push(&rtp(1, 4000, false, &[])), Err(err));
        assert_eq!(d.pull().map(|a| a.rtp_timestamp), Some(1000));
    }

    #[test]
    fn errors_name_the_packet() {
        let err = DepacketizeError::FuAEndWithoutStart { seq: 4711 };
        assert_eq!(
            err.to_string(),
            "fragmentation unit (FU-A/FU) end without start (seq 4711)"
        );
        let err = DepacketizeError::Unsupported {
            seq: 9,
            nal_type: 25,
        };
        assert_eq!(
            err.to_string(),
            "unsupported packet type 25 (STAP-B) (seq 9)"
        );
    }
}
