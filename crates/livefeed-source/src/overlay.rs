//! Drawing on top of a picture: the text overlay (the original system's `PUB …` / `REC …` line)
//! and the pixel timecode strip.
//!
//! # Layout, top of the picture down
//!
//! 1. Rows `0..strip_height(width)`: the pixel timecode ([`draw_timecode`], layout in
//!    [`livefeed_media::timecode`]).
//! 2. From [`overlay_origin_y`] (directly below the strip): the overlay text, drawn by
//!    [`draw_overlay`] in boxes of [`line_height`] rows each, at [`scale_for`] the width.
//!
//! # Drawing order
//!
//! A source renders the whole picture first (the test pattern fills every pixel); then the
//! overlay text, then the timecode. Each later step overwrites what is under it, so nothing the
//! source draws can confuse the timecode reader or hide the text.
//!
//! # Text
//!
//! Glyphs come from the 8 × 8 `font8x8` basic Latin font, each font pixel drawn as a
//! `scale` × `scale` square. Every line sits on a dark, semi-transparent box (luma and chroma
//! pulled halfway to black) with a margin of `scale` pixels on every side. Characters outside
//! basic Latin are drawn as `?`. Drawing clips at the picture edges and never panics.

use font8x8::{UnicodeFonts, BASIC_FONTS};
use livefeed_media::timecode::{self, Timecode};

use crate::frame::I420Frame;

/// Width and height of a font glyph, in font pixels.
pub const GLYPH: usize = 8;

/// A colour as limited-range BT.601 Y, Cb (u), Cr (v).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Yuv {
    /// Luma, 16..=235.
    pub y: u8,
    /// Blue-difference chroma, 16..=240 (128 neutral).
    pub u: u8,
    /// Red-difference chroma, 16..=240 (128 neutral).
    pub v: u8,
}

/// Pure green, RGB (0, 255, 0): the publisher's overlay colour in the original system.
pub const GREEN: Yuv = Yuv {
    y: 145,
    u: 54,
    v: 34,
};
/// Pure red, RGB (255, 0, 0): the receiver's overlay colour.
pub const RED: Yuv = Yuv {
    y: 81,
    u: 90,
    v: 240,
};
/// White, RGB (255, 255, 255).
pub const WHITE: Yuv = Yuv {
    y: 235,
    u: 128,
    v: 128,
};
/// Black, RGB (0, 0, 0).
pub const BLACK: Yuv = Yuv {
    y: 16,
    u: 128,
    v: 128,
};

/// Separator between the fields of an overlay line; [`draw_overlay`] wraps there.
pub const FIELD_SEPARATOR: &str = "  ";

/// Text scale for a picture `width` pixels wide: `ceil(width / 480)`, at least 1
/// (1 up to 480, 2 at 640, 3 at 1280, 4 at 1920).
pub fn scale_for(width: usize) -> usize {
    width.div_ceil(480).max(1)
}

/// First row of the overlay text: directly below the timecode strip.
pub fn overlay_origin_y(width: usize) -> usize {
    timecode::strip_height(width)
}

/// Height in rows of one text line's box at `scale`: the glyph plus a margin of `scale` above
/// and below.
pub fn line_height(scale: usize) -> usize {
    (GLYPH + 2).saturating_mul(scale)
}

/// Size `(width, height)` in pixels of the box [`draw_text`] draws for `text` at `scale`.
pub fn text_box_size(text: &str, scale: usize) -> (usize, usize) {
    let chars = text.chars().count();
    (
        chars
            .saturating_mul(GLYPH)
            .saturating_add(2)
            .saturating_mul(scale),
        line_height(scale),
    )
}

/// Draws `text` in `colour` on a dark semi-transparent box whose top-left corner is `(x, y)`.
/// The first glyph's top-left pixel is `(x + scale, y + scale)`. Clips at the picture edges;
/// an empty `text` or a `scale` of 0 draws nothing.
pub fn draw_text(frame: &mut I420Frame, x: usize, y: usize, text: &str, scale: usize, colour: Yuv) {
    if scale == 0 || text.is_empty() {
        return;
    }
    let (w, h) = text_box_size(text, scale);
    shade(frame, Rect::at(x, y, w, h));
    draw_glyphs(
        frame,
        x.saturating_add(scale),
        y.saturating_add(scale),
        text,
        scale,
        colour,
    );
}

