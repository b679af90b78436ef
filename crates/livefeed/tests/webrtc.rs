//! WHEP and WHIP endpoint behaviour against a running server: bad offers and unknown sessions get a
//! clear 4xx, and nothing else is disturbed. (Real viewers are in browser.rs.)

mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

const AUDIO_ONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

const VP8_ONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";

const H264_SENDONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// One request and what must come back: method, target, Content-Type, body, status, a word
/// the reason must contain.
struct Case(
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn bad_whep_requests_get_a_clear_4xx_and_others_stream_on() {
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    let mut receiver = livefeed();
    receiver.args([
        "receive",
        "--url",
        &server.url("live"),
        "--duration",
        "5",
        "--json",
    ]);
    let receiver = Proc::spawn("livefeed receive", &mut receiver);
    let sdp = Some("application/sdp");
    let oversized = format!("v=0\r\n{}", "a=x-padding:0123456789\r\n".repeat(5000));
    let cases = vec![
        Case(
            "POST",
            "/live/whep",
            Some("text/plain"),
            b"v=0\r\n".to_vec(),
            415,
            "application/sdp",
        ),
        Case(
            "POST",
            "/live/whep",
            None,
            b"v=0\r\n".to_vec(),
            415,
            "application/sdp",
        ),
        Case(
            "POST",
            "/live/whep",
            sdp,
            b"hello, not SDP".to_vec(),
            400,
            "",
        ),
        Case("POST", "/live/whep", sdp, vec![0xff, 0xfe, 0x00], 400, ""),
        Case("POST", "/live/whep", sdp, oversized.into_bytes(), 413, ""),
        Case(
            "POST",
            "/live/whep",
            sdp,
            AUDIO_ONLY.as_bytes().to_vec(),
            400,
            "video",
        ),
        Case(
            "POST",
            "/live/whep",
            sdp,
            VP8_ONLY.as_bytes().to_vec(),
            406,
            "H.264",
        ),
        Case(
            "POST",
            "/nothing-here/whep",
            sdp,
            VP8_ONLY.as_bytes().to_vec(),
            404,
            "",
        ),
        Case(
            "POST",
            "/../whep",
            sdp,
            VP8_ONLY.as_bytes().to_vec(),
            400,
            "",
        ),
        Case(
            "DELETE",
            "/live/whep/0123abcd",
            None,
            Vec::new(),
            404,
            "no WHEP session",
        ),
        Case("DELETE", "/live/whep/not-an-id", None, Vec::new(), 404, ""),
        Case("DELETE", "/live/whep", None, Vec::new(), 405, ""),
        // WHIP: the same checks, and a publisher's own (on a free path; `live` is busy).
        Case(
            "POST",
            "/cam/whip",
            Some("text/plain"),
            b"v=0\r\n".to_vec(),
            415,
            "WHIP offer",
        ),
        Case(
            "POST",
            "/cam/whip",
            sdp,
            VP8_ONLY.as_bytes().to_vec(),
            400,
            "sendonly",
        ),
        Case(
            "POST",
            "/cam/whip",
            sdp,
            VP8_ONLY.replace("recvonly", "sendonly").into_bytes(),
            406,
            "H.264",
        ),
        Case(
            "POST",
            "/live/whip",
            sdp,
            H264_SENDONLY.as_bytes().to_vec(),
            409,
            "already has a publisher",
        ),
        Case(
            "DELETE",
            "/live/whip/0123abcd",
            None,
            Vec::new(),
            404,
            "no WHIP session",
        ),
        Case(
            "PATCH",
            "/live/whep/0123abcd",
            Some("application/trickle-ice-sdpfrag"),
            b"a=end-of-candidates\r\n".to_vec(),
            405,
            "trickle",
        ),
    ];
    for Case(method, target, content_type, body, status, reason) in cases {
        let r = http_request(server.http_port, method, target, content_type, &body, WAIT);
        assert_eq!(r.status, status, "{method} {target}: {}", r.text());
        assert!(
            r.text().contains(reason),
            "{method} {target}: the reason names the problem: {}",
            r.text()
        );
    }
    let out = receiver.wait(Duration::from_secs(40));
    out.assert_success();
    let summary = json_summary(&out.stdout);
    assert!(
        summary["frames_decoded"].as_u64().unwrap_or(0) >= 120,
        "{summary}"
    );
    assert_eq!(summary["lost"], 0, "{summary}");
}

/// `--webrtc-additional-host` takes addresses and host names: the answer's candidates carry the
/// address, and the name resolved when the offer arrived (`localhost`: a loopback address).
#[test]
fn additional_hosts_may_be_addresses_or_names() {
    let server = TestServer::start_with(&[
        "--test-src",
        "--webrtc-additional-host",
        "203.0.113.9",
        "--webrtc-additional-host",
        "localhost",
    ]);
    wait_for_stream(&server.addr(), "live");
    let r = post_offer(&server);
    assert_eq!(r.status, 201, "{}", r.text());
    let answer = r.text();
    let hosts: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    assert!(hosts.contains(&"203.0.113.9"), "{answer}");
    assert!(hosts.contains(&"127.0.0.1"), "{answer}");

    let mut bad = livefeed();
    bad.args(["serve", "--webrtc-additional-host", "not a host"]);
    let refused = run("livefeed serve", &mut bad, WAIT);
    assert!(!refused.success && !refused.timed_out);
    assert!(
        refused
            .stderr
            .contains("neither an IP address nor a host name"),
        "{}",
        refused.stderr
    );
}

/// `--webrtc-ice-server`s are announced as `Link` headers (RFC 9725) on a plain `OPTIONS` of
/// the WHEP endpoint and on the `201` answer; a browser's CORS preflight is still answered as
/// one.
#[test]
fn ice_servers_are_announced_in_link_headers_and_preflights_still_pass() {
    let server = TestServer::start_with(&[
        "--test-src",
        "--webrtc-ice-server",
        "stun:stun.example.net:3478",
        "--webrtc-ice-server",
        "turn:viewer:secret@turn.example.net?transport=tcp",
    ]);
    wait_for_stream(&server.addr(), "live");
    let stun = "<stun:stun.example.net:3478>; rel=\"ice-server\"";
    let turn = "<turn:turn.example.net?transport=tcp>; rel=\"ice-server\"; username=\"viewer\"; \
                credential=\"secret\"; credential-type=\"password\"";

    let plain = http_request(server.http_port, "OPTIONS", "/live/whep", None, b"", WAIT);
    assert_eq!(plain.status, 204, "{}", plain.head);
    assert!(
        plain.head.contains(&format!("link: {stun}")),
        "{}",
        plain.head
    );
    assert!(
        plain.head.contains(&format!("link: {turn}")),
        "{}",
        plain.head
    );
    assert_eq!(plain.header("allow").as_deref(), Some("POST, OPTIONS"));

    let answer = post_offer(&server);
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert!(
        answer.head.contains(&format!("link: {turn}")),
        "{}",
        answer.head
    );

    let mut preflight = std::net::TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    preflight.set_read_timeout(Some(WAIT)).unwrap();
    std::io::Write::write_all(
        &mut preflight,
        b"OPTIONS /live/whep HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://example.org\r\n\
          Access-Control-Request-Method: POST\r\n\
          Access-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut head = String::new();
    let _ = std::io::Read::read_to_string(&mut preflight, &mut head);
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("access-control-allow-methods: *"), "{head}");
    assert!(
        head.contains("access-control-expose-headers: location, link"),
        "{head}"
    );
}

/// ICE-TCP: the answer carries a passive TCP candidate beside each UDP one, and a connection
/// to it that does not speak ICE-TCP for a session (a zero-length frame, a packet no session
/// accepts) is closed, with a log line naming the peer, while the server goes on answering.
#[test]
fn ice_tcp_candidates_are_offered_and_strangers_are_closed() {
    let server = TestServer::start_with(&["--test-src", "--max-connections-per-address", "16"]);
    wait_for_stream(&server.addr(), "live");
    let post = || post_offer(&server);
    let answer = post();
    assert_eq!(answer.status, 201, "{}", answer.text());
    let answer = answer.text();
    let tcp: Vec<&str> = answer
        .lines()
        .filter(|l| {
            l.starts_with("a=candidate:") && l.contains(" tcp ") && l.contains("tcptype passive")
        })
        .collect();
    assert_eq!(tcp.len(), 1, "{answer}");
    let port: u16 = tcp[0]
        .split(' ')
        .nth(5)
        .and_then(|p| p.parse().ok())
        .expect("a port");

    for (case, bytes) in [
        ("zero-length frame", &[0u8, 0][..]),
        ("stranger", &[0, 3, 1, 2, 3][..]),
    ] {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        std::io::Write::write_all(&mut conn, bytes).expect("write");
        let mut rest = Vec::new();
        let read = std::io::Read::read_to_end(&mut conn, &mut rest);
        assert!(
            read.is_ok() && rest.is_empty(),
            "{case}: closed, not answered: {read:?}"
        );
    }
    retry(WAIT, || {
        let log = server.proc.stderr_so_far();
        let named = |cause: &str| {
            log.lines()
                .any(|l| l.contains(cause) && l.contains("peer=127.0.0.1:"))
        };
        if named("ICE-TCP connection closed: bad framing")
            && named("ICE-TCP connection closed: for no WebRTC session")
        {
            Ok(())
        } else {
            Err(log)
        }
    });
    // One address may hold 16 connections at once (here); the 17th is closed at once.
    let held: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    retry(WAIT, || {
        let mut extra =
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut extra, &mut byte) {
            Ok(0) => Ok(()),
            other => Err(format!("the 17th connection stayed open: {other:?}")),
        }
    });
    // The log is written asynchronously: wait for the line.
    retry(WAIT, || {
        let log = server.proc.stderr_so_far();
        let named = log.lines().any(|l| {
            l.contains("connections refused")
                && l.contains("webrtc-tcp")
                && l.contains("16 connections from this address")
        });
        if named {
            Ok(())
        } else {
            Err(log)
        }
    });
    drop(held);
    assert_eq!(post().status, 201, "the server answers on");
}

