//! Streams with sound: real publishers (ffmpeg, GStreamer) send H.264 or H.265 with AAC, Opus
//! or G.711 over RTSP TCP and UDP; every track is served back over RTSP, LL-HLS and in
//! recordings, where ffprobe finds the same tracks and ffmpeg decodes pictures and seconds of
//! sound.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The codec names ffprobe reads from `url` over `transport` (`None`: an LL-HLS URL), in
/// track order.
fn probe_codecs(url: &str, transport: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if let Some(transport) = transport {
        cmd.args(["-rtsp_transport", transport]);
    }
    let out = run(
        "ffprobe",
        cmd.args(["-show_entries", "stream=codec_name", "-of", "json"])
            .arg(url),
        Duration::from_secs(20),
    );
    out.assert_success();
    let probed: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("ffprobe JSON: {e}: {}", out.stdout));
    probed["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What ffmpeg decodes from `url` in `secs`: (video frames, seconds of audio). `transport`
/// is the RTSP transport, or `None` for an HTTP (LL-HLS) URL.
fn decode(url: &str, transport: Option<&str>, secs: u32) -> (usize, f64) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if let Some(transport) = transport {
        cmd.args(["-rtsp_transport", transport]);
    }
    let out = run(
        "ffmpeg reader",
        cmd.args(["-i", url])
            .args(["-t", &secs.to_string(), "-map", "0:v", "-map", "0:a"])
            .args(["-f", "framecrc", "-"]),
        Duration::from_secs(u64::from(secs) + 20),
    );
    out.assert_success();
    framecrc_summary(&out.stdout)
}

/// (video frames, audio seconds) of a `framecrc` listing with video as stream 0 and audio as
/// stream 1.
fn framecrc_summary(listing: &str) -> (usize, f64) {
    let mut audio_rate = 0.0;
    let mut frames = 0;
    let mut audio_ticks = 0.0;
    for line in listing.lines() {
        if let Some(tb) = line.strip_prefix("#tb 1: ") {
            let den = tb.split('/').nth(1).and_then(|d| d.trim().parse().ok());
            audio_rate = den.unwrap_or(0.0);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        match fields.first() {
            Some(&"0") => frames += 1,
            Some(&"1") => {
                audio_ticks += fields
                    .get(3)
                    .and_then(|d| d.parse::<f64>().ok())
                    .unwrap_or(0.0)
            }
            _ => {}
        }
    }
    assert!(audio_rate > 0.0, "no audio time base in:\n{listing:.2000}");
    (frames, audio_ticks / audio_rate)
}

/// The video encoders the tests publish with.
#[derive(Clone, Copy)]
enum Video {
    H264,
    H265,
}

impl Video {
    fn encoder(self) -> &'static str {
        match self {
            Video::H264 => "libx264",
            Video::H265 => "libx265",
        }
    }

    /// ffprobe's codec name.
    fn probed(self) -> &'static str {
        match self {
            Video::H264 => "h264",
            Video::H265 => "hevc",
        }
    }

    /// livefeed's API name.
    fn api(self) -> &'static str {
        match self {
            Video::H264 => "h264",
            Video::H265 => "h265",
        }
    }
}

fn publish_and_read_back(audio_codec: &str, expected: &str, publish_over: &str, read_over: &str) {
    publish_and_read_back_video(Video::H264, audio_codec, expected, publish_over, read_over);
}

