//! Two-peer simulations on a simulated clock: a [`WhepSession`] (the server) and a plain str0m
//! [`Rtc`] playing the browser (recvonly video, the codecs a browser offers), connected in
//! memory. No sockets: datagrams are moved between the two by [`Net::step`], with one step of
//! latency, and time only moves when the test says so.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use livefeed_media::h264::split_annex_b;
use livefeed_media::sei;
use livefeed_media::{AccessUnit, CaptureStamp, VideoCodec};
use livefeed_webrtc::{CloseReason, Poll, Transport, WhepConfig, WhepError, WhepSession, Written};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

const SERVER: &str = "192.0.2.1:8189";
const BROWSER: &str = "198.51.100.7:54321";
/// One frame at 30 fps, in 90 kHz ticks.
const FRAME_TICKS: u64 = 3000;
const FRAME_TIME: Duration = Duration::from_micros(33_333);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Test access units: NAL headers right, payloads filler (str0m packetizes, it never decodes).

const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x84, 0x00, 0x00, 0x03,
];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

/// NAL payload bytes that never form a start code (no zero bytes at all).
fn filler(header: u8, len: usize, seed: u8) -> Bytes {
    let mut nal = vec![header];
    nal.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
    Bytes::from(nal)
}

fn stamp(frame: u64) -> CaptureStamp {
    CaptureStamp {
        unix_ns: 1_700_000_000_000_000_000 + frame * 33_333_333,
        frame,
    }
}

/// Frame `frame`: a keyframe carries SPS, PPS, SEI, a 4 KB IDR slice (several RTP packets);
/// other frames SEI and a 600 byte slice. Like livefeed's encoder, the SEI stamp sits before
/// the first slice.
fn access_unit(frame: u64, keyframe: bool) -> AccessUnit {
    let s = stamp(frame);
    let nals = if keyframe {
        vec![
            Bytes::from_static(SPS),
            Bytes::from_static(PPS),
            sei::encode_stamp(s),
            filler(0x65, 4000, frame as u8),
        ]
    } else {
        vec![sei::encode_stamp(s), filler(0x41, 600, frame as u8)]
    };
    AccessUnit {
        codec: VideoCodec::H264,
        nals,
        pts: 90_000 + frame * FRAME_TICKS,
        keyframe,
        capture: Some(s),
    }
}

/// An H.265 frame: a keyframe carries VPS, SPS, PPS and a 4 KB IDR_W_RADL slice, other frames
/// a 600 byte TRAIL_R slice (two-byte NAL headers, layer 0, temporal id 0).
fn h265_access_unit(frame: u64, keyframe: bool) -> AccessUnit {
    let nal = |nal_type: u8, len: usize| {
        let mut nal = vec![nal_type << 1, 0x01];
        nal.extend_from_slice(&filler(0xff, len, frame as u8)[1..]);
        Bytes::from(nal)
    };
    let nals = if keyframe {
        vec![nal(32, 20), nal(33, 40), nal(34, 8), nal(19, 4000)]
    } else {
        vec![nal(1, 600)]
    };
    AccessUnit {
        codec: VideoCodec::H265,
        nals,
        pts: 90_000 + frame * FRAME_TICKS,
        keyframe,
        capture: Some(stamp(frame)),
    }
}

// ---------------------------------------------------------------------------------------------
// The browser side.

/// What the "browser" offers.
enum BrowserCodecs {
    /// str0m's defaults: Opus, VP8, H264 (several profiles, modes 0 and 1), H265, VP9, AV1.
    BrowserLike,
    VideoVp8Only,
    H264HighOnly,
}

struct Browser {
    rtc: Rtc,
    video_mid: Option<Mid>,
    offer: String,
    pending: SdpPendingOffer,
}

