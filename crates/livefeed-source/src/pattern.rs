//! The synthetic source: a moving test pattern in the spirit of ffmpeg's `testsrc2`, with
//! motion in every part of the picture so the encoder works as hard as on camera footage and
//! a frozen or repeated frame is obvious to the eye.
//!
//! # What is drawn (all as a function of the frame number only: same number, same picture)
//!
//! - Top two thirds: eight 75 % colour bars (white, yellow, cyan, green, magenta, red, blue,
//!   black) spanning the width and scrolling left by [`BAR_SPEED`] pixels per frame, wrapping.
//! - Bottom third: a grey triangle ramp (black → white → black across the width) scrolling
//!   right by [`RAMP_SPEED`] pixels per frame.
//! - A white box with a black border, a sixth of the height square, bouncing diagonally off
//!   the picture edges.
//! - The frame number in large white digits on black, centred in the picture.
//!
//! # Drawing order
//!
//! [`TestPattern::render`] fills every pixel of the frame, including the rows where the
//! timecode strip and the overlay text go. Those are drawn *after* it (see
//! [`crate::overlay`]) and overwrite whatever is under them, so the pattern cannot confuse the
//! timecode reader; the frame counter is centred, below the overlay band at usual sizes.
//!
//! # Cost
//!
//! Rows are copied from precomputed bar and ramp lines (one `memcpy` per row and plane), then
//! the box and the digits are filled as rectangles: well under 1 ms per 1280 × 720 frame in
//! release builds.

use crate::frame::I420Frame;
use crate::overlay::{self, Yuv, BLACK, GLYPH, WHITE};

/// Horizontal scroll of the colour bars, luma pixels per frame (even, to keep chroma aligned).
pub const BAR_SPEED: usize = 4;
/// Horizontal scroll of the ramp, luma pixels per frame (even).
pub const RAMP_SPEED: usize = 2;
/// Bouncing box speed, luma pixels per frame horizontally and vertically.
const BOX_SPEED: (u64, u64) = (6, 4);

/// EBU 75 % colour bars, limited-range BT.601, left to right.
const BARS: [Yuv; 8] = [
    Yuv {
        y: 180,
        u: 128,
        v: 128,
    },
    Yuv {
        y: 162,
        u: 44,
        v: 142,
    },
    Yuv {
        y: 131,
        u: 156,
        v: 44,
    },
    Yuv {
        y: 112,
        u: 72,
        v: 58,
    },
    Yuv {
        y: 84,
        u: 184,
        v: 198,
    },
    Yuv {
        y: 65,
        u: 100,
        v: 212,
    },
    Yuv {
        y: 35,
        u: 212,
        v: 114,
    },
    Yuv {
        y: 16,
        u: 128,
        v: 128,
    },
];

/// The moving test pattern for one picture size. Rendering into a frame of another size
/// rebuilds the precomputed lines for that size first.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    lines: Lines,
}

/// Precomputed picture lines, each two periods long so that a scrolled line is one slice.
#[derive(Debug, Clone, Default)]
struct Lines {
    bars_y: Vec<u8>,
    bars_u: Vec<u8>,
    bars_v: Vec<u8>,
    ramp_y: Vec<u8>,
}

impl TestPattern {
    /// A pattern for `width` × `height` frames.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            lines: Lines::new(width),
        }
    }

    /// Width the pattern is prepared for.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height the pattern is prepared for.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Renders picture number `frame_no` into `out`, overwriting every pixel.
    pub fn render(&mut self, frame_no: u64, out: &mut I420Frame) {
        if (out.width(), out.height()) != (self.width, self.height) {
            *self = Self::new(out.width(), out.height());
        }
        self.render_backgrounds(frame_no, out);
        draw_bouncing_box(frame_no, out);
        draw_counter(frame_no, out);
    }

    /// Scrolling bars in the top two thirds, scrolling ramp in the bottom third.
    fn render_backgrounds(&self, frame_no: u64, out: &mut I420Frame) {
        let (w, h) = (out.width(), out.height());
        let (cw, ch) = (out.chroma_width(), out.chroma_height());
        let bars_end = (h * 2 / 3) & !1;
        let bar_off = scroll(frame_no, BAR_SPEED, w);
        // Scrolling right by s is scrolling left by w - s.
        let ramp_off = (w - scroll(frame_no, RAMP_SPEED, w)) % w;
        let l = &self.lines;
        let (luma, u, v) = out.planes_mut();
        copy_rows(luma, w, 0..bars_end, &l.bars_y, bar_off);
        copy_rows(luma, w, bars_end..h, &l.ramp_y, ramp_off);
        copy_rows(u, cw, 0..bars_end / 2, &l.bars_u, bar_off / 2);
        copy_rows(v, cw, 0..bars_end / 2, &l.bars_v, bar_off / 2);
        fill_rows(u, cw, bars_end / 2..ch, 128);
        fill_rows(v, cw, bars_end / 2..ch, 128);
    }
}

