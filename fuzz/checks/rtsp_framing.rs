//! Feeds arbitrary bytes to the RTSP framing reader three ways — whole, split in two at a
//! data-derived point, and in small data-derived pieces — and checks that all three give the
//! same frames and the same final error, and that the buffer never holds more than the limits
//! allow plus the latest push, and that rtsp-types never refuses a message the checks passed.
//!
//! Shared by the `rtsp_framing` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`). The first byte of the input (which is also part of
//! the stream) chooses the split point (`seed * len / 256`) and the piece size
//! (`seed % 7 + 1`).

use livefeed_rtsp::framing::{FrameReader, FramingError, Limits};

/// Small limits, so that runs reach every limit often.
const LIMITS: Limits = Limits {
    max_head_bytes: 512,
    max_uri_bytes: 96,
    max_headers: 12,
    max_body_bytes: 700,
    max_interleaved_bytes: 300,
};

/// The most the reader may keep buffered once drained.
fn drained_bound() -> usize {
    (LIMITS.max_head_bytes + LIMITS.max_body_bytes).max(LIMITS.max_interleaved_bytes)
}

/// Every frame (as its Debug rendering) and the error that ended the stream, if any.
fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut reader = FrameReader::new(LIMITS);
    let mut events = Vec::new();
    for piece in pieces {
        reader.push(piece);
        assert!(reader.buffered() <= drained_bound() + piece.len());
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => events.push(format!("{frame:?}")),
                Ok(None) => break,
                Err(err) => {
                    // rtsp-types refusing what the framing checks let through is a gap in them.
                    assert!(!matches!(err, FramingError::Unparseable { .. }), "{err:?}");
                    assert_eq!(reader.next_frame(), Err(err.clone()), "errors are sticky");
                    events.push(format!("error {err:?} status {}", err.status()));
                    return events;
                }
            }
        }
        assert!(reader.buffered() <= drained_bound());
    }
    events
}

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let Some((&seed, _)) = data.split_first() else {
        return;
    };
    let whole = run([data]);

    let cut = usize::from(seed) * data.len() / 256;
    let (a, b) = data.split_at(cut);
    assert_eq!(run([a, b]), whole, "split at {cut}");

    let piece = usize::from(seed % 7) + 1;
    assert_eq!(run(data.chunks(piece)), whole, "pieces of {piece}");
}
