//! Preview windows like the original system's: the publisher's outgoing picture with its green
//! `PUB` overlay, the receiver's decoded picture with a red `REC` overlay. A window lives on a
//! thread of its own (minifb, X11); frames are offered without blocking, and a window that is
//! busy drawing skips frames rather than holding the pipeline back. Closing the window ends
//! only the preview. Without a display the preview says so once and the pipeline goes on.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use livefeed_source::I420Frame;
use minifb::{Window, WindowOptions};

/// A preview window.
pub struct Preview {
    tx: Option<SyncSender<I420Frame>>,
    thread: Option<JoinHandle<()>>,
}

impl Preview {
    /// Starts the window thread; the window opens with the first frame (its size).
    pub fn open(title: &str) -> Preview {
        let (tx, rx) = sync_channel::<I420Frame>(1);
        let title = title.to_string();
        let thread = std::thread::Builder::new()
            .name("livefeed-preview".into())
            .spawn(move || show(&title, rx))
            .ok();
        Preview {
            tx: Some(tx),
            thread,
        }
    }

    /// A sender for frames (for the capture loop's thread).
    pub fn sender(&self) -> Option<SyncSender<I420Frame>> {
        self.tx.clone()
    }

    /// Offers a frame; dropped if the window is still drawing the previous one.
    pub fn offer(&self, frame: I420Frame) {
        if let Some(tx) = &self.tx {
            match tx.try_send(frame) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

impl Drop for Preview {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn show(title: &str, rx: Receiver<I420Frame>) {
    let mut window: Option<Window> = None;
    let mut pixels: Vec<u32> = Vec::new();
    while let Ok(frame) = rx.recv() {
        let (w, h) = (frame.width(), frame.height());
        let fits = window.as_ref().is_some_and(|win| win.get_size() == (w, h));
        if !fits {
            match Window::new(title, w, h, WindowOptions::default()) {
                Ok(win) => window = Some(win),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the preview window (is DISPLAY set?); going on without it");
                    return;
                }
            }
        }
        let Some(win) = window.as_mut() else { return };
        i420_to_xrgb(&frame, &mut pixels);
        if let Err(e) = win.update_with_buffer(&pixels, w, h) {
            tracing::warn!(error = %e, "preview window update failed");
            return;
        }
        if !win.is_open() {
            tracing::info!("preview window closed");
            return;
        }
    }
}

/// BT.601 limited-range I420 → `0x00RRGGBB` pixels.
pub fn i420_to_xrgb(frame: &I420Frame, out: &mut Vec<u32>) {
    let (w, h) = (frame.width(), frame.height());
    out.resize(w * h, 0);
    let (y, u, v) = (frame.y(), frame.u(), frame.v());
    let cw = w / 2;
    for row in 0..h {
        for x in 0..w {
            let c = (row / 2) * cw + x / 2;
            let yy = 298 * (i32::from(y[row * w + x]) - 16);
            let (d, e) = (i32::from(u[c]) - 128, i32::from(v[c]) - 128);
            let r = clamp((yy + 409 * e + 128) >> 8);
            let g = clamp((yy - 100 * d - 208 * e + 128) >> 8);
            let b = clamp((yy + 516 * d + 128) >> 8);
            out[row * w + x] = (r << 16) | (g << 8) | b;
        }
    }
}

fn clamp(v: i32) -> u32 {
    v.clamp(0, 255) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_range_white_black_and_red_convert() {
        let mut f = I420Frame::new_black(2, 2).expect("frame");
        f.y_mut().copy_from_slice(&[235, 16, 81, 81]);
        let mut px = Vec::new();
        i420_to_xrgb(&f, &mut px);
        assert_eq!(px[0], 0xffffff);
        assert_eq!(px[1], 0x000000);
        // Red: Y 81, U 90, V 240.
        let mut red = I420Frame::new_black(2, 2).expect("frame");
        red.y_mut().fill(81);
        red.u_mut().fill(90);
        red.v_mut().fill(240);
        i420_to_xrgb(&red, &mut px);
        let (r, g, b) = (px[0] >> 16, (px[0] >> 8) & 0xff, px[0] & 0xff);
        assert!(r > 240 && g < 10 && b < 10, "{r} {g} {b}");
    }
}
