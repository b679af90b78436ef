//! hls-load: many concurrent clients following a live LL-HLS stream, for `bench/hls_load.sh`.
//!
//! Every client holds one HTTP/1.1 keep-alive connection and makes one request at a time. It
//! first fetches the playlist and starts at the live edge (the last part listed), then loops:
//!
//! - `--mode blocking` (LL-HLS): a blocking playlist reload `?_HLS_msn=M&_HLS_part=I` for the
//!   part named by the playlist's `EXT-X-PRELOAD-HINT` (answered once that part is complete),
//!   then a GET of every part listed that it has not fetched yet (normally exactly that one).
//! - `--mode poll` (a plain file server): sleep `--poll-ms`, GET the playlist without a query,
//!   then a GET of every part listed that it has not fetched yet (none, one or more).
//!
//! For every part fetched it records when the last byte of the body arrived (Unix ns). A side
//! task reads `--timestamps` (livefeed's `/PATH/timestamps.json`) every 2 s and once at the end,
//! so every part's `available_unix_ns` (when it completed on the server) and `capture_unix_ns`
//! (capture time of its first frame) are known; part-delivery latency = arrival − available.
//!
//! Clients start spread over `--ramp-ms`; nothing is counted during `--warmup` seconds, then
//! everything that completes during the next `--duration` seconds is (requests, bytes, errors,
//! part arrivals). The CPU time (utime + stime from `/proc/PID/stat`) of this process and of
//! every `--cpu NAME=PID` is read at the start and the end of that window, and so is the whole
//! machine's busy time (`/proc/stat`), so other processes' share can be told. Prints one JSON
//! object on stdout; `--arrivals FILE` also writes every counted part arrival as CSV.
//!
//! Any error (connect, timeout, non-2xx status, parse) is counted by kind; the client then
//! waits 100 ms and reconnects. Requests time out after 10 s.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

const USAGE: &str = "usage: hls-load --url http://127.0.0.1:PORT/PATH/index.m3u8 --timestamps URL
  [--mode blocking|poll] [--clients 500] [--warmup 5] [--duration 30] [--ramp-ms 2000]
  [--poll-ms 50] [--threads 1] [--cpu NAME=PID]... [--clk-tck 100] [--label TEXT] [--arrivals FILE]";

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_AFTER: Duration = Duration::from_millis(100);
const TIMESTAMPS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Blocking,
    Poll,
}

/// A parsed `http://HOST:PORT/PATH` URL (plain HTTP only).
#[derive(Debug, Clone)]
struct Url {
    authority: String,
    path: String,
}

impl Url {
    fn parse(s: &str) -> Result<Url, String> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {s}"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        Ok(Url {
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The directory of the path, with its trailing slash: where relative URIs resolve.
    fn dir(&self) -> &str {
        &self.path[..=self.path.rfind('/').unwrap_or(0)]
    }
}

#[derive(Debug)]
struct Config {
    playlist: Url,
    timestamps: Url,
    mode: Mode,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    ramp: Duration,
    poll: Duration,
    threads: usize,
    cpu: Vec<(String, u32)>,
    clk_tck: u64,
    label: String,
    arrivals: Option<String>,
}