fn browser(now: Instant, codecs: BrowserCodecs, audio: bool, video: bool) -> Browser {
    let mut config = Rtc::builder();
    match codecs {
        BrowserCodecs::BrowserLike => {}
        BrowserCodecs::VideoVp8Only => config = config.clear_codecs().enable_vp8(true),
        BrowserCodecs::H264HighOnly => {
            config = config.clear_codecs();
            config
                .codec_config()
                .add_h264(102.into(), Some(103.into()), true, 0x64001f);
        }
    }
    browser_from(now, config, audio, video)
}

/// A browser built from `config`, offering to receive audio and/or video.
fn browser_from(now: Instant, config: RtcConfig, audio: bool, video: bool) -> Browser {
    let mut rtc = config.build(now);
    rtc.add_local_candidate(Candidate::host(addr(BROWSER), "udp").unwrap());
    let mut change = rtc.sdp_api();
    if audio {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    let video_mid =
        video.then(|| change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None));
    let (offer, pending) = change.apply().unwrap();
    Browser {
        rtc,
        video_mid,
        offer: offer.to_sdp_string(),
        pending,
    }
}

// ---------------------------------------------------------------------------------------------
// The network between them.

struct Datagram {
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

/// Decides, for each datagram on its way to the browser, whether the network loses it.
type LossFn = Box<dyn FnMut(&[u8]) -> bool>;

struct Net {
    now: Instant,
    server: WhepSession,
    server_wake: Instant,
    browser: Rtc,
    browser_wake: Instant,
    to_server: VecDeque<Datagram>,
    to_browser: VecDeque<Datagram>,
    /// Browser events with the simulated time they happened.
    events: Vec<(Instant, Event)>,
    lose_to_browser: LossFn,
    /// While set, every datagram in either direction is lost (viewer gone, network down).
    link_down: bool,
    /// Every datagram that reached the browser, in order (for RTP inspection).
    delivered_to_browser: Vec<Vec<u8>>,
}

impl Net {
    /// Offer from a browser-like peer, answer, apply the answer: ready to connect.
    fn new(config: &WhepConfig) -> (Net, String, Mid) {
        Net::with_browser(config, |now| {
            browser(now, BrowserCodecs::BrowserLike, true, true)
        })
    }

    /// As [`Net::new`], with the browser `make_browser` builds.
    fn with_browser(
        config: &WhepConfig,
        make_browser: impl FnOnce(Instant) -> Browser,
    ) -> (Net, String, Mid) {
        let now = Instant::now();
        let b = make_browser(now);
        let (server, answer) =
            WhepSession::accept_offer_with(config, &b.offer, &[addr(SERVER)], now).unwrap();
        let mut rtc = b.rtc;
        let sdp_answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        rtc.sdp_api().accept_answer(b.pending, sdp_answer).unwrap();
        let mut net = Net {
            now,
            server,
            server_wake: now,
            browser: rtc,
            browser_wake: now,
            to_server: VecDeque::new(),
            to_browser: VecDeque::new(),
            events: Vec::new(),
            lose_to_browser: Box::new(|_| false),
            link_down: false,
            delivered_to_browser: Vec::new(),
        };
        net.drain_server();
        net.drain_browser();
        (net, answer, b.video_mid.unwrap())
    }

    fn drain_server(&mut self) {
        loop {
            match self.server.poll() {
                Poll::Transmit {
                    destination,
                    source,
                    transport,
                    datagram,
                } => {
                    assert_eq!(source, addr(SERVER));
                    assert_eq!(transport, Transport::Udp);
                    if !self.link_down && !(self.lose_to_browser)(&datagram) {
                        self.to_browser.push_back(Datagram {
                            source,
                            destination,
                            data: datagram,
                        });
                    }
                }
                Poll::Wait(t) => {
                    self.server_wake = t;
                    return;
                }
            }
        }
    }

