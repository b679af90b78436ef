use super::*;

const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn au(n: u64, keyframe: bool) -> AccessUnit {
    let slice: &'static [u8] = if keyframe {
        &[0x65, 0x88]
    } else {
        &[0x41, 0x9a]
    };
    let mut nals = vec![Bytes::from_static(slice)];
    if keyframe {
        nals.insert(0, Bytes::from_static(PPS));
        nals.insert(0, Bytes::from_static(SPS));
    }
    AccessUnit {
        codec: livefeed_media::VideoCodec::H264,
        nals,
        pts: n * 3000,
        keyframe,
        capture: None,
    }
}

fn info(remote: &str) -> PublisherInfo {
    PublisherInfo {
        protocol: "rtsp/tcp".into(),
        remote: remote.into(),
    }
}

fn drain(sub: &mut Subscription) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    while let Ok(d) = sub.rx.try_recv() {
        out.push((d.frame.video().expect("video").pts / 3000, d.from_cache));
    }
    out
}

#[tokio::test]
async fn a_late_reader_starts_at_the_last_keyframe() {
    let hub = Hub::new(None, HubLimits::default());
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    for n in 0..5 {
        publisher.publish(au(n, n % 3 == 0), Instant::now());
    }
    let mut sub = hub.subscribe("live").expect("served");
    publisher.publish(au(5, false), Instant::now());
    assert_eq!(drain(&mut sub), [(3, true), (4, true), (5, false)]);
}

#[tokio::test]
async fn a_reader_joining_before_any_keyframe_waits_for_one() {
    let hub = Hub::new(None, HubLimits::default());
    let mut sub = hub.subscribe("live").expect("served");
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    publisher.publish(au(0, false), Instant::now());
    publisher.publish(au(1, true), Instant::now());
    assert_eq!(drain(&mut sub), [(1, false)]);
    assert_eq!(sub.drops(), 1);
}

#[tokio::test]
async fn a_slow_reader_skips_to_the_next_keyframe_and_others_get_everything() {
    let limits = HubLimits {
        reader_queue: 2,
        ..HubLimits::default()
    };
    let hub = Hub::new(None, limits);
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    publisher.publish(au(0, true), Instant::now());
    let mut slow = hub.subscribe("live").expect("served");
    let mut fast = hub.subscribe("live").expect("served");
    let mut fast_got = drain(&mut fast);
    // The slow reader reads nothing while frames 1..=5 arrive: its queue (cache + 2) fills.
    for n in 1..6 {
        publisher.publish(au(n, false), Instant::now());
        fast_got.extend(drain(&mut fast));
    }
    let first: Vec<u64> = drain(&mut slow).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        first,
        [0, 1, 2],
        "the queue held the cached keyframe and two more"
    );
    // It has caught up, but frames 6 and 7 are not keyframes: it keeps skipping until 8.
    for n in 6..10 {
        publisher.publish(au(n, n == 8), Instant::now());
        fast_got.extend(drain(&mut fast));
    }
    let then: Vec<u64> = drain(&mut slow).into_iter().map(|(n, _)| n).collect();
    assert_eq!(then, [8, 9], "resumes at the next keyframe");
    assert_eq!(slow.drops(), 5, "frames 3, 4, 5, 6 and 7 were skipped");
    assert_eq!(
        fast_got.len(),
        10,
        "the fast reader got every frame: {fast_got:?}"
    );
    assert_eq!(fast.drops(), 0);
}

#[tokio::test]
async fn a_second_publisher_is_refused_until_the_first_leaves() {
    let hub = Hub::new(None, HubLimits::default());
    let first = hub
        .claim_publisher("live", info("10.0.0.1:5"), None)
        .expect("claimed");
    let err = hub
        .claim_publisher("live", info("10.0.0.2:6"), None)
        .err()
        .expect("busy");
    assert!(err.to_string().contains("10.0.0.1:5"), "{err}");
    drop(first);
    assert!(hub
        .claim_publisher("live", info("10.0.0.2:6"), None)
        .is_ok());
}

