//! whep-load: many WHEP (WebRTC-HTTP egress) viewers of one stream, for bench/webrtc_load.sh.
//!
//! ```text
//! whep-load --url http://127.0.0.1:PORT/live/whep --viewers N --seconds S
//! ```
//!
//! Each viewer runs on its own thread and is what a browser would be, minus the decoder: a str0m
//! [`Rtc`] with one recvonly H.264 video transceiver, its own UDP socket on 127.0.0.1 (added as
//! its only, host, ICE candidate), an SDP offer POSTed to the WHEP endpoint over a minimal
//! HTTP/1.1 client on `std::net::TcpStream`, and the `201 Created` answer applied. It then drives
//! the `Rtc` (timeouts and datagrams) for S seconds from the answer, counting every frame str0m
//! hands over (`Event::MediaData`: one reassembled H.264 access unit, Annex B) and its bytes, and
//! reading the livefeed capture stamp (the SEI `user_data_unregistered` message with the UUID
//! `livefeed-stamp\0\1`) of each, so capture → received here is measured too. At the end it
//! DELETEs its session (the `Location` of the answer).
//!
//! Output: one JSON object on stdout, with a line per viewer (connected, frames, bytes, frames per
//! second and kbit/s from its first frame to the end, frames that str0m flagged as not contiguous
//! after a loss, set-up times, the age of its first frame, capture → received percentiles) and
//! the totals. Exit status 0 when
//! every viewer connected and received frames, 1 otherwise (the JSON is printed either way),
//! 2 for bad arguments.
//!
//! Loopback only by intent: every viewer binds 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

const USAGE: &str = "usage: whep-load --url http://HOST:PORT/PATH/whep [--viewers N] [--seconds S]";

/// The UUID of the livefeed capture stamp (see `livefeed-media/src/sei.rs`).
const STAMP_UUID: &[u8; 16] = b"livefeed-stamp\x00\x01";

/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a viewer keeps asking for a place among the sessions still connecting.
const ADMISSION_WAIT: Duration = Duration::from_secs(60);

struct Args {
    url: String,
    viewers: usize,
    seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut viewers = 1;
    let mut seconds = 10.0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--viewers" => viewers = value()?.parse().map_err(|e| format!("--viewers: {e}"))?,
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    if viewers == 0 || !(seconds > 0.0 && seconds < 86_400.0) {
        return Err("--viewers must be ≥ 1 and --seconds in (0, 86400)".into());
    }
    Ok(Args {
        url,
        viewers,
        seconds,
    })
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client: one request per connection (`Connection: close`), body by
// Content-Length or up to EOF. Enough for WHEP's POST and DELETE; no TLS, no chunked encoding.

/// `http://HOST:PORT/PATH` → (`HOST:PORT`, `/PATH`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((authority.to_string(), path.to_string()))
}

struct Response {
    status: u16,
    location: Option<String>,
    body: String,
}

