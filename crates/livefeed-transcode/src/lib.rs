//! Sans-IO audio transcoding for outputs that cannot carry the publisher's codec: AAC to Opus
//! for WebRTC (browsers do not take AAC over RTP), and G.711 to Opus for LL-HLS and recordings
//! (fMP4 players do not take G.711) and WebRTC.
//!
//! Contract of [`AacToOpus`]:
//! - [`AacToOpus::push`] takes one raw AAC frame (AAC-LC, mono or stereo; as the RFC 3640
//!   depacketizer gives them) with its decode time in the AAC sampling rate, and returns the
//!   Opus packets (20 ms, 48 kHz) it completes, each with its presentation time in 48 kHz on
//!   the same timeline (decode time × 48000 / rate; decoder and encoder delays are not
//!   compensated: they are a few ms).
//! - Rates other than 48 kHz are resampled (rubato's FFT resampler); a jump in decode times
//!   (loss, a new publisher) restarts the timeline at the new frame.
//! - A frame the decoder refuses is an error and changes nothing else.
//! - Decoding is pure Rust (symphonia); encoding is libopus, loaded at run time (see
//!   [`opus_encoder`]): without it, [`AacToOpus::new`] fails with a clear error.
//! - [`G711ToOpus`] does the same for G.711 payloads (µ-law or A-law, 8 kHz, resampled).

pub mod opus_encoder;

use bytes::Bytes;
use livefeed_media::aac::AacConfig;
use rubato::Resampler;
use symphonia_codec_aac::AacDecoder;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

pub use opus_encoder::{EncoderError, OpusEncoder};

/// Opus frame: 20 ms at 48 kHz.
pub const OPUS_FRAME: usize = 960;
/// Opus bitrate per channel.
pub const BITRATE_PER_CHANNEL: i32 = 48_000;

/// Why transcoding failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The AAC stream cannot be decoded (not AAC-LC, more than 2 channels, …).
    #[error("AAC decoder: {0}")]
    Decoder(String),
    /// The Opus encoder failed or is missing.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// The resampler could not be made or failed.
    #[error("resampler: {0}")]
    Resampler(String),
}

/// One Opus packet on the path's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// The packet.
    pub data: Bytes,
    /// Presentation time, 48 kHz.
    pub pts: u64,
    /// Duration, 48 kHz samples.
    pub duration: u32,
}

/// AAC frames in, Opus packets out (see the crate docs).
pub struct AacToOpus {
    decoder: AacDecoder,
    framer: OpusFramer,
    decoded: Vec<f32>,
}

impl AacToOpus {
    /// A transcoder for an AAC stream described by `config`.
    pub fn new(config: &AacConfig) -> Result<Self, TranscodeError> {
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(config.audio_specific_config.to_vec().into_boxed_slice());
        let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
            .map_err(|e| TranscodeError::Decoder(e.to_string()))?;
        let channels = usize::from(config.channels).clamp(1, 2);
        let framer = OpusFramer::new(config.sample_rate, channels, config.frame_length as usize)?;
        Ok(AacToOpus {
            decoder,
            framer,
            decoded: Vec::new(),
        })
    }

    /// Decodes one AAC frame at `decode_time` (AAC rate) and returns the Opus packets it
    /// completes.
    pub fn push(
        &mut self,
        frame: &[u8],
        decode_time: u64,
    ) -> Result<Vec<OpusPacket>, TranscodeError> {
        let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(1024), frame);
        let decoded = self
            .decoder
            .decode_ref(&packet)
            .map_err(|e| TranscodeError::Decoder(e.to_string()))?;
        let source_channels = decoded.spec().channels().count().max(1);
        self.decoded.clear();
        decoded.copy_to_vec_interleaved(&mut self.decoded);
        let interleaved = fit_channels(&self.decoded, source_channels, self.framer.channels);
        self.framer.push(&interleaved, decode_time)
    }
}

/// G.711 (µ-law or A-law, 8 kHz mono) payloads in, Opus packets out: the same contract as
/// [`AacToOpus`], with RTP payloads (any number of samples) and their timestamps (8 kHz).
pub struct G711ToOpus {
    a_law: bool,
    framer: OpusFramer,
}

impl G711ToOpus {
    /// A transcoder of µ-law (PCMU, `a_law` false) or A-law (PCMA) at 8 kHz.
    pub fn new(a_law: bool) -> Result<Self, TranscodeError> {
        Ok(G711ToOpus {
            a_law,
            framer: OpusFramer::new(8_000, 1, 160)?,
        })
    }

    /// Decodes one payload at `timestamp` (8 kHz) and returns the Opus packets it completes.
    pub fn push(
        &mut self,
        payload: &[u8],
        timestamp: u64,
    ) -> Result<Vec<OpusPacket>, TranscodeError> {
        let decode = if self.a_law {
            g711::a_law
        } else {
            g711::mu_law
        };
        let samples: Vec<f32> = payload
            .iter()
            .map(|&b| f32::from(decode(b)) / 32768.0)
            .collect();
        self.framer.push(&samples, timestamp)
    }
}

/// G.711 decoding (ITU-T G.711), sample by sample.
pub mod g711 {
    /// One µ-law byte as a 16-bit linear sample.
    pub fn mu_law(byte: u8) -> i16 {
        let b = !byte;
        let exponent = (b >> 4) & 0x07;
        let magnitude = ((i16::from(b & 0x0f) << 3) + 0x84) << exponent;
        let value = magnitude - 0x84;
        if b & 0x80 != 0 {
            -value
        } else {
            value
        }
    }

