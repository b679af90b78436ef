//! Replays the fuzz corpora through the fuzz targets' own checks, so that every input the fuzzers
//! were seeded with or ever failed on is re-checked by a plain `cargo test`, on stable, without
//! cargo-fuzz.
//!
//! Each target's check lives in `fuzz/checks/<target>.rs` (`pub fn check(data: &[u8])`), which
//! both `fuzz/fuzz_targets/<target>.rs` and this file include as a module. For every target, each
//! file in `fuzz/corpus/<target>/` (the committed seeds) and `fuzz/regressions/<target>/`
//! (inputs that once crashed or timed out) is passed to `check`; a missing directory means
//! nothing to replay there, but every target must replay at least one input.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/auth_header.rs"]
mod auth_header;
#[path = "../../../fuzz/checks/hls_query.rs"]
mod hls_query;
#[path = "../../../fuzz/checks/ice_tcp_framing.rs"]
mod ice_tcp_framing;
#[path = "../../../fuzz/checks/metrics_json.rs"]
mod metrics_json;
#[path = "../../../fuzz/checks/mpegts_demux.rs"]
mod mpegts_demux;
#[path = "../../../fuzz/checks/rtmp_ingest.rs"]
mod rtmp_ingest;
#[path = "../../../fuzz/checks/rtp_audio_depacketize.rs"]
mod rtp_audio_depacketize;
#[path = "../../../fuzz/checks/rtp_video_depacketize.rs"]
mod rtp_video_depacketize;
#[path = "../../../fuzz/checks/rtsp_challenge.rs"]
mod rtsp_challenge;
#[path = "../../../fuzz/checks/rtsp_framing.rs"]
mod rtsp_framing;
#[path = "../../../fuzz/checks/rtsp_pull_responses.rs"]
mod rtsp_pull_responses;
#[path = "../../../fuzz/checks/sdp_h264.rs"]
mod sdp_h264;
#[path = "../../../fuzz/checks/sdp_tracks.rs"]
mod sdp_tracks;
#[path = "../../../fuzz/checks/sei_stamp.rs"]
mod sei_stamp;
#[path = "../../../fuzz/checks/timecode_read.rs"]
mod timecode_read;
#[path = "../../../fuzz/checks/whep_offer.rs"]
mod whep_offer;
#[path = "../../../fuzz/checks/whip_offer.rs"]
mod whip_offer;

/// The `fuzz/` directory of the repository.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The regular files of `dir`, sorted; none if `dir` does not exist. Hidden files (`.gitkeep`)
/// are not inputs.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => panic!("cannot list {}: {err}", dir.display()),
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display())))
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every corpus and regression input of `target`. Every input is tried even
/// after one fails (the panic message of each failure is printed as it happens); the test then
/// fails listing all failing files. Also fails if there was nothing to replay.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = fuzz_dir();
    let mut replayed = 0;
    let mut failed = Vec::new();
    for kind in ["corpus", "regressions"] {
        for path in inputs(&fuzz.join(kind).join(target)) {
            let data = std::fs::read(&path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
            replayed += 1;
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {replayed} inputs failed the check:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(
        replayed > 0,
        "{target}: no input in {0}/corpus/{target} or {0}/regressions/{target}",
        fuzz.display()
    );
    eprintln!("{target}: replayed {replayed} inputs");
}

#[test]
fn hls_query_corpus() {
    replay("hls_query", hls_query::check);
}

#[test]
fn metrics_json_corpus() {
    replay("metrics_json", metrics_json::check);
}

#[test]
fn rtp_h264_depacketize_corpus() {
    replay("rtp_h264_depacketize", rtp_video_depacketize::check);
}

#[test]
fn rtp_h265_depacketize_corpus() {
    replay("rtp_h265_depacketize", rtp_video_depacketize::check_h265);
}

#[test]
fn rtsp_framing_corpus() {
    replay("rtsp_framing", rtsp_framing::check);
}

#[test]
fn sdp_h264_corpus() {
    replay("sdp_h264", sdp_h264::check);
}

#[test]
fn sei_stamp_corpus() {
    replay("sei_stamp", sei_stamp::check);
}

#[test]
fn timecode_read_corpus() {
    replay("timecode_read", timecode_read::check);
}

#[test]
fn auth_header_corpus() {
    replay("auth_header", auth_header::check);
}

#[test]
fn rtsp_challenge_corpus() {
    replay("rtsp_challenge", rtsp_challenge::check);
}

#[test]
fn rtmp_ingest_corpus() {
    replay("rtmp_ingest", rtmp_ingest::check);
}

#[test]
fn rtsp_pull_responses_corpus() {
    replay("rtsp_pull_responses", rtsp_pull_responses::check);
}

#[test]
fn ice_tcp_framing_corpus() {
    replay("ice_tcp_framing", ice_tcp_framing::check);
}

#[test]
fn whep_offer_corpus() {
    replay("whep_offer", whep_offer::check);
}

#[test]
fn whip_offer_corpus() {
    replay("whip_offer", whip_offer::check);
}

#[test]
fn mpegts_demux_corpus() {
    replay("mpegts_demux", mpegts_demux::check);
}

#[test]
fn sdp_tracks_corpus() {
    replay("sdp_tracks", sdp_tracks::check);
}

#[test]
fn rtp_audio_depacketize_corpus() {
    replay("rtp_audio_depacketize", rtp_audio_depacketize::check);
}
