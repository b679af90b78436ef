use super::*;
use crate::transport::LowerTransport;

/// A server that performs the session's effects by recording them.
#[derive(Default)]
struct FakeServer {
    calls: Vec<String>,
    known_path: Option<&'static str>,
    refuse_announce: bool,
    refuse_auth: bool,
    /// Permission checks asked for, in order.
    checks: Vec<String>,
    tracks: Vec<usize>,
}

impl FakeServer {
    fn perform(&mut self, effect: &Effect) -> Result<Done, Refusal> {
        if let Some(check) = &effect.authorize {
            self.checks
                .push(format!("{} {:?} {}", check.method, check.role, check.path));
            if self.refuse_auth {
                return Err(Refusal::unauthorized("authentication required", vec![]));
            }
        }
        match &effect.action {
            Action::Describe { path } => self.describe(path).map(Done::Described),
            Action::Announce { path, stream } => {
                self.announce(path, stream).map(|()| Done::Announced)
            }
            Action::Setup {
                path,
                role,
                track,
                transport,
            } => Ok(Done::SetUp(self.setup(path, *role, *track, transport))),
            Action::Play { path } => Ok(Done::Playing(self.play(path))),
            Action::Record { path } => {
                self.calls.push(format!("record {path}"));
                Ok(Done::Recording)
            }
            Action::Teardown => {
                self.calls.push("teardown".into());
                Ok(Done::TornDown)
            }
        }
    }

    fn describe(&mut self, path: &str) -> Result<String, Refusal> {
        self.calls.push(format!("describe {path}"));
        if Some(path) == self.known_path {
            Ok("v=0\r\n".into())
        } else {
            Err(Refusal::new(
                StatusCode::NotFound,
                format!("no stream on path {path}"),
            ))
        }
    }

    fn announce(&mut self, path: &str, stream: &AnnouncedStream) -> Result<(), Refusal> {
        self.calls.push(format!(
            "announce {path} pt={} others={}",
            stream.video.payload_type,
            stream.others.len()
        ));
        if self.refuse_announce {
            return Err(Refusal::new(StatusCode::Forbidden, "path busy"));
        }
        Ok(())
    }

    fn setup(
        &mut self,
        path: &str,
        role: Role,
        track: usize,
        t: &TransportRequest,
    ) -> ServerTransport {
        self.calls
            .push(format!("setup {path} {role:?} track {track} {:?}", t.lower));
        self.tracks.push(track);
        let server_ports = matches!(t.lower, LowerTransport::Udp { .. }).then_some((7000, 7001));
        ServerTransport {
            server_ports,
            ssrc: Some(0x1234),
        }
    }

    fn play(&mut self, path: &str) -> Vec<(usize, PlayStart)> {
        self.calls.push(format!("play {path}"));
        self.tracks
            .iter()
            .map(|t| {
                let start = PlayStart {
                    seq: 100 + *t as u16,
                    rtptime: 5000,
                };
                (*t, start)
            })
            .collect()
    }
}

/// What the server shell does with one request: answer it, or perform its effect and answer
/// with the session's completion.
fn drive(
    session: &mut ServerSession,
    req: &Request<Vec<u8>>,
    server: &mut FakeServer,
) -> Response<Vec<u8>> {
    match session.handle(req) {
        Step::Respond(response) => response,
        Step::Perform(effect) => {
            let outcome = server.perform(&effect);
            session.complete(outcome)
        }
    }
}

