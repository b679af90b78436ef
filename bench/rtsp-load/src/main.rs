//! rtsp-load: many RTSP readers of one stream over TCP (RTP interleaved in the RTSP
//! connection), for `bench/rtsp_fanout.sh`.
//!
//! Every reader is one tokio task on one TCP connection. It sends OPTIONS (unless
//! `--no-options`), DESCRIBE, a SETUP of every media of the SDP with
//! `Transport: RTP/AVP/TCP;unicast;interleaved=2i-2i+1` (the media's `a=control` resolved
//! against the response's Content-Base, else Content-Location, else the URL: an absolute
//! `rtsp://` control is taken as it is, a relative one such as gst-rtsp-server's `stream=0`
//! or livefeed's `trackID=0` is appended to the base with one `/` between, a `/path` one
//! replaces the base's path), with the Session of the first SETUP on the later requests, and
//! a PLAY of the session-level control (the base for `*` or none). It then reads the
//! connection until told to stop, counting the bytes read, the RTP and RTCP packets by
//! channel, and the RTP sequence-number gaps per channel (a packet whose sequence number is
//! ahead of the next expected one is a gap of that many lost packets; one behind is counted
//! as reordered/duplicate). An RTSP message in the stream (the answer to a keep-alive) is
//! skipped. Every half of the session timeout (Session `;timeout=`, 60 s if absent) it sends
//! an OPTIONS with the Session as keep-alive. At the end it sends TEARDOWN, waits at most
//! 3 s for the answer and closes.
//!
//! Readers start in batches of `--batch` (50): a batch is started once every reader of the
//! previous one has played or failed (or after 30 s). When the last batch is done the
//! counted window starts for everybody at once and lasts `--seconds`; every reader then
//! stops. The per-reader kbit/s is the bytes read in the window (RTSP interleaved framing,
//! RTP headers and payload, RTCP) × 8 / the window. Each `--watch PID`, and this process
//! itself, is sampled (utime+stime in clock ticks from /proc/PID/stat, VmRSS and VmHWM in KiB
//! from /proc/PID/status) at the start, when the window starts, when it ends (readers still
//! connected) and after the teardowns; the whole machine's busy time (/proc/stat, all CPUs)
//! at the window's start and end, so what other processes took can be told.
//!
//! A reader that fails (connect, a non-200 answer, a time-out of 10 s on any answer, the
//! server closing the connection) is printed on stderr with its error; the errors are also
//! counted by message in the summary. The summary is one JSON object on one line on stdout.
//! Exit status 0 when every reader played and none failed, 1 otherwise, 2 for bad arguments.
//! Runs on one thread (tokio current_thread), so its CPU cost stays within one core and is
//! easy to tell apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep, timeout, Instant};

const USAGE: &str = "usage: rtsp-load --url rtsp://HOST:PORT/PATH --readers N --seconds S
  [--batch 50] [--batch-pause-ms 0] [--watch PID]... [--no-options] [--quiet]";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(3);
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// After the window, how long readers get to tear down before they are abandoned.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Read buffer per reader: room for a whole interleaved frame (at most 4 + 65535 bytes) or
/// RTSP message (head + body) after compaction.
const BUF_SIZE: usize = 128 * 1024;
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
const DEFAULT_SESSION_TIMEOUT_S: u64 = 60;

struct Args {
    url: String,
    readers: usize,
    seconds: f64,
    batch: usize,
    batch_pause: Duration,
    watch: Vec<u32>,
    options: bool,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        readers: 0,
        seconds: 0.0,
        batch: 50,
        batch_pause: Duration::ZERO,
        watch: Vec::new(),
        options: true,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--readers" => args.readers = num(&flag, &value()?)?,
            "--seconds" => args.seconds = num(&flag, &value()?)?,
            "--batch" => args.batch = num(&flag, &value()?)?,
            "--batch-pause-ms" => args.batch_pause = Duration::from_millis(num(&flag, &value()?)?),
            "--watch" => args.watch.push(num(&flag, &value()?)?),
            "--no-options" => args.options = false,
            "--quiet" => args.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.url.is_empty() || args.readers == 0 || args.seconds <= 0.0 || args.batch == 0 {
        return Err("--url, --readers (> 0) and --seconds (> 0) are required".into());
    }
    Ok(args)
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: not a valid number: {v}"))
}

