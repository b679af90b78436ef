//! Tracks: a stream is one H.264 video track plus any number of other tracks (audio, or
//! anything else a publisher announces). This module describes those other tracks and carries
//! their media.
//!
//! Contract:
//! - A [`TrackDescription`] is what an SDP media section said about a track that is not the
//!   stream's video: media type, payload type, `rtpmap` and `fmtp`, and the codec they name.
//!   It is offered back to readers unchanged, so any codec passes through RTSP.
//! - A [`TrackPacket`] is one RTP payload of such a track as the publisher packetized it, with
//!   its presentation time on the path's timeline (in the track's own clock) and its marker
//!   bit. Packetizing it again (new SSRC, sequence number and timestamp base) gives a reader
//!   the publisher's stream.
//! - Tracks are numbered as livefeed offers them: the video is track 0 (`trackID=0`), the
//!   others follow from 1 in the order the publisher announced them.

use bytes::Bytes;

use crate::rtp::{parse_rtp, RtpError};

/// A codec livefeed recognises by its RTP encoding name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264 video (RFC 6184).
    H264,
    /// H.265 video (RFC 7798).
    H265,
    /// AAC in MPEG4-GENERIC (RFC 3640) or MP4A-LATM (RFC 6416).
    Aac,
    /// Opus (RFC 7587).
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Anything else, by its encoding name.
    Other(String),
}

impl Codec {
    /// The codec an `rtpmap` encoding name (or static payload type, when there is no rtpmap)
    /// stands for.
    pub fn from_encoding(name: &str) -> Codec {
        match name.to_ascii_uppercase().as_str() {
            "H264" => Codec::H264,
            "H265" => Codec::H265,
            "MPEG4-GENERIC" | "MP4A-LATM" => Codec::Aac,
            "OPUS" => Codec::Opus,
            "PCMU" => Codec::Pcmu,
            "PCMA" => Codec::Pcma,
            _ => Codec::Other(name.to_string()),
        }
    }

    /// A short lowercase name for logs and the API (`aac`, `opus`, …).
    pub fn name(&self) -> String {
        match self {
            Codec::H264 => "h264".into(),
            Codec::H265 => "h265".into(),
            Codec::Aac => "aac".into(),
            Codec::Opus => "opus".into(),
            Codec::Pcmu => "pcmu".into(),
            Codec::Pcma => "pcma".into(),
            Codec::Other(name) => name.to_ascii_lowercase(),
        }
    }
}

/// A track other than the stream's H.264 video, as its SDP media section described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackDescription {
    /// The media type of the `m=` line (`audio`, `video`, `application`, …).
    pub media: String,
    /// The RTP payload type the publisher sends with.
    pub payload_type: u8,
    /// The `rtpmap` value after the payload type (e.g. `MPEG4-GENERIC/44100/2`), if any.
    pub rtpmap: Option<String>,
    /// The `fmtp` value after the payload type, if any.
    pub fmtp: Option<String>,
    /// The codec.
    pub codec: Codec,
    /// RTP clock rate (from rtpmap, or the static payload type's).
    pub clock_rate: u32,
    /// The publisher's `a=control` value, if given.
    pub control: Option<String>,
}

/// Longest `rtpmap` or `fmtp` value kept from a publisher (an AAC config is a few dozen bytes).
pub const MAX_ATTRIBUTE_LEN: usize = 1024;

impl TrackDescription {
    /// Describes a track from its media type, payload type and attributes. `None` when the
    /// clock rate is unknown (a dynamic payload type without rtpmap, or a rate of 0).
    pub fn new(
        media: &str,
        payload_type: u8,
        rtpmap: Option<&str>,
        fmtp: Option<&str>,
        control: Option<&str>,
    ) -> Option<Self> {
        let keep = |s: &str| s.trim().chars().take(MAX_ATTRIBUTE_LEN).collect::<String>();
        let (encoding, clock_rate) = match rtpmap {
            Some(map) => {
                let mut fields = map.trim().split('/');
                let name = fields.next().unwrap_or("").trim().to_string();
                let rate = fields.next()?.trim().parse::<u32>().ok()?;
                (name, rate)
            }
            None => static_payload_type(payload_type)?,
        };
        if clock_rate == 0 {
            return None;
        }
        Some(TrackDescription {
            media: keep(media),
            payload_type,
            rtpmap: rtpmap.map(keep),
            fmtp: fmtp.map(keep),
            codec: Codec::from_encoding(&encoding),
            clock_rate,
            control: control.map(keep),
        })
    }
}