/// Draws `text` in `colour` with no box (used by the test pattern for its counter).
pub(crate) fn draw_glyphs(
    frame: &mut I420Frame,
    x: usize,
    y: usize,
    text: &str,
    scale: usize,
    colour: Yuv,
) {
    let pitch = GLYPH.saturating_mul(scale);
    for (i, ch) in text.chars().enumerate() {
        let gx = x.saturating_add(i.saturating_mul(pitch));
        if gx >= frame.width() {
            break;
        }
        draw_glyph(frame, gx, y, glyph(ch), scale, colour);
    }
}

/// Draws an overlay line at [`overlay_origin_y`] and the left edge, at [`scale_for`] the width.
/// If the line is wider than the picture it wraps at [`FIELD_SEPARATOR`]s onto further lines,
/// each in its own box. Returns the first row below the overlay.
pub fn draw_overlay(frame: &mut I420Frame, text: &str, colour: Yuv) -> usize {
    draw_overlay_on_line(frame, text, colour, 0)
}

/// [`draw_overlay`] starting `line` overlay lines lower (the receiver's `REC` line goes under
/// the publisher's `PUB` line, which its decoded picture already carries).
pub fn draw_overlay_on_line(frame: &mut I420Frame, text: &str, colour: Yuv, line: usize) -> usize {
    let scale = scale_for(frame.width());
    let mut y = overlay_origin_y(frame.width()) + line * line_height(scale);
    for line in wrap(text, max_chars(frame.width(), scale)) {
        draw_text(frame, 0, y, &line, scale, colour);
        y += line_height(scale);
    }
    y
}

/// Draws the pixel timecode strip for `tc` and sets the chroma under it to neutral, so the
/// blocks stay pure black and white after conversion to RGB.
pub fn draw_timecode(frame: &mut I420Frame, tc: Timecode) {
    let (width, height) = (frame.width(), frame.height());
    let rows = timecode::strip_height(width);
    if rows == 0 || rows > height {
        return;
    }
    let chroma_rows = rows.div_ceil(2) * frame.chroma_width();
    let (y, u, v) = frame.planes_mut();
    u[..chroma_rows].fill(128);
    v[..chroma_rows].fill(128);
    timecode::draw(y, width, width, height, tc);
}

/// Reads the pixel timecode back from a (decoded) frame.
pub fn read_timecode(frame: &I420Frame) -> Option<Timecode> {
    timecode::read(frame.y(), frame.width(), frame.width(), frame.height())
}

/// The publisher's overlay line, e.g. `PUB 12:34:56.789  FPS 30.0  LAT 3.2ms`: capture time of
/// day (UTC), capture frame rate and processing latency.
pub fn publisher_line(capture_unix_ns: u64, fps: f64, lat_ms: f64) -> String {
    format!(
        "PUB {}{FIELD_SEPARATOR}FPS {fps:.1}{FIELD_SEPARATOR}LAT {lat_ms:.1}ms",
        time_of_day(capture_unix_ns)
    )
}

/// The receiver's overlay line, e.g. `REC 12:34:56.789  REC FPS 30.0  LAT 12.3ms`: receive time
/// of day (UTC), receive frame rate and end-to-end latency.
pub fn receiver_line(now_unix_ns: u64, fps: f64, lat_ms: f64) -> String {
    format!(
        "REC {}{FIELD_SEPARATOR}REC FPS {fps:.1}{FIELD_SEPARATOR}LAT {lat_ms:.1}ms",
        time_of_day(now_unix_ns)
    )
}

/// UTC time of day of a Unix time in nanoseconds, as `HH:MM:SS.mmm` (milliseconds truncated).
pub fn time_of_day(unix_ns: u64) -> String {
    let ms_of_day = (unix_ns / 1_000_000) % 86_400_000;
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// A clipped-later rectangle `[x0, x1)` × `[y0, y1)` in luma pixels.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Rect {
    fn at(x: usize, y: usize, w: usize, h: usize) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x.saturating_add(w),
            y1: y.saturating_add(h),
        }
    }

    /// The part inside a `width` × `height` picture (possibly empty).
    fn clip(self, width: usize, height: usize) -> Self {
        Self {
            x1: self.x1.min(width),
            y1: self.y1.min(height),
            ..self
        }
    }

    fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }

    /// The chroma samples touched by this (clipped) rectangle.
    fn chroma(self) -> Self {
        Self {
            x0: self.x0 / 2,
            y0: self.y0 / 2,
            x1: self.x1.div_ceil(2),
            y1: self.y1.div_ceil(2),
        }
    }
}

