//! What a camera answers livefeed's pull client: the bytes are read as the server's side of
//! the connection, and each response is checked against the request the client's session sent
//! (OPTIONS, DESCRIBE, a SETUP per track, PLAY, as `RtspPull::connect` does). Never a panic;
//! a DESCRIBE answered 2xx has its SDP and Content-Base turned into track URLs (errors allowed);
//! a SETUP answered 2xx and taken has set the session id; the SETUP reply's Transport is read
//! for server ports and channels.
//!
//! Shared by the `rtsp_pull_responses` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_media::sdp::parse_announced;
use livefeed_rtsp::client_session::{track_url, ClientSession};
use livefeed_rtsp::framing::{Frame, FrameReader, Limits};
use livefeed_rtsp::transport::{self, LowerTransport};
use rtsp_types::headers::{self, TypedHeader};
use rtsp_types::Url;

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let Ok(url) = Url::parse("rtsp://user:pa%3Ass@127.0.0.1:8554/stream1") else {
        return;
    };
    let mut session = ClientSession::new(url);
    let mut reader = FrameReader::new(Limits::default());
    reader.push(data);
    let mut step = 0usize;
    let _first = session.options();
    while let Ok(Some(frame)) = reader.next_frame() {
        let Frame::Response(resp) = frame else {
            continue;
        };
        let taken = match session.check_response(&resp) {
            Ok(Some(_retry)) => continue, // the same request again, with credentials
            Ok(None) => true,
            Err(_) => false,
        };
        if !taken {
            return;
        }
        step += 1;
        match step {
            1 => {
                let _ = session.describe();
            }
            2 => {
                if let Ok(stream) = parse_announced(resp.body()) {
                    let base = resp
                        .header(&headers::CONTENT_BASE)
                        .map(|v| v.as_str().to_string());
                    for control in stream.controls() {
                        let _ = track_url(session.url(), base.as_deref(), control);
                    }
                }
                let lower = LowerTransport::Tcp {
                    rtp_channel: 0,
                    rtcp_channel: 1,
                };
                let _ = session.setup(session.url().clone(), &lower, false);
            }
            3 => {
                assert!(
                    session.session_id().is_some(),
                    "a SETUP taken without a session"
                );
                if let Ok(Some(t)) = headers::Transports::from_headers(&resp) {
                    let _ = transport::server_ports(&t);
                    let _ = transport::interleaved_channels(&t);
                }
                let _ = session.play();
            }
            _ => {
                let _ = session.keepalive();
            }
        }
    }
}
