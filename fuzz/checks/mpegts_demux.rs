//! MPEG-TS from an SRT publisher (livefeed-media's `mpegts` demultiplexer over mpeg2ts-reader):
//! never a panic; the same frames whatever the cut (whole, or split at the point the first
//! byte chooses); no frame is empty or larger than the input.
//!
//! Shared by the `mpegts_demux` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_media::mpegts::{TsDemuxer, TsFrame};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let whole = TsDemuxer::default().push(rest);
    let cut = usize::from(first) * rest.len() / 256;
    let mut split = TsDemuxer::default();
    let mut pieces = split.push(&rest[..cut]);
    pieces.extend(split.push(&rest[cut..]));
    // One push gives out at most MAX_PENDING_FRAMES frames: below that, the cut changes nothing.
    if whole.len() < livefeed_media::mpegts::MAX_PENDING_FRAMES {
        assert_eq!(whole, pieces, "the cut at {cut} changed the frames");
    }
    for frame in &whole {
        let len = match frame {
            TsFrame::Video { annex_b, .. } => annex_b.len(),
            TsFrame::Aac { frame, .. } => frame.len(),
        };
        assert!(len > 0 && len <= rest.len(), "a frame of {len} bytes");
    }
}
