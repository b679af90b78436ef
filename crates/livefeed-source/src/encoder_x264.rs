//! H.264 encoding with libx264 (cargo feature `x264`), at the same zero-latency promises as the
//! OpenH264 encoder: preset `ultrafast`, tune `zerolatency` (no lookahead, no B-frames, no
//! frame threading: one access unit out per picture in), constrained baseline (every browser
//! and WebRTC stack plays it), average-bitrate control with a one-frame VBV buffer, an IDR every
//! `gop` frames with SPS/PPS repeated in front of it, and the livefeed SEI capture stamp.
//!
//! Built on the raw `x264-sys` bindings: the safe `x264` crate has no way to choose the rate
//! control method (it stays in constant-quality mode and ignores a bitrate), which a live
//! encoder with a bandwidth budget needs. The unsafe surface is the five libx264 calls below.

use std::ffi::CString;
use std::mem::MaybeUninit;

use anyhow::bail;
use livefeed_media::h264::{is_vcl, split_annex_b};
use livefeed_media::{AccessUnit, CaptureStamp};
use x264_sys as sys;

use crate::encoder::{check_size, with_stamp, EncoderSettings, VideoEncoder};
use crate::frame::I420Frame;

/// A libx264 encoder.
pub struct X264Encoder {
    handle: *mut sys::x264_t,
    settings: EncoderSettings,
    annex_b: Vec<u8>,
    /// The next picture is to be an IDR picture.
    idr_next: bool,
}

// The handle is used from one thread at a time (the encoder moves with the capture loop).
unsafe impl Send for X264Encoder {}

impl X264Encoder {
    /// Opens an encoder for pictures of the given size.
    pub fn new(settings: EncoderSettings) -> anyhow::Result<Self> {
        if settings.gop == 0 || settings.fps <= 0.0 || settings.bitrate_kbps == 0 {
            bail!("invalid encoder settings {settings:?}: gop, fps and bitrate must be positive");
        }
        let (preset, tune, profile) = (
            CString::new("ultrafast")?,
            CString::new("zerolatency")?,
            CString::new("baseline")?,
        );
        let mut param = MaybeUninit::<sys::x264_param_t>::uninit();
        // SAFETY: x264_param_default_preset fully initialises `param` when it returns 0.
        let mut param = unsafe {
            if sys::x264_param_default_preset(param.as_mut_ptr(), preset.as_ptr(), tune.as_ptr())
                != 0
            {
                bail!("libx264 rejected preset ultrafast / tune zerolatency");
            }
            param.assume_init()
        };
        param.i_width = settings.width as i32;
        param.i_height = settings.height as i32;
        param.i_csp = sys::X264_CSP_I420 as i32;
        param.i_fps_num = (settings.fps * 1000.0).round() as u32;
        param.i_fps_den = 1000;
        param.i_timebase_num = 1;
        param.i_timebase_den = 90_000;
        param.i_threads = 1;
        param.i_keyint_max = settings.gop as i32;
        param.i_keyint_min = settings.gop as i32;
        param.i_scenecut_threshold = 0;
        param.b_repeat_headers = 1;
        param.b_annexb = 1;
        param.i_log_level = -1;
        param.rc.i_rc_method = sys::X264_RC_ABR as i32;
        param.rc.i_bitrate = settings.bitrate_kbps as i32;
        param.rc.i_vbv_max_bitrate = settings.bitrate_kbps as i32;
        // One frame's worth of bits: no frame may queue behind a big one.
        param.rc.i_vbv_buffer_size =
            ((settings.bitrate_kbps as f32 / settings.fps).ceil() as i32).max(1);
        // SAFETY: `param` is initialised; the profile name is a valid C string.
        let handle = unsafe {
            if sys::x264_param_apply_profile(&mut param, profile.as_ptr()) != 0 {
                bail!("libx264 rejected the baseline profile");
            }
            sys::x264_encoder_open(&mut param)
        };
        if handle.is_null() {
            bail!("libx264 could not open an encoder for {settings:?}");
        }
        Ok(X264Encoder {
            handle,
            settings,
            annex_b: Vec::with_capacity(256 * 1024),
            idr_next: false,
        })
    }
}

impl VideoEncoder for X264Encoder {
    fn force_keyframe(&mut self) {
        self.idr_next = true;
    }

    fn encode(
        &mut self,
        frame: &I420Frame,
        pts: u64,
        stamp: CaptureStamp,
    ) -> anyhow::Result<AccessUnit> {
        check_size(frame, &self.settings)?;
        let w = self.settings.width;
        let mut pic_in = MaybeUninit::<sys::x264_picture_t>::uninit();
        let mut pic_out = MaybeUninit::<sys::x264_picture_t>::uninit();
        let mut nals: *mut sys::x264_nal_t = std::ptr::null_mut();
        let mut count: i32 = 0;
        // SAFETY: x264_picture_init initialises the pictures; the planes point into `frame`,
        // which outlives the call and which libx264 only reads; the NAL array it returns stays
        // valid until the next call on this encoder, and is copied out before that.
        let (size, keyframe) = unsafe {
            sys::x264_picture_init(pic_in.as_mut_ptr());
            let pic = &mut *pic_in.as_mut_ptr();
            pic.img.i_csp = sys::X264_CSP_I420 as i32;
            pic.img.i_plane = 3;
            pic.img.i_stride = [w as i32, (w / 2) as i32, (w / 2) as i32, 0];
            pic.img.plane = [
                frame.y().as_ptr() as *mut u8,
                frame.u().as_ptr() as *mut u8,
                frame.v().as_ptr() as *mut u8,
                std::ptr::null_mut(),
            ];
            pic.i_pts = pts as i64;
            pic.i_type = if std::mem::take(&mut self.idr_next) {
                sys::X264_TYPE_IDR as i32
            } else {
                sys::X264_TYPE_AUTO as i32
            };
            sys::x264_picture_init(pic_out.as_mut_ptr());
            let size = sys::x264_encoder_encode(
                self.handle,
                &mut nals,
                &mut count,
                pic,
                pic_out.as_mut_ptr(),
            );
            self.annex_b.clear();
            if size > 0 && !nals.is_null() {
                for nal in std::slice::from_raw_parts(nals, count.max(0) as usize) {
                    if !nal.p_payload.is_null() && nal.i_payload > 0 {
                        self.annex_b.extend_from_slice(std::slice::from_raw_parts(
                            nal.p_payload,
                            nal.i_payload as usize,
                        ));
                    }
                }
            }
            (size, (*pic_out.as_ptr()).b_keyframe != 0)
        };
        if size < 0 {
            bail!("libx264 failed on frame {}", stamp.frame);
        }
        let nals = with_stamp(split_annex_b(&self.annex_b), stamp);
        if !nals.iter().any(|n| is_vcl(n)) {
            bail!(
                "libx264 produced no picture for frame {} (it should not delay)",
                stamp.frame
            );
        }
        Ok(AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals,
            pts,
            keyframe,
            capture: Some(stamp),
        })
    }
}

impl Drop for X264Encoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from x264_encoder_open and is closed once.
        unsafe { sys::x264_encoder_close(self.handle) };
    }
}
