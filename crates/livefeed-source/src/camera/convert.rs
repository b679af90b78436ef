//! Camera pixel formats to I420 (the encoder's input), BT.601 limited range like the rest of
//! the chain: YUYV 4:2:2 (chroma of two rows averaged) and MJPEG (decoded by zune-jpeg, which
//! also reads the Huffman-table-less JPEGs many webcams send, then RGB → I420).

use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::I420Frame;

/// Why a camera frame could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The buffer is smaller than the format needs.
    #[error("a {width}x{height} {format} frame needs {need} bytes, got {got}")]
    Short {
        /// The pixel format.
        format: &'static str,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Bytes needed.
        need: usize,
        /// Bytes received.
        got: usize,
    },
    /// The JPEG could not be decoded.
    #[error("undecodable MJPEG frame: {0}")]
    Jpeg(String),
    /// The JPEG is not the negotiated size.
    #[error("MJPEG frame is {got_w}x{got_h}, expected {width}x{height}")]
    JpegSize {
        /// Expected width.
        width: usize,
        /// Expected height.
        height: usize,
        /// Decoded width.
        got_w: usize,
        /// Decoded height.
        got_h: usize,
    },
}

/// Converts a packed YUYV (Y0 U Y1 V) frame of `out`'s size into `out`.
pub fn yuyv_to_i420(src: &[u8], out: &mut I420Frame) -> Result<(), ConvertError> {
    let (w, h) = (out.width(), out.height());
    let need = w * h * 2;
    if src.len() < need {
        return Err(ConvertError::Short {
            format: "YUYV",
            width: w,
            height: h,
            need,
            got: src.len(),
        });
    }
    let (y, u, v) = out.planes_mut();
    let cw = w / 2;
    for row in 0..h {
        let line = &src[row * w * 2..(row + 1) * w * 2];
        for (x, px) in line.chunks_exact(2).enumerate() {
            y[row * w + x] = px[0];
        }
    }
    for crow in 0..h / 2 {
        let a = &src[2 * crow * w * 2..(2 * crow + 1) * w * 2];
        let b = &src[(2 * crow + 1) * w * 2..(2 * crow + 2) * w * 2];
        for cx in 0..cw {
            let i = cx * 4;
            u[crow * cw + cx] = avg(a[i + 1], b[i + 1]);
            v[crow * cw + cx] = avg(a[i + 3], b[i + 3]);
        }
    }
    Ok(())
}

