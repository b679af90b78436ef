//! The receiver's ear: it decodes the Opus audio track it receives (libopus, loaded at run
//! time), finds the beeps of livefeed's test tone (`publish --audio tone`: a 1 kHz beep at each
//! whole second of capture time), and pairs each beep with the video frame captured at the
//! same second, so the receiver can say how much later than the picture the sound of the same
//! instant arrives (stage `av_offset`).
//!
//! Contract: [`AudioProbe::on_audio`] and [`AudioProbe::on_video`] take arrivals in any order
//! (times in the server's clock) and return the A/V offsets they complete, in ms: the beep's
//! latency (arrival of the packet holding its onset minus the whole second it marks) minus the
//! latency of the video frame captured nearest that second. Audio that is not the tone has no
//! beeps and gives no figure.

use std::collections::VecDeque;

use livefeed_source::tone::SAMPLE_RATE;
use livefeed_transcode::opus_encoder::OpusDecoder;

/// A sample louder than this starts a beep (the hum peaks at 0.05, the beep at 0.55)…
const BEEP_LEVEL: f32 = 0.3;
/// …when no sample was that loud for at least this many samples (10 ms; inside a beep, the
/// 1 kHz wave is louder every 24 samples).
const QUIET_BEFORE: usize = 480;
/// A beep's onset must be this close to a whole second of capture time to be the tone's.
const MAX_ONSET_ERROR_NS: u64 = 10_000_000;
/// A video frame must be captured this close to the beep's second to be paired with it.
const MAX_PAIR_DISTANCE_NS: u64 = 20_000_000;
/// Video frames remembered for pairing (four seconds at 30 fps).
const RECENT_FRAMES: usize = 120;
/// Beeps remembered while their video frame has not arrived.
const PENDING_BEEPS: usize = 4;

/// A beep heard: the whole second it marks (Unix ns) and its latency.
#[derive(Debug, Clone, Copy)]
struct Beep {
    second_ns: u64,
    latency_ms: f64,
}

/// Finds the test tone's beeps and pairs them with video frames.
pub struct AudioProbe {
    decoder: OpusDecoder,
    /// Samples since the last one louder than [`BEEP_LEVEL`].
    quiet_run: usize,
    /// The pts the next payload should have (a gap means a lost payload).
    next_pts: Option<u64>,
    pending: VecDeque<Beep>,
    /// (capture, arrival) of recent video frames, Unix ns.
    frames: VecDeque<(u64, u64)>,
}

impl AudioProbe {
    /// A probe; fails when libopus is not installed.
    pub fn new() -> anyhow::Result<Self> {
        Ok(AudioProbe {
            decoder: OpusDecoder::new(1)?,
            quiet_run: 0,
            next_pts: None,
            pending: VecDeque::new(),
            frames: VecDeque::new(),
        })
    }