    fn drain_browser(&mut self) {
        loop {
            match self.browser.poll_output().unwrap() {
                Output::Transmit(_) if self.link_down => {}
                Output::Transmit(t) => self.to_server.push_back(Datagram {
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Output::Event(e) => self.events.push((self.now, e)),
                Output::Timeout(t) => {
                    self.browser_wake = t;
                    return;
                }
            }
        }
    }

    /// Moves time on by `dt`, delivers what was in flight, fires due timeouts.
    fn step(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        for d in std::mem::take(&mut self.to_server) {
            assert!(
                self.server
                    .accepts(now, Transport::Udp, d.source, d.destination, &d.data),
                "server refused a datagram of its own peer"
            );
            self.server
                .handle_datagram(now, Transport::Udp, d.source, d.destination, &d.data)
                .unwrap();
            self.drain_server();
        }
        for d in std::mem::take(&mut self.to_browser) {
            let contents = d.data.as_slice().try_into().unwrap();
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source: d.source,
                    destination: d.destination,
                    contents,
                },
            );
            self.browser.handle_input(input).unwrap();
            self.delivered_to_browser.push(d.data);
            self.drain_browser();
        }
        if now >= self.server_wake {
            self.server.handle_timeout(now).unwrap();
            self.drain_server();
        }
        if now >= self.browser_wake {
            self.browser.handle_input(Input::Timeout(now)).unwrap();
            self.drain_browser();
        }
    }

    /// Steps 1 ms at a time until `done` or `limit` of simulated time; returns whether done.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step(Duration::from_millis(1));
        }
        done(self)
    }

    /// Runs for `d` of simulated time.
    fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    fn connect(&mut self) {
        let connected = self.run_until(Duration::from_secs(5), |n| {
            n.server.is_connected() && n.browser.is_connected()
        });
        assert!(connected, "peers did not connect in 5 s of simulated time");
    }

    /// Writes frame `frame`, then lets one frame time pass.
    fn write_frame(&mut self, frame: u64, keyframe: bool) -> Written {
        self.write_access_unit(access_unit(frame, keyframe))
    }

    /// Writes `au`, then lets one frame time pass.
    fn write_access_unit(&mut self, au: AccessUnit) -> Written {
        let written = self.server.write_access_unit(&au, self.now).unwrap();
        self.drain_server();
        let end = self.now + FRAME_TIME;
        while self.now < end {
            self.step(Duration::from_millis(1));
        }
        written
    }

    fn media(&self) -> Vec<&MediaData> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::MediaData(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

/// RTP (not RTCP) by RFC 5761/7983: version 2, and the second byte not an RTCP packet type.
fn rtp_payload_type(datagram: &[u8]) -> Option<u8> {
    let (&b0, &b1) = (datagram.first()?, datagram.get(1)?);
    (b0 >> 6 == 2 && !(192..=223).contains(&b1)).then_some(b1 & 0x7f)
}

fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    split_annex_b(annex_b).iter().map(|n| n[0] & 0x1f).collect()
}

fn stamp_of(annex_b: &[u8]) -> Option<CaptureStamp> {
    let nals: Vec<Bytes> = split_annex_b(annex_b)
        .into_iter()
        .map(Bytes::copy_from_slice)
        .collect();
    sei::find_stamp(&nals)
}

// ---------------------------------------------------------------------------------------------
// Offer/answer and connection.

#[test]
fn browser_offer_is_answered_sendonly_h264_and_connects() {
    let (mut net, answer, _) = Net::new(&WhepConfig::default());

    // Video answered sendonly with H.264 mode 1 only; audio sendonly with Opus.
    let audio = &answer[answer.find("m=audio").expect("an audio section")..];
    assert!(!audio.starts_with("m=audio 0 "), "{answer}");
    assert!(audio.contains("opus/48000/2"), "{answer}");
    assert!(answer.contains("a=sendonly"), "{answer}");
    assert!(answer.contains("H264/90000"), "{answer}");
    assert!(!answer.contains("VP8"), "{answer}");
    assert!(!answer.contains("packetization-mode=0"), "{answer}");
    assert!(answer.contains("profile-level-id=42e01f"), "{answer}");
    assert!(
        audio.contains(" 192.0.2.1 8189 typ host"),
        "the candidate is in the first accepted section (audio):\n{answer}"
    );

    net.connect();
    assert!(!net.server.is_closed());
    assert!(net
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Connected)));
}

