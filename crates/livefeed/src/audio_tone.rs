//! The publisher's audio track for `--audio tone`: the test tone of
//! [`livefeed_source::tone`] (a hum with a beep at each whole second of capture time), cut
//! into 20 ms frames on the sample clock, Opus-encoded (libopus, loaded at run time) and sent
//! as RTP track 1 beside the video. A frame's capture time is the wall-clock time of its first
//! sample (in the same corrected clock as the video's capture stamps); it is sent once its
//! last sample's time has passed, as a microphone's would be.

use anyhow::Context;
use bytes::Bytes;
use livefeed_media::track::TrackDescription;
use livefeed_source::tone::{self, FRAME_NS, FRAME_SAMPLES};
use livefeed_transcode::opus_encoder::OpusEncoder;

/// The RTP payload type of the tone's Opus track.
const PAYLOAD_TYPE: u8 = 97;
/// Opus bitrate for the tone, bits per second.
const BITRATE: i32 = 32_000;
/// Most frames sent at once after a stall; older ones are skipped (a live source drops what
/// it could not send in time).
const MAX_BURST: u64 = 10;

/// What the tone track is, for the publisher's ANNOUNCE.
pub fn description() -> TrackDescription {
    TrackDescription::new(
        "audio",
        PAYLOAD_TYPE,
        Some("opus/48000/2"),
        Some("sprop-stereo=0"),
        Some("trackID=1"),
    )
    .expect("a static, valid Opus description")
}

/// One encoded frame of the tone.
pub struct ToneFrame {
    /// The Opus packet.
    pub payload: Bytes,
    /// Presentation time in 48 kHz samples since the track began.
    pub pts: u64,
    /// Wall-clock time of its first sample, Unix ns.
    pub capture_unix_ns: u64,
}

/// Generates and encodes the tone frame by frame.
pub struct ToneTrack {
    encoder: OpusEncoder,
    /// Capture time of frame 0.
    start_ns: u64,
    /// Frames produced so far (skipped ones included).
    next_frame: u64,
    pcm: Vec<f32>,
}

impl ToneTrack {
    /// A tone starting at the first 20 ms boundary of Unix time from `now_ns` on, so that
    /// every whole second of capture time (and its beep) starts a frame: the beep's delay is
    /// then the same in every run. Fails when libopus is not installed.
    pub fn new(now_ns: u64) -> anyhow::Result<Self> {
        let encoder = OpusEncoder::new(1, BITRATE).context("the --audio tone encoder")?;
        Ok(ToneTrack {
            encoder,
            start_ns: now_ns.div_ceil(FRAME_NS) * FRAME_NS,
            next_frame: 0,
            pcm: vec![0.0; FRAME_SAMPLES],
        })
    }

    /// How long after Unix time `now_ns` the next frame's last sample is.
    pub fn next_due_in(&self, now_ns: u64) -> std::time::Duration {
        let due = self.start_ns + (self.next_frame + 1) * FRAME_NS;
        std::time::Duration::from_nanos(due.saturating_sub(now_ns))
    }

    /// The frames whose last sample is in the past at Unix time `now_ns`, oldest first.
    pub fn due(&mut self, now_ns: u64) -> anyhow::Result<Vec<ToneFrame>> {
        let complete = now_ns.saturating_sub(self.start_ns) / FRAME_NS;
        if complete > self.next_frame + MAX_BURST {
            self.next_frame = complete - MAX_BURST;
        }
        let mut frames = Vec::new();
        while self.next_frame < complete {
            let capture_unix_ns = self.start_ns + self.next_frame * FRAME_NS;
            tone::tone_samples(capture_unix_ns, &mut self.pcm);
            let packet = self
                .encoder
                .encode(&self.pcm)
                .context("encoding the tone")?;
            frames.push(ToneFrame {
                payload: Bytes::copy_from_slice(packet),
                pts: self.next_frame * FRAME_SAMPLES as u64,
                capture_unix_ns,
            });
            self.next_frame += 1;
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_sample_clock_and_a_stall_skips_ahead() {
        let start = 1_700_000_000_000_000_000;
        let mut tone = ToneTrack::new(start - 5_000_000).expect("libopus0 (scripts/install-deps)");
        // Started at the next 20 ms boundary: a whole second starts a frame.
        assert_eq!(tone.start_ns, start);
        assert!(tone.due(start + FRAME_NS - 1).unwrap().is_empty());
        let frames = tone.due(start + 3 * FRAME_NS).unwrap();
        let pts: Vec<u64> = frames.iter().map(|f| f.pts).collect();
        assert_eq!(pts, [0, 960, 1920]);
        assert_eq!(frames[2].capture_unix_ns, start + 2 * FRAME_NS);
        assert!(frames.iter().all(|f| !f.payload.is_empty()));
        // A 10 s stall: only the last MAX_BURST frames are sent, on the same clock.
        let late = tone.due(start + 500 * FRAME_NS).unwrap();
        assert_eq!(late.len() as u64, MAX_BURST);
        assert_eq!(late[0].pts, 490 * 960);
    }
}
