//! The V4L2 backend: listing cameras and their modes, opening one in the negotiated mode with a
//! shallow queue (two buffers: one filling, at most one ready — a slow reader gets the newest
//! picture, never a backlog), and mapping the driver's monotonic buffer timestamps to the wall
//! clock. Opening errors carry the original system's advice.
//!
//! It speaks to the kernel through [`sys`], hand-written bindings checked against the kernel
//! headers, so building livefeed needs no libclang.

mod sys;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use anyhow::Context;
use livefeed_media::clock::unix_now_ns;

use super::{negotiate, CameraDevice, CameraFormat, CameraInfo, PixelFormat, RawFrame};
use sys::{ioctl, zeroed};

/// Driver buffers: one being filled, one ready.
const BUFFERS: u32 = 2;
/// How long to wait for a frame before calling the camera stalled.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

/// The fourcc of a pixel format.
fn fourcc(p: PixelFormat) -> u32 {
    sys::fourcc(match p {
        PixelFormat::Yuyv => b"YUYV",
        PixelFormat::Mjpeg => b"MJPG",
        PixelFormat::I420 => b"YU12",
        PixelFormat::Nv12 => b"NV12",
    })
}

/// The pixel format of a fourcc, if livefeed takes it.
fn pixel_format(code: u32) -> Option<PixelFormat> {
    [
        PixelFormat::Yuyv,
        PixelFormat::Mjpeg,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ]
    .into_iter()
    .find(|&p| fourcc(p) == code)
}

/// The advice for an error opening `path`.
pub fn open_error(path: &str, e: &io::Error) -> anyhow::Error {
    let advice = match e.raw_os_error() {
        Some(libc::EBUSY) => "busy — close other camera applications".to_string(),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            "no such camera — is it connected? `livefeed devices` lists the cameras".to_string()
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied — add your user to the video group".to_string()
        }
        _ => e.to_string(),
    };
    anyhow::anyhow!("Cannot open camera {path}: {advice}")
}

/// An open V4L2 device node.
struct Device {
    file: File,
}

impl Device {
    fn open(path: &str) -> io::Result<Device> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Device { file })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The card name, if this node captures video by streaming.
    fn capture_card(&self) -> Option<String> {
        let mut cap: sys::Capability = zeroed();
        ioctl(self.fd(), sys::VIDIOC_QUERYCAP, &mut cap).ok()?;
        let caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        let wanted = sys::CAP_VIDEO_CAPTURE | sys::CAP_STREAMING;
        (caps & wanted == wanted).then(|| sys::c_text(&cap.card))
    }

    /// Every pixel format the node offers (fourccs).
    fn formats(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for index in 0..256 {
            let mut desc: sys::FmtDesc = zeroed();
            desc.index = index;
            desc.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
            if ioctl(self.fd(), sys::VIDIOC_ENUM_FMT, &mut desc).is_err() {
                break;
            }
            out.push(desc.pixelformat);
        }
        out
    }

    /// The discrete sizes offered for `code`.
    fn sizes(&self, code: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for index in 0..256 {
            let mut size: sys::FrmSizeEnum = zeroed();
            size.index = index;
            size.pixel_format = code;
            if ioctl(self.fd(), sys::VIDIOC_ENUM_FRAMESIZES, &mut size).is_err()
                || size.type_ != sys::FRMSIZE_TYPE_DISCRETE
            {
                break;
            }
            out.push((size.size[0], size.size[1]));
        }
        out
    }

    /// The discrete frame rates offered for `code` at `width`×`height`, frames per second.
    fn rates(&self, code: u32, width: u32, height: u32) -> Vec<f64> {
        let mut out = Vec::new();
        for index in 0..256 {
            let mut ival: sys::FrmIvalEnum = zeroed();
            ival.index = index;
            ival.pixel_format = code;
            ival.width = width;
            ival.height = height;
            if ioctl(self.fd(), sys::VIDIOC_ENUM_FRAMEINTERVALS, &mut ival).is_err()
                || ival.type_ != sys::FRMIVAL_TYPE_DISCRETE
            {
                break;
            }
            let f = ival.interval[0];
            if f.numerator > 0 && f.denominator > 0 {
                out.push(f64::from(f.denominator) / f64::from(f.numerator));
            }
        }
        out
    }

    /// The modes offered in a pixel format livefeed takes (discrete sizes and intervals).
    fn modes(&self) -> Vec<CameraFormat> {
        let mut out = Vec::new();
        for code in self.formats() {
            let Some(pixel) = pixel_format(code) else {
                continue;
            };
            for (width, height) in self.sizes(code) {
                for fps in self.rates(code, width, height) {
                    out.push(CameraFormat {
                        pixel,
                        width: width as usize,
                        height: height as usize,
                        fps,
                    });
                }
            }
        }
        out
    }

    /// Sets `want`'s pixel format and size; returns what the driver set: (fourcc, width,
    /// height, bytes per line).
    fn set_format(&self, want: &CameraFormat) -> io::Result<(u32, u32, u32, u32)> {
        let mut fmt: sys::Format = zeroed();
        fmt.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        fmt.fmt.pix = sys::PixFormat {
            width: want.width as u32,
            height: want.height as u32,
            pixelformat: fourcc(want.pixel),
            field: sys::FIELD_NONE,
            ..zeroed_pix()
        };
        ioctl(self.fd(), sys::VIDIOC_S_FMT, &mut fmt)?;
        let pix = pix_of(&fmt);
        Ok((pix.pixelformat, pix.width, pix.height, pix.bytesperline))
    }

    /// Asks for `fps` frames per second, where the driver lets the rate be set.
    fn set_rate(&self, fps: f64) {
        let mut parm: sys::StreamParm = zeroed();
        parm.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        if ioctl(self.fd(), sys::VIDIOC_G_PARM, &mut parm).is_err() {
            return;
        }
        let mut capture = capture_parm(&parm);
        if capture.capability & sys::CAP_TIMEPERFRAME == 0 {
            return;
        }
        // 1001-based rates (29.97) are asked for exactly.
        capture.timeperframe = if (fps * 1001.0).fract().abs() < 1e-6 && fps.fract() != 0.0 {
            sys::Fract {
                numerator: 1001,
                denominator: (fps * 1001.0).round() as u32,
            }
        } else {
            sys::Fract {
                numerator: 1,
                denominator: fps.round().max(1.0) as u32,
            }
        };
        parm.parm.capture = capture;
        if let Err(e) = ioctl(self.fd(), sys::VIDIOC_S_PARM, &mut parm) {
            tracing::warn!(error = %e, fps, "the camera did not take the frame rate");
        }
    }
}

