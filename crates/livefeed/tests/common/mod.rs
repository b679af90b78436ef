//! Helpers for tests that run real processes: the livefeed binary, ffmpeg, GStreamer.
//!
//! Every process is started through [`Proc`], which kills it (by PID, only ours) when dropped,
//! even when the test fails. Servers bind port 0 and report the port they got.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A child process that is killed when dropped. Its stdout and stderr are drained from the
/// start by background threads, so a chatty process never blocks on a full pipe.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    lines: Option<mpsc::Receiver<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts `cmd` with piped stdout/stderr.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({e}); .ci/run installs it"));
        Proc::from_child(name, child)
    }

    /// Guards an already started child (draining whichever of its outputs are piped).
    pub fn from_child(name: &str, mut child: Child) -> Proc {
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(drain(out, stdout.clone(), Some(tx)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(drain(err, stderr.clone(), None));
        }
        Proc {
            name: name.to_string(),
            child: Some(child),
            stdout,
            stderr,
            lines: Some(rx),
            readers,
        }
    }

    /// Waits up to `timeout` for the process to exit; returns what it printed.
    /// Kills it if it does not exit in time.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("not yet waited");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Output {
            name: self.name.clone(),
            success: status.is_some_and(|s| s.success()),
            timed_out: status.is_none(),
            stdout: lock(&self.stdout).clone(),
            stderr: lock(&self.stderr).clone(),
        }
    }

    /// Kills the process and returns what it printed.
    pub fn kill_and_collect(mut self) -> Output {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        self.wait(Duration::from_secs(5))
    }

    /// Waits for a stdout line matching `pred` (returned), or panics after `timeout`.
    pub fn wait_for_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let lines = self.lines.as_ref().expect("stdout piped");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "{} did not print the expected line within {timeout:?}; stderr:\n{}",
                    self.name,
                    lock(&self.stderr)
                ),
            }
        }
    }

    /// What the process has printed on stdout so far.
    pub fn stdout_so_far(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// What the process has printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lock(s: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn drain<R: Read + Send + 'static>(
    r: R,
    into: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if let Some(tx) = &lines {
                let _ = tx.send(line.clone());
            }
            let mut all = lock(&into);
            all.push_str(&line);
            all.push('\n');
        }
    })
}

/// What a finished process printed.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub success: bool,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with everything the process printed unless it succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success,
            "{} failed (timed out: {})\n--- stdout\n{}\n--- stderr\n{}",
            self.name, self.timed_out, self.stdout, self.stderr
        );
        self
    }
}

/// Server options every test server takes: its own data directory, and loopback addresses on
/// ports the OS picks.
pub fn loopback_server_args(data_dir: &str) -> [&str; 12] {
    [
        "--data-dir",
        data_dir,
        "--rtsp-address",
        "127.0.0.1:0",
        "--http-address",
        "127.0.0.1:0",
        "--webrtc-address",
        "127.0.0.1:0",
        "--rtmp-address",
        "127.0.0.1:0",
        "--srt-address",
        "127.0.0.1:0",
    ]
}

/// The demo (no subcommand) with a temporary data directory and loopback ports, plus `args`.
pub fn demo_command(data: &TempDir, args: &[&str]) -> Command {
    let mut cmd = livefeed();
    cmd.args(loopback_server_args(data.path())).args(args);
    cmd
}

/// The livefeed binary under test.
pub fn livefeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livefeed"));
    cmd.env("RUST_LOG", "info");
    cmd
}

/// A running `livefeed serve` on free loopback ports, with its own metrics data directory.
pub struct TestServer {
    pub proc: Proc,
    pub port: u16,
    pub http_port: u16,
    pub rtmp_port: u16,
    /// The SRT listener's UDP port.
    pub srt_port: u16,
    pub data_dir: TempDir,
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new, empty, unique directory under the system temp dir.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> TestServer {
        Self::start_in(TempDir::new("livefeed-data"), extra)
    }

    /// Starts a server whose metrics store lives in `data_dir` (e.g. to restart on the same data).
    pub fn start_in(data_dir: TempDir, extra: &[&str]) -> TestServer {
        Self::launch(data_dir, &["serve"], extra)
    }

    /// Starts the demo (server, publisher and receiver in one process) for at most `secs`.
    pub fn demo(secs: u32) -> TestServer {
        Self::demo_with(secs, &[])
    }

