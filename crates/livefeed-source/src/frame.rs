//! [`I420Frame`]: one uncompressed picture in planar YUV 4:2:0, the type every source produces,
//! the overlay draws into and the encoder takes.
//!
//! Layout: one contiguous buffer, the Y plane (`width * height` bytes, stride `width`), then the
//! U plane and the V plane (`(width / 2) * (height / 2)` bytes each, stride `width / 2`). Width
//! and height are even and non-zero; the constructors refuse anything else, so every accessor
//! is infallible. Samples use the limited ("TV") range: black is Y 16, neutral chroma is 128.

use openh264::formats::YUVSource;

/// Largest accepted width or height, far above any camera, so sizes never overflow.
pub const MAX_DIMENSION: usize = 16_384;

/// Why a frame could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Width or height is odd, zero, or larger than [`MAX_DIMENSION`].
    #[error(
        "unsupported I420 frame size {width}x{height}: width and height must be even and \
         between 2 and {MAX_DIMENSION}"
    )]
    BadSize {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
    },
    /// The buffer handed to [`I420Frame::from_vec`] has the wrong length.
    #[error("I420 buffer for {width}x{height} must be {expected} bytes, got {found}")]
    WrongLength {
        /// Width of the frame.
        width: usize,
        /// Height of the frame.
        height: usize,
        /// `width * height * 3 / 2`.
        expected: usize,
        /// Length of the buffer given.
        found: usize,
    },
}

/// One picture in planar YUV 4:2:0 (I420), see the module docs for the layout.
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I420Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl I420Frame {
    /// Buffer length of a `width` × `height` frame, or an error if the size is unsupported.
    pub fn buffer_len(width: usize, height: usize) -> Result<usize, FrameError> {
        let ok = |d: usize| (2..=MAX_DIMENSION).contains(&d) && d & 1 == 0;
        if ok(width) && ok(height) {
            Ok(width * height * 3 / 2)
        } else {
            Err(FrameError::BadSize { width, height })
        }
    }

    /// A black frame (Y 16, U and V 128).
    pub fn new_black(width: usize, height: usize) -> Result<Self, FrameError> {
        let luma = width * height;
        let mut data = vec![128; Self::buffer_len(width, height)?];
        data[..luma].fill(16);
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Wraps an existing I420 buffer (Y, then U, then V; see the module docs).
    pub fn from_vec(width: usize, height: usize, data: Vec<u8>) -> Result<Self, FrameError> {
        let expected = Self::buffer_len(width, height)?;
        if data.len() != expected {
            return Err(FrameError::WrongLength {
                width,
                height,
                expected,
                found: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Width in pixels (even).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels (even).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Width of the chroma planes, `width / 2`; also their stride.
    pub fn chroma_width(&self) -> usize {
        self.width / 2
    }

    /// Height of the chroma planes, `height / 2`.
    pub fn chroma_height(&self) -> usize {
        self.height / 2
    }

    /// The Y plane, `width * height` bytes, stride `width`.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// The U (Cb) plane, stride `width / 2`.
    pub fn u(&self) -> &[u8] {
        &self.data[self.luma_len()..self.luma_len() + self.chroma_len()]
    }

    /// The V (Cr) plane, stride `width / 2`.
    pub fn v(&self) -> &[u8] {
        &self.data[self.luma_len() + self.chroma_len()..]
    }

    /// The Y plane, mutable.
    pub fn y_mut(&mut self) -> &mut [u8] {
        self.planes_mut().0
    }

    /// The U plane, mutable.
    pub fn u_mut(&mut self) -> &mut [u8] {
        self.planes_mut().1
    }

    /// The V plane, mutable.
    pub fn v_mut(&mut self) -> &mut [u8] {
        self.planes_mut().2
    }

    /// All three planes at once, mutable: `(y, u, v)`.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (luma, chroma) = (self.luma_len(), self.chroma_len());
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(chroma);
        (y, u, v)
    }

    /// The whole buffer: Y, U, V back to back (what a y4m file or ffmpeg `-pix_fmt yuv420p`
    /// holds per frame).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The whole buffer, mutable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives the buffer back.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }

    fn luma_len(&self) -> usize {
        self.width * self.height
    }

    fn chroma_len(&self) -> usize {
        self.chroma_width() * self.chroma_height()
    }
}

impl YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.chroma_width(), self.chroma_width())
    }

    fn y(&self) -> &[u8] {
        I420Frame::y(self)
    }

    fn u(&self) -> &[u8] {
        I420Frame::u(self)
    }

    fn v(&self) -> &[u8] {
        I420Frame::v(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_frame_has_limited_range_black_and_neutral_chroma() {
        let f = I420Frame::new_black(640, 480).unwrap();
        assert_eq!((f.width(), f.height()), (640, 480));
        assert_eq!(f.y().len(), 640 * 480);
        assert_eq!(f.u().len(), 320 * 240);
        assert_eq!(f.v().len(), 320 * 240);
        assert!(f.y().iter().all(|&p| p == 16));
        assert!(f.u().iter().chain(f.v()).all(|&p| p == 128));
    }

    #[test]
    fn odd_zero_and_huge_sizes_are_refused() {
        for (w, h) in [
            (641, 480),
            (640, 479),
            (0, 480),
            (640, 0),
            (1, 1),
            (32_768, 2),
        ] {
            assert_eq!(
                I420Frame::new_black(w, h),
                Err(FrameError::BadSize {
                    width: w,
                    height: h
                })
            );
        }
    }

    #[test]
    fn from_vec_checks_the_length_and_keeps_the_planes() {
        let err = I420Frame::from_vec(4, 2, vec![0; 11]).unwrap_err();
        assert_eq!(
            err,
            FrameError::WrongLength {
                width: 4,
                height: 2,
                expected: 12,
                found: 11
            }
        );
        assert!(err.to_string().contains("must be 12 bytes, got 11"));
        let f = I420Frame::from_vec(4, 2, (0..12).collect()).unwrap();
        assert_eq!(f.y(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(f.u(), &[8, 9]);
        assert_eq!(f.v(), &[10, 11]);
        assert_eq!(f.into_vec(), (0..12).collect::<Vec<u8>>());
    }

    #[test]
    fn mutable_planes_write_to_the_right_place() {
        let mut f = I420Frame::new_black(4, 2).unwrap();
        f.y_mut()[7] = 1;
        f.u_mut()[0] = 2;
        f.v_mut()[1] = 3;
        assert_eq!(
            f.as_bytes(),
            &[16, 16, 16, 16, 16, 16, 16, 1, 2, 128, 128, 3]
        );
    }

    #[test]
    fn yuv_source_reports_i420_strides() {
        let f = I420Frame::new_black(1280, 720).unwrap();
        let src: &dyn YUVSource = &f;
        assert_eq!(src.dimensions(), (1280, 720));
        assert_eq!(src.strides(), (1280, 640, 640));
        assert_eq!(src.y().len(), 1280 * 720);
        assert_eq!(src.u().len(), 640 * 360);
        assert_eq!(src.v().len(), 640 * 360);
    }
}