#[tokio::test]
async fn readers_survive_a_publisher_leaving_and_returning() {
    let hub = Hub::new(None, HubLimits::default());
    let mut sub = hub.subscribe("live").expect("served");
    let first = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    first.publish(au(0, true), Instant::now());
    drop(first);
    assert!(
        hub.stream_info("live").is_none(),
        "no stream while unpublished"
    );
    let second = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed again");
    second.publish(au(1, true), Instant::now());
    assert_eq!(drain(&mut sub), [(0, false), (1, false)]);
}

#[tokio::test]
async fn keyframes_without_parameter_sets_get_the_known_ones() {
    let hub = Hub::new(None, HubLimits::default());
    let stream = StreamInfo::new(Bytes::from_static(SPS), Bytes::from_static(PPS));
    let publisher = hub
        .claim_publisher("live", info("a"), Some(stream))
        .expect("claimed");
    let mut sub = hub.subscribe("live").expect("served");
    let bare = AccessUnit {
        codec: livefeed_media::VideoCodec::H264,
        nals: vec![Bytes::from_static(&[0x65, 1])],
        pts: 0,
        keyframe: true,
        capture: None,
    };
    publisher.publish(bare, Instant::now());
    let d = sub.rx.try_recv().expect("delivered");
    let types: Vec<u8> = d
        .frame
        .video()
        .expect("video")
        .nals
        .iter()
        .map(|n| n[0] & 0x1f)
        .collect();
    assert_eq!(types, [7, 8, 5]);
}

#[tokio::test]
async fn only_configured_paths_are_served_when_a_list_is_given() {
    let hub = Hub::new(Some(vec!["cam".into()]), HubLimits::default());
    assert!(hub.subscribe("other").is_none());
    assert!(matches!(
        hub.claim_publisher("other", info("a"), None),
        Err(PublishError::UnknownPath(_))
    ));
    assert!(hub.subscribe("cam").is_some());
}

#[tokio::test]
async fn dropped_subscriptions_leave_the_path() {
    let hub = Hub::new(None, HubLimits::default());
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    let subs: Vec<_> = (0..100)
        .map(|_| hub.subscribe("live").expect("served"))
        .collect();
    assert_eq!(hub.snapshot()[0].readers.len(), 100);
    drop(subs);
    assert_eq!(hub.snapshot()[0].readers.len(), 0);
    publisher.publish(au(0, true), Instant::now());
}

#[tokio::test]
async fn a_returning_publisher_continues_the_timeline() {
    let hub = Hub::new(None, HubLimits::default());
    let mut sub = hub.subscribe("live").expect("served");
    let first = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    for n in 100..103 {
        first.publish(au(n, n == 100), Instant::now());
    }
    drop(first);
    // The new publisher's timestamps restart at 0; readers see them continue.
    let second = hub
        .claim_publisher("live", info("b"), None)
        .expect("claimed");
    for n in 0..2 {
        second.publish(au(n, n == 0), Instant::now());
    }
    let pts: Vec<u64> = drain(&mut sub).into_iter().map(|(n, _)| n).collect();
    assert_eq!(pts, [100, 101, 102, 103, 104]);
}

#[tokio::test]
async fn readers_are_disconnected_when_no_publisher_returns_within_the_grace() {
    let limits = HubLimits {
        publisher_grace: std::time::Duration::from_millis(50),
        ..HubLimits::default()
    };
    let hub = Hub::new(None, limits);
    let mut waiting = hub.subscribe("live").expect("served");
    let mut rescued = hub.subscribe("back").expect("served");
    for path in ["live", "back"] {
        let p = hub.claim_publisher(path, info("a"), None).expect("claimed");
        p.publish(au(0, true), Instant::now());
    }
    // "back" gets a new publisher within the grace; "live" does not.
    let _returned = hub
        .claim_publisher("back", info("b"), None)
        .expect("claimed");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drain(&mut waiting);
    assert!(
        waiting.recv().await.is_none(),
        "the reader's subscription ended"
    );
    drain(&mut rescued);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), rescued.recv())
            .await
            .is_err(),
        "a reader whose publisher came back stays subscribed"
    );
}