/// An `rtsp://host[:port]/path` URL: where to connect, and the URL itself for requests.
#[derive(Clone)]
struct Url {
    addr: String,
    full: String,
}

fn parse_url(s: &str) -> Result<Url, String> {
    let rest = strip_prefix_ci(s, "rtsp://").ok_or("--url must start with rtsp://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.is_empty() {
        return Err("--url has no host".into());
    }
    let has_port = match host_port.rfind(':') {
        Some(i) => !host_port[i..].contains(']'), // [v6]:port vs. a bare [v6]
        None => false,
    };
    let addr = if has_port {
        host_port.to_string()
    } else {
        format!("{host_port}:554")
    };
    Ok(Url {
        addr,
        full: s.to_string(),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Resolves an SDP `a=control` value against the base URL (see the module comment).
fn resolve(base: &str, control: &str) -> String {
    let control = control.trim();
    if control.is_empty() || control == "*" {
        return base.to_string();
    }
    if strip_prefix_ci(control, "rtsp://").is_some()
        || strip_prefix_ci(control, "rtsps://").is_some()
    {
        return control.to_string();
    }
    if let Some(path) = control.strip_prefix('/') {
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        let origin_end = base[after_scheme..]
            .find('/')
            .map_or(base.len(), |i| after_scheme + i);
        return format!("{}/{path}", &base[..origin_end]);
    }
    if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

/// The `a=control` lines of an SDP: the session-level one and one per `m=` section.
struct Sdp {
    session_control: Option<String>,
    media_controls: Vec<Option<String>>,
}

fn parse_sdp(body: &str) -> Sdp {
    let mut sdp = Sdp {
        session_control: None,
        media_controls: Vec::new(),
    };
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            sdp.media_controls.push(None);
        } else if let Some(ctl) = line.strip_prefix("a=control:") {
            match sdp.media_controls.last_mut() {
                Some(m) => *m = Some(ctl.trim().to_string()),
                None => sdp.session_control = Some(ctl.trim().to_string()),
            }
        }
    }
    sdp
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cseq(&self) -> Option<u32> {
        self.header("CSeq").and_then(|v| v.trim().parse().ok())
    }

    fn check(&self, method: &str) -> Result<(), String> {
        if self.status == 200 {
            Ok(())
        } else {
            Err(format!("{method}: {} {}", self.status, self.reason))
        }
    }
}

/// One thing read from the connection: an interleaved frame (its channel and where its
/// payload lies in the buffer) or an RTSP message.
enum Parsed {
    Frame { channel: u8, at: usize, len: usize },
    Message(Response),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Ramp,
    Window,
    Stop,
}

#[derive(Default)]
struct Stats {
    bytes: u64,
    rtp: u64,
    rtcp: u64,
    other_frames: u64,
    gaps: u64,
    lost: u64,
    reordered: u64,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    cseq: u32,
    session: Option<String>,
    /// Per interleaved channel: 1 RTP, 2 RTCP, 0 not set up.
    kind: [u8; 256],
    /// Per channel: the next expected RTP sequence number, once one packet was seen.
    next_seq: [Option<u16>; 256],
    stats: Stats,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            cseq: 0,
            session: None,
            kind: [0; 256],
            next_seq: [None; 256],
            stats: Stats::default(),
        }
    }

    async fn send(
        &mut self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
    ) -> Result<u32, String> {
        self.cseq += 1;
        let mut req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: rtsp-load\r\n",
            self.cseq
        );
        if let Some(s) = &self.session {
            let _ = write!(req, "Session: {s}\r\n");
        }
        for (k, v) in extra {
            let _ = write!(req, "{k}: {v}\r\n");
        }
        req.push_str("\r\n");
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("{method}: write: {e}"))?;
        Ok(self.cseq)
    }

    async fn request(
        &mut self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
    ) -> Result<Response, String> {
        let cseq = self.send(method, url, extra).await?;
        match timeout(RESPONSE_TIMEOUT, self.response(cseq)).await {
            Ok(r) => r.map_err(|e| format!("{method}: {e}")),
            Err(_) => Err(format!(
                "{method}: no answer in {} s",
                RESPONSE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Reads until the response with this CSeq, counting any interleaved frames on the way.
    async fn response(&mut self, cseq: u32) -> Result<Response, String> {
        loop {
            while let Some(p) = self.parse_one()? {
                match p {
                    Parsed::Frame { channel, at, len } => self.count_frame(channel, at, len),
                    Parsed::Message(r) if r.cseq() == Some(cseq) => return Ok(r),
                    Parsed::Message(_) => {}
                }
            }
            self.make_room();
            let n = self
                .stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            self.got(n)?;
        }
    }

    /// Moves unparsed bytes to the front when less than half the buffer is free behind them.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < BUF_SIZE / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    fn got(&mut self, n: usize) -> Result<(), String> {
        if n == 0 {
            return Err("connection closed by the server".into());
        }
        self.end += n;
        self.stats.bytes += n as u64;
        Ok(())
    }

    /// The next complete frame or message in the buffer, if there is one.
    fn parse_one(&mut self) -> Result<Option<Parsed>, String> {
        let avail = &self.buf[self.start..self.end];
        let Some(&first) = avail.first() else {
            return Ok(None);
        };
        if first == b'$' {
            if avail.len() < 4 {
                return Ok(None);
            }
            let channel = avail[1];
            let len = u16::from_be_bytes([avail[2], avail[3]]) as usize;
            if avail.len() < 4 + len {
                return Ok(None);
            }
            let at = self.start + 4;
            self.start += 4 + len;
            return Ok(Some(Parsed::Frame { channel, at, len }));
        }
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "unexpected byte 0x{first:02x} in the stream (lost framing)"
            ));
        }
        let Some(head_len) = avail
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
        else {
            if avail.len() > MAX_HEAD {
                return Err(format!("RTSP message head longer than {MAX_HEAD} bytes"));
            }
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&avail[..head_len]);
        let mut lines = head.split("\r\n");
        let first_line = lines.next().unwrap_or("");
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let body_len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if body_len > MAX_BODY {
            return Err(format!(
                "RTSP message body of {body_len} bytes (more than {MAX_BODY})"
            ));
        }
        if avail.len() < head_len + body_len {
            return Ok(None);
        }
        // "RTSP/1.0 200 OK" for a response; a request from the server gets status 0.
        let (status, reason) = match first_line.strip_prefix("RTSP/1.0 ") {
            Some(rest) => {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                (code.parse().unwrap_or(0), reason.to_string())
            }
            None => (0, first_line.to_string()),
        };
        let body = avail[head_len..head_len + body_len].to_vec();
        self.start += head_len + body_len;
        Ok(Some(Parsed::Message(Response {
            status,
            reason,
            headers,
            body,
        })))
    }

    fn count_frame(&mut self, channel: u8, at: usize, len: usize) {
        match self.kind[channel as usize] {
            1 => {
                let pkt = &self.buf[at..at + len];
                if len < 12 || pkt[0] >> 6 != 2 {
                    self.stats.other_frames += 1;
                    return;
                }
                self.stats.rtp += 1;
                let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                let slot = &mut self.next_seq[channel as usize];
                match *slot {
                    Some(expected) if seq != expected => {
                        let ahead = seq.wrapping_sub(expected);
                        if ahead < 0x8000 {
                            self.stats.gaps += 1;
                            self.stats.lost += u64::from(ahead);
                            *slot = Some(seq.wrapping_add(1));
                        } else {
                            self.stats.reordered += 1;
                        }
                    }
                    _ => *slot = Some(seq.wrapping_add(1)),
                }
            }
            2 => self.stats.rtcp += 1,
            _ => self.stats.other_frames += 1,
        }
    }

    /// OPTIONS, DESCRIBE, SETUP of every media, PLAY. Returns the URL to PLAY/TEARDOWN and
    /// the keep-alive interval.
    async fn setup(&mut self, url: &Url, options: bool) -> Result<(String, Duration), String> {
        if options {
            self.request("OPTIONS", &url.full, &[])
                .await?
                .check("OPTIONS")?;
        }
        let r = self
            .request("DESCRIBE", &url.full, &[("Accept", "application/sdp")])
            .await?;
        r.check("DESCRIBE")?;
        let base = r
            .header("Content-Base")
            .or(r.header("Content-Location"))
            .unwrap_or(&url.full)
            .to_string();
        let sdp = parse_sdp(&String::from_utf8_lossy(&r.body));
        if sdp.media_controls.is_empty() {
            return Err("DESCRIBE: no m= line in the SDP".into());
        }
        if sdp.media_controls.len() > 128 {
            return Err("DESCRIBE: more than 128 media in the SDP".into());
        }
        let mut session_timeout = DEFAULT_SESSION_TIMEOUT_S;
        for (i, ctl) in sdp.media_controls.iter().enumerate() {
            let track = resolve(&base, ctl.as_deref().unwrap_or("*"));
            let transport = format!("RTP/AVP/TCP;unicast;interleaved={}-{}", 2 * i, 2 * i + 1);
            let r = self
                .request("SETUP", &track, &[("Transport", &transport)])
                .await?;
            r.check("SETUP")?;
            if self.session.is_none() {
                let s = r
                    .header("Session")
                    .ok_or("SETUP: no Session header in the answer")?;
                let mut parts = s.split(';');
                self.session = Some(parts.next().unwrap_or("").trim().to_string());
                for p in parts {
                    if let Some(t) = p.trim().strip_prefix("timeout=") {
                        session_timeout = t.trim().parse().unwrap_or(session_timeout);
                    }
                }
            }
            // The server may pick other channels than asked; its Transport says which.
            let (rtp, rtcp) = r
                .header("Transport")
                .and_then(interleaved_channels)
                .unwrap_or(((2 * i) as u8, (2 * i + 1) as u8));
            self.kind[rtp as usize] = 1;
            self.kind[rtcp as usize] = 2;
        }
        let play_url = resolve(&base, sdp.session_control.as_deref().unwrap_or("*"));
        self.request("PLAY", &play_url, &[("Range", "npt=0.000-")])
            .await?
            .check("PLAY")?;
        Ok((play_url, Duration::from_secs((session_timeout / 2).max(1))))
    }

    /// Reads until the phase becomes Stop, snapshotting the byte count when the window
    /// starts and ends. Returns the bytes read in the window (None if it never started).
    async fn stream(
        &mut self,
        play_url: &str,
        keepalive: Duration,
        phase: &mut watch::Receiver<Phase>,
    ) -> Result<Option<u64>, String> {
        let mut window_start =
            (*phase.borrow_and_update() == Phase::Window).then_some(self.stats.bytes);
        let mut tick = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        loop {
            while let Some(p) = self.parse_one()? {
                if let Parsed::Frame { channel, at, len } = p {
                    self.count_frame(channel, at, len);
                }
            }
            self.make_room();
            tokio::select! {
                r = self.stream.read(&mut self.buf[self.end..]) => {
                    let n = r.map_err(|e| format!("read: {e}"))?;
                    self.got(n)?;
                }
                changed = phase.changed() => {
                    let now = match changed {
                        Ok(()) => *phase.borrow_and_update(),
                        Err(_) => Phase::Stop,
                    };
                    match now {
                        Phase::Window => window_start = Some(self.stats.bytes),
                        Phase::Stop => return Ok(window_start.map(|b| self.stats.bytes - b)),
                        Phase::Ramp => {}
                    }
                }
                _ = tick.tick() => {
                    self.send("OPTIONS", play_url, &[]).await?;
                }
            }
        }
    }
}