    /// [`TestServer::demo`] with more options.
    pub fn demo_with(secs: u32, extra: &[&str]) -> TestServer {
        let secs = secs.to_string();
        Self::launch(TempDir::new("livefeed-data"), &["--duration", &secs], extra)
    }

    /// [`TestServer::start_with`] under an open-file limit of `limit` (soft and hard, set by
    /// util-linux's `prlimit`), so descriptor exhaustion is cheap to reach.
    pub fn start_with_open_files(limit: u32, extra: &[&str]) -> TestServer {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={limit}:{limit}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_livefeed"))
            .env("RUST_LOG", "info");
        Self::launch_command(cmd, TempDir::new("livefeed-data"), &["serve"], extra)
    }

    fn launch(data_dir: TempDir, command: &[&str], extra: &[&str]) -> TestServer {
        Self::launch_command(livefeed(), data_dir, command, extra)
    }

    /// `livefeed serve` with HTTP and WebRTC (UDP and ICE-TCP) on `ip` (an address this test
    /// created, e.g. one end of a veth pair) and RTSP on loopback.
    pub fn start_at(ip: &str, extra: &[&str]) -> TestServer {
        let data_dir = TempDir::new("livefeed-data");
        let on_ip = format!("{ip}:0");
        let data = data_dir.path().to_string();
        let addresses = [
            "--data-dir",
            &data,
            "--rtsp-address",
            "127.0.0.1:0",
            "--http-address",
            &on_ip,
            "--webrtc-address",
            &on_ip,
            "--rtmp-address",
            "127.0.0.1:0",
            "--srt-address",
            "127.0.0.1:0",
        ];
        Self::launch_with(livefeed(), data_dir, &["serve"], &addresses, extra)
    }

    fn launch_command(
        cmd: Command,
        data_dir: TempDir,
        command: &[&str],
        extra: &[&str],
    ) -> TestServer {
        let data = data_dir.path().to_string();
        Self::launch_with(cmd, data_dir, command, &loopback_server_args(&data), extra)
    }

    /// Starts `cmd command` with the server's data directory and addresses (`addresses`) and
    /// then `extra`.
    fn launch_with(
        mut cmd: Command,
        data_dir: TempDir,
        command: &[&str],
        addresses: &[&str],
        extra: &[&str],
    ) -> TestServer {
        // Recordings (when a test starts one) stay in the temporary directory too; a
        // --record-dir flag wins over the variable.
        cmd.env("LIVEFEED_RECORD_DIR", data_dir.0.join("recordings"));
        cmd.args(command).args(addresses).args(extra);
        let proc = Proc::spawn(&format!("livefeed {}", command.join(" ")), &mut cmd);
        Self::started(proc, data_dir)
    }

    /// Waits for a launched server to say where it serves.
    fn started(mut proc: Proc, data_dir: TempDir) -> TestServer {
        let port = port_in(&proc.wait_for_line(Duration::from_secs(20), |l| {
            l.starts_with("livefeed serving RTSP on ")
        }));
        let http_port = port_in(&proc.wait_for_line(Duration::from_secs(20), |l| {
            l.starts_with("livefeed serving HTTP on ")
        }));
        let rtmp_port = port_in(&proc.wait_for_line(Duration::from_secs(20), |l| {
            l.starts_with("livefeed serving RTMP on ")
        }));
        let srt_port = port_in(&proc.wait_for_line(Duration::from_secs(20), |l| {
            l.starts_with("livefeed serving SRT on ")
        }));
        TestServer {
            proc,
            port,
            http_port,
            rtmp_port,
            srt_port,
            data_dir,
        }
    }