#[tokio::test]
async fn after_loss_readers_and_the_cache_skip_to_the_next_keyframe() {
    let hub = Hub::new(None, HubLimits::default());
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    let mut sub = hub.subscribe("live").expect("served");
    publisher.publish_received(au(0, true), Instant::now(), false);
    publisher.publish_received(au(1, false), Instant::now(), false);
    // Frame 2 was lost: 3 and 4 may reference it.
    publisher.publish_received(au(3, false), Instant::now(), true);
    publisher.publish_received(au(4, false), Instant::now(), false);
    let mut late = hub.subscribe("live").expect("served");
    publisher.publish_received(au(5, true), Instant::now(), false);
    publisher.publish_received(au(6, false), Instant::now(), false);
    let seen: Vec<u64> = drain(&mut sub).into_iter().map(|(n, _)| n).collect();
    assert_eq!(seen, [0, 1, 5, 6]);
    assert_eq!(
        drain(&mut late),
        [(0, true), (1, true), (5, false), (6, false)],
        "the cache never held 3 or 4"
    );
    let snapshot = hub.snapshot();
    assert_eq!(snapshot[0].skipped_after_loss, 2);
    // Loss on a keyframe itself does not skip it.
    publisher.publish_received(au(7, true), Instant::now(), true);
    assert_eq!(drain(&mut sub), [(7, false)]);
}

#[tokio::test]
async fn keyframe_requests_reach_the_publisher_from_readers_and_from_loss() {
    let hub = Hub::new(None, HubLimits::default());
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    let mut requests = publisher.keyframe_requests();
    let sub = hub.subscribe("live").expect("served");
    publisher.publish_received(au(0, true), Instant::now(), false);
    assert!(!requests.has_changed().unwrap(), "nobody asked yet");
    sub.request_keyframe();
    assert!(requests.has_changed().unwrap(), "a reader asked");
    requests.borrow_and_update();
    // Loss asks once, when the video breaks, not for every frame skipped after it.
    publisher.publish_received(au(2, false), Instant::now(), true);
    assert!(requests.has_changed().unwrap(), "loss asked");
    requests.borrow_and_update();
    publisher.publish_received(au(3, false), Instant::now(), false);
    assert!(!requests.has_changed().unwrap());
    assert_eq!(hub.snapshot()[0].keyframe_requests, 2);
}

#[tokio::test]
async fn a_new_publisher_of_another_codec_disconnects_client_readers_only() {
    let hub = Hub::new(None, HubLimits::default());
    let first = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    first.publish_received(au(0, true), Instant::now(), false);
    let client = ReaderInfo {
        protocol: "webrtc".into(),
        remote: "192.0.2.7:5000".into(),
    };
    let mut viewer = hub.subscribe_as("live", client).expect("served");
    let mut muxer = hub.subscribe("live").expect("served");
    drop(first);
    // Within the publisher grace, an H.265 publisher takes the path.
    let second = hub
        .claim_publisher("live", info("b"), None)
        .expect("claimed");
    let hevc = AccessUnit {
        codec: VideoCodec::H265,
        nals: vec![Bytes::from_static(&[19 << 1, 1, 0xaf])],
        pts: 0,
        keyframe: true,
        capture: None,
    };
    second.publish_received(hevc, Instant::now(), false);
    drain(&mut viewer);
    assert!(viewer.recv().await.is_none(), "the H.264 viewer is let go");
    let got: Vec<VideoCodec> = std::iter::from_fn(|| muxer.rx.try_recv().ok())
        .filter_map(|d| d.frame.video().map(|au| au.codec))
        .collect();
    assert_eq!(
        got.last(),
        Some(&VideoCodec::H265),
        "the server's own output follows"
    );
}

