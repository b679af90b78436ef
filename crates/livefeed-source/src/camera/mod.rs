//! Webcams: what a camera offers ([`CameraFormat`]), choosing among it ([`negotiate`]), and a
//! frame source over any [`CameraDevice`] — the V4L2 backend ([`v4l2`]) or a fake in tests —
//! that converts YUYV, NV12 or MJPEG to I420 (or copies I420) and takes each frame's capture time from the device
//! (the driver's buffer timestamp), not from when the frame was read.

pub mod convert;
pub mod v4l2;

use std::fmt;

use livefeed_media::clock::unix_now_ns;

use crate::I420Frame;

/// Pixel formats livefeed can take from a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// Motion JPEG: one JPEG per frame.
    Mjpeg,
    /// Planar 4:2:0, Y then U then V (V4L2 `YU12`): the encoder's own format.
    I420,
    /// Semi-planar 4:2:0, Y then interleaved U V.
    Nv12,
}

impl PixelFormat {
    /// Parses a `--pixel-format` value: `yuyv`, `mjpeg`, `i420` (or `yu12`) or `nv12`.
    pub fn parse(s: &str) -> Result<PixelFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "yuyv" => Ok(PixelFormat::Yuyv),
            "mjpeg" | "mjpg" => Ok(PixelFormat::Mjpeg),
            "i420" | "yu12" => Ok(PixelFormat::I420),
            "nv12" => Ok(PixelFormat::Nv12),
            _ => Err(format!(
                "unknown pixel format {s:?} (yuyv, i420, nv12 or mjpeg)"
            )),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Mjpeg => "MJPEG",
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
        })
    }
}

/// One mode a camera offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraFormat {
    /// Pixel format.
    pub pixel: PixelFormat,
    /// Width, pixels.
    pub width: usize,
    /// Height, pixels.
    pub height: usize,
    /// Frames per second.
    pub fps: f64,
}

impl fmt::Display for CameraFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {} fps",
            self.pixel, self.width, self.height, self.fps
        )
    }
}

/// A camera as listed by `livefeed devices`.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// Device node, e.g. `/dev/video0`.
    pub path: String,
    /// What the driver calls it.
    pub name: String,
    /// Every mode it offers in a format livefeed takes.
    pub formats: Vec<CameraFormat>,
}

/// The mode closest to `width`×`height` at `fps`: the nearest size first (exact wins), then
/// the one that reaches the rate (or comes closest), then the cheapest to convert (I420, NV12,
/// YUYV, then MJPEG, which needs decoding).
/// Odd sizes are skipped (I420 needs even ones). `None` if the camera offers nothing usable.
pub fn negotiate(
    offered: &[CameraFormat],
    width: usize,
    height: usize,
    fps: f64,
) -> Option<CameraFormat> {
    offered
        .iter()
        .filter(|f| f.width % 2 == 0 && f.height % 2 == 0 && f.width > 0 && f.height > 0)
        .min_by(|a, b| {
            let (ra, rb) = (rank(a, width, height, fps), rank(b, width, height, fps));
            ra.0.cmp(&rb.0)
                .then(ra.1.total_cmp(&rb.1))
                .then(ra.2.cmp(&rb.2))
        })
        .copied()
}

/// (size distance, rate shortfall (an excess counts a thousandth), conversion cost).
fn rank(f: &CameraFormat, width: usize, height: usize, fps: f64) -> (usize, f64, u8) {
    let size = f.width.abs_diff(width) + f.height.abs_diff(height);
    let shortfall = (fps - f.fps).max(0.0) + (f.fps - fps).max(0.0) / 1000.0;
    let pixel = match f.pixel {
        PixelFormat::I420 => 0,
        PixelFormat::Nv12 => 1,
        PixelFormat::Yuyv => 2,
        PixelFormat::Mjpeg => 3,
    };
    (size, shortfall, pixel)
}

/// One frame as a camera hands it over.
#[derive(Debug)]
pub struct RawFrame<'a> {
    /// The bytes, in the negotiated pixel format.
    pub data: &'a [u8],
    /// When the camera captured it (driver timestamp mapped to the wall clock), Unix ns; a
    /// stamp later than the moment the frame is read is taken as that moment.
    pub capture_unix_ns: u64,
}

