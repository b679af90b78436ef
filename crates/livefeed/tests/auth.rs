//! Authentication with real clients: ffmpeg publishing and reading over RTSP with and without
//! credentials (Digest, which ffmpeg prefers, and Basic on a server that offers only Basic),
//! curl against LL-HLS, WHEP, the API and its controls with and without Basic/Bearer
//! credentials; wrong credentials are answered late; secrets never reach the logs; a second
//! publisher is refused unless the path allows take-over.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const USERS: &str = r#"
[[users]]
user = "any"
permissions = ["read"]
paths = ["open"]

[[users]]
user = "pub"
pass = "pub-secret-1"
permissions = ["publish"]

[[users]]
user = "viewer"
pass = "viewer-secret-2"
token = "viewer-token-3"
permissions = ["read"]
paths = ["cam", "open"]

[[users]]
user = "admin"
pass = "admin-secret-4"
permissions = ["api", "read"]
"#;

const SECRETS: [&str; 4] = [
    "pub-secret-1",
    "viewer-secret-2",
    "viewer-token-3",
    "admin-secret-4",
];

/// A server whose config file holds [`USERS`] (plus `extra` flags).
fn server_with_users(extra: &[&str]) -> (TestServer, TempDir) {
    let dir = TempDir::new("livefeed-auth");
    let config = dir.0.join("livefeed.toml");
    std::fs::write(&config, USERS).expect("write config");
    let config = config.to_str().expect("utf-8").to_string();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    (TestServer::start_with(&args), dir)
}

/// `rtsp://user:pass@127.0.0.1:PORT/path`.
fn rtsp_as(server: &TestServer, user: &str, pass: &str, path: &str) -> String {
    format!("rtsp://{user}:{pass}@127.0.0.1:{}/{path}", server.port)
}

fn ffprobe(url: &str) -> Output {
    run(
        "ffprobe",
        Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp"])
            .args(["-show_entries", "stream=width", "-of", "csv=p=0", url]),
        Duration::from_secs(20),
    )
}

/// Waits until ffprobe reads a 640-wide stream at `url`.
fn wait_readable(url: &str) {
    retry(Duration::from_secs(20), || {
        let out = ffprobe(url);
        if out.success && out.stdout.trim() == "640" {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
}

fn curl(args: &[&str]) -> (u16, String, Duration) {
    let started = Instant::now();
    let out = run(
        "curl",
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %header{www-authenticate}",
            ])
            .args(["--max-time", "10"])
            .args(args),
        Duration::from_secs(20),
    );
    let text = out.stdout.trim().to_string();
    let (code, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    (
        code.parse().unwrap_or(0),
        rest.to_string(),
        started.elapsed(),
    )
}

fn assert_no_secrets(server: TestServer) {
    let out = server.proc.kill_and_collect();
    for secret in SECRETS {
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "{secret} appears in the server's output"
        );
    }
}

#[test]
fn rtsp_publish_and_read_need_the_right_credentials() {
    let (server, _dir) = server_with_users(&[]);
    // Publishing without credentials, or with a wrong password, fails.
    let anonymous = ffmpeg_publisher(&server.url("cam"), "tcp", 5).wait(Duration::from_secs(30));
    assert!(!anonymous.success, "anonymous publishing must fail");
    assert!(anonymous.stderr.contains("401"), "{}", anonymous.stderr);
    let started = Instant::now();
    let wrong = ffmpeg_publisher(&rtsp_as(&server, "pub", "nope", "cam"), "tcp", 5)
        .wait(Duration::from_secs(30));
    assert!(!wrong.success, "a wrong password must fail");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "wrong credentials are answered late"
    );
    // With the publisher's credentials (Digest: ffmpeg prefers it), publishing works...
    let _publisher = ffmpeg_publisher(&rtsp_as(&server, "pub", "pub-secret-1", "cam"), "tcp", 60);
    wait_readable(&rtsp_as(&server, "viewer", "viewer-secret-2", "cam"));
    // ...and reading needs a reader: none, the publisher (no read right) and a wrong password fail.
    for url in [
        server.url("cam"),
        rtsp_as(&server, "pub", "pub-secret-1", "cam"),
        rtsp_as(&server, "viewer", "wrong", "cam"),
    ] {
        let out = ffprobe(&url);
        assert!(!out.success, "{url} must not read: {}", out.stdout);
    }
    assert_no_secrets(server);
}

