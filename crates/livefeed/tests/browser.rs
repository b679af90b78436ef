//! The player page in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (web/tests/player.mjs). Frames must advance and the page must measure glass-to-glass latency
//! from the pixel timecode of the frames it displays.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn player_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/tests/player.mjs")
}

#[test]
fn hls_player_page_plays_and_measures_latency_in_chromium() {
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    let out = run(
        "node web/tests/player.mjs",
        Command::new("node")
            .arg(player_script())
            .arg(format!("{}/live/", server.http()))
            .arg("12"),
        Duration::from_secs(120),
    );
    out.assert_success();
    let line = out.stdout.lines().last().unwrap_or_default();
    let stats: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let frames = stats["frames"].as_u64().unwrap_or(0);
    let measured = stats["measured"].as_u64().unwrap_or(0);
    assert!(frames >= 150, "frames advance: {stats}");
    assert!(
        measured >= frames * 9 / 10,
        "the timecode is read from (nearly) every displayed frame: {stats}"
    );
    let latencies: Vec<f64> = stats["allLatencies"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    assert!(!latencies.is_empty(), "{stats}");
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    // A real measurement: positive, and not absurd for loopback.
    assert!(
        median > 0.0 && median < 10_000.0,
        "median glass-to-glass {median} ms: {stats}"
    );
    assert!(
        stats["p50"].as_f64().is_some(),
        "the page reports a live figure: {stats}"
    );
    assert_eq!(stats["videoWidth"], 640);
}
