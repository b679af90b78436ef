//! The H.265 payload format (RFC 7798) without decoding order numbers: single NAL unit packets,
//! aggregation packets (AP, type 48) and fragmentation units (FU, type 49). PACI packets (type
//! 50) are refused; types 51..=63 are ignored, as RFC 7798 section 4.4 lets receivers do.

use bytes::Bytes;

use super::{DepacketizeError, RtpPacketInfo, VideoDepacketizer, FU_END, FU_START};

/// Bytes of the payload header (the same layout as a NAL unit header).
pub(super) const PAYLOAD_HEADER_LEN: usize = 2;
/// Aggregation packet.
pub(super) const AP: u8 = 48;
/// Fragmentation unit.
pub(super) const FU: u8 = 49;
/// Payload content information.
pub(super) const PACI: u8 = 50;
/// Payload header plus FU header.
pub(super) const FU_OVERHEAD: usize = PAYLOAD_HEADER_LEN + 1;

const FORBIDDEN_BIT: u8 = 0x80;
const TYPE_BITS: u8 = 0x7e;
const FU_TYPE_MASK: u8 = 0x3f;

fn header_type(h0: u8) -> u8 {
    (h0 & TYPE_BITS) >> 1
}

fn layer_id(h: [u8; 2]) -> u8 {
    ((h[0] & 1) << 5) | (h[1] >> 3)
}

fn tid(h: [u8; 2]) -> u8 {
    h[1] & 0x07
}

/// The payload header of an AP holding `nals`: F if any has it, the lowest LayerId and the
/// lowest TID among them (RFC 7798 4.4.2).
pub(super) fn ap_header<'a>(nals: impl Iterator<Item = &'a Bytes>) -> [u8; 2] {
    let headers: Vec<[u8; 2]> = nals
        .filter_map(|nal| nal.first_chunk::<2>().copied())
        .collect();
    let f = headers
        .iter()
        .fold(0, |acc, h| acc | (h[0] & FORBIDDEN_BIT));
    let layer = headers.iter().map(|&h| layer_id(h)).min().unwrap_or(0);
    let tid = headers.iter().map(|&h| tid(h)).min().unwrap_or(1).max(1);
    [f | (AP << 1) | (layer >> 5), ((layer & 0x1f) << 3) | tid]
}

/// A NAL unit split for fragmentation units: the FU payload header (type 49, the NAL's F,
/// LayerId and TID), the FU header's type bits, and the body after the NAL header. `None` for a
/// NAL unit shorter than its header.
pub(super) fn fu_parts(nal: &[u8]) -> Option<([u8; 2], u8, &[u8])> {
    let (&[h0, h1], body) = nal.split_first_chunk::<2>()?;
    let payload_header = [(h0 & !TYPE_BITS) | (FU << 1), h1];
    Some((payload_header, header_type(h0), body))
}

impl VideoDepacketizer {
    pub(super) fn depacketize_h265(
        &mut self,
        rtp: &RtpPacketInfo<'_>,
    ) -> Result<(), DepacketizeError> {
        let seq = rtp.sequence_number;
        let Some((&[h0, h1], rest)) = rtp.payload.split_first_chunk::<2>() else {
            return Err(DepacketizeError::EmptyPayload { seq });
        };
        let nal_type = header_type(h0);
        if h0 & FORBIDDEN_BIT != 0 {
            return Err(DepacketizeError::ForbiddenBit { seq, nal_type });
        }
        if self.au.fu_start.is_some() && nal_type != FU {
            return Err(DepacketizeError::FuAUnfinished { seq, nal_type });
        }
        let limits = self.limits;
        match nal_type {
            0..=47 => self.au.push_nal(rtp.payload, &limits, seq),
            AP => self.push_stap_a(rest, seq),
            FU => self.push_h265_fu([h0, h1], rest, seq),
            PACI => Err(DepacketizeError::Unsupported { seq, nal_type }),
            _ => Ok(()),
        }
    }

