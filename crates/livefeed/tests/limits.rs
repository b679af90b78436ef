//! Every cap is configurable and answered with a clear refusal (and a log line naming the peer
//! and the cap) when hit: RTSP sessions, readers per path, RTSP head/header/body sizes, access
//! unit size from a publisher.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn session_and_reader_caps_refuse_the_one_too_many() {
    let server = TestServer::start_with(&[
        "--test-src",
        "--max-rtsp-sessions",
        "3",
        "--max-readers-per-path",
        "2",
    ]);
    wait_for_stream(&server.addr(), "live");
    // Two readers play; the third is refused with 503 and a reason.
    let mut readers: Vec<Raw> = (0..2).map(|_| Raw::connect(&server)).collect();
    for r in &mut readers {
        play_tcp(r, &server, "live");
    }
    let mut third = Raw::connect(&server);
    let url = server.url("live");
    let (status, head) = third.request(&format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    ));
    assert_eq!(status, 200, "{head}");
    let session = session_of(&head);
    let (status, head) = third.request(&format!(
        "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("max-readers-per-path"), "{head}");
    // Three connections are open: a fourth is answered 503 and closed.
    let reply = raw_exchange(
        &server.addr(),
        &format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert!(reply.starts_with("RTSP/1.0 503"), "{reply}");
    assert!(
        reply.contains("CSeq: 1\r\n"),
        "the 503 answers the request's CSeq: {reply}"
    );
    assert!(
        reply.contains("max-rtsp-sessions"),
        "and names the cap: {reply}"
    );
    // Once one leaves, a new connection is served again.
    drop(third);
    retry(Duration::from_secs(5), || {
        let reply = raw_exchange(
            &server.addr(),
            &format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
        );
        if reply.starts_with("RTSP/1.0 200") {
            Ok(())
        } else {
            Err(reply)
        }
    });
    // Logs go out through a non-blocking writer: wait (bounded) for both lines to arrive.
    retry(Duration::from_secs(5), || {
        let log = server.proc.stderr_so_far();
        let sessions = log
            .lines()
            .any(|l| l.contains("max-rtsp-sessions reached") && l.contains("peer=127.0.0.1:"));
        if sessions && log.contains("max-readers-per-path reached") {
            Ok(())
        } else {
            Err(log)
        }
    });
    drop(readers);
}

#[test]
fn message_size_caps_are_configurable() {
    let server =
        TestServer::start_with(&["--max-rtsp-headers", "8", "--max-rtsp-body-bytes", "512"]);
    let url = server.url("live");
    let headers: String = (0..12).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = raw_exchange(
        &server.addr(),
        &format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n{headers}\r\n"),
    );
    assert!(
        reply.starts_with("RTSP/1.0 4"),
        "12 headers over a cap of 8: {reply}"
    );
    let body = "v=0\r\n".repeat(200);
    let reply = raw_exchange(
        &server.addr(),
        &format!(
            "ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(
        reply.starts_with("RTSP/1.0 413"),
        "a 1000-byte body over a cap of 512: {reply}"
    );
}

#[test]
fn access_units_over_the_cap_are_dropped_and_reported() {
    let server = TestServer::start_with(&["--max-access-unit-bytes", "2048"]);
    // 1280x720 keyframes are far over 2 KiB.
    let _publisher = livefeed_publisher(
        &server.url("big"),
        "tcp",
        &["--resolution", "1280x720", "--duration", "20"],
    );
    retry(Duration::from_secs(20), || {
        let log = server.proc.stderr_so_far();
        if log.contains("bad RTP from publisher") && log.contains("over the 2048-byte cap") {
            Ok(())
        } else {
            Err(log)
        }
    });
}