#[test]
fn answer_negotiates_nack_pli_and_rtx() {
    let (_net, answer, _) = Net::new(&WhepConfig::default());
    let video = &answer[answer.find("m=video").unwrap()..];
    let h264_pt: u8 = video
        .lines()
        .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" H264/90000"))
        .unwrap()
        .parse()
        .unwrap();
    for fb in ["nack", "nack pli", "ccm fir"] {
        let line = format!("a=rtcp-fb:{h264_pt} {fb}\r\n");
        assert!(video.contains(&line), "missing {line:?} in\n{video}");
    }
    let apt = format!(" apt={h264_pt}\r\n");
    let rtx_pt: u8 = video
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("a=fmtp:")?;
            rest.ends_with(apt.trim_end())
                .then(|| rest.split(' ').next())?
        })
        .expect("an RTX payload type for H.264")
        .parse()
        .unwrap();
    assert!(
        video.contains(&format!("a=rtpmap:{rtx_pt} rtx/90000")),
        "{video}"
    );
}

#[test]
fn ice_lite_server_connects() {
    let config = WhepConfig {
        ice_lite: true,
        ..WhepConfig::default()
    };
    let (mut net, answer, _) = Net::new(&config);
    assert!(answer.contains("a=ice-lite"), "{answer}");
    net.connect();
}

#[test]
fn demux_refuses_strangers() {
    let (mut net, _, _) = Net::new(&WhepConfig::default());
    net.connect();
    let now = net.now;
    let stranger = addr("203.0.113.9:4000");
    // RTP-looking bytes from an unknown address, and bytes that are nothing at all.
    let rtp = [0x80u8, 108, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa];
    assert!(!net
        .server
        .accepts(now, Transport::Udp, stranger, addr(SERVER), &rtp));
    assert!(!net
        .server
        .accepts(now, Transport::Udp, addr(BROWSER), addr(SERVER), &[]));
    let err = net
        .server
        .handle_datagram(
            now,
            Transport::Udp,
            addr(BROWSER),
            addr(SERVER),
            &[0x40, 1, 2],
        )
        .unwrap_err();
    assert!(
        matches!(err, WhepError::UnrecognizedDatagram { .. }),
        "{err}"
    );
    assert!(
        net.server.is_connected(),
        "a junk datagram must not end the session"
    );
}

// ---------------------------------------------------------------------------------------------
// Media.

#[test]
fn viewer_starts_at_a_keyframe_and_gets_the_sei_stamp() {
    let (mut net, _, _) = Net::new(&WhepConfig::default());

    // Before the connection: skipped, counted.
    assert_eq!(net.write_frame(0, true), Written::NotConnected);
    net.connect();

    // Connected, but the GOP is running: P-frames wait for the next keyframe.
    assert!(net.server.wants_keyframe(), "a new viewer needs a keyframe");
    assert_eq!(
        net.write_frame(1, false),
        Written::SkippedWaitingForKeyframe
    );
    assert_eq!(
        net.write_frame(2, false),
        Written::SkippedWaitingForKeyframe
    );
    assert_eq!(net.write_frame(3, true), Written::Sent);
    assert!(!net.server.wants_keyframe());
    for frame in 4..10 {
        assert_eq!(net.write_frame(frame, false), Written::Sent);
    }
    net.run_for(Duration::from_millis(200));

    let stats = net.server.stats();
    assert_eq!(stats.aus_skipped_not_connected, 1);
    assert_eq!(stats.aus_skipped_waiting_for_keyframe, 2);
    assert_eq!(stats.aus_sent, 7);

    let media = net.media();
    assert_eq!(media.len(), 7, "one MediaData per access unit");
    let first = media[0];
    // SPS and PPS (carried in a STAP-A), the SEI, the IDR slice: all NAL units, in order.
    assert_eq!(nal_types(&first.data), vec![7, 8, 6, 5]);
    assert!(first.contiguous);
    let sent = access_unit(3, true);
    assert_eq!(split_annex_b(&first.data)[3], &sent.nals[3][..]);
    assert_eq!(stamp_of(&first.data), Some(stamp(3)));

    // Every later frame arrives with its own stamp, 3000 ticks apart.
    for (i, m) in media.iter().enumerate() {
        assert_eq!(stamp_of(&m.data), Some(stamp(3 + i as u64)));
        if i > 0 {
            let delta = m.time.numer() - media[i - 1].time.numer();
            assert_eq!((delta, m.time.denom()), (FRAME_TICKS, 90_000));
        }
    }
}

