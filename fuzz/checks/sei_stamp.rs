//! SEI capture stamps: decoding arbitrary NAL units never panics, and every stamp encodes to a
//! NAL unit that decodes back to the same stamp.
//!
//! Shared by the `sei_stamp` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_media::{sei, CaptureStamp};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let _ = sei::decode_stamp(data);
    if data.len() >= 16 {
        let unix_ns = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
        let frame = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
        let stamp = CaptureStamp { unix_ns, frame };
        assert_eq!(sei::decode_stamp(&sei::encode_stamp(stamp)), Some(stamp));
    }
}
