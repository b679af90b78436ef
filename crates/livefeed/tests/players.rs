//! Players people use, run as separate processes against a real `livefeed serve --test-src`:
//! GStreamer (playbin3 with hlsdemux2, and playbin with the older hlsdemux) and VLC 3 on LL-HLS,
//! and VLC 3 on RTSP over TCP and UDP (ignored here: Debian 12's VLC is built without live555, so
//! it has no RTSP client at all; they run with `--ignored` where VLC has one).
//!
//! Every check looks at the pictures the player decoded: each player writes them out (GStreamer
//! as raw 320×240 grey frames, VLC through its `scene` video filter as PNG files that ffmpeg
//! turns into the same raw frames), and the test reads the pixel timecode of every picture
//! (`livefeed_media::timecode`). A player passes when it decoded enough distinct frames, in
//! order, and their capture times span several seconds: it followed the live stream, rather
//! than decoding what the first playlist listed and stalling.
//!
//! VLC refuses to run as root; as root (CI) it is started as `nobody` through `setpriv`, which
//! execs VLC in place, so [`Proc`] still kills VLC itself.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use livefeed_media::timecode::{self, Timecode};

/// Size of the grey frames every player's pictures are turned into (the timecode strip is read
/// at any size with the picture's aspect ratio).
const WIDTH: usize = 320;
const HEIGHT: usize = 240;

/// The caps every GStreamer test pipeline ends with before its file sink.
const GREY: &str = "videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=320,height=240";

/// GStreamer warnings that explain an HLS stall, kept in the test's stderr.
const GST_DEBUG: &str = "hlsng:2,hlsdemux2:2,adaptivedemux2:2,hlsdemux:2";

/// Why playbin3 may stall, for the failure message.
const HLSDEMUX2_NOTE: &str = "GStreamer 1.22's hlsdemux2 cannot follow a live playlist whose \
    first load lists a single segment (m3u8.c gst_hls_media_playlist_sync_to_playlist skips \
    index 0: 'Could not synchronize media playlists', 'Lost synchronization', 'Seeking failed', \
    then it polls the playlist forever); livefeed must not answer a path's first playlist \
    request before two segments are complete";

/// A server publishing the test pattern on `live`, whose LL-HLS stream is not started yet: the
/// player's playlist request is the path's first, as for the first viewer after a start.
fn server() -> TestServer {
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    server
}

fn playlist_url(server: &TestServer) -> String {
    format!("{}/live/index.m3u8", server.http())
}

/// The pictures a player decoded, read back from raw grey frames.
struct Decoded {
    /// The timecode of every picture, in order (`None`: no readable strip).
    timecodes: Vec<Option<Timecode>>,
}

impl Decoded {
    /// Reads a file of raw `WIDTH`×`HEIGHT` grey frames (a missing file is no frame; a partial
    /// last frame, from a killed player, is ignored).
    fn from_grey_file(file: &Path) -> Decoded {
        let bytes = std::fs::read(file).unwrap_or_default();
        let timecodes = bytes
            .chunks_exact(WIDTH * HEIGHT)
            .map(|frame| timecode::read(frame, WIDTH, WIDTH, HEIGHT))
            .collect();
        Decoded { timecodes }
    }

    fn readable(&self) -> Vec<Timecode> {
        self.timecodes.iter().flatten().copied().collect()
    }

    /// Distinct frame numbers among the readable pictures.
    fn distinct(&self) -> usize {
        let mut frames: Vec<u32> = self.readable().iter().map(|t| t.frame).collect();
        frames.sort_unstable();
        frames.dedup();
        frames.len()
    }

    /// Capture time from the first to the last readable picture, in ms.
    fn span_ms(&self) -> u64 {
        let readable = self.readable();
        match (readable.first(), readable.last()) {
            (Some(first), Some(last)) => last.unix_ms.saturating_sub(first.unix_ms),
            _ => 0,
        }
    }

    fn summary(&self) -> String {
        let readable = self.readable();
        format!(
            "{} pictures, {} with a readable timecode, {} distinct frames, frames {:?}..{:?}, \
             capture times spanning {} ms",
            self.timecodes.len(),
            readable.len(),
            self.distinct(),
            readable.first().map(|t| t.frame),
            readable.last().map(|t| t.frame),
            self.span_ms()
        )
    }

    /// Asserts `player` decoded at least `min_frames` distinct frames, nearly all with a
    /// readable timecode, in capture order, spanning at least `min_span_ms` of capture time.
    fn assert_followed_the_live_stream(
        &self,
        player: &str,
        min_frames: usize,
        min_span_ms: u64,
        output: &Output,
        note: &str,
    ) {
        eprintln!("{player}: {}", self.summary());
        let readable = self.readable();
        let context = || {
            format!(
                "{player}: {}\n{note}\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
                self.summary(),
                tail(&output.stdout, 2000),
                tail(&output.stderr, 4000)
            )
        };
        assert!(
            self.distinct() >= min_frames,
            "decoded too few frames (want {min_frames}): {}",
            context()
        );
        assert!(
            readable.len() * 10 >= self.timecodes.len() * 9,
            "pictures without a readable timecode (garbled?): {}",
            context()
        );
        assert!(
            readable.windows(2).all(|w| w[0].frame <= w[1].frame),
            "pictures out of capture order: {}",
            context()
        );
        assert!(
            self.span_ms() >= min_span_ms,
            "the pictures span less than {min_span_ms} ms of capture time: the player stopped \
             following the live stream: {}",
            context()
        );
    }
}

