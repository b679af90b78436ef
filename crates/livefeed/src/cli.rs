//! Command line: the demo (no subcommand), `serve`, `publish` and `receive`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use livefeed_rtsp::client::TransportKind;
use livefeed_server::ingest::sources::{SourceParams, TestSources};
use livefeed_server::{Server, ServerOptions};
use livefeed_source::camera::PixelFormat;
use livefeed_source::capture::{CaptureSettings, SourceSpec};
use livefeed_source::encoder::EncoderKind;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{self, AudioSource, PublishJob, ReceiveJob};
use crate::report::{Reporter, SharedStats, Stats};
use crate::server_link::{self, ServerLink};
use crate::sources::BuiltinSources;

/// livefeed: low-latency live video that measures its own latency.
///
/// Without a subcommand, runs the demo: an RTSP server on :8554, a test-pattern publisher
/// pushing to rtsp://127.0.0.1:8554/live and a receiver reading it back, printing fps and
/// per-stage latency once a second.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: DemoArgs,
    /// Log filter (e.g. debug, livefeed_server=debug); RUST_LOG wins when set
    #[arg(long, global = true, default_value = "info")]
    log: String,
}

impl Cli {
    /// The tracing filter to use when RUST_LOG is unset.
    pub fn log_filter(&self) -> String {
        // srt-protocol warns about every datagram it cannot parse (anyone can send those) and
        // one of its debug formatters panics on a short NAK: its own logs stay at error.
        let mut filter = self.log.clone();
        for quiet in ["srt_protocol", "srt_tokio", "mpeg2ts_reader"] {
            if !filter.contains(quiet) {
                filter.push_str(&format!(",{quiet}=error"));
            }
        }
        filter
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the media server alone
    Serve(Box<ServeArgs>),
    /// Publish a test pattern or raw frames to an RTSP server
    Publish(PublishArgs),
    /// Play a stream from an RTSP server, decode it and measure its latency
    Receive(ReceiveArgs),
    /// List the cameras (V4L2) and the modes they offer
    Devices,
}

/// Options of every command that prints a report.
#[derive(Debug, Clone, Args)]
struct OutputArgs {
    /// Stop after this many seconds
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Print one JSON object per second (and a summary at the end) instead of status lines
    #[arg(long)]
    json: bool,
}

/// Options of the encoder and source.
#[derive(Debug, Clone, Args)]
struct EncodeArgs {
    /// Picture size of the test pattern, WIDTHxHEIGHT
    #[arg(long, default_value = "640x480", value_parser = parse_resolution)]
    resolution: (usize, usize),
    /// Frames per second of the test pattern
    #[arg(long, default_value_t = 30.0)]
    framerate: f64,
    /// Encoder bitrate in kbit/s
    #[arg(long, default_value_t = 2000)]
    bitrate: u32,
    /// Frames between keyframes [default: one second of frames]
    #[arg(long)]
    gop: Option<u32>,
    /// H.264 encoder: openh264, or x264 (when built with the x264 feature)
    #[arg(long, default_value = "openh264")]
    encoder: EncoderKind,
}

impl EncodeArgs {
    fn capture(&self, source: SourceSpec) -> CaptureSettings {
        CaptureSettings {
            source,
            width: self.resolution.0,
            height: self.resolution.1,
            fps: self.framerate,
            bitrate_kbps: self.bitrate,
            gop: self
                .gop
                .unwrap_or_else(|| self.framerate.round().max(1.0) as u32),
            clock_correction_ns: 0,
            encoder: self.encoder,
        }
    }

