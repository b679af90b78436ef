//! Recording to disk: one task per recorded path reads the hub like any reader, cuts files
//! with [`livefeed_hls::record::Recorder`] and writes them under
//! `DIR/PATH/YYYY-MM-DD_HH-MM-SS-mmm.mp4` (UTC capture time of the first frame, from its SEI
//! stamp). Paths in the config are recorded whenever they have a publisher; others start and
//! stop through the API. After each new file, retention deletes the path's oldest files beyond
//! the age or size limit (never the file being written).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livefeed_hls::record::{RecordEvent, Recorder};
use livefeed_store::unix_now_ms;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::hub::{Hub, Media, Subscription};
use crate::outputs::audio_track::MuxedAudio;

/// Recording settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConfig {
    /// Where files go.
    pub dir: PathBuf,
    /// Paths recorded whenever published (`*` = every path).
    pub paths: Vec<String>,
    /// Length of a file (cut at the next keyframe).
    pub file_duration: Duration,
    /// Files older than this are deleted (None: kept).
    pub retention: Option<Duration>,
    /// A path's files beyond this many bytes are deleted, oldest first (None: no limit).
    pub max_bytes: Option<u64>,
}

/// One recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    /// Stream path.
    pub path: String,
    /// File name (`YYYY-MM-DD_HH-MM-SS-mmm.mp4`).
    pub file: String,
    /// Capture time of its first frame, Unix ms.
    pub start_unix_ms: i64,
    /// Size now.
    pub bytes: u64,
}

/// Why a recording cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Already recording.
    #[error("path {0:?} is already being recorded")]
    AlreadyRecording(String),
    /// Nothing to record.
    #[error("path {0:?} has no publisher")]
    NotPublished(String),
}

struct Active {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The server's recordings.
pub struct Recordings {
    hub: Arc<Hub>,
    config: RecordConfig,
    active: Mutex<HashMap<String, Active>>,
    /// Configured paths stopped through the API: not restarted automatically until started
    /// again.
    stopped: Mutex<std::collections::HashSet<String>>,
}

impl Recordings {
    /// Recordings of `hub`'s paths under `config`.
    pub fn new(hub: Arc<Hub>, config: RecordConfig) -> Arc<Self> {
        Arc::new(Recordings {
            hub,
            config,
            active: Mutex::new(HashMap::new()),
            stopped: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.retain(|_, a| !a.task.is_finished());
        active
    }

    /// Starts recording `path` (a validated path name), also re-enabling its automatic start.
    pub fn start(&self, path: &str) -> Result<(), RecordError> {
        self.stopped_paths().remove(path);
        self.start_now(path)
    }

    fn stopped_paths(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_now(&self, path: &str) -> Result<(), RecordError> {
        let mut active = self.active();
        if active.contains_key(path) {
            return Err(RecordError::AlreadyRecording(path.to_string()));
        }
        // A publisher that has not sent its first keyframe yet is fine: files start there.
        if !self.hub.has_publisher(path) {
            return Err(RecordError::NotPublished(path.to_string()));
        }
        let sub = self
            .hub
            .subscribe(path)
            .ok_or_else(|| RecordError::NotPublished(path.to_string()))?;
        let stop = CancellationToken::new();
        let dir = self.config.dir.join(path);
        let task = tokio::spawn(record(
            path.to_string(),
            sub,
            dir,
            self.config.clone(),
            stop.clone(),
        ));
        active.insert(path.to_string(), Active { stop, task });
        info!(path, dir = %self.config.dir.display(), "recording started");
        Ok(())
    }

    /// Stops recording `path` (until started again, also when configured); `false` if it was
    /// not being recorded.
    pub fn stop(&self, path: &str) -> bool {
        self.stopped_paths().insert(path.to_string());
        match self.active().remove(path) {
            Some(a) => {
                a.stop.cancel();
                info!(path, "recording stopped");
                true
            }
            None => false,
        }
    }

    /// Whether `path` is being recorded.
    pub fn is_recording(&self, path: &str) -> bool {
        self.active().contains_key(path)
    }

    /// Starts recording the configured paths whenever they have a publisher, once a second.
    pub fn spawn_auto(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        if self.config.paths.is_empty() {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for p in me.hub.snapshot() {
                    let wanted = me.config.paths.iter().any(|w| w == "*" || *w == p.name);
                    let stopped = me.stopped_paths().contains(&p.name);
                    if wanted && !stopped && p.publisher.is_some() && p.stream.is_some() {
                        let _ = me.start_now(&p.name);
                    }
                }
            }
        }))
    }