/// What a capture backend does (V4L2, or a fake in tests).
pub trait CameraDevice: Send {
    /// The negotiated mode.
    fn format(&self) -> CameraFormat;
    /// Blocks until the next frame (the driver paces), which stays valid until the next call.
    fn next_frame(&mut self) -> anyhow::Result<RawFrame<'_>>;
}

/// Frames of a camera as I420, with the camera's capture times.
pub struct CameraSource {
    device: Box<dyn CameraDevice>,
    last_capture_unix_ns: Option<u64>,
    last_read_unix_ns: Option<u64>,
    last_stamp_unix_ns: Option<u64>,
    bad_frames: u64,
}

/// Unreadable frames in a row after which the camera is given up.
pub const MAX_BAD_FRAMES_IN_A_ROW: u32 = 30;

impl CameraSource {
    /// A source over an opened device.
    pub fn new(device: Box<dyn CameraDevice>) -> Self {
        CameraSource {
            device,
            last_capture_unix_ns: None,
            last_read_unix_ns: None,
            last_stamp_unix_ns: None,
            bad_frames: 0,
        }
    }

    /// The negotiated mode.
    pub fn format(&self) -> CameraFormat {
        self.device.format()
    }

    /// Reads the next good frame into `out` (which has the negotiated size). Cameras do hand
    /// over broken frames now and then (a cut JPEG, a short buffer): those are skipped and
    /// counted; only [`MAX_BAD_FRAMES_IN_A_ROW`] of them in a row is an error.
    pub fn read(&mut self, out: &mut I420Frame) -> anyhow::Result<()> {
        let pixel = self.device.format().pixel;
        let mut in_a_row = 0;
        loop {
            let frame = self.device.next_frame()?;
            let read_at = unix_now_ns();
            let stamp = frame.capture_unix_ns;
            // A stamp later than the read (drivers that stamp the end of a frame period not
            // yet over, like vivid) is taken as the read: no frame exists before it is read.
            let at = stamp.min(read_at);
            let converted = match pixel {
                PixelFormat::Yuyv => convert::yuyv_to_i420(frame.data, out),
                PixelFormat::Mjpeg => convert::mjpeg_to_i420(frame.data, out),
                PixelFormat::I420 => convert::i420_to_i420(frame.data, out),
                PixelFormat::Nv12 => convert::nv12_to_i420(frame.data, out),
            };
            match converted {
                Ok(()) => {
                    self.last_capture_unix_ns = Some(at);
                    self.last_read_unix_ns = Some(read_at);
                    self.last_stamp_unix_ns = Some(stamp);
                    return Ok(());
                }
                Err(e) => {
                    self.bad_frames += 1;
                    in_a_row += 1;
                    if self.bad_frames <= 5 || self.bad_frames.is_multiple_of(100) {
                        tracing::warn!(error = %e, count = self.bad_frames, "camera frame skipped");
                    }
                    if in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                        return Err(anyhow::Error::new(e).context(format!(
                            "{in_a_row} camera frames in a row could not be read"
                        )));
                    }
                }
            }
        }
    }

    /// Frames skipped because they could not be converted.
    pub fn bad_frames(&self) -> u64 {
        self.bad_frames
    }

    /// The device's own stamp of the last frame, as given (it may be later than the read).
    pub fn last_stamp_unix_ns(&self) -> Option<u64> {
        self.last_stamp_unix_ns
    }

    /// When the last frame was handed over by the device (wall clock), Unix ns.
    pub fn last_read_unix_ns(&self) -> Option<u64> {
        self.last_read_unix_ns
    }

    /// Capture time of the last frame read, Unix ns.
    pub fn last_capture_unix_ns(&self) -> Option<u64> {
        self.last_capture_unix_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a typical USB webcam (UVC) offers: YUYV only up to 640x480 at 30 fps, MJPEG up to
    /// 1920x1080 at 30 fps.
    fn webcam() -> Vec<CameraFormat> {
        let f = |pixel, width, height, fps| CameraFormat {
            pixel,
            width,
            height,
            fps,
        };
        vec![
            f(PixelFormat::Yuyv, 640, 480, 30.0),
            f(PixelFormat::Yuyv, 640, 480, 15.0),
            f(PixelFormat::Yuyv, 1280, 720, 10.0),
            f(PixelFormat::Yuyv, 1920, 1080, 5.0),
            f(PixelFormat::Mjpeg, 640, 480, 30.0),
            f(PixelFormat::Mjpeg, 1280, 720, 30.0),
            f(PixelFormat::Mjpeg, 1920, 1080, 30.0),
            f(PixelFormat::Mjpeg, 1919, 1079, 30.0),
        ]
    }

    #[test]
    fn negotiation_prefers_size_then_rate_then_yuyv() {
        let pick = |w, h, fps| negotiate(&webcam(), w, h, fps).map(|f| (f.pixel, f.width, f.fps));
        assert_eq!(pick(640, 480, 30.0), Some((PixelFormat::Yuyv, 640, 30.0)));
        // 720p30 exists only as MJPEG: the rate beats the cheaper format.
        assert_eq!(
            pick(1280, 720, 30.0),
            Some((PixelFormat::Mjpeg, 1280, 30.0))
        );
        // At 10 fps YUYV reaches the rate: no decoding needed.
        assert_eq!(pick(1280, 720, 10.0), Some((PixelFormat::Yuyv, 1280, 10.0)));
        // A size the camera lacks: the nearest one.
        assert_eq!(pick(800, 600, 30.0), Some((PixelFormat::Yuyv, 640, 30.0)));
        assert_eq!(negotiate(&[], 640, 480, 30.0), None);
    }

    /// A fake camera: YUYV frames whose luma is the frame number, stamped 1 s apart.
    struct FakeCamera {
        n: u8,
        buf: Vec<u8>,
    }

    impl CameraDevice for FakeCamera {
        fn format(&self) -> CameraFormat {
            CameraFormat {
                pixel: PixelFormat::Yuyv,
                width: 4,
                height: 2,
                fps: 1.0,
            }
        }

        fn next_frame(&mut self) -> anyhow::Result<RawFrame<'_>> {
            self.n += 1;
            self.buf = [self.n, 128].repeat(8);
            Ok(RawFrame {
                data: &self.buf,
                capture_unix_ns: u64::from(self.n) * 1_000_000_000,
            })
        }
    }

    /// Every other frame is cut short.
    struct FlakyCamera {
        n: u8,
        buf: Vec<u8>,
    }

    impl CameraDevice for FlakyCamera {
        fn format(&self) -> CameraFormat {
            FakeCamera {
                n: 0,
                buf: Vec::new(),
            }
            .format()
        }

        fn next_frame(&mut self) -> anyhow::Result<RawFrame<'_>> {
            self.n += 1;
            let len = if self.n.is_multiple_of(2) { 4 } else { 16 };
            self.buf = [self.n, 128].repeat(len / 2);
            Ok(RawFrame {
                data: &self.buf,
                capture_unix_ns: u64::from(self.n),
            })
        }
    }

    #[test]
    fn broken_frames_are_skipped_and_counted() {
        let mut source = CameraSource::new(Box::new(FlakyCamera {
            n: 0,
            buf: Vec::new(),
        }));
        let mut out = I420Frame::new_black(4, 2).expect("frame");
        source.read(&mut out).expect("frame 1");
        source.read(&mut out).expect("frame 3, frame 2 skipped");
        assert_eq!(out.planes_mut().0, [3; 8]);
        assert_eq!(source.bad_frames(), 1);
    }

    #[test]
    fn the_source_converts_and_keeps_the_devices_capture_time() {
        let mut source = CameraSource::new(Box::new(FakeCamera {
            n: 0,
            buf: Vec::new(),
        }));
        let mut out = I420Frame::new_black(4, 2).expect("frame");
        for n in 1..=3u8 {
            source.read(&mut out).expect("reads");
            assert_eq!(out.planes_mut().0, [n; 8]);
            assert_eq!(
                source.last_capture_unix_ns(),
                Some(u64::from(n) * 1_000_000_000)
            );
        }
    }
}