fn publish_and_read_back_video(
    video: Video,
    audio_codec: &str,
    expected: &str,
    publish_over: &str,
    read_over: &str,
) {
    let record_dir = TempDir::new("livefeed-rec");
    let server = TestServer::start_with(&[
        "--record",
        "av",
        "--record-segment",
        "3",
        "--record-dir",
        record_dir.path(),
    ]);
    let url = server.url("av");
    let mut publisher =
        ffmpeg_av_publisher_with(&url, publish_over, video.encoder(), audio_codec, 30);
    wait_for_stream(&server.addr(), "av");
    let video_name = video.probed();
    assert_eq!(
        probe_codecs(&url, Some(read_over)),
        [video_name, expected],
        "tracks read back over RTSP/{read_over}"
    );
    let (frames, audio_secs) = decode(&url, Some(read_over), 4);
    assert!(frames >= 60, "decoded {frames} video frames in 4 s");
    assert!(
        audio_secs >= 2.0,
        "decoded {audio_secs:.2} s of audio in 4 s"
    );
    if hls_carries(audio_codec) {
        let hls = format!("{}/av/index.m3u8", server.http());
        assert_eq!(
            probe_codecs(&hls, None),
            [video_name, muxed(expected)],
            "over LL-HLS"
        );
        let (frames, audio_secs) = decode(&hls, None, 4);
        assert!(frames >= 60, "decoded {frames} video frames from LL-HLS");
        assert!(
            audio_secs >= 2.0,
            "decoded {audio_secs:.2} s of audio from LL-HLS"
        );
    }
    if records(audio_codec) {
        let file = retry(Duration::from_secs(20), || {
            let files = mp4_files(&record_dir.0.join("av"));
            match files.len() {
                0 | 1 => Err(format!("no complete recording yet: {files:?}")),
                _ => Ok(files[0].clone()),
            }
        });
        let file = file.to_string_lossy().into_owned();
        assert_eq!(
            probe_codecs(&file, None),
            [video_name, muxed(expected)],
            "the recording"
        );
        let (frames, audio_secs) = decode(&file, None, 10);
        assert!(frames >= 60, "{frames} video frames in {file}");
        assert!(audio_secs >= 2.0, "{audio_secs:.2} s of audio in {file}");
    }
    let api = http_get(server.http_port, "/api/v1/paths", Duration::from_secs(5)).text();
    for codec in [video.api(), api_codec(audio_codec)] {
        assert!(api.contains(&format!("\"codec\":\"{codec}\"")), "{api}");
    }
    let still_publishing = publisher.is_running();
    assert!(
        still_publishing,
        "the publisher was not refused: {}",
        publisher.stderr_so_far()
    );
}

/// Whether recordings carry this audio codec (yet).
fn records(ffmpeg_codec: &str) -> bool {
    matches!(ffmpeg_codec, "aac" | "aac-latm" | "libopus" | "pcm_mulaw")
}

/// The audio codec of LL-HLS and recordings: G.711 is transcoded to Opus (fMP4 players do not
/// take G.711).
fn muxed(expected: &str) -> &str {
    match expected {
        "pcm_mulaw" | "pcm_alaw" => "opus",
        other => other,
    }
}

/// The .mp4 files of a directory, oldest first.
fn mp4_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "mp4"));
    files.sort();
    files
}

/// Whether LL-HLS carries this audio codec (yet).
fn hls_carries(ffmpeg_codec: &str) -> bool {
    matches!(ffmpeg_codec, "aac" | "aac-latm" | "libopus" | "pcm_mulaw")
}

fn api_codec(ffmpeg_codec: &str) -> &'static str {
    match ffmpeg_codec {
        "aac" | "aac-latm" => "aac",
        "libopus" => "opus",
        "pcm_mulaw" => "pcmu",
        other => panic!("no API name for {other}"),
    }
}

#[test]
fn ffmpeg_h264_aac_over_tcp_is_served_with_both_tracks() {
    publish_and_read_back("aac", "aac", "tcp", "tcp");
}

#[test]
fn ffmpeg_h264_aac_over_udp_is_served_with_both_tracks() {
    publish_and_read_back("aac", "aac", "udp", "udp");
}

/// AAC as MP4A-LATM (RFC 6416; ffmpeg `-rtpflags latm`, as many IP cameras send it): passed
/// through on RTSP, depacketized for LL-HLS and the recording.
#[test]
fn ffmpeg_h264_aac_latm_over_udp_is_served_with_both_tracks() {
    publish_and_read_back("aac-latm", "aac", "udp", "udp");
}

#[test]
fn ffmpeg_h265_aac_over_tcp_is_served_with_both_tracks() {
    publish_and_read_back_video(Video::H265, "aac", "aac", "tcp", "tcp");
}

#[test]
fn ffmpeg_h265_aac_over_udp_is_served_with_both_tracks() {
    publish_and_read_back_video(Video::H265, "aac", "aac", "udp", "udp");
}

#[test]
fn ffmpeg_h264_opus_is_served_with_both_tracks() {
    publish_and_read_back("libopus", "opus", "tcp", "udp");
}

#[test]
fn ffmpeg_h264_pcmu_is_served_with_both_tracks() {
    publish_and_read_back("pcm_mulaw", "pcm_mulaw", "udp", "tcp");
}

