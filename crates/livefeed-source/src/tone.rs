//! The test tone `livefeed publish --audio tone` sends beside the test pattern: a quiet 440 Hz
//! hum with a loud 1 kHz beep during the first [`BEEP_MS`] of every whole second of capture
//! time. A receiver that finds the beeps knows which second of capture time each one marks,
//! so it can tell how far the sound is from the picture of the same second.
//!
//! Contract: [`tone_samples`] is a pure function of wall-clock time (Unix ns of the first
//! sample), mono at [`SAMPLE_RATE`]; consecutive frames join without a click because both
//! frequencies make whole cycles in one second and the phase is taken within the second.

/// Samples per second.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame (one Opus packet).
pub const FRAME_SAMPLES: usize = 960;
/// Nanoseconds of one frame.
pub const FRAME_NS: u64 = FRAME_SAMPLES as u64 * 1_000_000_000 / SAMPLE_RATE as u64;
/// Length of the beep at each whole second.
pub const BEEP_MS: u64 = 50;
/// The hum's frequency and amplitude.
const HUM: (f64, f32) = (440.0, 0.05);
/// The beep's frequency and amplitude.
const BEEP: (f64, f32) = (1000.0, 0.5);

/// Fills `out` with the tone from Unix time `start_ns` on, one sample every 1/48000 s.
pub fn tone_samples(start_ns: u64, out: &mut [f32]) {
    for (i, sample) in out.iter_mut().enumerate() {
        let at = start_ns + i as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE);
        let within = at % 1_000_000_000;
        let t = within as f64 / 1e9;
        let wave = |(hz, amplitude): (f64, f32)| {
            amplitude * (2.0 * std::f64::consts::PI * hz * t).sin() as f32
        };
        *sample = wave(HUM);
        if within < BEEP_MS * 1_000_000 {
            *sample += wave(BEEP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(samples: &[f32]) -> f32 {
        samples.iter().fold(0.0, |m, s| m.max(s.abs()))
    }

    #[test]
    fn the_beep_starts_at_each_whole_second_and_lasts_50_ms() {
        let second = 1_700_000_123_000_000_000u64;
        let mut frame = [0.0f32; FRAME_SAMPLES];
        tone_samples(second, &mut frame);
        assert!(
            peak(&frame) > 0.4,
            "a beep in the first frame of the second"
        );
        tone_samples(second + 60_000_000, &mut frame);
        assert!(peak(&frame) < 0.06, "only the hum 60 ms later");
        tone_samples(second - FRAME_NS, &mut frame);
        assert!(peak(&frame) < 0.06, "only the hum just before");
        // The beep's first sample is the whole second's (frame-aligned or not).
        let mut around = vec![0.0f32; 2 * FRAME_SAMPLES];
        tone_samples(second - 7_000_000, &mut around);
        let first_loud = around.iter().position(|s| s.abs() > 0.1).expect("a beep");
        let at_ns = second - 7_000_000 + first_loud as u64 * 1_000_000_000 / 48_000;
        assert!(at_ns.abs_diff(second) < 1_000_000, "{first_loud}");
    }

    #[test]
    fn consecutive_frames_join_without_a_jump() {
        let start = 1_700_000_000_990_000_000u64;
        let mut whole = vec![0.0f32; 4 * FRAME_SAMPLES];
        tone_samples(start, &mut whole);
        let mut pieces = Vec::new();
        for k in 0..4u64 {
            let mut frame = [0.0f32; FRAME_SAMPLES];
            tone_samples(start + k * FRAME_NS, &mut frame);
            pieces.extend_from_slice(&frame);
        }
        assert_eq!(whole, pieces);
        let biggest_step = whole
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        // 1 kHz at 0.5 plus 440 Hz at 0.05 moves at most ~0.07 per sample; a beep's onset
        // starts at phase 0.
        assert!(biggest_step < 0.1, "{biggest_step}");
    }
}