/// `interleaved=A-B` in a Transport header.
fn interleaved_channels(transport: &str) -> Option<(u8, u8)> {
    let v = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("interleaved="))?;
    let (a, b) = v.split_once('-').unwrap_or((v, ""));
    let a: u8 = a.trim().parse().ok()?;
    let b: u8 = b.trim().parse().unwrap_or(a.wrapping_add(1));
    Some((a, b))
}

#[derive(Default)]
struct ReaderResult {
    played: bool,
    setup_ms: Option<f64>,
    window_bytes: Option<u64>,
    stats: Stats,
    error: Option<String>,
    teardown_ok: bool,
}

async fn reader(
    id: usize,
    url: Url,
    options: bool,
    quiet: bool,
    mut phase: watch::Receiver<Phase>,
    done: oneshot::Sender<()>,
) -> ReaderResult {
    let mut res = ReaderResult::default();
    let t0 = Instant::now();
    let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(&url.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(id, res, format!("connect: {e}"), quiet),
        Err(_) => {
            return fail(
                id,
                res,
                format!("connect: no connection in {} s", CONNECT_TIMEOUT.as_secs()),
                quiet,
            )
        }
    };
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    let (play_url, keepalive) = match conn.setup(&url, options).await {
        Ok(v) => v,
        Err(e) => {
            res.stats = conn.stats;
            return fail(id, res, e, quiet);
        }
    };
    res.played = true;
    res.setup_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
    let _ = done.send(());
    match conn.stream(&play_url, keepalive, &mut phase).await {
        Ok(window_bytes) => {
            res.window_bytes = window_bytes;
            res.teardown_ok = matches!(
                timeout(TEARDOWN_TIMEOUT, conn.request("TEARDOWN", &play_url, &[])).await,
                Ok(Ok(r)) if r.status == 200
            );
        }
        Err(e) => {
            res.stats = std::mem::take(&mut conn.stats);
            return fail(id, res, format!("while streaming: {e}"), quiet);
        }
    }
    res.stats = conn.stats;
    res
}