    /// `http://127.0.0.1:PORT` of this server.
    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The port of the first `ip:port` after "on " in a "livefeed serving … on ADDR …" line.
fn port_in(line: &str) -> u16 {
    line.split(" on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Starts `livefeed receive --json` of `url` for `secs` (plus `extra` options).
pub fn livefeed_receiver(url: &str, secs: u64, extra: &[&str]) -> Proc {
    let mut cmd = livefeed();
    cmd.args([
        "receive",
        "--url",
        url,
        "--duration",
        &secs.to_string(),
        "--json",
    ])
    .args(extra);
    Proc::spawn("livefeed receive", &mut cmd)
}

/// Starts `livefeed publish` of the test pattern to `url`.
pub fn livefeed_publisher(url: &str, transport: &str, extra: &[&str]) -> Proc {
    let mut cmd = livefeed();
    cmd.args(["publish", "--url", url, "--transport", transport])
        .args(extra);
    Proc::spawn("livefeed publish", &mut cmd)
}

/// Starts ffmpeg publishing `testsrc2` at 640x480 to `url` for `secs`.
pub fn ffmpeg_publisher(url: &str, transport: &str, secs: u32) -> Proc {
    ffmpeg_publisher_with(url, transport, secs, &[])
}

/// [`ffmpeg_publisher`] with more output options (e.g. a bitstream filter) before `-f rtsp`.
pub fn ffmpeg_publisher_with(url: &str, transport: &str, secs: u32, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg("testsrc2=size=640x480:rate=30")
    .args(["-t", &secs.to_string()])
    .args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "30",
    ])
    .args(extra)
    .args(["-f", "rtsp", "-rtsp_transport", transport, url]);
    Proc::spawn("ffmpeg publisher", &mut cmd)
}

/// ffmpeg publishing `testsrc2` and a sine tone encoded with `audio_codec` over `transport`.
pub fn ffmpeg_av_publisher(url: &str, transport: &str, audio_codec: &str, secs: u32) -> Proc {
    ffmpeg_av_publisher_with(url, transport, "libx264", audio_codec, secs)
}

/// [`ffmpeg_av_publisher`] with the video encoder `video_codec` (`libx264` or `libx265`, both
/// zero-latency, a keyframe each second).
pub fn ffmpeg_av_publisher_with(
    url: &str,
    transport: &str,
    video_codec: &str,
    audio_codec: &str,
    secs: u32,
) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", video_codec, "-preset", "ultrafast"])
        .args(["-tune", "zerolatency"])
        .args(["-pix_fmt", "yuv420p", "-g", "30"])
        .args(video_options(video_codec))
        .args(["-c:a", audio_codec.trim_end_matches("-latm")])
        .args(audio_options(audio_codec))
        .args(["-f", "rtsp", "-rtsp_transport", transport, url]);
    Proc::spawn("ffmpeg A/V publisher", &mut cmd)
}

/// libx265 is quiet only when told so.
fn video_options(codec: &str) -> &'static [&'static str] {
    match codec {
        "libx265" => &["-x265-params", "log-level=none"],
        _ => &[],
    }
}

/// G.711 is 8 kHz mono; `aac-latm` is AAC sent as MP4A-LATM (RFC 6416) rather than
/// MPEG4-GENERIC.
fn audio_options(codec: &str) -> &'static [&'static str] {
    match codec {
        "pcm_mulaw" | "pcm_alaw" => &["-ar", "8000", "-ac", "1"],
        "aac-latm" => &["-rtpflags", "latm"],
        _ => &[],
    }
}

/// A network namespace joined to this host by a veth pair: the viewer's side of a firewall.
/// `host_ip` is this side's address, `viewer_ip` the namespace's (a /30 of 10.231.0.0/16 of
/// its own). Dropping it deletes the namespace, and with it the link.
pub struct ViewerNetwork {
    pub name: String,
    pub host_ip: String,
    pub viewer_ip: String,
}