fn zeroed_pix() -> sys::PixFormat {
    pix_of(&zeroed())
}

/// The `pix` member of a format (every member is plain integers, so any bytes are valid).
fn pix_of(fmt: &sys::Format) -> sys::PixFormat {
    // SAFETY: `PixFormat` is integers only; every bit pattern of the union is a valid value.
    unsafe { fmt.fmt.pix }
}

/// The `capture` member of stream parameters (integers only, any bytes valid).
fn capture_parm(parm: &sys::StreamParm) -> sys::CaptureParm {
    // SAFETY: `CaptureParm` is integers only; every bit pattern of the union is a valid value.
    unsafe { parm.parm.capture }
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
    paths.sort_by_key(|p| (p.len(), p.clone()));
    paths
        .into_iter()
        .filter_map(|path| {
            let dev = Device::open(&path).ok()?;
            let name = dev.capture_card()?;
            let formats = dev.modes();
            (!formats.is_empty()).then_some(CameraInfo {
                path,
                name,
                formats,
            })
        })
        .collect()
}

/// One driver buffer mapped into our memory.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// An opened camera, streaming.
pub struct V4l2Camera {
    path: String,
    format: CameraFormat,
    /// Dropped before `device` (fields drop in order): the buffers are unmapped before the
    /// node is closed.
    buffers: Vec<Mapping>,
    /// The buffer handed out by the last `next_frame`, queued again on the next call.
    lent: Option<u32>,
    /// The wall clock minus the monotonic clock, ns (driver timestamps are monotonic).
    mono_to_wall_ns: i128,
    device: Device,
}

// SAFETY: the mappings are owned by this value alone and only read through `&mut self`.
unsafe impl Send for V4l2Camera {}

impl V4l2Camera {
    /// Opens `path` in the mode closest to `width`×`height` at `fps`, in `pixel` if given.
    pub fn open(
        path: &str,
        width: usize,
        height: usize,
        fps: f64,
        pixel: Option<PixelFormat>,
    ) -> anyhow::Result<Self> {
        let device = Device::open(path).map_err(|e| open_error(path, &e))?;
        if device.capture_card().is_none() {
            anyhow::bail!("Cannot open camera {path}: it is not a video capture device");
        }
        let offered: Vec<CameraFormat> = device
            .modes()
            .into_iter()
            .filter(|m| pixel.is_none_or(|p| m.pixel == p))
            .collect();
        let want = negotiate(&offered, width, height, fps).with_context(|| match pixel {
            Some(p) => format!("camera {path} offers no {p} mode with an even size"),
            None => {
                format!("camera {path} offers no YUYV, I420, NV12 or MJPEG mode with an even size")
            }
        })?;
        let (code, w, h, stride) = device.set_format(&want).map_err(|e| open_error(path, &e))?;
        let exact_stride = match want.pixel {
            PixelFormat::Yuyv => w * 2,
            PixelFormat::I420 | PixelFormat::Nv12 => w,
            PixelFormat::Mjpeg => stride,
        };
        if pixel_format(code) != Some(want.pixel)
            || (w as usize, h as usize) != (want.width, want.height)
            || stride != exact_stride
        {
            anyhow::bail!(
                "camera {path} did not accept {want} (it set {} {w}x{h}, {stride} bytes per line)",
                sys::c_text(&code.to_le_bytes())
            );
        }
        device.set_rate(want.fps);
        let buffers = start_streaming(&device).map_err(|e| open_error(path, &e))?;
        tracing::info!(path, format = %want, "camera opened");
        Ok(V4l2Camera {
            path: path.to_string(),
            format: want,
            buffers,
            lent: None,
            mono_to_wall_ns: mono_to_wall_ns(),
            device,
        })
    }

