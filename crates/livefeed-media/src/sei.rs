//! The livefeed capture stamp, carried in-band as an H.264 SEI `user_data_unregistered` message.
//!
//! Layout of the SEI payload (payload type 5, 32 bytes), all integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..16 | [`LIVEFEED_SEI_UUID`] (ASCII `livefeed-stamp` then version `00 01`) |
//! | 16..24 | capture time, Unix nanoseconds |
//! | 24..32 | frame number |
//!
//! The NAL unit is written with emulation prevention bytes, so it is a valid NAL unit that every
//! relay passing NAL units through (RTSP, HLS, WebRTC) keeps, and every decoder skips.

use bytes::Bytes;
use h264_reader::nal::sei::{HeaderType, SeiReader};
use h264_reader::rbsp::{ByteReader, ByteWriter};
use std::io::Write;

use crate::access_unit::CaptureStamp;
use crate::h264::{nal_type, nal_unit_type};

/// The UUID that marks a livefeed capture stamp: `livefeed-stamp`, version 1.
pub const LIVEFEED_SEI_UUID: [u8; 16] = *b"livefeed-stamp\x00\x01";

const PAYLOAD_TYPE_USER_DATA_UNREGISTERED: u8 = 5;
const PAYLOAD_LEN: usize = 32;

/// Builds the SEI NAL unit (header byte included) carrying `stamp`.
pub fn encode_stamp(stamp: CaptureStamp) -> Bytes {
    let mut rbsp = Vec::with_capacity(3 + PAYLOAD_LEN);
    rbsp.push(PAYLOAD_TYPE_USER_DATA_UNREGISTERED);
    rbsp.push(PAYLOAD_LEN as u8);
    rbsp.extend_from_slice(&LIVEFEED_SEI_UUID);
    rbsp.extend_from_slice(&stamp.unix_ns.to_be_bytes());
    rbsp.extend_from_slice(&stamp.frame.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits

    let mut nal = vec![nal_type::SEI]; // forbidden_zero 0, nal_ref_idc 0, type 6
                                       // Writing into a Vec cannot fail.
    let _ = ByteWriter::new(&mut nal).write_all(&rbsp);
    Bytes::from(nal)
}

/// Reads a livefeed capture stamp from one NAL unit; `None` if it is not an SEI NAL unit or
/// carries no livefeed stamp. Never panics on malformed input.
pub fn decode_stamp(nal: &[u8]) -> Option<CaptureStamp> {
    if nal_unit_type(nal) != Some(nal_type::SEI) {
        return None;
    }
    let mut scratch = Vec::new();
    let mut reader =
        SeiReader::from_rbsp_bytes(ByteReader::skipping_h264_header(nal), &mut scratch);
    while let Ok(Some(msg)) = reader.next() {
        if msg.payload_type == HeaderType::UserDataUnregistered {
            if let Some(stamp) = stamp_from_payload(msg.payload) {
                return Some(stamp);
            }
        }
    }
    None
}

/// Finds the capture stamp among the NAL units of an access unit.
pub fn find_stamp<'a>(nals: impl IntoIterator<Item = &'a Bytes>) -> Option<CaptureStamp> {
    nals.into_iter().find_map(|n| decode_stamp(n))
}

fn stamp_from_payload(payload: &[u8]) -> Option<CaptureStamp> {
    let rest = payload.strip_prefix(&LIVEFEED_SEI_UUID)?;
    let unix_ns = u64::from_be_bytes(rest.get(0..8)?.try_into().ok()?);
    let frame = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
    Some(CaptureStamp { unix_ns, frame })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let stamp = CaptureStamp {
            unix_ns: 1_763_700_000_123_456_789,
            frame: 42,
        };
        let nal = encode_stamp(stamp);
        assert_eq!(nal[0], 6);
        assert_eq!(decode_stamp(&nal), Some(stamp));
    }

    #[test]
    fn stamp_with_zero_runs_gets_emulation_prevention_and_still_round_trips() {
        let stamp = CaptureStamp {
            unix_ns: 0x0000_0001_0000_0000,
            frame: 0,
        };
        let nal = encode_stamp(stamp);
        assert!(
            nal.windows(3).all(|w| w != [0, 0, 0] && w != [0, 0, 1]),
            "emulation prevention missing: {nal:02x?}"
        );
        assert_eq!(decode_stamp(&nal), Some(stamp));
    }

    #[test]
    fn foreign_and_malformed_sei_are_ignored() {
        assert_eq!(decode_stamp(&[]), None);
        assert_eq!(decode_stamp(&[0x65, 1, 2, 3]), None);
        // SEI with a user_data_unregistered of another UUID.
        let mut other = vec![6, 5, 20];
        other.extend_from_slice(&[0xAA; 20]);
        other.push(0x80);
        assert_eq!(decode_stamp(&other), None);
        // Truncated livefeed SEI: every prefix is handled without panic.
        let nal = encode_stamp(CaptureStamp {
            unix_ns: 7,
            frame: 9,
        });
        for len in 0..nal.len() - 1 {
            assert_eq!(decode_stamp(&nal[..len]), None, "prefix of {len} bytes");
        }
    }

    #[test]
    fn find_stamp_scans_an_access_unit() {
        let stamp = CaptureStamp {
            unix_ns: 5,
            frame: 6,
        };
        let nals = [
            Bytes::from_static(&[0x67, 0x42]),
            encode_stamp(stamp),
            Bytes::from_static(&[0x65, 0x88]),
        ];
        assert_eq!(find_stamp(&nals), Some(stamp));
    }
}
