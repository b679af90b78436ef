//! The capture loop: a source paced by a monotonic clock, the green `PUB` overlay, the pixel
//! timecode and the encoder, on a thread of its own. Encoded access units come out of a tokio
//! channel; the loop ends at the end of the input, on [`CaptureHandle::stop`], or when the
//! receiving side is dropped.
//!
//! The capture time of a frame is the wall-clock time at which its picture exists in memory
//! (after the pattern is rendered or the y4m frame is read). The overlay shows the capture
//! time, the measured frame rate and the previous frame's capture→encoded latency.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use livefeed_media::clock::{corrected, elapsed_ms, unix_now_ns};
use livefeed_media::timecode::Timecode;
use livefeed_media::{AccessUnit, CaptureStamp};
use tokio::sync::mpsc;

use crate::camera::v4l2::V4l2Camera;
use crate::camera::{CameraDevice, CameraFormat, CameraSource, PixelFormat};
use crate::encoder::{open_encoder, EncoderKind, EncoderSettings, VideoEncoder};
use crate::overlay::{self, GREEN};
use crate::{I420Frame, TestPattern, Y4mInput};

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The moving test pattern.
    TestPattern,
    /// A YUV4MPEG2 file, or standard input for `-`.
    Y4m(PathBuf),
    /// A V4L2 camera (size and rate negotiated from the settings).
    Camera {
        /// The device node, e.g. `/dev/video0`.
        device: String,
        /// The pixel format to take, or `None` for the cheapest to convert.
        pixel: Option<PixelFormat>,
    },
}

/// What to capture and how to encode it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    /// The source.
    pub source: SourceSpec,
    /// Width for the test pattern (a y4m input brings its own).
    pub width: usize,
    /// Height for the test pattern.
    pub height: usize,
    /// Frames per second for the test pattern (a y4m input brings its own).
    pub fps: f64,
    /// Encoder bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Frames between keyframes.
    pub gop: u32,
    /// Added to the local clock for capture and encode times, ns: the offset to the server's
    /// clock when one was estimated, so stamps are in server time (0 otherwise).
    pub clock_correction_ns: i64,
    /// Which H.264 encoder.
    pub encoder: EncoderKind,
}

/// One encoded frame and when encoding finished.
#[derive(Debug)]
pub struct Encoded {
    /// The access unit, stamped with its capture time.
    pub au: AccessUnit,
    /// Wall-clock time encoding finished, Unix ns.
    pub encoded_unix_ns: u64,
    /// For a camera: when its frame was read and how many were skipped so far.
    pub camera: Option<CameraTiming>,
}

/// How a camera frame was read (times in the same clock as the capture stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraTiming {
    /// When the frame was handed over by the driver, Unix ns: minus the capture time, how
    /// long the frame waited in the driver's queue.
    pub read_unix_ns: u64,
    /// The device's own stamp of the frame, as given (the capture stamp is this, or the read
    /// time when this is later).
    pub stamp_unix_ns: u64,
    /// Unreadable frames skipped since the camera was opened.
    pub bad_frames: u64,
}

/// A running capture loop.
pub struct CaptureHandle {
    /// Encoded frames, in order.
    pub frames: mpsc::Receiver<Encoded>,
    /// The size and rate actually captured.
    pub format: (usize, usize, f64),
    /// For a camera: the mode negotiated (pixel format, size, rate).
    pub camera: Option<CameraFormat>,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<u64>>>,
}

impl CaptureHandle {
    /// Makes the next picture encoded an IDR picture (requests before it are merged).
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// Asks the loop to stop after the current frame.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the loop to end; returns the number of frames captured or its error.
    pub fn join(mut self) -> anyhow::Result<u64> {
        self.stop();
        self.frames.close();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("capture thread panicked"),
            None => Ok(0),
        }
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A source of pictures.
trait FrameSource: Send {
    /// Fills `out` with frame `n`; `false` at the end of the input.
    fn next(&mut self, n: u64, out: &mut I420Frame) -> anyhow::Result<bool>;
    /// When the last frame was captured, if the source knows better than "when it was read"
    /// (a camera's driver timestamp), Unix ns. Such a source also paces itself.
    fn capture_unix_ns(&self) -> Option<u64> {
        None
    }
    /// For a camera: when the last frame was read, and the frames skipped so far.
    fn camera_timing(&self) -> Option<CameraTiming> {
        None
    }
    /// For a camera: the mode negotiated.
    fn camera_format(&self) -> Option<CameraFormat> {
        None
    }
}

impl FrameSource for CameraSource {
    fn next(&mut self, _n: u64, out: &mut I420Frame) -> anyhow::Result<bool> {
        self.read(out)?;
        Ok(true)
    }

