//! The pixel timecode: a strip of large black/white blocks in the luma plane that carries the
//! capture time and frame number through encode, decode, relays and scaling.
//!
//! Whoever *sees* the picture (the receiver after decoding, the browser from a canvas) reads the
//! strip back and measures glass-to-glass latency. The layout is deliberately simple so that the
//! browser can re-implement [`read`] in a few lines of JavaScript.
//!
//! # Payload: 80 bits = 10 bytes
//!
//! | bytes | content |
//! |---|---|
//! | 0..6 | capture time, Unix milliseconds, 48 bits, big-endian (wraps in year 10889) |
//! | 6..9 | frame number modulo 2^24, big-endian |
//! | 9 | CRC-8/AUTOSAR of bytes 0..9 |
//!
//! CRC-8/AUTOSAR: width 8, poly `0x2F`, init `0xFF`, not reflected, xorout `0xFF` (check value
//! of `"123456789"` is `0xDF`). Its non-zero init and xorout mean an all-black or all-white strip
//! never passes. In JS: `c = 0xFF; for (b of bytes) { c ^= b; for (k = 0; k < 8; k++)
//! c = c & 0x80 ? ((c << 1) ^ 0x2F) & 0xFF : (c << 1) & 0xFF; } return c ^ 0xFF;`
//!
//! Bit `k` (0..80) is `(bytes[k >> 3] >> (7 - (k & 7))) & 1`: most significant bit first.
//!
//! # Geometry, for a picture `W` pixels wide (`W >= 80`)
//!
//! - The strip is 2 rows × 40 columns of blocks at the very top of the picture, spanning the
//!   full width. Bit `k` goes to row `k / 40`, column `k % 40` (row-major).
//! - `B = floor(W / 40)` is the row height; the strip is `2 * B` rows tall
//!   ([`strip_height`]).
//! - Column `i` spans `x` in `[floor(i * W / 40), floor((i + 1) * W / 40))`; row `r` spans `y`
//!   in `[r * B, (r + 1) * B)`. So blocks are `B` × `B` when `W` is a multiple of 40 (16 px at
//!   640, 32 px at 1280, 48 px at 1920) and the strip still covers the whole width otherwise.
//! - Bit 1 is white (luma 235), bit 0 is black (luma 16). Only luma is written: callers that
//!   draw into a colour picture should also set the chroma under the strip to neutral (128) so
//!   that RGB conversion (a browser canvas) does not clip.
//!
//! Because every coordinate is a fraction of the width, the same formulas read the strip from
//! a scaled copy of the picture as long as the aspect ratio is kept. (A browser should draw the
//! video into a canvas at its intrinsic size, or at least with the intrinsic aspect ratio.)
//!
//! # Reading
//!
//! 1. For each block, take the mean luma of its central half: with a block span `[a, b)` on an
//!    axis, sample `[a + (b - a) / 4, b - (b - a) / 4)` (integer division), on both axes.
//!    (From RGB, luma ≈ `0.299 R + 0.587 G + 0.114 B`; only the relative levels matter.)
//! 2. Let `lo` and `hi` be the smallest and largest of the 80 means. If `hi - lo` <
//!    [`MIN_CONTRAST`], there is no strip.
//! 3. Every mean must lie in the lower or the upper third of `[lo, hi]`; a mean in the middle
//!    third means this is not a strip (natural picture content rarely looks like 80 clean
//!    two-level blocks).
//! 4. Bit = mean above `(lo + hi) / 2`. Check the CRC; on mismatch there is no timecode.
//!
//! A CRC-8 still lets one in 256 random two-level strips through; a consumer should also reject
//! a capture time that is implausibly far from its own clock.
//!
//! # Test vector
//!
//! `Timecode { unix_ms: 1_763_700_000_123, frame: 42 }` encodes to the bytes
//! `01 9A A4 B6 45 7B 00 00 2A 01` (see the `test_vector` test).

use crc::{Crc, CRC_8_AUTOSAR};

/// Number of blocks per row.
pub const COLUMNS: usize = 40;
/// Number of block rows.
pub const ROWS: usize = 2;
/// Number of bits in the strip.
pub const BITS: usize = COLUMNS * ROWS;
/// Smallest picture width that carries a strip (blocks of 2 × 2 pixels).
pub const MIN_WIDTH: usize = 2 * COLUMNS;
/// Luma of a 1 bit.
pub const WHITE: u8 = 235;
/// Luma of a 0 bit.
pub const BLACK: u8 = 16;
/// Smallest difference between the darkest and brightest block means for a strip to be read.
pub const MIN_CONTRAST: u32 = 64;

