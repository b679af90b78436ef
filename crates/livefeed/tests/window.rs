//! The receiver's preview window under Xvfb: `livefeed receive --window` opens a window that
//! shows the decoded picture with the red `REC` overlay. A screenshot of the virtual display
//! (ffmpeg x11grab) must hold the test pattern's colour bars and red overlay text; it is kept in
//! target/tmp/artifacts/receiver-window.png.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const SCREEN: (usize, usize) = (800, 600);

/// A display number no X server uses yet.
fn free_display() -> u32 {
    (90..400)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display number")
}

/// The screen as RGB bytes, and a PNG of it at `png`.
fn screenshot(display: &str, png: &Path) -> Vec<u8> {
    let size = format!("{}x{}", SCREEN.0, SCREEN.1);
    let grab = |args: &[&str]| {
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "x11grab",
                "-video_size",
                &size,
                "-i",
                display,
            ])
            .args(["-frames:v", "1"])
            .args(args)
            .output()
            .expect("ffmpeg runs")
    };
    let out = grab(&["-y", png.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = grab(&["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_receiver_window_shows_the_picture_with_the_red_overlay() {
    let n = free_display();
    let display = format!(":{n}");
    let mut xvfb_cmd = Command::new("Xvfb");
    xvfb_cmd.args([&display, "-screen", "0", "800x600x24", "-nolisten", "tcp"]);
    let _xvfb = Proc::spawn("Xvfb", &mut xvfb_cmd);
    retry(Duration::from_secs(10), || {
        match Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            true => Ok(()),
            false => Err("Xvfb not up yet".to_string()),
        }
    });
    let server = TestServer::start_with(&["--test-src"]);
    wait_for_stream(&server.addr(), "live");
    let mut cmd = livefeed();
    cmd.env("DISPLAY", &display).args([
        "receive",
        "--url",
        &server.url("live"),
        "--window",
        "--duration",
        "10",
        "--json",
    ]);
    let receiver = Proc::spawn("livefeed receive --window", &mut cmd);
    std::thread::sleep(Duration::from_secs(5));
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let png = artifacts.join("receiver-window.png");
    let rgb = screenshot(&display, &png);
    let out = receiver.wait(Duration::from_secs(30));
    out.assert_success();
    let summary = json_summary(&out.stdout);
    assert!(
        summary["frames_decoded"].as_u64().unwrap_or(0) >= 200,
        "{summary}"
    );

    // Classify every pixel of the screen.
    let pixels: Vec<(u8, u8, u8)> = rgb.chunks_exact(3).map(|p| (p[0], p[1], p[2])).collect();
    assert_eq!(pixels.len(), SCREEN.0 * SCREEN.1);
    let count =
        |f: &dyn Fn(u8, u8, u8) -> bool| pixels.iter().filter(|(r, g, b)| f(*r, *g, *b)).count();
    let red = count(&|r, g, b| r > 180 && g < 90 && b < 90);
    let yellow = count(&|r, g, b| r > 150 && g > 150 && b < 90);
    let cyan = count(&|r, g, b| r < 90 && g > 150 && b > 150);
    let magenta = count(&|r, g, b| r > 150 && g < 90 && b > 150);
    let lit = count(&|r, g, b| u16::from(r) + u16::from(g) + u16::from(b) > 60);
    assert!(
        lit > 640 * 480 / 3,
        "the window shows a picture ({lit} lit pixels): {}",
        png.display()
    );
    for (name, n) in [("yellow", yellow), ("cyan", cyan), ("magenta", magenta)] {
        assert!(
            n > 1000,
            "the colour bars ({name}: {n} pixels): {}",
            png.display()
        );
    }
    assert!(
        red > 300,
        "the red REC overlay ({red} red pixels): {}",
        png.display()
    );
    eprintln!("receiver window screenshot: {}", png.display());
}