    fn capture_unix_ns(&self) -> Option<u64> {
        self.last_capture_unix_ns()
    }

    fn camera_format(&self) -> Option<CameraFormat> {
        Some(self.format())
    }

    fn camera_timing(&self) -> Option<CameraTiming> {
        Some(CameraTiming {
            read_unix_ns: self.last_read_unix_ns()?,
            stamp_unix_ns: self.last_stamp_unix_ns()?,
            bad_frames: self.bad_frames(),
        })
    }
}

impl FrameSource for TestPattern {
    fn next(&mut self, n: u64, out: &mut I420Frame) -> anyhow::Result<bool> {
        self.render(n, out);
        Ok(true)
    }
}

impl<R: Read + Send> FrameSource for Y4mInput<R> {
    fn next(&mut self, _n: u64, out: &mut I420Frame) -> anyhow::Result<bool> {
        self.next_frame(out).context("reading y4m input")
    }
}

type OpenedSource = (Box<dyn FrameSource>, usize, usize, f64);

fn open_source(settings: &CaptureSettings) -> anyhow::Result<OpenedSource> {
    match &settings.source {
        SourceSpec::Camera { device, pixel } => {
            let device = V4l2Camera::open(
                device,
                settings.width,
                settings.height,
                settings.fps,
                *pixel,
            )?;
            Ok(camera_source(Box::new(device)))
        }
        SourceSpec::TestPattern => Ok((
            Box::new(TestPattern::new(settings.width, settings.height)),
            settings.width,
            settings.height,
            settings.fps,
        )),
        SourceSpec::Y4m(path) => {
            let reader: Box<dyn Read + Send> = if path.as_os_str() == "-" {
                Box::new(std::io::stdin())
            } else {
                let file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                Box::new(BufReader::new(file))
            };
            let input = Y4mInput::new(reader).context("reading the y4m header")?;
            let (num, den) = input.framerate();
            let fps = if num > 0 && den > 0 {
                num as f64 / den as f64
            } else {
                settings.fps
            };
            let (w, h) = (input.width(), input.height());
            Ok((Box::new(input), w, h, fps))
        }
    }
}

fn camera_source(device: Box<dyn CameraDevice>) -> OpenedSource {
    let f = device.format();
    (
        Box::new(CameraSource::new(device)),
        f.width,
        f.height,
        f.fps,
    )
}

/// Opens the source and starts the capture loop.
pub fn start(settings: CaptureSettings) -> anyhow::Result<CaptureHandle> {
    start_with_tap(settings, None)
}

/// [`start`], also offering each picture as encoded (overlay and timecode drawn) to `tap`
/// (a preview window) without ever waiting for it.
pub fn start_with_tap(
    settings: CaptureSettings,
    tap: Option<std::sync::mpsc::SyncSender<I420Frame>>,
) -> anyhow::Result<CaptureHandle> {
    let opened = open_source(&settings)?;
    start_loop(opened, &settings, tap)
}

/// Starts the capture loop on an opened camera (the same path V4L2 cameras take; `settings`
/// give the bitrate, GOP and clock correction).
pub fn start_camera(
    device: Box<dyn CameraDevice>,
    settings: &CaptureSettings,
) -> anyhow::Result<CaptureHandle> {
    start_loop(camera_source(device), settings, None)
}

fn start_loop(
    opened: OpenedSource,
    settings: &CaptureSettings,
    tap: Option<std::sync::mpsc::SyncSender<I420Frame>>,
) -> anyhow::Result<CaptureHandle> {
    let (source, width, height, fps) = opened;
    if !(fps > 0.0 && fps <= 240.0) {
        anyhow::bail!("frame rate {fps} is out of range (0, 240]");
    }
    let encoder = open_encoder(
        settings.encoder,
        EncoderSettings {
            width,
            height,
            fps: fps as f32,
            bitrate_kbps: settings.bitrate_kbps,
            gop: settings.gop,
        },
    )?;
    let frame = I420Frame::new_black(width, height).context("allocating the capture frame")?;
    let camera = source.camera_format();
    let (tx, rx) = mpsc::channel(8);
    let stop = Arc::new(AtomicBool::new(false));
    let keyframe = Arc::new(AtomicBool::new(false));
    let state = Loop {
        source,
        encoder,
        frame,
        fps,
        tx,
        stop: stop.clone(),
        keyframe: keyframe.clone(),
        clock_correction_ns: settings.clock_correction_ns,
        tap,
    };
    let thread = std::thread::Builder::new()
        .name("livefeed-capture".into())
        .spawn(move || state.run())
        .context("starting the capture thread")?;
    Ok(CaptureHandle {
        frames: rx,
        format: (width, height, fps),
        camera,
        stop,
        keyframe,
        thread: Some(thread),
    })
}

struct Loop {
    source: Box<dyn FrameSource>,
    encoder: Box<dyn VideoEncoder>,
    frame: I420Frame,
    fps: f64,
    tx: mpsc::Sender<Encoded>,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
    clock_correction_ns: i64,
    tap: Option<std::sync::mpsc::SyncSender<I420Frame>>,
}

impl Loop {
    fn run(mut self) -> anyhow::Result<u64> {
        let start = Instant::now();
        let mut rate = livefeed_media::rate::RateMeter::default();
        let mut last_latency_ms = 0.0;
        let mut n = 0u64;
        let mut first_capture_ns = None;
        while !self.stop.load(Ordering::Relaxed) {
            if self.source.capture_unix_ns().is_none() {
                // Self-timed sources (the pattern, files) are paced here; cameras pace
                // themselves.
                sleep_until(start + Duration::from_secs_f64(n as f64 / self.fps));
            }
            if !self.source.next(n, &mut self.frame)? {
                break;
            }
            let captured = self.source.capture_unix_ns().unwrap_or_else(unix_now_ns);
            let capture_ns = corrected(captured, self.clock_correction_ns);
            let first = *first_capture_ns.get_or_insert(capture_ns);
            let now = Instant::now();
            rate.record(now, 0);
            let fps = rate.per_second(now).events;
            overlay::draw_overlay(
                &mut self.frame,
                &overlay::publisher_line(capture_ns, fps, last_latency_ms),
                GREEN,
            );
            overlay::draw_timecode(&mut self.frame, Timecode::from_unix_ns(capture_ns, n));
            // Timestamps follow the capture times (a camera's rate may wander).
            let pts = if self.source.capture_unix_ns().is_some() {
                (capture_ns.saturating_sub(first) as u128 * 90_000 / 1_000_000_000) as u64
            } else {
                (n as f64 * 90_000.0 / self.fps).round() as u64
            };
            let stamp = CaptureStamp {
                unix_ns: capture_ns,
                frame: n,
            };
            if let Some(tap) = &self.tap {
                // A full tap (the window is still drawing) skips this picture; a closed one
                // (the window went away) is dropped, and no picture is copied for it again.
                if let Err(std::sync::mpsc::TrySendError::Disconnected(_)) =
                    tap.try_send(self.frame.clone())
                {
                    self.tap = None;
                }
            }
            if self.keyframe.swap(false, Ordering::Relaxed) {
                self.encoder.force_keyframe();
            }
            let au = self.encoder.encode(&self.frame, pts, stamp)?;
            let encoded_unix_ns = corrected(unix_now_ns(), self.clock_correction_ns);
            let camera = self.source.camera_timing().map(|t| CameraTiming {
                read_unix_ns: corrected(t.read_unix_ns, self.clock_correction_ns),
                stamp_unix_ns: corrected(t.stamp_unix_ns, self.clock_correction_ns),
                ..t
            });
            last_latency_ms = elapsed_ms(capture_ns, encoded_unix_ns);
            if self
                .tx
                .blocking_send(Encoded {
                    au,
                    encoded_unix_ns,
                    camera,
                })
                .is_err()
            {
                break; // nobody is listening any more
            }
            n += 1;
        }
        Ok(n)
    }
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}