fn http(authority: &str, method: &str, path: &str, sdp: Option<&str>) -> Result<Response, String> {
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).ok();
    let body = sdp.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if sdp.is_some() {
        request.push_str("Content-Type: application/sdp\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(response) = parse_response(&buf)? {
            return Ok(response);
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return parse_response(&buf)?
                    .or_else(|| parse_head(&buf).map(|(r, at, _)| with_body(r, &buf[at..])))
                    .ok_or_else(|| "connection closed before a whole response".into())
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

/// The status line and headers: (response without body, offset of the body, Content-Length).
fn parse_head(buf: &[u8]) -> Option<(Response, usize, Option<usize>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut location = None;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("location") {
            location = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        }
    }
    let response = Response {
        status,
        location,
        body: String::new(),
    };
    Some((response, end + 4, length))
}

fn with_body(mut response: Response, body: &[u8]) -> Response {
    response.body = String::from_utf8_lossy(body).into_owned();
    response
}

/// A whole response once the head and Content-Length bytes of body are in `buf`.
fn parse_response(buf: &[u8]) -> Result<Option<Response>, String> {
    let Some((response, at, length)) = parse_head(buf) else {
        return Ok(None);
    };
    match length {
        Some(n) if buf.len() >= at + n => Ok(Some(with_body(response, &buf[at..at + n]))),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// One viewer.

#[derive(Default)]
struct Report {
    connected: bool,
    frames: u64,
    bytes: u64,
    /// Frames str0m marked `contiguous: false` (a gap in the RTP sequence before them).
    not_contiguous: u64,
    /// From the thread's start: answer applied, ICE+DTLS connected, first frame.
    answer_ms: Option<f64>,
    connected_ms: Option<f64>,
    first_frame_ms: Option<f64>,
    /// Seconds from the first frame to the end of the run (the rate window).
    media_secs: f64,
    /// Capture → received here (wall clock at the frame's last packet minus its SEI stamp), µs.
    latencies_us: Vec<u64>,
    /// The same for the first stamped frame: how old the picture a viewer starts with is (a
    /// viewer may start at the server's cached keyframe, up to a GOP old).
    first_frame_age_ms: Option<f64>,
    ice_disconnected: bool,
    deleted: bool,
    error: Option<String>,
    /// POSTs answered 503 "still connecting" before this viewer was admitted.
    admission_retries: u64,
    /// From the thread's start: the POST that was admitted.
    admitted_ms: Option<f64>,
}

fn run_viewer(authority: &str, path: &str, seconds: f64) -> Report {
    let mut report = Report::default();
    if let Err(e) = viewer(authority, path, seconds, &mut report) {
        report.error = Some(e);
    }
    report
}

fn viewer(authority: &str, path: &str, seconds: f64, report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let ms = |t: Instant| (t - started).as_secs_f64() * 1000.0;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;

    // A recvonly H.264 transceiver; str0m offers its H.264 variants (modes 0 and 1).
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().ok_or("str0m made no offer")?;

    // The server admits a few sessions from one address while they connect (503 "still
    // connecting" beyond): wait for a place, as long as ADMISSION_WAIT allows.
    let offer = offer.to_sdp_string();
    let mut answer = http(authority, "POST", path, Some(&offer))?;
    while answer.status == 503
        && answer.body.contains("still connecting")
        && started.elapsed() < ADMISSION_WAIT
    {
        report.admission_retries += 1;
        thread::sleep(Duration::from_millis(50 + u64::from(local.port() % 50)));
        answer = http(authority, "POST", path, Some(&offer))?;
    }
    report.admitted_ms = Some(ms(Instant::now()));
    if answer.status != 201 {
        return Err(format!(
            "POST {path}: {} {}",
            answer.status,
            answer.body.trim()
        ));
    }
    let session = answer.location.ok_or("201 without a Location")?;
    let sdp = SdpAnswer::from_sdp_string(&answer.body).map_err(|e| format!("answer: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, sdp)
        .map_err(|e| format!("accept answer: {e}"))?;
    let answered = Instant::now();
    report.answer_ms = Some(ms(answered));

    let result = drive(
        &mut rtc,
        &socket,
        local,
        answered + Duration::from_secs_f64(seconds),
        report,
        &ms,
    );

    // End the session whatever happened, then say what did.
    report.deleted = matches!(http(authority, "DELETE", &session, None), Ok(r) if r.status < 300);
    result
}

/// Drives `rtc` until `end`: sends what it wants sent, feeds it datagrams and timeouts, and
/// counts its media.
fn drive(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    local: SocketAddr,
    end: Instant,
    report: &mut Report,
    ms: &dyn Fn(Instant) -> f64,
) -> Result<(), String> {
    let mut buf = vec![0u8; 2048];
    let mut first_frame = None;
    loop {
        let wake = match rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                socket
                    .send_to(&t.contents, t.destination)
                    .map_err(|e| format!("send: {e}"))?;
                continue;
            }
            Output::Event(event) => {
                match event {
                    Event::Connected => {
                        report.connected = true;
                        report.connected_ms = Some(ms(Instant::now()));
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        report.ice_disconnected = true;
                    }
                    Event::MediaData(m) => {
                        let now = Instant::now();
                        first_frame.get_or_insert(now);
                        report.first_frame_ms.get_or_insert_with(|| ms(now));
                        report.frames += 1;
                        report.bytes += m.data.len() as u64;
                        if !m.contiguous {
                            report.not_contiguous += 1;
                        }
                        if let Some(captured) = capture_unix_ns(&m.data) {
                            let age_us = unix_ns_now().saturating_sub(captured) / 1000;
                            report
                                .first_frame_age_ms
                                .get_or_insert(age_us as f64 / 1000.0);
                            report.latencies_us.push(age_us);
                        }
                    }
                    _ => {}
                }
                continue;
            }
        };
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wait = wake.min(end).saturating_duration_since(now);
        let input = if wait.is_zero() {
            Input::Timeout(now)
        } else {
            socket
                .set_read_timeout(Some(wait))
                .map_err(|e| e.to_string())?;
            match socket.recv_from(&mut buf) {
                Ok((n, source)) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents: buf[..n]
                            .try_into()
                            .map_err(|e| format!("datagram: {e:?}"))?,
                    },
                ),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Input::Timeout(Instant::now())
                }
                Err(e) => return Err(format!("receive: {e}")),
            }
        };
        // A datagram str0m does not recognise is not worth ending the viewer for.
        if let Err(e) = rtc.handle_input(input) {
            report
                .error
                .get_or_insert_with(|| format!("str0m input: {e}"));
        }
    }
    if let Some(first) = first_frame {
        report.media_secs = (end - first).as_secs_f64();
    }
    Ok(())
}

