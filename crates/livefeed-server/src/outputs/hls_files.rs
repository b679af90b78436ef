//! `--hls-dir`: the LL-HLS files also written to disk, for tools that want files (the original
//! streamer wrote them) and for a plain file server (nginx) to serve.
//!
//! Written: each init segment under the name the playlist gives it (`init-<hash>.mp4`) and as
//! `init.mp4` (the latest); every part as the playlist names it (`<stream id>-part<msn>.<i>.m4s`)
//! as soon as it completes; every segment (`<stream id>-seg<msn>.m4s`) when it completes; and `index.m3u8`, the same LL-HLS playlist the
//! HTTP server renders (parts, preload hint, no delta skip), rewritten after every completed part
//! (it used to be rewritten per segment, and parts used to stay in memory). A file server cannot
//! honour the playlist's `CAN-BLOCK-RELOAD=YES` or stream the hinted part: its clients must poll.
//!
//! Every file is written to a temporary name and renamed into place, so a reader never sees half
//! a file, and a part is on disk before the playlist that lists it. Segments beyond the retention
//! count are deleted together with their parts (parts are retained like their segments). The
//! writes run in order on one writer thread per path, fed through a bounded queue: the HLS task
//! never waits for the disk, and if the disk falls that far behind, writes are dropped with a
//! warning rather than queued without bound.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

use bytes::Bytes;
use livefeed_hls::playlist::{PartState, Playlist, Pushed};
use tracing::warn;

use crate::outputs::hls_stream::HlsState;

/// Write jobs queued for the writer thread before new ones are dropped (one job per completed
/// part: 6.4 s of 100 ms parts).
const QUEUE: usize = 64;

/// Files to write (in order), then files to delete.
struct Job {
    writes: Vec<(String, Bytes)>,
    deletes: Vec<String>,
}

/// The on-disk mirror of one path's LL-HLS stream.
pub struct HlsFiles {
    retained: usize,
    /// Complete segments on disk, oldest first.
    written: VecDeque<u64>,
    /// How many parts of each segment are on disk (so they can be deleted with it).
    parts: BTreeMap<u64, u32>,
    /// The next part to write: (msn, index).
    next_part: (u64, u32),
    jobs: Option<SyncSender<Job>>,
    /// The writer thread; it ends by itself once `jobs` is dropped and the queue is drained.
    #[cfg_attr(not(test), allow(dead_code))]
    writer: Option<JoinHandle<()>>,
}

impl HlsFiles {
    /// Files for one path under `dir`, keeping `retained` segments (and their parts).
    pub fn new(dir: PathBuf, retained: usize) -> Self {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let writer = std::thread::Builder::new()
            .name("hls-files".into())
            .spawn(move || {
                for job in rx {
                    run_job(&dir, job);
                }
            });
        let (jobs, writer) = match writer {
            Ok(handle) => (Some(tx), Some(handle)),
            Err(e) => {
                warn!(error = %e, "cannot start the HLS file writer; --hls-dir stays empty");
                (None, None)
            }
        };
        HlsFiles {
            retained: retained.max(1),
            written: VecDeque::new(),
            parts: BTreeMap::new(),
            next_part: (0, 0),
            jobs,
            writer,
        }
    }

    /// Writes an init segment as `name` and as `init.mp4`. Old versions stay (a few hundred
    /// bytes each, one per change of the publisher's parameter sets).
    pub fn write_init(&mut self, name: &str, init: &Bytes) {
        self.send(Job {
            writes: vec![
                (name.to_string(), init.clone()),
                ("init.mp4".into(), init.clone()),
            ],
            deletes: Vec::new(),
        });
    }

    /// After a push: writes the parts it completed, the segment it completed (deleting the
    /// segments, and their parts, that fell out of retention), then the playlist.
    pub fn after_push(&mut self, state: &HlsState, pushed: &Pushed) {
        if !pushed.part_completed && !pushed.segment_completed {
            return;
        }
        let playlist = &state.playlist;
        let mut writes = self.new_parts(playlist);
        let mut deletes = Vec::new();
        if pushed.segment_completed {
            let msn = playlist.open_msn().saturating_sub(1);
            if let Some(segment) = playlist.segment(msn) {
                writes.push((playlist.segment_name(msn), segment));
                self.written.push_back(msn);
            }
            while self.written.len() > self.retained {
                let Some(old) = self.written.pop_front() else {
                    break;
                };
                deletes.push(playlist.segment_name(old));
                let parts = self.parts.remove(&old).unwrap_or(0);
                deletes.extend((0..parts).map(|i| playlist.part_name(old, i)));
            }
        }
        if let Some(text) = playlist.render(false) {
            writes.push(("index.m3u8".into(), Bytes::from(text)));
        }
        self.send(Job { writes, deletes });
    }

