//! A [`WhipSession`] (the server) and a plain str0m [`Rtc`] playing the publisher (sendonly
//! H.264 and Opus, as a browser or OBS offers them), connected in memory on a simulated clock:
//! the frames the publisher writes come out whole and in order, Opus packets unchanged, and a
//! keyframe request reaches the publisher as a PLI (asked for, and every 2 s). livefeed's own
//! WHIP client ([`WhipClient`]) against the same session.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livefeed_media::h264::split_annex_b;
use livefeed_media::VideoCodec;
use livefeed_webrtc::{
    ClientPoll, Poll, Received, Transport, WhepError, WhipClient, WhipConfig, WhipSession,
};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

const SERVER: &str = "192.0.2.1:8189";
const PUBLISHER: &str = "198.51.100.7:54321";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// An Annex B access unit: SPS, PPS and a 3000-byte IDR slice, or a 500-byte P slice.
fn annex_b(frame: u64, keyframe: bool) -> Vec<u8> {
    let nals: Vec<Vec<u8>> = if keyframe {
        vec![
            vec![0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x84],
            vec![0x68, 0xce, 0x3c, 0x80],
            slice(0x65, 3000, frame),
        ]
    } else {
        vec![slice(0x41, 500, frame)]
    };
    nals.iter()
        .flat_map(|n| [0, 0, 0, 1].iter().chain(n.iter()).copied())
        .collect()
}

fn slice(header: u8, len: usize, seed: u64) -> Vec<u8> {
    let mut nal = vec![header];
    nal.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed as u8) | 1));
    nal
}

struct Net {
    now: Instant,
    server: WhipSession,
    publisher: Rtc,
    video: Mid,
    audio: Mid,
    to_server: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    to_publisher: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    publisher_events: Vec<Event>,
    received: Vec<Received>,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let mut publisher = Rtc::builder().build(now);
        publisher.add_local_candidate(Candidate::host(addr(PUBLISHER), "udp").expect("candidate"));
        let mut change = publisher.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        let (server, answer) = WhipSession::accept_offer(
            &WhipConfig::default(),
            &offer.to_sdp_string(),
            &[addr(SERVER)],
            &[],
            now,
        )
        .expect("the offer is accepted");
        assert_eq!(server.codec(), VideoCodec::H264);
        assert!(server.has_audio());
        let answer = SdpAnswer::from_sdp_string(&answer).expect("an answer");
        publisher
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the answer is accepted");
        let mut net = Net {
            now,
            server,
            publisher,
            video,
            audio,
            to_server: VecDeque::new(),
            to_publisher: VecDeque::new(),
            publisher_events: Vec::new(),
            received: Vec::new(),
        };
        net.drain();
        net
    }

    fn drain(&mut self) {
        while let Poll::Transmit {
            source,
            destination,
            datagram,
            ..
        } = self.server.poll()
        {
            self.to_publisher.push_back((source, destination, datagram));
        }
        while let Some(r) = self.server.take_received() {
            self.received.push(r);
        }
        loop {
            match self.publisher.poll_output().expect("publisher output") {
                Output::Transmit(t) => {
                    self.to_server
                        .push_back((t.source, t.destination, t.contents.into()))
                }
                Output::Event(e) => self.publisher_events.push(e),
                Output::Timeout(_) => break,
            }
        }
    }

    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        for (source, destination, data) in std::mem::take(&mut self.to_server) {
            assert!(self
                .server
                .accepts(now, Transport::Udp, source, destination, &data));
            self.server
                .handle_datagram(now, Transport::Udp, source, destination, &data)
                .expect("a datagram of its peer");
        }
        for (source, destination, data) in std::mem::take(&mut self.to_publisher) {
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination,
                    contents: data.as_slice().try_into().expect("a datagram"),
                },
            );
            self.publisher.handle_input(input).expect("publisher input");
        }
        self.server.handle_timeout(now).expect("server timeout");
        self.publisher
            .handle_input(Input::Timeout(now))
            .expect("publisher timeout");
        self.drain();
    }

    fn run_for(&mut self, d: Duration) {
        for _ in 0..d.as_millis() {
            self.step();
        }
    }

    fn write(&mut self, mid: Mid, codec: Codec, time: MediaTime, data: &[u8]) {
        let now = self.now;
        let writer = self.publisher.writer(mid).expect("a writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .expect("negotiated")
            .pt();
        writer.write(pt, now, time, data.to_vec()).expect("written");
        self.drain();
    }
}

