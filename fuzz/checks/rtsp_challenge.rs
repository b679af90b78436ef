//! `WWW-Authenticate` challenges as an RTSP server (a camera) sends them, answered by livefeed's
//! client: parsing never panics, a Digest challenge is only taken with a realm and a nonce,
//! and the answer to any accepted challenge is well formed for both schemes.
//!
//! Shared by the `rtsp_challenge` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`). Input: one challenge per line.

use livefeed_rtsp::client_auth::{parse_challenges, Authorizer, Challenge, Credentials};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let challenges: Vec<&str> = text.lines().collect();
    let parsed = parse_challenges(challenges.iter().copied());
    if let Some(Challenge::Digest { .. }) = &parsed {
        // Both keys are required: a Digest is never taken without them.
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("realm") && lower.contains("nonce"),
            "{text:?}"
        );
        assert!(challenges
            .iter()
            .any(|c| c.trim_start().to_ascii_lowercase().starts_with("digest")));
    }
    let credentials = Credentials {
        user: "cam\"\\us\rer".into(),
        pass: "p:a\"ss".into(),
    };
    let authorizer = Authorizer::from_challenges(credentials, challenges.iter().copied());
    assert_eq!(authorizer.is_some(), parsed.is_some());
    if let Some(mut a) = authorizer {
        let value = a.authorization("DESCRIBE", "rtsp://127.0.0.1:8554/cam");
        assert!(value.starts_with("Basic ") || value.starts_with("Digest username=\""));
        assert!(!value.chars().any(char::is_control), "{value:?}");
    }
}
