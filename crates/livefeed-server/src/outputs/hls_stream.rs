//! LL-HLS for one path: a task subscribed to the hub turns each access unit into a CMAF chunk
//! (one `moof`+`mdat` per frame) and appends it to the path's [`Playlist`]. HTTP handlers read
//! the shared state and wait for changes through `watch` version counters (one bumped per
//! frame, for the preload-hinted part streamed as it grows; one per completed part, for blocking
//! playlist requests), so neither costs polling.
//!
//! An AAC (MPEG4-GENERIC) or Opus track beside the video is muxed too: a second track in the
//! init segment, one chunk per audio frame queued into the part of the next video frame
//! ([`Playlist::push_companion`]). Other tracks are skipped with one log line.
//!
//! Streams start on the first HTTP request for a path that has a publisher, and stop when the
//! hub subscription ends. Decode times stay monotonic across a publisher that leaves and
//! returns (its timestamps restart): the gap is bridged with the usual frame duration.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use livefeed_hls::cmaf::{self, AudioTrack, FragmentWriter, VideoTrack};
use livefeed_hls::playlist::{self, Chunk, Playlist, PlaylistConfig};
use livefeed_media::clock::unix_now_ns;
use livefeed_media::clock::FrameDuration;
use livefeed_media::track::TrackPacket;
use livefeed_media::AccessUnit;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::HlsConfig;
use crate::hub::{Hub, Media, Subscription};
use crate::outputs::audio_track::MuxedAudio;
use crate::outputs::hls_files::HlsFiles;

/// What the HLS task maintains for one path.
pub struct HlsState {
    /// The playlist with its parts and segments.
    pub playlist: Playlist,
    /// The init segment, once the first keyframe arrived.
    pub init: Option<Bytes>,
    /// The latest versions of the init segment by name ([`playlist::init_name`]), newest last:
    /// segments still listed may need an older one.
    pub inits: VecDeque<(String, Bytes)>,
    /// The track the init segment describes.
    pub track: Option<VideoTrack>,
    /// The audio track the init segment describes.
    pub audio: Option<AudioTrack>,
    /// The subscription ended (publisher gone for good or server stopping).
    pub ended: bool,
}

/// One path's LL-HLS stream, shared by the task and the HTTP handlers.
pub struct HlsStream {
    /// Path name.
    pub path: String,
    state: Mutex<HlsState>,
    version: watch::Sender<u64>,
    /// Bumped only when a part completes (or the stream ends): what the playlist text follows.
    parts_version: watch::Sender<u64>,
}

impl HlsStream {
    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, HlsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `ready` returns `Some` (checked now and after every change: every frame),
    /// or `deadline`.
    pub async fn wait_for<T>(
        &self,
        deadline: Instant,
        ready: impl FnMut(&HlsState) -> Option<T>,
    ) -> Option<T> {
        self.wait_on(&self.version, deadline, ready).await
    }

    /// [`HlsStream::wait_for`] checking only when a part completed or the stream ended: for
    /// blocking playlist requests, whose answer cannot change in between (hundreds of them
    /// would otherwise be woken by every frame).
    pub async fn wait_for_part<T>(
        &self,
        deadline: Instant,
        ready: impl FnMut(&HlsState) -> Option<T>,
    ) -> Option<T> {
        self.wait_on(&self.parts_version, deadline, ready).await
    }