    /// These settings as a built-in test source's parameters.
    fn source_params(&self) -> SourceParams {
        SourceParams {
            width: self.resolution.0 as u32,
            height: self.resolution.1 as u32,
            fps: self.framerate.round().max(1.0) as u32,
            bitrate_kbps: self.bitrate,
        }
    }
}

/// Reporting to a server's dashboard.
#[derive(Debug, Clone, Args)]
struct ReportArgs {
    /// Send measurements to this livefeed server's dashboard, e.g. http://HOST:8888 (the clock
    /// offset to it is estimated and corrected first)
    #[arg(long, value_name = "URL")]
    report: Option<String>,
    /// Pretend this host's clock is off by this many ms (to check the offset correction)
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    clock_shift_ms: f64,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    encode: EncodeArgs,
    /// RTP transport between the demo's publisher/receiver and its server
    #[arg(long, default_value = "tcp")]
    transport: TransportKind,
    /// Audio track the demo's publisher adds: tone (a hum with a 50 ms beep at each whole
    /// second of capture time, Opus; without libopus0 the demo warns and runs video only), or
    /// none
    #[arg(long, value_enum, default_value = "tone")]
    audio: AudioSource,
    /// Path the demo publishes on
    #[arg(long = "demo-path", default_value = "live")]
    demo_path: String,
    /// Test-pattern paths to run at once, each with its own publisher and receiver: the demo
    /// path, then PATH-2, PATH-3, ... (one failing touches no other)
    #[arg(long = "paths", id = "demo_paths", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    demo_paths: u32,
    /// TOML file with server options
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    server: ServerOptions,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML file with server options (flags and LIVEFEED_* variables win over it)
    #[arg(long, value_name = "FILE", env = "LIVEFEED_CONFIG")]
    config: Option<PathBuf>,
    /// Also publish the built-in test pattern on --test-src-path (the original LL-HLS streamer's switch)
    #[arg(long)]
    test_src: bool,
    /// Path the --test-src publisher uses
    #[arg(long, default_value = "live")]
    test_src_path: String,
    #[command(flatten)]
    encode: EncodeArgs,
    #[command(flatten)]
    server: ServerOptions,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// Where to publish: rtsp://HOST:PORT/PATH, or a WHIP endpoint http://HOST:PORT/PATH/whip
    /// (WebRTC: H.264 and the Opus tone; --transport does not apply)
    #[arg(long)]
    url: String,
    /// Publish the same frames to this URL as well (repeatable; RTSP or WHIP as --url): one
    /// camera to two servers, or one source to compare ingest protocols
    #[arg(long, value_name = "URL")]
    also_url: Vec<String>,
    /// Publish the moving test pattern (the default source)
    #[arg(long, conflicts_with = "input")]
    test_src: bool,
    /// Publish raw frames from a y4m file, or - for standard input (e.g. from ffmpeg)
    #[arg(long, value_name = "FILE.y4m|-", conflicts_with = "device")]
    input: Option<PathBuf>,
    /// Publish a camera (V4L2), e.g. /dev/video0, in the mode closest to --resolution and --framerate
    #[arg(long, value_name = "/dev/videoN", conflicts_with = "test_src")]
    device: Option<String>,
    /// The camera's pixel format to take: yuyv, i420, nv12 or mjpeg (default: the cheapest to
    /// convert among the modes closest to --resolution and --framerate)
    #[arg(long, value_name = "FORMAT", requires = "device", value_parser = PixelFormat::parse)]
    pixel_format: Option<PixelFormat>,
    /// Show the outgoing picture with its green PUB overlay in a window (X11)
    #[arg(long)]
    preview: bool,
    #[command(flatten)]
    encode: EncodeArgs,
    /// RTP transport
    #[arg(long, default_value = "tcp")]
    transport: TransportKind,
    /// Fault injection for tests: leave out every Nth RTP packet, as a lossy network would
    #[arg(long, value_name = "N")]
    drop_rtp_every: Option<u32>,
    /// Audio track beside the video: none, or tone (a hum with a 50 ms beep at each whole
    /// second of capture time, Opus 48 kHz; needs libopus0)
    #[arg(long, value_enum, default_value = "none")]
    audio: AudioSource,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct ReceiveArgs {
    /// Stream to play, rtsp://HOST:PORT/PATH
    #[arg(long)]
    url: String,
    /// RTP transport
    #[arg(long, default_value = "tcp")]
    transport: TransportKind,
    /// Seconds to wait for the server and for media before giving up
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Show the received picture with a red REC overlay in a window (X11)
    #[arg(long)]
    window: bool,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    report: ReportArgs,
}

fn parse_resolution(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let w: usize = w
        .trim()
        .parse()
        .map_err(|_| format!("bad width in {s:?}"))?;
    let h: usize = h
        .trim()
        .parse()
        .map_err(|_| format!("bad height in {s:?}"))?;
    if w < 16 || h < 16 || !w.is_multiple_of(2) || !h.is_multiple_of(2) || w > 7680 || h > 4320 {
        return Err(format!(
            "{s}: width and height must be even, between 16 and 7680x4320"
        ));
    }
    Ok((w, h))
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => demo(cli.demo).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Publish(args)) => publish(args).await,
        Some(Command::Receive(args)) => receive(args).await,
        Some(Command::Devices) => {
            devices();
            Ok(())
        }
    }
}