const ABS_CAPTURE_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

#[test]
fn abs_capture_time_is_answered_when_offered_and_carries_each_capture_stamp() {
    // The browser's id (5) is not the server's own (7): the answer must use the browser's.
    let offers_it = |now| {
        let config = Rtc::builder().set_extension(5, Extension::AbsoluteCaptureTime);
        browser_from(now, config, true, true)
    };
    let (mut net, answer, _) = Net::with_browser(&WhepConfig::default(), offers_it);
    assert!(
        video_section(&answer).contains(&format!("a=extmap:5 {ABS_CAPTURE_TIME}")),
        "{answer}"
    );
    net.connect();
    assert_eq!(net.write_frame(0, true), Written::Sent);
    for frame in 1..5 {
        assert_eq!(net.write_frame(frame, false), Written::Sent);
    }
    net.run_for(Duration::from_millis(200));
    let media = net.media();
    assert_eq!(media.len(), 5);
    for (frame, m) in media.iter().enumerate() {
        let sent = stamp(frame as u64);
        let carried = m.ext_vals.abs_capture_time.expect("abs-capture-time");
        let captured = carried
            .capture_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        // NTP steps of 2^-32 s, and str0m converting through floating point: within 1 µs.
        let error = captured.as_nanos() as i128 - i128::from(sent.unix_ns);
        assert!(
            error.abs() <= 1_000,
            "frame {frame}: {captured:?} vs {}",
            sent.unix_ns
        );
        assert_eq!(carried.clock_offset, None);
    }
}

#[test]
fn abs_capture_time_is_not_answered_unless_offered() {
    let (mut net, answer, _) = Net::new(&WhepConfig::default());
    assert!(!answer.contains(ABS_CAPTURE_TIME), "{answer}");
    net.connect();
    assert_eq!(net.write_frame(0, true), Written::Sent);
    net.run_for(Duration::from_millis(200));
    let media = net.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].ext_vals.abs_capture_time, None);
}

#[test]
fn lost_packet_is_retransmitted_after_nack() {
    let (mut net, _, _) = Net::new(&WhepConfig::default());
    net.connect();

    // Lose the third RTP packet of the stream: the second fragment (FU-A) of the keyframe's
    // IDR slice, after the STAP-A (SPS, PPS, SEI) and the first fragment.
    let rtp_seen = Rc::new(Cell::new(0));
    let counter = rtp_seen.clone();
    net.lose_to_browser = Box::new(move |d| {
        if rtp_payload_type(d).is_some() {
            counter.set(counter.get() + 1);
            return counter.get() == 3;
        }
        false
    });

    assert_eq!(net.write_frame(0, true), Written::Sent);
    for frame in 1..60 {
        net.write_frame(frame, false);
    }
    net.run_for(Duration::from_secs(2));

    // The browser asked for the packet again, and got it on the RTX payload type.
    let rtp: Vec<u8> = net
        .delivered_to_browser
        .iter()
        .filter_map(|d| rtp_payload_type(d))
        .collect();
    assert_eq!(
        rtp.len() + 1,
        rtp_seen.get(),
        "one RTP packet lost, the rest delivered"
    );
    let media_pt = rtp[0];
    let retransmissions = rtp.iter().filter(|&&pt| pt != media_pt).count();
    assert_eq!(
        retransmissions, 1,
        "exactly the lost packet is resent, on the RTX PT"
    );
    let stats = net.server.stats();
    assert_eq!(stats.nacks_received, 1, "{stats:?}");
    assert!(stats.rtp_packets_sent >= rtp.len() as u64, "{stats:?}");

    // And so the keyframe arrived whole, first of all frames.
    let media = net.media();
    assert_eq!(nal_types(&media[0].data), vec![7, 8, 6, 5]);
    assert_eq!(
        split_annex_b(&media[0].data)[3],
        &access_unit(0, true).nals[3][..]
    );
    assert_eq!(media.len(), 60, "every frame delivered");
}