const MS_MASK: u64 = (1 << 48) - 1;
const FRAME_MASK: u32 = (1 << 24) - 1;
const CRC8: Crc<u8> = Crc::<u8>::new(&CRC_8_AUTOSAR);

/// What the strip carries: capture time in Unix milliseconds (48 bits) and the frame number
/// (24 bits). [`draw`] keeps only those low bits; [`read`] returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timecode {
    /// Capture time, milliseconds since the Unix epoch, modulo 2^48.
    pub unix_ms: u64,
    /// Frame number modulo 2^24.
    pub frame: u32,
}

impl Timecode {
    /// The timecode for a capture at `unix_ns` (nanoseconds since the Unix epoch) of frame
    /// `frame`: milliseconds are truncated, both fields reduced to their bit widths.
    pub fn from_unix_ns(unix_ns: u64, frame: u64) -> Self {
        Self {
            unix_ms: (unix_ns / 1_000_000) & MS_MASK,
            frame: (frame & u64::from(FRAME_MASK)) as u32,
        }
    }

    /// The same timecode with both fields reduced to what the strip can carry.
    pub fn masked(self) -> Self {
        Self {
            unix_ms: self.unix_ms & MS_MASK,
            frame: self.frame & FRAME_MASK,
        }
    }

    /// Whether this (read back) timecode stands for the capture at `unix_ns` of frame `frame`.
    pub fn matches(self, unix_ns: u64, frame: u64) -> bool {
        self.masked() == Self::from_unix_ns(unix_ns, frame)
    }

    /// The capture time in Unix nanoseconds (millisecond precision).
    pub fn unix_ns(self) -> u64 {
        self.unix_ms.saturating_mul(1_000_000)
    }

    /// The 10 payload bytes: 48-bit ms, 24-bit frame, CRC-8/AUTOSAR, all big-endian.
    pub fn to_bytes(self) -> [u8; 10] {
        let tc = self.masked();
        let mut out = [0u8; 10];
        out[..6].copy_from_slice(&tc.unix_ms.to_be_bytes()[2..]);
        out[6..9].copy_from_slice(&tc.frame.to_be_bytes()[1..]);
        out[9] = CRC8.checksum(&out[..9]);
        out
    }

    /// Parses the 10 payload bytes; `None` if the CRC does not match.
    pub fn from_bytes(bytes: &[u8; 10]) -> Option<Self> {
        if CRC8.checksum(&bytes[..9]) != bytes[9] {
            return None;
        }
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&bytes[..6]);
        let mut frame = [0u8; 4];
        frame[1..].copy_from_slice(&bytes[6..9]);
        Some(Self {
            unix_ms: u64::from_be_bytes(ms),
            frame: u32::from_be_bytes(frame),
        })
    }
}

/// Height in rows of the strip for a picture `width` pixels wide: `2 * floor(width / 40)`, or 0
/// when the picture is narrower than [`MIN_WIDTH`] (no strip).
pub fn strip_height(width: usize) -> usize {
    if width < MIN_WIDTH {
        0
    } else {
        ROWS * (width / COLUMNS)
    }
}

/// Draws the strip for `tc` into the top rows of a luma plane (`stride` bytes per row).
///
/// Draws nothing if the picture is narrower than [`MIN_WIDTH`], shorter than
/// [`strip_height`], or `luma`/`stride` are too small for `width` × `height`.
pub fn draw(luma: &mut [u8], stride: usize, width: usize, height: usize, tc: Timecode) {
    if !fits(luma.len(), stride, width, height) {
        return;
    }
    let bits = bytes_to_bits(&tc.to_bytes());
    for (r, row_bits) in bits.chunks_exact(COLUMNS).enumerate() {
        let (y0, y1) = row_span(r, width);
        for y in y0..y1 {
            let line = &mut luma[y * stride..y * stride + width];
            draw_line(line, row_bits);
        }
    }
}

