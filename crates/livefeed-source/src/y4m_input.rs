//! Raw frames from a YUV4MPEG2 (`.y4m`) stream: a file, or stdin fed by another program
//! (`ffmpeg -i in.mp4 -pix_fmt yuv420p -f yuv4mpegpipe - | livefeed publish --input -`).
//!
//! # Contract
//!
//! - [`Y4mInput::new`] reads and checks the stream header only. It accepts 8-bit 4:2:0
//!   (`C420`, `C420jpeg`, `C420paldv`, `C420mpeg2`, or no `C` tag, which means `C420`) with an
//!   even width and height; anything else is an error naming what was found.
//! - [`Y4mInput::next_frame`] reads one frame into an [`I420Frame`] of the stream's size and
//!   returns `Ok(true)`; `Ok(false)` at a clean end of input (between frames), then forever.
//!   A stream that ends inside a frame is [`Y4mInputError::Truncated`], not a clean end.
//! - Reads block on the reader; run this on a blocking thread, not on an async runtime.
//!   Frame data is read with one `read_exact` per frame, headers a byte at a time, so an
//!   unbuffered reader is fine.
//!
//! Frame parameters (`FRAME Ixx`) and interlacing are ignored: frames are taken as progressive.

use std::io::{self, Chain, Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::frame::{FrameError, I420Frame};

/// The header magic every y4m stream starts with.
const MAGIC: &[u8] = b"YUV4MPEG2 ";
/// Longest header line accepted (the `y4m` crate's own limit).
const MAX_HEADER: usize = 1024;
/// Colourspace tags (after `C`) that mean 8-bit 4:2:0.
const ACCEPTED: [&str; 4] = ["420", "420jpeg", "420paldv", "420mpeg2"];

/// Why a y4m stream cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Y4mInputError {
    /// The input ended before a header line was complete.
    #[error("y4m input is empty or ends inside the stream header")]
    Empty,
    /// The input does not start with `YUV4MPEG2 `.
    #[error("not a y4m stream: it starts with {found:?}, expected \"YUV4MPEG2 \"")]
    NotY4m {
        /// The first bytes of the input, lossily decoded.
        found: String,
    },
    /// The header line is longer than 1024 bytes.
    #[error("y4m header line is longer than {MAX_HEADER} bytes")]
    HeaderTooLong,
    /// The header names a colourspace other than 8-bit 4:2:0.
    #[error(
        "unsupported y4m colourspace C{found}: only 8-bit 4:2:0 (C420, C420jpeg, C420paldv, \
         C420mpeg2) is accepted; convert with ffmpeg -pix_fmt yuv420p"
    )]
    UnsupportedColourspace {
        /// The tag found after `C`, e.g. `422` or `420p10`.
        found: String,
    },
    /// The frame size is odd, zero or too large.
    #[error("unsupported y4m frame size: {0}")]
    UnsupportedSize(#[source] FrameError),
    /// The header could not be parsed.
    #[error("invalid y4m header {header:?}")]
    Header {
        /// The header line, lossily decoded.
        header: String,
        /// What the y4m parser said.
        #[source]
        source: y4m::Error,
    },
    /// Reading the input failed.
    #[error("reading y4m frame {frame} failed")]
    Io {
        /// Index of the frame being read, from 0.
        frame: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A frame header is not `FRAME[ params]\n`.
    #[error("y4m frame {frame} has an invalid frame header")]
    FrameHeader {
        /// Index of the frame, from 0.
        frame: u64,
        /// What the y4m parser said.
        #[source]
        source: y4m::Error,
    },
    /// The input ended inside a frame.
    #[error(
        "y4m input ends inside frame {frame}: got {got} bytes of a {expected}-byte frame \
         (plus its FRAME header)"
    )]
    Truncated {
        /// Index of the incomplete frame, from 0.
        frame: u64,
        /// Bytes of the frame (header included) that arrived.
        got: u64,
        /// Bytes of picture data a frame holds.
        expected: usize,
    },
    /// The frame passed to [`Y4mInput::next_frame`] is not the stream's size.
    #[error("output frame is {found_width}x{found_height}, the y4m stream is {width}x{height}")]
    SizeMismatch {
        /// Stream width.
        width: usize,
        /// Stream height.
        height: usize,
        /// Width of the frame given.
        found_width: usize,
        /// Height of the frame given.
        found_height: usize,
    },
}