/// livefeed's own `publish` and `receive` use the credentials of `rtsp://user:pass@…` URLs, as
/// ffmpeg does: Digest where the server offers it, Basic where it offers only that; a wrong
/// password is still refused.
#[test]
fn livefeeds_own_clients_take_credentials_from_the_url() {
    for methods in ["basic,digest", "basic"] {
        let (server, _dir) = server_with_users(&["--rtsp-auth-methods", methods]);
        let _publisher =
            livefeed_publisher(&rtsp_as(&server, "pub", "pub-secret-1", "cam"), "tcp", &[]);
        wait_readable(&rtsp_as(&server, "viewer", "viewer-secret-2", "cam"));
        let viewer = rtsp_as(&server, "viewer", "viewer-secret-2", "cam");
        let out = livefeed_receiver(&viewer, 3, &[]).wait(Duration::from_secs(30));
        out.assert_success();
        let summary = json_summary(&out.stdout);
        assert!(
            summary["frames_decoded"].as_u64().unwrap_or(0) >= 60,
            "{methods}: {summary}"
        );
        let wrong = rtsp_as(&server, "viewer", "wrong", "cam");
        let out = livefeed_receiver(&wrong, 2, &[]).wait(Duration::from_secs(30));
        assert!(!out.success, "{methods}: a wrong password must fail");
        assert!(out.stderr.contains("401"), "{methods}: {}", out.stderr);
        assert!(
            !out.stderr.contains("viewer:wrong@"),
            "the client never prints a URL's password: {}",
            out.stderr
        );
        assert_no_secrets(server);
    }
}

#[test]
fn rtsp_basic_only_server_takes_ffmpegs_basic_credentials() {
    let (server, _dir) = server_with_users(&["--rtsp-auth-methods", "basic"]);
    let _publisher = ffmpeg_publisher(&rtsp_as(&server, "pub", "pub-secret-1", "cam"), "tcp", 60);
    wait_readable(&rtsp_as(&server, "viewer", "viewer-secret-2", "cam"));
    // The challenge offers Basic only.
    let reply = raw_exchange(
        &server.addr(),
        &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", server.url("cam")),
    );
    assert!(reply.starts_with("RTSP/1.0 401"), "{reply}");
    assert!(
        reply.contains("WWW-Authenticate: Basic realm=\"livefeed\""),
        "{reply}"
    );
    assert!(!reply.contains("Digest"), "{reply}");
    assert_no_secrets(server);
}

#[test]
fn http_readers_and_controls_need_the_right_credentials() {
    let (server, _dir) = server_with_users(&["--test-src", "--test-src-path", "cam"]);
    wait_readable(&rtsp_as(&server, "viewer", "viewer-secret-2", "cam"));
    let http = server.http();
    let playlist = format!("{http}/cam/index.m3u8");
    // LL-HLS: no credentials → 401 with a Basic challenge; Basic and Bearer → 200.
    let (code, challenge, _) = curl(&[&playlist]);
    assert_eq!(code, 401);
    assert!(
        challenge.contains("Basic realm=\"livefeed\""),
        "{challenge}"
    );
    assert_eq!(curl(&["-u", "viewer:viewer-secret-2", &playlist]).0, 200);
    assert_eq!(
        curl(&["-H", "Authorization: Bearer viewer-token-3", &playlist]).0,
        200
    );
    let (code, _, took) = curl(&["-H", "Authorization: Bearer wrong-token", &playlist]);
    assert_eq!(code, 401);
    assert!(
        took >= Duration::from_millis(900),
        "wrong credentials are answered late ({took:?})"
    );
    // A user without a right to the path: 403.
    assert_eq!(curl(&["-u", "pub:pub-secret-1", &playlist]).0, 403);
    // WHEP: the offer is refused before it is read.
    let whep = format!("{http}/cam/whep");
    let (code, _, _) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/sdp",
        "--data",
        "v=0",
        &whep,
    ]);
    assert_eq!(code, 401);
    // The API: reading it needs a user with read on every path; controls need "api".
    let paths = format!("{http}/api/v1/paths");
    assert_eq!(curl(&[&paths]).0, 401);
    assert_eq!(curl(&["-u", "viewer:viewer-secret-2", &paths]).0, 403);
    assert_eq!(curl(&["-u", "admin:admin-secret-4", &paths]).0, 200);
    let source = format!("{http}/api/v1/sources/extra");
    assert_eq!(curl(&["-X", "POST", &source]).0, 401);
    assert_eq!(
        curl(&["-X", "POST", "-u", "viewer:viewer-secret-2", &source]).0,
        403
    );
    assert_eq!(
        curl(&["-X", "POST", "-u", "admin:admin-secret-4", &source]).0,
        201
    );
    assert_eq!(
        curl(&["-X", "DELETE", "-u", "admin:admin-secret-4", &source]).0,
        204
    );
    // The clock and the page's scripts need nothing.
    assert_eq!(curl(&[&format!("{http}/api/v1/time")]).0, 200);
    assert_eq!(curl(&[&format!("{http}/static/livefeed.js")]).0, 200);
    assert_no_secrets(server);
}