/// The encoding and clock rate of the static audio payload types (RFC 3551) publishers use
/// without an rtpmap.
fn static_payload_type(pt: u8) -> Option<(String, u32)> {
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        14 => ("MPA", 90_000),
        _ => return None,
    };
    Some((name.to_string(), rate))
}

/// One RTP payload of a non-video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackPacket {
    /// The track, numbered as offered (1 = the first track after the video).
    pub track: usize,
    /// Presentation time in the track's clock, on the path's timeline.
    pub pts: u64,
    /// The RTP payload, as the publisher sent it.
    pub payload: Bytes,
    /// The RTP marker bit.
    pub marker: bool,
    /// Wall-clock time of the payload's first sample, Unix ns, when the publisher's RTCP
    /// sender reports tell it.
    pub capture_unix_ns: Option<u64>,
}

/// Why an RTP packet of a non-video track was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackPacketError {
    /// Not a valid RTP packet.
    #[error(transparent)]
    Rtp(#[from] RtpError),
    /// Another payload type than the one announced for the track.
    #[error("RTP payload type {got} on a track announced with {announced}")]
    PayloadType {
        /// The packet's payload type.
        got: u8,
        /// The track's.
        announced: u8,
    },
}

/// Turns one track's RTP packets into payloads on a 64-bit timeline: timestamps keep counting
/// across the 32-bit wrap and across an SSRC change; late and duplicate packets are dropped.
#[derive(Debug, Clone)]
pub struct PacketTimeline {
    payload_type: u8,
    last: Option<Position>,
    lost: u64,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    ext: u64,
}

/// One payload of [`PacketTimeline::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedPayload {
    /// The RTP timestamp, unwrapped; 0 at the track's first packet.
    pub ext_timestamp: u64,
    /// The RTP timestamp as sent (for the sender's reports).
    pub rtp_timestamp: u32,
    /// The RTP payload.
    pub payload: Bytes,
    /// The marker bit.
    pub marker: bool,
}

/// A backward sequence step up to this is a late packet; a bigger one is a restart.
const MAX_MISORDER: u16 = 100;

impl PacketTimeline {
    /// A timeline for a track announced with `payload_type`.
    pub fn new(payload_type: u8) -> Self {
        PacketTimeline {
            payload_type,
            last: None,
            lost: 0,
        }
    }

    /// Packets missing according to sequence numbers so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Reads one packet: `Ok(None)` for a late or duplicate one.
    pub fn push(&mut self, packet: &[u8]) -> Result<Option<TimedPayload>, TrackPacketError> {
        let rtp = parse_rtp(packet)?;
        if rtp.payload_type != self.payload_type {
            return Err(TrackPacketError::PayloadType {
                got: rtp.payload_type,
                announced: self.payload_type,
            });
        }
        let ext = match self.last {
            None => 0,
            Some(last) if last.ssrc != rtp.ssrc => last.ext,
            Some(last) => {
                let step = rtp.sequence_number.wrapping_sub(last.seq);
                if step == 0 || step > u16::MAX - MAX_MISORDER {
                    return Ok(None);
                }
                self.lost += u64::from(step - 1);
                let delta = rtp.timestamp.wrapping_sub(last.timestamp) as i32;
                last.ext.saturating_add_signed(i64::from(delta))
            }
        };
        self.last = Some(Position {
            ssrc: rtp.ssrc,
            seq: rtp.sequence_number,
            timestamp: rtp.timestamp,
            ext,
        });
        Ok(Some(TimedPayload {
            ext_timestamp: ext,
            rtp_timestamp: rtp.timestamp,
            payload: Bytes::copy_from_slice(rtp.payload),
            marker: rtp.marker,
        }))
    }
}

/// Writes RTP packets of one outgoing non-video track: own SSRC, sequence numbers and
/// timestamp base; payload and marker as the publisher sent them.
#[derive(Debug, Clone)]
pub struct PacketWriter {
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    rtp_base: u32,
}

