//! The JSON API against a running server with a real SQLite file: metrics are inserted,
//! aggregated and queried, acknowledged samples survive a restart, bad input gets a JSON 400.

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
    assert!(
        live["publisher"]["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{paths}"
    );
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
