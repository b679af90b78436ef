//! WHIP offers (the body of `POST PATH/whip`, from any publisher): answering never panics; an
//! accepted offer's answer gives every m-line a format, has candidates, and only receives
//! (no section of it sends).
//!
//! Shared by the `whip_offer` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use std::net::SocketAddr;
use std::time::Instant;

use livefeed_webrtc::{WhipConfig, WhipSession};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let server: SocketAddr = ([127, 0, 0, 1], 8189).into();
    let Ok((_session, answer)) = WhipSession::accept_offer(
        &WhipConfig::default(),
        offer,
        &[server],
        &[],
        Instant::now(),
    ) else {
        return;
    };
    for line in answer.lines() {
        if line.starts_with("m=") {
            assert!(
                line.split_ascii_whitespace().count() > 3,
                "m-line without a format: {line}"
            );
        }
        let line = line.trim_end();
        assert!(
            line != "a=sendonly" && line != "a=sendrecv",
            "a WHIP answer only receives: {line}\n{answer}"
        );
    }
    assert!(
        answer.contains("a=candidate:"),
        "an accepted offer's answer has candidates"
    );
}