#[test]
fn gstreamer_h264_opus_is_served_with_both_tracks() {
    let server = TestServer::start();
    let url = server.url("gst");
    let pipeline = format!(
        "rtspclientsink name=s location={url} protocols=tcp \
         videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! video/x-h264,profile=baseline ! s. \
         audiotestsrc is-live=true ! audioconvert ! audioresample ! opusenc ! s."
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q").args(pipeline.split_whitespace());
    let mut publisher = Proc::spawn("gst-launch rtspclientsink", &mut cmd);
    wait_for_stream(&server.addr(), "gst");
    assert_eq!(probe_codecs(&url, Some("tcp")), ["h264", "opus"]);
    let (frames, audio_secs) = decode(&url, Some("tcp"), 4);
    assert!(frames >= 60, "decoded {frames} video frames in 4 s");
    assert!(
        audio_secs >= 2.0,
        "decoded {audio_secs:.2} s of audio in 4 s"
    );
    let hls = format!("{}/gst/index.m3u8", server.http());
    assert_eq!(probe_codecs(&hls, None), ["h264", "opus"], "over LL-HLS");
    let (frames, audio_secs) = decode(&hls, None, 4);
    assert!(frames >= 60, "decoded {frames} video frames from LL-HLS");
    assert!(
        audio_secs >= 2.0,
        "decoded {audio_secs:.2} s of audio from LL-HLS"
    );
    assert!(publisher.is_running(), "{}", publisher.stderr_so_far());
}

#[test]
fn a_reader_that_sets_up_only_the_video_gets_only_the_video() {
    let server = TestServer::start();
    let url = server.url("av");
    let _publisher = ffmpeg_av_publisher(&url, "tcp", "aac", 30);
    wait_for_stream(&server.addr(), "av");
    let mut conn = Raw::connect(&server);
    let session = play_tcp(&mut conn, &server, "av");
    assert!(!session.is_empty());
    let frames = conn.interleaved_for(Duration::from_secs(2));
    assert!(
        frames.iter().any(|(ch, _, _)| *ch == 0),
        "video RTP on channel 0"
    );
    assert!(
        frames.iter().all(|(ch, _, _)| *ch <= 1),
        "only the set-up track's channels: {:?}",
        frames
            .iter()
            .map(|f| f.0)
            .collect::<std::collections::BTreeSet<_>>()
    );
}

/// The times (s, from the start of the decoded sound) at which the beeps of livefeed's test
/// tone begin in `secs` of `url`'s audio, decoded by ffmpeg to 48 kHz mono: 10 ms windows whose
/// peak passes 0.3 after a window below 0.15 (the hum peaks at 0.05, the beep at 0.55).
fn beep_onsets(url: &str, transport: Option<&str>, secs: u32) -> Vec<f64> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if let Some(transport) = transport {
        cmd.args(["-rtsp_transport", transport]);
    }
    cmd.args(["-i", url, "-t", &secs.to_string(), "-map", "0:a"])
        .args(["-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
        .stdout(std::process::Stdio::piped());
    let child = cmd.spawn().expect("ffmpeg");
    let out = child.wait_with_output().expect("ffmpeg output");
    assert!(out.status.success(), "ffmpeg decoding {url}");
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut onsets = Vec::new();
    let mut quiet = false;
    for (i, window) in samples.chunks(480).enumerate() {
        let peak = window.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        if quiet && peak > 0.3 {
            onsets.push(i as f64 * 0.01);
        }
        quiet = peak < 0.15;
    }
    onsets
}

/// A server with `livefeed publish --audio tone` publishing on `tone` over `transport`:
/// (server, the path's URL, the publisher).
fn tone_publisher(transport: &str) -> (TestServer, String, Proc) {
    let server = TestServer::start();
    let url = server.url("tone");
    let publisher = livefeed_publisher(&url, transport, &["--duration", "30", "--audio", "tone"]);
    wait_for_stream(&server.addr(), "tone");
    (server, url, publisher)
}

/// `livefeed publish --audio tone`: the test pattern with an Opus test tone beside it, over
/// RTSP TCP and UDP. ffprobe reads both tracks back over RTSP and LL-HLS, and the beeps the
/// tone carries at each whole second of capture time come out of the decoded sound one second
/// apart (within a 10 ms window).
#[test]
fn livefeed_publisher_with_the_test_tone_is_served_with_both_tracks() {
    for transport in ["tcp", "udp"] {
        let (server, url, publisher) = tone_publisher(transport);
        assert_eq!(
            probe_codecs(&url, Some(transport)),
            ["h264", "opus"],
            "{transport}: over RTSP"
        );
        let hls = format!("{}/tone/index.m3u8", server.http());
        assert_eq!(probe_codecs(&hls, None), ["h264", "opus"], "over LL-HLS");
        let onsets = beep_onsets(&url, Some(transport), 5);
        assert!(
            onsets.len() >= 4,
            "{transport}: a beep each second: {onsets:?}"
        );
        for pair in onsets.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                (gap - 1.0).abs() <= 0.02,
                "{transport}: beeps one second apart: {onsets:?}"
            );
        }
        drop(publisher);
    }
}

