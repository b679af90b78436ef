//! What an LL-HLS request names: playlist query strings (`_HLS_msn`, `_HLS_part`, `_HLS_skip`)
//! and media file names (`init-<hash>.mp4`, `<stream id>-part<msn>.<i>.m4s`,
//! `<stream id>-seg<msn>.m4s`, and the same without the id). Parsing never panics, and whatever
//! is accepted is consistent: a part only with an msn, and only from a query within the length
//! limit; a name's stream id is 1 to 32 letters and digits (or absent), and the canonical name
//! of what was parsed parses back to the same thing.
//!
//! Shared by the `hls_query` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_hls::playlist::{Resource, MAX_STREAM_ID_LEN};
use livefeed_hls::query::{parse_query, MAX_QUERY_LEN};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(request) = parse_query(Some(&text)) {
        assert!(text.len() <= MAX_QUERY_LEN);
        if request.part.is_some() {
            assert!(request.msn.is_some());
        }
    }
    if let Some((id, resource)) = Resource::parse_named(&text) {
        assert!(id.len() <= MAX_STREAM_ID_LEN);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let prefix = if id.is_empty() {
            String::new()
        } else {
            format!("{id}-")
        };
        let canonical = match resource {
            Resource::Init => "init.mp4".to_string(),
            Resource::InitVersion(hash) => format!("init-{hash:016x}.mp4"),
            Resource::Segment(msn) => format!("{prefix}seg{msn}.m4s"),
            Resource::Part(msn, index) => format!("{prefix}part{msn}.{index}.m4s"),
        };
        assert_eq!(
            Resource::parse_named(&canonical),
            Some((id, resource)),
            "{canonical}"
        );
    }
}