#[test]
fn keyframe_request_is_reported_until_a_keyframe_is_written() {
    let (mut net, _, mid) = Net::new(&WhepConfig::default());
    net.connect();
    net.write_frame(0, true);
    net.write_frame(1, false);
    assert!(!net.server.wants_keyframe());

    net.browser
        .writer(mid)
        .unwrap()
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .unwrap();
    net.drain_browser();
    net.run_for(Duration::from_millis(50));
    assert!(net.server.wants_keyframe());
    assert_eq!(net.server.stats().keyframe_requests, 1);

    net.write_frame(2, false);
    assert!(
        net.server.wants_keyframe(),
        "a P-frame does not answer a PLI"
    );
    net.write_frame(3, true);
    assert!(!net.server.wants_keyframe());
}

#[test]
fn skip_to_next_keyframe_resumes_at_a_keyframe() {
    let (mut net, _, _) = Net::new(&WhepConfig::default());
    net.connect();
    net.write_frame(0, true);
    net.server.skip_to_next_keyframe();
    assert!(net.server.wants_keyframe());
    assert_eq!(
        net.write_frame(1, false),
        Written::SkippedWaitingForKeyframe
    );
    assert_eq!(net.write_frame(2, true), Written::Sent);
}

// ---------------------------------------------------------------------------------------------
// Ending.

#[test]
fn close_tells_the_browser_and_stops_writing() {
    let (mut net, _, _) = Net::new(&WhepConfig::default());
    net.connect();
    net.write_frame(0, true);
    net.server.close();
    assert!(net.server.is_closed());
    assert_eq!(net.server.close_reason(), Some(&CloseReason::Local));
    assert_eq!(net.write_frame(1, true), Written::NotConnected);
    net.drain_server();
    net.run_for(Duration::from_millis(100));
    assert!(
        net.events.iter().any(|(_, e)| matches!(e, Event::Closed)),
        "the browser saw no close"
    );
    assert!(matches!(net.server.poll(), Poll::Wait(_)));
}

#[test]
fn vanished_viewer_is_closed_when_ice_gives_up() {
    let (mut net, _, _) = Net::new(&WhepConfig::default());
    net.connect();
    net.write_frame(0, true);
    net.link_down = true;
    let gone_at = net.now;
    assert!(net.run_until(Duration::from_secs(60), |n| n.server.is_closed()));
    assert_eq!(net.server.close_reason(), Some(&CloseReason::Disconnected));
    // str0m's ICE declares the pair dead after ~21 s without STUN answers (9 retransmits,
    // RTO up to 3 s); the default disconnect_timeout adds nothing to that.
    let after = net.now - gone_at;
    assert!(
        (Duration::from_secs(15)..Duration::from_secs(30)).contains(&after),
        "closed {after:?} after the viewer vanished"
    );
}

#[test]
fn disconnect_timeout_keeps_a_disconnected_session_open_that_long() {
    let config = WhepConfig {
        disconnect_timeout: Duration::from_secs(5),
        ..WhepConfig::default()
    };
    let (mut net, _, _) = Net::new(&config);
    net.connect();
    net.write_frame(0, true);
    net.link_down = true;
    assert!(net.run_until(Duration::from_secs(60), |n| !n.server.is_connected()));
    let since = net.now;
    assert!(!net.server.is_closed());
    assert_eq!(net.write_frame(1, true), Written::NotConnected);
    assert!(!net.server.wants_keyframe());
    assert!(net.run_until(Duration::from_secs(10), |n| n.server.is_closed()));
    assert_eq!(net.server.close_reason(), Some(&CloseReason::Disconnected));
    let after = net.now - since;
    assert!(
        (Duration::from_secs(5)..Duration::from_millis(5002)).contains(&after),
        "closed {after:?} after the disconnection"
    );
}