impl PacketWriter {
    /// A writer with the given identifiers.
    pub fn new(ssrc: u32, payload_type: u8, first_seq: u16, rtp_base: u32) -> Self {
        PacketWriter {
            ssrc,
            payload_type,
            seq: first_seq,
            rtp_base,
        }
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The RTP timestamp of `pts`.
    pub fn rtp_time(&self, pts: u64) -> u32 {
        self.rtp_base.wrapping_add(pts as u32)
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Appends the RTP packet of `packet` to `out`.
    pub fn write(&mut self, packet: &TrackPacket, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(self.payload_type & 0x7f | if packet.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.rtp_time(packet.pts).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&packet.payload);
        self.seq = self.seq.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let packet = TrackPacket {
            track: 1,
            pts: u64::from(ts),
            payload: Bytes::copy_from_slice(payload),
            marker,
            capture_unix_ns: None,
        };
        let mut out = Vec::new();
        PacketWriter::new(ssrc, 97, seq, 0).write(&packet, &mut out);
        out
    }

    #[test]
    fn timestamps_unwrap_and_late_packets_are_dropped() {
        let mut t = PacketTimeline::new(97);
        let first = t.push(&rtp(65535, u32::MAX - 511, 1, true, b"a")).unwrap();
        assert_eq!(first.map(|p| p.ext_timestamp), Some(0));
        let wrapped = t
            .push(&rtp(0, 512, 1, false, b"b"))
            .unwrap()
            .expect("in order");
        assert_eq!(wrapped.ext_timestamp, 1024);
        assert!(!wrapped.marker);
        assert_eq!(&wrapped.payload[..], b"b");
        assert_eq!(
            t.push(&rtp(0, 512, 1, false, b"b")).unwrap(),
            None,
            "duplicate"
        );
        assert_eq!(
            t.push(&rtp(65500, 0, 1, false, b"c")).unwrap(),
            None,
            "late"
        );
        let gap = t
            .push(&rtp(3, 2048, 1, true, b"d"))
            .unwrap()
            .expect("after a gap");
        assert_eq!(gap.ext_timestamp, 2560);
        assert_eq!(t.lost(), 2);
        let restart = t
            .push(&rtp(9000, 7, 2, true, b"e"))
            .unwrap()
            .expect("new SSRC");
        assert_eq!(
            restart.ext_timestamp, 2560,
            "a new SSRC continues the timeline"
        );
    }

    #[test]
    fn bad_packets_are_refused_with_a_reason() {
        let mut t = PacketTimeline::new(96);
        assert!(matches!(
            t.push(&rtp(1, 0, 1, true, b"x")),
            Err(TrackPacketError::PayloadType {
                got: 97,
                announced: 96
            })
        ));
        assert!(matches!(t.push(b"\x80"), Err(TrackPacketError::Rtp(_))));
    }

    #[test]
    fn written_packets_carry_the_writer_identifiers() {
        let packet = TrackPacket {
            track: 1,
            pts: 1000,
            payload: Bytes::from_static(b"xyz"),
            marker: true,
            capture_unix_ns: None,
        };
        let mut w = PacketWriter::new(0xdead_beef, 97, 65535, u32::MAX);
        let mut out = Vec::new();
        w.write(&packet, &mut out);
        let parsed = parse_rtp(&out).expect("valid RTP");
        assert_eq!(parsed.ssrc, 0xdead_beef);
        assert_eq!(parsed.sequence_number, 65535);
        assert_eq!(parsed.timestamp, 999);
        assert!(parsed.marker);
        assert_eq!(parsed.payload, b"xyz");
        assert_eq!(w.next_seq(), 0);
    }

    #[test]
    fn codecs_are_recognised_by_encoding_name_case_insensitively() {
        assert_eq!(Codec::from_encoding("mpeg4-generic"), Codec::Aac);
        assert_eq!(Codec::from_encoding("MP4A-LATM"), Codec::Aac);
        assert_eq!(Codec::from_encoding("opus"), Codec::Opus);
        assert_eq!(Codec::from_encoding("H265"), Codec::H265);
        assert_eq!(Codec::from_encoding("L16"), Codec::Other("L16".to_string()));
        assert_eq!(Codec::Other("L16".into()).name(), "l16");
    }

    #[test]
    fn a_description_needs_a_clock_rate() {
        let aac = TrackDescription::new(
            "audio",
            97,
            Some("MPEG4-GENERIC/44100/2"),
            Some("profile-level-id=1;mode=AAC-hbr"),
            Some("streamid=1"),
        )
        .expect("described");
        assert_eq!(aac.codec, Codec::Aac);
        assert_eq!(aac.clock_rate, 44_100);
        assert!(TrackDescription::new("audio", 97, None, None, None).is_none());
        assert!(TrackDescription::new("audio", 97, Some("OPUS"), None, None).is_none());
        assert!(TrackDescription::new("audio", 97, Some("OPUS/0/2"), None, None).is_none());
        let pcmu = TrackDescription::new("audio", 0, None, None, None).expect("static");
        assert_eq!((pcmu.codec, pcmu.clock_rate), (Codec::Pcmu, 8000));
    }

    #[test]
    fn long_attributes_are_cut() {
        let long = "x".repeat(10_000);
        let t = TrackDescription::new("audio", 97, Some("OPUS/48000/2"), Some(&long), None)
            .expect("described");
        assert_eq!(t.fmtp.map(|f| f.len()), Some(MAX_ATTRIBUTE_LEN));
    }
}
