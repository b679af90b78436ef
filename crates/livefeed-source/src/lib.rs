//! Where pictures come from and what is drawn on them before encoding.
//!
//! - [`frame`]: [`I420Frame`], one planar YUV 4:2:0 picture with even, non-zero sizes; it is
//!   an `openh264` `YUVSource`, so it goes straight to the encoder.
//! - [`pattern`]: [`TestPattern`], the synthetic source: scrolling colour bars and ramp, a
//!   bouncing box and a frame counter, a pure function of the frame number; fills every pixel.
//! - [`overlay`]: the text overlay (`PUB …` / `REC …` lines in an 8 × 8 font) and the pixel
//!   timecode strip, drawn after the source so they are never hidden; never panics, clips at
//!   the edges.
//! - [`y4m_input`]: [`Y4mInput`], frames from a YUV4MPEG2 file or pipe (8-bit 4:2:0 only),
//!   telling a clean end of input from a truncated frame.
//!
//! - [`camera`]: webcams (V4L2): modes, negotiation, YUYV/MJPEG → I420, driver timestamps.
//! - [`encoder`] / [`decoder`]: (and `encoder_x264` with the `x264` feature) OpenH264 at zero-latency settings, access units in and out.
//! - [`tone`]: the test tone (a hum with a beep at each whole second of capture time) that
//!   `livefeed publish --audio tone` sends beside the picture.
//! - [`capture`]: the paced capture loop on its own thread: source → overlay → timecode →
//!   encoder → channel.
//!
//! Per frame: `source → overlay::draw_overlay → overlay::draw_timecode → encoder`.
#![warn(missing_docs)]

pub mod camera;
pub mod capture;
pub mod decoder;
pub mod encoder;
#[cfg(feature = "x264")]
pub mod encoder_x264;
pub mod frame;
pub mod overlay;
pub mod pattern;
pub mod tone;
pub mod y4m_input;

pub use frame::{FrameError, I420Frame};
pub use overlay::Yuv;
pub use pattern::TestPattern;
pub use y4m_input::{Y4mInput, Y4mInputError};