    fn push_h265_fu(
        &mut self,
        payload_header: [u8; 2],
        rest: &[u8],
        seq: u16,
    ) -> Result<(), DepacketizeError> {
        let Some((&fu_header, body)) = rest.split_first() else {
            return Err(DepacketizeError::FuATooShort { seq });
        };
        let limits = self.limits;
        let (start, end) = (fu_header & FU_START != 0, fu_header & FU_END != 0);
        match (start, end) {
            (true, true) => Err(DepacketizeError::FuAStartAndEnd { seq }),
            (true, false) => {
                let [h0, h1] = payload_header;
                let header = [(h0 & !TYPE_BITS) | ((fu_header & FU_TYPE_MASK) << 1), h1];
                self.au.fu_begin(&header, body, &limits, seq)
            }
            (false, end) => self.au.fu_continue(body, end, &limits, seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h265::nal_type;
    use crate::rtp::{Depacketized, DepacketizerLimits, VideoPacketizer, MIN_MTU};
    use crate::{AccessUnit, VideoCodec};

    const SSRC: u32 = 0x4865_5653;

    /// An H.265 NAL unit of `len` bytes (two-byte header, LayerId 0, TID 1).
    fn nal(nal_type: u8, len: usize, seed: u8) -> Bytes {
        let body = (2..len).map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed));
        [nal_type << 1, 1].into_iter().chain(body).collect()
    }

    fn access_unit(nals: Vec<Bytes>) -> AccessUnit {
        let keyframe = nals.iter().any(|n| VideoCodec::H265.is_keyframe_nal(n));
        AccessUnit {
            codec: VideoCodec::H265,
            nals,
            pts: 0,
            keyframe,
            capture: None,
        }
    }

    fn packetize(au: &AccessUnit, mtu: usize, ts: u32) -> Vec<Bytes> {
        let mut packetizer = VideoPacketizer::new(VideoCodec::H265, SSRC, 96, mtu, 7);
        let mut out = Vec::new();
        packetizer.packetize(au, ts, &mut out);
        out
    }

    fn depacketize(packets: &[Bytes]) -> Vec<Depacketized> {
        let mut depacketizer = VideoDepacketizer::new(VideoCodec::H265);
        let mut out = Vec::new();
        for packet in packets {
            if let Some(au) = depacketizer.push(packet).expect("valid packet") {
                out.push(au);
            }
            out.extend(std::iter::from_fn(|| depacketizer.pull()));
        }
        out
    }

    /// An RTP packet of `payload`.
    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 96 | (u8::from(marker) << 7)];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&SSRC.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_keyframe_round_trips_through_ap_and_fu() {
        let au = access_unit(vec![
            nal(nal_type::VPS, 24, 1),
            nal(nal_type::SPS, 42, 2),
            nal(nal_type::PPS, 7, 3),
            nal(nal_type::SEI_PREFIX, 300, 4),
            nal(nal_type::IDR_W_RADL, 5000, 5),
        ]);
        let packets = packetize(&au, 1200, 90_000);
        // VPS+SPS+PPS+SEI in one AP, then the slice in FUs.
        assert_eq!(packets[0][RTP_PAYLOAD], AP << 1);
        assert!(packets[1..].iter().all(|p| p[RTP_PAYLOAD] == FU << 1));
        assert!(packets.iter().all(|p| p.len() <= 1200));
        let got = depacketize(&packets);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].nals, au.nals);
        assert!(got[0].keyframe);
        assert_eq!(got[0].rtp_timestamp, 90_000);
    }

    const RTP_PAYLOAD: usize = 12;

    #[test]
    fn cra_is_a_keyframe_and_trail_is_not() {
        let cra = access_unit(vec![nal(nal_type::CRA, 100, 1)]);
        let trail = access_unit(vec![nal(1, 100, 2)]);
        assert!(depacketize(&packetize(&cra, 1200, 0))[0].keyframe);
        assert!(!depacketize(&packetize(&trail, 1200, 0))[0].keyframe);
    }

    #[test]
    fn random_access_units_round_trip_at_any_mtu() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300u32 {
            // Every tenth round at the smallest MTU: one byte of NAL data per fragment.
            let mtu = MIN_MTU + (next() % 1500) as usize * usize::from(round % 10 != 0);
            let count = 1 + (next() % 6) as usize;
            let nals = (0..count)
                .map(|i| {
                    let len = 2 + (next() % [30, 2 * mtu as u64, 20_000][i % 3]) as usize;
                    nal((next() % 41) as u8, len, round as u8)
                })
                .collect();
            let au = access_unit(nals);
            let packets = packetize(&au, mtu, round);
            assert!(packets.iter().all(|p| p.len() <= mtu), "mtu {mtu}");
            let got = depacketize(&packets);
            assert_eq!(got.len(), 1, "round {round}, mtu {mtu}");
            assert_eq!(got[0].nals, au.nals, "round {round}, mtu {mtu}");
            assert_eq!(got[0].keyframe, au.keyframe);
        }
    }

    #[test]
    fn bad_packets_are_errors_and_the_next_access_unit_still_comes_out() {
        let mut d = VideoDepacketizer::new(VideoCodec::H265);
        let errors = [
            rtp(1, 0, true, &[0x80 | (1 << 1), 1, 0]),  // forbidden bit
            rtp(2, 3000, true, &[PACI << 1, 1, 0, 0]),  // PACI
            rtp(3, 6000, true, &[FU << 1, 1]),          // FU without FU header
            rtp(4, 9000, true, &[FU << 1, 1, 0xc1, 9]), // FU start and end
            rtp(5, 12000, true, &[AP << 1, 1, 0, 9, 2]), // AP size past the end
            rtp(6, 15000, true, &[0x26]),               // one-byte payload
            rtp(7, 15000, true, &[AP << 1, 1, 0, 1, 2]), // AP unit shorter than a header
        ];
        for packet in &errors {
            let err = d.push(packet).expect_err("refused");
            assert!(!err.to_string().is_empty());
        }
        // A reserved type (51..=63) is skipped without an error.
        let reserved = rtp(8, 18000, false, &[55 << 1, 1, 9, 9]);
        assert!(d.push(&reserved).expect("ignored").is_none());
        let fine = rtp(9, 18000, true, &nal(1, 20, 0));
        let au = d.push(&fine).expect("valid").expect("emitted");
        assert_eq!(au.nals.len(), 1);
        assert_eq!(d.stats().errors, errors.len() as u64);
    }

    #[test]
    fn a_lost_fragment_drops_its_access_unit_and_flags_the_next() {
        let big = access_unit(vec![nal(nal_type::IDR_N_LP, 4000, 1)]);
        let mut packets = packetize(&big, 1200, 0);
        packets.remove(1);
        let next = access_unit(vec![nal(1, 50, 2)]);
        let mut later = packetize(&next, 1200, 3000);
        // Continue the sequence numbers after the keyframe's packets.
        for (i, p) in later.iter_mut().enumerate() {
            let mut v = p.to_vec();
            v[2..4].copy_from_slice(&(7 + 4 + i as u16).to_be_bytes());
            *p = Bytes::from(v);
        }
        packets.extend(later);
        let mut d = VideoDepacketizer::with_limits(VideoCodec::H265, DepacketizerLimits::default());
        let mut got = Vec::new();
        for p in &packets {
            if let Ok(Some(au)) = d.push(p) {
                got.push(au);
            }
        }
        assert_eq!(got.len(), 1, "only the access unit after the loss");
        assert!(got[0].lost_packets_before);
        assert_eq!(got[0].nals, next.nals);
    }
}
