//! `--hls-dir`: the LL-HLS files also written to disk, for tools that want files (the original
//! streamer wrote them). Every file is written to a temporary name and renamed into place, so a
//! reader never sees half a file; segments beyond the retention count are deleted. Parts are not
//! written (they exist for the blocking HTTP delivery only); the playlist on disk lists whole
//! segments and is rewritten after each one. Writes run on the blocking thread pool.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use livefeed_hls::playlist::Pushed;
use tracing::warn;

use crate::hls_stream::HlsState;

/// The on-disk mirror of one path's LL-HLS stream.
pub struct HlsFiles {
    dir: PathBuf,
    retained: usize,
    written: VecDeque<u64>,
}

impl HlsFiles {
    /// Files for one path under `dir`, keeping `retained` segments.
    pub fn new(dir: PathBuf, retained: usize) -> Self {
        HlsFiles {
            dir,
            retained: retained.max(1),
            written: VecDeque::new(),
        }
    }

    /// Writes `init.mp4`.
    pub fn write_init(&mut self, init: &Bytes) {
        self.spawn_writes(vec![("init.mp4".into(), init.clone())], Vec::new());
    }

    /// After a push: when a segment completed, writes it and the playlist, and deletes the
    /// segments that fell out of retention.
    pub fn after_push(&mut self, state: &HlsState, pushed: &Pushed) {
        if !pushed.segment_completed {
            return;
        }
        let msn = state.playlist.open_msn().saturating_sub(1);
        let Some(segment) = state.playlist.segment(msn) else {
            return;
        };
        let mut writes = vec![(format!("seg{msn}.m4s"), segment)];
        if let Some(text) = state.playlist.render(false) {
            writes.push(("index.m3u8".into(), Bytes::from(text)));
        }
        self.written.push_back(msn);
        let mut deletes = Vec::new();
        while self.written.len() > self.retained {
            if let Some(old) = self.written.pop_front() {
                deletes.push(format!("seg{old}.m4s"));
            }
        }
        self.spawn_writes(writes, deletes);
    }

    fn spawn_writes(&self, writes: Vec<(String, Bytes)>, deletes: Vec<String>) {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "cannot create the HLS directory");
                return;
            }
            for (name, bytes) in writes {
                if let Err(e) = write_atomically(&dir, &name, &bytes) {
                    warn!(file = %dir.join(&name).display(), error = %e, "cannot write HLS file");
                }
            }
            for name in deletes {
                let _ = std::fs::remove_file(dir.join(name));
            }
        });
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
}