#[test]
fn frames_and_opus_packets_come_out_whole_and_a_keyframe_request_is_a_pli() {
    let mut net = Net::new();
    for _ in 0..5000 {
        if net.server.is_connected() && net.publisher.is_connected() {
            break;
        }
        net.step();
    }
    assert!(
        net.server.is_connected(),
        "connected in 5 s of simulated time"
    );

    let mut sent = Vec::new();
    for frame in 0..30u64 {
        let au = annex_b(frame, frame % 10 == 0);
        let time = MediaTime::new(90_000 + frame * 3000, Frequency::NINETY_KHZ);
        net.write(net.video, Codec::H264, time, &au);
        let opus = [0xfc, frame as u8, 1, 2, 3];
        let time = MediaTime::new(48_000 + frame * 1600, Frequency::FORTY_EIGHT_KHZ);
        net.write(net.audio, Codec::Opus, time, &opus);
        sent.push(au);
        net.run_for(Duration::from_millis(33));
    }
    net.run_for(Duration::from_millis(200));

    let videos: Vec<(&[u8], u64)> = net
        .received
        .iter()
        .filter_map(|r| match r {
            Received::Video {
                annex_b, rtp_time, ..
            } => Some((&annex_b[..], *rtp_time)),
            _ => None,
        })
        .collect();
    assert!(videos.len() >= 29, "{} of 30 frames", videos.len());
    let first = sent.len() - videos.len();
    for (i, (got, _)) in videos.iter().enumerate() {
        let nals = |b: &[u8]| -> Vec<Vec<u8>> {
            split_annex_b(b).into_iter().map(<[u8]>::to_vec).collect()
        };
        assert_eq!(nals(got), nals(&sent[first + i]), "frame {}", first + i);
    }
    assert!(videos
        .windows(2)
        .all(|w| w[1].1.wrapping_sub(w[0].1) == 3000));
    let opus: Vec<&[u8]> = net
        .received
        .iter()
        .filter_map(|r| match r {
            Received::Audio { packet, .. } => Some(&packet[..]),
            _ => None,
        })
        .collect();
    assert!(opus.len() >= 29, "{} of 30 Opus packets", opus.len());
    assert!(opus.iter().all(|p| p[0] == 0xfc && p[2..] == [1, 2, 3]));

    let asked = |net: &Net| {
        net.publisher_events
            .iter()
            .filter(|e| matches!(e, Event::KeyframeRequest(_)))
            .count()
    };
    assert_eq!(asked(&net), 0, "no keyframe request in the first 2 s");
    net.server.request_keyframe();
    net.drain();
    net.run_for(Duration::from_millis(50));
    assert_eq!(asked(&net), 1, "the publisher was asked for a keyframe");
    net.run_for(Duration::from_secs(2));
    assert!(
        asked(&net) >= 2,
        "and again every 2 s (a browser makes keyframes only when asked)"
    );
}

#[test]
fn an_offer_that_does_not_send_h264_or_h265_is_refused() {
    let now = Instant::now();
    let mut rtc = Rtc::builder().clear_codecs().enable_vp8(true).build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _) = change.apply().expect("an offer");
    let refused = WhipSession::accept_offer(
        &WhipConfig::default(),
        &offer.to_sdp_string(),
        &[addr(SERVER)],
        &[],
        now,
    );
    assert!(
        matches!(refused, Err(WhepError::NoPublishableVideo { ref offered }) if offered.contains("VP8")),
        "{refused:?}"
    );
}

#[test]
fn an_h264_profile_str0m_does_not_match_is_refused_not_accepted_silently() {
    let now = Instant::now();
    let mut config = Rtc::builder().clear_codecs();
    config
        .codec_config()
        .add_h264(102.into(), None, true, 0x7a0028); // High 4:2:2
    let mut rtc = config.build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _) = change.apply().expect("an offer");
    let refused = WhipSession::accept_offer(
        &WhipConfig::default(),
        &offer.to_sdp_string(),
        &[addr(SERVER)],
        &[],
        now,
    );
    assert!(
        matches!(refused, Err(WhepError::NoPublishableVideo { .. })),
        "{refused:?}"
    );
}