#[test]
fn without_users_the_api_controls_answer_loopback_only_and_reading_is_open() {
    // Loopback is all a test can reach, so this checks the open defaults from loopback; the
    // refusal of other addresses is covered by livefeed-auth's unit tests.
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    let http = server.http();
    assert_eq!(curl(&[&format!("{http}/live/index.m3u8")]).0, 200);
    assert_eq!(curl(&[&format!("{http}/api/v1/paths")]).0, 200);
    assert_eq!(
        curl(&["-X", "POST", &format!("{http}/api/v1/sources/x")]).0,
        201
    );
    // A page from another site (its browser on this machine) cannot drive the controls.
    let evil = ["-X", "DELETE", "-H", "Origin: http://evil.example"];
    let target = format!("{http}/api/v1/sources/x");
    assert_eq!(curl(&[&evil[..], &[target.as_str()][..]].concat()).0, 403);
    let own = format!("Origin: {http}");
    assert_eq!(curl(&["-X", "DELETE", "-H", &own, &target]).0, 204);
}

#[test]
fn a_second_publisher_is_refused_unless_the_path_allows_takeover() {
    let server = TestServer::start_with(&["--takeover-path", "shared"]);
    let first = livefeed_publisher(&server.url("busy"), "tcp", &["--duration", "60"]);
    wait_for_stream(&server.addr(), "busy");
    let second = livefeed_publisher(&server.url("busy"), "tcp", &["--duration", "5"])
        .wait(Duration::from_secs(30));
    assert!(
        !second.success,
        "a second publisher on a busy path is refused"
    );
    assert!(
        second.stderr.contains("403") || second.stderr.contains("already has a publisher"),
        "{}",
        second.stderr
    );
    drop(first);

    let old = livefeed_publisher(&server.url("shared"), "tcp", &["--duration", "60"]);
    wait_for_stream(&server.addr(), "shared");
    let publisher_remote = || {
        let r = http_get(
            server.http_port,
            "/api/v1/paths/shared",
            Duration::from_secs(5),
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["publisher"]["remote"].as_str().map(str::to_string)
    };
    let first_remote = retry(Duration::from_secs(10), || {
        publisher_remote().ok_or_else(|| "no publisher yet".to_string())
    });
    let new = livefeed_publisher(&server.url("shared"), "tcp", &["--duration", "60"]);
    // The old publisher is dropped (its connection closed), the new one publishes.
    let old = old.wait(Duration::from_secs(30));
    assert!(!old.timed_out, "the replaced publisher ends");
    assert!(
        !old.success,
        "the replaced publisher sees its connection closed: {}",
        old.stderr
    );
    // The path is now the new publisher's (another connection, another port).
    let now = retry(Duration::from_secs(10), || match publisher_remote() {
        Some(r) if r != first_remote => Ok(r),
        other => Err(format!("publisher {other:?}")),
    });
    assert_ne!(now, first_remote);
    drop(new);
}

#[test]
fn every_wrong_attempt_is_answered_late() {
    let (server, _dir) = server_with_users(&[]);
    let url = server.url("cam");
    let mut c = Raw::connect(&server);
    // Three wrong passwords in a row on one connection: each answer takes a second.
    for (i, pass) in ["a", "b", "c"].into_iter().enumerate() {
        let basic = base64_basic("viewer", pass);
        let started = std::time::Instant::now();
        c.send(
            format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: {i}\r\nAuthorization: {basic}\r\n\r\n")
                .as_bytes(),
        );
        let (status, _) = c.response(Duration::from_secs(5)).expect("an answer");
        assert_eq!(status, 401);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "attempt {i} answered after {:?}",
            started.elapsed()
        );
    }
    // Asking without credentials (the usual first step) is not delayed.
    let started = std::time::Instant::now();
    c.send(format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 9\r\n\r\n").as_bytes());
    let (status, _) = c.response(Duration::from_secs(5)).expect("an answer");
    assert_eq!(status, 401);
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// `Basic base64(user:pass)`.
fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {encoded}")
}

/// A Digest `Authorization` header that worked on one RTSP connection is refused on another
/// (a captured header cannot be replayed), and an address that keeps guessing is refused
/// unchecked — even with the right password — while another address and a streaming reader
/// are untouched.
#[test]
fn digest_replays_and_guessing_are_refused_and_others_stream_on() {
    use livefeed_rtsp::client_auth::{Authorizer, Credentials};
    let (server, _dir) = server_with_users(&[]);
    let _publisher = ffmpeg_publisher(&rtsp_as(&server, "pub", "pub-secret-1", "cam"), "tcp", 60);
    wait_readable(&rtsp_as(&server, "viewer", "viewer-secret-2", "cam"));
    let url = server.url("cam");
    let describe = |conn: &mut Raw, cseq: u32, auth: &str| {
        conn.request(&format!(
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{auth}\r\n"
        ))
    };
    // Connection A: challenge, then the answer.
    let mut a = Raw::connect_from(&server, [127, 0, 0, 4]);
    let (status, head) = describe(&mut a, 1, "");
    assert_eq!(status, 401, "{head}");
    let challenges: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    let credentials = Credentials {
        user: "viewer".into(),
        pass: "viewer-secret-2".into(),
    };
    let mut authorizer = Authorizer::from_challenges(credentials, challenges).expect("digest");
    let header = format!(
        "Authorization: {}\r\n",
        authorizer.authorization("DESCRIBE", &url)
    );
    assert!(header.contains("Digest"), "{header}");
    assert_eq!(
        describe(&mut a, 2, &header).0,
        200,
        "the right answer on its connection"
    );
    // Connection B replays it.
    let mut b = Raw::connect_from(&server, [127, 0, 0, 4]);
    let (status, head) = describe(&mut b, 1, &header);
    assert_eq!(status, 401, "a replay from another connection: {head}");
    // Guessing from 127.0.0.5: ten wrong passwords at once (each answered a second late)...
    let addr = server.addr();
    std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..10)
            .map(|i| {
                let (addr, url) = (&addr, &url);
                scope.spawn(move || {
                    let mut conn = Raw::connect_to_from(addr, [127, 0, 0, 5]);
                    let basic = base64_basic("viewer", &format!("guess-{i}"));
                    conn.request(&format!(
                        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {basic}\r\n\r\n"
                    ))
                    .0
                })
            })
            .collect();
        for g in guesses {
            assert_eq!(g.join().expect("guess"), 401);
        }
    });
    // ...then the right one from the same address is refused unchecked; from another it works.
    let right = format!(
        "Authorization: {}\r\n",
        base64_basic("viewer", "viewer-secret-2")
    );
    let mut blocked = Raw::connect_from(&server, [127, 0, 0, 5]);
    assert_eq!(
        describe(&mut blocked, 1, &right).0,
        401,
        "blocked after 10 failures"
    );
    let mut other = Raw::connect_from(&server, [127, 0, 0, 6]);
    let (status, head) = describe(&mut other, 1, &right);
    assert_eq!(status, 200, "another address is not blocked: {head}");
    let viewer = rtsp_as(&server, "viewer", "viewer-secret-2", "cam");
    let out = livefeed_receiver(&viewer, 3, &[]).wait(Duration::from_secs(30));
    out.assert_success();
    assert!(
        json_summary(&out.stdout)["frames_decoded"]
            .as_u64()
            .unwrap_or(0)
            >= 60
    );
    let log = server.proc.kill_and_collect().stderr;
    assert!(log.contains("refused unchecked"), "{log}");
    assert!(log.contains("another connection"), "{log}");
}
