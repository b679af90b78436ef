//! LL-HLS from a running `livefeed serve --test-src`: real players (ffmpeg) read it, the
//! playlist and media behave as the spec asks, and bad HTTP input gets a clear 4xx while
//! others stream on.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(15);

fn server_with_test_source(extra: &[&str]) -> TestServer {
    let mut args = vec!["--test-src"];
    args.extend_from_slice(extra);
    let server = TestServer::start_with(&args);
    wait_for_stream(&server.addr(), "live");
    server
}

/// The value of the first line starting with `tag` (e.g. `#EXT-X-TARGETDURATION:`).
fn tag<'a>(playlist: &'a str, tag: &str) -> Option<&'a str> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .map(str::trim)
}

/// A media name without the stream id the server puts before it (`3f2a9c01-seg4.m4s` →
/// `seg4.m4s`).
fn without_stream_id(name: &str) -> &str {
    name.split_once('-').map_or(name, |(_, rest)| rest)
}

/// The media sequence number of a segment name (with or without the stream id).
fn segment_msn(name: &str) -> Option<u64> {
    without_stream_id(name)
        .strip_prefix("seg")
        .and_then(|s| s.strip_suffix(".m4s"))
        .and_then(|n| n.parse().ok())
}

/// The highest media sequence number of a complete segment listed.
fn last_msn(playlist: &str) -> u64 {
    playlist.lines().filter_map(segment_msn).max().unwrap_or(0)
}

/// The playlist of `path` once it lists a complete segment, and its target duration (s).
fn playlist_and_target(server: &TestServer, path: &str) -> (String, u64) {
    let text = retry(Duration::from_secs(30), || {
        let r = http_get(server.http_port, &format!("/{path}/index.m3u8"), WAIT);
        if r.status == 200 && r.text().contains("#EXTINF") {
            Ok(r.text())
        } else {
            Err(r.text())
        }
    });
    let target = tag(&text, "#EXT-X-TARGETDURATION:")
        .and_then(|v| v.parse().ok())
        .expect("target duration");
    (text, target)
}

/// The playlist once it lists at least `segments` complete segments.
fn playlist_with_segments(server: &TestServer, segments: usize) -> String {
    retry(Duration::from_secs(30), || {
        let r = http_get(server.http_port, "/live/index.m3u8", WAIT);
        let text = r.text();
        let complete = text.lines().filter(|l| l.starts_with("#EXTINF")).count();
        if r.status == 200 && complete >= segments {
            Ok(text)
        } else {
            Err(format!("{} {text}", r.status))
        }
    })
}

#[test]
fn ffmpeg_reads_the_ll_hls_playlist_and_decodes_60_frames() {
    let server = server_with_test_source(&[]);
    playlist_with_segments(&server, 2);
    let out = run(
        "ffmpeg HLS reader",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-xerror", "-i"])
            .arg(format!("{}/live/index.m3u8", server.http()))
            .args(["-frames:v", "60", "-f", "framecrc", "-"]),
        Duration::from_secs(60),
    );
    out.assert_success();
    assert!(
        out.stderr.trim().is_empty(),
        "ffmpeg reported errors: {}",
        out.stderr
    );
    let frames = out.stdout.lines().filter(|l| !l.starts_with('#')).count();
    assert!(frames >= 60, "decoded {frames} frames");
}