/// The last `n` bytes of `s` (at a char boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

// ---------------------------------------------------------------------------------------------
// GStreamer on LL-HLS

/// playbin3 (Debian 12: GStreamer 1.22, hlsdemux2) plays the LL-HLS stream of a path it is the
/// first viewer of, for 180 frames (`identity eos-after` ends the pipeline), following the live
/// stream for several seconds.
///
/// Needs livefeed to answer a path's first playlist request only once two segments are
/// complete (see HLSDEMUX2_NOTE); with a single segment playbin3 decodes at most that segment
/// and stays "buffering" forever.
#[test]
fn gstreamer_playbin3_plays_ll_hls_as_the_first_viewer_of_a_path() {
    let server = server();
    let dir = TempDir::new("players-playbin3");
    let frames = dir.0.join("frames.grey");
    let sink = format!(
        "{GREY} ! identity eos-after=181 ! filesink location={}",
        frames.display()
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.env("GST_DEBUG", GST_DEBUG)
        .env("GST_DEBUG_NO_COLOR", "1")
        .args(["playbin3", &format!("uri={}", playlist_url(&server))])
        .arg(format!("video-sink={sink}"))
        .arg("audio-sink=fakesink");
    let output = Proc::spawn("gst-launch-1.0 playbin3", &mut cmd).wait(Duration::from_secs(30));
    let decoded = Decoded::from_grey_file(&frames);
    decoded.assert_followed_the_live_stream("playbin3", 150, 3000, &output, HLSDEMUX2_NOTE);
    assert!(
        output.stdout.contains("Got EOS"),
        "playbin3 did not reach the 180th frame:\n{}",
        tail(&output.stdout, 2000)
    );
}

/// playbin (the older one: decodebin2 picks hlsdemux from gstreamer1.0-plugins-bad, as
/// `souphttpsrc ! hlsdemux ! decodebin` does) plays the same stream as its first viewer: the
/// GStreamer 1.22 player that works with any livefeed. Runs 10 s, then is stopped.
#[test]
fn gstreamer_playbin_with_hlsdemux_plays_ll_hls_as_the_first_viewer_of_a_path() {
    let server = server();
    let dir = TempDir::new("players-playbin");
    let frames = dir.0.join("frames.grey");
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.env("GST_DEBUG", GST_DEBUG)
        .env("GST_DEBUG_NO_COLOR", "1")
        .args(["playbin", &format!("uri={}", playlist_url(&server))])
        .arg(format!(
            "video-sink={GREY} ! filesink location={}",
            frames.display()
        ))
        .arg("audio-sink=fakesink");
    // A live stream never ends: the player is stopped after 10 s.
    let output = Proc::spawn("gst-launch-1.0 playbin", &mut cmd).wait(Duration::from_secs(10));
    let decoded = Decoded::from_grey_file(&frames);
    decoded.assert_followed_the_live_stream("playbin (hlsdemux)", 90, 2500, &output, "");
}

// ---------------------------------------------------------------------------------------------
// VLC 3

/// Whether this process runs as root (effective UID 0), from /proc.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `cvlc` with `args`, as `nobody` when running as root (VLC refuses root), with its home (for
/// its config files) in `home`. Panics with what to install when VLC is missing.
fn vlc(home: &Path, args: &[&str]) -> Command {
    let mut cmd = if running_as_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "cvlc"]);
        cmd
    } else {
        Command::new("cvlc")
    };
    cmd.env("HOME", home).args(args);
    cmd
}

/// What to install when VLC is missing.
const INSTALL_VLC: &str = "scripts/install-deps must install the Debian packages vlc-bin and \
    vlc-plugin-base (apt-get install --no-install-recommends vlc-bin vlc-plugin-base)";

/// Panics with a clear message unless VLC can run here; returns its module list.
fn vlc_modules(home: &Path) -> String {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("cvlc").is_file()));
    assert!(
        on_path,
        "VLC is not installed (no cvlc on PATH): {INSTALL_VLC}"
    );
    let out = run(
        "cvlc --list",
        vlc(home, &["--list"]).env("LANG", "C"),
        Duration::from_secs(30),
    );
    assert!(
        out.success && out.stdout.contains("avcodec"),
        "VLC does not run or has no H.264 decoder (cvlc --list failed or lists no avcodec): \
         {INSTALL_VLC}\n--- stdout (tail)\n{}\n--- stderr\n{}",
        tail(&out.stdout, 1000),
        out.stderr
    );
    out.stdout
}