#[tokio::test]
async fn a_new_publisher_with_other_tracks_disconnects_client_readers() {
    let hub = Hub::new(None, HubLimits::default());
    let opus = TrackDescription::new("audio", 97, Some("opus/48000/2"), None, None).unwrap();
    let aac =
        TrackDescription::new("audio", 97, Some("MPEG4-GENERIC/48000/2"), None, None).unwrap();
    let stream = || {
        Some(StreamInfo::new(
            Bytes::from_static(SPS),
            Bytes::from_static(PPS),
        ))
    };
    let first = hub
        .claim_publisher_with("live", info("a"), stream(), vec![opus.clone()])
        .expect("claimed");
    first.publish_received(au(0, true), Instant::now(), false);
    let client = ReaderInfo {
        protocol: "rtsp/tcp".into(),
        remote: "192.0.2.7:5000".into(),
    };
    let mut same = hub.subscribe_as("live", client.clone()).expect("served");
    drop(first);
    // The same tracks again: readers stay.
    let second = hub
        .claim_publisher_with("live", info("b"), stream(), vec![opus])
        .expect("claimed");
    second.publish_received(au(0, true), Instant::now(), false);
    drain(&mut same);
    assert!(
        matches!(
            same.rx.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty)
        ),
        "still subscribed, nothing pending"
    );
    drop(second);
    // AAC where Opus was: the reader set up Opus, so it is let go.
    let _third = hub
        .claim_publisher_with("live", info("c"), stream(), vec![aac])
        .expect("claimed");
    drain(&mut same);
    assert!(same.recv().await.is_none(), "the reader is let go");
}

fn packet(track: usize, pts: u64) -> TrackPacket {
    TrackPacket {
        track,
        pts,
        payload: Bytes::from_static(b"audio"),
        marker: true,
        capture_unix_ns: None,
    }
}

fn aac_track() -> TrackDescription {
    TrackDescription::new("audio", 97, Some("MPEG4-GENERIC/48000/2"), None, None).expect("valid")
}

#[tokio::test]
async fn other_tracks_follow_the_video_timeline_and_its_keyframes() {
    let hub = Hub::new(None, HubLimits::default());
    let first = hub
        .claim_publisher_with("live", info("a"), None, vec![aac_track()])
        .expect("claimed");
    let mut sub = hub.subscribe("live").expect("served");
    assert!(
        first.publish_packet(packet(1, 0), Instant::now()),
        "before video: dropped"
    );
    first.publish(au(0, true), Instant::now());
    first.publish_packet(packet(1, 1024), Instant::now());
    first.publish_packet(packet(2, 0), Instant::now()); // never announced: dropped
    first.publish(au(1, false), Instant::now());
    let kinds: Vec<String> = std::iter::from_fn(|| sub.rx.try_recv().ok())
        .map(|d| match &d.frame.media {
            Media::Video(au) => format!("v{}", au.pts / 3000),
            Media::Packet(p) => format!("t{}@{}", p.track, p.pts),
        })
        .collect();
    assert_eq!(kinds, ["v0", "t1@1024", "v1"]);
    let late = hub.subscribe("live").expect("served");
    assert_eq!(late.rx.len(), 3, "the GOP cache holds the audio too");
    let stream = hub.stream_info("live").expect("learnt from the keyframe");
    assert_eq!(stream.others, [aac_track()], "the tracks are described");
    drop(first);
    // A new publisher continues the timeline: video one frame after 3000, audio by the same
    // time in its own clock (6000 ticks at 90 kHz = 3200 at 48 kHz).
    let second = hub
        .claim_publisher_with("live", info("b"), None, vec![aac_track()])
        .expect("claimed");
    second.publish(au(0, true), Instant::now());
    second.publish_packet(packet(1, 0), Instant::now());
    let media: Vec<u64> = std::iter::from_fn(|| sub.rx.try_recv().ok())
        .map(|d| match &d.frame.media {
            Media::Video(au) => au.pts,
            Media::Packet(p) => p.pts,
        })
        .collect();
    assert_eq!(media, [6000, 3200]);
    let snapshot = hub.snapshot();
    let others = &snapshot[0].stream.as_ref().expect("stream").others;
    assert_eq!(others.len(), 1);
}