    /// Waits until a buffer is ready (or the camera went away).
    fn wait_readable(&self) -> anyhow::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.device.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = FRAME_TIMEOUT.as_millis() as libc::c_int;
        loop {
            // SAFETY: one valid pollfd, for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout) };
            match r {
                0 => anyhow::bail!(
                    "camera {} delivered no frame for {} s",
                    self.path,
                    FRAME_TIMEOUT.as_secs()
                ),
                r if r > 0 => return Ok(()),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e).context("waiting for a camera frame");
                    }
                }
            }
        }
    }
}

/// Requests, maps and queues [`BUFFERS`] buffers and starts streaming.
fn start_streaming(device: &Device) -> io::Result<Vec<Mapping>> {
    let mut req: sys::RequestBuffers = zeroed();
    req.count = BUFFERS;
    req.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
    req.memory = sys::MEMORY_MMAP;
    ioctl(device.fd(), sys::VIDIOC_REQBUFS, &mut req)?;
    if req.count == 0 {
        return Err(io::Error::other("the driver gave no buffers"));
    }
    let mut maps = Vec::new();
    for index in 0..req.count {
        let mut buf = capture_buffer(index);
        ioctl(device.fd(), sys::VIDIOC_QUERYBUF, &mut buf)?;
        // SAFETY: the offset field is the one the driver filled for an MMAP buffer.
        let offset = unsafe { buf.m.offset };
        // SAFETY: maps `length` bytes of the device at the driver-given offset, shared,
        // read-only; checked for failure below and unmapped by `Mapping::drop`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                buf.length as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                device.fd().as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        maps.push(Mapping {
            ptr,
            len: buf.length as usize,
        });
        ioctl(device.fd(), sys::VIDIOC_QBUF, &mut buf)?;
    }
    let mut kind = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
    ioctl(device.fd(), sys::VIDIOC_STREAMON, &mut kind)?;
    Ok(maps)
}

/// A capture buffer descriptor for `index`.
fn capture_buffer(index: u32) -> sys::Buffer {
    let mut buf: sys::Buffer = zeroed();
    buf.index = index;
    buf.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
    buf.memory = sys::MEMORY_MMAP;
    buf
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        let mut kind = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
        let _ = ioctl(self.device.fd(), sys::VIDIOC_STREAMOFF, &mut kind);
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
        if let Some(index) = self.lent.take() {
            let mut buf = capture_buffer(index);
            ioctl(self.device.fd(), sys::VIDIOC_QBUF, &mut buf)
                .with_context(|| format!("camera {}: queueing a buffer", self.path))?;
        }
        self.wait_readable()?;
        let mut buf = capture_buffer(0);
        ioctl(self.device.fd(), sys::VIDIOC_DQBUF, &mut buf)
            .with_context(|| format!("camera {}: reading a frame", self.path))?;
        let index = buf.index;
        self.lent = Some(index);
        let mapping = self
            .buffers
            .get(index as usize)
            .with_context(|| format!("camera {}: the driver returned buffer {index}", self.path))?;
        let capture_unix_ns = self.capture_time(&buf);
        // A buffer the driver flags as corrupted is handed over empty: the source skips and
        // counts it like any unreadable frame.
        let used = if buf.flags & sys::BUF_FLAG_ERROR != 0 {
            0
        } else {
            (buf.bytesused as usize).min(mapping.len)
        };
        // SAFETY: the mapping is `len` readable bytes, valid while `self` lives; the driver does
        // not write to this buffer until it is queued again, at the next call (which needs
        // `&mut self`, so the slice is gone by then).
        let data = unsafe { std::slice::from_raw_parts(mapping.ptr as *const u8, used) };
        Ok(RawFrame {
            data,
            capture_unix_ns,
        })
    }
}

impl V4l2Camera {
    /// The buffer's capture time on the wall clock: the driver's monotonic timestamp when it
    /// gives one, else now.
    fn capture_time(&self, buf: &sys::Buffer) -> u64 {
        let ts = buf.timestamp;
        let mono_ns = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_usec) * 1000;
        let monotonic =
            buf.flags & sys::BUF_FLAG_TIMESTAMP_MASK == sys::BUF_FLAG_TIMESTAMP_MONOTONIC;
        if monotonic && mono_ns > 0 {
            (mono_ns + self.mono_to_wall_ns).max(0) as u64
        } else {
            unix_now_ns()
        }
    }
}
