//! Reads a pixel timecode from an arbitrary luma plane of fuzzer-chosen size: must never panic.
//! Then draws a fuzzer-chosen timecode into that plane and checks it reads back.
//!
//! Shared by the `timecode_read` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_media::timecode::{self, Timecode};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    if data.len() < 16 {
        return;
    }
    let (head, pixels) = data.split_at(16);
    // Small dimensions so that a run covers many shapes: up to 1023 x 255, stride padding < 64.
    let width = usize::from(u16::from_le_bytes([head[0], head[1]]) & 0x3ff);
    let height = usize::from(head[2]);
    let stride = width + usize::from(head[3] & 0x3f);

    // The raw input as a (possibly too short) plane.
    let _ = timecode::read(pixels, stride, width, height);

    // A plane of the right size, tiled with the input.
    let len = stride * height;
    let mut plane: Vec<u8> = pixels.iter().copied().cycle().take(len).collect();
    plane.resize(len, 128);
    let _ = timecode::read(&plane, stride, width, height);

    // Round trip: whatever was there, a drawn strip reads back.
    let tc = Timecode {
        unix_ms: u64::from_le_bytes(head[4..12].try_into().unwrap_or_default()),
        frame: u32::from_le_bytes(head[12..16].try_into().unwrap_or_default()),
    };
    timecode::draw(&mut plane, stride, width, height, tc);
    if width >= timecode::MIN_WIDTH && height >= timecode::strip_height(width) {
        assert_eq!(
            timecode::read(&plane, stride, width, height),
            Some(tc.masked())
        );
    }
}