/// livefeed's own WHIP client ([`WhipClient`], as `livefeed publish --url …/whip` drives it)
/// against the server's session: it connects, what it writes before that is dropped (and says
/// so), its frames and Opus packets come out whole, and the server's keyframe request reaches it.
#[test]
fn livefeed_s_whip_client_connects_sends_whole_frames_and_hears_keyframe_requests() {
    let mut now = Instant::now();
    let (mut client, offer) = WhipClient::new(now, addr(PUBLISHER), true).expect("an offer");
    let (server, answer) =
        WhipSession::accept_offer(&WhipConfig::default(), &offer, &[addr(SERVER)], &[], now)
            .expect("the client's offer is accepted");
    assert!(server.has_audio());
    client
        .accept_answer(&answer)
        .expect("the answer is accepted");
    assert!(
        !client.write_video(now, annex_b(0, true), 0).expect("write"),
        "not connected yet: dropped"
    );
    let mut peers = ClientAndServer {
        client,
        server,
        connected: false,
        requests: 0,
        received: Vec::new(),
    };
    for _ in 0..5000 {
        if peers.connected && peers.server.is_connected() {
            break;
        }
        now += Duration::from_millis(1);
        peers.exchange(now);
    }
    assert!(peers.connected && peers.server.is_connected(), "connected");

    let mut sent = Vec::new();
    for frame in 0..30u64 {
        let au = annex_b(frame, frame % 10 == 0);
        assert!(peers
            .client
            .write_video(now, au.clone(), 90_000 + frame * 3000)
            .expect("video"));
        let opus = [0xfc, frame as u8, 7];
        assert!(peers
            .client
            .write_opus(now, &opus, 48_000 + frame * 1600)
            .expect("opus"));
        sent.push(au);
        for _ in 0..33 {
            now += Duration::from_millis(1);
            peers.exchange(now);
        }
    }
    let videos: Vec<&[u8]> = peers
        .received
        .iter()
        .filter_map(|r| match r {
            Received::Video { annex_b, .. } => Some(&annex_b[..]),
            _ => None,
        })
        .collect();
    assert!(videos.len() >= 29, "{} of 30 frames", videos.len());
    let first = sent.len() - videos.len();
    let nals =
        |b: &[u8]| -> Vec<Vec<u8>> { split_annex_b(b).into_iter().map(<[u8]>::to_vec).collect() };
    for (i, got) in videos.iter().enumerate() {
        assert_eq!(nals(got), nals(&sent[first + i]), "frame {}", first + i);
    }
    let opus = peers
        .received
        .iter()
        .filter(
            |r| matches!(r, Received::Audio { packet, .. } if packet[0] == 0xfc && packet[2] == 7),
        )
        .count();
    assert!(opus >= 29, "{opus} of 30 Opus packets");

    let before = peers.requests;
    peers.server.request_keyframe();
    for _ in 0..50 {
        now += Duration::from_millis(1);
        peers.exchange(now);
    }
    assert!(
        peers.requests > before,
        "the keyframe request reached the client"
    );
}

struct ClientAndServer {
    client: WhipClient,
    server: WhipSession,
    connected: bool,
    requests: usize,
    received: Vec<Received>,
}

impl ClientAndServer {
    /// One millisecond of the network: the client's datagrams to the server, the server's
    /// timeouts and datagrams to the client.
    fn exchange(&mut self, now: Instant) {
        loop {
            match self.client.poll(now).expect("client poll") {
                ClientPoll::Transmit {
                    source,
                    destination,
                    datagram,
                } => {
                    assert!(self.server.accepts(
                        now,
                        Transport::Udp,
                        source,
                        destination,
                        &datagram
                    ));
                    self.server
                        .handle_datagram(now, Transport::Udp, source, destination, &datagram)
                        .expect("a datagram of its peer");
                }
                ClientPoll::Connected => self.connected = true,
                ClientPoll::KeyframeRequest => self.requests += 1,
                ClientPoll::Closed => panic!("the client's connection closed"),
                ClientPoll::Wait(_) => break,
            }
        }
        self.server.handle_timeout(now).expect("server timeout");
        while let Poll::Transmit {
            source, datagram, ..
        } = self.server.poll()
        {
            self.client
                .handle_datagram(now, source, &datagram)
                .expect("a datagram of the server");
        }
        while let Some(r) = self.server.take_received() {
            self.received.push(r);
        }
    }
}
