//! What an RTMP publisher sends after the handshake: the chunk stream and AMF0 commands
//! (rml_rtmp's server session, as the RTMP listener runs it) and the FLV tags inside its audio
//! and video messages (livefeed's `flv` reader). Never a panic, whole or split in two (the
//! events may differ: a request the listener accepts between two reads changes what the session
//! takes next); NAL units split from a tag are never empty and never hold more bytes than it.
//!
//! Shared by the `rtmp_ingest` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`). The first byte chooses the split point.

use bytes::Bytes;
use livefeed_media::flv::{self, VideoTag};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

/// The events of a session fed `pieces`, as Debug text, and the media tags among them.
fn run(pieces: &[&[u8]]) -> (Vec<String>, Vec<(bool, Bytes)>) {
    let Ok((mut session, _)) = ServerSession::new(ServerSessionConfig::new()) else {
        return (Vec::new(), Vec::new());
    };
    let mut events = Vec::new();
    let mut tags = Vec::new();
    for piece in pieces {
        let Ok(results) = session.handle_input(piece) else {
            events.push("error".to_string());
            break;
        };
        for result in results {
            if let ServerSessionResult::RaisedEvent(event) = result {
                match &event {
                    ServerSessionEvent::VideoDataReceived { data, .. } => {
                        tags.push((true, data.clone()))
                    }
                    ServerSessionEvent::AudioDataReceived { data, .. } => {
                        tags.push((false, data.clone()))
                    }
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                        let _ = session.accept_request(*request_id);
                    }
                    _ => {}
                }
                events.push(format!("{event:?}"));
            }
        }
    }
    (events, tags)
}

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) * data.len() / 256);
    let (_, mut tags) = run(&[data]);
    let (_, split_tags) = run(&[&data[..cut], &data[cut..]]);
    tags.extend(split_tags);
    // The tags the session found, and the input itself read as one tag of each kind.
    let raw = Bytes::copy_from_slice(data);
    for (video, tag) in tags
        .iter()
        .map(|(v, t)| (*v, t.clone()))
        .chain([(true, raw.clone()), (false, raw)])
    {
        if !video {
            let _ = flv::parse_audio_tag(&tag);
            continue;
        }
        if let Ok(VideoTag::Frame { data, .. }) = flv::parse_video_tag(&tag) {
            for size in [1, 2, 4] {
                if let Ok(nals) = flv::split_nals(&data, size, 64) {
                    let total: usize = nals.iter().map(|n| n.len()).sum();
                    assert!(total <= data.len() && nals.iter().all(|n| !n.is_empty()));
                }
            }
        }
    }
}