    /// Every recorded file, oldest first per path.
    pub fn list(&self) -> Vec<RecordingFile> {
        let mut out = Vec::new();
        collect_files(&self.config.dir, &self.config.dir, &mut out);
        out.sort_by(|a, b| (&a.path, &a.file).cmp(&(&b.path, &b.file)));
        out
    }

    /// The file `file` of `path` on disk, if it is a recording that exists.
    pub fn file(&self, path: &str, file: &str) -> Option<PathBuf> {
        parse_file_name(file)?;
        let full = self.config.dir.join(path).join(file);
        full.is_file().then_some(full)
    }
}

/// `YYYY-MM-DD_HH-MM-SS-mmm.mp4` of a Unix time (UTC).
pub fn file_name(unix_ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(unix_ms).unwrap_or_default();
    format!("{}.mp4", t.format("%Y-%m-%d_%H-%M-%S-%3f"))
}

/// The Unix ms a recording's file name stands for; `None` if it is not one.
pub fn parse_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".mp4")?;
    if stem.len() != 23
        || !stem
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return None;
    }
    let t = chrono::NaiveDateTime::parse_from_str(stem, "%Y-%m-%d_%H-%M-%S-%3f").ok()?;
    Some(t.and_utc().timestamp_millis())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<RecordingFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            collect_files(root, &p, out);
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let (Some(start), Ok(rel)) = (parse_file_name(&name), dir.strip_prefix(root)) else {
            continue;
        };
        out.push(RecordingFile {
            path: rel.to_string_lossy().replace('\\', "/"),
            file: name,
            start_unix_ms: start,
            bytes: meta.len(),
        });
    }
}

/// At a keyframe, makes the recorder carry the path's current audio track (a new publisher may
/// bring another one, or none).
fn follow_audio(
    path: &str,
    sub: &Subscription,
    aac: &mut Option<MuxedAudio>,
    recorder: &mut Recorder,
) {
    if MuxedAudio::follow(path, aac, &sub.others()) {
        recorder.set_audio(aac.as_ref().map(MuxedAudio::cmaf_track));
    }
}

