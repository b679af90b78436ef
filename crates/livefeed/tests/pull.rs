//! Pull sources (`--source NAME=URL`): a GStreamer RTSP server standing in for an IP camera
//! (tests/support/gst_camera.py: gst-rtsp-server, x264 video and Opus audio, Basic auth), and
//! two livefeed servers chained, edge pulling from origin.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use common::{camera, camera_url, CAMERA_PASSWORD};
use livefeed_rtsp::client::{Incoming, RtspPlayer, TransportKind};

/// RTSP connections the camera has accepted so far.
fn camera_connections(camera: &Proc) -> usize {
    camera
        .stdout_so_far()
        .lines()
        .filter(|l| l.starts_with("client connected"))
        .count()
}

/// The `pull_source` object of `path` in the server's API.
fn pull_status(server: &TestServer, path: &str) -> serde_json::Value {
    let resp = http_get(
        server.http_port,
        &format!("/api/v1/paths/{path}"),
        Duration::from_secs(5),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
    json["pull_source"].clone()
}

/// Time from starting to connect to `url` until the first video frame arrived.
fn time_to_first_frame(url: &str) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let mut player =
            RtspPlayer::connect(url, TransportKind::Tcp, false, Duration::from_secs(10))
                .await
                .expect("the edge answers the first reader");
        loop {
            match player.next().await.expect("media") {
                Incoming::Video(_) => break started.elapsed(),
                Incoming::Audio(_) => {}
            }
        }
    })
}

#[test]
fn an_on_demand_camera_is_pulled_only_while_read_and_survives_a_restart() {
    let port = port_outside_ephemeral_range(); // the camera restarts on it
    let mut cam = camera(port);
    let source = format!("cam={}", camera_url(port, CAMERA_PASSWORD));
    let edge = TestServer::start_with(&[
        "--source",
        &source,
        "--source-on-demand",
        "--source-on-demand-close-after",
        "2",
    ]);

    // No reader, no connection to the camera.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        camera_connections(&cam),
        0,
        "an on-demand source connected with no reader"
    );
    assert_eq!(pull_status(&edge, "cam")["state"], "idle");

    // The first reader gets its first frame within a second.
    let first = time_to_first_frame(&edge.url("cam"));
    eprintln!("first frame {first:?} after the first reader connected");
    assert!(
        first < Duration::from_secs(1),
        "first frame after {first:?}"
    );
    assert_eq!(camera_connections(&cam), 1);
    // ffmpeg reads for 12 s of stream while the camera restarts on the same port.
    let reader_started = Instant::now();
    let reader = Proc::spawn(
        "ffmpeg reader",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostats", "-rtsp_transport", "tcp", "-i"])
            .arg(edge.url("cam"))
            .args(["-map", "0:v", "-t", "12", "-f", "framecrc", "-"]),
    );
    // Capture times come from the camera's sender reports once the first one arrived.
    retry(Duration::from_secs(8), || {
        let status = pull_status(&edge, "cam");
        match (
            status["clock"].as_str(),
            status["clock_offset_ms"].is_number(),
        ) {
            (Some("sender reports"), true) => Ok(()),
            _ => Err(status.to_string()),
        }
    });

    std::thread::sleep(Duration::from_secs(1));
    drop(cam.kill_and_collect());
    std::thread::sleep(Duration::from_millis(500));
    cam = camera(port);
    let out = reader.wait(Duration::from_secs(40));
    assert!(out.success, "the reader stopped: {}", out.stderr);
    let frames = out.stdout.lines().filter(|l| !l.starts_with('#')).count();
    // 12 s at 30 fps, read across the restart (the stream time continues where it stopped).
    assert!(
        frames >= 330,
        "the reader got only {frames} frames: {}",
        out.stderr
    );
    assert!(reader_started.elapsed() >= Duration::from_secs(12));
    assert!(camera_connections(&cam) >= 1, "livefeed did not reconnect");
    let status = pull_status(&edge, "cam");
    assert!(status["connections"].as_u64() >= Some(2), "{status}");

    // Without readers the source closes after close-after, and the camera sees no new
    // connection.
    retry(Duration::from_secs(10), || {
        match pull_status(&edge, "cam")["state"].as_str() {
            Some("idle") => Ok(()),
            other => Err(format!("state {other:?}")),
        }
    });
    let connections = camera_connections(&cam);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(camera_connections(&cam), connections);
}