/// `livefeed receive` of a stream with the test tone, over TCP and UDP: it takes the audio
/// track too and reports audio capture→received (from the capture times the server's sender
/// reports carry: at least the 20 ms an Opus frame takes to fill) and the A/V offset (each
/// beep against the video frame captured at the same second: small on loopback), beside the
/// usual video stages.
#[test]
fn livefeed_receiver_measures_audio_latency_and_the_av_offset_of_the_test_tone() {
    for transport in ["tcp", "udp"] {
        let (_server, url, publisher) = tone_publisher(transport);
        let out =
            livefeed_receiver(&url, 6, &["--transport", transport]).wait(Duration::from_secs(40));
        out.assert_success();
        let summary = json_summary(&out.stdout);
        let stages = &summary["stages"];
        let audio = &stages["audio_capture_to_received"];
        let count = audio["count"].as_u64().unwrap_or(0);
        assert!(count >= 200, "{transport}: 50 packets a second: {summary}");
        let p50 = audio["p50"].as_f64().unwrap_or(-1.0);
        assert!(
            (19.0..=150.0).contains(&p50),
            "{transport}: a frame's 20 ms plus the trip: {summary}"
        );
        let offset = &stages["av_offset"];
        assert!(
            offset["count"].as_u64().unwrap_or(0) >= 4,
            "{transport}: a beep a second paired with its frame: {summary}"
        );
        let p50 = offset["p50"].as_f64().unwrap_or(f64::MAX);
        assert!(p50.abs() <= 40.0, "{transport}: {summary}");
        assert!(stages["capture_to_decoded"]["count"].as_u64().unwrap_or(0) >= 120);
        assert_eq!(summary["mismatches"], 0, "{transport}: {summary}");
        drop(publisher);
    }
}

/// ffmpeg sending a 320x240 test pattern in `video_codec` (x264 settings) with a 1 kHz AAC tone
/// as `format` (`flv` for RTMP, `mpegts` for SRT) to `url` for `secs` seconds.
fn ffmpeg_av_sender(url: &str, video_codec: &str, format: &str, secs: u32) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            video_codec,
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", "30"])
        .args(["-c:a", "aac", "-f", format, url]);
    Proc::spawn(&format!("ffmpeg {format} publisher"), &mut cmd)
}

fn ffmpeg_rtmp_publisher(url: &str, video_codec: &str, secs: u32) -> Proc {
    ffmpeg_av_sender(url, video_codec, "flv", secs)
}

/// The H.264 + AAC stream published on `path` (by `protocol`, as the API must name it) is read
/// back: ffprobe finds both tracks over RTSP, ffmpeg decodes ≥ 60 frames and ≥ 2 s of sound
/// over RTSP and ≥ 45 frames and ≥ 1.5 s over LL-HLS.
fn assert_h264_aac_read_back(server: &TestServer, path: &str, protocol: &str) {
    assert_eq!(
        probe_codecs(&server.url(path), Some("tcp")),
        ["h264", "aac"]
    );
    let (frames, audio) = decode(&server.url(path), Some("tcp"), 4);
    assert!(frames >= 60, "{frames} video frames over RTSP");
    assert!(audio >= 2.0, "{audio} s of audio over RTSP");
    let hls = format!("{}/{path}/index.m3u8", server.http());
    let (frames, audio) = decode(&hls, None, 3);
    assert!(
        frames >= 45 && audio >= 1.5,
        "LL-HLS: {frames} frames, {audio} s of audio"
    );
    let paths = http_get(
        server.http_port,
        &format!("/api/v1/paths/{path}"),
        Duration::from_secs(5),
    );
    let json: serde_json::Value = serde_json::from_slice(&paths.body).expect("JSON");
    assert_eq!(json["publisher"]["protocol"], protocol, "{json}");
}

