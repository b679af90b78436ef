//! Recording (sans-IO): cuts a stream of access units into fragmented MP4 files, each one an
//! init segment (`ftyp`+`moov`) followed by one `moof`+`mdat` per frame — playable by ffmpeg
//! and browsers, and readable while it grows.
//!
//! Contract of [`Recorder::push`]:
//! - Nothing is written before the first keyframe with SPS and PPS.
//! - A new file starts ([`RecordEvent::Open`]) at the first keyframe once the current file holds
//!   `file_duration`, and at any keyframe whose parameter sets differ from the file's.
//! - Decode times start at 0 in every file; each frame lasts the distance to the previous
//!   frame's `pts` (the first ones: 1/30 s).
//! - `Open` carries the capture time of the file's first frame (its SEI stamp), which names it.
//! - With an audio track ([`Recorder::set_audio`]: AAC or Opus), each file has it as a second track
//!   ([`Recorder::push_audio`]): frames from the file's first video frame on, decode times on
//!   the same timeline. A changed audio config starts a new file at the next keyframe.

use std::time::Duration;

use bytes::Bytes;
use livefeed_media::clock::FrameDuration;
use livefeed_media::AccessUnit;

use crate::cmaf::{self, AudioTrack, CmafError, FragmentWriter, VideoTrack};

/// 90 kHz ticks per second.
const TICKS_PER_SEC: u64 = 90_000;

/// What to do with the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEvent {
    /// Close the current file (if any) and start a new one with these bytes.
    Open {
        /// Capture time of the first frame (SEI stamp), Unix ns, if it has one.
        capture_unix_ns: Option<u64>,
        /// The init segment, the file's first bytes.
        init: Bytes,
    },
    /// Append to the current file.
    Append(Bytes),
}

/// The file currently written.
#[derive(Debug)]
struct OpenFile {
    track: VideoTrack,
    audio: Option<AudioTrack>,
    start_pts: u64,
    writer: FragmentWriter,
    audio_writer: FragmentWriter,
}

/// Cuts access units into files.
#[derive(Debug)]
pub struct Recorder {
    file_ticks: u64,
    file: Option<OpenFile>,
    frames: FrameDuration,
    audio: Option<AudioTrack>,
}

impl Recorder {
    /// Files of about `file_duration` each (cut at the first keyframe after it).
    pub fn new(file_duration: Duration) -> Self {
        Recorder {
            file_ticks: (file_duration.as_secs_f64() * TICKS_PER_SEC as f64) as u64,
            file: None,
            frames: FrameDuration::default(),
            audio: None,
        }
    }

    /// The AAC track files carry from the next one on (`None`: video only).
    pub fn set_audio(&mut self, audio: Option<AudioTrack>) {
        self.audio = audio;
    }