/// A reader that counts the bytes it hands out, so that an end of input can be told apart
/// from a truncated frame.
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Frames from a y4m stream; see the module docs for the contract.
pub struct Y4mInput<R: Read> {
    decoder: y4m::Decoder<Chain<Cursor<Vec<u8>>, Counting<R>>>,
    consumed: Arc<AtomicU64>,
    width: usize,
    height: usize,
    frames: u64,
    ended: bool,
}

impl<R: Read> std::fmt::Debug for Y4mInput<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mInput")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.frames)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Y4mInput<R> {
    /// Reads and checks the stream header.
    pub fn new(mut reader: R) -> Result<Self, Y4mInputError> {
        let header = read_header_line(&mut reader)?;
        let text = String::from_utf8_lossy(&header).trim_end().to_owned();
        check_header(&text)?;
        let consumed = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: reader,
            count: Arc::clone(&consumed),
        };
        let decoder = y4m::Decoder::new(Cursor::new(header).chain(counting)).map_err(|source| {
            Y4mInputError::Header {
                header: text,
                source,
            }
        })?;
        let (width, height) = (decoder.get_width(), decoder.get_height());
        I420Frame::buffer_len(width, height).map_err(Y4mInputError::UnsupportedSize)?;
        Ok(Self {
            decoder,
            consumed,
            width,
            height,
            frames: 0,
            ended: false,
        })
    }

    /// Frame width in pixels (even).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Frame height in pixels (even).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Frame rate as `(numerator, denominator)`, e.g. `(30000, 1001)`; `(25, 1)` when the
    /// header has no `F` tag (as ffmpeg assumes).
    pub fn framerate(&self) -> (usize, usize) {
        let r = self.decoder.get_framerate();
        (r.num, r.den)
    }

    /// How many frames have been read so far.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// Reads the next frame into `out` (which must be the stream's size). `Ok(false)` at the
    /// end of the input; `out` is then unchanged.
    pub fn next_frame(&mut self, out: &mut I420Frame) -> Result<bool, Y4mInputError> {
        if (out.width(), out.height()) != (self.width, self.height) {
            return Err(Y4mInputError::SizeMismatch {
                width: self.width,
                height: self.height,
                found_width: out.width(),
                found_height: out.height(),
            });
        }
        if self.ended {
            return Ok(false);
        }
        let before = self.consumed.load(Ordering::Relaxed);
        let frame = match self.decoder.read_frame() {
            Ok(frame) => frame,
            Err(err) => {
                let got = self.consumed.load(Ordering::Relaxed) - before;
                return self.frame_error(err, got);
            }
        };
        let (y, u, v) = out.planes_mut();
        y.copy_from_slice(frame.get_y_plane());
        u.copy_from_slice(frame.get_u_plane());
        v.copy_from_slice(frame.get_v_plane());
        self.frames += 1;
        Ok(true)
    }

    /// Turns a failed frame read into end of input or an error with context.
    fn frame_error(&mut self, err: y4m::Error, got: u64) -> Result<bool, Y4mInputError> {
        let frame = self.frames;
        match err {
            y4m::Error::EOF if got == 0 => {
                self.ended = true;
                Ok(false)
            }
            y4m::Error::EOF => {
                self.ended = true;
                Err(Y4mInputError::Truncated {
                    frame,
                    got,
                    expected: self.width * self.height * 3 / 2,
                })
            }
            y4m::Error::IoError(source) => Err(Y4mInputError::Io { frame, source }),
            source => Err(Y4mInputError::FrameHeader { frame, source }),
        }
    }
}