impl Lines {
    fn new(width: usize) -> Self {
        let cw = width / 2;
        let bar = |x: usize| BARS[(x % width.max(1)) * BARS.len() / width.max(1)];
        Self {
            bars_y: (0..2 * width).map(|x| bar(x).y).collect(),
            bars_u: (0..2 * cw).map(|cx| bar(2 * cx).u).collect(),
            bars_v: (0..2 * cw).map(|cx| bar(2 * cx).v).collect(),
            ramp_y: (0..2 * width)
                .map(|x| ramp(x % width.max(1), width))
                .collect(),
        }
    }
}

/// Luma of the triangle ramp at `x` in a line `width` wide: 16 at the edges, 235 in the middle.
fn ramp(x: usize, width: usize) -> u8 {
    let half = (width / 2).max(1);
    let dist = if x < half { x } else { width - x };
    (16 + 219 * dist.min(half) / half) as u8
}

/// Left scroll offset of a line `width` wide after `frame_no` frames at `speed` px per frame.
fn scroll(frame_no: u64, speed: usize, width: usize) -> usize {
    let width = width.max(1) as u64;
    ((frame_no % width) * speed as u64 % width) as usize
}

/// Copies `line[offset..offset + stride]` into each row in `rows` of a plane.
fn copy_rows(
    plane: &mut [u8],
    stride: usize,
    rows: std::ops::Range<usize>,
    line: &[u8],
    offset: usize,
) {
    let Some(src) = line.get(offset..offset + stride) else {
        return;
    };
    for row in rows {
        if let Some(dst) = plane.get_mut(row * stride..(row + 1) * stride) {
            dst.copy_from_slice(src);
        }
    }
}

/// Fills each row in `rows` of a plane with `value`.
fn fill_rows(plane: &mut [u8], stride: usize, rows: std::ops::Range<usize>, value: u8) {
    if let Some(dst) = plane.get_mut(rows.start * stride..rows.end * stride) {
        dst.fill(value);
    }
}

/// Position along a span that bounces between 0 and `span`: a triangle wave.
fn bounce(t: u64, span: usize) -> usize {
    let span = span as u64;
    if span == 0 {
        return 0;
    }
    let p = t % (2 * span);
    (if p <= span { p } else { 2 * span - p }) as usize
}

/// The box: `height / 6` square (even), white with a black border, bouncing off the edges.
fn draw_bouncing_box(frame_no: u64, out: &mut I420Frame) {
    let size = (out.height() / 6).max(2) & !1;
    let border = (size / 8).max(1);
    let x = bounce(
        frame_no.wrapping_mul(BOX_SPEED.0),
        out.width().saturating_sub(size),
    ) & !1;
    let y = bounce(
        frame_no.wrapping_mul(BOX_SPEED.1),
        out.height().saturating_sub(size),
    ) & !1;
    overlay::fill_rect(out, x, y, size, size, BLACK);
    let inner = size.saturating_sub(2 * border);
    overlay::fill_rect(out, x + border, y + border, inner, inner, WHITE);
}

/// The frame number, `height / 60` scale (at least 1), white on black, centred.
fn draw_counter(frame_no: u64, out: &mut I420Frame) {
    let text = frame_no.to_string();
    let (x, y, w, h, scale) = counter_box(text.len(), out.width(), out.height());
    overlay::fill_rect(out, x, y, w, h, BLACK);
    overlay::draw_glyphs(out, x + scale, y + scale, &text, scale, WHITE);
}