#[test]
fn ffmpeg_publishes_h264_aac_over_srt_and_both_tracks_are_read_over_rtsp_llhls_and_srt() {
    let server = TestServer::start();
    // latency in µs (ffmpeg's unit): 50 ms, above the listener's 20 ms, so the publisher's applies.
    let url = format!(
        "srt://127.0.0.1:{}?streamid=publish:live/srt&latency=50000&pkt_size=1316",
        server.srt_port
    );
    let _publisher = ffmpeg_av_sender(&url, "libx264", "mpegts", 30);
    wait_for_stream(&server.addr(), "live/srt");
    assert_h264_aac_read_back(&server, "live/srt", "srt");
    // Read back over SRT (MPEG-TS muxed by livefeed), as MediaMTX's `read:PATH`.
    let srt_reader = format!("srt://127.0.0.1:{}?streamid=read:live/srt", server.srt_port);
    assert_eq!(probe_codecs(&srt_reader, None), ["h264", "aac"]);
    let (frames, audio) = decode(&srt_reader, None, 4);
    assert!(
        frames >= 60 && audio >= 2.0,
        "over SRT: {frames} frames, {audio} s of audio"
    );

    // A second publisher on the busy path, a bad stream id, a reader of a path without a stream
    // and an encrypted publisher are refused, each with a log line naming the peer and the cause
    // (never the stream id, which may hold a password); the first publisher streams on.
    for (streamid, cause) in [
        ("publish:live/srt", "already has a publisher"),
        ("record:live/srt", "is not publish:PATH or read:PATH"),
        ("read:live/none", "no stream is being published on path"),
        (
            "publish:live/other&passphrase=0123456789abcdef&pbkeylen=16",
            "encrypted SRT (a passphrase) is not supported",
        ),
    ] {
        let url = format!("srt://127.0.0.1:{}?streamid={streamid}", server.srt_port);
        let refused = run(
            "ffmpeg SRT publisher (refused)",
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error"])
                .args([
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=160x120:rate=10",
                    "-t",
                    "2",
                ])
                .args(["-c:v", "libx264", "-f", "mpegts", &url]),
            Duration::from_secs(30),
        );
        assert!(!refused.success, "{streamid}: refused: {}", refused.stderr);
        retry(Duration::from_secs(10), || {
            let log = server.proc.stderr_so_far();
            log.lines()
                .any(|l| {
                    l.contains("SRT connection refused")
                        && l.contains(cause)
                        && l.contains("peer=127.0.0.1:")
                })
                .then_some(())
                .ok_or(format!("no refusal naming {cause:?}: {log}"))
        });
    }
    let (frames, _) = decode(&server.url("live/srt"), Some("tcp"), 2);
    assert!(
        frames >= 30,
        "the first publisher streams on: {frames} frames"
    );
}

#[test]
fn ffmpeg_publishes_h264_aac_over_rtmp_and_both_tracks_are_read_over_rtsp_llhls_and_rtmp() {
    let server = TestServer::start();
    let url = format!("rtmp://127.0.0.1:{}/live/cam", server.rtmp_port);
    let _publisher = ffmpeg_rtmp_publisher(&url, "libx264", 30);
    wait_for_stream(&server.addr(), "live/cam");
    assert_h264_aac_read_back(&server, "live/cam", "rtmp");
    // Read back over RTMP (FLV tags written by livefeed), at the URL it was published to.
    // The data message rml_rtmp sends when play starts (`|RtmpSampleAccess`) shows in ffprobe
    // as a `text` stream beside the media.
    let media: Vec<String> = probe_codecs(&url, None)
        .into_iter()
        .filter(|codec| codec != "text")
        .collect();
    assert_eq!(media, ["h264", "aac"], "over RTMP");
    let (frames, audio) = decode(&url, None, 4);
    assert!(
        frames >= 60 && audio >= 2.0,
        "over RTMP: {frames} frames, {audio} s of audio"
    );
}

