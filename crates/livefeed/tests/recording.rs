//! Recording: about 10 s of the demo recorded in 3-second files; ffprobe reads every file,
//! each file's duration reaches the next file's start (they add up to the whole recording),
//! the capture time in each file's name is its first frame's SEI stamp; the API lists and
//! serves the files and stops and restarts the recording.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use livefeed_media::{h264, sei};

/// The Unix ms a `YYYY-MM-DD_HH-MM-SS-mmm.mp4` name stands for (parsed by hand here, so the
/// test does not trust the server's own parser).
fn name_ms(name: &str) -> i64 {
    let d: Vec<i64> = name
        .trim_end_matches(".mp4")
        .split(['-', '_'])
        .map(|p| p.parse().expect("digits"))
        .collect();
    assert_eq!(d.len(), 7, "{name}");
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + d[3]) * 60 + d[4]) * 60_000 + d[5] * 1000 + d[6]
}

fn probe_duration(file: &Path) -> f64 {
    let out = run(
        "ffprobe",
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
        Duration::from_secs(20),
    );
    out.assert_success();
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{file:?}: {}", out.stdout))
}

/// The SEI capture stamp of the file's first frame, Unix ms.
fn first_frame_stamp_ms(file: &Path) -> i64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-c:v",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-frames:v",
            "1",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nals: Vec<Bytes> = h264::split_annex_b(&out.stdout)
        .into_iter()
        .map(Bytes::copy_from_slice)
        .collect();
    let stamp = sei::find_stamp(&nals).unwrap_or_else(|| panic!("no SEI stamp in {file:?}"));
    (stamp.unix_ns / 1_000_000) as i64
}

fn mp4_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "mp4"));
    files.sort();
    files
}

#[test]
fn ten_seconds_of_the_demo_are_recorded_in_playable_files() {
    let record_dir = TempDir::new("livefeed-rec");
    let server = TestServer::demo_with(
        60,
        &[
            "--record",
            "live",
            "--record-segment",
            "3",
            "--record-dir",
            record_dir.path(),
        ],
    );
    let dir = record_dir.0.join("live");
    retry(Duration::from_secs(20), || match mp4_files(&dir).len() {
        0 => Err("no recording yet".to_string()),
        _ => Ok(()),
    });
    std::thread::sleep(Duration::from_secs(10));
    let stop = http_request(
        server.http_port,
        "DELETE",
        "/api/v1/recordings/live",
        None,
        b"",
        Duration::from_secs(5),
    );
    assert_eq!(stop.status, 204, "{}", stop.text());
    std::thread::sleep(Duration::from_millis(500));

    let files = mp4_files(&dir);
    assert!(files.len() >= 3, "about 10 s in 3 s files: {files:?}");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    let mut total = 0.0;
    for (i, file) in files.iter().enumerate() {
        let duration = probe_duration(file);
        total += duration;
        assert_eq!(
            first_frame_stamp_ms(file),
            name_ms(&names[i]),
            "{}: the name is the first frame's capture time",
            names[i]
        );
        if let Some(next) = names.get(i + 1) {
            let gap_ms = name_ms(next) - name_ms(&names[i]);
            assert!(
                (gap_ms as f64 - duration * 1000.0).abs() < 100.0,
                "{}: {duration} s long, the next file starts {gap_ms} ms later",
                names[i]
            );
            assert!(
                (2.9..4.2).contains(&duration),
                "cut near 3 s at a keyframe: {duration}"
            );
        }
    }
    assert!(
        (9.0..16.0).contains(&total),
        "about 10 s recorded: {total} s in {names:?}"
    );

    // The API lists every file and serves it byte for byte.
    let list = http_get(
        server.http_port,
        "/api/v1/recordings",
        Duration::from_secs(5),
    );
    let list: serde_json::Value = serde_json::from_slice(&list.body).expect("JSON");
    let listed = list["recordings"].as_array().expect("recordings");
    assert_eq!(listed.len(), files.len(), "{list}");
    let first = &listed[0];
    assert_eq!(
        (first["path"].as_str(), first["file"].as_str()),
        (Some("live"), Some(names[0].as_str()))
    );
    let url = first["url"].as_str().expect("url");
    let download = http_get(server.http_port, url, Duration::from_secs(10));
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type").as_deref(),
        Some("video/mp4")
    );
    assert_eq!(download.body, std::fs::read(&files[0]).expect("file"));
    for bad in [
        "/api/v1/recordings/live/../x.mp4",
        "/api/v1/recordings/live/notes.txt",
        "/api/v1/recordings/live/2020-01-01_00-00-00-000.mp4",
    ] {
        let r = http_get(server.http_port, bad, Duration::from_secs(5));
        assert!(matches!(r.status, 400 | 404), "{bad}: {}", r.status);
    }
    // Stopped: nothing grows; starting again makes a new file.
    assert_eq!(
        http_request(
            server.http_port,
            "DELETE",
            "/api/v1/recordings/live",
            None,
            b"",
            Duration::from_secs(5)
        )
        .status,
        404
    );
    let start = http_request(
        server.http_port,
        "POST",
        "/api/v1/recordings/live",
        None,
        b"",
        Duration::from_secs(5),
    );
    assert_eq!(start.status, 201, "{}", start.text());
    retry(Duration::from_secs(10), || {
        match mp4_files(&dir).len() > files.len() {
            true => Ok(()),
            false => Err("no new file".to_string()),
        }
    });
}