/// Where the counter of `digits` digits goes in a `width` × `height` picture:
/// `(x, y, box width, box height, scale)`.
fn counter_box(digits: usize, width: usize, height: usize) -> (usize, usize, usize, usize, usize) {
    let scale = (height / 60).max(1);
    let (bw, bh) = ((digits * GLYPH + 2) * scale, (GLYPH + 2) * scale);
    let x = width.saturating_sub(bw) / 2;
    let y = height.saturating_sub(bh) / 2;
    (x, y, bw, bh, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::{draw_overlay, draw_timecode, publisher_line, read_timecode, GREEN};
    use livefeed_media::timecode::Timecode;

    fn render(w: usize, h: usize, n: u64) -> I420Frame {
        let mut f = I420Frame::new_black(w, h).unwrap();
        TestPattern::new(w, h).render(n, &mut f);
        f
    }

    /// Whether the `tw` × `th` luma tile at (`tx`, `ty`) differs between two frames.
    fn tile_differs(
        a: &I420Frame,
        b: &I420Frame,
        tx: usize,
        ty: usize,
        tw: usize,
        th: usize,
    ) -> bool {
        let w = a.width();
        (ty..ty + th)
            .any(|y| a.y()[y * w + tx..y * w + tx + tw] != b.y()[y * w + tx..y * w + tx + tw])
    }

    #[test]
    fn same_frame_number_same_picture() {
        let mut p = TestPattern::new(640, 480);
        let (mut a, mut b) = (
            I420Frame::new_black(640, 480).unwrap(),
            I420Frame::new_black(640, 480).unwrap(),
        );
        p.render(1234, &mut a);
        p.render(7, &mut b);
        p.render(1234, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn every_part_of_the_picture_moves_between_consecutive_frames() {
        let (w, h) = (640, 480);
        let (tw, th) = (w / 8, h / 8);
        for n in [0u64, 1, 19, 20, 99, 1000, 123_456] {
            let (a, b) = (render(w, h, n), render(w, h, n + 1));
            // The leading digits of the counter legitimately stay put.
            let (cx, cy, cw, ch, _) = counter_box((n + 1).to_string().len(), w, h);
            let in_counter =
                |tx: usize, ty: usize| tx + tw > cx && tx < cx + cw && ty + th > cy && ty < cy + ch;
            for ty in (0..h).step_by(th) {
                for tx in (0..w).step_by(tw) {
                    if !in_counter(tx, ty) {
                        assert!(
                            tile_differs(&a, &b, tx, ty, tw, th),
                            "frame {n}: tile ({tx},{ty}) static"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn top_rows_show_the_bars_scrolled_by_bar_speed() {
        let (w, h) = (640, 480);
        let (a, b) = (render(w, h, 10), render(w, h, 11));
        // Row 0 is a bars row; frame 11 is frame 10 moved left by BAR_SPEED.
        assert_eq!(a.y()[BAR_SPEED..w], b.y()[..w - BAR_SPEED]);
        // Row 100 at frame 0: clear of the box (rows 0..80) and the counter (rows 200..280).
        let f = render(w, h, 0);
        let (row, crow) = (100 * w, 50 * (w / 2));
        assert_eq!(f.y()[row], BARS[0].y);
        assert_eq!(f.y()[row + w - 1], BARS[7].y);
        assert_eq!((f.u()[crow], f.v()[crow]), (BARS[0].u, BARS[0].v));
        let mid = crow + w / 4;
        assert_eq!((f.u()[mid], f.v()[mid]), (BARS[4].u, BARS[4].v));
    }

    #[test]
    fn bottom_rows_show_the_ramp_with_neutral_chroma() {
        let (w, h) = (640, 480);
        let f = render(w, h, 0);
        let row = &f.y()[(h - 1) * w..];
        assert_eq!(row[0], 16);
        assert_eq!(row[w / 2], 235);
        assert!(f.u()[f.u().len() - 1] == 128 && f.v()[f.v().len() - 1] == 128);
        let g = render(w, h, 1);
        let next = &g.y()[(h - 1) * w..];
        assert_eq!(row[..w - RAMP_SPEED], next[RAMP_SPEED..]);
    }

    #[test]
    fn bounce_stays_inside_and_turns_at_the_edges() {
        assert_eq!(bounce(0, 10), 0);
        assert_eq!(bounce(10, 10), 10);
        assert_eq!(bounce(11, 10), 9);
        assert_eq!(bounce(20, 10), 0);
        assert_eq!(bounce(u64::MAX, 10), 5); // u64::MAX % 20 = 15, on the way back
        assert_eq!(bounce(5, 0), 0);
    }

    #[test]
    fn counter_is_drawn_in_the_centre() {
        let (w, h) = (640, 480);
        let (a, b) = (render(w, h, 8), render(w, h, 9));
        // '8' and '9' differ, so the centre tile differs; the black box surrounds it.
        assert!(tile_differs(&a, &b, w / 2 - 32, h / 2 - 32, 64, 64));
        let scale = h / 60;
        let box_x = (w - (GLYPH * scale + 2 * scale)) / 2;
        assert_eq!(a.y()[(h / 2) * w + box_x], BLACK.y);
    }

    #[test]
    fn renders_into_frames_of_other_sizes_and_tiny_frames() {
        let mut p = TestPattern::new(640, 480);
        for (w, h) in [(2, 2), (4, 2), (18, 6), (1280, 720), (642, 362)] {
            let mut f = I420Frame::new_black(w, h).unwrap();
            p.render(u64::MAX, &mut f);
            p.render(3, &mut f);
            assert_eq!((p.width(), p.height()), (w, h));
        }
    }

    #[test]
    fn timecode_and_overlay_drawn_after_the_pattern_read_back() {
        for (w, h) in [(640, 480), (1280, 720), (1920, 1080)] {
            let mut f = I420Frame::new_black(w, h).unwrap();
            let mut p = TestPattern::new(w, h);
            for n in 0..120u64 {
                let tc = Timecode::from_unix_ns(1_763_700_000_000_000_000 + n * 33_333_333, n);
                p.render(n, &mut f);
                draw_overlay(&mut f, &publisher_line(tc.unix_ns(), 30.0, 1.5), GREEN);
                draw_timecode(&mut f, tc);
                assert_eq!(read_timecode(&f), Some(tc), "{w}x{h} frame {n}");
            }
        }
    }
}
