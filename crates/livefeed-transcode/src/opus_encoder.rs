//! The Opus encoder (and a decoder, for a receiver that listens to what it measures): libopus,
//! loaded at run time from the system (`libopus.so.0`, Debian's
//! `libopus0`, which ffmpeg, GStreamer and Chromium already pull in).
//!
//! Why not a binding crate: every maintained one (`opus`, `audiopus_sys`, `opusic-sys`,
//! `opus-static-sys`) either builds the bundled libopus with cmake or links against
//! `libopus-dev` at build time, and livefeed must build with nothing but the Rust toolchain.
//! Loading the five functions used here at run time keeps the build free of both; a machine
//! without libopus gets a clear error ([`EncoderError::NoLibrary`]) and WebRTC without sound
//! from AAC, nothing worse.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

/// `OPUS_APPLICATION_RESTRICTED_LOWDELAY`: the lowest algorithmic delay (no SILK look-ahead).
const APPLICATION_RESTRICTED_LOWDELAY: c_int = 2051;
/// `OPUS_SET_BITRATE_REQUEST`.
const SET_BITRATE_REQUEST: c_int = 4002;
/// Largest Opus packet (RFC 6716 §3.4).
const MAX_PACKET: usize = 1275;

/// Why an encoder could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncoderError {
    /// libopus is not installed.
    #[error("libopus not found ({0}): install libopus0 (apt-get install libopus0)")]
    NoLibrary(String),
    /// libopus refused (its error code).
    #[error("libopus error {0}")]
    Opus(i32),
}

type Create = unsafe extern "C" fn(i32, c_int, c_int, *mut c_int) -> *mut c_void;
type EncodeFloat = unsafe extern "C" fn(*mut c_void, *const f32, c_int, *mut u8, i32) -> i32;
type Destroy = unsafe extern "C" fn(*mut c_void);
type Ctl = unsafe extern "C" fn(*mut c_void, c_int, ...) -> c_int;
type DecoderCreate = unsafe extern "C" fn(i32, c_int, *mut c_int) -> *mut c_void;
type DecodeFloat =
    unsafe extern "C" fn(*mut c_void, *const u8, i32, *mut f32, c_int, c_int) -> c_int;

/// The libopus functions livefeed calls.
struct Library {
    _lib: libloading::Library,
    create: Create,
    encode_float: EncodeFloat,
    destroy: Destroy,
    ctl: Ctl,
    decoder_create: DecoderCreate,
    decode_float: DecodeFloat,
    decoder_destroy: Destroy,
}

