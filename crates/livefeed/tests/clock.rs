//! Clients with wrong clocks still report the right latency: `--report` estimates each
//! client's offset to the server (NTP-style, over /api/v1/time) and corrects its figures.
//! A publisher whose clock is 3 s behind and a receiver whose clock is 7 s ahead must report
//! what a receiver with the true clock measures at the same time, within a few ms.

mod common;

use std::time::Duration;

use common::*;

/// How far a corrected figure may be from the true one: the offset estimate's uncertainty on
/// loopback is well below a millisecond; the rest is the two receivers' own scheduling.
const TOLERANCE_MS: f64 = 5.0;

fn p50(summary: &serde_json::Value, stage: &str) -> f64 {
    summary["stages"][stage]["p50"]
        .as_f64()
        .unwrap_or_else(|| panic!("no {stage} in {summary}"))
}

#[test]
fn shifted_clocks_are_corrected_to_the_servers() {
    let server = TestServer::start();
    let report = server.http();
    let publisher = livefeed_publisher(
        &server.url("clock"),
        "tcp",
        &["--report", &report, "--clock-shift-ms", "-3000"],
    );
    wait_for_stream(&server.addr(), "clock");
    let receive = |extra: &[&str]| {
        let mut cmd = livefeed();
        cmd.args([
            "receive",
            "--url",
            &server.url("clock"),
            "--duration",
            "6",
            "--json",
        ])
        .args(extra);
        Proc::spawn("livefeed receive", &mut cmd)
    };
    let shifted = receive(&["--report", &report, "--clock-shift-ms", "7000"]);
    let truth = receive(&[]);
    let shifted = shifted.wait(Duration::from_secs(60));
    let truth = truth.wait(Duration::from_secs(60));
    let shifted = json_summary(&shifted.assert_success().stdout);
    let truth = json_summary(&truth.assert_success().stdout);
    drop(publisher);

    // The receiver found its clock 7 s ahead (the server is 7 s behind it).
    let offset = shifted["clock"]["offset_ms"]
        .as_f64()
        .expect("clock offset");
    let uncertainty = shifted["clock"]["uncertainty_ms"]
        .as_f64()
        .expect("uncertainty");
    assert!(
        (offset + 7000.0).abs() < 2.0,
        "offset {offset} ms: {shifted}"
    );
    assert!(uncertainty < 2.0, "uncertainty {uncertainty} ms");
    // The true receiver sees a publisher whose stamps were corrected to server time.
    let true_decoded = p50(&truth, "capture_to_decoded");
    assert!(
        (0.0..100.0).contains(&true_decoded),
        "the publisher's stamps are in server time: {truth}"
    );
    for stage in ["capture_to_received", "capture_to_decoded"] {
        let (got, want) = (p50(&shifted, stage), p50(&truth, stage));
        assert!(
            (got - want).abs() < TOLERANCE_MS,
            "{stage}: corrected {got} ms vs true {want} ms"
        );
    }

    // What reached the dashboard's store is the corrected figure too, from both clients.
    let metrics = |client: &str, stage: &str| -> serde_json::Value {
        let now_ms = unix_ns() / 1_000_000;
        let query = format!(
            "/api/v1/metrics?path=clock&client={client}&stage={stage}&since={}&until={}&step=60000",
            now_ms - 120_000,
            now_ms + 1000
        );
        let r = http_get(server.http_port, &query, Duration::from_secs(10));
        serde_json::from_slice(&r.body).expect("JSON")
    };
    let stored = metrics("receiver", "capture_to_decoded");
    let points = stored["points"].as_array().expect("points");
    assert!(!points.is_empty(), "{stored}");
    for p in points {
        let p50 = p["p50"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (0.0..100.0).contains(&p50),
            "stored receiver p50 {p50}: {stored}"
        );
    }
    let encoded = metrics("publisher", "capture_to_encoded");
    assert!(
        encoded["points"].as_array().is_some_and(|a| !a.is_empty()),
        "the publisher reports its stage: {encoded}"
    );
}
