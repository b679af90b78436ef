//! Bad RTSP input against a real `livefeed serve` (../shared/BAD_INPUTS.md, sections "RTSP
//! messages" and "Interleaved framing and transports"). Each case checks what the offending
//! connection gets (a 4xx/5xx with a reason, or a closed connection); meanwhile a livefeed
//! publisher and receiver stream through the same server, and their run must be clean.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

enum Expect {
    /// This status, then the connection is closed (framing errors desynchronize the stream).
    StatusThenClose(u16),
    /// One of these statuses; the connection may stay open.
    Status(&'static [u16]),
    /// No answer yet (incomplete message): the server waits, bounded by its timeouts.
    NothingYet,
}

fn message_cases(addr: &str) -> Vec<(&'static str, Vec<u8>, Expect)> {
    let url = format!("rtsp://{addr}/live");
    let ok = |extra: &str| format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n{extra}\r\n").into_bytes();
    vec![
        (
            "leading space",
            format!(" OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "leading tab",
            format!("\tOPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "empty method",
            format!(" {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "huge method",
            format!("{} {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n", "A".repeat(5000)).into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "URL over 2 KiB",
            format!(
                "OPTIONS {url}/{} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
                "a".repeat(2100)
            )
            .into_bytes(),
            Expect::StatusThenClose(414),
        ),
        (
            "lowercase version",
            format!("OPTIONS {url} rtsp/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "RTSP/2.0",
            format!("OPTIONS {url} RTSP/2.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(505),
        ),
        (
            "HTTP version",
            format!("OPTIONS {url} HTTP/1.1\r\nCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "bare LF",
            format!("OPTIONS {url} RTSP/1.0\nCSeq: 1\n\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "bare CR",
            format!("OPTIONS {url} RTSP/1.0\rCSeq: 1\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "NUL byte",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-A: a\0b\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "CRLF injection in a value",
            ok("X-A: a\rInjected: yes\r\n"),
            Expect::StatusThenClose(400),
        ),
        (
            "negative Content-Length",
            ok("Content-Length: -5\r\n"),
            Expect::StatusThenClose(400),
        ),
        (
            "non-numeric Content-Length",
            ok("Content-Length: ten\r\n"),
            Expect::StatusThenClose(400),
        ),
        (
            "duplicated Content-Length",
            ok("Content-Length: 0\r\nContent-Length: 0\r\n"),
            Expect::StatusThenClose(400),
        ),
        (
            "Content-Length over the body limit",
            ok("Content-Length: 200000\r\n"),
            Expect::StatusThenClose(413),
        ),
        (
            "Content-Length 2^63",
            ok("Content-Length: 9223372036854775808\r\n"),
            Expect::StatusThenClose(413),
        ),
        (
            "Content-Length longer than what follows",
            {
                let mut m = ok("Content-Length: 100\r\n");
                m.extend_from_slice(b"only ten..");
                m
            },
            Expect::NothingYet,
        ),
        (
            "body on a bodyless method",
            {
                let mut m = ok("Content-Length: 5\r\n");
                m.extend_from_slice(b"hello");
                m
            },
            Expect::Status(&[400]),
        ),
        (
            "hundreds of headers",
            ok(&"X-H: v\r\n".repeat(300)),
            Expect::StatusThenClose(400),
        ),
        (
            "over-long header value",
            ok(&format!("X-Long: {}\r\n", "v".repeat(10_000))),
            Expect::StatusThenClose(400),
        ),
        (
            "over-long header name",
            ok(&format!("{}: v\r\n", "K".repeat(10_000))),
            Expect::StatusThenClose(400),
        ),
        (
            "missing CSeq",
            format!("OPTIONS {url} RTSP/1.0\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "huge CSeq",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 99999999999999999999999\r\n\r\n").into_bytes(),
            Expect::StatusThenClose(400),
        ),
        (
            "huge Session id",
            ok(&format!("Session: {}\r\n", "s".repeat(6000))),
            Expect::Status(&[400, 454]),
        ),
        (
            "$ frame in the middle of a header",
            ok("$\x01\x00\x02ab\r\n"),
            Expect::StatusThenClose(400),
        ),
    ]
}

fn status_line_of(resp: &(u16, String)) -> String {
    resp.1.lines().next().unwrap_or("").to_string()
}

#[test]
fn malformed_messages_get_a_clear_error_and_other_clients_stream_on() {
    let streaming = Streaming::start(8);
    let addr = streaming.server.addr();
    for (name, bytes, expect) in message_cases(&addr) {
        let mut conn = Raw::connect(&streaming.server);
        conn.send(&bytes);
        match expect {
            Expect::StatusThenClose(status) => {
                let resp = conn
                    .response(Duration::from_secs(5))
                    .unwrap_or_else(|| panic!("{name}: no response"));
                assert_eq!(resp.0, status, "{name}: {}", status_line_of(&resp));
                assert!(
                    status_line_of(&resp).len() > 13,
                    "{name}: a reason phrase is given: {}",
                    resp.1
                );
                assert!(
                    conn.closed_within(Duration::from_secs(5)),
                    "{name}: connection left open"
                );
            }
            Expect::Status(allowed) => {
                let resp = conn
                    .response(Duration::from_secs(5))
                    .unwrap_or_else(|| panic!("{name}: no response"));
                assert!(
                    allowed.contains(&resp.0),
                    "{name}: {}",
                    status_line_of(&resp)
                );
            }
            Expect::NothingYet => {
                assert!(
                    conn.response(Duration::from_millis(500)).is_none(),
                    "{name}: answered early"
                );
            }
        }
    }
    let logs = streaming.assert_undisturbed();
    assert!(
        logs.contains("malformed RTSP input"),
        "a log line names the cause:\n{logs}"
    );
    assert!(
        logs.contains("peer=127.0.0.1:"),
        "a log line names the peer:\n{logs}"
    );
}

#[test]
fn same_message_split_at_every_byte_gets_the_same_answer() {
    let server = TestServer::start();
    let addr = server.addr();
    let message =
        format!("OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: 7\r\nUser-Agent: split\r\n\r\n");
    let whole = {
        let mut c = Raw::connect(&server);
        c.request(&message)
    };
    assert_eq!(whole.0, 200);
    // Byte by byte, with a pause so every byte arrives in its own read.
    let mut c = Raw::connect(&server);
    c.stream.set_nodelay(true).expect("nodelay");
    for b in message.as_bytes() {
        c.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(1));
    }
    let split = c.response(Duration::from_secs(5)).expect("answered");
    assert_eq!(split.0, 200);
    assert!(split.1.contains("CSeq: 7"));
}

fn setup_tcp(conn: &mut Raw, url: &str, cseq: u32, extra: &str) -> (u16, String) {
    conn.request(&format!("SETUP {url} RTSP/1.0\r\nCSeq: {cseq}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n{extra}\r\n"))
}

/// ANNOUNCE (H.264, payload type 96), SETUP (TCP interleaved 0-1, record) and RECORD on `conn`;
/// returns the session id.
fn record_tcp(conn: &mut Raw, url: &str) -> String {
    assert_eq!(announce(conn, url).0, 200);
    let resp = conn.request(&format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n"
    ));
    assert_eq!(resp.0, 200, "{}", resp.1);
    let session = session_of(&resp.1);
    let record = format!("RECORD {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n");
    assert_eq!(conn.request(&record).0, 200);
    session
}

#[test]
fn interleaved_framing_and_transport_abuse_is_refused_and_other_clients_stream_on() {
    let streaming = Streaming::start(8);
    let server = &streaming.server;
    let url = server.url("live");

    // `$` frames before any SETUP, on an unknown channel: the connection is closed.
    for channel in [0u8, 5] {
        let mut c = Raw::connect(server);
        c.send(&[b'$', channel, 0, 4, 1, 2, 3, 4]);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "frame on channel {channel} before SETUP"
        );
    }
    // A frame on a channel that was never set up, after SETUP of 0-1.
    let mut c = Raw::connect(server);
    assert_eq!(setup_tcp(&mut c, &url, 1, "").0, 200);
    c.send(&[b'$', 7, 0, 2, 9, 9]);
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "frame on channel 7 was never set up"
    );
    // Length 0xFFFF with a short body: the server waits for the rest (bounded by timeouts).
    let mut c = Raw::connect(server);
    c.send(&[b'$', 0, 0xff, 0xff, 1, 2, 3]);
    assert!(c.response(Duration::from_millis(500)).is_none());

    // Transport headers: odd/non-consecutive channels and ports, port 0, port 65536.
    for (transport, status) in [
        ("RTP/AVP/TCP;unicast;interleaved=1-2", 461),
        ("RTP/AVP/TCP;unicast;interleaved=0-3", 461),
        ("RTP/AVP;unicast;client_port=5001-5002", 461),
        ("RTP/AVP;unicast;client_port=5000-5007", 461),
        ("RTP/AVP;unicast;client_port=0-1", 461),
        ("RTP/AVP;unicast;client_port=65536-65537", 400),
        ("RTP/AVP;multicast;port=5000-5001", 461),
    ] {
        let mut c = Raw::connect(server);
        let resp = c.request(&format!(
            "SETUP {url} RTSP/1.0\r\nCSeq: 1\r\nTransport: {transport}\r\n\r\n"
        ));
        assert_eq!(resp.0, status, "{transport}: {}", status_line_of(&resp));
    }
    // SETUP twice in one session.
    let mut c = Raw::connect(server);
    let first = setup_tcp(&mut c, &url, 1, "");
    let session = session_of(&first.1);
    assert_eq!(
        setup_tcp(&mut c, &url, 2, &format!("Session: {session}\r\n")).0,
        459
    );
    // SETUP across paths: announced `a`, SETUP on `b`.
    let mut c = Raw::connect(server);
    assert_eq!(announce(&mut c, &server.url("across-a")).0, 200);
    let resp = c.request(&format!(
        "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n",
        server.url("across-b")
    ));
    assert_eq!(resp.0, 400, "{}", status_line_of(&resp));
    // PLAY / RECORD without SETUP.
    for method in ["PLAY", "RECORD"] {
        let mut c = Raw::connect(server);
        let resp = c.request(&format!("{method} {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
        assert_eq!(resp.0, 455, "{method} without SETUP");
    }
    // A session id used from another connection, and from another address (127.0.0.2).
    let mut owner = Raw::connect(server);
    let session = session_of(&setup_tcp(&mut owner, &url, 1, "").1);
    for mut thief in [
        Raw::connect(server),
        Raw::connect_from(server, [127, 0, 0, 2]),
    ] {
        let resp = thief.request(&format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: 1\r\nSession: {session}\r\n\r\n"
        ));
        assert_eq!(resp.0, 454);
    }
    // The owner still can.
    let resp = owner.request(&format!(
        "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200);
    // TEARDOWN while data flows: the answer arrives among the interleaved frames.
    let resp = owner.request(&format!(
        "TEARDOWN {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200);
    let resp = owner.request(&format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 4\r\n\r\n"));
    assert_eq!(resp.0, 200, "the connection is usable after TEARDOWN");

    streaming.assert_undisturbed();
}

#[test]
fn a_publisher_flooding_zero_length_frames_is_survived() {
    let streaming = Streaming::start(6);
    let server = &streaming.server;
    let url = server.url("flood");
    let mut c = Raw::connect(server);
    let session = record_tcp(&mut c, &url);
    let flood: Vec<u8> = [b'$', 0, 0, 0].repeat(100_000);
    c.send(&flood);
    // Then 12-byte RTP packets with no payload, and garbage RTP.
    let mut rtp = Vec::new();
    for seq in 0..1000u16 {
        rtp.extend_from_slice(&[b'$', 0, 0, 12, 0x80, 96]);
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&[0; 8]);
        rtp.extend_from_slice(&[b'$', 0, 0, 3, 0x00, 0xff, 0xff]);
    }
    c.send(&rtp);
    let resp = c.request(&format!(
        "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200, "the flooding connection is still served");
    streaming.assert_undisturbed();
}

#[test]
fn rtp_of_an_unannounced_payload_type_and_over_mtu_packets_are_survived() {
    let streaming = Streaming::start(6);
    let server = &streaming.server;
    let url = server.url("odd");
    let mut c = Raw::connect(server);
    let session = record_tcp(&mut c, &url);
    let packet = |pt: u8, seq: u16, payload_len: usize| {
        let len = (12 + payload_len) as u16;
        let mut p = vec![b'$', 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0x80, 0x80 | pt]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x0b, 0xb8, 0x12, 0x34, 0x56, 0x78]);
        p.push(0x41); // a non-IDR slice NAL header
        p.extend(std::iter::repeat_n(0x5a, payload_len - 1));
        p
    };
    // A payload type the SDP never announced (the announce helper uses 96).
    let mut bytes = Vec::new();
    for seq in 0..50 {
        bytes.extend(packet(99, seq, 100));
    }
    // RTP packets far over any MTU (60 000 bytes, as TCP framing allows).
    for seq in 50..60 {
        bytes.extend(packet(96, seq, 60_000));
    }
    c.send(&bytes);
    let resp = c.request(&format!(
        "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200, "the connection is still served");
    let logs = streaming.assert_undisturbed();
    assert!(
        logs.contains("unexpected payload type 99 (announced 96)"),
        "the unannounced payload type is named in the log:\n{logs}"
    );
}

#[test]
fn truncated_parameter_sets_from_a_publisher_are_survived() {
    let streaming = Streaming::start(6);
    let server = &streaming.server;
    let url = server.url("trunc");
    let mut c = Raw::connect(server);
    let session = record_tcp(&mut c, &url);
    // Keyframes whose SPS and PPS are cut short: a 2-byte SPS, a 1-byte PPS, then an IDR slice.
    let nal = |seq: u16, ts: u32, marker: bool, payload: &[u8]| {
        let len = (12 + payload.len()) as u16;
        let mut p = vec![b'$', 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0x80, if marker { 0x80 | 96 } else { 96 }]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        p.extend_from_slice(payload);
        p
    };
    let mut bytes = Vec::new();
    for frame in 0..20u16 {
        let ts = u32::from(frame) * 3000;
        bytes.extend(nal(frame * 3, ts, false, &[0x67, 0x42]));
        bytes.extend(nal(frame * 3 + 1, ts, false, &[0x68]));
        bytes.extend(nal(
            frame * 3 + 2,
            ts,
            true,
            &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff],
        ));
    }
    c.send(&bytes);
    let resp = c.request(&format!(
        "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200, "the publishing connection is still served");
    // Readers of that path get a clear answer, never a crash: RTSP, LL-HLS.
    let describe = raw_exchange(
        &server.addr(),
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert!(describe.starts_with("RTSP/1.0 "), "{describe}");
    let hls = http_get(
        server.http_port,
        "/trunc/index.m3u8",
        Duration::from_secs(10),
    );
    assert!(
        matches!(hls.status, 200 | 404 | 503),
        "{} {}",
        hls.status,
        hls.text()
    );
    streaming.assert_undisturbed();
}

#[test]
fn a_client_port_pair_already_in_use_is_refused() {
    let streaming = Streaming::start(6);
    let server = &streaming.server;
    let url = server.url("live");
    let setup = |c: &mut Raw, cseq: u32| {
        c.request(&format!(
            "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: {cseq}\r\nTransport: RTP/AVP;unicast;client_port=40100-40101\r\n\r\n"
        ))
    };
    let mut first = Raw::connect(server);
    let resp = setup(&mut first, 1);
    assert_eq!(resp.0, 200, "{}", resp.1);
    let session = session_of(&resp.1);
    let mut second = Raw::connect(server);
    let resp = setup(&mut second, 1);
    assert_eq!(resp.0, 400, "{}", resp.1);
    assert!(
        resp.1.contains("already used by another session"),
        "{}",
        resp.1
    );
    // Once the first session lets the pair go, it can be used again.
    let resp = first.request(&format!(
        "TEARDOWN {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200);
    assert_eq!(setup(&mut second, 2).0, 200);
    streaming.assert_undisturbed();
}

#[test]
fn destination_in_transport_is_never_honoured() {
    // The server only accepts an even RTP port: ask the OS until it gives one (bounded).
    let (rtp, port) = (0..100)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .map(|s| {
            let port = s.local_addr().expect("addr").port();
            (s, port)
        })
        .find(|(_, port)| port % 2 == 0)
        .expect("an even port");
    let streaming = Streaming::start(4);
    let server = &streaming.server;
    rtp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let url = server.url("live");
    let mut c = Raw::connect(server);
    let resp = c.request(&format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;destination=203.0.113.9;client_port={port}-{}\r\n\r\n",
        port + 1
    ));
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert!(
        !resp.1.contains("203.0.113.9"),
        "the reply must not echo a foreign destination:\n{}",
        resp.1
    );
    let session = session_of(&resp.1);
    assert_eq!(
        c.request(&format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
        ))
        .0,
        200
    );
    let mut buf = [0u8; 2048];
    let (n, from) = rtp
        .recv_from(&mut buf)
        .expect("RTP arrives at the RTSP peer's own address");
    assert!(n >= 12 && buf[0] >> 6 == 2, "an RTP packet");
    assert!(from.ip().is_loopback());
    streaming.assert_undisturbed();
}

#[test]
fn rapid_setup_teardown_churn_leaves_the_server_flat() {
    let streaming = Streaming::start(10);
    let server = &streaming.server;
    let pid = server.proc.pid();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let rss_kib = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .expect("VmRSS of the server")
    };
    let url = server.url("live");
    let mut c = Raw::connect(server);
    let before = fds();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut cycles = 0u32;
    // Tens of thousands of SETUP/TEARDOWN on one connection, every 10th with PLAY, bounded in time.
    while cycles < 20_000 && start.elapsed() < Duration::from_secs(6) {
        let session = session_of(&setup_tcp(&mut c, &url, cycles * 3, "").1);
        if cycles.is_multiple_of(10) {
            assert_eq!(
                c.request(&format!(
                    "PLAY {url} RTSP/1.0\r\nCSeq: {}\r\nSession: {session}\r\n\r\n",
                    cycles * 3 + 1
                ))
                .0,
                200
            );
        }
        let resp = c.request(&format!(
            "TEARDOWN {url} RTSP/1.0\r\nCSeq: {}\r\nSession: {session}\r\n\r\n",
            cycles * 3 + 2
        ));
        assert_eq!(resp.0, 200);
        cycles += 1;
    }
    assert!(cycles >= 1000, "only {cycles} cycles");
    // Many short connections too.
    for i in 0..300 {
        let mut c = Raw::connect(server);
        assert_eq!(setup_tcp(&mut c, &url, i, "").0, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = fds();
    let rss_after = rss_kib();
    assert!(
        rss_after <= rss_before + 16 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB after {cycles} cycles"
    );
    assert!(
        after <= before + 10,
        "file descriptors grew from {before} to {after} after {cycles} cycles"
    );
    // UDP sessions bind sockets: they must be released on TEARDOWN and on close.
    for i in 0..200u32 {
        let mut c = Raw::connect(server);
        let port = 40000 + 2 * i;
        let resp = c.request(&format!("SETUP {url} RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={port}-{}\r\n\r\n", port + 1));
        assert_eq!(resp.0, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after_udp = fds();
    assert!(
        after_udp <= before + 10,
        "UDP sockets leaked: {before} → {after_udp}"
    );
    streaming.assert_undisturbed();
}

#[test]
fn a_reader_that_stops_reading_is_dropped_and_others_are_untouched() {
    let streaming =
        Streaming::start_with(10, &["--write-timeout-ms", "1500"], &["--bitrate", "6000"]);
    let server = &streaming.server;
    // A reader with a tiny receive window that plays and then never reads.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr: std::net::SocketAddr = server.addr().parse().expect("addr");
    socket.connect(&addr.into()).expect("connect");
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut stalled = Raw {
        stream,
        buf: Vec::new(),
    };
    play_tcp(&mut stalled, server, "live");
    // Its own line: under load another reader (e.g. a receiver retrying) may be disconnected
    // too, for another reason.
    let peer = format!(
        "peer={}",
        stalled.stream.local_addr().expect("local address")
    );
    let is_stalled_line = |l: &&str| l.contains("disconnecting RTSP reader") && l.contains(&peer);
    let deadline = Instant::now() + Duration::from_secs(40);
    let log = loop {
        let log = server.proc.stderr_so_far();
        if log.lines().any(|l| is_stalled_line(&l)) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = log
        .lines()
        .find(is_stalled_line)
        .unwrap_or_else(|| panic!("the stalled reader was never disconnected:\n{log}"));
    assert!(line.contains("write timed out"), "{line}");
    let drops: u64 = line
        .split("dropped_frames=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("drops are counted");
    assert!(drops > 0, "{line}");
    // On loopback the other reader's frames arrive within milliseconds; a reader that stops
    // reading must not hold them back (the hub never waits for a queue).
    streaming.assert_undisturbed_within(100.0);
}

#[test]
fn incomplete_messages_are_closed_after_the_idle_timeout() {
    let streaming = Streaming::start_with(8, &["--idle-timeout-ms", "1500"], &[]);
    let server = &streaming.server;
    let url = server.url("live");
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "Content-Length longer than what follows",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100\r\n\r\nshort")
                .into_bytes(),
        ),
        ("$ length 0xFFFF with a short body", {
            let mut b = vec![b'$', 0, 0xff, 0xff];
            b.extend_from_slice(&[0u8; 10]);
            b
        }),
        (
            "half a request line",
            format!("DESCRIBE {url} RTSP/1.").into_bytes(),
        ),
    ];
    for (name, bytes) in cases {
        let mut c = Raw::connect(server);
        let started = Instant::now();
        c.send(&bytes);
        assert!(
            c.closed_within(Duration::from_secs(6)),
            "{name}: the server gives up on the incomplete message"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1200),
            "{name}: closed after {waited:?}, before the idle timeout"
        );
    }
    let logs = streaming.assert_undisturbed();
    assert!(logs.contains("nothing received for"), "{logs}");
}
