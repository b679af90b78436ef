//! The capture loop over a camera, through the same `CameraDevice` trait the V4L2 backend
//! implements: a fake camera hands over YUYV frames with driver timestamps 40 ms apart; every
//! frame is converted, stamped with the camera's capture time (not the time it was read),
//! timed from those timestamps, and encoded.

use livefeed_media::h264::{nal_type, nal_unit_type};
use livefeed_source::camera::{CameraDevice, CameraFormat, PixelFormat, RawFrame};
use livefeed_source::capture::{start_camera, CaptureSettings, SourceSpec};

const W: usize = 160;
const H: usize = 120;
/// A capture time an hour ago: a frame's stamp is never after the moment it is read (a later
/// one would be taken as that moment).
fn base_ns() -> u64 {
    livefeed_media::clock::unix_now_ns() - 3_600_000_000_000
}

struct FakeCamera {
    n: u64,
    buf: Vec<u8>,
    base_ns: u64,
}

impl CameraDevice for FakeCamera {
    fn format(&self) -> CameraFormat {
        CameraFormat {
            pixel: PixelFormat::Yuyv,
            width: W,
            height: H,
            fps: 25.0,
        }
    }

    fn next_frame(&mut self) -> anyhow::Result<RawFrame<'_>> {
        if self.n >= 10 {
            // The camera is "unplugged": the loop must end with this error.
            anyhow::bail!("camera gone");
        }
        let luma = (self.n * 20) as u8;
        self.buf = [luma, 128].repeat(W * H);
        let at = self.base_ns + self.n * 40_000_000;
        self.n += 1;
        std::thread::sleep(std::time::Duration::from_millis(5));
        Ok(RawFrame {
            data: &self.buf,
            capture_unix_ns: at,
        })
    }
}

#[test]
fn camera_frames_keep_the_driver_timestamps() {
    let settings = CaptureSettings {
        source: SourceSpec::TestPattern, // unused by start_camera
        width: W,
        height: H,
        fps: 25.0,
        bitrate_kbps: 300,
        gop: 5,
        clock_correction_ns: 0,
        encoder: Default::default(),
    };
    let base = base_ns();
    let mut capture = start_camera(
        Box::new(FakeCamera {
            n: 0,
            buf: Vec::new(),
            base_ns: base,
        }),
        &settings,
    )
    .expect("starts");
    assert_eq!(capture.format, (W, H, 25.0));
    let mut frames = Vec::new();
    while let Some(encoded) = capture.frames.blocking_recv() {
        frames.push(encoded);
    }
    let ended = capture.join();
    assert!(ended.is_err_and(|e| format!("{e:#}").contains("camera gone")));
    assert_eq!(frames.len(), 10);
    for (n, f) in frames.iter().enumerate() {
        let stamp = f.au.capture.expect("stamped");
        assert_eq!(stamp.unix_ns, base + n as u64 * 40_000_000, "frame {n}");
        assert_eq!(f.au.pts, n as u64 * 3600, "40 ms = 3600 ticks at 90 kHz");
    }
    assert!(frames[0].au.keyframe);
    assert!(frames[0]
        .au
        .nals
        .iter()
        .any(|n| nal_unit_type(n) == Some(nal_type::SPS)));
}