/// Applies `f` to every sample of `rect` in a plane of stride `stride`. `rect` must be clipped.
fn for_rect(plane: &mut [u8], stride: usize, rect: Rect, f: impl Fn(&mut [u8])) {
    for row in rect.y0..rect.y1 {
        if let Some(line) = plane.get_mut(row * stride + rect.x0..row * stride + rect.x1) {
            f(line);
        }
    }
}

/// Fills `rect` (luma pixels, clipped here) with `colour`; chroma samples it touches too.
pub(crate) fn fill_rect(frame: &mut I420Frame, x: usize, y: usize, w: usize, h: usize, c: Yuv) {
    let rect = Rect::at(x, y, w, h).clip(frame.width(), frame.height());
    if rect.is_empty() {
        return;
    }
    let (lw, cw) = (frame.width(), frame.chroma_width());
    let (luma, u, v) = frame.planes_mut();
    for_rect(luma, lw, rect, |l| l.fill(c.y));
    for_rect(u, cw, rect.chroma(), |l| l.fill(c.u));
    for_rect(v, cw, rect.chroma(), |l| l.fill(c.v));
}

/// Darkens `rect` halfway towards black, luma and chroma.
fn shade(frame: &mut I420Frame, rect: Rect) {
    let rect = rect.clip(frame.width(), frame.height());
    if rect.is_empty() {
        return;
    }
    let (lw, cw) = (frame.width(), frame.chroma_width());
    let (luma, u, v) = frame.planes_mut();
    let halfway = |to: u8| move |line: &mut [u8]| line.iter_mut().for_each(|p| *p = avg(*p, to));
    for_rect(luma, lw, rect, halfway(BLACK.y));
    for_rect(u, cw, rect.chroma(), halfway(128));
    for_rect(v, cw, rect.chroma(), halfway(128));
}

fn avg(a: u8, b: u8) -> u8 {
    ((u16::from(a) + u16::from(b)) / 2) as u8
}