#[test]
fn session_that_never_connects_closes_itself() {
    let now = Instant::now();
    let b = browser(now, BrowserCodecs::BrowserLike, false, true);
    let config = WhepConfig::default();
    let (mut server, _) =
        WhepSession::accept_offer_with(&config, &b.offer, &[addr(SERVER)], now).unwrap();
    let mut t = now;
    let deadline = now + config.connect_timeout;
    // Follow the session's own wake-ups (a network that loses everything).
    for _ in 0..10_000 {
        match server.poll() {
            Poll::Transmit { .. } => continue,
            Poll::Wait(wake) => {
                if server.is_closed() {
                    break;
                }
                assert!(wake <= deadline, "wake-up past the connect deadline");
                t = wake.max(t);
                server.handle_timeout(t).unwrap();
            }
        }
    }
    assert_eq!(server.close_reason(), Some(&CloseReason::ConnectTimeout));
    assert_eq!(t, deadline);
}

/// An H.265 stream to a browser that offers H.265: the answer carries H.265 (and no H.264), and
/// every access unit arrives whole, starting at the keyframe with its parameter sets.
#[test]
fn h265_stream_is_answered_h265_and_its_frames_arrive() {
    let config = WhepConfig {
        video_codec: VideoCodec::H265,
        ..WhepConfig::default()
    };
    let (mut net, answer, _) = Net::new(&config);
    let video = video_section(&answer);
    assert!(video.contains("H265/90000"), "{video}");
    assert!(!video.contains("H264/90000"), "{video}");
    net.connect();

    let sent: Vec<AccessUnit> = (0..8).map(|f| h265_access_unit(f, f == 0)).collect();
    for au in &sent {
        assert_eq!(net.write_access_unit(au.clone()), Written::Sent);
    }
    net.run_for(Duration::from_millis(200));

    let media = net.media();
    assert_eq!(media.len(), sent.len(), "one MediaData per access unit");
    let h265_types = |annex_b: &[u8]| -> Vec<u8> {
        split_annex_b(annex_b)
            .iter()
            .map(|n| (n[0] >> 1) & 0x3f)
            .collect()
    };
    assert_eq!(h265_types(&media[0].data), vec![32, 33, 34, 19]);
    for (m, au) in media.iter().zip(&sent) {
        let got: Vec<&[u8]> = split_annex_b(&m.data);
        let want: Vec<&[u8]> = au.nals.iter().map(|n| &n[..]).collect();
        assert_eq!(got, want, "the access unit arrives byte for byte");
    }
}

// ---------------------------------------------------------------------------------------------
// Browser-shaped offers (fixtures in tests/data, see its README: hand-written, not captures).

/// The video section of an answer.
fn video_section(answer: &str) -> &str {
    &answer[answer.find("m=video").expect("a video section")..]
}

fn accept_fixture(offer: &str) -> String {
    let (session, answer) = WhepSession::accept_offer(offer, &[addr(SERVER)], Instant::now())
        .unwrap_or_else(|e| panic!("refused: {e}"));
    assert!(!session.is_closed());
    // The audio section is answered with Opus, sendonly, and no other codec than H.264
    // mode 1 in constrained baseline (and its RTX) is answered for video.
    assert!(session.has_audio(), "{answer}");
    let audio = &answer[answer.find("m=audio").expect("an audio section")..];
    assert!(audio.contains("opus/48000/2"), "{answer}");
    assert!(!audio.contains("PCMU"), "{answer}");
    let video = video_section(&answer);
    assert!(video.contains("a=sendonly\r\n"), "{video}");
    // The candidates are where a browser looks for them: in the first accepted section (the
    // audio one, which carries the BUNDLE transport).
    let first = answer.find("m=").expect("a media section");
    assert!(
        answer[first..].contains("a=candidate:") && !answer[..first].contains("a=candidate:"),
        "{answer}"
    );
    for codec in [
        "VP8/",
        "VP9/",
        "AV1/",
        "red/",
        "ulpfec/",
        "packetization-mode=0",
    ] {
        assert!(!video.contains(codec), "{codec} answered:\n{video}");
    }
    answer
}

