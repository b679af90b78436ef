//! The JSON API against a running server with a real SQLite file: metrics are inserted,
//! aggregated and queried, acknowledged samples survive a restart, retention forgets old ones,
//! bad input gets a JSON 400; Prometheus and the dashboard's event stream describe the live
//! path; the controls start and stop test sources and disconnect readers.

mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

fn post_metrics(server: &TestServer, body: &str) -> HttpResponse {
    http_request(
        server.http_port,
        "POST",
        "/api/v1/metrics",
        Some("application/json"),
        body.as_bytes(),
        WAIT,
    )
}

fn json(r: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn samples(now_ms: u64, n: u64) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"path":"live","stage":"capture_to_displayed","client":"browser-hls","unix_ms":{},"latency_ms":{}}}"#,
                now_ms - 2000 + i,
                100 + i
            )
        })
        .collect();
    format!(r#"{{"samples":[{}]}}"#, list.join(","))
}

#[test]
fn metrics_are_stored_queried_and_survive_a_restart() {
    let server = TestServer::start();
    let now_ms = unix_ns() / 1_000_000;
    let r = post_metrics(&server, &samples(now_ms, 100));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["accepted"], 100);
    let since = now_ms - 10_000;
    let query = format!(
        "/api/v1/metrics?path=live&stage=capture_to_displayed&since={since}&until={}&step=60000",
        now_ms + 1000
    );
    let before = json(&http_get(server.http_port, &query, WAIT));
    let total = |v: &serde_json::Value| -> u64 {
        v["points"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["count"].as_u64()).sum())
            .unwrap_or(0)
    };
    assert_eq!(total(&before), 100, "{before}");
    let point = &before["points"][0];
    assert_eq!(point["client"], "browser-hls");
    assert!(
        point["max"]
            .as_f64()
            .is_some_and(|m| (m - 199.0).abs() < 1e-9),
        "{before}"
    );
    // Restart on the same data directory: the acknowledged samples are still there.
    let TestServer { proc, data_dir, .. } = server;
    let stopped = proc.kill_and_collect();
    assert!(!stopped.stderr.contains("panicked"), "{}", stopped.stderr);
    let server = TestServer::start_in(data_dir, &[]);
    let after = json(&http_get(server.http_port, &query, WAIT));
    assert_eq!(total(&after), 100, "after restart: {after}");
}

