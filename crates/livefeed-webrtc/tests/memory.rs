//! Heap held by WHEP sessions, measured: N server sessions ([`WhepSession`]) and N str0m
//! "browsers" (recvonly H.264, as `bench/whep-load` offers) in one process, connected in
//! memory on a simulated clock (as in `two_peers.rs`), then fed a ~2 Mbit/s 30 fps H.264
//! stream through [`WhepSession::write_shared`] (one [`SharedAccessUnit`] per frame for all
//! sessions, as the server does).
//!
//! A counting global allocator tags every allocation with the side that made it: the server
//! sessions (every call into a `WhepSession`), the browsers, or the harness (the shared access
//! units, the network queues). Live bytes are counted per tag at the moment of the free,
//! wherever it happens, so a datagram a session hands out counts as the session's until the
//! harness drops it. Counters are per thread: tests in this file may run in parallel.
//!
//! `memory_report` (ignored) prints the per-phase figures and the live allocations by size:
//! `cargo test --release -p livefeed-webrtc --test memory -- --ignored --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livefeed_media::sei;
use livefeed_media::{AccessUnit, CaptureStamp, VideoCodec};
use livefeed_webrtc::{Poll, SharedAccessUnit, Transport, WhepConfig, WhepSession, Written};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

// ---------------------------------------------------------------------------------------------
// The counting allocator.

/// Who made an allocation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Side {
    Harness = 0,
    Server = 1,
    Browser = 2,
}
const SIDES: usize = 3;
/// Size classes of the histogram: class `k` holds sizes in `[2^(k-1), 2^k)`.
const CLASSES: usize = 32;

thread_local! {
    static SIDE: Cell<u8> = const { Cell::new(Side::Harness as u8) };
    static LIVE: [Cell<isize>; SIDES] = const { [const { Cell::new(0) }; SIDES] };
    static PEAK: [Cell<isize>; SIDES] = const { [const { Cell::new(0) }; SIDES] };
    /// Allocations made (reallocations included), ever.
    static MADE: [Cell<usize>; SIDES] = const { [const { Cell::new(0) }; SIDES] };
    /// What glibc malloc would take for the live allocations (its chunk sizes).
    static CHUNKS: [Cell<isize>; SIDES] = const { [const { Cell::new(0) }; SIDES] };
    /// Live allocations of the server side, by size class: (count, bytes).
    static SERVER_CLASSES: [(Cell<isize>, Cell<isize>); CLASSES] =
        const { [const { (Cell::new(0), Cell::new(0)) }; CLASSES] };
}

/// Room in front of each allocation for the tag (one byte, the rest keeps the alignment).
fn prefix(align: usize) -> usize {
    align.max(16)
}

/// The chunk glibc's malloc uses for `size` bytes on 64-bit (`request2size`; allocations past
/// the mmap threshold, 128 KiB at first, are rounded to pages instead).
fn glibc_chunk(size: usize) -> usize {
    if size >= 128 * 1024 {
        (size + 16 + 4095) & !4095
    } else {
        ((size + 8 + 15) & !15).max(32)
    }
}

fn class(size: usize) -> usize {
    ((usize::BITS - size.leading_zeros()) as usize).min(CLASSES - 1)
}

fn account(side: u8, size: usize, sign: isize) {
    let bytes = sign * size as isize;
    let side = side as usize;
    let _ = LIVE.try_with(|live| {
        let live = &live[side];
        live.set(live.get() + bytes);
        let _ = PEAK.try_with(|peak| {
            if live.get() > peak[side].get() {
                peak[side].set(live.get());
            }
        });
    });
    let _ = CHUNKS.try_with(|c| c[side].set(c[side].get() + sign * glibc_chunk(size) as isize));
    if sign > 0 {
        let _ = MADE.try_with(|m| m[side].set(m[side].get() + 1));
    }
    if side == Side::Server as usize {
        let _ = SERVER_CLASSES.try_with(|classes| {
            let (count, total) = &classes[class(size)];
            count.set(count.get() + sign);
            total.set(total.get() + bytes);
        });
    }
}

struct Counting;

// SAFETY: every block is System's, `prefix` bytes larger than asked and aligned at least as
// asked; the caller's pointer is `prefix` bytes into it, which keeps the asked alignment
// (prefix is a multiple of it). The byte before the caller's pointer holds the tag.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.tagged(layout, false)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.tagged(layout, true)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let pre = prefix(layout.align());
        let side = *ptr.sub(1);
        account(side, layout.size(), -1);
        System.dealloc(ptr.sub(pre), outer(layout));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let pre = prefix(layout.align());
        let side = *ptr.sub(1);
        let base = System.realloc(ptr.sub(pre), outer(layout), new_size + pre);
        if base.is_null() {
            return base;
        }
        account(side, layout.size(), -1);
        account(side, new_size, 1);
        base.add(pre)
    }
}