/// The 8 × 8 bitmap of `ch` (row bytes, bit 0 is the leftmost pixel); `?` if the font lacks it.
fn glyph(ch: char) -> [u8; 8] {
    BASIC_FONTS
        .get(ch)
        .or_else(|| BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

fn draw_glyph(frame: &mut I420Frame, x: usize, y: usize, rows: [u8; 8], scale: usize, c: Yuv) {
    for (gy, bits) in rows.iter().enumerate() {
        for gx in 0..GLYPH {
            if bits & (1 << gx) != 0 {
                let px = x.saturating_add(gx.saturating_mul(scale));
                let py = y.saturating_add(gy.saturating_mul(scale));
                fill_rect(frame, px, py, scale, scale, c);
            }
        }
    }
}

/// How many characters fit on one overlay line of a picture `width` wide at `scale`.
fn max_chars(width: usize, scale: usize) -> usize {
    (width / scale.max(1)).saturating_sub(2) / GLYPH
}

/// Splits `text` at [`FIELD_SEPARATOR`]s into lines of at most `max` characters where
/// possible (a single field longer than `max` stays whole and gets clipped when drawn).
fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for field in text.split(FIELD_SEPARATOR) {
        match lines.last_mut() {
            Some(line)
                if line.chars().count() + FIELD_SEPARATOR.len() + field.chars().count() <= max =>
            {
                line.push_str(FIELD_SEPARATOR);
                line.push_str(field);
            }
            _ => lines.push(field.to_owned()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(width: usize, height: usize) -> I420Frame {
        let mut f = I420Frame::new_black(width, height).unwrap();
        f.y_mut().fill(100);
        f
    }

    fn luma_at(f: &I420Frame, x: usize, y: usize) -> u8 {
        f.y()[y * f.width() + x]
    }

    fn chroma_at(f: &I420Frame, x: usize, y: usize) -> (u8, u8) {
        let i = (y / 2) * f.chroma_width() + x / 2;
        (f.u()[i], f.v()[i])
    }

    /// Glyph bitmap lookup, to compare drawn pixels with the font.
    fn font_pixel(ch: char, gx: usize, gy: usize) -> bool {
        glyph(ch)[gy] & (1 << gx) != 0
    }

    #[test]
    fn scale_follows_the_width() {
        assert_eq!(scale_for(0), 1);
        assert_eq!(scale_for(320), 1);
        assert_eq!(scale_for(640), 2);
        assert_eq!(scale_for(1280), 3);
        assert_eq!(scale_for(1920), 4);
    }

    #[test]
    fn overlay_sits_directly_below_the_strip() {
        assert_eq!(overlay_origin_y(640), 32);
        assert_eq!(overlay_origin_y(1280), 64);
        assert_eq!(overlay_origin_y(40), 0);
    }

    #[test]
    fn text_pixels_land_where_the_font_says() {
        let mut f = grey(640, 480);
        let (x, y, scale) = (100, 50, 2);
        draw_text(&mut f, x, y, "A1", scale, GREEN);
        for (i, ch) in ['A', '1'].into_iter().enumerate() {
            for gy in 0..GLYPH {
                for gx in 0..GLYPH {
                    for (sx, sy) in [(0, 0), (1, 1)] {
                        let px = x + scale + i * GLYPH * scale + gx * scale + sx;
                        let py = y + scale + gy * scale + sy;
                        let expected = if font_pixel(ch, gx, gy) { GREEN.y } else { 58 };
                        assert_eq!(luma_at(&f, px, py), expected, "{ch} ({gx},{gy})");
                    }
                }
            }
        }
        // The box margin is shaded ((100 + 16) / 2 = 58); outside the box is untouched.
        let (bw, bh) = text_box_size("A1", scale);
        assert_eq!((bw, bh), (36, 20));
        assert_eq!(luma_at(&f, x, y), 58);
        assert_eq!(luma_at(&f, x + bw - 1, y + bh - 1), 58);
        assert_eq!(luma_at(&f, x + bw, y), 100);
        assert_eq!(luma_at(&f, x, y + bh), 100);
        assert_eq!(luma_at(&f, x - 1, y), 100);
    }

    #[test]
    fn glyph_chroma_takes_the_colour() {
        let mut f = grey(64, 32);
        // 'A' row 2 is 0x33: font pixels 0 and 1 set, at scale 2 from x = 2, y = 2 + 4.
        draw_text(&mut f, 0, 0, "A", 2, RED);
        assert_eq!(luma_at(&f, 2, 6), RED.y);
        assert_eq!(chroma_at(&f, 2, 6), (RED.u, RED.v));
        // The box darkens neutral chroma, which stays neutral.
        assert_eq!(chroma_at(&f, 0, 0), (128, 128));
        // Outside the box, nothing changed.
        assert_eq!(chroma_at(&f, 40, 30), (128, 128));
        assert_eq!(luma_at(&f, 40, 30), 100);
    }

    #[test]
    fn colours_are_bt601_limited_range() {
        // Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 etc., rounded.
        let to_yuv = |r: f64, g: f64, b: f64| Yuv {
            y: (16.0 + 0.256_79 * r + 0.504_13 * g + 0.097_91 * b).round() as u8,
            u: (128.0 - 0.148_22 * r - 0.290_99 * g + 0.439_22 * b).round() as u8,
            v: (128.0 + 0.439_22 * r - 0.367_79 * g - 0.071_43 * b).round() as u8,
        };
        assert_eq!(GREEN, to_yuv(0.0, 255.0, 0.0));
        assert_eq!(RED, to_yuv(255.0, 0.0, 0.0));
        assert_eq!(WHITE, to_yuv(255.0, 255.0, 255.0));
        assert_eq!(BLACK, to_yuv(0.0, 0.0, 0.0));
    }

    #[test]
    fn clips_at_every_edge_without_panicking() {
        let mut f = grey(32, 16);
        draw_text(&mut f, 20, 10, "HELLO WORLD", 3, GREEN);
        draw_text(&mut f, 31, 15, "X", 1, RED);
        draw_text(&mut f, 32, 0, "off to the right", 2, RED);
        draw_text(&mut f, 0, 16, "below", 2, RED);
        draw_text(&mut f, usize::MAX, usize::MAX, "far away", usize::MAX, RED);
        draw_text(&mut f, 0, 0, "", 2, RED);
        draw_text(&mut f, 0, 0, "zero scale", 0, RED);
        draw_text(&mut f, 0, 12, "ünïcödé ✓", 1, RED);
        // The first box's corner (20, 10) was shaded; (19, 9) is outside every box.
        assert_eq!(luma_at(&f, 20, 10), 58);
        assert_eq!(luma_at(&f, 19, 9), 100);
        assert_eq!(f.y().len(), 32 * 16);
    }

    #[test]
    fn unknown_characters_draw_as_question_marks() {
        let (mut a, mut b) = (grey(64, 16), grey(64, 16));
        draw_text(&mut a, 0, 0, "é", 1, WHITE);
        draw_text(&mut b, 0, 0, "?", 1, WHITE);
        assert_eq!(a, b);
    }

    #[test]
    fn time_of_day_formats_utc_and_wraps_at_midnight() {
        assert_eq!(time_of_day(0), "00:00:00.000");
        // 2025-11-21T04:40:00.123456789Z
        assert_eq!(time_of_day(1_763_700_000_123_456_789), "04:40:00.123");
        let midnight = 1_763_769_600_000_000_000; // 2025-11-22T00:00:00Z
        assert_eq!(time_of_day(midnight - 1), "23:59:59.999");
        assert_eq!(time_of_day(midnight), "00:00:00.000");
        assert_eq!(time_of_day(midnight + 45_296_789_000_000), "12:34:56.789");
        assert_eq!(time_of_day(u64::MAX), "23:34:33.709");
    }

    #[test]
    fn overlay_lines_match_the_original_format() {
        let t = 1_763_769_600_000_000_000 + 45_296_789_000_000;
        assert_eq!(
            publisher_line(t, 30.0, 3.24),
            "PUB 12:34:56.789  FPS 30.0  LAT 3.2ms"
        );
        assert_eq!(
            receiver_line(t, 29.96, 12.26),
            "REC 12:34:56.789  REC FPS 30.0  LAT 12.3ms"
        );
        assert_eq!(
            publisher_line(0, f64::NAN, -1.0),
            "PUB 00:00:00.000  FPS NaN  LAT -1.0ms"
        );
    }

    #[test]
    fn overlay_wraps_at_field_separators_when_too_wide() {
        assert_eq!(wrap("AB  CD  EF", 6), ["AB  CD", "EF"]);
        assert_eq!(wrap("AB  CD  EF", 100), ["AB  CD  EF"]);
        assert_eq!(wrap("ABCDEFGH", 3), ["ABCDEFGH"]);
        let line = receiver_line(0, 30.0, 12.3); // 42 characters: too wide at 640 and scale 2
        assert_eq!(max_chars(640, 2), 39);
        let mut f = grey(640, 480);
        let bottom = draw_overlay(&mut f, &line, RED);
        assert_eq!(bottom, 32 + 2 * line_height(2));
        let mut f = grey(1280, 720);
        let bottom = draw_overlay(&mut f, &line, RED);
        assert_eq!(bottom, 64 + line_height(3));
        // The box starts right below the strip.
        assert_eq!(luma_at(&f, 0, 64), 58);
        assert_eq!(luma_at(&f, 0, 63), 100);
    }

    #[test]
    fn timecode_round_trips_through_a_frame_with_coloured_chroma() {
        let mut f = grey(640, 480);
        f.u_mut().fill(200);
        f.v_mut().fill(40);
        let tc = Timecode::from_unix_ns(1_763_700_000_123_456_789, 7);
        draw_timecode(&mut f, tc);
        assert_eq!(read_timecode(&f), Some(tc));
        // Chroma under the strip (32 rows = 16 chroma rows) is neutral, below it untouched.
        assert_eq!(chroma_at(&f, 0, 31), (128, 128));
        assert_eq!(chroma_at(&f, 0, 32), (200, 40));
        // Too small for a strip: nothing drawn, nothing read.
        let mut tiny = grey(64, 64);
        draw_timecode(&mut tiny, tc);
        assert_eq!(tiny, grey(64, 64));
        assert_eq!(read_timecode(&tiny), None);
    }
}