    async fn wait_on<T>(
        &self,
        version: &watch::Sender<u64>,
        deadline: Instant,
        mut ready: impl FnMut(&HlsState) -> Option<T>,
    ) -> Option<T> {
        let mut changes = version.subscribe();
        loop {
            if let Some(v) = ready(&self.lock()) {
                return Some(v);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return ready(&self.lock()),
            }
        }
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn part_changed(&self) {
        self.parts_version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// All LL-HLS streams of a server.
pub struct HlsStreams {
    hub: Arc<Hub>,
    config: HlsConfig,
    streams: Mutex<HashMap<String, Arc<HlsStream>>>,
}

impl HlsStreams {
    /// A registry over `hub`.
    pub fn new(hub: Arc<Hub>, config: HlsConfig) -> Arc<Self> {
        Arc::new(HlsStreams {
            hub,
            config,
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// Access units published on `path` so far (the publisher's, whether or not LL-HLS could
    /// use them), if the path exists.
    pub fn frames_published(&self, path: &str) -> Option<u64> {
        self.hub.frames_in(path)
    }

    /// The settings.
    pub fn config(&self) -> &HlsConfig {
        &self.config
    }

    /// The running stream of `path`, started if the path has a publisher; `None` otherwise.
    pub fn get_or_start(self: &Arc<Self>, path: &str) -> Option<Arc<HlsStream>> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stream) = streams.get(path) {
            if !stream.lock().ended {
                return Some(stream.clone());
            }
        }
        let info = self.hub.stream_info(path)?;
        let audio = MuxedAudio::find(path, &info.others);
        let sub = self.hub.subscribe(path)?;
        let stream = Arc::new(HlsStream {
            path: path.to_string(),
            state: Mutex::new(HlsState {
                playlist: Playlist::new(self.playlist_config(path)),
                init: None,
                inits: VecDeque::new(),
                track: None,
                audio: None,
                ended: false,
            }),
            version: watch::channel(0).0,
            parts_version: watch::channel(0).0,
        });
        streams.insert(path.to_string(), stream.clone());
        let files = self
            .config
            .hls_dir
            .as_ref()
            .map(|dir| HlsFiles::new(dir.join(path), self.config.retained_segments));
        tokio::spawn(run(stream.clone(), sub, files, audio));
        info!(path, "LL-HLS stream started");
        Some(stream)
    }

    /// [`HlsStreams::get_or_start`], waking `path`'s on-demand source and waiting for its
    /// stream when it has no publisher yet.
    /// (A stream kept through the publisher grace after an on-demand source closed has no
    /// publisher: the source is woken for it too.)
    pub async fn get_or_start_on_demand(self: &Arc<Self>, path: &str) -> Option<Arc<HlsStream>> {
        if !self.hub.has_publisher(path) {
            self.hub
                .stream_on_demand(path, crate::hub::ON_DEMAND_START_TIMEOUT)
                .await;
        }
        self.get_or_start(path)
    }

    fn playlist_config(&self, path: &str) -> PlaylistConfig {
        PlaylistConfig {
            stream_id: format!("{:08x}", rand::random::<u32>()),
            part_target: self.config.part_target,
            segment_target: self.config.segment_target,
            playlist_segments: self.config.playlist_segments,
            retained_segments: self.config.retained_segments,
            uri_prefix: self
                .config
                .public_url
                .as_ref()
                .map(|u| format!("{u}/{path}/"))
                .unwrap_or_default(),
        }
    }
}

/// Muxer state carried from one access unit to the next.
struct Muxer {
    writer: FragmentWriter,
    last_decode_time: Option<u64>,
    offset: u64,
    frames: FrameDuration,
}

impl Muxer {
    /// The decode time of `pts`, kept increasing across timestamp resets.
    fn decode_time(&mut self, pts: u64) -> u64 {
        let frame_ticks = u64::from(self.frames.observe(pts));
        let mut dt = pts + self.offset;
        if let Some(last) = self.last_decode_time {
            if dt <= last {
                self.offset = last + frame_ticks - pts;
                dt = last + frame_ticks;
            }
        }
        self.last_decode_time = Some(dt);
        dt
    }
}

/// The audio track's muxing state.
struct AudioMuxer {
    audio: MuxedAudio,
    writer: FragmentWriter,
}

impl AudioMuxer {
    fn new(audio: MuxedAudio) -> Self {
        AudioMuxer {
            audio,
            writer: FragmentWriter::for_track(cmaf::AUDIO_TRACK_ID),
        }
    }

    /// The CMAF chunks of the frames `packet` completes.
    fn chunks(&mut self, packet: &TrackPacket) -> Vec<Bytes> {
        let track = self.audio.track;
        self.audio
            .frames(packet)
            .into_iter()
            .filter_map(|f| {
                let sample = cmaf::audio_sample(f.data, f.decode_time, f.duration);
                self.writer
                    .fragment(std::slice::from_ref(&sample))
                    .map_err(|e| debug!(track, error = %e, "audio frame skipped"))
                    .ok()
            })
            .collect()
    }
}

async fn run(
    stream: Arc<HlsStream>,
    mut sub: Subscription,
    mut files: Option<HlsFiles>,
    audio: Option<MuxedAudio>,
) {
    let mut muxer = Muxer {
        writer: FragmentWriter::new(),
        last_decode_time: None,
        offset: 0,
        frames: FrameDuration::default(),
    };
    let mut audio_config = audio.as_ref().map(MuxedAudio::cmaf_track);
    let mut audio = audio.map(AudioMuxer::new);
    while let Some(delivery) = sub.recv().await {
        let au = match &delivery.frame.media {
            Media::Video(au) => {
                let others = if au.keyframe {
                    sub.others()
                } else {
                    Vec::new()
                };
                if au.keyframe && !MuxedAudio::is_current(audio.as_ref().map(|a| &a.audio), &others)
                {
                    // A new publisher brought another audio track (or none): a new init.
                    let found = MuxedAudio::find(&stream.path, &others);
                    audio_config = found.as_ref().map(MuxedAudio::cmaf_track);
                    audio = found.map(AudioMuxer::new);
                }
                au
            }
            Media::Packet(p) => match audio.as_mut().filter(|a| a.audio.track == p.track) {
                Some(a) if stream.lock().init.is_some() => {
                    for chunk in a.chunks(p) {
                        stream.lock().playlist.push_companion(chunk);
                    }
                    continue;
                }
                Some(_) => continue,
                None => {
                    sub.note_not_carried("LL-HLS", &delivery.frame);
                    continue;
                }
            },
        };
        if let Err(e) = update_track(&stream, au, files.as_mut(), audio_config.as_ref()) {
            warn!(path = %stream.path, error = %e, "cannot describe the stream for LL-HLS");
            continue;
        }
        if stream.lock().init.is_none() {
            continue; // wait for a keyframe with parameter sets
        }
        let decode_time = muxer.decode_time(au.pts);
        let bytes = match mux(&mut muxer, au, decode_time) {
            Ok(b) => b,
            Err(e) => {
                warn!(path = %stream.path, error = %e, "CMAF muxing failed");
                continue;
            }
        };
        let chunk = Chunk {
            bytes,
            duration: muxer.frames.ticks(),
            keyframe: au.keyframe,
            capture_unix_ns: au.capture.map(|c| c.unix_ns),
            available_unix_ns: unix_now_ns(),
        };
        let pushed = stream.lock().playlist.push(chunk);
        if let Some(files) = files.as_mut() {
            files.after_push(&stream.lock(), &pushed);
        }
        stream.changed();
        if pushed.part_completed || pushed.segment_completed {
            stream.part_changed();
        }
    }
    stream.lock().ended = true;
    stream.changed();
    stream.part_changed();
    debug!(path = %stream.path, "LL-HLS stream ended");
}

/// One CMAF chunk (moof+mdat) holding `au` at `decode_time`.
fn mux(muxer: &mut Muxer, au: &AccessUnit, decode_time: u64) -> Result<Bytes, cmaf::CmafError> {
    let mut sample = cmaf::sample_from_access_unit(au, muxer.frames.ticks())?;
    sample.decode_time = decode_time;
    muxer.writer.fragment(std::slice::from_ref(&sample))
}

/// On keyframes, (re)creates the init segment when the parameter sets are new.
fn update_track(
    stream: &HlsStream,
    au: &AccessUnit,
    files: Option<&mut HlsFiles>,
    audio: Option<&AudioTrack>,
) -> Result<(), cmaf::CmafError> {
    if !au.keyframe {
        return Ok(());
    }
    let Some(track) = VideoTrack::from_access_unit(au)? else {
        return Ok(());
    };
    let mut state = stream.lock();
    if state.track.as_ref().is_some_and(|t| *t == track) && state.audio.as_ref() == audio {
        return Ok(());
    }
    let init = cmaf::init_segment_with_audio(&track, audio)?;
    if state.track.is_some() {
        state.playlist.discontinuity();
    }
    let name = playlist::init_name(&init);
    if let Some(files) = files {
        files.write_init(&name, &init);
    }
    state.playlist.set_init(&name);
    if state.inits.len() >= KEPT_INITS {
        state.inits.pop_front();
    }
    state.inits.push_back((name, init.clone()));
    state.init = Some(init);
    state.track = Some(track);
    state.audio = audio.cloned();
    Ok(())
}

/// Versions of the init segment kept fetchable by name: a publisher changing its parameter sets
/// more often than this within one playlist window leaves its oldest segments unplayable.
const KEPT_INITS: usize = 8;

impl HlsState {
    /// The init segment named `init-<hash>.mp4`, if it is one of the kept versions.
    pub fn init_named(&self, hash: u64) -> Option<Bytes> {
        let name = format!("init-{hash:016x}.mp4");
        self.inits
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
    }

    /// The id naming this run of the stream in its part and segment URIs.
    pub fn stream_id(&self) -> &str {
        &self.playlist.config().stream_id
    }
}

/// How long a blocking request may wait: three target durations (the LL-HLS rule for when a
/// stalled stream must be reported), at least one second.
pub fn blocking_timeout(state: &HlsState) -> Duration {
    Duration::from_secs(state.playlist.target_duration_secs().max(1) * 3)
}
