//! `Authorization` header values (Basic, Bearer, Digest): parsing never panics, and whatever is
//! accepted is consistent: a header over the length limit is never accepted, Digest always
//! carries its required fields, and a full check against configured users never panics either.
//!
//! Shared by the `auth_header` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_auth::{
    parse_authorization, Action, AuthRequest, Authenticator, Credentials, OpenDefaults, Permission,
    UserConfig,
};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    if let Ok(credentials) = parse_authorization(&value) {
        assert!(value.len() <= 4096);
        if let Credentials::Digest(d) = &credentials {
            assert!(!d.username.is_empty() && !d.nonce.is_empty());
            assert!(!d.uri.is_empty() && !d.response.is_empty());
        }
    }
    let auth = Authenticator::new(
        vec![UserConfig {
            user: "cam".into(),
            pass: Some("secret".into()),
            token: Some("token".into()),
            permissions: vec![Permission::Read],
            ..Default::default()
        }],
        OpenDefaults::default(),
    );
    let _ = auth.check(&AuthRequest {
        action: Action::Read,
        path: "cam",
        ip: std::net::Ipv4Addr::LOCALHOST.into(),
        connection: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))),
        authorization: Some(&value),
        method: "DESCRIBE",
        uri: "rtsp://127.0.0.1:8554/cam",
        now_secs: 1_800_000_000,
    });
}