fn parse_args() -> Result<Config, String> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut timestamps = None;
    let mut cfg = Config {
        playlist: Url::parse("http://x/")?,
        timestamps: Url::parse("http://x/")?,
        mode: Mode::Blocking,
        clients: 500,
        warmup: Duration::from_secs(5),
        duration: Duration::from_secs(30),
        ramp: Duration::from_millis(2000),
        poll: Duration::from_millis(50),
        threads: 1,
        cpu: Vec::new(),
        clk_tck: 100,
        label: String::new(),
        arrivals: None,
    };
    let secs = |v: String| -> Result<Duration, String> {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("not a number of seconds: {v}"))
    };
    let number = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v}"));
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(Url::parse(&value()?)?),
            "--timestamps" => timestamps = Some(Url::parse(&value()?)?),
            "--mode" => {
                cfg.mode = match value()?.as_str() {
                    "blocking" => Mode::Blocking,
                    "poll" => Mode::Poll,
                    other => return Err(format!("unknown mode {other}")),
                }
            }
            "--clients" => cfg.clients = number(value()?)? as usize,
            "--warmup" => cfg.warmup = secs(value()?)?,
            "--duration" => cfg.duration = secs(value()?)?,
            "--ramp-ms" => cfg.ramp = Duration::from_millis(number(value()?)?),
            "--poll-ms" => cfg.poll = Duration::from_millis(number(value()?)?),
            "--threads" => cfg.threads = (number(value()?)? as usize).max(1),
            "--clk-tck" => cfg.clk_tck = number(value()?)?.max(1),
            "--label" => cfg.label = value()?,
            "--arrivals" => cfg.arrivals = Some(value()?),
            "--cpu" => {
                let v = value()?;
                let (name, pid) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--cpu wants NAME=PID, got {v}"))?;
                cfg.cpu
                    .push((name.to_string(), number(pid.to_string())? as u32));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    cfg.playlist = url.ok_or("--url is required")?;
    cfg.timestamps = timestamps.ok_or("--timestamps is required")?;
    Ok(cfg)
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line are the 12th and 13th after the command name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU time the whole machine spent busy (all CPUs: user, nice, system, irq, softirq, steal),
/// in clock ticks, from the first line of `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some(
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum(),
    )
}

/// A part: (Media Sequence Number, index within the segment).
type PartId = (u64, u32);

/// The file name of a part URI (after a directory or URL prefix).
fn part_name(uri: &str) -> Option<&str> {
    uri.rsplit('/').next()
}

/// What comes before `part` in a part's name: the server's stream id and a dash
/// (`3f2a9c01-part4.0.m4s`), or nothing.
fn part_prefix(uri: &str) -> Option<String> {
    let name = part_name(uri)?;
    part_id(uri)?;
    Some(name[..name.find("part")?].to_string())
}

/// `partM.I.m4s` or `<stream id>-partM.I.m4s` (possibly after a directory or URL prefix).
fn part_id(uri: &str) -> Option<PartId> {
    let name = part_name(uri)?;
    let name = name.split_once('-').map_or(name, |(_, rest)| rest);
    let (msn, index) = name
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

/// What a client reads from a playlist: its parts in order and the preload-hinted part.
#[derive(Debug, Default, PartialEq)]
struct Listing {
    parts: Vec<PartId>,
    hint: Option<PartId>,
    /// What part names start with (the stream id), from the preload hint.
    prefix: String,
}

fn quoted_uri(line: &str) -> Option<&str> {
    let start = line.find("URI=\"")? + 5;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

fn parse_playlist(text: &str) -> Listing {
    let mut listing = Listing::default();
    for line in text.lines() {
        if line.starts_with("#EXT-X-PART:") {
            if let Some(id) = quoted_uri(line).and_then(part_id) {
                listing.parts.push(id);
            }
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") && line.contains("TYPE=PART") {
            listing.hint = quoted_uri(line).and_then(part_id);
            listing.prefix = quoted_uri(line).and_then(part_prefix).unwrap_or_default();
        }
    }
    listing
}

/// What one client counted inside the window.
#[derive(Default)]
struct ClientStats {
    playlist_requests: u64,
    part_requests: u64,
    bytes: u64,
    connects: u64,
    errors: BTreeMap<String, u64>,
    /// (part, Unix ns at which its last byte arrived)
    arrivals: Vec<(PartId, u64)>,
    /// Request sent → last byte, for part GETs, in ns.
    part_get_ns: Vec<u64>,
}

/// The counting window: start (Instant) and end, shared by every client.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn counts(&self, at: Instant) -> bool {
        at >= self.start && at <= self.end
    }
}

type Sender = SendRequest<Empty<Bytes>>;

