//! AAC (and G.711) → Opus for WebRTC viewers: browsers take Opus, cameras and encoders send
//! AAC or G.711. One transcoder per path, started by the first WebRTC viewer of a path whose
//! audio is AAC or G.711 (and that has no Opus track), stopped once no viewer listens (checked
//! at every packet it makes).
//!
//! The transcoder is one of the server's own hub readers: it depacketizes the path's AAC track
//! ([`MuxedAudio`]), decodes and re-encodes it ([`AacToOpus`]) and broadcasts Opus packets as
//! hub frames of track [`TRANSCODED_TRACK`], on the path's timeline, to every viewer's
//! forwarding task. A viewer that falls behind the broadcast loses packets (sound only). When it
//! stops it logs the CPU it spent per second of audio.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livefeed_hls::cmaf::AudioTrack;
use livefeed_media::track::{TrackDescription, TrackPacket};
use livefeed_transcode::AacToOpus;
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::hub::{Hub, HubFrame, Media, Subscription};
use crate::outputs::audio_track::MuxedAudio;

/// The track number transcoded Opus packets carry (no publisher track has it).
pub const TRANSCODED_TRACK: usize = usize::MAX;

/// Opus packets a slow viewer may lag behind before it loses some: 2 s.
const BROADCAST_CAPACITY: usize = 100;

/// The running transcoders of a server, by path.
pub struct Transcoders {
    hub: Arc<Hub>,
    running: Mutex<HashMap<String, broadcast::Sender<Arc<HubFrame>>>>,
}

impl Transcoders {
    /// No transcoder running yet.
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(Transcoders {
            hub,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Opus packets of `path`'s AAC track (tracks `others`), from the path's running
    /// transcoder or a new one; `None` when the path has no AAC track the muxers read, or
    /// transcoding is impossible (the reason is logged).
    pub fn listen(
        self: &Arc<Self>,
        path: &str,
        others: &[TrackDescription],
    ) -> Option<broadcast::Receiver<Arc<HubFrame>>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = running.get(path) {
            return Some(tx.subscribe());
        }
        let audio = MuxedAudio::find(path, others)?;
        // AAC is transcoded here; G.711 comes out of MuxedAudio as Opus already.
        let transcoder = match audio.cmaf_track() {
            AudioTrack::Aac(config) => match AacToOpus::new(&config) {
                Ok(t) => Some(t),
                Err(e) => {
                    warn!(path, error = %e, "AAC cannot be transcoded to Opus: WebRTC viewers get no sound");
                    return None;
                }
            },
            AudioTrack::Opus { .. } => None,
        };
        let sub = self.hub.subscribe(path)?;
        let (tx, rx) = broadcast::channel(BROADCAST_CAPACITY);
        running.insert(path.to_string(), tx.clone());
        info!(path, codec = %audio.description.codec.name(),
            "audio → Opus transcoder started for WebRTC viewers");
        let job = Job {
            tracks: others.to_vec(),
            path: path.to_string(),
            audio,
            transcoder,
            sub,
            tx,
            transcoders: self.clone(),
        };
        tokio::spawn(job.run());
        Some(rx)
    }

    /// Whether the job of `tx` should end because nobody listens; if so it is forgotten, under
    /// the same lock [`Transcoders::listen`] subscribes under (so no viewer joins a job that
    /// is ending).
    fn nobody_listens(&self, path: &str, tx: &broadcast::Sender<Arc<HubFrame>>) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if tx.receiver_count() > 0 {
            return false;
        }
        if running.get(path).is_some_and(|t| t.same_channel(tx)) {
            running.remove(path);
        }
        true
    }

    /// Forgets the job of `tx` (it ended, whatever the reason), so the next viewer starts a
    /// new one.
    fn forget(&self, path: &str, tx: &broadcast::Sender<Arc<HubFrame>>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(path).is_some_and(|t| t.same_channel(tx)) {
            running.remove(path);
        }
    }
}

/// One path's transcoder.
struct Job {
    path: String,
    audio: MuxedAudio,
    /// `None` when the track's frames are Opus already (G.711 transcoded by [`MuxedAudio`]).
    transcoder: Option<AacToOpus>,
    sub: Subscription,
    tx: broadcast::Sender<Arc<HubFrame>>,
    transcoders: Arc<Transcoders>,
    /// The path's tracks when the job started: another publisher's may differ.
    tracks: Vec<TrackDescription>,
}

impl Drop for Job {
    fn drop(&mut self) {
        // Whatever ended the job (a panic too): the next viewer must start a new one.
        self.transcoders.forget(&self.path, &self.tx);
    }
}

impl Job {
    async fn run(mut self) {
        let mut cpu = Duration::ZERO;
        let mut audio_samples = 0u64;
        while let Some(delivery) = self.sub.recv().await {
            let p = match &delivery.frame.media {
                Media::Video(au) => {
                    if au.keyframe && self.sub.others() != self.tracks {
                        info!(path = %self.path, "the path's tracks changed: transcoder ends");
                        break;
                    }
                    continue;
                }
                Media::Packet(p) => p,
            };
            if p.track != self.audio.track {
                continue;
            }
            let started = Instant::now();
            let mut packets = Vec::new();
            for frame in self.audio.frames(p) {
                let Some(transcoder) = self.transcoder.as_mut() else {
                    packets.push(livefeed_transcode::OpusPacket {
                        data: frame.data,
                        pts: frame.decode_time,
                        duration: frame.duration,
                    });
                    continue;
                };
                match transcoder.push(&frame.data, frame.decode_time) {
                    Ok(mut opus) => packets.append(&mut opus),
                    Err(e) => {
                        tracing::debug!(path = %self.path, error = %e, "AAC frame not transcoded")
                    }
                }
            }
            cpu += started.elapsed();
            for opus in packets {
                audio_samples += u64::from(opus.duration);
                let frame = HubFrame::new(
                    Media::Packet(TrackPacket {
                        track: TRANSCODED_TRACK,
                        pts: opus.pts,
                        payload: opus.data,
                        marker: true,
                        capture_unix_ns: None,
                    }),
                    delivery.frame.ingest,
                );
                if self.tx.send(Arc::new(frame)).is_err()
                    && self.transcoders.nobody_listens(&self.path, &self.tx)
                {
                    self.stop(cpu, audio_samples);
                    return;
                }
            }
        }
        self.stop(cpu, audio_samples);
    }

    fn stop(&self, cpu: Duration, audio_samples: u64) {
        let audio_secs = audio_samples as f64 / 48_000.0;
        let share = if audio_secs > 0.0 {
            100.0 * cpu.as_secs_f64() / audio_secs
        } else {
            0.0
        };
        info!(path = %self.path, audio_s = format!("{audio_secs:.1}"),
            cpu_ms = cpu.as_millis() as u64, cpu_percent_of_a_core = format!("{share:.2}"),
            "audio → Opus transcoder stopped");
    }
}