/// POSTs a Chrome-shaped WHEP offer to `/live/whep`.
fn post_offer(server: &TestServer) -> HttpResponse {
    let offer = include_str!("../../livefeed-webrtc/tests/data/chrome_style_whep_offer.sdp");
    http_request(
        server.http_port,
        "POST",
        "/live/whep",
        Some("application/sdp"),
        offer.as_bytes(),
        WAIT,
    )
}

/// `livefeed publish` as a WHIP client (str0m, send-only H.264 and the Opus tone), to one
/// server over WHIP and, with `--also-url`, the same frames to a second server over RTSP: the
/// WHIP path is read over RTSP with both tracks, the receiver finds the publisher's capture
/// stamps on every frame (0 mismatches) and a plausible capture→received latency, and the API
/// names the publisher `webrtc`. When the WHIP server goes away, the publisher notices (5 s
/// without a datagram from it) and ends with an error rather than publishing into nothing.
#[test]
fn livefeed_publishes_over_whip_and_the_stream_keeps_its_capture_stamps() {
    let server = TestServer::start();
    let second = TestServer::start();
    let whip = format!("{}/live/whip-cam/whip", server.http());
    let rtsp = second.url("live/rtsp-cam");
    let publisher = livefeed_publisher(
        &whip,
        "tcp",
        &["--also-url", &rtsp, "--audio", "tone", "--duration", "60"],
    );
    wait_for_stream(&server.addr(), "live/whip-cam");
    wait_for_stream(&second.addr(), "live/rtsp-cam");
    let paths = http_get(server.http_port, "/api/v1/paths/live/whip-cam", WAIT);
    let json: serde_json::Value = serde_json::from_slice(&paths.body).expect("JSON");
    assert_eq!(json["publisher"]["protocol"], "webrtc", "{json}");
    let codecs: Vec<&str> = json["tracks"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["codec"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(codecs, ["h264", "opus"], "the tracks: {json}");

    let out = livefeed_receiver(&server.url("live/whip-cam"), 5, &[]).wait(Duration::from_secs(40));
    out.assert_success();
    let summary = json_summary(&out.stdout);
    assert_eq!(summary["mismatches"], 0, "{summary}");
    assert!(summary["frames_decoded"].as_u64() >= Some(100), "{summary}");
    let p50 = summary["stages"]["capture_to_received"]["p50"]
        .as_f64()
        .unwrap_or_else(|| panic!("no capture→received (capture stamps lost?): {summary}"));
    eprintln!("over WHIP, capture→received p50 {p50:.2} ms");
    assert!(p50 > 0.0 && p50 < 1000.0, "{summary}");

    drop(server); // killed: no DTLS close, no DELETE
    let killed = std::time::Instant::now();
    let ended = publisher.wait(Duration::from_secs(30));
    eprintln!(
        "the publisher ended {:?} after the WHIP server",
        killed.elapsed()
    );
    assert!(
        !ended.timed_out && killed.elapsed() < Duration::from_secs(20),
        "the publisher went on: {}",
        ended.stderr
    );
    assert!(!ended.success, "{}", ended.stderr);
    assert!(
        ended.stderr.contains("WebRTC connection"),
        "{}",
        ended.stderr
    );
}