async fn connect(authority: &str) -> Result<Sender, String> {
    let tcp = TcpStream::connect(authority)
        .await
        .map_err(|_| "connect".to_string())?;
    tcp.set_nodelay(true).map_err(|_| "connect".to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|_| "handshake".to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// GET `path`; the body (2xx only) and the Instant at which its last byte arrived.
async fn get(sender: &mut Sender, authority: &str, path: &str) -> Result<(Bytes, Instant), String> {
    let fetch = async {
        sender.ready().await.map_err(|_| "closed".to_string())?;
        let request = Request::get(path)
            .header(header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|_| "request".to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| "send".to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "body".to_string())?
            .to_bytes();
        let done = Instant::now();
        if !status.is_success() {
            return Err(format!("http_{}", status.as_u16()));
        }
        Ok((body, done))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err("timeout".to_string()))
}

struct Client<'a> {
    cfg: &'a Config,
    window: Window,
    stats: ClientStats,
    /// What part names start with, from the last playlist.
    part_prefix: String,
}

impl Client<'_> {
    async fn playlist(
        &mut self,
        sender: &mut Sender,
        wait_for: Option<PartId>,
    ) -> Result<Listing, String> {
        let path = match wait_for {
            Some((msn, part)) => {
                format!("{}?_HLS_msn={msn}&_HLS_part={part}", self.cfg.playlist.path)
            }
            None => self.cfg.playlist.path.clone(),
        };
        let (body, done) = get(sender, &self.cfg.playlist.authority, &path).await?;
        if self.window.counts(done) {
            self.stats.playlist_requests += 1;
            self.stats.bytes += body.len() as u64;
        }
        let text = std::str::from_utf8(&body).map_err(|_| "playlist_utf8".to_string())?;
        let listing = parse_playlist(text);
        self.part_prefix.clone_from(&listing.prefix);
        Ok(listing)
    }

    async fn part(&mut self, sender: &mut Sender, (msn, index): PartId) -> Result<(), String> {
        let path = format!(
            "{}{}part{msn}.{index}.m4s",
            self.cfg.playlist.dir(),
            self.part_prefix
        );
        let sent = Instant::now();
        let (body, done) = get(sender, &self.cfg.playlist.authority, &path).await?;
        let arrived = unix_now_ns();
        if self.window.counts(done) {
            self.stats.part_requests += 1;
            self.stats.bytes += body.len() as u64;
            self.stats.arrivals.push(((msn, index), arrived));
            self.stats.part_get_ns.push((done - sent).as_nanos() as u64);
        }
        Ok(())
    }

    /// Follows the stream on one connection until an error.
    async fn follow(&mut self, sender: &mut Sender) -> Result<(), String> {
        let first = self.playlist(sender, None).await?;
        let mut last = first.parts.last().copied();
        let mut hint = first.hint;
        loop {
            let listing = match (self.cfg.mode, hint) {
                (Mode::Blocking, Some(next)) => self.playlist(sender, Some(next)).await?,
                (Mode::Blocking, None) | (Mode::Poll, _) => {
                    tokio::time::sleep(self.cfg.poll).await;
                    self.playlist(sender, None).await?
                }
            };
            for &id in &listing.parts {
                if last.is_none_or(|l| id > l) {
                    self.part(sender, id).await?;
                    last = Some(id);
                }
            }
            hint = listing.hint;
        }
    }

    fn error(&mut self, kind: String) {
        if self.window.counts(Instant::now()) {
            *self.stats.errors.entry(kind).or_default() += 1;
        }
    }

    async fn run(&mut self, delay: Duration) {
        tokio::time::sleep(delay).await;
        loop {
            match connect(&self.cfg.playlist.authority).await {
                Ok(mut sender) => {
                    if self.window.counts(Instant::now()) {
                        self.stats.connects += 1;
                    }
                    if let Err(kind) = self.follow(&mut sender).await {
                        self.error(kind);
                    }
                }
                Err(kind) => self.error(kind),
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
}

/// available_unix_ns and capture_unix_ns of every part seen in timestamps.json.
type Times = HashMap<PartId, (u64, Option<u64>)>;

async fn read_timestamps(url: &Url, times: &Mutex<Times>) -> Result<(), String> {
    let mut sender = connect(&url.authority).await?;
    let (body, _) = get(&mut sender, &url.authority, &url.path).await?;
    let doc: Value = serde_json::from_slice(&body).map_err(|_| "timestamps_json".to_string())?;
    let mut times = times.lock().unwrap_or_else(|p| p.into_inner());
    let segments = doc["segments"].as_array().cloned().unwrap_or_default();
    for part in segments
        .iter()
        .flat_map(|s| s["parts"].as_array().cloned().unwrap_or_default())
    {
        let id = part["uri"].as_str().and_then(part_id);
        if let (Some(id), Some(available)) = (id, part["available_unix_ns"].as_u64()) {
            times.insert(id, (available, part["capture_unix_ns"].as_u64()));
        }
    }
    Ok(())
}

/// n, p50, p95, p99, min, max (nearest rank) of `values` in ms, given in ns (signed).
fn summary_ms(values: &mut [i64]) -> Value {
    if values.is_empty() {
        return json!({ "n": 0 });
    }
    values.sort_unstable();
    let rank = |p: f64| {
        let i = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[i.clamp(1, values.len()) - 1] as f64 / 1e6
    };
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    json!({
        "n": values.len(),
        "p50": round(rank(50.0)),
        "p95": round(rank(95.0)),
        "p99": round(rank(99.0)),
        "min": round(values[0] as f64 / 1e6),
        "max": round(values[values.len() - 1] as f64 / 1e6),
    })
}

async fn run(cfg: Config) -> Result<Value, String> {
    let cfg: &'static Config = Box::leak(Box::new(cfg));
    let t0 = Instant::now();
    let window = Window {
        start: t0 + cfg.warmup,
        end: t0 + cfg.warmup + cfg.duration,
    };
    let times: &'static Mutex<Times> = Box::leak(Box::new(Mutex::new(HashMap::new())));
    let timestamp_errors = Arc::new(Mutex::new(0u64));
    let poller = {
        let errors = timestamp_errors.clone();
        tokio::spawn(async move {
            loop {
                if read_timestamps(&cfg.timestamps, times).await.is_err() {
                    *errors.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                tokio::time::sleep(TIMESTAMPS_EVERY).await;
            }
        })
    };
    let mut tasks = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients {
        let delay = cfg.ramp.mul_f64(i as f64 / cfg.clients.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            let mut client = Client {
                cfg,
                window,
                stats: ClientStats::default(),
                part_prefix: String::new(),
            };
            let _ = tokio::time::timeout_at(window.end.into(), client.run(delay)).await;
            client.stats
        }));
    }
    tokio::time::sleep_until(window.start.into()).await;
    let watched: Vec<(String, u32)> =
        std::iter::once(("load_generator".to_string(), std::process::id()))
            .chain(cfg.cpu.iter().cloned())
            .collect();
    let cpu_before: Vec<Option<u64>> = watched.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
    let busy_before = machine_busy_ticks();
    let window_start_unix = unix_now_ns();
    tokio::time::sleep_until(window.end.into()).await;
    let cpu_after: Vec<Option<u64>> = watched.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
    let busy_after = machine_busy_ticks();
    let window_end_unix = unix_now_ns();
    let window_secs = (window.end - window.start).as_secs_f64();

    let mut all = Vec::with_capacity(cfg.clients);
    for task in tasks {
        all.push(task.await.map_err(|e| format!("client task failed: {e}"))?);
    }
    poller.abort();
    if read_timestamps(&cfg.timestamps, times).await.is_err() {
        *timestamp_errors.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
    let times = times.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut playlists, mut parts, mut bytes, mut connects) = (0u64, 0u64, 0u64, 0u64);
    let mut delivery = Vec::new();
    let mut from_capture = Vec::new();
    let mut part_get = Vec::new();
    let mut unmatched = 0u64;
    let mut per_client = Vec::with_capacity(all.len());
    let mut csv = String::new();
    for stats in &all {
        playlists += stats.playlist_requests;
        parts += stats.part_requests;
        bytes += stats.bytes;
        connects += stats.connects;
        for (kind, n) in &stats.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
        per_client.push(stats.arrivals.len() as i64);
        part_get.extend(stats.part_get_ns.iter().map(|&ns| ns as i64));
        for &(id, arrived) in &stats.arrivals {
            match times.get(&id) {
                Some(&(available, capture)) => {
                    delivery.push(arrived as i64 - available as i64);
                    if let Some(c) = capture {
                        from_capture.push(arrived as i64 - c as i64);
                    }
                    if cfg.arrivals.is_some() {
                        csv.push_str(&format!("{},{},{arrived},{available}\n", id.0, id.1));
                    }
                }
                None => unmatched += 1,
            }
        }
    }
    if let Some(path) = &cfg.arrivals {
        let mut file = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
        file.write_all(b"msn,part,arrival_unix_ns,available_unix_ns\n")
            .and_then(|_| file.write_all(csv.as_bytes()))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    let published = times
        .values()
        .filter(|(available, _)| (window_start_unix..=window_end_unix).contains(available))
        .count();
    let mut cpu = serde_json::Map::new();
    for ((name, _), (before, after)) in watched.iter().zip(cpu_before.iter().zip(&cpu_after)) {
        let secs = match (before, after) {
            (Some(b), Some(a)) => json!((a.saturating_sub(*b)) as f64 / cfg.clk_tck as f64),
            _ => Value::Null,
        };
        cpu.insert(name.clone(), secs);
    }
    let machine_busy = match (busy_before, busy_after) {
        (Some(b), Some(a)) => json!((a.saturating_sub(b)) as f64 / cfg.clk_tck as f64),
        _ => Value::Null,
    };
    let requests = playlists + parts;
    let error_total: u64 = errors.values().sum();
    Ok(json!({
        "label": cfg.label,
        "mode": match cfg.mode { Mode::Blocking => "blocking", Mode::Poll => "poll" },
        "url": format!("http://{}{}", cfg.playlist.authority, cfg.playlist.path),
        "clients": cfg.clients,
        "threads": cfg.threads,
        "poll_ms": cfg.poll.as_millis() as u64,
        "warmup_s": cfg.warmup.as_secs_f64(),
        "window_s": window_secs,
        "requests": requests,
        "playlist_requests": playlists,
        "part_requests": parts,
        "requests_per_s": (requests as f64 / window_secs * 10.0).round() / 10.0,
        "mbytes_per_s": (bytes as f64 / window_secs / 1e6 * 100.0).round() / 100.0,
        "connects_in_window": connects,
        "errors": error_total,
        "errors_by_kind": errors,
        "parts_published_in_window": published,
        "parts_fetched": parts,
        "parts_unmatched": unmatched,
        "parts_per_client": summary_ms(&mut per_client.iter().map(|n| n * 1_000_000).collect::<Vec<_>>()),
        "delivery_ms": summary_ms(&mut delivery),
        "capture_to_client_ms": summary_ms(&mut from_capture),
        "part_get_ms": summary_ms(&mut part_get),
        "cpu_s": cpu,
        "machine_busy_cpu_s": machine_busy,
        "timestamps_errors": *timestamp_errors.lock().unwrap_or_else(|p| p.into_inner()),
    }))
}

fn main() {
    let cfg = match parse_args() {
        Ok(cfg) => cfg,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("hls-load: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hls-load: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("hls-load: {e}");
            std::process::exit(1);
        }
    }
    // Client connections may still be open; do not wait for them.
    runtime.shutdown_background();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_are_read() {
        let text = "#EXTM3U\n#EXT-X-PART:DURATION=0.1,URI=\"part4.0.m4s\",INDEPENDENT=YES\n\
                    #EXTINF:1.0,\nseg4.m4s\n#EXT-X-PART:DURATION=0.1,URI=\"http://h/live/part5.0.m4s\"\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part5.1.m4s\"\n";
        assert_eq!(
            parse_playlist(text),
            Listing {
                parts: vec![(4, 0), (5, 0)],
                hint: Some((5, 1)),
                prefix: String::new(),
            }
        );
        let named = "#EXT-X-PART:DURATION=0.1,URI=\"ab12-part4.0.m4s\"\n\
                     #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ab12-part4.1.m4s\"\n";
        assert_eq!(
            parse_playlist(named),
            Listing {
                parts: vec![(4, 0)],
                hint: Some((4, 1)),
                prefix: "ab12-".into(),
            }
        );
        assert_eq!(part_id("part12.3.m4s"), Some((12, 3)));
        assert_eq!(part_id("seg12.m4s"), None);
    }

    #[test]
    fn urls_split() {
        let url = Url::parse("http://127.0.0.1:8888/live/index.m3u8").expect("url");
        assert_eq!(url.authority, "127.0.0.1:8888");
        assert_eq!(url.dir(), "/live/");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        let s = summary_ms(&mut v);
        assert_eq!(s["p50"], 50.0);
        assert_eq!(s["p99"], 99.0);
        assert_eq!(s["max"], 100.0);
    }
}