    /// The complete parts not written yet, in order, advancing the cursor past them.
    fn new_parts(&mut self, playlist: &Playlist) -> Vec<(String, Bytes)> {
        let open = playlist.open_msn();
        let mut out = Vec::new();
        loop {
            let (msn, index) = self.next_part;
            match playlist.part(msn, index) {
                PartState::Complete(bytes) => {
                    out.push((playlist.part_name(msn, index), bytes));
                    self.parts.insert(msn, index + 1);
                    self.next_part = (msn, index + 1);
                }
                // Past the last part of a complete (or dropped) segment: on to the next one.
                _ if msn < open => self.next_part = (msn + 1, 0),
                _ => break,
            }
        }
        out
    }

    fn send(&mut self, job: Job) {
        let Some(jobs) = &self.jobs else {
            return;
        };
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let first = job.writes.first().map(|(name, _)| name.as_str());
                warn!(first, "the HLS file writer is behind; files not written");
            }
            Err(TrySendError::Disconnected(_)) => {
                warn!("the HLS file writer stopped; files not written");
                self.jobs = None;
            }
        }
    }

    /// Stops the writer after it has written everything queued, and waits for it.
    #[cfg(test)]
    fn finish(mut self) {
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            writer.join().expect("writer thread");
        }
    }
}

fn run_job(dir: &Path, job: Job) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn!(dir = %dir.display(), error = %e, "cannot create the HLS directory");
        return;
    }
    for (name, bytes) in job.writes {
        if let Err(e) = write_atomically(dir, &name, &bytes) {
            warn!(file = %dir.join(&name).display(), error = %e, "cannot write HLS file");
        }
    }
    for name in job.deletes {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use livefeed_hls::playlist::{Chunk, PlaylistConfig};
    use std::time::Duration;

    #[test]
    fn atomic_write_leaves_only_the_final_file() {
        let dir = std::env::temp_dir().join(format!("livefeed-hls-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        write_atomically(&dir, "a.m4s", b"one").expect("written");
        write_atomically(&dir, "a.m4s", b"two").expect("rewritten");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.m4s"]);
        assert_eq!(std::fs::read(dir.join("a.m4s")).expect("read"), b"two");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn parts_are_written_and_retained_with_their_segments() {
        let dir = std::env::temp_dir().join(format!("livefeed-hls-parts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // 30 fps frames (3000 ticks), 100 ms parts (3 frames), a keyframe every 6 frames and
        // 200 ms segments: 2 parts per segment. Keep 2 segments.
        let mut state = HlsState {
            playlist: Playlist::new(PlaylistConfig {
                part_target: Duration::from_millis(100),
                segment_target: Duration::from_millis(200),
                playlist_segments: 1,
                retained_segments: 2,
                uri_prefix: String::new(),
                stream_id: String::new(),
            }),
            init: None,
            inits: Default::default(),
            track: None,
            audio: None,
            ended: false,
        };
        let mut files = HlsFiles::new(dir.clone(), 2);
        let frame = |i: u8| Bytes::from(vec![i; 10]);
        // Frames 0..=30: segments 0 to 4 complete, segment 5 open with one frame.
        for i in 0..=30u8 {
            let pushed = state.playlist.push(Chunk {
                bytes: frame(i),
                duration: 3000,
                keyframe: i % 6 == 0,
                capture_unix_ns: Some(u64::from(i)),
                available_unix_ns: u64::from(i),
            });
            files.after_push(&state, &pushed);
        }
        files.finish();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "index.m3u8",
                "part3.0.m4s",
                "part3.1.m4s",
                "part4.0.m4s",
                "part4.1.m4s",
                "seg3.m4s",
                "seg4.m4s"
            ]
        );
        let read = |name: &str| std::fs::read(dir.join(name)).expect("read");
        let expected: Vec<u8> = (27..30u8).flat_map(|i| frame(i).to_vec()).collect();
        assert_eq!(read("part4.1.m4s"), expected);
        let mut seg4 = read("part4.0.m4s");
        seg4.extend(read("part4.1.m4s"));
        assert_eq!(read("seg4.m4s"), seg4);
        let playlist = String::from_utf8(read("index.m3u8")).expect("utf-8");
        assert!(playlist.contains("URI=\"part4.1.m4s\""), "{playlist}");
        assert!(
            playlist.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part5.0.m4s\""),
            "{playlist}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