#[test]
fn playlist_media_and_sidecar_are_served_with_the_right_headers() {
    let server = server_with_test_source(&[]);
    let text = playlist_with_segments(&server, 2);
    for tag in [
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
        "#EXT-X-MAP:URI=\"init-",
        "#EXT-X-PRELOAD-HINT:TYPE=PART",
        "INDEPENDENT=YES",
        "#EXT-X-PROGRAM-DATE-TIME:",
    ] {
        assert!(text.contains(tag), "{tag} missing from:\n{text}");
    }
    let r = http_get(server.http_port, "/live/index.m3u8", WAIT);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/vnd.apple.mpegurl")
    );
    // A plain playlist moves every part: no freshness for a cache at 100 ms parts.
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("public, max-age=0")
    );
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    // An answer to a blocking request never changes: a cache may keep it for the blocking
    // timeout (3 target durations of 1 s).
    let msn = last_msn(&text);
    let blocking = http_get(
        server.http_port,
        &format!("/live/index.m3u8?_HLS_msn={msn}&_HLS_part=0"),
        WAIT,
    );
    assert_eq!(blocking.status, 200);
    assert_eq!(
        blocking.header("cache-control").as_deref(),
        Some("public, max-age=3")
    );
    // A cache may key on the query as sent: any order and any other parameter give the same
    // answer (the playlist changes only when a part completes, so ask until two agree).
    retry(Duration::from_secs(10), || {
        let a = http_get(
            server.http_port,
            &format!("/live/index.m3u8?_HLS_msn={msn}&_HLS_part=0"),
            WAIT,
        );
        let b = http_get(
            server.http_port,
            &format!("/live/index.m3u8?viewer=x&_HLS_part=0&_HLS_msn={msn}"),
            WAIT,
        );
        if a.status == 200 && a.body == b.body {
            Ok(())
        } else {
            Err(format!("{}\n---\n{}", a.text(), b.text()))
        }
    });
    // The alias of the original streamer.
    let alias = http_get(server.http_port, "/live.m3u8", WAIT);
    assert_eq!(alias.status, 200);
    assert!(alias.text().contains("#EXT-X-MAP"));
    // Init, a listed segment and a listed part: named for what they hold, so immutable.
    let uris: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("URI=\"").nth(1))
        .filter_map(|u| u.split('"').next())
        .collect();
    let init_name = uris
        .iter()
        .find(|u| u.starts_with("init-"))
        .expect("the init segment's name");
    let init = http_get(server.http_port, &format!("/live/{init_name}"), WAIT);
    assert_eq!(init.status, 200);
    assert_eq!(&init.body[4..8], b"ftyp");
    assert!(init
        .header("cache-control")
        .is_some_and(|v| v.contains("immutable")));
    // `init.mp4` is whatever the init segment is now: the same bytes, revalidated.
    let current = http_get(server.http_port, "/live/init.mp4", WAIT);
    assert_eq!(current.body, init.body);
    assert_eq!(current.header("cache-control").as_deref(), Some("no-cache"));
    let seg = text
        .lines()
        .find(|l| segment_msn(l).is_some())
        .expect("a segment");
    let (stream_id, _) = seg.split_once('-').expect("the stream id before the name");
    let r = http_get(server.http_port, &format!("/live/{seg}"), WAIT);
    assert_eq!(r.status, 200, "{seg}");
    assert_eq!(&r.body[4..8], b"moof", "a segment starts with a CMAF chunk");
    assert!(r
        .header("cache-control")
        .is_some_and(|v| v.contains("immutable")));
    // Without the id the name does not say which run of the stream: same bytes, revalidated.
    let plain = http_get(
        server.http_port,
        &format!("/live/{}", without_stream_id(seg)),
        WAIT,
    );
    assert_eq!(plain.body, r.body);
    assert_eq!(plain.header("cache-control").as_deref(), Some("no-cache"));
    // Another run's id is never answered with this run's bytes.
    let other_run = format!(
        "/live/{}{}",
        if stream_id == "0" { "1" } else { "0" },
        &seg[stream_id.len()..]
    );
    assert_eq!(
        http_get(server.http_port, &other_run, WAIT).status,
        404,
        "{other_run}"
    );
    let part = uris
        .iter()
        .find(|u| without_stream_id(u).starts_with("part"))
        .expect("a part");
    assert!(part.starts_with(&format!("{stream_id}-")), "{part}");
    let r = http_get(server.http_port, &format!("/live/{part}"), WAIT);
    assert_eq!(r.status, 200, "{part}");
    assert_eq!(&r.body[4..8], b"moof");
    // The API gives the path's LL-HLS requests of the last whole second.
    let per_second = retry(Duration::from_secs(10), || {
        http_get(server.http_port, "/live/index.m3u8", WAIT);
        let json = http_get(server.http_port, "/api/v1/paths/live", WAIT).text();
        let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        match value["hls_requests_per_second"].as_u64() {
            Some(n) if n > 0 => Ok(n),
            _ => Err(json),
        }
    });
    assert!(per_second >= 1);
    // Every one of these requests was counted, by kind and status.
    let metrics = http_get(server.http_port, "/metrics", WAIT).text();
    for (kind, status) in [
        ("playlist", 200),
        ("blocking_playlist", 200),
        ("init", 200),
        ("segment", 200),
        ("segment", 404),
        ("part", 200),
    ] {
        let series = format!("livefeed_hls_requests_total{{kind=\"{kind}\",status=\"{status}\"}} ");
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    // The timestamp sidecar maps segments to capture and availability times.
    let ts = http_get(server.http_port, "/live/timestamps.json", WAIT);
    assert_eq!(ts.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&ts.body).expect("JSON");
    let first = &json["segments"][0];
    assert!(
        first["uri"].as_str().and_then(segment_msn).is_some(),
        "{json}"
    );
    let (capture, available) = (
        first["capture_unix_ns"].as_u64(),
        first["available_unix_ns"].as_u64(),
    );
    assert!(capture.is_some() && available.is_some(), "{json}");
    assert!(available >= capture, "available after capture: {json}");
    // The player page.
    let page = http_get(server.http_port, "/live/", WAIT);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/static/hls.min.js"));
    let js = http_get(server.http_port, "/static/hls.min.js", WAIT);
    assert!(
        js.status == 200 && js.body.len() > 100_000,
        "hls.js is embedded ({} bytes)",
        js.body.len()
    );
}