/// Reads the header line, newline included, one byte at a time (so nothing past it is
/// consumed).
fn read_header_line<R: Read>(reader: &mut R) -> Result<Vec<u8>, Y4mInputError> {
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < MAX_HEADER {
        match reader.read(&mut byte) {
            Ok(0) => return Err(Y4mInputError::Empty),
            Ok(_) => {
                line.push(byte[0]);
                if line.len() <= MAGIC.len() && !MAGIC.starts_with(&line) {
                    return Err(not_y4m(&line, reader));
                }
                if byte[0] == b'\n' {
                    return Ok(line);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(Y4mInputError::Io { frame: 0, source }),
        }
    }
    Err(Y4mInputError::HeaderTooLong)
}

/// The error for a stream that does not start with the magic, showing its first bytes.
fn not_y4m<R: Read>(start: &[u8], reader: &mut R) -> Y4mInputError {
    let mut found = start.to_vec();
    let mut more = [0u8; 16];
    let n = reader
        .read(&mut more[..MAGIC.len().saturating_sub(start.len())])
        .unwrap_or(0);
    found.extend_from_slice(&more[..n]);
    Y4mInputError::NotY4m {
        found: String::from_utf8_lossy(&found).into_owned(),
    }
}

/// Checks the colourspace tag and the size tags of a header line before any buffer is
/// allocated. Tags it cannot parse are left for the y4m parser to report.
fn check_header(header: &str) -> Result<(), Y4mInputError> {
    let tags = || header.split(' ').skip(1);
    if let Some(cs) = tags().find_map(|t| t.strip_prefix('C')) {
        if !ACCEPTED.contains(&cs) {
            return Err(Y4mInputError::UnsupportedColourspace {
                found: cs.to_owned(),
            });
        }
    }
    let number = |prefix: char| tags().find_map(|t| t.strip_prefix(prefix)?.parse().ok());
    if let (Some(width), Some(height)) = (number('W'), number('H')) {
        I420Frame::buffer_len(width, height).map_err(Y4mInputError::UnsupportedSize)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 × 2 stream: header, then `frames` frames whose bytes count up from `frame * 12`.
    fn stream(header: &str, frames: u8) -> Vec<u8> {
        let mut out = format!("{header}\n").into_bytes();
        for f in 0..frames {
            out.extend_from_slice(b"FRAME\n");
            out.extend((0..12).map(|i| f * 12 + i));
        }
        out
    }

    const HEADER: &str = "YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG";

    fn frame() -> I420Frame {
        I420Frame::new_black(4, 2).unwrap()
    }

    #[test]
    fn reads_three_frames_then_a_clean_end() {
        let data = stream(HEADER, 3);
        let mut input = Y4mInput::new(&data[..]).unwrap();
        assert_eq!((input.width(), input.height()), (4, 2));
        assert_eq!(input.framerate(), (30000, 1001));
        let mut f = frame();
        for n in 0..3u8 {
            assert!(input.next_frame(&mut f).unwrap());
            let expected: Vec<u8> = (0..12).map(|i| n * 12 + i).collect();
            assert_eq!(f.as_bytes(), &expected[..]);
            assert_eq!(f.u(), &[n * 12 + 8, n * 12 + 9]);
            assert_eq!(f.v(), &[n * 12 + 10, n * 12 + 11]);
        }
        assert_eq!(input.frames_read(), 3);
        assert!(!input.next_frame(&mut f).unwrap());
        assert!(!input.next_frame(&mut f).unwrap());
        assert_eq!(f.as_bytes()[0], 24, "out unchanged at the end");
    }

    #[test]
    fn reads_what_the_y4m_crate_writes() {
        let mut data = Vec::new();
        let planes: (Vec<u8>, Vec<u8>, Vec<u8>) = (vec![50; 24], vec![60; 6], vec![70; 6]);
        let yf = y4m::Frame::new([&planes.0, &planes.1, &planes.2], Some(b"Ip".to_vec()));
        y4m::encode(6, 4, y4m::Ratio::new(30, 1))
            .with_colorspace(y4m::Colorspace::C420mpeg2)
            .write_header(&mut data)
            .unwrap()
            .write_frame(&yf)
            .unwrap();
        let mut input = Y4mInput::new(Cursor::new(data)).unwrap();
        assert_eq!(input.framerate(), (30, 1));
        let mut f = I420Frame::new_black(6, 4).unwrap();
        assert!(input.next_frame(&mut f).unwrap());
        assert_eq!((f.y()[23], f.u()[5], f.v()[0]), (50, 60, 70));
        assert!(!input.next_frame(&mut f).unwrap());
    }

    #[test]
    fn accepts_every_8_bit_420_tag_and_none() {
        for tag in ["C420", "C420jpeg", "C420paldv", "C420mpeg2", ""] {
            let data = stream(&format!("YUV4MPEG2 W4 H2 F25:1 {tag}"), 1);
            let mut input = Y4mInput::new(&data[..]).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert!(input.next_frame(&mut frame()).unwrap(), "{tag}");
        }
        let data = stream("YUV4MPEG2 W4 H2", 0);
        let input = Y4mInput::new(&data[..]).unwrap();
        assert_eq!(input.framerate(), (25, 1));
    }

    #[test]
    fn other_colourspaces_are_named_in_the_error() {
        for tag in ["422", "444", "mono", "420p10", "411"] {
            let data = stream(&format!("YUV4MPEG2 W4 H2 F25:1 C{tag}"), 1);
            let err = Y4mInput::new(&data[..]).unwrap_err();
            match &err {
                Y4mInputError::UnsupportedColourspace { found } => assert_eq!(found, tag),
                other => panic!("{tag}: {other:?}"),
            }
            assert!(err.to_string().contains(&format!("C{tag}")), "{err}");
        }
    }

    #[test]
    fn odd_zero_and_huge_sizes_are_refused() {
        for (w, h) in [(5, 2), (4, 3), (0, 2), (100_000, 100_000)] {
            let data = stream(&format!("YUV4MPEG2 W{w} H{h} F25:1 C420"), 0);
            let err = Y4mInput::new(&data[..]).unwrap_err();
            assert!(
                matches!(err, Y4mInputError::UnsupportedSize(FrameError::BadSize { width, height }) if (width, height) == (w, h)),
                "{w}x{h}: {err:?}"
            );
            let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
            assert!(msg.contains(&format!("{w}x{h}")), "{msg}");
        }
    }

    #[test]
    fn a_truncated_frame_is_an_error_not_an_end() {
        let full = stream(HEADER, 3);
        let header_len = HEADER.len() + 1;
        let frame_len = 6 + 12;
        let mut f = frame();
        // Cut inside the third frame's data, then inside its FRAME line.
        for cut in [
            header_len + 2 * frame_len + 10,
            header_len + 2 * frame_len + 3,
        ] {
            let mut input = Y4mInput::new(&full[..cut]).unwrap();
            assert!(input.next_frame(&mut f).unwrap());
            assert!(input.next_frame(&mut f).unwrap());
            let err = input.next_frame(&mut f).unwrap_err();
            assert!(
                matches!(
                    err,
                    Y4mInputError::Truncated {
                        frame: 2,
                        expected: 12,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(!input.next_frame(&mut f).unwrap());
        }
    }

    #[test]
    fn bad_frame_headers_and_bad_stream_headers_are_errors() {
        let mut data = stream(HEADER, 1);
        data.extend_from_slice(b"FRAMX\n");
        data.extend_from_slice(&[0; 12]);
        let mut input = Y4mInput::new(&data[..]).unwrap();
        let mut f = frame();
        assert!(input.next_frame(&mut f).unwrap());
        let err = input.next_frame(&mut f).unwrap_err();
        assert!(
            matches!(err, Y4mInputError::FrameHeader { frame: 1, .. }),
            "{err:?}"
        );

        let err = Y4mInput::new(&b""[..]).unwrap_err();
        assert!(matches!(err, Y4mInputError::Empty), "{err:?}");
        let err = Y4mInput::new(&b"YUV4MPEG2 W4 H2"[..]).unwrap_err();
        assert!(matches!(err, Y4mInputError::Empty), "{err:?}");
        let err = Y4mInput::new(&b"RIFF\x00\x01\x02\x03 not a y4m file"[..]).unwrap_err();
        match &err {
            Y4mInputError::NotY4m { found } => assert!(found.starts_with("RIFF")),
            other => panic!("{other:?}"),
        }
        let err = Y4mInput::new(&b"YUV4MPEG2 W4 Hx C420\n"[..]).unwrap_err();
        assert!(matches!(err, Y4mInputError::Header { .. }), "{err:?}");
        let long = format!("YUV4MPEG2 {}\n", "X".repeat(2000));
        let err = Y4mInput::new(long.as_bytes()).unwrap_err();
        assert!(matches!(err, Y4mInputError::HeaderTooLong), "{err:?}");
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() {
        let data = stream(HEADER, 1);
        let mut input = Y4mInput::new(&data[..]).unwrap();
        let mut wrong = I420Frame::new_black(8, 2).unwrap();
        let err = input.next_frame(&mut wrong).unwrap_err();
        assert_eq!(
            err.to_string(),
            "output frame is 8x2, the y4m stream is 4x2"
        );
        assert!(input.next_frame(&mut frame()).unwrap());
    }
}