#[test]
fn chrome_style_offer_gets_h264_42e01f_on_its_payload_type() {
    let answer = accept_fixture(include_str!("data/chrome_style_whep_offer.sdp"));
    let video = video_section(&answer);
    assert!(
        video.starts_with("m=video 9 UDP/TLS/RTP/SAVPF 106 107 102 103\r\n"),
        "{video}"
    );
    assert!(
        video.contains(
            "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        ),
        "{video}"
    );
    assert!(video.contains("a=fmtp:107 apt=106\r\n"), "{video}");
    assert!(video.contains("a=rtcp-fb:106 nack\r\n"), "{video}");
}

#[test]
fn firefox_style_offer_gets_h264_42e01f_on_its_payload_type() {
    let answer = accept_fixture(include_str!("data/firefox_style_whep_offer.sdp"));
    let video = video_section(&answer);
    assert!(
        video.starts_with("m=video 9 UDP/TLS/RTP/SAVPF 126 127\r\n"),
        "{video}"
    );
    assert!(video.contains("a=fmtp:127 apt=126\r\n"), "{video}");
}

// ---------------------------------------------------------------------------------------------
// Bad offers.

fn refuse(offer: &str) -> WhepError {
    let err = WhepSession::accept_offer(offer, &[addr(SERVER)], Instant::now()).unwrap_err();
    assert!(err.is_client_error(), "{err} must be the client's fault");
    err
}

#[test]
fn non_sdp_offer_is_refused() {
    let err = refuse("hello, I am not SDP");
    assert!(matches!(err, WhepError::NotSdp(_)), "{err}");
}

#[test]
fn oversized_offer_is_refused_before_parsing() {
    let mut offer = browser(Instant::now(), BrowserCodecs::BrowserLike, true, true).offer;
    while offer.len() <= livefeed_webrtc::MAX_OFFER_BYTES {
        offer.push_str("a=x-padding:0123456789abcdef0123456789abcdef\r\n");
    }
    let err = refuse(&offer);
    assert!(matches!(err, WhepError::TooLarge { .. }), "{err}");
}

#[test]
fn audio_only_offer_is_no_video() {
    let b = browser(Instant::now(), BrowserCodecs::BrowserLike, true, false);
    let err = refuse(&b.offer);
    assert!(matches!(err, WhepError::NoVideo), "{err}");
}

#[test]
fn vp8_only_offer_is_no_h264() {
    let b = browser(Instant::now(), BrowserCodecs::VideoVp8Only, false, true);
    let err = refuse(&b.offer);
    assert!(matches!(err, WhepError::NoH264 { .. }), "{err}");
    assert!(err.to_string().contains("offered: VP8"), "{err}");
}

#[test]
fn h264_high_profile_only_is_no_h264() {
    // H.264 mode 1 is there, but not in a profile we send: refused after str0m's negotiation.
    let b = browser(Instant::now(), BrowserCodecs::H264HighOnly, false, true);
    let err = refuse(&b.offer);
    assert!(matches!(err, WhepError::NoH264 { .. }), "{err}");
    assert!(err.to_string().contains("H264 (64001f, mode 1)"), "{err}");
}

#[test]
fn malformed_sdp_is_invalid_sdp() {
    let err = refuse("v=0\r\nthis is not an SDP line\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n");
    assert!(matches!(err, WhepError::InvalidSdp(_)), "{err}");
}

#[test]
fn no_candidates_is_a_server_error() {
    let b = browser(Instant::now(), BrowserCodecs::BrowserLike, true, true);
    let err = WhepSession::accept_offer(&b.offer, &[], Instant::now()).unwrap_err();
    assert!(matches!(err, WhepError::NoCandidates));
    assert!(!err.is_client_error());
}