#[test]
fn blocking_reload_waits_for_the_next_part_and_delta_updates_skip() {
    // Delta updates skip segments older than CAN-SKIP-UNTIL (6 target durations): the
    // playlist must list more than that.
    let server = server_with_test_source(&["--playlist-length", "10"]);
    let text = playlist_with_segments(&server, 1);
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .expect("preload hint");
    let (stream_id, hint) = hint.split_once("-part").expect("<id>-part<msn>.<i>.m4s");
    let (msn, part) = hint
        .trim_end_matches(".m4s\"")
        .split_once('.')
        .expect("msn.part");
    let started = Instant::now();
    let r = http_get(
        server.http_port,
        &format!("/live/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        WAIT,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains(&format!("{stream_id}-part{msn}.{part}.m4s\"")),
        "the awaited part is listed:\n{}",
        r.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "held only until the part existed"
    );
    // The preload-hinted part itself is streamed as its frames arrive.
    let next = format!(
        "/live/{stream_id}-part{msn}.{}.m4s",
        part.parse::<u32>().expect("number") + 1
    );
    let r = http_get(server.http_port, &next, WAIT);
    assert_eq!(r.status, 200, "{next}");
    assert_eq!(
        r.header("x-livefeed-part").as_deref(),
        Some("streamed"),
        "{next}"
    );
    assert!(r.body.len() > 8 && &r.body[4..8] == b"moof");
    // Delta update once enough segments exist (CAN-SKIP-UNTIL = 6 target durations).
    playlist_with_segments(&server, 9);
    let skipped = retry(Duration::from_secs(30), || {
        let r = http_get(server.http_port, "/live/index.m3u8?_HLS_skip=YES", WAIT);
        if r.text().contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            Ok(r.text())
        } else {
            Err(r.text())
        }
    });
    let count: usize = tag(&skipped, "#EXT-X-SKIP:SKIPPED-SEGMENTS=")
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(count >= 1, "{skipped}");
    let full = http_get(server.http_port, "/live/index.m3u8", WAIT).text();
    let listed = |t: &str| t.lines().filter(|l| l.starts_with("#EXTINF")).count();
    assert!(
        listed(&skipped) < listed(&full),
        "the delta update lists fewer segments:\n{skipped}\n---\n{full}"
    );
}