fn outer(layout: Layout) -> Layout {
    let pre = prefix(layout.align());
    Layout::from_size_align(layout.size() + pre, pre).expect("layout")
}

impl Counting {
    unsafe fn tagged(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let pre = prefix(layout.align());
        let base = if zeroed {
            System.alloc_zeroed(outer(layout))
        } else {
            System.alloc(outer(layout))
        };
        if base.is_null() {
            return base;
        }
        let side = SIDE.try_with(Cell::get).unwrap_or(Side::Harness as u8);
        let ptr = base.add(pre);
        *ptr.sub(1) = side;
        account(side, layout.size(), 1);
        ptr
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` with its allocations counted as `side`'s.
fn on<R>(side: Side, f: impl FnOnce() -> R) -> R {
    let before = SIDE.with(|s| s.replace(side as u8));
    let r = f();
    SIDE.with(|s| s.set(before));
    r
}

fn live(side: Side) -> isize {
    LIVE.with(|l| l[side as usize].get())
}

fn made(side: Side) -> usize {
    MADE.with(|m| m[side as usize].get())
}

fn chunks(side: Side) -> isize {
    CHUNKS.with(|c| c[side as usize].get())
}

fn reset_peak(side: Side) {
    PEAK.with(|p| p[side as usize].set(live(side)));
}

fn peak(side: Side) -> isize {
    PEAK.with(|p| p[side as usize].get())
}

fn server_classes() -> Vec<(usize, isize, isize)> {
    SERVER_CLASSES.with(|classes| {
        classes
            .iter()
            .enumerate()
            .map(|(k, (count, bytes))| (k, count.get(), bytes.get()))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// The stream: 640x480 30 fps H.264 at ~2 Mbit/s, as livefeed's encoder shapes it.

const SERVER: &str = "192.0.2.1:8189";
const FRAME_TICKS: u64 = 3000;
const FPS: u64 = 30;
/// A keyframe's IDR slice: one per second.
const KEYFRAME_BYTES: usize = 60_000;
/// A P-frame's slice: with the keyframes, ~2.3 Mbit/s.
const P_FRAME_BYTES: usize = 8_000;

const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x84, 0x00, 0x00, 0x03,
];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

/// A NAL unit: `header`, then `len` pseudo-random bytes, none zero (so no start codes).
fn nal(header: u8, len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut nal = Vec::with_capacity(len + 1);
    nal.push(header);
    nal.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x as u8) | 1
    }));
    Bytes::from(nal)
}

fn frame(n: u64) -> SharedAccessUnit {
    let keyframe = n.is_multiple_of(FPS);
    let capture = CaptureStamp {
        unix_ns: 1_700_000_000_000_000_000 + n * 33_333_333,
        frame: n,
    };
    let mut nals = vec![sei::encode_stamp(capture)];
    if keyframe {
        nals.splice(0..0, [Bytes::from_static(SPS), Bytes::from_static(PPS)]);
        nals.push(nal(0x65, KEYFRAME_BYTES, n));
    } else {
        nals.push(nal(0x41, P_FRAME_BYTES, n));
    }
    SharedAccessUnit::new(&AccessUnit {
        codec: VideoCodec::H264,
        nals,
        pts: 90_000 + n * FRAME_TICKS,
        keyframe,
        capture: Some(capture),
    })
}

// ---------------------------------------------------------------------------------------------
// N viewer pairs on one simulated clock.

struct Datagram {
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

/// One server session and its browser. The server's datagrams reach the browser as soon as it
/// hands them out (as the server sends each one as soon as it has it: so none is held, and the
/// heap measured is the session's own); the browser's are one simulated millisecond in flight.
struct Pair {
    server: WhepSession,
    server_wake: Instant,
    browser: Rtc,
    browser_wake: Instant,
    to_server: Vec<Datagram>,
    /// Access units the browser received whole.
    frames_received: usize,
}

impl Pair {
    fn new(config: &WhepConfig, n: u16, now: Instant) -> Pair {
        let browser_addr = SocketAddr::from(([198, 51, 100, 7], 40_000 + n));
        let (mut rtc, offer, pending) = on(Side::Browser, || {
            let mut rtc = Rtc::builder().clear_codecs().enable_h264(true).build(now);
            rtc.add_local_candidate(Candidate::host(browser_addr, "udp").unwrap());
            let mut change = rtc.sdp_api();
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            let (offer, pending) = change.apply().unwrap();
            (rtc, offer.to_sdp_string(), pending)
        });
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let (server, answer) = on(Side::Server, || {
            WhepSession::accept_offer_with(config, &offer, &[server_addr], now).unwrap()
        });
        on(Side::Browser, || {
            let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
            rtc.sdp_api().accept_answer(pending, answer).unwrap();
        });
        // The answer text was the server's; it is gone once sent.
        drop(answer);
        let mut pair = Pair {
            server,
            server_wake: now,
            browser: rtc,
            browser_wake: now,
            to_server: Vec::new(),
            frames_received: 0,
        };
        pair.drain_server(now);
        pair.drain_browser();
        pair
    }

    /// Polls the session dry, delivering each datagram to the browser at once.
    fn drain_server(&mut self, now: Instant) {
        loop {
            match on(Side::Server, || self.server.poll()) {
                Poll::Transmit {
                    destination,
                    source,
                    datagram,
                    ..
                } => {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination,
                            contents: datagram.as_slice().try_into().unwrap(),
                        },
                    );
                    on(Side::Browser, || self.browser.handle_input(input)).unwrap();
                    self.drain_browser();
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
            match on(Side::Browser, || self.browser.poll_output().unwrap()) {
                Output::Transmit(t) => self.to_server.push(Datagram {
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Output::Event(e) => {
                    if matches!(&e, Event::MediaData(m) if m.contiguous) {
                        self.frames_received += 1;
                    }
                    on(Side::Browser, || drop(e));
                }
                Output::Timeout(t) => {
                    self.browser_wake = t;
                    return;
                }
            }
        }
    }

    /// Delivers what the browser sent, fires due timeouts.
    fn step(&mut self, now: Instant) {
        for d in std::mem::take(&mut self.to_server) {
            on(Side::Server, || {
                self.server
                    .handle_datagram(now, Transport::Udp, d.source, d.destination, &d.data)
            })
            .unwrap();
            self.drain_server(now);
        }
        if now >= self.server_wake {
            on(Side::Server, || self.server.handle_timeout(now)).unwrap();
            self.drain_server(now);
        }
        if now >= self.browser_wake {
            on(Side::Browser, || {
                self.browser.handle_input(Input::Timeout(now))
            })
            .unwrap();
            self.drain_browser();
        }
    }

    fn connected(&self) -> bool {
        self.server.is_connected() && self.browser.is_connected()
    }
}

struct Sim {
    now: Instant,
    pairs: Vec<Pair>,
    frames: u64,
}

impl Sim {
    fn new(config: &WhepConfig, n: u16) -> Sim {
        let now = Instant::now();
        let pairs = (0..n).map(|i| Pair::new(config, i, now)).collect();
        Sim {
            now,
            pairs,
            frames: 0,
        }
    }

    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        for pair in &mut self.pairs {
            pair.step(self.now);
        }
    }

    fn connect(&mut self) {
        let end = self.now + Duration::from_secs(5);
        while !self.pairs.iter().all(Pair::connected) {
            assert!(self.now < end, "not connected after 5 s of simulated time");
            self.step();
        }
        self.run_for(Duration::from_millis(100));
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// `seconds` of the stream, every frame to every session, then 50 ms more so nothing is in
    /// flight.
    fn stream(&mut self, seconds: u64) {
        let start = self.now;
        let total = seconds * FPS;
        for i in 0..total {
            let n = self.frames;
            self.frames += 1;
            let au = frame(n);
            let wallclock = self.now;
            for pair in &mut self.pairs {
                let written = on(Side::Server, || pair.server.write_shared(&au, wallclock));
                assert_eq!(written.unwrap(), Written::Sent);
                pair.drain_server(wallclock);
            }
            drop(au);
            let next = start + Duration::from_nanos(1_000_000_000 * (i + 1) / FPS);
            while self.now < next {
                self.step();
            }
        }
        self.run_for(Duration::from_millis(50));
    }

    fn close(self) {
        on(Side::Server, || drop(self.pairs));
    }
}

/// Server-side heap per session, in bytes, at the phases of a run.
#[derive(Debug)]
struct Figures {
    /// After the offer was answered.
    offered: isize,
    /// Once ICE and DTLS are up.
    connected: isize,
    /// The most at any moment from the offer to connected (handshakes).
    connect_peak: isize,
    /// While streaming, between keyframes (the last keyframe older than the retransmission
    /// history).
    streaming: isize,
    /// The most at any moment while streaming (the sum over the sessions: all of them hold the
    /// last keyframe's packets for as long as the retransmission history).
    peak: isize,
    /// `streaming` in glibc malloc chunks.
    streaming_chunks: isize,
    /// Allocations per second of the stream.
    allocations_per_second: usize,
    /// The browser side, for comparison (not the server's).
    browser: isize,
}

/// `n` sessions with `config`: connected, then `seconds` of the stream. Checks every browser
/// got every frame and that closed sessions leave nothing behind.
fn measure(config: &WhepConfig, n: u16, seconds: u64, report: bool) -> Figures {
    let per = |now: isize, base: isize| (now - base) / n as isize;
    // What a thread allocates once and keeps (e.g. its random number generator) is not a
    // session's: one session made and closed first takes it out of the figures.
    Sim::new(config, 1).close();
    let base = live(Side::Server);
    let chunk_base = chunks(Side::Server);
    let browser_base = live(Side::Browser);
    reset_peak(Side::Server);
    let mut sim = Sim::new(config, n);
    let offered = per(live(Side::Server), base);
    sim.connect();
    let connected = per(live(Side::Server), base);
    let connect_peak = per(peak(Side::Server), base);
    reset_peak(Side::Server);
    let made_before = made(Side::Server);
    sim.stream(seconds);
    let streaming = per(live(Side::Server), base);
    let figures = Figures {
        offered,
        connected,
        connect_peak,
        streaming,
        peak: per(peak(Side::Server), base),
        streaming_chunks: per(chunks(Side::Server), chunk_base),
        allocations_per_second: (made(Side::Server) - made_before)
            / usize::from(n)
            / seconds as usize,
        browser: per(live(Side::Browser), browser_base),
    };
    if report {
        print_classes(n.into());
    }
    for pair in &sim.pairs {
        assert_eq!(
            pair.frames_received as u64, sim.frames,
            "a browser missed frames"
        );
    }
    sim.close();
    assert_eq!(live(Side::Server), base, "closed sessions left heap behind");
    figures
}

fn print_classes(n: usize) {
    eprintln!("  live server allocations by size, per session:");
    for (k, count, bytes) in server_classes() {
        if count != 0 {
            let lo = if k == 0 { 0 } else { 1usize << (k - 1) };
            eprintln!(
                "    [{lo:>6}, {:>6}) B: {:>6.1} allocations, {:>7} B",
                1usize << k,
                count as f64 / n as f64,
                bytes / n as isize
            );
        }
    }
}

/// The heap a viewer costs the server, with the default settings: bounds are the figures
/// measured (4 sessions, 2 s of the stream: ~50 KB connected, ~183 KB streaming, ~199 KB at the
/// peak) with ~25 % margin. Before the payloads were shared and TWCC was dropped, a streaming
/// session held ~406 KB (~462 KB at the peak): either coming back fails this.
#[test]
fn streaming_session_heap_is_bounded() {
    let f = measure(&WhepConfig::default(), 4, 2, false);
    eprintln!("{f:?}");
    assert!(f.connected < 64_000, "{f:?}");
    assert!(f.streaming < 230_000, "{f:?}");
    assert!(f.peak < 250_000, "{f:?}");
}

#[test]
#[ignore = "a report, not a check: run with --ignored --nocapture (in release it takes ~1 s)"]
fn memory_report() {
    const N: u16 = 20;
    eprintln!("server heap per session, {N} sessions, 3 s of ~2.3 Mbit/s H.264 (KB = 1000 B)");
    eprintln!(
        "history  offered  connected (peak)  streaming  peak  (glibc chunks)  allocs/s  browser"
    );
    for ms in [500, 250, 100, 0] {
        let config = WhepConfig {
            retransmit_history: Duration::from_millis(ms),
            ..WhepConfig::default()
        };
        let f = measure(&config, N, 3, ms == 500);
        let kb = |b: isize| format!("{:.1}", b as f64 / 1000.0);
        eprintln!(
            "{ms:>4} ms  {:>7}  {:>9} ({:>4})  {:>9}  {:>5}  ({:>5})  {:>8}  {:>7}",
            kb(f.offered),
            kb(f.connected),
            kb(f.connect_peak),
            kb(f.streaming),
            kb(f.peak),
            kb(f.streaming_chunks),
            f.allocations_per_second,
            kb(f.browser),
        );
    }
}
