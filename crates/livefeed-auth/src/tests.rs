use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;

use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LAN: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
const FAR: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

fn users(toml_text: &str) -> Vec<UserConfig> {
    #[derive(serde::Deserialize)]
    struct File {
        users: Vec<UserConfig>,
    }
    let file: File = toml::from_str(toml_text).expect("valid users");
    for u in &file.users {
        u.check().expect("valid user");
    }
    file.users
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn req<'a>(action: Action, path: &'a str, ip: IpAddr, auth: Option<&'a str>) -> AuthRequest<'a> {
    AuthRequest {
        action,
        path,
        ip,
        connection: None,
        authorization: auth,
        method: "DESCRIBE",
        uri: "rtsp://127.0.0.1:8554/cam",
        now_secs: 10_000,
    }
}

fn allowed(d: &Decision) -> bool {
    matches!(d, Decision::Allowed { .. })
}

#[test]
fn without_users_reading_is_open_and_publishing_and_controls_are_loopback_only() {
    let open = Authenticator::new(vec![], OpenDefaults::default());
    assert!(allowed(&open.check(&req(Action::Read, "cam", FAR, None))));
    assert!(allowed(&open.check(&req(
        Action::Publish,
        "cam",
        LOOPBACK,
        None
    ))));
    assert!(matches!(
        open.check(&req(Action::Publish, "cam", LAN, None)),
        Decision::Forbidden { .. }
    ));
    assert!(matches!(
        open.check(&req(Action::Api, "", LAN, None)),
        Decision::Forbidden { .. }
    ));
    let remote = Authenticator::new(
        vec![],
        OpenDefaults {
            allow_remote_publish: true,
        },
    );
    assert!(allowed(&remote.check(&req(
        Action::Publish,
        "cam",
        LAN,
        None
    ))));
}

const CONFIG: &str = r#"
[[users]]
user = "any"
permissions = ["read"]
paths = ["public/*"]

[[users]]
user = "cam"
pass = "s3cret"
token = "tok-123"
permissions = ["publish", "read"]
paths = ["cam/*"]

[[users]]
user = "admin"
pass = "adm"
permissions = ["api", "read"]
ips = ["192.168.1.0/24", "127.0.0.1/32"]
"#;

#[test]
fn users_grant_what_they_list() {
    let auth = Authenticator::new(users(CONFIG), OpenDefaults::default());
    // Anonymous read where "any" allows it; elsewhere credentials are needed.
    assert!(allowed(&auth.check(&req(
        Action::Read,
        "public/x",
        FAR,
        None
    ))));
    assert_eq!(
        auth.check(&req(Action::Read, "cam/1", FAR, None)),
        Decision::Unauthorized {
            reason: "credentials required".into(),
            credentials_given: false
        }
    );
    let good = basic("cam", "s3cret");
    assert!(allowed(&auth.check(&req(
        Action::Publish,
        "cam/1",
        FAR,
        Some(&good)
    ))));
    assert!(allowed(&auth.check(&req(
        Action::Read,
        "cam",
        FAR,
        Some("Bearer tok-123")
    ))));
    // Wrong password, wrong token: unauthorized, to be delayed.
    for bad in [
        basic("cam", "nope"),
        basic("nobody", "s3cret"),
        "Bearer tok-124".to_string(),
    ] {
        assert!(
            matches!(
                auth.check(&req(Action::Publish, "cam/1", FAR, Some(&bad))),
                Decision::Unauthorized {
                    credentials_given: true,
                    ..
                }
            ),
            "{bad}"
        );
    }
    // Right user, wrong path or permission: forbidden.
    assert!(matches!(
        auth.check(&req(Action::Publish, "other", FAR, Some(&good))),
        Decision::Forbidden { .. }
    ));
    assert!(matches!(
        auth.check(&req(Action::Api, "", LOOPBACK, Some(&good))),
        Decision::Forbidden { .. }
    ));
    // IP allow-list.
    let admin = basic("admin", "adm");
    assert!(allowed(&auth.check(&req(
        Action::Api,
        "",
        LAN,
        Some(&admin)
    ))));
    assert!(matches!(
        auth.check(&req(Action::Api, "", FAR, Some(&admin))),
        Decision::Forbidden { .. }
    ));
    // Garbage headers are unauthorized, never a panic.
    assert!(matches!(
        auth.check(&req(Action::Read, "cam", FAR, Some("Digest ==="))),
        Decision::Unauthorized { .. }
    ));
}

fn digest_header(
    auth: &Authenticator,
    user: &str,
    pass: &str,
    uri: &str,
    realm: &str,
    now: u64,
) -> String {
    let challenge = &auth.challenges(now, true)[0];
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("nonce in challenge")
        .to_string();
    let fields = DigestFields {
        username: user.into(),
        realm: realm.into(),
        nonce: nonce.clone(),
        uri: uri.into(),
        ..Default::default()
    };
    let response = digest::expected_response(&fields, pass, "DESCRIBE");
    format!(
        r#"Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}""#
    )
}

#[test]
fn digest_checks_realm_nonce_uri_and_response() {
    let auth = Authenticator::new(users(CONFIG), OpenDefaults::default());
    let uri = "rtsp://127.0.0.1:8554/cam";
    let ok = digest_header(&auth, "cam", "s3cret", uri, REALM, 10_000);
    assert!(allowed(&auth.check(&req(
        Action::Read,
        "cam",
        FAR,
        Some(&ok)
    ))));
    for (why, bad) in [
        (
            "wrong password",
            digest_header(&auth, "cam", "x", uri, REALM, 10_000),
        ),
        (
            "wrong realm",
            digest_header(&auth, "cam", "s3cret", uri, "other", 10_000),
        ),
        (
            "wrong uri",
            digest_header(
                &auth,
                "cam",
                "s3cret",
                "rtsp://127.0.0.1:8554/x",
                REALM,
                10_000,
            ),
        ),
        (
            "expired nonce",
            digest_header(
                &auth,
                "cam",
                "s3cret",
                uri,
                REALM,
                10_000 - NONCE_LIFETIME_SECS - 1,
            ),
        ),
        ("foreign nonce", {
            let other = Authenticator::new(users(CONFIG), OpenDefaults::default());
            digest_header(&other, "cam", "s3cret", uri, REALM, 10_000)
        }),
    ] {
        assert!(
            matches!(
                auth.check(&req(Action::Read, "cam", FAR, Some(&bad))),
                Decision::Unauthorized { .. }
            ),
            "{why}"
        );
    }
}

#[test]
fn bad_user_entries_are_refused() {
    for bad in [
        UserConfig {
            user: "x".into(),
            permissions: vec![Permission::Read],
            ..Default::default()
        },
        UserConfig {
            user: "any".into(),
            pass: Some("p".into()),
            permissions: vec![Permission::Read],
            ..Default::default()
        },
        UserConfig {
            user: "x".into(),
            pass: Some("p".into()),
            ..Default::default()
        },
        UserConfig {
            user: "a:b".into(),
            pass: Some("p".into()),
            permissions: vec![Permission::Read],
            ..Default::default()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
}

/// A Digest header captured on one RTSP connection is refused on another, and an address that
/// keeps failing is refused unchecked — even the right password — until its window passes.
#[test]
fn digest_replays_and_repeated_failures_are_refused() {
    let auth = Authenticator::new(users(CONFIG), OpenDefaults::default());
    let uri = "rtsp://127.0.0.1:8554/cam";
    let header = digest_header(&auth, "cam", "s3cret", uri, REALM, 10_000);
    let on = |port: u16, header: &str| {
        let mut r = req(Action::Read, "cam", FAR, Some(header));
        r.connection = Some(std::net::SocketAddr::new(FAR, port));
        auth.check(&r)
    };
    assert!(allowed(&on(5000, &header)));
    assert!(
        allowed(&on(5000, &header)),
        "the same connection reuses its nonce"
    );
    let replay = on(6000, &header);
    assert!(
        matches!(&replay, Decision::Unauthorized { reason, .. } if reason.contains("another connection")),
        "{replay:?}"
    );
    // The replay is not a failed attempt (the password was right); ten wrong ones are.
    let wrong = basic("cam", "guess");
    let right = basic("cam", "s3cret");
    assert!(allowed(&auth.check(&req(
        Action::Read,
        "cam",
        FAR,
        Some(&right)
    ))));
    for _ in 0..guard::MAX_FAILURES {
        assert!(!allowed(&auth.check(&req(
            Action::Read,
            "cam",
            FAR,
            Some(&wrong)
        ))));
    }
    let blocked = auth.check(&req(Action::Read, "cam", FAR, Some(&right)));
    assert!(
        matches!(&blocked, Decision::Unauthorized { reason, .. } if reason.contains("refused unchecked")),
        "{blocked:?}"
    );
    let mut later = req(Action::Read, "cam", FAR, Some(&right));
    later.now_secs += guard::FAILURE_WINDOW_SECS;
    assert!(allowed(&auth.check(&later)), "the window passed");
    let elsewhere = req(
        Action::Read,
        "cam",
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(&right),
    );
    assert!(
        allowed(&auth.check(&elsewhere)),
        "other addresses were never blocked"
    );
}
