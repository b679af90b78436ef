//! H.264 decoding with OpenH264, one access unit in, at most one picture out, no reordering
//! delay (baseline streams have no B-frames).

use anyhow::Context;
use livefeed_media::AccessUnit;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::frame::I420Frame;

/// A decoded picture, borrowed from the decoder until the next call.
pub struct DecodedPicture<'a> {
    /// Picture width in pixels.
    pub width: usize,
    /// Picture height in pixels.
    pub height: usize,
    /// Luma plane, `y_stride` bytes per row.
    pub y: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    planes: &'a openh264::decoder::DecodedYUV<'a>,
}

impl DecodedPicture<'_> {
    /// Copies the picture into a tightly packed I420 frame (for preview windows and tests).
    pub fn to_i420(&self) -> anyhow::Result<I420Frame> {
        let mut frame = I420Frame::new_black(self.width, self.height)?;
        let (ys, us, vs) = self.planes.strides();
        copy_plane(self.planes.y(), ys, frame.y_mut(), self.width);
        copy_plane(self.planes.u(), us, frame.u_mut(), self.width / 2);
        copy_plane(self.planes.v(), vs, frame.v_mut(), self.width / 2);
        Ok(frame)
    }
}

fn copy_plane(src: &[u8], src_stride: usize, dst: &mut [u8], width: usize) {
    for (dst_row, src_row) in dst.chunks_exact_mut(width).zip(src.chunks(src_stride)) {
        if let Some(src_row) = src_row.get(..width) {
            dst_row.copy_from_slice(src_row);
        }
    }
}

/// An OpenH264 decoder.
pub struct H264Decoder {
    decoder: Decoder,
    annex_b: Vec<u8>,
}

impl H264Decoder {
    /// Creates a decoder.
    pub fn new() -> anyhow::Result<Self> {
        let decoder = Decoder::with_api_config(
            OpenH264API::from_source(),
            openh264::decoder::DecoderConfig::new(),
        )
        .context("creating the OpenH264 decoder")?;
        Ok(H264Decoder {
            decoder,
            annex_b: Vec::with_capacity(256 * 1024),
        })
    }

    /// Decodes one access unit and hands the picture, if one is complete, to `inspect`.
    /// Returns what `inspect` returned, or `None` when no picture came out (e.g. waiting for a
    /// keyframe). A corrupt access unit is an error; the decoder stays usable.
    pub fn decode<T>(
        &mut self,
        au: &AccessUnit,
        inspect: impl FnOnce(&DecodedPicture<'_>) -> T,
    ) -> anyhow::Result<Option<T>> {
        self.annex_b.clear();
        au.write_annex_b(&mut self.annex_b);
        let decoded = self
            .decoder
            .decode(&self.annex_b)
            .with_context(|| format!("decoding access unit at pts {}", au.pts))?;
        let Some(yuv) = decoded else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let (y_stride, _, _) = yuv.strides();
        let picture = DecodedPicture {
            width,
            height,
            y: yuv.y(),
            y_stride,
            planes: &yuv,
        };
        Ok(Some(inspect(&picture)))
    }
}