/// A directory VLC, running as `nobody`, can write into.
fn vlc_dir(prefix: &str) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new(prefix);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

/// Plays `url` headless for `secs` seconds of media with VLC, writing every picture it
/// displays as a PNG (video filter `scene`, video output `dummy`), then turns the PNGs into raw
/// grey frames with ffmpeg. `extra` goes before the URL (e.g. `--rtsp-tcp`).
fn vlc_play(url: &str, secs: u32, extra: &[&str]) -> (Decoded, Output) {
    let dir = vlc_dir("players-vlc");
    let home = dir.0.join("home");
    let pictures = dir.0.join("pictures");
    for d in [&home, &pictures] {
        std::fs::create_dir_all(d).expect("mkdir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let pictures_arg = pictures.to_str().expect("utf-8 path").to_string();
    let secs_arg = secs.to_string();
    let mut args = vec![
        "--play-and-exit",
        "--run-time",
        &secs_arg,
        "--no-audio",
        "--vout",
        "dummy",
        "--no-video-title-show",
        "--video-filter",
        "scene",
        "--scene-path",
        &pictures_arg,
        "--scene-format",
        "png",
        "--scene-ratio",
        "1",
        "--scene-prefix",
        "f",
        "--no-scene-replace",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let output =
        Proc::spawn("cvlc", &mut vlc(&home, &args)).wait(Duration::from_secs(u64::from(secs) + 30));
    let grey = dir.0.join("frames.grey");
    let pngs = std::fs::read_dir(&pictures).map_or(0, |d| d.count());
    if pngs > 0 {
        run(
            "ffmpeg (VLC's pictures to grey frames)",
            Command::new("ffmpeg")
                .args(["-hide_banner", "-v", "error", "-start_number", "1", "-i"])
                .arg(pictures.join("f%05d.png"))
                .args(["-vf", &format!("scale={WIDTH}:{HEIGHT}")])
                .args(["-pix_fmt", "gray", "-f", "rawvideo", "-y"])
                .arg(&grey),
            Duration::from_secs(60),
        )
        .assert_success();
    }
    (Decoded::from_grey_file(&grey), output)
}

/// VLC 3 (Debian 12's, its `adaptive` demuxer) plays the LL-HLS stream as its first viewer.
#[test]
fn vlc_plays_ll_hls_and_decodes_live_frames() {
    let server = server();
    let home = vlc_dir("players-vlc-home");
    vlc_modules(&home.0);
    let (decoded, output) = vlc_play(&playlist_url(&server), 6, &[]);
    decoded.assert_followed_the_live_stream("VLC (LL-HLS)", 90, 2000, &output, "");
}

/// Panics unless this VLC has an RTSP client: VLC 3 plays RTSP only through its live555
/// module, and Debian 12's VLC is built with `--disable-live555` (no live555 in Debian 12).
fn assert_vlc_has_rtsp(home: &Path) {
    let modules = vlc_modules(home);
    assert!(
        modules
            .lines()
            .any(|l| l.split_whitespace().next() == Some("live555")),
        "this VLC has no RTSP client: VLC 3 reads RTSP only through its live555 module, and \
         Debian 12's VLC is built with --disable-live555 (live555 is not in Debian 12), so it \
         cannot play rtsp:// at all (it falls back to its SAT>IP access and demuxes garbage). \
         Run this test with a VLC built with live555."
    );
}

fn vlc_plays_rtsp(extra: &[&str]) {
    let home = vlc_dir("players-vlc-home");
    assert_vlc_has_rtsp(&home.0);
    let server = server();
    let (decoded, output) = vlc_play(&server.url("live"), 6, extra);
    let transport = if extra.contains(&"--rtsp-tcp") {
        "TCP"
    } else {
        "UDP"
    };
    decoded.assert_followed_the_live_stream(
        &format!("VLC (RTSP over {transport})"),
        90,
        2500,
        &output,
        "",
    );
}

/// VLC 3 plays RTSP with RTP interleaved over the RTSP TCP connection. Ignored: no VLC with an
/// RTSP client can be installed from Debian 12 (see [`assert_vlc_has_rtsp`]); run it with
/// `--ignored` where VLC has live555.
#[test]
#[ignore = "Debian 12's VLC has no RTSP client (built with --disable-live555)"]
fn vlc_plays_rtsp_over_tcp_and_decodes_live_frames() {
    vlc_plays_rtsp(&["--rtsp-tcp"]);
}

/// VLC 3 plays RTSP with RTP over UDP (live555's default). Ignored like the TCP test.
#[test]
#[ignore = "Debian 12's VLC has no RTSP client (built with --disable-live555)"]
fn vlc_plays_rtsp_over_udp_and_decodes_live_frames() {
    vlc_plays_rtsp(&[]);
}
