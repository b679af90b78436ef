//! LL-HLS playlist query strings (`_HLS_msn`, `_HLS_part`, `_HLS_skip`): parsing never panics,
//! and whatever is accepted is consistent: a part only with an msn, and only from a query
//! within the length limit.
//!
//! Shared by the `hls_query` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_hls::query::{parse_query, MAX_QUERY_LEN};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    if let Ok(request) = parse_query(Some(&query)) {
        assert!(query.len() <= MAX_QUERY_LEN);
        if request.part.is_some() {
            assert!(request.msn.is_some());
        }
    }
}
