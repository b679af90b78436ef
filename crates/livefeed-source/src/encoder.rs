//! H.264 encoding with OpenH264 at zero-latency settings, producing [`AccessUnit`]s stamped with
//! their capture time.
//!
//! Settings: constrained baseline (plays in every browser and WebRTC stack), real-time camera
//! usage, bitrate rate control with frame skipping off (every captured frame is encoded), an IDR
//! every `gop` frames with SPS/PPS in front of it, one slice thread, no B-frames (baseline has
//! none), so every input frame produces exactly one access unit at once: no encoder delay.
//!
//! Each access unit gets the livefeed SEI capture stamp (see [`livefeed_media::sei`]) placed
//! after the parameter sets and before the first slice.

use anyhow::{bail, Context};
use bytes::Bytes;
use livefeed_media::h264::{is_vcl, split_annex_b};
use livefeed_media::{sei, AccessUnit, CaptureStamp};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::OpenH264API;

use crate::frame::I420Frame;

/// Whether OpenH264 was built with its x86 assembly (decided at build time by build.rs, the way
/// openh264-sys2 decides: `nasm` found and `OPENH264_NO_ASM` unset). Without it, encoding is
/// about three times slower.
pub const OPENH264_ASSEMBLY: bool = matches!(env!("LIVEFEED_OPENH264_ASSEMBLY").as_bytes(), b"yes");

/// What to tell the user when OpenH264 was built without its assembly: one sentence.
pub const NO_ASSEMBLY_NOTICE: &str = "note: the OpenH264 encoder was built without its assembly because nasm was missing, so it encodes about 3x slower: install nasm (apt-get install nasm, or scripts/install-deps), then rebuild it with `cargo clean -p openh264-sys2 -p livefeed-source && cargo run --release`.";

/// [`NO_ASSEMBLY_NOTICE`] when it applies.
pub fn assembly_notice() -> Option<&'static str> {
    (!OPENH264_ASSEMBLY).then_some(NO_ASSEMBLY_NOTICE)
}

/// What to encode and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    /// Picture width in pixels (even).
    pub width: usize,
    /// Picture height in pixels (even).
    pub height: usize,
    /// Frames per second.
    pub fps: f32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Frames between IDR pictures.
    pub gop: u32,
}

/// Which H.264 encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderKind {
    /// OpenH264 (always built).
    #[default]
    OpenH264,
    /// libx264 (cargo feature `x264`).
    X264,
}

impl std::str::FromStr for EncoderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "openh264" => Ok(EncoderKind::OpenH264),
            "x264" => Ok(EncoderKind::X264),
            other => Err(format!("unknown encoder {other:?} (openh264 or x264)")),
        }
    }
}

/// One H.264 encoder: a picture in, its access unit out at once (no encoder delay), stamped.
pub trait VideoEncoder: Send {
    /// Encodes one picture. `pts` is in 90 kHz ticks. Returns the access unit with `stamp`
    /// carried in its SEI.
    fn encode(
        &mut self,
        frame: &I420Frame,
        pts: u64,
        stamp: CaptureStamp,
    ) -> anyhow::Result<AccessUnit>;

    /// Makes the next picture an IDR picture (a viewer asked for one: RTCP PLI/FIR).
    fn force_keyframe(&mut self);
}

/// Opens the encoder `kind` for `settings`.
pub fn open_encoder(
    kind: EncoderKind,
    settings: EncoderSettings,
) -> anyhow::Result<Box<dyn VideoEncoder>> {
    match kind {
        EncoderKind::OpenH264 => Ok(Box::new(H264Encoder::new(settings)?)),
        #[cfg(feature = "x264")]
        EncoderKind::X264 => Ok(Box::new(crate::encoder_x264::X264Encoder::new(settings)?)),
        #[cfg(not(feature = "x264"))]
        EncoderKind::X264 => bail!(
            "this livefeed was built without x264: build with `cargo build --release --features x264` (needs libx264-dev)"
        ),
    }
}

impl VideoEncoder for H264Encoder {
    fn encode(
        &mut self,
        frame: &I420Frame,
        pts: u64,
        stamp: CaptureStamp,
    ) -> anyhow::Result<AccessUnit> {
        H264Encoder::encode(self, frame, pts, stamp)
    }

    fn force_keyframe(&mut self) {
        H264Encoder::force_keyframe(self);
    }
}

/// An OpenH264 encoder configured for zero latency.
pub struct H264Encoder {
    encoder: Encoder,
    settings: EncoderSettings,
    annex_b: Vec<u8>,
}

impl H264Encoder {
    /// Creates an encoder for pictures of the given size.
    pub fn new(settings: EncoderSettings) -> anyhow::Result<Self> {
        if settings.gop == 0 || settings.fps <= 0.0 || settings.bitrate_kbps == 0 {
            bail!("invalid encoder settings {settings:?}: gop, fps and bitrate must be positive");
        }
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(
                settings.bitrate_kbps.saturating_mul(1000),
            ))
            .max_frame_rate(FrameRate::from_hz(settings.fps))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(settings.gop))
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .complexity(Complexity::Low)
            .scene_change_detect(false)
            .background_detection(false)
            .adaptive_quantization(false)
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .context("creating the OpenH264 encoder")?;
        Ok(H264Encoder {
            encoder,
            settings,
            annex_b: Vec::with_capacity(256 * 1024),
        })
    }

    /// The settings this encoder was made with.
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Asks for the next picture to be an IDR picture (e.g. when a new reader needs one).
    pub fn force_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    /// Encodes one picture. `pts` is in 90 kHz ticks. Returns the access unit with `stamp`
    /// carried in its SEI.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        pts: u64,
        stamp: CaptureStamp,
    ) -> anyhow::Result<AccessUnit> {
        check_size(frame, &self.settings)?;
        let bitstream = self
            .encoder
            .encode(frame)
            .with_context(|| format!("encoding frame {}", stamp.frame))?;
        let keyframe = bitstream.frame_type() == FrameType::IDR;
        self.annex_b.clear();
        bitstream.write_vec(&mut self.annex_b);
        let nals = with_stamp(split_annex_b(&self.annex_b), stamp);
        if !nals.iter().any(|n| is_vcl(n)) {
            bail!("encoder produced no picture for frame {}", stamp.frame);
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

/// Refuses a picture of another size than the encoder was set up for.
pub(crate) fn check_size(frame: &I420Frame, settings: &EncoderSettings) -> anyhow::Result<()> {
    if (frame.width(), frame.height()) != (settings.width, settings.height) {
        bail!(
            "frame is {}x{}, encoder was set up for {}x{}",
            frame.width(),
            frame.height(),
            settings.width,
            settings.height
        );
    }
    Ok(())
}

/// Copies the NAL units, inserting the stamp SEI before the first slice.
pub(crate) fn with_stamp(nals: Vec<&[u8]>, stamp: CaptureStamp) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(nals.len() + 1);
    let mut stamped = false;
    for nal in nals {
        if !stamped && is_vcl(nal) {
            out.push(sei::encode_stamp(stamp));
            stamped = true;
        }
        out.push(Bytes::copy_from_slice(nal));
    }
    out
}