    /// Takes one audio frame at `decode_time` lasting `duration` (both in its sampling rate,
    /// on the path's timeline); returns what to write (nothing before the file's first video
    /// frame or without audio).
    pub fn push_audio(
        &mut self,
        frame: Bytes,
        decode_time: u64,
        duration: u32,
    ) -> Result<Vec<RecordEvent>, CmafError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(audio) = &file.audio else {
            return Ok(Vec::new());
        };
        let start = livefeed_media::clock::rescale(file.start_pts, audio.timescale(), 90_000);
        let Some(decode_time) = decode_time.checked_sub(start) else {
            return Ok(Vec::new());
        };
        let sample = cmaf::audio_sample(frame, decode_time, duration);
        let bytes = file.audio_writer.fragment(std::slice::from_ref(&sample))?;
        Ok(vec![RecordEvent::Append(bytes)])
    }

    /// Takes one access unit; returns what to write.
    pub fn push(&mut self, au: &AccessUnit) -> Result<Vec<RecordEvent>, CmafError> {
        self.frames.observe(au.pts);
        let mut events = Vec::with_capacity(2);
        if au.keyframe {
            if let Some(open) = self.open_if_due(au)? {
                events.push(open);
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(events); // waiting for a keyframe
        };
        let mut sample = cmaf::sample_from_access_unit(au, self.frames.ticks())?;
        sample.decode_time = au.pts.saturating_sub(file.start_pts);
        events.push(RecordEvent::Append(
            file.writer.fragment(std::slice::from_ref(&sample))?,
        ));
        Ok(events)
    }

    /// A new file if this keyframe should start one.
    fn open_if_due(&mut self, au: &AccessUnit) -> Result<Option<RecordEvent>, CmafError> {
        let Some(track) = VideoTrack::from_access_unit(au)? else {
            return Ok(None); // a keyframe without parameter sets cannot start a file
        };
        let due = match &self.file {
            None => true,
            Some(f) => {
                au.pts.saturating_sub(f.start_pts) >= self.file_ticks
                    || f.track != track
                    || f.audio != self.audio
            }
        };
        if !due {
            return Ok(None);
        }
        let init = cmaf::init_segment_with_audio(&track, self.audio.as_ref())?;
        self.file = Some(OpenFile {
            track,
            audio: self.audio.clone(),
            start_pts: au.pts,
            writer: FragmentWriter::new(),
            audio_writer: FragmentWriter::for_track(cmaf::AUDIO_TRACK_ID),
        });
        Ok(Some(RecordEvent::Open {
            capture_unix_ns: au.capture.map(|c| c.unix_ns),
            init,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livefeed_media::CaptureStamp;

    /// An SPS as OpenH264 writes it (640x480, constrained baseline).
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f, 0x08, 0x84, 0x6a,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn au(n: u64, keyframe: bool) -> AccessUnit {
        let mut nals = vec![Bytes::from_static(if keyframe {
            &[0x65, 0x88, 0x84]
        } else {
            &[0x41, 0x9a, 0x02]
        })];
        if keyframe {
            nals.insert(0, Bytes::from_static(PPS));
            nals.insert(0, Bytes::from_static(SPS));
        }
        AccessUnit {
            codec: livefeed_media::VideoCodec::H264,
            nals,
            pts: 1_000_000 + n * 3000,
            keyframe,
            capture: Some(CaptureStamp {
                unix_ns: 1_700_000_000_000_000_000 + n * 33_333_333,
                frame: n,
            }),
        }
    }

    #[test]
    fn files_start_at_keyframes_after_the_duration() {
        let mut r = Recorder::new(Duration::from_secs(1));
        let mut opens = Vec::new();
        let mut appends = 0;
        // Frames 0..5 come before the first keyframe and are skipped; keyframes every 20.
        for n in 5..95 {
            for e in r.push(&au(n, n % 20 == 0)).expect("muxes") {
                match e {
                    RecordEvent::Open {
                        capture_unix_ns,
                        init,
                    } => {
                        assert!(init.starts_with(&[0, 0, 0]) && &init[4..8] == b"ftyp");
                        opens.push((n, capture_unix_ns));
                    }
                    RecordEvent::Append(bytes) => {
                        assert_eq!(&bytes[4..8], b"moof");
                        appends += 1;
                    }
                }
            }
        }
        // 1 s = 30 frames: files open at frames 20, 60 (20 + 40 >= 30 at the next keyframe).
        let at: Vec<u64> = opens.iter().map(|(n, _)| *n).collect();
        assert_eq!(at, [20, 60]);
        assert_eq!(
            opens[0].1,
            Some(1_700_000_000_000_000_000 + 20 * 33_333_333)
        );
        assert_eq!(appends, 95 - 20);
    }

    #[test]
    fn new_parameter_sets_start_a_new_file() {
        let mut r = Recorder::new(Duration::from_secs(3600));
        assert_eq!(r.push(&au(0, true)).expect("muxes").len(), 2);
        let mut changed = au(1, true);
        changed.nals[1] = Bytes::from_static(&[0x68, 0xce, 0x3c, 0x81]);
        let events = r.push(&changed).expect("muxes");
        assert!(matches!(events[0], RecordEvent::Open { .. }));
        assert_eq!(
            r.push(&au(2, true)).expect("muxes").len(),
            2,
            "back again: new file"
        );
    }

    #[test]
    fn audio_frames_join_the_file_from_its_first_video_frame() {
        let config =
            livefeed_media::aac::AacConfig::from_audio_specific_config(Bytes::from_static(&[
                0x11, 0x90,
            ]))
            .expect("48 kHz stereo AAC-LC");
        let mut r = Recorder::new(Duration::from_secs(3600));
        r.set_audio(Some(AudioTrack::Aac(config)));
        // 1_000_000 ticks at 90 kHz = 533_333 at 48 kHz.
        assert!(r
            .push_audio(Bytes::from_static(b"early"), 500_000, 1024)
            .expect("ok")
            .is_empty());
        let events = r.push(&au(0, true)).expect("muxes");
        let RecordEvent::Open { init, .. } = &events[0] else {
            panic!("a file opens: {events:?}");
        };
        assert!(
            init.windows(4).any(|w| w == b"mp4a"),
            "the init has the AAC track"
        );
        assert!(
            r.push_audio(Bytes::from_static(b"before"), 533_000, 1024)
                .expect("ok")
                .is_empty(),
            "before the file's first frame"
        );
        let appended = r
            .push_audio(Bytes::from_static(b"frame"), 534_357, 1024)
            .expect("ok");
        let [RecordEvent::Append(bytes)] = appended.as_slice() else {
            panic!("one fragment: {appended:?}");
        };
        assert!(bytes.ends_with(b"frame"));
        r.set_audio(None);
        let events = r.push(&au(1, true)).expect("muxes");
        assert!(
            matches!(events[0], RecordEvent::Open { .. }),
            "a changed audio config starts a new file"
        );
        assert!(r
            .push_audio(Bytes::from_static(b"x"), 600_000, 1024)
            .expect("ok")
            .is_empty());
    }
}