fn request(
    method: Method,
    url: &str,
    cseq: u32,
    extra: &[(&'static str, &str)],
    body: &[u8],
) -> Request<Vec<u8>> {
    let mut builder = Request::builder(method, Version::V1_0)
        .request_uri(Url::parse(url).expect("test URL"))
        .header(headers::CSEQ, cseq.to_string());
    for (name, value) in extra {
        builder = builder.header(
            rtsp_types::HeaderName::from_static_str(name).expect("name"),
            *value,
        );
    }
    builder.build(body.to_vec())
}

fn status(resp: &Response<Vec<u8>>) -> u16 {
    resp.status().into()
}

const SDP: &str =
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n";

fn announce(session: &mut ServerSession, server: &mut FakeServer, path: &str) -> Response<Vec<u8>> {
    let url = format!("rtsp://127.0.0.1:8554/{path}");
    drive(
        session,
        &request(
            Method::Announce,
            &url,
            2,
            &[("Content-Type", "application/sdp")],
            SDP.as_bytes(),
        ),
        server,
    )
}

#[test]
fn ffmpeg_style_publish_over_tcp_reaches_recording() {
    let mut s = ServerSession::new("abc".into());
    let mut server = FakeServer::default();
    let r = drive(
        &mut s,
        &request(Method::Options, "rtsp://127.0.0.1:8554/live", 1, &[], b""),
        &mut server,
    );
    assert_eq!(status(&r), 200);
    assert!(r
        .header(&headers::PUBLIC)
        .is_some_and(|v| v.as_str().contains("RECORD")));
    assert_eq!(r.header(&headers::CSEQ).map(|v| v.as_str()), Some("1"));
    assert_eq!(status(&announce(&mut s, &mut server, "live")), 200);
    let r = drive(
        &mut s,
        &request(
            Method::Setup,
            "rtsp://127.0.0.1:8554/live/streamid=0",
            3,
            &[(
                "Transport",
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            )],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 200, "{r:?}");
    assert!(r
        .header(&headers::SESSION)
        .is_some_and(|v| v.as_str().starts_with("abc;timeout=")));
    assert!(r.header(&headers::TRANSPORT).is_some_and(
        |v| v.as_str().contains("interleaved=0-1") && v.as_str().contains("mode=record")
    ));
    let r = drive(
        &mut s,
        &request(
            Method::Record,
            "rtsp://127.0.0.1:8554/live",
            4,
            &[("Session", "abc")],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 200);
    assert!(s.is_streaming());
    assert_eq!(
        server.calls,
        [
            "announce live pt=96 others=0",
            "setup live Record track 0 Tcp { rtp_channel: 0, rtcp_channel: 1 }",
            "record live"
        ]
    );
}

#[test]
fn describe_setup_play_over_udp() {
    let mut s = ServerSession::new("s1".into());
    let mut server = FakeServer {
        known_path: Some("cam/1"),
        ..Default::default()
    };
    let r = drive(
        &mut s,
        &request(Method::Describe, "rtsp://h:8554/cam/1", 1, &[], b""),
        &mut server,
    );
    assert_eq!(status(&r), 200);
    assert_eq!(
        r.header(&headers::CONTENT_BASE).map(|v| v.as_str()),
        Some("rtsp://h:8554/cam/1/")
    );
    assert_eq!(
        r.header(&headers::CONTENT_TYPE).map(|v| v.as_str()),
        Some("application/sdp")
    );
    let r = drive(
        &mut s,
        &request(
            Method::Setup,
            "rtsp://h:8554/cam/1/trackID=0",
            2,
            &[("Transport", "RTP/AVP;unicast;client_port=5000-5001")],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 200);
    assert!(r
        .header(&headers::TRANSPORT)
        .is_some_and(|v| v.as_str().contains("server_port=7000-7001")));
    let r = drive(
        &mut s,
        &request(
            Method::Play,
            "rtsp://h:8554/cam/1/",
            3,
            &[("Session", "s1")],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 200);
    assert_eq!(
        r.header(&headers::RTP_INFO).map(|v| v.as_str()),
        Some("url=rtsp://h:8554/cam/1/trackID=0;seq=100;rtptime=5000")
    );
    assert_eq!(s.path(), Some("cam/1"));
}

#[test]
fn describe_of_unknown_path_is_404_with_reason() {
    let mut s = ServerSession::new("x".into());
    let r = drive(
        &mut s,
        &request(Method::Describe, "rtsp://h/none", 1, &[], b""),
        &mut FakeServer::default(),
    );
    assert_eq!(status(&r), 404);
    assert!(r.reason_phrase().contains("no stream on path none"));
    assert!(String::from_utf8_lossy(r.body()).contains("no stream"));
}

#[test]
fn play_and_record_without_setup_are_455() {
    for method in [Method::Play, Method::Record] {
        let mut s = ServerSession::new("x".into());
        let r = drive(
            &mut s,
            &request(method, "rtsp://h/live", 1, &[], b""),
            &mut FakeServer::default(),
        );
        assert_eq!(status(&r), 455);
    }
}

#[test]
fn setup_twice_is_refused() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer {
        known_path: Some("live"),
        ..Default::default()
    };
    let setup = |cseq| {
        request(
            Method::Setup,
            "rtsp://h/live/trackID=0",
            cseq,
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1")],
            b"",
        )
    };
    assert_eq!(status(&drive(&mut s, &setup(1), &mut server)), 200);
    assert_eq!(status(&drive(&mut s, &setup(2), &mut server)), 459);
}

#[test]
fn setup_across_paths_is_refused() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer::default();
    assert_eq!(status(&announce(&mut s, &mut server, "a")), 200);
    let r = drive(
        &mut s,
        &request(
            Method::Setup,
            "rtsp://h/b/streamid=0",
            3,
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1;mode=record")],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 400);
    assert!(r.reason_phrase().contains("announced"));
}

#[test]
fn record_mode_setup_without_announce_is_455() {
    let mut s = ServerSession::new("x".into());
    let r = drive(
        &mut s,
        &request(
            Method::Setup,
            "rtsp://h/live",
            1,
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1;mode=record")],
            b"",
        ),
        &mut FakeServer::default(),
    );
    assert_eq!(status(&r), 455);
}

#[test]
fn session_id_of_another_connection_is_454() {
    let mut s = ServerSession::new("mine".into());
    let mut server = FakeServer {
        known_path: Some("live"),
        ..Default::default()
    };
    let r = drive(
        &mut s,
        &request(
            Method::Play,
            "rtsp://h/live",
            1,
            &[("Session", "theirs")],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 454);
    // Even after our own SETUP, a foreign id stays unknown.
    drive(
        &mut s,
        &request(
            Method::Setup,
            "rtsp://h/live",
            2,
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1")],
            b"",
        ),
        &mut server,
    );
    let r = drive(
        &mut s,
        &request(
            Method::Play,
            "rtsp://h/live",
            3,
            &[("Session", "theirs")],
            b"",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 454);
    assert!(!server.calls.iter().any(|c| c.starts_with("play")));
}

#[test]
fn body_on_a_bodyless_method_is_400() {
    let mut s = ServerSession::new("x".into());
    let r = drive(
        &mut s,
        &request(Method::Options, "rtsp://h/live", 1, &[], b"surprise"),
        &mut FakeServer::default(),
    );
    assert_eq!(status(&r), 400);
}

#[test]
fn announce_needs_sdp_content_type_and_valid_sdp() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer::default();
    let r = drive(
        &mut s,
        &request(Method::Announce, "rtsp://h/live", 1, &[], SDP.as_bytes()),
        &mut server,
    );
    assert_eq!(status(&r), 415);
    let r = drive(
        &mut s,
        &request(
            Method::Announce,
            "rtsp://h/live",
            2,
            &[("Content-Type", "application/sdp")],
            b"garbage",
        ),
        &mut server,
    );
    assert_eq!(status(&r), 400);
    assert!(
        server.calls.is_empty(),
        "nothing reached the server: {:?}",
        server.calls
    );
}

#[test]
fn busy_path_refusal_is_passed_through() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer {
        refuse_announce: true,
        ..Default::default()
    };
    assert_eq!(status(&announce(&mut s, &mut server, "live")), 403);
}

#[test]
fn unsupported_transport_is_461() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer {
        known_path: Some("live"),
        ..Default::default()
    };
    for (i, t) in [
        "RTP/AVP/TCP;interleaved=1-2",
        "RTP/AVP;client_port=0-1",
        "RTP/AVP;multicast",
    ]
    .iter()
    .enumerate()
    {
        let r = drive(
            &mut s,
            &request(
                Method::Setup,
                "rtsp://h/live",
                i as u32,
                &[("Transport", t)],
                b"",
            ),
            &mut server,
        );
        assert_eq!(status(&r), 461, "{t}");
    }
    assert!(server.calls.is_empty());
}

#[test]
fn bad_paths_are_400() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer::default();
    for url in [
        "rtsp://h/",
        "rtsp://h/a//b",
        "rtsp://h/a%5Cb",
        "rtsp://h/a%00b",
        "rtsp://h/a b",
    ] {
        let r = drive(
            &mut s,
            &request(Method::Describe, url, 1, &[], b""),
            &mut server,
        );
        assert_eq!(status(&r), 400, "{url}");
    }
    let long = format!("rtsp://h/{}", "a".repeat(MAX_PATH_LEN + 1));
    assert_eq!(
        status(&drive(
            &mut s,
            &request(Method::Describe, &long, 1, &[], b""),
            &mut server
        )),
        400
    );
    assert!(server.calls.is_empty());
}

#[test]
fn dot_segments_are_resolved_before_they_reach_the_server() {
    // The URL parser resolves `..` and `%2e%2e` per RFC 3986: no path escapes its prefix.
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer::default();
    for url in [
        "rtsp://h/a/../b",
        "rtsp://h/%2e%2e/b",
        "rtsp://h/a/%2E%2E/b",
        "rtsp://h/./b",
    ] {
        let r = drive(
            &mut s,
            &request(Method::Describe, url, 1, &[], b""),
            &mut server,
        );
        assert!(matches!(status(&r), 400 | 404), "{url}");
    }
    assert!(
        server.calls.iter().all(|c| c == "describe b"),
        "{:?}",
        server.calls
    );
}

#[test]
fn unknown_methods_get_501_and_pause_455() {
    let mut s = ServerSession::new("x".into());
    let r = drive(
        &mut s,
        &request(
            Method::Extension("FLY".into()),
            "rtsp://h/live",
            1,
            &[],
            b"",
        ),
        &mut FakeServer::default(),
    );
    assert_eq!(status(&r), 501);
    let r = drive(
        &mut s,
        &request(Method::Pause, "rtsp://h/live", 2, &[], b""),
        &mut FakeServer::default(),
    );
    assert_eq!(status(&r), 455);
}

#[test]
fn rtsp_2_requests_get_505() {
    let mut s = ServerSession::new("x".into());
    let req = Request::builder(Method::Options, Version::V2_0)
        .header(headers::CSEQ, "1")
        .build(Vec::new());
    assert_eq!(
        status(&drive(&mut s, &req, &mut FakeServer::default())),
        505
    );
}

#[test]
fn setup_teardown_churn_leaves_no_state_behind() {
    let mut s = ServerSession::new("x".into());
    let mut server = FakeServer {
        known_path: Some("live"),
        ..Default::default()
    };
    for i in 0..20_000u32 {
        let setup = request(
            Method::Setup,
            "rtsp://h/live",
            i * 2,
            &[("Transport", "RTP/AVP/TCP;interleaved=0-1")],
            b"",
        );
        assert_eq!(status(&drive(&mut s, &setup, &mut server)), 200);
        let teardown = request(
            Method::Teardown,
            "rtsp://h/live",
            i * 2 + 1,
            &[("Session", "x")],
            b"",
        );
        assert_eq!(status(&drive(&mut s, &teardown, &mut server)), 200);
        server.calls.clear();
    }
    assert!(s.transport().is_none());
    assert!(!s.is_streaming());
}

#[test]
fn reasons_cannot_inject_headers() {
    let resp = refusal_response(&Refusal::new(StatusCode::BadRequest, "bad\r\nX-Evil: 1"));
    let mut out = Vec::new();
    resp.write(&mut out).expect("writes");
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("\r\nX-Evil"), "{text}");
}

const AV_SDP: &str =
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:streamid=1\r\n";

fn setup_with(url: &str, cseq: u32, transport: &str, session: Option<&str>) -> Request<Vec<u8>> {
    let mut extra = vec![("Transport", transport)];
    if let Some(id) = session {
        extra.push(("Session", id));
    }
    request(Method::Setup, url, cseq, &extra, b"")
}

#[test]
fn a_publisher_sets_up_each_announced_track_by_its_control() {
    let mut s = ServerSession::new("av".into());
    let mut server = FakeServer::default();
    let r = drive(
        &mut s,
        &request(
            Method::Announce,
            "rtsp://h/av",
            1,
            &[("Content-Type", "application/sdp")],
            AV_SDP.as_bytes(),
        ),
        &mut server,
    );
    assert_eq!(status(&r), 200);
    let audio = setup_with(
        "rtsp://h/av/streamid=1",
        2,
        "RTP/AVP/TCP;unicast;interleaved=2-3;mode=record",
        None,
    );
    assert_eq!(status(&drive(&mut s, &audio, &mut server)), 200);
    let video = setup_with(
        "rtsp://h/av/streamid=0",
        3,
        "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
        Some("av"),
    );
    assert_eq!(status(&drive(&mut s, &video, &mut server)), 200);
    let unknown = setup_with(
        "rtsp://h/av/streamid=7",
        4,
        "RTP/AVP/TCP;unicast;interleaved=4-5;mode=record",
        Some("av"),
    );
    let r = drive(&mut s, &unknown, &mut server);
    assert_eq!(status(&r), 400);
    assert!(r.reason_phrase().contains("matches no track"), "{r:?}");
    let record = request(Method::Record, "rtsp://h/av", 5, &[("Session", "av")], b"");
    assert_eq!(status(&drive(&mut s, &record, &mut server)), 200);
    assert_eq!(
        server.calls,
        [
            "announce av pt=96 others=1",
            "setup av Record track 1 Tcp { rtp_channel: 2, rtcp_channel: 3 }",
            "setup av Record track 0 Tcp { rtp_channel: 0, rtcp_channel: 1 }",
            "record av"
        ]
    );
}

#[test]
fn a_reader_sets_up_two_tracks_and_rtp_info_lists_both() {
    let mut s = ServerSession::new("r".into());
    let mut server = FakeServer {
        known_path: Some("av"),
        ..Default::default()
    };
    let t0 = setup_with(
        "rtsp://h/av/trackID=0",
        1,
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    );
    assert_eq!(status(&drive(&mut s, &t0, &mut server)), 200);
    let same_ports = setup_with(
        "rtsp://h/av/trackID=1",
        2,
        "RTP/AVP;unicast;client_port=5000-5001",
        Some("r"),
    );
    assert_eq!(status(&drive(&mut s, &same_ports, &mut server)), 461);
    let over_tcp = setup_with(
        "rtsp://h/av/trackID=1",
        3,
        "RTP/AVP/TCP;interleaved=2-3",
        Some("r"),
    );
    let r = drive(&mut s, &over_tcp, &mut server);
    assert_eq!(status(&r), 461);
    assert!(r.reason_phrase().contains("same lower transport"), "{r:?}");
    let t1 = setup_with(
        "rtsp://h/av/trackID=1",
        4,
        "RTP/AVP;unicast;client_port=5002-5003",
        Some("r"),
    );
    assert_eq!(status(&drive(&mut s, &t1, &mut server)), 200);
    let again = setup_with(
        "rtsp://h/av/trackID=1",
        5,
        "RTP/AVP;unicast;client_port=5004-5005",
        Some("r"),
    );
    assert_eq!(status(&drive(&mut s, &again, &mut server)), 459);
    let other_path = setup_with(
        "rtsp://h/b/trackID=1",
        6,
        "RTP/AVP;unicast;client_port=5006-5007",
        Some("r"),
    );
    assert_eq!(status(&drive(&mut s, &other_path, &mut server)), 459);
    let play = request(Method::Play, "rtsp://h/av", 7, &[("Session", "r")], b"");
    let r = drive(&mut s, &play, &mut server);
    assert_eq!(status(&r), 200);
    assert_eq!(
        r.header(&headers::RTP_INFO).map(|v| v.as_str()),
        Some("url=rtsp://h/av/trackID=0;seq=100;rtptime=5000,url=rtsp://h/av/trackID=1;seq=101;rtptime=5000")
    );
    let setup_while_playing = setup_with(
        "rtsp://h/av/trackID=2",
        8,
        "RTP/AVP;unicast;client_port=5008-5009",
        Some("r"),
    );
    assert_eq!(
        status(&drive(&mut s, &setup_while_playing, &mut server)),
        455
    );
}

#[test]
fn play_star_is_400_and_starts_nothing() {
    let mut s = ServerSession::new("p".into());
    let mut server = FakeServer {
        known_path: Some("live"),
        ..Default::default()
    };
    let t0 = setup_with("rtsp://h/live", 1, "RTP/AVP/TCP;interleaved=0-1", None);
    assert_eq!(status(&drive(&mut s, &t0, &mut server)), 200);
    let star = rtsp_types::Request::builder(Method::Play, Version::V1_0)
        .header(headers::CSEQ, "2")
        .header(headers::SESSION, "p")
        .build(Vec::new());
    let Step::Respond(r) = s.handle(&star) else {
        panic!("PLAY * must be answered without any effect");
    };
    assert_eq!(status(&r), 400);
    assert!(!s.is_streaming());
    assert!(
        !server.calls.iter().any(|c| c.starts_with("play")),
        "{:?}",
        server.calls
    );
}

#[test]
fn record_without_the_video_track_is_455() {
    let mut s = ServerSession::new("a".into());
    let mut server = FakeServer::default();
    let announce = request(
        Method::Announce,
        "rtsp://h/av",
        1,
        &[("Content-Type", "application/sdp")],
        AV_SDP.as_bytes(),
    );
    assert_eq!(status(&drive(&mut s, &announce, &mut server)), 200);
    let audio = setup_with(
        "rtsp://h/av/streamid=1",
        2,
        "RTP/AVP;unicast;client_port=5000-5001;mode=record",
        None,
    );
    assert_eq!(status(&drive(&mut s, &audio, &mut server)), 200);
    let record = request(Method::Record, "rtsp://h/av", 3, &[("Session", "a")], b"");
    let r = drive(&mut s, &record, &mut server);
    assert_eq!(status(&r), 455);
    assert!(r.reason_phrase().contains("video"), "{r:?}");
    assert!(!server.calls.iter().any(|c| c.starts_with("record")));
}

fn announce_request(cseq: u32) -> Request<Vec<u8>> {
    request(
        Method::Announce,
        "rtsp://h/live",
        cseq,
        &[("Content-Type", "application/sdp")],
        SDP.as_bytes(),
    )
}

#[test]
fn a_publish_is_a_sequence_of_effects_and_state_changes_only_on_their_success() {
    let mut s = ServerSession::new("e".into());
    let Step::Perform(effect) = s.handle(&announce_request(1)) else {
        panic!("ANNOUNCE needs the server");
    };
    let check = effect.authorize.expect("ANNOUNCE is checked");
    assert_eq!((check.role, check.path.as_str()), (Role::Record, "live"));
    assert_eq!(check.method, "ANNOUNCE");
    let Action::Announce { path, stream } = effect.action else {
        panic!("not an announce: {:?}", effect.action);
    };
    assert_eq!((path.as_str(), stream.others.len()), ("live", 0));
    assert_eq!(status(&s.complete(Ok(Done::Announced))), 200);

    let setup = setup_with(
        "rtsp://h/live/streamid=0",
        2,
        "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
        None,
    );
    let Step::Perform(effect) = s.handle(&setup) else {
        panic!("SETUP needs the server");
    };
    assert!(
        matches!(
            effect.action,
            Action::Setup { ref path, role: Role::Record, track: 0, .. } if path == "live"
        ),
        "{:?}",
        effect.action
    );
    assert_eq!(s.path(), None, "nothing is set up before the server did it");
    let server = ServerTransport {
        server_ports: None,
        ssrc: Some(7),
    };
    let r = s.complete(Ok(Done::SetUp(server)));
    assert_eq!(status(&r), 200);
    assert_eq!(r.header(&headers::CSEQ).map(|v| v.as_str()), Some("2"));
    assert_eq!(s.path(), Some("live"));

    let record = request(Method::Record, "rtsp://h/live", 3, &[("Session", "e")], b"");
    let Step::Perform(effect) = s.handle(&record) else {
        panic!("RECORD needs the server");
    };
    assert!(effect.authorize.is_none(), "SETUP was checked already");
    assert!(matches!(effect.action, Action::Record { ref path } if path == "live"));
    assert!(
        !s.is_streaming(),
        "not recording before the server accepts media"
    );
    assert_eq!(status(&s.complete(Ok(Done::Recording))), 200);
    assert!(s.is_streaming());
}

#[test]
fn a_refused_effect_leaves_the_session_as_it_was() {
    let mut s = ServerSession::new("r".into());
    let setup = setup_with(
        "rtsp://h/live",
        1,
        "RTP/AVP;unicast;client_port=5000-5001",
        None,
    );
    assert!(matches!(s.handle(&setup), Step::Perform(_)));
    let r = s.complete(Err(Refusal::new(
        StatusCode::InternalServerError,
        "no UDP ports available",
    )));
    assert_eq!(status(&r), 500);
    assert_eq!(r.reason_phrase(), "no UDP ports available");
    assert_eq!(s.path(), None);
    assert!(s.transport().is_none());
    // Nothing was set up, so PLAY is answered without asking the server anything.
    let play = request(Method::Play, "rtsp://h/live", 2, &[], b"");
    let Step::Respond(r) = s.handle(&play) else {
        panic!("PLAY without SETUP must not reach the server");
    };
    assert_eq!(status(&r), 455);
}

#[test]
fn a_refused_permission_is_the_answer_and_nothing_is_claimed() {
    let mut s = ServerSession::new("a".into());
    let mut server = FakeServer {
        refuse_auth: true,
        ..Default::default()
    };
    let r = drive(&mut s, &announce_request(1), &mut server);
    assert_eq!(status(&r), 401);
    assert_eq!(server.checks, ["ANNOUNCE Record live"]);
    assert!(server.calls.is_empty(), "{:?}", server.calls);
    // The announce was not remembered: a record-mode SETUP is still "before ANNOUNCE".
    server.refuse_auth = false;
    let setup = setup_with(
        "rtsp://h/live/streamid=0",
        2,
        "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
        None,
    );
    let r = drive(&mut s, &setup, &mut server);
    assert_eq!(status(&r), 455, "{r:?}");
}

#[test]
fn a_malformed_request_is_refused_before_any_permission_check() {
    let mut s = ServerSession::new("m".into());
    let mut server = FakeServer::default();
    let bad_sdp = request(
        Method::Announce,
        "rtsp://h/live",
        1,
        &[("Content-Type", "application/sdp")],
        b"v=0\r\nm=video\r\n",
    );
    assert_eq!(status(&drive(&mut s, &bad_sdp, &mut server)), 400);
    let bad_transport = setup_with("rtsp://h/live", 2, "RTP/AVP;multicast", None);
    assert_eq!(status(&drive(&mut s, &bad_transport, &mut server)), 461);
    assert!(server.checks.is_empty(), "{:?}", server.checks);
    assert!(server.calls.is_empty(), "{:?}", server.calls);
}

#[test]
fn an_outcome_that_answers_another_effect_is_500_and_changes_nothing() {
    let mut s = ServerSession::new("x".into());
    let setup = setup_with("rtsp://h/live", 1, "RTP/AVP/TCP;interleaved=0-1", None);
    assert!(matches!(s.handle(&setup), Step::Perform(_)));
    // A second request before the first is complete is refused, not interleaved.
    let Step::Respond(busy) = s.handle(&request(Method::Options, "rtsp://h/live", 2, &[], b""))
    else {
        panic!("a request while another is pending must be answered at once");
    };
    assert_eq!(status(&busy), 500);
    let r = s.complete(Ok(Done::Recording));
    assert_eq!(status(&r), 500);
    assert_eq!(s.path(), None);
    assert!(!s.is_streaming());
    assert_eq!(
        status(&s.complete(Ok(Done::Announced))),
        500,
        "nothing pending"
    );
}

#[test]
fn teardown_ends_the_session_through_the_server() {
    let mut s = ServerSession::new("t".into());
    let mut server = FakeServer {
        known_path: Some("live"),
        ..Default::default()
    };
    let setup = setup_with("rtsp://h/live", 1, "RTP/AVP/TCP;interleaved=0-1", None);
    assert_eq!(status(&drive(&mut s, &setup, &mut server)), 200);
    let play = request(Method::Play, "rtsp://h/live", 2, &[("Session", "t")], b"");
    assert_eq!(status(&drive(&mut s, &play, &mut server)), 200);
    assert!(s.is_streaming());
    let teardown = request(
        Method::Teardown,
        "rtsp://h/live",
        3,
        &[("Session", "t")],
        b"",
    );
    let Step::Perform(effect) = s.handle(&teardown) else {
        panic!("TEARDOWN must stop what the server started");
    };
    assert!(matches!(effect.action, Action::Teardown));
    assert_eq!(status(&s.complete(Ok(Done::TornDown))), 200);
    assert!(!s.is_streaming());
    assert_eq!(s.path(), None);
}