fn fail(id: usize, mut res: ReaderResult, error: String, quiet: bool) -> ReaderResult {
    if !quiet {
        eprintln!("rtsp-load: reader {id}: {error}");
    }
    res.error = Some(error);
    res
}

/// CPU ticks (utime+stime), VmRSS and VmHWM (KiB) of a process; "self" for this one.
#[derive(Clone, Copy)]
struct Sample {
    ticks: Option<u64>,
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
}

fn sample(pid: &str) -> Sample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    // Fields after the ")" that closes the command name: state is the 1st, utime the 12th.
    let ticks = stat.as_deref().and_then(|s| {
        let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Sample {
        ticks,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// Busy clock ticks of the whole machine, all CPUs (first line of /proc/stat: user, nice,
/// system, irq, softirq, steal; not idle and iowait; guest time is inside user already).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map_while(|v| v.parse().ok())
        .collect();
    Some(
        f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).copied().unwrap_or(0),
    )
}

fn sample_all(pids: &[String]) -> Vec<Sample> {
    pids.iter().map(|p| sample(p)).collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn json_f1(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_string(), |v| format!("{v:.1}"))
}

async fn run(args: Args) -> i32 {
    let url = match parse_url(&args.url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("rtsp-load: {e}");
            return 2;
        }
    };
    let mut pids: Vec<String> = vec!["self".into()];
    pids.extend(args.watch.iter().map(|p| p.to_string()));
    let t0 = Instant::now();
    let s_start = sample_all(&pids);

    let (phase_tx, phase_rx) = watch::channel(Phase::Ramp);
    let mut handles = Vec::with_capacity(args.readers);
    let mut first = 0;
    while first < args.readers {
        let last = (first + args.batch).min(args.readers);
        let mut dones = Vec::with_capacity(last - first);
        for id in first..last {
            let (tx, rx) = oneshot::channel();
            dones.push(rx);
            handles.push(tokio::spawn(reader(
                id,
                url.clone(),
                args.options,
                args.quiet,
                phase_rx.clone(),
                tx,
            )));
        }
        let _ = timeout(BATCH_TIMEOUT, async {
            for rx in dones {
                let _ = rx.await;
            }
        })
        .await;
        first = last;
        if first < args.readers && !args.batch_pause.is_zero() {
            sleep(args.batch_pause).await;
        }
    }
    let ramp = t0.elapsed();

    let s_window_start = sample_all(&pids);
    let busy0 = machine_busy_ticks();
    let w0 = Instant::now();
    phase_tx.send_replace(Phase::Window);
    sleep(Duration::from_secs_f64(args.seconds)).await;
    let s_window_end = sample_all(&pids);
    let busy1 = machine_busy_ticks();
    let window = w0.elapsed().as_secs_f64();
    phase_tx.send_replace(Phase::Stop);

    let join_deadline = Instant::now() + JOIN_TIMEOUT;
    let mut results = Vec::with_capacity(handles.len());
    let mut abandoned = 0usize;
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(join_deadline, h).await {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => {
                results.push(ReaderResult {
                    error: Some(format!("task: {e}")),
                    ..Default::default()
                });
            }
            Err(_) => {
                abort.abort();
                abandoned += 1;
            }
        }
    }
    let s_end = sample_all(&pids);
    let wall = t0.elapsed().as_secs_f64();

    // Totals.
    let played = results.iter().filter(|r| r.played).count();
    let with_data = results.iter().filter(|r| r.stats.rtp > 0).count();
    let setup_failures = results
        .iter()
        .filter(|r| !r.played && r.error.is_some())
        .count();
    let dropped = results
        .iter()
        .filter(|r| r.played && r.error.is_some())
        .count();
    let failures = results.iter().filter(|r| r.error.is_some()).count() + abandoned;
    let sum = |f: fn(&Stats) -> u64| results.iter().map(|r| f(&r.stats)).sum::<u64>();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for e in results.iter().filter_map(|r| r.error.as_deref()) {
        *errors.entry(e).or_default() += 1;
    }
    // Per played reader: kbit/s over the window (0 for one that played but never saw it).
    let mut kbps: Vec<f64> = results
        .iter()
        .filter(|r| r.played)
        .map(|r| r.window_bytes.unwrap_or(0) as f64 * 8.0 / window / 1000.0)
        .collect();
    kbps.sort_by(f64::total_cmp);
    let mut setup: Vec<f64> = results.iter().filter_map(|r| r.setup_ms).collect();
    setup.sort_by(f64::total_cmp);
    let window_bytes: u64 = results.iter().filter_map(|r| r.window_bytes).sum();

    let mut j = String::new();
    let _ = write!(
        j,
        "{{\"url\":{},\"readers_requested\":{},\"readers_played\":{played},\"readers_with_rtp\":{with_data},\
         \"failures\":{failures},\"setup_failures\":{setup_failures},\"dropped_while_streaming\":{dropped},\
         \"abandoned\":{abandoned},\"teardown_ok\":{},\"errors\":{{",
        json_str(&args.url),
        args.readers,
        results.iter().filter(|r| r.teardown_ok).count(),
    );
    for (i, (e, n)) in errors.iter().enumerate() {
        let _ = write!(j, "{}{}:{n}", if i > 0 { "," } else { "" }, json_str(e));
    }
    let _ = write!(
        j,
        "}},\"batch\":{},\"ramp_s\":{:.3},\"window_s\":{window:.3},\"wall_s\":{wall:.3},\
         \"total_bytes\":{},\"window_bytes\":{window_bytes},\"rtp_packets\":{},\"rtcp_packets\":{},\
         \"other_frames\":{},\"seq_gaps\":{},\"lost_packets\":{},\"reordered_packets\":{},\
         \"kbps_median\":{},\"kbps_p5\":{},\"kbps_min\":{},\"kbps_max\":{},\
         \"setup_ms_median\":{},\"setup_ms_max\":{},\"machine_busy_ticks_window\":{},\"processes\":[",
        args.batch,
        ramp.as_secs_f64(),
        sum(|s| s.bytes),
        sum(|s| s.rtp),
        sum(|s| s.rtcp),
        sum(|s| s.other_frames),
        sum(|s| s.gaps),
        sum(|s| s.lost),
        sum(|s| s.reordered),
        json_f1(percentile(&kbps, 50.0)),
        json_f1(percentile(&kbps, 5.0)),
        json_f1(kbps.first().copied()),
        json_f1(kbps.last().copied()),
        json_f1(percentile(&setup, 50.0)),
        json_f1(setup.last().copied()),
        json_opt(busy0.zip(busy1).map(|(a, b)| b.saturating_sub(a))),
    );
    for (i, pid) in pids.iter().enumerate() {
        let _ = write!(
            j,
            "{}{{\"pid\":{}",
            if i > 0 { "," } else { "" },
            json_str(pid)
        );
        for (name, s) in [
            ("start", &s_start[i]),
            ("window_start", &s_window_start[i]),
            ("window_end", &s_window_end[i]),
            ("end", &s_end[i]),
        ] {
            let _ = write!(
                j,
                ",\"{name}\":{{\"cpu_ticks\":{},\"rss_kib\":{},\"hwm_kib\":{}}}",
                json_opt(s.ticks),
                json_opt(s.rss_kib),
                json_opt(s.hwm_kib)
            );
        }
        j.push('}');
    }
    j.push_str("]}");
    println!("{j}");

    if played == args.readers && failures == 0 {
        0
    } else {
        1
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rtsp-load: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(run(args));
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_resolve_like_rtsp_clients_do() {
        let base = "rtsp://127.0.0.1:8554/live/";
        assert_eq!(
            resolve(base, "stream=0"),
            "rtsp://127.0.0.1:8554/live/stream=0"
        );
        assert_eq!(
            resolve("rtsp://h/live", "trackID=0"),
            "rtsp://h/live/trackID=0"
        );
        assert_eq!(resolve(base, "*"), base);
        assert_eq!(
            resolve(base, "rtsp://other:1/x/track1"),
            "rtsp://other:1/x/track1"
        );
        assert_eq!(
            resolve(base, "/abs/track"),
            "rtsp://127.0.0.1:8554/abs/track"
        );
    }

    #[test]
    fn sdp_controls_by_level() {
        let sdp = parse_sdp("v=0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=control:stream=0\r\nm=audio 0 RTP/AVP 97\r\n");
        assert_eq!(sdp.session_control.as_deref(), Some("*"));
        assert_eq!(sdp.media_controls, vec![Some("stream=0".to_string()), None]);
    }

    #[test]
    fn urls_and_transport() {
        assert_eq!(
            parse_url("rtsp://127.0.0.1:9/live").unwrap().addr,
            "127.0.0.1:9"
        );
        assert_eq!(parse_url("rtsp://cam/live").unwrap().addr, "cam:554");
        assert!(parse_url("http://x/").is_err());
        assert_eq!(
            interleaved_channels("RTP/AVP/TCP;unicast;interleaved=4-5;ssrc=1"),
            Some((4, 5))
        );
        assert_eq!(interleaved_channels("RTP/AVP/TCP;unicast"), None);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 5.0), Some(5.0));
        assert_eq!(percentile(&[], 5.0), None);
    }
}
