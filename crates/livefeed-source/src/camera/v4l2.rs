//! The V4L2 backend (the `v4l` crate): listing cameras and their modes, opening one in the
//! negotiated mode with a shallow queue (two buffers: one filling, at most one ready — a slow
//! reader gets the newest picture, never a backlog), and mapping the driver's monotonic buffer
//! timestamps to the wall clock. Opening errors carry the original system's advice.

use std::io;
use std::time::Instant;

use livefeed_media::clock::unix_now_ns;

use anyhow::Context;
use v4l::buffer::Type;
use v4l::format::FourCC;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Fraction};

use super::{negotiate, CameraDevice, CameraFormat, CameraInfo, PixelFormat, RawFrame};

/// Driver buffers: one being filled, one ready.
const BUFFERS: u32 = 2;

fn fourcc(p: PixelFormat) -> FourCC {
    match p {
        PixelFormat::Yuyv => FourCC::new(b"YUYV"),
        PixelFormat::Mjpeg => FourCC::new(b"MJPG"),
    }
}

fn pixel(f: FourCC) -> Option<PixelFormat> {
    match &f.repr {
        b"YUYV" => Some(PixelFormat::Yuyv),
        b"MJPG" => Some(PixelFormat::Mjpeg),
        _ => None,
    }
}

/// The advice for an error opening `path`.
pub fn open_error(path: &str, e: &io::Error) -> anyhow::Error {
    let advice = match e.raw_os_error() {
        Some(16) => "busy — close other camera applications".to_string(),
        Some(2) | Some(19) | Some(6) => {
            "no such camera — is it connected? `livefeed devices` lists the cameras".to_string()
        }
        Some(13) | Some(1) => "permission denied — add your user to the video group".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!("Cannot open camera {path}: {advice}")
}

/// Every `/dev/video*` that captures video, with its modes.
pub fn list_devices() -> Vec<CameraInfo> {
    let mut paths: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("video"))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let dev = Device::with_path(&path).ok()?;
            let caps = dev.query_caps().ok()?;
            let formats = modes(&dev);
            (!formats.is_empty()).then_some(CameraInfo {
                path,
                name: caps.card,
                formats,
            })
        })
        .collect()
}

/// The modes `dev` offers in YUYV or MJPEG (discrete sizes and intervals).
fn modes(dev: &Device) -> Vec<CameraFormat> {
    let mut out = Vec::new();
    for desc in dev.enum_formats().unwrap_or_default() {
        let Some(pixel) = pixel(desc.fourcc) else {
            continue;
        };
        for size in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
            let FrameSizeEnum::Discrete(d) = size.size else {
                continue;
            };
            let intervals = dev
                .enum_frameintervals(desc.fourcc, d.width, d.height)
                .unwrap_or_default();
            for ival in intervals {
                if let FrameIntervalEnum::Discrete(f) = ival.interval {
                    if f.numerator > 0 {
                        out.push(CameraFormat {
                            pixel,
                            width: d.width as usize,
                            height: d.height as usize,
                            fps: f64::from(f.denominator) / f64::from(f.numerator),
                        });
                    }
                }
            }
        }
    }
    out
}

/// An opened camera.
pub struct V4l2Camera {
    format: CameraFormat,
    stream: Stream<'static>,
    /// The wall clock minus the monotonic clock, ns (driver timestamps are monotonic).
    mono_to_wall_ns: i128,
    _device: Device,
}

impl V4l2Camera {
    /// Opens `path` in the mode closest to `width`×`height` at `fps`.
    pub fn open(path: &str, width: usize, height: usize, fps: f64) -> anyhow::Result<Self> {
        let dev = Device::with_path(path).map_err(|e| open_error(path, &e))?;
        let offered = modes(&dev);
        let want = negotiate(&offered, width, height, fps).with_context(|| {
            format!("camera {path} offers no YUYV or MJPEG mode with an even size")
        })?;
        let mut fmt = dev.format().map_err(|e| open_error(path, &e))?;
        fmt.width = want.width as u32;
        fmt.height = want.height as u32;
        fmt.fourcc = fourcc(want.pixel);
        let got = dev.set_format(&fmt).map_err(|e| open_error(path, &e))?;
        let size = (got.width as usize, got.height as usize);
        let packed = want.pixel == PixelFormat::Yuyv && got.stride as usize != want.width * 2;
        if pixel(got.fourcc) != Some(want.pixel) || size != (want.width, want.height) || packed {
            anyhow::bail!("camera {path} did not accept {want} (it set {got})");
        }
        let mut params = dev.params().map_err(|e| open_error(path, &e))?;
        params.interval = Fraction::new(1, want.fps.round().max(1.0) as u32);
        let _ = dev.set_params(&params);
        let stream = Stream::with_buffers(&dev, Type::VideoCapture, BUFFERS)
            .map_err(|e| open_error(path, &e))?;
        tracing::info!(path, format = %want, "camera opened");
        Ok(V4l2Camera {
            format: want,
            stream,
            mono_to_wall_ns: mono_to_wall_ns(),
            _device: dev,
        })
    }
}

/// Wall clock minus `CLOCK_MONOTONIC` (what V4L2 buffer timestamps use), ns.
fn mono_to_wall_ns() -> i128 {
    i128::from(unix_now_ns()) - monotonic_ns()
}

/// `CLOCK_MONOTONIC` now, ns.
fn monotonic_ns() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

impl CameraDevice for V4l2Camera {
    fn format(&self) -> CameraFormat {
        self.format
    }

    fn next_frame(&mut self) -> anyhow::Result<RawFrame<'_>> {
        let started = Instant::now();
        let (buf, meta) = self.stream.next().context("reading a camera frame")?;
        let ts = meta.timestamp;
        let mono_ns = i128::from(ts.sec) * 1_000_000_000 + i128::from(ts.usec) * 1000;
        let capture_unix_ns = if mono_ns > 0 {
            (mono_ns + self.mono_to_wall_ns).max(0) as u64
        } else {
            // No driver timestamp: when the frame was handed over.
            let now = unix_now_ns();
            now.saturating_sub(started.elapsed().as_nanos() as u64)
        };
        let used = (meta.bytesused as usize).min(buf.len());
        Ok(RawFrame {
            data: &buf[..used],
            capture_unix_ns,
        })
    }
}