    /// One A-law byte as a 16-bit linear sample.
    pub fn a_law(byte: u8) -> i16 {
        let b = byte ^ 0x55;
        let exponent = (b >> 4) & 0x07;
        let mantissa = i16::from(b & 0x0f);
        let value = if exponent == 0 {
            (mantissa << 4) + 8
        } else {
            ((mantissa << 4) + 0x108) << (exponent - 1)
        };
        if b & 0x80 != 0 {
            value
        } else {
            -value
        }
    }
}

/// Decoded samples in, 20 ms Opus packets out: resampling to 48 kHz when needed, the 48 kHz
/// timeline (restarted at a jump in decode times), the encoder.
struct OpusFramer {
    rate: u32,
    channels: usize,
    resampler: Option<rubato::Fft<f32>>,
    encoder: OpusEncoder,
    /// Samples (interleaved, source rate) waiting for the resampler's next input chunk.
    to_resample: Vec<f32>,
    /// 48 kHz samples (interleaved) waiting to fill an Opus frame, and the time of the first.
    pending: Vec<f32>,
    pending_pts: Option<u64>,
    /// Where the next input is expected (source rate), to notice jumps.
    next_decode_time: Option<u64>,
}

impl OpusFramer {
    fn new(rate: u32, channels: usize, chunk: usize) -> Result<Self, TranscodeError> {
        let encoder = OpusEncoder::new(channels, BITRATE_PER_CHANNEL * channels as i32)?;
        let resampler = if rate == 48_000 {
            None
        } else {
            let r = rubato::Fft::<f32>::new(
                rate as usize,
                48_000,
                chunk,
                channels,
                rubato::FixedSync::Input,
            )
            .map_err(|e| TranscodeError::Resampler(e.to_string()))?;
            Some(r)
        };
        Ok(OpusFramer {
            rate,
            channels,
            resampler,
            encoder,
            to_resample: Vec::new(),
            pending: Vec::new(),
            pending_pts: None,
            next_decode_time: None,
        })
    }

    /// Takes `samples` (interleaved, source rate) starting at `decode_time` (source rate).
    fn push(
        &mut self,
        samples: &[f32],
        decode_time: u64,
    ) -> Result<Vec<OpusPacket>, TranscodeError> {
        if self.next_decode_time != Some(decode_time) {
            self.restart(decode_time);
        }
        let frames = samples.len() / self.channels;
        self.next_decode_time = Some(decode_time.saturating_add(frames as u64));
        self.resample(samples)?;
        self.encode_ready()
    }

    /// Drops whatever waits and starts the 48 kHz timeline at `decode_time`.
    fn restart(&mut self, decode_time: u64) {
        self.to_resample.clear();
        self.pending.clear();
        self.pending_pts = Some(livefeed_media::clock::rescale(
            decode_time,
            48_000,
            self.rate,
        ));
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
    }

    /// Moves `samples` (interleaved, source rate) to `pending` at 48 kHz.
    fn resample(&mut self, samples: &[f32]) -> Result<(), TranscodeError> {
        let Some(resampler) = self.resampler.as_mut() else {
            self.pending.extend_from_slice(samples);
            return Ok(());
        };
        self.to_resample.extend_from_slice(samples);
        loop {
            let needed = resampler.input_frames_next() * self.channels;
            if self.to_resample.len() < needed {
                return Ok(());
            }
            let chunk: Vec<f32> = self.to_resample.drain(..needed).collect();
            let input = audioadapter_buffers::direct::InterleavedSlice::new(
                &chunk,
                self.channels,
                needed / self.channels,
            )
            .map_err(|e| TranscodeError::Resampler(e.to_string()))?;
            let out = resampler
                .process(&input, None)
                .map_err(|e| TranscodeError::Resampler(e.to_string()))?;
            self.pending.extend_from_slice(&out.take_data());
        }
    }

    /// Encodes every whole Opus frame waiting.
    fn encode_ready(&mut self) -> Result<Vec<OpusPacket>, TranscodeError> {
        let frame_samples = OPUS_FRAME * self.channels;
        let mut packets = Vec::new();
        while self.pending.len() >= frame_samples {
            let data = Bytes::copy_from_slice(self.encoder.encode(&self.pending[..frame_samples])?);
            self.pending.drain(..frame_samples);
            let pts = self.pending_pts.unwrap_or(0);
            self.pending_pts = Some(pts.saturating_add(OPUS_FRAME as u64));
            packets.push(OpusPacket {
                data,
                pts,
                duration: OPUS_FRAME as u32,
            });
        }
        Ok(packets)
    }
}

/// `samples` (interleaved, `from` channels) with `to` channels: mono duplicated to stereo,
/// stereo and more averaged (first two) to mono, or kept.
fn fit_channels(samples: &[f32], from: usize, to: usize) -> Vec<f32> {
    if from == to {
        return samples.to_vec();
    }
    samples
        .chunks(from)
        .flat_map(|frame| {
            let mono = if from == 1 {
                frame[0]
            } else {
                (frame[0] + frame.get(1).copied().unwrap_or(0.0)) / 2.0
            };
            std::iter::repeat_n(mono, to)
        })
        .collect()
}

#[cfg(test)]
mod test_tone;
#[cfg(test)]
mod tests;