/// The first RTP sequence number of each video frame `sub` has queued.
fn rtp_seqs(sub: &mut Subscription) -> Vec<u16> {
    let mut out = Vec::new();
    while let Ok(d) = sub.rx.try_recv() {
        let rtp = d.frame.rtp().expect("packetized for an RTSP reader");
        out.push(rtp.start().seq);
    }
    out
}

fn rtsp_reader() -> ReaderInfo {
    ReaderInfo {
        protocol: "rtsp/tcp".into(),
        remote: "127.0.0.1:1".into(),
    }
}

#[tokio::test]
async fn rtsp_readers_share_one_sequence_that_continues_across_a_time_without_them() {
    let hub = Hub::new(None, HubLimits::default());
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    for n in 0..3 {
        publisher.publish(au(n, n == 0), Instant::now());
    }
    // The first RTSP reader gets the GOP cache packetized, and RTP-Info of its first frame.
    let (mut first, starts) = hub
        .subscribe_rtsp("live", rtsp_reader(), &[0], None)
        .expect("subscribed");
    publisher.publish(au(3, false), Instant::now());
    let (mut second, _) = hub
        .subscribe_rtsp("live", rtsp_reader(), &[0], None)
        .expect("subscribed");
    publisher.publish(au(4, false), Instant::now());
    let a = rtp_seqs(&mut first);
    let b = rtp_seqs(&mut second);
    assert_eq!(a.len(), 5);
    assert_eq!(
        starts,
        [(
            0,
            PlayStart {
                seq: a[0],
                rtptime: starts[0].1.rtptime
            }
        )]
    );
    for w in a.windows(2) {
        assert_eq!(
            w[1],
            w[0].wrapping_add(1),
            "one packet per small frame: {a:?}"
        );
    }
    assert_eq!(b, a, "the second reader gets the same packets");

    // No RTSP reader for a while: nothing is packetized, then the next one's GOP cache is,
    // where the path's stream left off.
    drop((first, second));
    publisher.publish(au(5, false), Instant::now()); // finds the readers gone
    publisher.publish(au(6, false), Instant::now());
    let (mut third, _) = hub
        .subscribe_rtsp("live", rtsp_reader(), &[0], None)
        .expect("subscribed");
    let c = rtp_seqs(&mut third);
    assert_eq!(
        &c[..5],
        &a[..],
        "the cached frames sent before keep their packets"
    );
    assert_eq!(c[5], a[4].wrapping_add(1));
    assert_eq!(c[6], a[4].wrapping_add(2));
}

#[tokio::test]
async fn an_rtsp_reader_without_a_cached_keyframe_gets_no_rtp_info() {
    let hub = Hub::new(None, HubLimits::default());
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    let (mut sub, starts) = hub
        .subscribe_rtsp("live", rtsp_reader(), &[0, 1], None)
        .expect("subscribed");
    assert!(starts.is_empty(), "{starts:?}");
    publisher.publish(au(0, true), Instant::now());
    publisher.publish(au(1, false), Instant::now());
    assert_eq!(rtp_seqs(&mut sub).len(), 2, "what comes next is packetized");
}

#[tokio::test]
async fn the_ssrc_a_reader_is_told_at_setup_is_the_one_its_packets_carry() {
    let hub = Hub::new(None, HubLimits::default());
    assert_eq!(hub.rtsp_ssrc("live", 0), None, "nothing published");
    let publisher = hub
        .claim_publisher("live", info("a"), None)
        .expect("claimed");
    let told = hub.rtsp_ssrc("live", 0).expect("video track");
    assert_eq!(hub.rtsp_ssrc("live", 1), None, "no audio track");
    let (mut sub, _) = hub
        .subscribe_rtsp("live", rtsp_reader(), &[0], None)
        .expect("subscribed");
    publisher.publish(au(0, true), Instant::now());
    let delivery = sub.rx.try_recv().expect("a frame");
    let rtp = delivery.frame.rtp().expect("packetized");
    let packet = rtp.rtp_packets().next().expect("a packet");
    assert_eq!(
        u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        told
    );
}