fn unix_ns_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The capture time (Unix ns) of the livefeed SEI stamp in an Annex B access unit: the 8 bytes
/// after the stamp's UUID, with emulation prevention bytes (`00 00 03`) removed.
fn capture_unix_ns(annex_b: &[u8]) -> Option<u64> {
    let at = annex_b.windows(16).position(|w| w == STAMP_UUID)? + 16;
    let mut value = 0u64;
    let (mut taken, mut zeros) = (0, 0);
    for &b in &annex_b[at..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        value = value << 8 | u64::from(b);
        taken += 1;
        if taken == 8 {
            return Some(value);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Output.

/// Nearest-rank percentile of sorted values.
fn rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[i.clamp(1, sorted.len()) - 1])
}

fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"n":…,"p50":…,…}` in ms from µs samples (sorted in place).
fn latency_json(samples: &mut [u64], with_p99: bool) -> String {
    samples.sort_unstable();
    let ms = |p: f64| num(rank(samples, p).map(|us| us as f64 / 1000.0));
    let p99 = if with_p99 {
        format!(",\"p99\":{}", ms(99.0))
    } else {
        String::new()
    };
    format!(
        "{{\"n\":{},\"p50\":{},\"p95\":{}{p99},\"max\":{}}}",
        samples.len(),
        ms(50.0),
        ms(95.0),
        ms(100.0)
    )
}

fn rate(count: u64, secs: f64, scale: f64) -> Option<f64> {
    (secs > 0.0).then(|| count as f64 * scale / secs)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("whep-load: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (authority, path) = match split_url(&args.url) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("whep-load: {e}");
            return ExitCode::from(2);
        }
    };

    let started = Instant::now();
    let handles: Vec<_> = (0..args.viewers)
        .map(|_| {
            let (authority, path) = (authority.clone(), path.clone());
            thread::spawn(move || run_viewer(&authority, &path, args.seconds))
        })
        .collect();
    let mut reports: Vec<Report> = handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| Report {
                error: Some("viewer thread panicked".into()),
                ..Report::default()
            })
        })
        .collect();
    let wall = started.elapsed().as_secs_f64();

    let mut lines = Vec::new();
    let mut all_latencies = Vec::new();
    for (i, r) in reports.iter_mut().enumerate() {
        all_latencies.extend_from_slice(&r.latencies_us);
        lines.push(format!(
            "{{\"viewer\":{i},\"connected\":{},\"frames\":{},\"bytes\":{},\"fps\":{},\"kbps\":{},\
             \"not_contiguous\":{},\"answer_ms\":{},\"connected_ms\":{},\"first_frame_ms\":{},\
             \"first_frame_age_ms\":{},\"capture_to_received_ms\":{},\"ice_disconnected\":{},\"deleted\":{},\
             \"admission_retries\":{},\"admitted_ms\":{},\"error\":{}}}",
            r.connected,
            r.frames,
            r.bytes,
            num(rate(r.frames, r.media_secs, 1.0)),
            num(rate(r.bytes, r.media_secs, 8.0 / 1000.0)),
            r.not_contiguous,
            num(r.answer_ms),
            num(r.connected_ms),
            num(r.first_frame_ms),
            num(r.first_frame_age_ms),
            latency_json(&mut r.latencies_us, false),
            r.ice_disconnected,
            r.deleted,
            r.admission_retries,
            num(r.admitted_ms),
            r.error.as_deref().map_or("null".into(), json_string),
        ));
    }

    let ok = reports
        .iter()
        .filter(|r| r.connected && r.frames > 0)
        .count();
    let mut frames: Vec<u64> = reports.iter().map(|r| r.frames).collect();
    frames.sort_unstable();
    let mut fps: Vec<f64> = reports
        .iter()
        .map(|r| rate(r.frames, r.media_secs, 1.0).unwrap_or(0.0))
        .collect();
    fps.sort_by(f64::total_cmp);
    let mut kbps: Vec<f64> = reports
        .iter()
        .map(|r| rate(r.bytes, r.media_secs, 8.0 / 1000.0).unwrap_or(0.0))
        .collect();
    kbps.sort_by(f64::total_cmp);
    let totals = format!(
        "{{\"viewers\":{},\"connected\":{},\"with_frames\":{ok},\"deleted\":{},\"errors\":{},\
         \"frames\":{},\"bytes\":{},\"not_contiguous\":{},\"frames_min\":{},\"frames_median\":{},\
         \"fps_min\":{},\"fps_median\":{},\"kbps_min\":{},\"kbps_median\":{},\
         \"capture_to_received_ms\":{},\"wall_secs\":{wall:.2}}}",
        reports.len(),
        reports.iter().filter(|r| r.connected).count(),
        reports.iter().filter(|r| r.deleted).count(),
        reports.iter().filter(|r| r.error.is_some()).count(),
        frames.iter().sum::<u64>(),
        reports.iter().map(|r| r.bytes).sum::<u64>(),
        reports.iter().map(|r| r.not_contiguous).sum::<u64>(),
        frames.first().copied().unwrap_or(0),
        rank(&frames, 50.0).unwrap_or(0),
        num(fps.first().copied()),
        num(rank(&fps, 50.0)),
        num(kbps.first().copied()),
        num(rank(&kbps, 50.0)),
        latency_json(&mut all_latencies, true),
    );
    println!(
        "{{\"url\":{},\"seconds\":{},\"viewers\":[\n{}\n],\n\"totals\":{totals}}}",
        json_string(&args.url),
        args.seconds,
        lines.join(",\n")
    );
    if ok == reports.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_read_through_emulation_prevention() {
        // ns = 00 00 00 01 00 00 00 02: each "00 00 00" is written "00 00 03 00".
        let mut au = vec![0, 0, 0, 1, 6, 5, 32];
        au.extend_from_slice(STAMP_UUID);
        au.extend_from_slice(&[0, 0, 3, 0, 1, 0, 0, 3, 0, 2]);
        assert_eq!(capture_unix_ns(&au), Some(0x0000_0001_0000_0002));
        assert_eq!(capture_unix_ns(&au[..20]), None);
    }

    #[test]
    fn response_needs_the_whole_body() {
        let full =
            b"HTTP/1.1 201 Created\r\nLocation: /live/whep/7\r\ncontent-length: 3\r\n\r\nv=0";
        assert!(parse_response(&full[..full.len() - 1]).unwrap().is_none());
        let r = parse_response(full).unwrap().unwrap();
        assert_eq!(
            (r.status, r.location.as_deref(), r.body.as_str()),
            (201, Some("/live/whep/7"), "v=0")
        );
    }

    #[test]
    fn url_splits() {
        assert_eq!(
            split_url("http://127.0.0.1:8888/live/whep").unwrap(),
            ("127.0.0.1:8888".into(), "/live/whep".into())
        );
        assert!(split_url("https://x/").is_err());
    }
}