#[test]
fn wrong_camera_credentials_are_reported_on_the_dashboard_and_in_the_log() {
    let port = port_outside_ephemeral_range();
    let _cam = camera(port);
    let source = format!("door={}", camera_url(port, "not-the-password"));
    let edge = TestServer::start_with(&["--source", &source, "--rtsp-transport", "tcp"]);
    let error = retry(Duration::from_secs(10), || {
        let status = pull_status(&edge, "door");
        match status["error"].as_str() {
            Some(e) => Ok(e.to_string()),
            None => Err(format!("no error yet: {status}")),
        }
    });
    assert!(error.contains("wrong or missing credentials"), "{error}");
    assert!(error.contains("401"), "{error}");
    let log = edge.proc.stderr_so_far();
    let line = log
        .lines()
        .find(|l| l.contains("pull source failed"))
        .unwrap_or_else(|| panic!("no log line about the failure: {log}"));
    assert!(
        line.contains("path=door") && line.contains("credentials"),
        "{line}"
    );
    assert!(
        !log.contains("not-the-password"),
        "the log shows the password"
    );
    let api = http_get(edge.http_port, "/api/v1/paths", Duration::from_secs(5)).text();
    assert!(
        !api.contains("not-the-password"),
        "the API shows the password"
    );
    // The failure is logged once, not at every retry.
    std::thread::sleep(Duration::from_secs(2));
    let failures = edge
        .proc
        .stderr_so_far()
        .matches("pull source failed,")
        .count();
    assert_eq!(failures, 1);
}

#[test]
fn chained_livefeeds_measure_capture_to_decoded_across_both_hops() {
    let origin = TestServer::start();
    let _publisher = livefeed_publisher(
        &origin.url("cam"),
        "tcp",
        &["--resolution", "320x240", "--duration", "40"],
    );
    wait_for_stream(&origin.addr(), "cam");
    let source = format!("cam={}", origin.url("cam"));
    let edge = TestServer::start_with(&["--source", &source, "--rtsp-transport", "tcp"]);
    wait_for_stream(&edge.addr(), "cam");

    let at_origin = livefeed_receiver(&origin.url("cam"), 10, &[]);
    let at_edge = livefeed_receiver(&edge.url("cam"), 10, &[]);
    let origin_out = at_origin.wait(Duration::from_secs(40));
    let edge_out = at_edge.wait(Duration::from_secs(40));
    origin_out.assert_success();
    edge_out.assert_success();
    let origin_summary = json_summary(&origin_out.stdout);
    let edge_summary = json_summary(&edge_out.stdout);
    for s in [&origin_summary, &edge_summary] {
        assert_eq!(s["mismatches"], 0, "{s}");
        assert!(s["frames_decoded"].as_u64() > Some(250), "{s}");
    }
    let p50 = |s: &serde_json::Value| {
        s["stages"]["capture_to_decoded"]["p50"]
            .as_f64()
            .unwrap_or_else(|| panic!("no capture→decoded in {s}"))
    };
    let (o, e) = (p50(&origin_summary), p50(&edge_summary));
    eprintln!("capture→decoded p50: origin {o:.2} ms, edge {e:.2} ms");
    assert!((e - o).abs() <= 2.0, "edge p50 {e} ms vs origin {o} ms");
    let status = pull_status(&edge, "cam");
    assert_eq!(status["clock"], "capture stamp", "{status}");
}

#[test]
fn a_source_leaves_the_camera_alone_while_someone_else_publishes_the_path() {
    let port = port_outside_ephemeral_range(); // the camera comes up later
    let source = format!("cam={}", camera_url(port, CAMERA_PASSWORD));
    let edge = TestServer::start_with(&["--source", &source, "--rtsp-transport", "tcp"]);
    // The camera is down: the source retries; a publisher pushes to the path meanwhile.
    let publisher = livefeed_publisher(
        &edge.url("cam"),
        "tcp",
        &["--resolution", "320x240", "--duration", "30"],
    );
    wait_for_stream(&edge.addr(), "cam");
    let cam = camera(port);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        camera_connections(&cam),
        0,
        "the source connected while the path was pushed"
    );
    let status = pull_status(&edge, "cam");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("another publisher")),
        "{status}"
    );
    // The publisher leaves: the source takes the path.
    drop(publisher.kill_and_collect());
    retry(Duration::from_secs(15), || {
        match pull_status(&edge, "cam")["state"].as_str() {
            Some("streaming") => Ok(()),
            other => Err(format!("state {other:?}")),
        }
    });
    assert!(camera_connections(&cam) >= 1);
}

#[test]
fn an_llhls_request_alone_wakes_an_on_demand_source() {
    let port = port_outside_ephemeral_range();
    let cam = camera(port);
    let source = format!("door={}", camera_url(port, CAMERA_PASSWORD));
    let edge = TestServer::start_with(&["--source", &source, "--source-on-demand"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(camera_connections(&cam), 0);
    let playlist = http_get(edge.http_port, "/door/index.m3u8", Duration::from_secs(20));
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    assert!(
        playlist.text().starts_with("#EXTM3U"),
        "{}",
        playlist.text()
    );
    assert_eq!(camera_connections(&cam), 1);
}