#[test]
fn bad_http_input_gets_a_clear_4xx_and_others_stream_on() {
    let server = server_with_test_source(&[]);
    let text = playlist_with_segments(&server, 1);
    let last_msn = last_msn(&text);
    // A receiver streams meanwhile; its run must be clean.
    let mut receiver = livefeed();
    receiver.args([
        "receive",
        "--url",
        &server.url("live"),
        "--duration",
        "6",
        "--json",
    ]);
    let receiver = Proc::spawn("livefeed receive", &mut receiver);
    let cases: Vec<(String, &[u16])> = vec![
        ("/../etc/passwd".into(), &[400, 404]),
        ("/live/../../etc/passwd".into(), &[400, 404]),
        ("/%2e%2e/%2e%2e/etc/passwd".into(), &[400]),
        ("/live%5C..%5Cindex.m3u8".into(), &[400]),
        ("//evil.example/index.m3u8".into(), &[400, 404]),
        ("/index.m3u8".into(), &[400]),
        ("/nothing-here/index.m3u8".into(), &[404]),
        ("/live/seg999999.m4s".into(), &[404]),
        ("/live/unknown.txt".into(), &[404]),
        (
            format!("/live/index.m3u8?_HLS_msn={}", last_msn + 1000),
            &[400],
        ),
        ("/live/index.m3u8?_HLS_part=1".into(), &[400]),
        ("/live/index.m3u8?_HLS_msn=abc".into(), &[400]),
        ("/live/index.m3u8?_HLS_msn=-1".into(), &[400]),
        ("/live/index.m3u8?_HLS_msn=1&_HLS_part=x".into(), &[400]),
        (
            "/live/index.m3u8?_HLS_msn=99999999999999999999999".into(),
            &[400],
        ),
    ];
    for (target, allowed) in &cases {
        let r = http_get(server.http_port, target, WAIT);
        assert!(
            allowed.contains(&r.status),
            "GET {target}: {} {}",
            r.status,
            r.text()
        );
        if r.status >= 400 {
            assert!(
                !r.text().trim().is_empty(),
                "GET {target}: a reason is given"
            );
        }
    }
    // A bare path redirects to its player page, never to another host.
    for target in ["//evil", "///evil", "/live"] {
        let r = http_get(server.http_port, target, WAIT);
        let location = r.header("location").unwrap_or_default();
        assert!(
            r.status == 308 && location.starts_with('/') && !location.starts_with("//"),
            "GET {target}: {} {location}",
            r.status
        );
    }
    // A request far in the past is answered at once with the current playlist.
    let r = http_get(
        server.http_port,
        "/live/index.m3u8?_HLS_msn=0&_HLS_part=0",
        WAIT,
    );
    assert_eq!(r.status, 200);
    let out = receiver.wait(Duration::from_secs(40));
    out.assert_success();
    let summary = json_summary(&out.stdout);
    assert!(
        summary["frames_decoded"].as_u64().unwrap_or(0) >= 150,
        "{summary}"
    );
    assert_eq!(summary["lost"], 0, "{summary}");
}

#[test]
fn a_blocking_request_ends_with_503_when_the_publisher_stalls() {
    let server = TestServer::start();
    let publisher = livefeed_publisher(&server.url("cam"), "tcp", &[]);
    wait_for_stream(&server.addr(), "cam");
    let (text, target) = playlist_and_target(&server, "cam");
    drop(publisher); // the publisher is killed: nothing new will come
    let r = http_get(server.http_port, "/cam/index.m3u8?_HLS_msn=100000", WAIT);
    assert_eq!(r.status, 400, "far future is refused at once");
    let last_msn = last_msn(&text);
    let started = Instant::now();
    let r = http_get(
        server.http_port,
        &format!("/cam/index.m3u8?_HLS_msn={}", last_msn + 2),
        Duration::from_secs(30),
    );
    let waited = started.elapsed();
    assert!(matches!(r.status, 503 | 404), "{} {}", r.status, r.text());
    assert!(
        waited <= Duration::from_secs(3 * target + 2),
        "ended after {waited:?} (target {target} s)"
    );
}