#[test]
fn bad_metrics_input_gets_a_json_400() {
    let server = TestServer::start();
    let now_ms = unix_ns() / 1_000_000;
    for (name, body) in [
        ("malformed JSON", "{\"samples\": [".to_string()),
        ("not JSON", "latency=5".to_string()),
        ("unknown field", r#"{"samples":[],"extra":1}"#.to_string()),
        (
            "NaN-like latency",
            format!(
                r#"{{"samples":[{{"path":"live","stage":"capture_to_displayed","client":"x","unix_ms":{now_ms},"latency_ms":"fast"}}]}}"#
            ),
        ),
        (
            "unknown stage",
            format!(
                r#"{{"samples":[{{"path":"live","stage":"warp","client":"x","unix_ms":{now_ms},"latency_ms":5}}]}}"#
            ),
        ),
        (
            "bad path",
            format!(
                r#"{{"samples":[{{"path":"../etc","stage":"capture_to_displayed","client":"x","unix_ms":{now_ms},"latency_ms":5}}]}}"#
            ),
        ),
    ] {
        let r = post_metrics(&server, &body);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(
            json(&r)["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: a JSON error with a message"
        );
    }
    for query in [
        "/api/v1/metrics?since=abc",
        "/api/v1/metrics?step=0",
        "/api/v1/metrics?step=1500",
        "/api/v1/metrics?since=2000&until=1000",
        "/api/v1/metrics?since=0&until=9999999999999&step=1000",
        "/api/v1/metrics?path=../x",
    ] {
        let r = http_get(server.http_port, query, WAIT);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(json(&r)["error"].is_string(), "{query}");
    }
}

#[test]
fn paths_and_time_describe_the_server() {
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    let paths = json(&http_get(server.http_port, "/api/v1/paths", WAIT));
    let live = &paths["paths"][0];
    assert_eq!(live["name"], "live", "{paths}");
    assert_eq!(
        (live["width"].as_u64(), live["height"].as_u64()),
        (Some(640), Some(480)),
        "{paths}"
    );
    assert_eq!(live["publisher"]["protocol"], "test-pattern", "{paths}");
    assert!(live["publisher"]["fps"].as_f64().is_some(), "{paths}");
    let one = http_get(server.http_port, "/api/v1/paths/live", WAIT);
    assert_eq!(one.status, 200);
    assert_eq!(
        http_get(server.http_port, "/api/v1/paths/nothing", WAIT).status,
        404
    );
    let before = unix_ns();
    let time = json(&http_get(server.http_port, "/api/v1/time", WAIT));
    let after = unix_ns();
    let server_ns = time["unix_ns"].as_u64().expect("unix_ns");
    assert!(
        server_ns >= before && server_ns <= after,
        "same host, same clock: {before} <= {server_ns} <= {after}"
    );
}

#[test]
fn retention_forgets_samples_older_than_the_windows() {
    let server =
        TestServer::start_with(&["--metrics-raw-retention", "1", "--metrics-retention", "2"]);
    let now_ms = unix_ns() / 1_000_000;
    let sample = format!(
        r#"{{"samples":[{{"path":"old","stage":"capture_to_displayed","client":"browser-hls","unix_ms":{now_ms},"latency_ms":12.5}}]}}"#
    );
    assert_eq!(post_metrics(&server, &sample).status, 200);
    let query = format!(
        "/api/v1/metrics?path=old&since={}&until={}&step=1000",
        now_ms - 5000,
        now_ms + 5000
    );
    let count = || -> u64 {
        json(&http_get(server.http_port, &query, WAIT))["points"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["count"].as_u64()).sum())
            .unwrap_or(0)
    };
    assert_eq!(count(), 1, "the sample is there at first");
    // Raw samples go after 1 s, aggregates after 2 s; retention runs every 0.5 s.
    retry(Duration::from_secs(15), || match count() {
        0 => Ok(()),
        n => Err(format!("{n} samples still stored")),
    });
    // A sample older than the raw window is refused with a reason, not silently kept.
    let late = format!(
        r#"{{"samples":[{{"path":"old","stage":"capture_to_displayed","client":"browser-hls","unix_ms":{},"latency_ms":1}}]}}"#,
        now_ms - 60_000
    );
    let r = post_metrics(&server, &late);
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn prometheus_and_the_event_stream_describe_the_live_path() {
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    let text = retry(Duration::from_secs(15), || {
        let r = http_get(server.http_port, "/metrics", WAIT);
        let text = r.text();
        let ready = r.status == 200
            && text.contains("livefeed_fps{path=\"live\"}")
            && text.contains("stage=\"capture_to_ingest\",client=\"server\"");
        if ready {
            Ok((r, text))
        } else {
            Err(text)
        }
    });
    let (r, text) = text;
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{}",
        r.head
    );
    for needle in [
        "livefeed_latency_ms_bucket{",
        "livefeed_readers{",
        "livefeed_frames_in_total{path=\"live\"}",
        "livefeed_bytes_in_total{path=\"live\"}",
        "livefeed_dropped_frames_total{path=\"live\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));

    // The first Server-Sent Event comes at once and describes the path.
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", server.http_port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\n\n{") && got.len() < 1 << 20 {
        let text = String::from_utf8_lossy(&got).to_string();
        if text.contains("event: state") && text.matches("\n\n").count() >= 2 {
            break;
        }
        let n = stream.read(&mut buf).expect("an event within the timeout");
        assert!(n > 0, "the stream closed: {text}");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.contains("text/event-stream"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data line: {text}"));
    let state: serde_json::Value = serde_json::from_str(data).expect("JSON state");
    assert_eq!(state["paths"][0]["name"], "live", "{state}");
    assert!(state["time_unix_ms"].as_u64().is_some(), "{state}");
}

#[test]
fn controls_start_and_stop_test_sources_and_disconnect_readers() {
    let server = TestServer::start();
    let post = |target: &str, body: &str| {
        http_request(
            server.http_port,
            "POST",
            target,
            Some("application/json"),
            body.as_bytes(),
            WAIT,
        )
    };
    let delete = |target: &str| http_request(server.http_port, "DELETE", target, None, b"", WAIT);
    let r = post(
        "/api/v1/sources/cam/1",
        r#"{"width":320,"height":240,"fps":15}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for_stream(&server.addr(), "cam/1");
    let r = post("/api/v1/sources/cam/1", "");
    assert_eq!(r.status, 409, "a busy path: {}", r.text());
    for (body, why) in [
        (r#"{"width":321}"#, "odd width"),
        (r#"{"fps":0}"#, "fps out of range"),
        (r#"{"fps":"fast"}"#, "not a number"),
        (r#"{"colour":"red"}"#, "unknown field"),
        ("{", "malformed"),
    ] {
        let r = post("/api/v1/sources/other", body);
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert!(json(&r)["error"].is_string(), "{why}");
    }
    assert_eq!(post("/api/v1/sources/..%2Fetc", "").status, 400);

    // A reader appears with its protocol and id; disconnecting it ends its session.
    let receiver = Proc::spawn(
        "livefeed receive",
        livefeed().args(["receive", "--url", &server.url("cam/1"), "--duration", "30"]),
    );
    let path = retry(Duration::from_secs(15), || {
        let p = json(&http_get(server.http_port, "/api/v1/paths/cam/1", WAIT));
        // One reader, and a publisher running for over a second (fps is over the last one).
        let fps = p["publisher"]["fps"].as_f64().unwrap_or(0.0);
        match p["readers"].as_array().map(Vec::len) {
            Some(1) if fps > 5.0 => Ok(p),
            _ => Err(p.to_string()),
        }
    });
    let reader = &path["readers"][0];
    assert_eq!(reader["protocol"], "rtsp/tcp", "{path}");
    assert_eq!(path["test_source"]["width"], 320, "{path}");
    let id = reader["id"].as_u64().expect("reader id");
    assert_eq!(delete(&format!("/api/v1/readers/{id}")).status, 204);
    let ended = receiver.wait(Duration::from_secs(10));
    assert!(
        !ended.timed_out && !ended.success && ended.stderr.contains("server closed the connection"),
        "the receiver's session ended: {ended:?}"
    );
    assert_eq!(delete(&format!("/api/v1/readers/{id}")).status, 404);
    assert_eq!(delete("/api/v1/readers/nope").status, 400);

    // Stopping the source frees the path.
    assert_eq!(delete("/api/v1/sources/cam/1").status, 204);
    assert_eq!(delete("/api/v1/sources/cam/1").status, 404);
    retry(Duration::from_secs(10), || {
        let r = http_get(server.http_port, "/api/v1/paths/cam/1", WAIT);
        if r.status == 404 {
            Ok(())
        } else {
            Err(r.text())
        }
    });
}
