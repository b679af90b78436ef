//! LL-HLS playlist query strings (`_HLS_msn`, `_HLS_part`, `_HLS_skip`): parsing never panics,
//! and whatever is accepted is consistent: a part only with an msn, and only from a query
//! within the length limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livefeed_hls::query::{parse_query, MAX_QUERY_LEN};

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    if let Ok(request) = parse_query(Some(&query)) {
        assert!(query.len() <= MAX_QUERY_LEN);
        if request.part.is_some() {
            assert!(request.msn.is_some());
        }
    }
});