#[test]
fn public_url_and_hls_dir_match_the_original_streamer() {
    let dir = std::env::temp_dir().join(format!("livefeed-hls-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = server_with_test_source(&[
        "--public-url",
        "http://192.0.2.7:8080",
        "--hls-dir",
        dir.to_str().expect("utf-8"),
        "--max-files",
        "3",
        "--segment-duration",
        "0.5",
        "--part-duration",
        "0.25",
        "--playlist-length",
        "2",
    ]);
    let text = playlist_with_segments(&server, 2);
    assert!(
        text.contains("#EXT-X-MAP:URI=\"http://192.0.2.7:8080/live/init-"),
        "{text}"
    );
    // Parts hold whole frames, so the target is rounded up to a whole number of frames.
    let part_target: f64 = tag(&text, "#EXT-X-PART-INF:PART-TARGET=")
        .and_then(|v| v.parse().ok())
        .expect("PART-TARGET");
    assert!(
        (0.25..=0.25 + 1.0 / 30.0 + 1e-3).contains(&part_target),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            .strip_prefix("http://192.0.2.7:8080/live/")
            .and_then(segment_msn)
            .is_some()),
        "{text}"
    );
    // Files on disk: written atomically, old segments deleted.
    let live = dir.join("live");
    let listing = retry(Duration::from_secs(30), || {
        let names: Vec<String> = std::fs::read_dir(&live)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        let segs = names.iter().filter(|n| segment_msn(n).is_some()).count();
        // The playlist on disk names files that exist.
        let on_disk = std::fs::read_to_string(live.join("index.m3u8")).unwrap_or_default();
        let init_listed = on_disk
            .split("init-")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .is_some_and(|rest| names.contains(&format!("init-{rest}")));
        let seen_enough = text_has_msn_over(&names, 4);
        if names.contains(&"init.mp4".to_string())
            && init_listed
            && names.contains(&"index.m3u8".to_string())
            && seen_enough
            && segs <= 3
        {
            Ok(names)
        } else {
            Err(format!("{names:?}"))
        }
    });
    assert!(listing.iter().all(|n| !n.ends_with(".tmp")), "{listing:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn text_has_msn_over(names: &[String], msn: u64) -> bool {
    names.iter().filter_map(|n| segment_msn(n)).any(|n| n > msn)
}

#[test]
fn a_stalled_publisher_with_its_connection_open_ends_blocking_requests_with_503() {
    let server = TestServer::start();
    let publisher = livefeed_publisher(&server.url("cam"), "tcp", &[]);
    wait_for_stream(&server.addr(), "cam");
    let (text, target) = playlist_and_target(&server, "cam");
    // Freeze the publisher: its TCP connection stays open, nothing more arrives.
    let pid = publisher.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill")
        .success());
    let started = Instant::now();
    let r = http_get(
        server.http_port,
        &format!("/cam/index.m3u8?_HLS_msn={}", last_msn(&text) + 2),
        Duration::from_secs(30),
    );
    let waited = started.elapsed();
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        waited <= Duration::from_secs(3 * target) + Duration::from_millis(1500),
        "ended after {waited:?} (target {target} s)"
    );
}

#[test]
fn an_msn_that_left_the_playlist_gets_the_current_playlist_at_once() {
    let server = server_with_test_source(&[
        "--segment-duration",
        "0.5",
        "--playlist-length",
        "2",
        "--max-files",
        "2",
    ]);
    // Wait until segment 0 has left the playlist and the retained files.
    retry(Duration::from_secs(30), || {
        let text = http_get(server.http_port, "/live/index.m3u8", WAIT).text();
        match tag(&text, "#EXT-X-MEDIA-SEQUENCE:").and_then(|v| v.parse::<u64>().ok()) {
            Some(first) if first >= 3 => Ok(()),
            other => Err(format!("media sequence {other:?}")),
        }
    });
    let started = Instant::now();
    let r = http_get(
        server.http_port,
        "/live/index.m3u8?_HLS_msn=0&_HLS_part=0",
        WAIT,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert!(!r.text().contains("-seg0.m4s"), "{}", r.text());
    assert_eq!(
        http_get(server.http_port, "/live/seg0.m4s", WAIT).status,
        404
    );
}

/// A publisher whose keyframes never arrive (ffmpeg with its IDR slices filtered out: SPS, PPS
/// and P-frames only) gets its LL-HLS readers a 503 that says so, not "stalled".
#[test]
fn a_publisher_without_keyframes_is_named_as_such() {
    let server = TestServer::start();
    let url = server.url("ponly");
    let _publisher =
        ffmpeg_publisher_with(&url, "tcp", 30, &["-bsf:v", "filter_units=remove_types=5"]);
    wait_for_stream(&server.addr(), "ponly");
    let started = std::time::Instant::now();
    let playlist = http_get(
        server.http_port,
        "/ponly/index.m3u8",
        Duration::from_secs(15),
    );
    assert_eq!(playlist.status, 503, "{}", playlist.text());
    assert!(
        playlist.text().contains("no keyframe yet") && playlist.text().contains("P-frames"),
        "{}",
        playlist.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered within the blocking timeout"
    );
}