    /// An audio payload at `pts` (48 kHz) whose first sample was captured at `capture_ns`
    /// arrived at `arrival_ns`; returns the A/V offsets it completes. After a lost payload no
    /// beep is counted until the sound has been quiet again (the lost one may have held the
    /// beep's start).
    pub fn on_audio(
        &mut self,
        payload: &[u8],
        pts: u64,
        capture_ns: u64,
        arrival_ns: u64,
    ) -> Vec<f64> {
        if self.next_pts.is_some_and(|expected| expected != pts) {
            self.quiet_run = 0;
        }
        let Some((onset, samples)) = self.find_onset(payload) else {
            // Undecodable: as good as lost.
            self.quiet_run = 0;
            self.next_pts = None;
            return Vec::new();
        };
        self.next_pts = Some(pts + samples as u64);
        let Some(onset) = onset else {
            return Vec::new();
        };
        let onset_ns = capture_ns + onset as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE);
        let second_ns = (onset_ns + 500_000_000) / 1_000_000_000 * 1_000_000_000;
        if onset_ns.abs_diff(second_ns) > MAX_ONSET_ERROR_NS {
            return Vec::new(); // a loud sound, but not the tone's beep
        }
        let latency_ms = (arrival_ns as f64 - second_ns as f64) / 1e6;
        if self.pending.len() == PENDING_BEEPS {
            self.pending.pop_front();
        }
        self.pending.push_back(Beep {
            second_ns,
            latency_ms,
        });
        self.pair()
    }

    /// A video frame captured at `capture_ns` arrived at `arrival_ns`; returns the A/V offsets
    /// it completes.
    pub fn on_video(&mut self, capture_ns: u64, arrival_ns: u64) -> Vec<f64> {
        if self.frames.len() == RECENT_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back((capture_ns, arrival_ns));
        self.pair()
    }

    /// Decodes `payload`: the index of the first sample of a beep in it, if one starts
    /// there, and its number of samples; `None` if it does not decode.
    fn find_onset(&mut self, payload: &[u8]) -> Option<(Option<usize>, usize)> {
        let pcm = match self.decoder.decode(payload) {
            Ok(pcm) => pcm,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable Opus payload");
                return None;
            }
        };
        let samples = pcm.len();
        let mut onset = None;
        for (i, sample) in pcm.iter().enumerate() {
            if sample.abs() <= BEEP_LEVEL {
                self.quiet_run = self.quiet_run.saturating_add(1);
                continue;
            }
            if onset.is_none() && self.quiet_run >= QUIET_BEFORE {
                onset = Some(i);
            }
            self.quiet_run = 0;
        }
        Some((onset, samples))
    }

    /// Offsets of the pending beeps whose video frame has arrived (they are then forgotten).
    /// A beep is paired once a frame captured after its second has arrived, so the nearest
    /// frame is known.
    fn pair(&mut self) -> Vec<f64> {
        let mut offsets = Vec::new();
        let frames = &self.frames;
        self.pending.retain(|beep| {
            if !frames.iter().any(|&(c, _)| c >= beep.second_ns) {
                return true; // the frames around this second have not all arrived
            }
            let nearest = frames
                .iter()
                .min_by_key(|&&(c, _)| c.abs_diff(beep.second_ns))
                .filter(|&&(c, _)| c.abs_diff(beep.second_ns) <= MAX_PAIR_DISTANCE_NS);
            if let Some(&(capture, arrival)) = nearest {
                let video_ms = (arrival as f64 - capture as f64) / 1e6;
                offsets.push(beep.latency_ms - video_ms);
            }
            false
        });
        offsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livefeed_source::tone::{tone_samples, FRAME_NS, FRAME_SAMPLES};
    use livefeed_transcode::opus_encoder::OpusEncoder;

    /// The tone from `start` for `frames` frames, Opus-encoded: (capture time, packet).
    fn tone(start: u64, frames: u64) -> Vec<(u64, Vec<u8>)> {
        let mut encoder = OpusEncoder::new(1, 32_000).expect("libopus0 (scripts/install-deps)");
        let mut pcm = vec![0.0; FRAME_SAMPLES];
        (0..frames)
            .map(|k| {
                let at = start + k * FRAME_NS;
                tone_samples(at, &mut pcm);
                (at, encoder.encode(&pcm).expect("encodes").to_vec())
            })
            .collect()
    }

    #[test]
    fn a_beep_and_the_frame_of_its_second_give_the_offset() {
        let second = 1_700_000_001_000_000_000u64;
        let mut probe = AudioProbe::new().expect("libopus0");
        // Video: frames every 33.3 ms around the second, each arriving 5 ms after capture.
        for k in 0..12u64 {
            let capture = second - 200_000_000 + k * 33_333_333;
            probe.on_video(capture, capture + 5_000_000);
        }
        // Audio from 500 ms before the second, each packet arriving 30 ms after its capture.
        let mut offsets = Vec::new();
        for (k, (capture, packet)) in tone(second - 500_000_000 + 7_000_000, 40)
            .into_iter()
            .enumerate()
        {
            let pts = k as u64 * FRAME_SAMPLES as u64;
            offsets.extend(probe.on_audio(&packet, pts, capture, capture + 30_000_000));
        }
        assert_eq!(offsets.len(), 1, "one beep in 800 ms: {offsets:?}");
        // The packet holding the beep's onset starts 13 ms before the second and arrives 30 ms
        // after its first sample: 17 ms after the second. The frame captured at the second
        // arrives 5 ms late. (Opus' 2.5 ms look-ahead moves the decoded onset, not the second
        // it is counted from.)
        let want = 17.0 - 5.0;
        assert!((offsets[0] - want).abs() < 2.0, "{offsets:?}, want ~{want}");
    }

    #[test]
    fn a_lost_payload_before_the_beep_is_not_taken_for_its_start() {
        let second = 1_700_000_001_000_000_000u64;
        let mut probe = AudioProbe::new().expect("libopus0");
        for k in 0..12u64 {
            let capture = second - 200_000_000 + k * 33_333_333;
            probe.on_video(capture, capture + 5_000_000);
        }
        // The beep starts 15 ms into packet 25, which is lost: packet 26 is loud from its
        // first sample, but follows a gap.
        let start = second - 500_000_000 - 15_000_000;
        let mut offsets = Vec::new();
        for (k, (capture, packet)) in tone(start, 40).into_iter().enumerate() {
            if k == 25 {
                continue;
            }
            let pts = k as u64 * FRAME_SAMPLES as u64;
            offsets.extend(probe.on_audio(&packet, pts, capture, capture + 30_000_000));
        }
        assert!(offsets.is_empty(), "{offsets:?}");
    }

    #[test]
    fn other_sound_gives_no_figure() {
        let mut probe = AudioProbe::new().expect("libopus0");
        probe.on_video(1_000_000_000, 1_005_000_000);
        let mut encoder = OpusEncoder::new(1, 32_000).expect("libopus0");
        // A loud 1 kHz tone that starts 300 ms into a second: not the test tone's beep.
        let mut offsets = Vec::new();
        for k in 0..30u64 {
            let pcm: Vec<f32> = (0..FRAME_SAMPLES)
                .map(|i| {
                    let n = k as usize * FRAME_SAMPLES + i;
                    if n < 5 * FRAME_SAMPLES {
                        0.0
                    } else {
                        0.5 * (n as f32 * 2.0 * std::f32::consts::PI / 48.0).sin()
                    }
                })
                .collect();
            let packet = encoder.encode(&pcm).expect("encodes").to_vec();
            let capture = 1_200_000_000 + k * FRAME_NS;
            let pts = k * FRAME_SAMPLES as u64;
            offsets.extend(probe.on_audio(&packet, pts, capture, capture + 20_000_000));
        }
        assert!(offsets.is_empty(), "{offsets:?}");
    }
}