impl ViewerNetwork {
    pub fn new() -> ViewerNetwork {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let subnet = (pid % 1024) * 16 + n % 16; // one /30 of 16384 per namespace
        let base = format!("10.231.{}.{}", subnet / 64, (subnet % 64) * 4);
        let prefix = base
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        let last: u32 = base
            .rsplit('.')
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let network = ViewerNetwork {
            name: format!("lf-{pid}-{n}"),
            host_ip: format!("{prefix}.{}", last + 1),
            viewer_ip: format!("{prefix}.{}", last + 2),
        };
        let (host_if, viewer_if) = (
            format!("lfh{}x{n}", pid % 100_000),
            format!("lfv{}x{n}", pid % 100_000),
        );
        network.ip(&["netns", "add", &network.name]);
        network.ip(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            &viewer_if,
            "netns",
            &network.name,
        ]);
        network.ip(&[
            "addr",
            "add",
            &format!("{}/30", network.host_ip),
            "dev",
            &host_if,
        ]);
        network.ip(&["link", "set", &host_if, "up"]);
        let inside = ["netns", "exec", &network.name, "ip"];
        network.ip(&[
            &inside[..],
            &[
                "addr",
                "add",
                &format!("{}/30", network.viewer_ip),
                "dev",
                &viewer_if,
            ],
        ]
        .concat());
        network.ip(&[&inside[..], &["link", "set", &viewer_if, "up"]].concat());
        network.ip(&[&inside[..], &["link", "set", "lo", "up"]].concat());
        network
    }

    /// A firewall in the namespace that drops every UDP packet to this host: only TCP gets
    /// through.
    pub fn block_udp_to_host(&self) {
        let chain = "{ type filter hook output priority 0; policy accept; }";
        let host = self.host_ip.as_str();
        for rule in [
            &["add", "table", "inet", "livefeed"][..],
            &["add", "chain", "inet", "livefeed", "out", chain],
            &[
                "add", "rule", "inet", "livefeed", "out", "ip", "daddr", host, "meta", "l4proto",
                "udp", "drop",
            ],
        ] {
            let out = self.command("nft").args(rule).output().expect("run nft");
            assert!(
                out.status.success(),
                "nft {}: {}",
                rule.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `program`, to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {} (these tests need root for network namespaces)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ViewerNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A port free on 127.0.0.1 right now (for a peer whose configuration names its port: a
/// cache, a TURN server).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A port for a server a test starts later than it names the port (a camera that comes up
/// after the source pointing at it): free now and outside Linux's ephemeral range
/// (32768–60999), which every `bind(port 0)` and outgoing connection of the tests running in
/// parallel draws from, so none of them can take it meanwhile (a port from [`free_port`] was
/// taken that way: "cannot listen on 127.0.0.1:46231").
pub fn port_outside_ephemeral_range() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for attempt in 0u64..1000 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(attempt);
        let port = 20_000 + (hasher.finish() % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..30000");
}

/// A port free on `ip` right now.
pub fn free_port_on(ip: &str) -> u16 {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
    listener.local_addr().expect("address").port()
}

/// Runs a command to completion with a timeout.
pub fn run(name: &str, cmd: &mut Command, timeout: Duration) -> Output {
    Proc::spawn(name, cmd).wait(timeout)
}

/// Retries `attempt` until it succeeds or `timeout` passes (e.g. until a publisher is live).
pub fn retry<T>(timeout: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("gave up after {timeout:?}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Waits until a stream is being published on `url`: an RTSP DESCRIBE answers 200.
pub fn wait_for_stream(addr: &str, path: &str) {
    retry(Duration::from_secs(20), || {
        let resp = raw_exchange(
            addr,
            &format!("DESCRIBE rtsp://{addr}/{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
        );
        if resp.starts_with("RTSP/1.0 200") {
            Ok(())
        } else {
            Err(resp)
        }
    })
}

/// Sends raw bytes and returns what the server answers until it closes or 2 s pass.
pub fn raw_exchange(addr: &str, request: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut buf = vec![0u8; 8192];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The last JSON line with `"summary":true` in a livefeed `--json` run's stdout.
pub fn json_summary(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["summary"] == true)
        .unwrap_or_else(|| panic!("no summary in output:\n{stdout}"))
}

/// A raw RTSP connection that reads responses itself (skipping interleaved frames).
pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    pub fn connect(server: &TestServer) -> Raw {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// A connection whose source address is `ip` (any 127.x.y.z works on Linux loopback).
    pub fn connect_from(server: &TestServer, ip: [u8; 4]) -> Raw {
        Self::connect_to_from(&server.addr(), ip)
    }

    /// [`Raw::connect_from`] to the RTSP address `addr` (`ip:port`).
    pub fn connect_to_from(addr: &str, ip: [u8; 4]) -> Raw {
        let addr: std::net::SocketAddr = addr.parse().expect("addr");
        let stream = tcp_from(ip, addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // The server may close while we are still writing an oversized message.
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until one whole response is buffered; returns (status, head) or None if none came
    /// within `timeout` or the connection closed.
    pub fn response(&mut self, timeout: Duration) -> Option<(u16, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.take_response() {
                return Some(r);
            }
            if Instant::now() > deadline || !self.fill() {
                return None;
            }
        }
    }

    /// Reads more bytes; false on close or error (timeouts are not errors).
    pub fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(_) => false,
        }
    }

    pub fn take_response(&mut self) -> Option<(u16, String)> {
        // Skip whole interleaved frames with a cursor, then compact once.
        let mut at = 0;
        while self.buf.get(at) == Some(&b'$') {
            let len = match self.buf.get(at + 2..at + 4) {
                Some(l) => 4 + usize::from(u16::from_be_bytes([l[0], l[1]])),
                None => break,
            };
            if self.buf.len() < at + len {
                break;
            }
            at += len;
        }
        self.buf.drain(..at);
        if self.buf.first() == Some(&b'$') {
            return None;
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let body_len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if self.buf.len() < end + body_len {
            return None;
        }
        self.buf.drain(..end + body_len);
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Some((status, head))
    }

    /// Whether the server closes the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.fill() {
                return true;
            }
        }
        false
    }

    /// Reads interleaved frames for `duration`: (channel, payload, arrival Unix ns).
    pub fn interleaved_for(&mut self, duration: Duration) -> Vec<(u8, Vec<u8>, u64)> {
        let deadline = Instant::now() + duration;
        let mut frames = Vec::new();
        while Instant::now() < deadline && self.fill() {
            let now = unix_ns();
            let mut at = 0;
            while self.buf.get(at) == Some(&b'$') {
                let Some(l) = self.buf.get(at + 2..at + 4) else {
                    break;
                };
                let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                let Some(payload) = self.buf.get(at + 4..at + 4 + len) else {
                    break;
                };
                frames.push((self.buf[at + 1], payload.to_vec(), now));
                at += 4 + len;
            }
            self.buf.drain(..at);
        }
        frames
    }

    pub fn request(&mut self, text: &str) -> (u16, String) {
        self.send(text.as_bytes());
        match self.response(Duration::from_secs(5)) {
            Some(r) => r,
            None => panic!(
                "no response to:\n{text}\n(buffered {} bytes: {:?})",
                self.buf.len(),
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
            ),
        }
    }
}

/// The session id in a response head.
pub fn session_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .expect("Session header")
        .to_string()
}

/// Now, in Unix nanoseconds.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// SETUP (TCP interleaved 0-1) and PLAY of `path`; returns the session id.
pub fn play_tcp(conn: &mut Raw, server: &TestServer, path: &str) -> String {
    let url = server.url(path);
    let resp = conn.request(&format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    ));
    assert_eq!(resp.0, 200, "{}", resp.1);
    let session = session_of(&resp.1);
    let resp = conn.request(&format!(
        "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resp.0, 200, "{}", resp.1);
    session
}

/// A response from [`http_get`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// When the last body byte arrived.
    pub finished: Instant,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 GET of `target` (sent exactly as given, so test paths are not normalised),
/// reading the whole response (Content-Length or chunked) within `timeout`.
pub fn http_get(port: u16, target: &str, timeout: Duration) -> HttpResponse {
    http_request(port, "GET", target, None, b"", timeout)
}

/// A raw HTTP/1.1 request with an optional Content-Type and a body.
pub fn http_request(
    port: u16,
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("write");
    // The server may answer (and close) before reading an oversized body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let finished = Instant::now();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no HTTP response to {method} {target}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut response = HttpResponse {
        status,
        head,
        body: raw[end + 4..].to_vec(),
        finished,
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        response.body = dechunk(&response.body);
    }
    response
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let Some(chunk) = data.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        data = data.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// A server with a livefeed publisher on `live` and a receiver reading it for `secs`.
pub struct Streaming {
    pub server: TestServer,
    _publisher: Proc,
    receiver: Proc,
    secs: u64,
}

impl Streaming {
    pub fn start(secs: u64) -> Streaming {
        Self::start_with(secs, &[], &[])
    }

    pub fn start_with(secs: u64, server_args: &[&str], publisher_args: &[&str]) -> Streaming {
        Self::start_on(TestServer::start_with(server_args), secs, publisher_args)
    }

    /// A publisher and a receiver of `secs` on a server already running.
    pub fn start_on(server: TestServer, secs: u64, publisher_args: &[&str]) -> Streaming {
        let publisher = livefeed_publisher(&server.url("live"), "tcp", publisher_args);
        wait_for_stream(&server.addr(), "live");
        let receiver = livefeed_receiver(&server.url("live"), secs, &[]);
        Streaming {
            server,
            _publisher: publisher,
            receiver,
            secs,
        }
    }

    /// The receiver's run must be clean: every second of frames decoded, nothing lost.
    pub fn assert_undisturbed(self) -> String {
        self.assert_undisturbed_within(f64::INFINITY)
    }

    /// [`Streaming::assert_undisturbed`], and every second after the first two (the cached
    /// GOP arrives at once at the start) kept capture→received p95 under `max_p95_ms`.
    pub fn assert_undisturbed_within(self, max_p95_ms: f64) -> String {
        let out = self.receiver.wait(Duration::from_secs(self.secs + 30));
        out.assert_success();
        let seconds: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["t"].as_f64().is_some_and(|t| t > 2.5))
            .collect();
        assert!(
            max_p95_ms.is_infinite() || seconds.len() as u64 + 4 >= self.secs,
            "a report per second: {}",
            out.stdout
        );
        for second in seconds.iter().filter(|_| max_p95_ms.is_finite()) {
            let p95 = second["stages"]["capture_to_received"]["p95"]
                .as_f64()
                .unwrap_or_else(|| panic!("no capture→received p95 in {second}"));
            assert!(
                p95 < max_p95_ms,
                "receiver latency moved: capture→received p95 {p95} ms in {second}"
            );
        }
        let summary = json_summary(&out.stdout);
        let min = (self.secs - 1) * 30 * 9 / 10;
        assert!(
            summary["frames_decoded"].as_u64().unwrap_or(0) >= min,
            "receiver disturbed: {summary}"
        );
        for counter in ["lost", "mismatches", "decode_errors", "missing_timecode"] {
            assert_eq!(
                summary[counter], 0,
                "receiver disturbed ({counter}): {summary}"
            );
        }
        self.server.proc.kill_and_collect().stderr
    }
}

/// An H.264 stream's SDP as a publisher announces it (payload type 96, track `trackID=0`).
pub const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n";

/// ANNOUNCE of [`SDP`] on `conn` (CSeq 1).
pub fn announce(conn: &mut Raw, url: &str) -> (u16, String) {
    conn.request(&format!(
        "ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
}

/// A TCP connection to `to` whose source address is `ip` (any 127.x.y.z works on Linux
/// loopback), within `timeout`.
pub fn tcp_from(
    ip: [u8; 4],
    to: std::net::SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((ip, 0)).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}

/// Runs web/tests/player.mjs (headless Chromium) on the page at `url` for `seconds` with
/// `pages` tabs; what the pages measured (`window.livefeedStats` per player).
pub fn run_player_page(url: &str, seconds: u32, pages: u32) -> serde_json::Value {
    run_player_page_with(Command::new("node"), url, seconds, pages)
}

/// [`run_player_page`] with the browser in `network`'s namespace.
pub fn run_player_page_in(
    network: &ViewerNetwork,
    url: &str,
    seconds: u32,
    pages: u32,
) -> serde_json::Value {
    run_player_page_with(network.command("node"), url, seconds, pages)
}

fn run_player_page_with(
    mut node: Command,
    url: &str,
    seconds: u32,
    pages: u32,
) -> serde_json::Value {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/tests/player.mjs");
    let out = run(
        "node web/tests/player.mjs",
        node.arg(script)
            .arg(url)
            .arg(seconds.to_string())
            .arg(pages.to_string()),
        Duration::from_secs(u64::from(seconds) + 120),
    );
    out.assert_success();
    let line = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The numbers of a JSON array (none if it is not one).
pub fn numbers(array: &serde_json::Value) -> Vec<f64> {
    array
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default()
}

/// Every glass-to-glass latency (ms) one player measured.
pub fn latencies(stats: &serde_json::Value) -> Vec<f64> {
    numbers(&stats["allLatencies"])
}

/// The median of `values`, NaN without any.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median glass-to-glass latency (ms) of one player's measurements, NaN without any.
pub fn median_latency(stats: &serde_json::Value) -> f64 {
    median(latencies(stats))
}

/// The user and password the camera stand-in asks for.
pub const CAMERA_USER: &str = "viewer";
pub const CAMERA_PASSWORD: &str = "s3cret-pw";

/// tests/support/gst_camera.py (gst-rtsp-server standing in for an IP camera) on `port`, with
/// Basic auth as [`CAMERA_USER`], once it listens.
pub fn camera(port: u16) -> Proc {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/gst_camera.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).args([
        "--port",
        &port.to_string(),
        "--user",
        CAMERA_USER,
        "--password",
        CAMERA_PASSWORD,
    ]);
    let mut proc = Proc::spawn("gst camera", &mut cmd);
    proc.wait_for_line(Duration::from_secs(20), |l| {
        l.starts_with("camera listening")
    });
    proc
}

pub fn camera_url(port: u16, password: &str) -> String {
    format!("rtsp://{CAMERA_USER}:{password}@127.0.0.1:{port}/stream1")
}