fn server_options(flags: ServerOptions, config: Option<&PathBuf>) -> anyhow::Result<ServerOptions> {
    match config {
        Some(path) => Ok(flags.over(ServerOptions::from_file(path)?)),
        None => Ok(flags),
    }
}

/// Cancels `token` on Ctrl-C or after `duration`.
fn stop_on_signal_or_timeout(token: CancellationToken, duration: Option<f64>) {
    tokio::spawn(async move {
        let timer = async {
            match duration {
                Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = timer => {}
        }
        token.cancel();
    });
}

/// The encoder's missing-assembly notice, first of all: on stdout for people, on stderr when
/// stdout carries JSON.
fn print_assembly_notice(json: bool) {
    if let Some(notice) = livefeed_source::encoder::assembly_notice() {
        if json {
            eprintln!("{notice}");
        } else {
            println!("{notice}");
        }
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    print_assembly_notice(args.output.json);
    let config = server_options(args.server, args.config.as_ref())?.resolve()?;
    let server = Server::start(&config).await?;
    install_sources(&server);
    if !args.output.json {
        print_addresses(&server, &args.demo_path);
    }
    let stop = CancellationToken::new();
    stop_on_signal_or_timeout(stop.clone(), args.output.duration);
    let paths: Vec<String> = (1..=args.demo_paths)
        .map(|i| match i {
            1 => args.demo_path.clone(),
            n => format!("{}-{n}", args.demo_path),
        })
        .collect();
    let several = paths.len() > 1;
    let runs: Vec<_> = paths
        .iter()
        .map(|path| {
            let chain = DemoChain {
                path: path.clone(),
                transport: args.transport,
                audio: args.audio,
                capture: args.encode.capture(SourceSpec::TestPattern),
                json: args.output.json,
                labelled: several,
            };
            tokio::spawn(chain.run(&server, stop.clone()))
        })
        .collect();
    let mut failed = Vec::new();
    for (path, run) in paths.iter().zip(runs) {
        if let Err(e) = flatten(run.await) {
            tracing::error!(path = %path, error = format!("{e:#}"), "demo path failed");
            failed.push(format!("{path}: {e:#}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failed.join("; "))
    }
}

/// One demo path: test-pattern publisher → server → receiver, with its report.
struct DemoChain {
    path: String,
    transport: TransportKind,
    audio: AudioSource,
    capture: CaptureSettings,
    json: bool,
    labelled: bool,
}

impl DemoChain {
    /// Starts the chain on `server` (returns the future that runs it until `stop`).
    fn run(
        self,
        server: &Server,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
        let url = server.rtsp_url(&self.path);
        tracing::info!(%url, "demo: publishing the test pattern and reading it back");
        // Ends this chain only: when its publisher or receiver stops, the other stops too.
        let stop = stop.child_token();
        let stats = Stats::shared();
        let publisher = tokio::spawn(pipeline::publish(PublishJob {
            url: url.clone(),
            also_urls: Vec::new(),
            transport: self.transport,
            capture: self.capture,
            stats: stats.clone(),
            stop: stop.clone(),
            preview: false,
            drop_rtp_every: None,
            audio: self.audio,
        }));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let receiver = tokio::spawn(pipeline::receive(ReceiveJob {
            window: false,
            url: url.clone(),
            transport: self.transport,
            timeout: Duration::from_secs(5),
            stats: stats.clone(),
            stop: stop.clone(),
            wait_for_stream: Some(started_rx),
        }));
        pipeline::announce_when_published(server, &self.path, started_tx, stop.clone());
        // The publisher and receiver appear on the server's dashboard (same host, same clock).
        let uploaded = CancellationToken::new();
        let upload = ServerLink::new(&server.http_url(), 0.0).map(|link| {
            server_link::spawn_reporting(link, stats.clone(), self.path.clone(), uploaded.clone())
        });
        let mut reporter = Reporter::new(stats, self.json, Some(server.metrics.clone()));
        if self.labelled {
            reporter = reporter.for_path(&self.path);
        }
        let report = tokio::spawn(reporter.run(stop.clone()));
        async move {
            let ended = |s: CancellationToken| {
                move |r| {
                    s.cancel();
                    r
                }
            };
            let results = tokio::join!(async { ended(stop.clone())(publisher.await) }, async {
                ended(stop.clone())(receiver.await)
            },);
            // This path is done (or failed): its report ends; the others go on.
            uploaded.cancel();
            let _ = report.await;
            if let Ok(upload) = upload {
                let _ = tokio::task::spawn_blocking(move || upload.join()).await;
            }
            flatten(results.0).context("publisher")?;
            flatten(results.1).context("receiver")?;
            Ok(())
        }
    }
}

fn flatten(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.map_err(|e| anyhow::anyhow!("task failed: {e}"))?
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = server_options(args.server, args.config.as_ref())?.resolve()?;
    let server = Server::start(&config).await?;
    let sources = install_sources(&server);
    print_addresses(&server, &args.test_src_path);
    let stop = CancellationToken::new();
    stop_on_signal_or_timeout(stop.clone(), None);
    if args.test_src {
        let path = livefeed_media::path::validate(&args.test_src_path)
            .map_err(|e| anyhow::anyhow!("--test-src-path: {e}"))?;
        sources
            .start(path, args.encode.source_params())
            .map_err(|e| anyhow::anyhow!("--test-src: {e}"))?;
    }
    pipeline::log_server_stats(&server, stop.clone()).await;
    Ok(())
}

/// Gives the server its built-in test sources (the dashboard's start/stop control).
fn install_sources(server: &Server) -> Arc<BuiltinSources> {
    let sources = BuiltinSources::new(server.hub.clone(), server.metrics.clone());
    server.install_sources(sources.clone());
    sources
}

/// Tells where to point players (stdout: tests and scripts read these lines).
fn print_addresses(server: &Server, path: &str) {
    println!(
        "livefeed serving RTSP on {} (e.g. {})",
        server.rtsp_addr,
        server.rtsp_url(path)
    );
    println!(
        "livefeed serving HTTP on {} (dashboard: {}/, player: {}/{path}/, LL-HLS: {}/{path}/index.m3u8)",
        server.http_addr,
        server.http_url(),
        server.http_url(),
        server.http_url()
    );
    if let Some(rtmp) = server.rtmp_addr {
        let host = if rtmp.ip().is_unspecified() {
            format!("127.0.0.1:{}", rtmp.port())
        } else {
            rtmp.to_string()
        };
        println!("livefeed serving RTMP on {rtmp} (publish to rtmp://{host}/{path})");
    }
    if let Some(srt) = server.srt_addr {
        let host = if srt.ip().is_unspecified() {
            format!("127.0.0.1:{}", srt.port())
        } else {
            srt.to_string()
        };
        println!("livefeed serving SRT on {srt} (publish to srt://{host}?streamid=publish:{path})");
    }
}

/// `livefeed devices`: every camera with its modes.
fn devices() {
    let cameras = livefeed_source::camera::v4l2::list_devices();
    if cameras.is_empty() {
        println!(
            "no cameras found (no /dev/video* device that captures YUYV, I420, NV12 or MJPEG)"
        );
    }
    for camera in cameras {
        println!("{}  {}", camera.path, camera.name);
        for format in camera.formats {
            println!("    {format}");
        }
    }
}

/// Connects `--report`: estimates the clock offset (applied to `stats`) and returns the link.
async fn connect_report(
    args: &ReportArgs,
    stats: &SharedStats,
) -> anyhow::Result<Option<ServerLink>> {
    let Some(url) = &args.report else {
        return Ok(None);
    };
    let link = ServerLink::new(url, args.clock_shift_ms)?;
    let (sync_link, sync_stats) = (link.clone(), stats.clone());
    tokio::task::spawn_blocking(move || sync_link.sync_clock(&sync_stats))
        .await?
        .with_context(|| format!("--report {url}: cannot estimate the clock offset"))?;
    Ok(Some(link))
}

/// Runs `pipeline` with the reporter (and `--report` upload) around it.
async fn run_reported(
    stats: SharedStats,
    output: &OutputArgs,
    link: Option<(ServerLink, String)>,
    stop: CancellationToken,
    pipeline: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let reporter = Reporter::new(stats.clone(), output.json, None);
    let report = tokio::spawn(reporter.run(stop.clone()));
    let uploaded = CancellationToken::new();
    let upload = link.map(|(link, path)| {
        server_link::spawn_reporting(link, stats.clone(), path, uploaded.clone())
    });
    let result = pipeline.await;
    stop.cancel();
    uploaded.cancel();
    let _ = report.await;
    if let Some(upload) = upload {
        let _ = tokio::task::spawn_blocking(move || upload.join()).await;
    }
    result
}

async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    print_assembly_notice(args.output.json);
    let source = match (args.input, args.device) {
        (Some(path), _) => SourceSpec::Y4m(path),
        (None, Some(device)) => SourceSpec::Camera {
            device,
            pixel: args.pixel_format,
        },
        (None, None) => SourceSpec::TestPattern,
    };
    let _ = args.test_src; // the default; accepted for parity with the original streamer
    let stop = CancellationToken::new();
    stop_on_signal_or_timeout(stop.clone(), args.output.duration);
    let stats = Stats::shared();
    let link = connect_report(&args.report, &stats).await?;
    let mut capture = args.encode.capture(source);
    capture.clock_correction_ns = stats.lock().clock_correction_ns;
    let link = match link {
        Some(l) => Some((l, server_link::path_of_url(&args.url)?)),
        None => None,
    };
    let job = PublishJob {
        url: args.url,
        also_urls: args.also_url,
        transport: args.transport,
        capture,
        stats: stats.clone(),
        stop: stop.clone(),
        preview: args.preview,
        drop_rtp_every: args.drop_rtp_every,
        audio: args.audio,
    };
    run_reported(
        stats,
        &args.output,
        link,
        stop.clone(),
        pipeline::publish(job),
    )
    .await
}

async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    stop_on_signal_or_timeout(stop.clone(), args.output.duration);
    let stats = Stats::shared();
    let link = match connect_report(&args.report, &stats).await? {
        Some(l) => Some((l, server_link::path_of_url(&args.url)?)),
        None => None,
    };
    let job = ReceiveJob {
        window: args.window,
        url: args.url,
        transport: args.transport,
        timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
        stats: stats.clone(),
        stop: stop.clone(),
        wait_for_stream: None,
    };
    run_reported(
        stats,
        &args.output,
        link,
        stop.clone(),
        pipeline::receive(job),
    )
    .await
}