/// Reads the strip back from a luma plane; `None` if there is no strip, it is unreadable or
/// its CRC does not match. Never panics, whatever the arguments.
pub fn read(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<Timecode> {
    if !fits(luma.len(), stride, width, height) {
        return None;
    }
    let mut means = [0u32; BITS];
    for (k, mean) in means.iter_mut().enumerate() {
        let (x0, x1) = column_span(k % COLUMNS, width);
        let (y0, y1) = row_span(k / COLUMNS, width);
        *mean = inner_mean(luma, stride, inner(x0, x1), inner(y0, y1));
    }
    let bits = threshold(&means)?;
    Timecode::from_bytes(&bits_to_bytes(&bits))
}

/// Whether a plane of `len` bytes holds `width` × `height` pixels at `stride` and is big enough
/// to carry a strip.
fn fits(len: usize, stride: usize, width: usize, height: usize) -> bool {
    let needed = height
        .checked_sub(1)
        .and_then(|h| h.checked_mul(stride))
        .and_then(|n| n.checked_add(width));
    width >= MIN_WIDTH
        && stride >= width
        && height >= strip_height(width)
        && needed.is_some_and(|n| n <= len)
}

/// `[start, end)` of block column `i` in a picture `width` wide.
fn column_span(i: usize, width: usize) -> (usize, usize) {
    (i * width / COLUMNS, (i + 1) * width / COLUMNS)
}

/// `[start, end)` of block row `r` in a picture `width` wide.
fn row_span(r: usize, width: usize) -> (usize, usize) {
    let b = width / COLUMNS;
    (r * b, (r + 1) * b)
}

/// The central half of the span `[a, b)`.
fn inner(a: usize, b: usize) -> (usize, usize) {
    let margin = (b - a) / 4;
    (a + margin, b - margin)
}

/// Mean luma of the rectangle `xs` × `ys` (both non-empty, inside the plane).
fn inner_mean(luma: &[u8], stride: usize, xs: (usize, usize), ys: (usize, usize)) -> u32 {
    let mut sum = 0u64;
    for y in ys.0..ys.1 {
        let line = luma
            .get(y * stride + xs.0..y * stride + xs.1)
            .unwrap_or(&[]);
        sum += line.iter().map(|&p| u64::from(p)).sum::<u64>();
    }
    let count = ((xs.1 - xs.0) as u64 * (ys.1 - ys.0) as u64).max(1);
    (sum / count) as u32
}

/// Turns 80 block means into bits, or `None` if they do not look like a two-level strip.
fn threshold(means: &[u32; BITS]) -> Option<[bool; BITS]> {
    let lo = *means.iter().min()?;
    let hi = *means.iter().max()?;
    let range = hi - lo;
    if range < MIN_CONTRAST {
        return None;
    }
    let (low_third, high_third) = (lo + range / 3, hi - range / 3);
    if means.iter().any(|&m| m > low_third && m < high_third) {
        return None;
    }
    let mid = (lo + hi) / 2;
    Some(means.map(|m| m > mid))
}

fn bytes_to_bits(bytes: &[u8; 10]) -> [bool; BITS] {
    std::array::from_fn(|k| (bytes[k / 8] >> (7 - k % 8)) & 1 == 1)
}

fn bits_to_bytes(bits: &[bool; BITS]) -> [u8; 10] {
    let mut bytes = [0u8; 10];
    for (k, &bit) in bits.iter().enumerate() {
        if bit {
            bytes[k / 8] |= 1 << (7 - k % 8);
        }
    }
    bytes
}

/// Fills one picture line (exactly `width` bytes) with the 40 blocks of one strip row.
fn draw_line(line: &mut [u8], row_bits: &[bool]) {
    let width = line.len();
    for (i, &bit) in row_bits.iter().enumerate() {
        let (x0, x1) = column_span(i, width);
        line[x0..x1].fill(if bit { WHITE } else { BLACK });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TC: Timecode = Timecode {
        unix_ms: 1_763_700_000_123,
        frame: 42,
    };

    /// A grey plane with `extra` bytes of padding per row.
    fn plane(width: usize, height: usize, extra: usize) -> (Vec<u8>, usize) {
        let stride = width + extra;
        (vec![128; stride * height], stride)
    }

    /// Small deterministic PRNG (xorshift32) so the tests need no dependency.
    struct Rng(u32);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
        /// Uniform in `-amp..=amp`.
        fn noise(&mut self, amp: i32) -> i32 {
            (self.next() % (2 * amp as u32 + 1)) as i32 - amp
        }
    }

    fn add_noise(luma: &mut [u8], amp: i32, seed: u32) {
        let mut rng = Rng(seed);
        for p in luma {
            *p = (i32::from(*p) + rng.noise(amp)).clamp(0, 255) as u8;
        }
    }

    #[test]
    fn test_vector() {
        assert_eq!(
            TC.to_bytes(),
            [0x01, 0x9A, 0xA4, 0xB6, 0x45, 0x7B, 0x00, 0x00, 0x2A, 0x01]
        );
        assert_eq!(CRC8.checksum(b"123456789"), 0xDF);
    }

    #[test]
    fn bytes_round_trip_and_masking() {
        assert_eq!(Timecode::from_bytes(&TC.to_bytes()), Some(TC));
        let big = Timecode {
            unix_ms: u64::MAX,
            frame: u32::MAX,
        };
        let back = Timecode::from_bytes(&big.to_bytes()).unwrap();
        assert_eq!(back, big.masked());
        assert_eq!(back.unix_ms, (1 << 48) - 1);
        assert_eq!(back.frame, (1 << 24) - 1);
    }

    #[test]
    fn from_unix_ns_truncates_to_ms_and_wraps_frame() {
        let tc = Timecode::from_unix_ns(1_763_700_000_123_999_999, (1 << 24) + 5);
        assert_eq!(
            tc,
            Timecode {
                unix_ms: 1_763_700_000_123,
                frame: 5
            }
        );
        assert!(tc.matches(1_763_700_000_123_000_000, 5));
        assert!(!tc.matches(1_763_700_000_124_000_000, 5));
        assert_eq!(tc.unix_ns(), 1_763_700_000_123_000_000);
    }

    #[test]
    fn strip_height_follows_width() {
        assert_eq!(strip_height(640), 32);
        assert_eq!(strip_height(1280), 64);
        assert_eq!(strip_height(1920), 96);
        assert_eq!(strip_height(854), 42);
        assert_eq!(strip_height(80), 4);
        assert_eq!(strip_height(79), 0);
        assert_eq!(strip_height(0), 0);
    }

    #[test]
    fn round_trip_at_common_and_odd_sizes_and_strides() {
        let sizes = [
            (640, 480, 0),
            (640, 480, 7),
            (1280, 720, 0),
            (1280, 720, 33),
            (1920, 1080, 64),
            (854, 480, 3),
            (80, 4, 1),
            (123, 7, 5),
        ];
        for (i, &(w, h, extra)) in sizes.iter().enumerate() {
            let (mut luma, stride) = plane(w, h, extra);
            let tc = Timecode {
                unix_ms: TC.unix_ms + i as u64,
                frame: 1000 + i as u32,
            };
            draw(&mut luma, stride, w, h, tc);
            assert_eq!(
                read(&luma, stride, w, h),
                Some(tc),
                "{w}x{h} stride {stride}"
            );
        }
    }

    #[test]
    fn draw_writes_only_the_strip_in_luma_levels() {
        let (w, h) = (640, 480);
        let (mut luma, stride) = plane(w, h, 16);
        draw(&mut luma, stride, w, h, TC);
        for y in 0..h {
            for x in 0..stride {
                let p = luma[y * stride + x];
                if y < strip_height(w) && x < w {
                    assert!(p == WHITE || p == BLACK, "({x},{y}) = {p}");
                } else {
                    assert_eq!(p, 128, "({x},{y}) outside the strip was touched");
                }
            }
        }
        // First bit of 0x01 is 0 (black); bit 7 is 1 (white): block 7 spans x 112..128.
        assert_eq!(luma[0], BLACK);
        assert_eq!(luma[7 * 16], WHITE);
        assert_eq!(luma[7 * 16 - 1], BLACK);
    }

    #[test]
    fn survives_noise_of_40_luma_levels() {
        for (w, h, seed) in [(640, 480, 1), (1280, 720, 2), (1920, 1080, 3), (80, 8, 4)] {
            let (mut luma, stride) = plane(w, h, 0);
            draw(&mut luma, stride, w, h, TC);
            add_noise(&mut luma, 40, seed);
            assert_eq!(read(&luma, stride, w, h), Some(TC), "{w}x{h}");
        }
    }

    #[test]
    fn survives_a_shifted_and_compressed_luma_range() {
        // Like a canvas that maps 16..235 elsewhere: only relative levels matter.
        let (w, h) = (640, 360);
        let (mut luma, stride) = plane(w, h, 0);
        draw(&mut luma, stride, w, h, TC);
        for p in &mut luma {
            *p = 60 + *p / 3;
        }
        assert_eq!(read(&luma, stride, w, h), Some(TC));
    }

    /// Box-filter downscale by 2 in both directions.
    fn half(luma: &[u8], w: usize, h: usize) -> Vec<u8> {
        let (w2, h2) = (w / 2, h / 2);
        let mut out = vec![0; w2 * h2];
        for y in 0..h2 {
            for x in 0..w2 {
                let at = |dx: usize, dy: usize| u32::from(luma[(2 * y + dy) * w + 2 * x + dx]);
                out[y * w2 + x] = ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)) / 4) as u8;
            }
        }
        out
    }

    /// Nearest-neighbour scale to `w2` × `h2`.
    fn nearest(luma: &[u8], w: usize, h: usize, w2: usize, h2: usize) -> Vec<u8> {
        let mut out = vec![0; w2 * h2];
        for y in 0..h2 {
            for x in 0..w2 {
                out[y * w2 + x] = luma[(y * h / h2) * w + x * w / w2];
            }
        }
        out
    }

    #[test]
    fn survives_scaling_with_the_aspect_ratio_kept() {
        let (w, h) = (1280, 720);
        let (mut luma, _) = plane(w, h, 0);
        draw(&mut luma, w, w, h, TC);
        let small = half(&luma, w, h);
        assert_eq!(read(&small, w / 2, w / 2, h / 2), Some(TC), "box 1/2");
        let quarter = half(&small, w / 2, h / 2);
        assert_eq!(read(&quarter, w / 4, w / 4, h / 4), Some(TC), "box 1/4");
        for (w2, h2) in [(854, 480), (1920, 1080), (400, 225)] {
            let scaled = nearest(&luma, w, h, w2, h2);
            assert_eq!(read(&scaled, w2, w2, h2), Some(TC), "nearest {w2}x{h2}");
        }
    }

    #[test]
    fn a_flipped_block_is_caught_by_the_crc() {
        let (w, h) = (640, 480);
        for k in 0..BITS {
            let (mut luma, stride) = plane(w, h, 0);
            draw(&mut luma, stride, w, h, TC);
            let (x0, x1) = column_span(k % COLUMNS, w);
            let (y0, y1) = row_span(k / COLUMNS, w);
            for y in y0..y1 {
                for p in &mut luma[y * stride + x0..y * stride + x1] {
                    *p = if *p == WHITE { BLACK } else { WHITE };
                }
            }
            assert_eq!(read(&luma, stride, w, h), None, "bit {k} flipped");
        }
    }

    #[test]
    fn pictures_without_a_strip_read_none() {
        let (w, h) = (640, 480);
        for level in [0u8, 16, 128, 235, 255] {
            let luma = vec![level; w * h];
            assert_eq!(read(&luma, w, w, h), None, "uniform {level}");
        }
        let mut noise = vec![128u8; w * h];
        add_noise(&mut noise, 127, 9);
        assert_eq!(read(&noise, w, w, h), None, "noise");
        // A horizontal ramp has contrast but is not two-level.
        let ramp: Vec<u8> = (0..w * h).map(|i| (i % w * 255 / w) as u8).collect();
        assert_eq!(read(&ramp, w, w, h), None, "ramp");
    }

    #[test]
    fn all_zero_and_all_one_payloads_are_never_valid() {
        assert_eq!(Timecode::from_bytes(&[0; 10]), None);
        assert_eq!(Timecode::from_bytes(&[0xFF; 10]), None);
    }

    #[test]
    fn tiny_or_inconsistent_pictures_draw_nothing_and_read_none() {
        // Too narrow.
        let mut luma = vec![128u8; 79 * 10];
        draw(&mut luma, 79, 79, 10, TC);
        assert!(luma.iter().all(|&p| p == 128));
        assert_eq!(read(&luma, 79, 79, 10), None);
        // Too short for the strip (80 wide needs 4 rows).
        let mut luma = vec![128u8; 80 * 3];
        draw(&mut luma, 80, 80, 3, TC);
        assert!(luma.iter().all(|&p| p == 128));
        assert_eq!(read(&luma, 80, 80, 3), None);
        // Stride below width, buffer too small, zero sizes.
        let mut luma = vec![128u8; 640 * 480];
        draw(&mut luma, 639, 640, 480, TC);
        assert!(luma.iter().all(|&p| p == 128));
        assert_eq!(read(&luma, 639, 640, 480), None);
        assert_eq!(read(&luma, 640, 640, 481), None);
        assert_eq!(read(&luma[..10], 640, 640, 480), None);
        assert_eq!(read(&[], 0, 0, 0), None);
        assert_eq!(read(&[], usize::MAX, 640, usize::MAX), None);
        draw(&mut [], 0, 0, 0, TC);
    }
}