/// Reads `sub` until it ends or `stop`, writing files into `dir`.
async fn record(
    path: String,
    mut sub: crate::hub::Subscription,
    dir: PathBuf,
    config: RecordConfig,
    stop: CancellationToken,
) {
    let mut recorder = Recorder::new(config.file_duration);
    let mut aac: Option<MuxedAudio> = None;
    let mut file: Option<(tokio::fs::File, PathBuf)> = None;
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => break,
            d = sub.recv() => match d { Some(d) => d, None => break },
        };
        let events = match &delivery.frame.media {
            Media::Video(au) => {
                if au.keyframe {
                    follow_audio(&path, &sub, &mut aac, &mut recorder);
                }
                recorder.push(au)
            }
            Media::Packet(p) => match aac.as_mut().filter(|a| a.track == p.track) {
                Some(a) => {
                    let mut events = Vec::new();
                    for f in a.frames(p) {
                        match recorder.push_audio(f.data, f.decode_time, f.duration) {
                            Ok(mut e) => events.append(&mut e),
                            Err(e) => debug!(path, error = %e, "audio frame not recorded"),
                        }
                    }
                    Ok(events)
                }
                None => {
                    sub.note_not_carried("recording", &delivery.frame);
                    continue;
                }
            },
        };
        let events = match events {
            Ok(e) => e,
            Err(e) => {
                warn!(path, error = %e, "cannot record this access unit");
                continue;
            }
        };
        for event in events {
            let result = match event {
                RecordEvent::Open {
                    capture_unix_ns,
                    init,
                } => {
                    close(&path, file.take()).await;
                    let ms = capture_unix_ns.map_or_else(unix_now_ms, |ns| (ns / 1_000_000) as i64);
                    match open(&dir, ms, &init).await {
                        Ok(f) => {
                            let (d, c, current) = (dir.clone(), config.clone(), f.1.clone());
                            // Directory walk and deletions: off the async threads.
                            let _ =
                                tokio::task::spawn_blocking(move || retain(&d, &c, &current)).await;
                            file = Some(f);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                RecordEvent::Append(bytes) => match file.as_mut() {
                    Some((f, _)) => f.write_all(&bytes).await,
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                warn!(path, dir = %dir.display(), error = %e, "recording failed, stopping it");
                close(&path, file.take()).await;
                return;
            }
        }
    }
    close(&path, file.take()).await;
}

async fn open(
    dir: &Path,
    unix_ms: i64,
    init: &[u8],
) -> std::io::Result<(tokio::fs::File, PathBuf)> {
    tokio::fs::create_dir_all(dir).await?;
    let mut name = dir.join(file_name(unix_ms));
    // Two files in the same millisecond (a publisher restart): the later one moves by 1 ms.
    let mut ms = unix_ms;
    while tokio::fs::try_exists(&name).await.unwrap_or(false) {
        ms += 1;
        name = dir.join(file_name(ms));
    }
    let mut f = tokio::fs::File::create(&name).await?;
    f.write_all(init).await?;
    Ok((f, name))
}

async fn close(path: &str, file: Option<(tokio::fs::File, PathBuf)>) {
    if let Some((mut f, name)) = file {
        if let Err(e) = f.flush().await {
            warn!(path, file = %name.display(), error = %e, "cannot finish a recording file");
        }
    }
}

/// Deletes the oldest files of `dir` beyond the age or size limits, never `current`.
fn retain(dir: &Path, config: &RecordConfig, current: &Path) {
    if config.retention.is_none() && config.max_bytes.is_none() {
        return;
    }
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files);
    files.retain(|f| f.path.is_empty());
    files.sort_by(|a, b| a.file.cmp(&b.file));
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let oldest_kept = config
        .retention
        .map(|r| unix_now_ms() - r.as_millis() as i64);
    for f in files {
        let full = dir.join(&f.file);
        if full == current {
            break;
        }
        let too_old = oldest_kept.is_some_and(|t| f.start_unix_ms < t);
        let too_big = config.max_bytes.is_some_and(|m| total > m);
        if !too_old && !too_big {
            break;
        }
        match std::fs::remove_file(&full) {
            Ok(()) => {
                total = total.saturating_sub(f.bytes);
                info!(file = %full.display(), too_old, too_big, "recording deleted by retention");
            }
            Err(e) => warn!(file = %full.display(), error = %e, "cannot delete an old recording"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(retention: Option<Duration>, max_bytes: Option<u64>) -> RecordConfig {
        RecordConfig {
            dir: PathBuf::new(),
            paths: Vec::new(),
            file_duration: Duration::from_secs(60),
            retention,
            max_bytes,
        }
    }

    /// Files of 1000 bytes, one per minute, the newest `current`.
    fn files(tag: &str, minutes_ago: &[i64]) -> (PathBuf, Vec<PathBuf>) {
        let dir = std::env::temp_dir().join(format!("livefeed-rec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let paths = minutes_ago
            .iter()
            .map(|m| {
                let p = dir.join(file_name(unix_now_ms() - m * 60_000));
                std::fs::write(&p, [0u8; 1000]).expect("write");
                p
            })
            .collect();
        (dir, paths)
    }

    #[test]
    fn retention_deletes_the_oldest_by_age_and_by_size_never_the_current_file() {
        let (dir, f) = files("age", &[50, 40, 30, 2, 1, 0]);
        retain(
            &dir,
            &config(Some(Duration::from_secs(35 * 60)), None),
            &f[5],
        );
        let left: Vec<bool> = f.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [false, false, true, true, true, true]);
        let (dir2, f) = files("size", &[5, 4, 3, 2, 1, 0]);
        retain(&dir2, &config(None, Some(3500)), &f[5]);
        let left: Vec<bool> = f.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [false, false, false, true, true, true]);
        // The file being written stays even when it alone is over the limit.
        let (dir3, f) = files("current", &[0]);
        retain(&dir3, &config(Some(Duration::from_secs(1)), Some(1)), &f[0]);
        assert!(f[0].exists());
        for d in [dir, dir2, dir3] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn file_names_carry_the_capture_time() {
        let ms = 1_795_249_856_212;
        let name = file_name(ms);
        assert_eq!(name, "2026-11-21_08-30-56-212.mp4");
        assert_eq!(parse_file_name(&name), Some(ms));
        for bad in [
            "x.mp4",
            "../2026-11-21_08-30-56-212.mp4",
            "2026-11-21_08-30-56-212.mp3",
            "",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
