//! WHEP offers (the body of `POST PATH/whep`, from any viewer): answering never panics; an
//! accepted offer's answer gives every m-line a format, keeps the ICE candidates out of
//! rejected sections when another can carry them, and answers `rrtr` feedback only for payload
//! types the offer gave it.
//!
//! Shared by the `whep_offer` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use std::net::SocketAddr;
use std::time::Instant;

use livefeed_webrtc::WhepSession;

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let server: SocketAddr = ([127, 0, 0, 1], 8189).into();
    let Ok((_session, answer)) = WhepSession::accept_offer(offer, &[server], Instant::now()) else {
        return;
    };
    let offered_rrtr: Vec<&str> = offer
        .lines()
        .filter_map(|l| {
            l.trim_end()
                .strip_prefix("a=rtcp-fb:")?
                .strip_suffix(" rrtr")
        })
        .collect();
    for line in answer.lines() {
        if line.starts_with("m=") {
            assert!(
                line.split_ascii_whitespace().count() > 3,
                "m-line without a format: {line}"
            );
        }
        if let Some(pt) = line
            .strip_prefix("a=rtcp-fb:")
            .and_then(|f| f.strip_suffix(" rrtr"))
        {
            assert!(
                offered_rrtr.contains(&pt),
                "rrtr answered for {pt}, not offered\n{answer}"
            );
        }
    }
    assert!(
        answer.contains("a=candidate:"),
        "an accepted offer's answer has candidates"
    );
}