#[test]
fn rtmp_publishing_needs_the_publish_permission() {
    let users = TempDir::new("livefeed-rtmp-users");
    let config = std::path::Path::new(users.path()).join("livefeed.toml");
    std::fs::write(
        &config,
        "[[users]]\nuser = \"cam\"\npass = \"rtmp-secret\"\npermissions = [\"publish\", \"read\"]\n\n\
         [[users]]\nuser = \"any\"\npermissions = [\"read\"]\n",
    )
    .expect("config");
    let server = TestServer::start_with(&["--config", config.to_str().expect("utf-8")]);
    // Without credentials: refused, with a log line naming the peer and the reason.
    let anonymous = format!("rtmp://127.0.0.1:{}/live/door", server.rtmp_port);
    let out = ffmpeg_rtmp_publisher(&anonymous, "libx264", 3).wait(Duration::from_secs(20));
    assert!(!out.success, "an anonymous RTMP publisher was accepted");
    let log = server.proc.stderr_so_far();
    assert!(
        log.lines()
            .any(|l| l.contains("RTMP publish refused") && l.contains("peer=127.0.0.1")),
        "{log}"
    );
    assert!(!server.proc.stderr_so_far().contains("rtmp-secret"));
    // With them (MediaMTX's query form): accepted.
    let allowed = format!(
        "rtmp://127.0.0.1:{}/live/door?user=cam&pass=rtmp-secret",
        server.rtmp_port
    );
    let _publisher = ffmpeg_rtmp_publisher(&allowed, "libx264", 20);
    wait_for_stream(&server.addr(), "live/door");
    // Reading a path with no stream over RTMP: refused with the reason, logged.
    let missing = format!("rtmp://127.0.0.1:{}/live/none", server.rtmp_port);
    let out = run(
        "ffprobe",
        Command::new("ffprobe").args(["-v", "error", &missing]),
        Duration::from_secs(20),
    );
    assert!(!out.success && !out.timed_out, "{}", out.stderr);
    let log = server.proc.stderr_so_far();
    assert!(
        log.lines()
            .any(|l| l.contains("RTMP play refused") && l.contains("no stream")),
        "{log}"
    );
}

/// A TCP connection to `port` that has done the RTMP handshake as a client.
fn rtmp_handshaken(port: u16) -> std::net::TcpStream {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut handshake = Handshake::new(PeerType::Client);
    let hello = handshake.generate_outbound_p0_and_p1().expect("c0c1");
    stream.write_all(&hello).expect("write");
    let mut buf = vec![0u8; 8192];
    loop {
        let n = stream.read(&mut buf).expect("handshake reply");
        assert!(n > 0, "closed during the handshake");
        match handshake
            .process_bytes(&buf[..n])
            .expect("a valid handshake")
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).expect("write");
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                stream.write_all(&response_bytes).expect("write");
                return stream;
            }
        }
    }
}

/// One RTMP message of `kind` with `payload` announced as `len` bytes, on chunk stream 3
/// (type 0 header), and what follows until the server closes.
fn rtmp_send(stream: &mut std::net::TcpStream, kind: u8, len: usize, payload: &[u8]) {
    use std::io::{Read, Write};
    let mut message = vec![0x03, 0, 0, 0];
    message.extend(&(len as u32).to_be_bytes()[1..]);
    message.extend([kind, 0, 0, 0, 0]);
    message.extend(payload);
    let _ = stream.write_all(&message);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

/// Hostile RTMP peers, after a real handshake: one announces a 1 MiB AMF command made of
/// nested arrays (enough to overflow any stack if parsed by recursion), one sends a command
/// of a single value (which the RTMP library indexes past). Each connection is closed with a
/// log line naming the peer and the cause, and the server goes on serving.
#[test]
fn hostile_rtmp_commands_close_only_their_connection() {
    let server = TestServer::start();
    let mut deep = rtmp_handshaken(server.rtmp_port);
    rtmp_send(&mut deep, 20, 1 << 20, &[0x0a, 0, 0, 0, 1].repeat(4096));
    let mut short = rtmp_handshaken(server.rtmp_port);
    rtmp_send(&mut short, 20, 4, &[0x02, 0, 1, b'a']);
    retry(Duration::from_secs(5), || {
        let log = server.proc.stderr_so_far();
        let closed = |cause: &str| {
            log.lines().any(|l| {
                l.contains("RTMP connection closed")
                    && l.contains(cause)
                    && l.contains("peer=127.0.0.1")
            })
        };
        if closed("4096-byte cap") && closed("could not read a message") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let mut server = server;
    assert!(server.proc.is_running(), "the server died");
    let resp = raw_exchange(
        &server.addr(),
        "OPTIONS rtsp://127.0.0.1/x RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    );
    assert!(resp.starts_with("RTSP/1.0 200"), "{resp}");
}