/// libopus, loaded once per process.
fn library() -> Result<&'static Library, EncoderError> {
    static LIBRARY: OnceLock<Result<Library, EncoderError>> = OnceLock::new();
    LIBRARY.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Library, EncoderError> {
    let mut last_error = String::new();
    for name in ["libopus.so.0", "libopus.so", "libopus.0.dylib", "opus.dll"] {
        // SAFETY: loading libopus runs no initialisation code with preconditions.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => return symbols(lib),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(EncoderError::NoLibrary(last_error))
}

fn symbols(lib: libloading::Library) -> Result<Library, EncoderError> {
    let missing = |e: libloading::Error| EncoderError::NoLibrary(e.to_string());
    // SAFETY: the types are those of opus.h for these symbols (libopus 1.x ABI).
    unsafe {
        let create = *lib
            .get::<Create>(b"opus_encoder_create\0")
            .map_err(missing)?;
        let encode_float = *lib
            .get::<EncodeFloat>(b"opus_encode_float\0")
            .map_err(missing)?;
        let destroy = *lib
            .get::<Destroy>(b"opus_encoder_destroy\0")
            .map_err(missing)?;
        let ctl = *lib.get::<Ctl>(b"opus_encoder_ctl\0").map_err(missing)?;
        let decoder_create = *lib
            .get::<DecoderCreate>(b"opus_decoder_create\0")
            .map_err(missing)?;
        let decode_float = *lib
            .get::<DecodeFloat>(b"opus_decode_float\0")
            .map_err(missing)?;
        let decoder_destroy = *lib
            .get::<Destroy>(b"opus_decoder_destroy\0")
            .map_err(missing)?;
        Ok(Library {
            _lib: lib,
            create,
            encode_float,
            destroy,
            ctl,
            decoder_create,
            decode_float,
            decoder_destroy,
        })
    }
}

/// Whether libopus can be loaded here.
pub fn available() -> Result<(), EncoderError> {
    library().map(|_| ())
}

/// One libopus encoder at 48 kHz.
pub struct OpusEncoder {
    lib: &'static Library,
    state: *mut c_void,
    channels: usize,
    out: Vec<u8>,
}

// SAFETY: the encoder state is only touched through `&mut self`; libopus keeps no thread-local
// state.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    /// An encoder of `channels` (1 or 2) at 48 kHz and `bitrate` bits per second, in libopus'
    /// restricted low-delay mode.
    pub fn new(channels: usize, bitrate: i32) -> Result<Self, EncoderError> {
        let lib = library()?;
        let mut error: c_int = 0;
        let channels = channels.clamp(1, 2);
        // SAFETY: valid arguments; the result is checked before use.
        let state = unsafe {
            (lib.create)(
                48_000,
                channels as c_int,
                APPLICATION_RESTRICTED_LOWDELAY,
                &mut error,
            )
        };
        if state.is_null() || error != 0 {
            return Err(EncoderError::Opus(error));
        }
        let encoder = OpusEncoder {
            lib,
            state,
            channels,
            out: vec![0; MAX_PACKET],
        };
        // SAFETY: a live encoder; OPUS_SET_BITRATE takes one opus_int32.
        let result = unsafe { (lib.ctl)(state, SET_BITRATE_REQUEST, bitrate) };
        if result != 0 {
            return Err(EncoderError::Opus(result));
        }
        Ok(encoder)
    }

    /// Channels the encoder takes.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Encodes one frame of interleaved samples (`pcm.len() / channels` samples per channel:
    /// 120, 240, 480, 960, 1920 or 2880) into one Opus packet.
    pub fn encode(&mut self, pcm: &[f32]) -> Result<&[u8], EncoderError> {
        let frame = (pcm.len() / self.channels) as c_int;
        // SAFETY: `pcm` holds `frame * channels` samples and `out` MAX_PACKET bytes.
        let n = unsafe {
            (self.lib.encode_float)(
                self.state,
                pcm.as_ptr(),
                frame,
                self.out.as_mut_ptr(),
                MAX_PACKET as i32,
            )
        };
        if n < 0 {
            return Err(EncoderError::Opus(n));
        }
        Ok(&self.out[..n as usize])
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create and destroyed once.
        unsafe { (self.lib.destroy)(self.state) }
    }
}

/// Most samples per channel one Opus packet decodes to (120 ms at 48 kHz).
const MAX_FRAME_SAMPLES: usize = 5760;

/// One libopus decoder at 48 kHz (for a receiver that listens to what it measures).
pub struct OpusDecoder {
    lib: &'static Library,
    state: *mut c_void,
    channels: usize,
    pcm: Vec<f32>,
}

// SAFETY: as for the encoder: the state is only touched through `&mut self`.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// A decoder of `channels` (1 or 2) at 48 kHz.
    pub fn new(channels: usize) -> Result<Self, EncoderError> {
        let lib = library()?;
        let channels = channels.clamp(1, 2);
        let mut error: c_int = 0;
        // SAFETY: valid arguments; the result is checked before use.
        let state = unsafe { (lib.decoder_create)(48_000, channels as c_int, &mut error) };
        if state.is_null() || error != 0 {
            return Err(EncoderError::Opus(error));
        }
        Ok(OpusDecoder {
            lib,
            state,
            channels,
            pcm: vec![0.0; MAX_FRAME_SAMPLES * channels],
        })
    }

    /// Decodes one packet (any bytes: libopus refuses what is not Opus) into interleaved
    /// samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], EncoderError> {
        let len = i32::try_from(packet.len()).map_err(|_| EncoderError::Opus(-1))?;
        // SAFETY: `packet` holds `len` bytes; `pcm` holds MAX_FRAME_SAMPLES per channel.
        let n = unsafe {
            (self.lib.decode_float)(
                self.state,
                packet.as_ptr(),
                len,
                self.pcm.as_mut_ptr(),
                MAX_FRAME_SAMPLES as c_int,
                0,
            )
        };
        if n < 0 {
            return Err(EncoderError::Opus(n));
        }
        Ok(&self.pcm[..n as usize * self.channels])
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create and destroyed once.
        unsafe { (self.lib.decoder_destroy)(self.state) }
    }
}