fn avg(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

/// Copies a planar I420 frame of `out`'s size (tightly packed) into `out`.
pub fn i420_to_i420(src: &[u8], out: &mut I420Frame) -> Result<(), ConvertError> {
    let (y_len, c_len) = planar_sizes(src, out, "I420")?;
    let (y, u, v) = out.planes_mut();
    y.copy_from_slice(&src[..y_len]);
    u.copy_from_slice(&src[y_len..y_len + c_len]);
    v.copy_from_slice(&src[y_len + c_len..y_len + 2 * c_len]);
    Ok(())
}

/// Converts a semi-planar NV12 frame (Y plane, then U V interleaved) of `out`'s size into `out`.
pub fn nv12_to_i420(src: &[u8], out: &mut I420Frame) -> Result<(), ConvertError> {
    let (y_len, c_len) = planar_sizes(src, out, "NV12")?;
    let (y, u, v) = out.planes_mut();
    y.copy_from_slice(&src[..y_len]);
    let uv = &src[y_len..y_len + 2 * c_len];
    for (i, pair) in uv.chunks_exact(2).enumerate() {
        u[i] = pair[0];
        v[i] = pair[1];
    }
    Ok(())
}

/// (luma bytes, bytes of one chroma plane) of a 4:2:0 frame of `out`'s size, checking that
/// `src` holds them all.
fn planar_sizes(
    src: &[u8],
    out: &I420Frame,
    format: &'static str,
) -> Result<(usize, usize), ConvertError> {
    let (w, h) = (out.width(), out.height());
    let (y_len, c_len) = (w * h, (w / 2) * (h / 2));
    let need = y_len + 2 * c_len;
    if src.len() < need {
        return Err(ConvertError::Short {
            format,
            width: w,
            height: h,
            need,
            got: src.len(),
        });
    }
    Ok((y_len, c_len))
}

/// Decodes an MJPEG frame of `out`'s size into `out`.
pub fn mjpeg_to_i420(jpeg: &[u8], out: &mut I420Frame) -> Result<(), ConvertError> {
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(jpeg, options);
    let rgb = decoder
        .decode()
        .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
    let (got_w, got_h) = decoder.dimensions().unwrap_or((0, 0));
    let (w, h) = (out.width(), out.height());
    if (got_w, got_h) != (w, h) || rgb.len() < w * h * 3 {
        return Err(ConvertError::JpegSize {
            width: w,
            height: h,
            got_w,
            got_h,
        });
    }
    rgb_to_i420(&rgb, out);
    Ok(())
}

/// BT.601 limited-range RGB → I420; chroma is the mean of each 2×2 block.
pub fn rgb_to_i420(rgb: &[u8], out: &mut I420Frame) {
    let (w, h) = (out.width(), out.height());
    let (y, u, v) = out.planes_mut();
    let px = |x: usize, row: usize| {
        let i = (row * w + x) * 3;
        (
            i32::from(rgb[i]),
            i32::from(rgb[i + 1]),
            i32::from(rgb[i + 2]),
        )
    };
    for row in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, row);
            y[row * w + x] = clamp(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16);
        }
    }
    let cw = w / 2;
    for crow in 0..h / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * cx + dx, 2 * crow + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            let (r, g, b) = ((r + 2) / 4, (g + 2) / 4, (b + 2) / 4);
            u[crow * cw + cx] = clamp(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
            v[crow * cw + cx] = clamp(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
        }
    }
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 YUYV picture: left half Y=50, right half Y=200, U/V differ per row pair.
    #[test]
    fn yuyv_known_picture() {
        let row0 = [50, 100, 50, 150, 200, 110, 200, 160];
        let row1 = [50, 102, 50, 152, 200, 112, 200, 162];
        let src: Vec<u8> = [row0, row1].concat();
        let mut out = I420Frame::new_black(4, 2).expect("frame");
        yuyv_to_i420(&src, &mut out).expect("converts");
        let (y, u, v) = out.planes_mut();
        assert_eq!(y, [50, 50, 200, 200, 50, 50, 200, 200]);
        assert_eq!(u, [101, 111]);
        assert_eq!(v, [151, 161]);
        let mut small = I420Frame::new_black(4, 4).expect("frame");
        assert!(matches!(
            yuyv_to_i420(&src, &mut small),
            Err(ConvertError::Short {
                need: 32,
                got: 16,
                ..
            })
        ));
    }

    #[test]
    fn planar_formats_become_i420() {
        // 4x2: luma 0..8, one chroma sample pair per 2x2 block (two blocks).
        let luma: Vec<u8> = (0..8).collect();
        let mut out = I420Frame::new_black(4, 2).expect("frame");
        let i420 = [luma.clone(), vec![100, 101, 200, 201]].concat();
        i420_to_i420(&i420, &mut out).expect("copies");
        assert_eq!(
            out.planes_mut(),
            (
                &mut luma.clone()[..],
                &mut [100, 101][..],
                &mut [200, 201][..]
            )
        );
        let nv12 = [luma.clone(), vec![100, 200, 101, 201]].concat();
        let mut out = I420Frame::new_black(4, 2).expect("frame");
        nv12_to_i420(&nv12, &mut out).expect("converts");
        assert_eq!(
            out.planes_mut(),
            (
                &mut luma.clone()[..],
                &mut [100, 101][..],
                &mut [200, 201][..]
            )
        );
        assert!(matches!(
            nv12_to_i420(&nv12[..11], &mut out),
            Err(ConvertError::Short {
                format: "NV12",
                need: 12,
                got: 11,
                ..
            })
        ));
        assert!(i420_to_i420(&[], &mut out).is_err());
    }

    #[test]
    fn rgb_primaries_become_their_bt601_values() {
        // White, black, red, green (2x2 blocks each: a 4x4 picture, 2x2 chroma).
        let colours = [[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0]];
        let mut rgb = vec![0u8; 4 * 4 * 3];
        for row in 0..4 {
            for x in 0..4 {
                let c = colours[(row / 2) * 2 + x / 2];
                rgb[(row * 4 + x) * 3..(row * 4 + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        let mut out = I420Frame::new_black(4, 4).expect("frame");
        rgb_to_i420(&rgb, &mut out);
        let (y, u, v) = out.planes_mut();
        assert_eq!((y[0], y[2], y[8], y[10]), (235, 16, 82, 144));
        assert_eq!((u[0], v[0]), (128, 128), "white is grey in chroma");
        assert_eq!((u[2], v[2]), (90, 240), "red");
        assert_eq!((u[3], v[3]), (54, 34), "green");
    }

    /// A real 16x16 baseline JPEG (solid mid-grey, 4:2:0), as a webcam would send.
    #[test]
    fn mjpeg_decodes_into_i420() {
        let jpeg = include_bytes!("testdata/grey16.jpg");
        let mut out = I420Frame::new_black(16, 16).expect("frame");
        mjpeg_to_i420(jpeg, &mut out).expect("decodes");
        let (y, u, v) = out.planes_mut();
        assert!(y.iter().all(|&p| (120..=136).contains(&p)), "{y:?}");
        assert!(u.iter().chain(v.iter()).all(|&p| (124..=132).contains(&p)));
        let mut wrong = I420Frame::new_black(32, 16).expect("frame");
        assert!(matches!(
            mjpeg_to_i420(jpeg, &mut wrong),
            Err(ConvertError::JpegSize { got_w: 16, .. })
        ));
        assert!(mjpeg_to_i420(b"not a jpeg", &mut out).is_err());
    }
}
