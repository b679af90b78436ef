//! The publisher and receiver pipelines shared by the demo and the `publish`/`receive`
//! commands, and the server's periodic log line.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use livefeed_media::clock::{corrected, elapsed_ms, unix_now_ns};
use livefeed_media::h264::{nal_type, nal_unit_type};
use livefeed_media::sdp::VideoTrack;
use livefeed_media::{timecode, AccessUnit};
use livefeed_rtsp::client::{Incoming, Received, RtspPlayer, RtspPublisher, TransportKind};
use livefeed_rtsp::client_auth::without_userinfo;
use livefeed_server::Server;
use livefeed_source::capture::{self, CaptureHandle, CaptureSettings, Encoded, SourceSpec};
use livefeed_source::decoder::H264Decoder;
use livefeed_source::overlay;

use crate::audio_probe::AudioProbe;
use crate::audio_tone::{self, ToneTrack};
use crate::preview::Preview;
use crate::whip_publisher::WhipPublisher;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::report::SharedStats;

/// How long connecting and each RTSP exchange may take.
const RTSP_TIMEOUT: Duration = Duration::from_secs(5);

/// What to publish where.
pub struct PublishJob {
    pub url: String,
    /// More destinations, sent the same frames (`--also-url`).
    pub also_urls: Vec<String>,
    pub transport: TransportKind,
    pub capture: CaptureSettings,
    pub stats: SharedStats,
    pub stop: CancellationToken,
    /// Shows the outgoing picture (green overlay) in a window.
    pub preview: bool,
    /// Fault injection: every Nth RTP packet is left out.
    pub drop_rtp_every: Option<u32>,
    /// The audio track sent beside the video.
    pub audio: AudioSource,
}

/// What a publisher sends as its audio track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AudioSource {
    /// No audio track.
    #[default]
    None,
    /// The test tone: a hum with a 50 ms beep at each whole second of capture time, Opus.
    Tone,
}

/// How often a lost camera is looked for again.
const CAMERA_RETRY: Duration = Duration::from_secs(1);

/// Captures, encodes and publishes until `stop`, the end of the input, or an error. A camera
/// that goes away (unplugged, its driver unbound) ends its capture with one warning; the
/// publisher leaves the path (readers wait for it through the server's publisher grace),
/// looks for the camera every second, and publishes again when it is back.
pub async fn publish(job: PublishJob) -> anyhow::Result<()> {
    let preview = job.preview.then(|| Preview::open("livefeed publisher"));
    let tap = preview.as_ref().and_then(Preview::sender);
    let mut capture = capture::start_with_tap(job.capture.clone(), tap.clone())?;
    loop {
        camera_opened(&job, &capture);
        publish_capture(&job, &mut capture).await?;
        let ended = tokio::task::spawn_blocking(move || capture.join()).await?;
        match (ended, camera_device(&job)) {
            (Err(e), Some(device)) if !job.stop.is_cancelled() && camera_gone(&e) => {
                tracing::warn!(
                    "camera {device} lost: {e:#}; retrying every {} s",
                    CAMERA_RETRY.as_secs()
                );
                job.stats.lock().camera_lost();
                match reopen_camera(&job, device, tap.clone()).await {
                    Some(reopened) => capture = reopened,
                    None => return Ok(()),
                }
            }
            (Ok(0), _) if !job.stop.is_cancelled() => anyhow::bail!("the source produced no frame"),
            (Ok(frames), _) => {
                tracing::info!(frames, "publisher stopped");
                return Ok(());
            }
            (Err(e), _) => return Err(e),
        }
    }
}

/// Whether a capture error means the camera went away (unplugged, driver unbound, stopped
/// delivering): worth waiting for; anything else (the encoder failing) ends publishing.
fn camera_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| DEVICE_GONE.contains(&code))
            || cause.to_string().contains("delivered no frame")
    })
}

/// Linux errno values of a device that is gone: ENODEV (19), EIO (5), ENXIO (6), ENOENT (2).
const DEVICE_GONE: [i32; 4] = [19, 5, 6, 2];

/// The camera device being published, if the source is one.
fn camera_device(job: &PublishJob) -> Option<&str> {
    match &job.capture.source {
        SourceSpec::Camera { device, .. } => Some(device),
        _ => None,
    }
}

/// Tells the stats which camera mode is being published.
fn camera_opened(job: &PublishJob, capture: &CaptureHandle) {
    if let (Some(device), Some(format)) = (camera_device(job), capture.camera) {
        job.stats.lock().camera_opened(device, format.to_string());
    }
}

/// Tries to open `device` again every [`CAMERA_RETRY`] until it works or `stop`.
async fn reopen_camera(
    job: &PublishJob,
    device: &str,
    tap: Option<std_mpsc::SyncSender<livefeed_source::I420Frame>>,
) -> Option<CaptureHandle> {
    loop {
        tokio::select! {
            _ = job.stop.cancelled() => return None,
            _ = tokio::time::sleep(CAMERA_RETRY) => {}
        }
        let settings = job.capture.clone();
        let tap = tap.clone();
        match tokio::task::spawn_blocking(move || capture::start_with_tap(settings, tap)).await {
            Ok(Ok(capture)) => {
                let format = capture.camera.map(|f| f.to_string()).unwrap_or_default();
                tracing::warn!("camera {device} back: {format}; publishing again");
                return Some(capture);
            }
            Ok(Err(e)) => tracing::debug!("camera {device} not back yet: {e:#}"),
            Err(e) => tracing::debug!("camera {device}: opening it failed: {e}"),
        }
    }
}

/// Publishes `capture`'s frames until `stop` or the end of its frames (whose cause the
/// caller learns from [`CaptureHandle::join`]); errors are the server's side.
async fn publish_capture(job: &PublishJob, capture: &mut CaptureHandle) -> anyhow::Result<()> {
    let (width, height, fps) = capture.format;
    let shown = without_userinfo(&job.url);
    tracing::info!(url = %shown, width, height, fps, "publishing");
    let first = tokio::select! {
        f = capture.frames.recv() => f,
        _ = job.stop.cancelled() => return Ok(()),
    };
    let Some(first) = first else {
        return Ok(());
    };
    let (sps, pps) = parameter_sets(&first.au).context("the first access unit has no SPS/PPS")?;
    let correction = job.capture.clock_correction_ns;
    let now_ns = || corrected(unix_now_ns(), correction);
    let tone = match job.audio {
        AudioSource::None => None,
        AudioSource::Tone => ToneTrack::new(now_ns())
            .inspect_err(|e| tracing::warn!("{e:#}: publishing video only"))
            .ok(),
    };
    let mut publisher = Publishers::connect(job, &sps, &pps, tone.is_some()).await?;
    let sent = send_frames(job, capture, &mut publisher, first, tone, now_ns).await;
    publisher.close().await; // on every exit: RTSP TEARDOWN, WHIP DELETE
    sent
}

/// Sends `first` and every next frame (and the tone's packets) until `stop` or the end of the
/// capture; asks the encoder for a keyframe when a destination does.
async fn send_frames(
    job: &PublishJob,
    capture: &mut CaptureHandle,
    publisher: &mut Publishers,
    first: Encoded,
    mut tone: Option<ToneTrack>,
    now_ns: impl Fn() -> u64,
) -> anyhow::Result<()> {
    let mut keyframe_requests = publisher.keyframe_requests();
    let mut next = Some(first);
    while let Some(encoded) = next.take() {
        publisher.send(&encoded.au).await?;
        job.stats.lock().record_published(&encoded);
        next = loop {
            let audio_due = tone
                .as_ref()
                .map_or(Duration::MAX, |t| t.next_due_in(now_ns()));
            tokio::select! {
                biased;
                _ = job.stop.cancelled() => break None,
                // A viewer lost a picture or needs one to start (RTCP PLI/FIR from the server).
                Ok(()) = keyframe_requests.changed() => {
                    tracing::debug!("keyframe requested by the server");
                    capture.request_keyframe();
                }
                _ = tokio::time::sleep(audio_due), if tone.is_some() => {
                    if let Some(tone) = tone.as_mut() {
                        for frame in tone.due(now_ns())? {
                            publisher
                                .send_audio(frame.payload, frame.pts, frame.capture_unix_ns)
                                .await?;
                        }
                    }
                }
                f = capture.frames.recv() => break f,
            }
        };
    }
    Ok(())
}

/// Every destination of one publisher (`--url` and each `--also-url`), sent the same frames;
/// a keyframe request of any reaches the encoder.
struct Publishers {
    each: Vec<(String, Publisher)>,
    keyframes: tokio::sync::watch::Receiver<u64>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
}

impl Publishers {
    async fn connect(
        job: &PublishJob,
        sps: &Bytes,
        pps: &Bytes,
        audio: bool,
    ) -> anyhow::Result<Self> {
        let (merged, keyframes) = tokio::sync::watch::channel(0u64);
        let mut publishers = Publishers {
            each: Vec::new(),
            keyframes,
            forwarders: Vec::new(),
        };
        for url in std::iter::once(&job.url).chain(&job.also_urls) {
            let shown = without_userinfo(url);
            let publisher = match Publisher::connect(job, url, sps, pps, audio).await {
                Ok(publisher) => publisher,
                Err(e) => {
                    publishers.close().await; // the destinations already connected
                    return Err(e.context(format!("cannot publish to {shown}")));
                }
            };
            let mut requests = publisher.keyframe_requests();
            let merged = merged.clone();
            publishers.forwarders.push(tokio::spawn(async move {
                while requests.changed().await.is_ok() {
                    merged.send_modify(|n| *n += 1);
                }
            }));
            publishers.each.push((shown, publisher));
        }
        Ok(publishers)
    }

    fn keyframe_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.keyframes.clone()
    }

    async fn send(&mut self, au: &AccessUnit) -> anyhow::Result<()> {
        for (shown, publisher) in &mut self.each {
            publisher
                .send(au)
                .await
                .with_context(|| format!("sending to {shown}"))?;
        }
        Ok(())
    }

    async fn send_audio(
        &mut self,
        payload: Bytes,
        pts: u64,
        capture_unix_ns: u64,
    ) -> anyhow::Result<()> {
        for (shown, publisher) in &mut self.each {
            publisher
                .send_audio(payload.clone(), pts, capture_unix_ns)
                .await
                .with_context(|| format!("sending audio to {shown}"))?;
        }
        Ok(())
    }

    async fn close(self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
        for (_, publisher) in self.each {
            publisher.close().await;
        }
    }
}

/// Where a publisher sends: an RTSP server (ANNOUNCE/RECORD) or a WHIP endpoint (an
/// `http://` URL).
enum Publisher {
    Rtsp(Box<RtspPublisher>),
    Whip(WhipPublisher),
}

impl Publisher {
    async fn connect(
        job: &PublishJob,
        url: &str,
        sps: &Bytes,
        pps: &Bytes,
        audio: bool,
    ) -> anyhow::Result<Self> {
        if url.starts_with("http://") || url.starts_with("https://") {
            let whip = WhipPublisher::connect(url, audio, RTSP_TIMEOUT).await?;
            return Ok(Publisher::Whip(whip));
        }
        let audio = audio.then(audio_tone::description);
        let mut rtsp =
            RtspPublisher::connect(url, job.transport, sps, pps, audio.as_ref(), RTSP_TIMEOUT)
                .await?;
        rtsp.drop_every(job.drop_rtp_every);
        Ok(Publisher::Rtsp(Box::new(rtsp)))
    }

    fn keyframe_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        match self {
            Publisher::Rtsp(p) => p.keyframe_requests(),
            Publisher::Whip(p) => p.keyframe_requests(),
        }
    }

    async fn send(&mut self, au: &AccessUnit) -> anyhow::Result<()> {
        match self {
            Publisher::Rtsp(p) => Ok(p.send(au).await?),
            Publisher::Whip(p) => p.send(au).await,
        }
    }

    async fn send_audio(
        &mut self,
        payload: Bytes,
        pts: u64,
        capture_unix_ns: u64,
    ) -> anyhow::Result<()> {
        match self {
            Publisher::Rtsp(p) => Ok(p.send_audio(payload, pts, capture_unix_ns).await?),
            Publisher::Whip(p) => p.send_audio(payload, pts).await,
        }
    }

    async fn close(self) {
        match self {
            Publisher::Rtsp(p) => p.close().await,
            Publisher::Whip(p) => p.close().await,
        }
    }
}

fn parameter_sets(au: &AccessUnit) -> Option<(Bytes, Bytes)> {
    let find = |t| {
        au.nals
            .iter()
            .find(|n| nal_unit_type(n) == Some(t))
            .cloned()
    };
    Some((find(nal_type::SPS)?, find(nal_type::PPS)?))
}

/// What to play.
pub struct ReceiveJob {
    /// Shows the decoded picture (red overlay) in a window.
    pub window: bool,
    pub url: String,
    pub transport: TransportKind,
    pub timeout: Duration,
    pub stats: SharedStats,
    pub stop: CancellationToken,
    /// Wait for this before connecting (the demo waits until its publisher is live).
    pub wait_for_stream: Option<oneshot::Receiver<()>>,
}

/// Plays, decodes and measures until `stop` or an error.
pub async fn receive(job: ReceiveJob) -> anyhow::Result<()> {
    if let Some(ready) = job.wait_for_stream {
        tokio::select! {
            _ = ready => {}
            _ = job.stop.cancelled() => return Ok(()),
        }
    }
    let shown = without_userinfo(&job.url);
    let mut player = RtspPlayer::connect(&job.url, job.transport, true, job.timeout)
        .await
        .with_context(|| format!("cannot read the stream {shown}"))?;
    tracing::info!(url = %shown, audio = player.has_audio(), "receiving");
    let mut probe = player
        .has_audio()
        .then(|| {
            AudioProbe::new()
                .inspect_err(|e| tracing::warn!("{e:#}: no A/V offset measured"))
                .ok()
        })
        .flatten();
    let (tx, rx) = std_mpsc::sync_channel::<Received>(64);
    let track = player.track().clone();
    let stats = job.stats.clone();
    let window = job.window;
    let decoder = std::thread::Builder::new()
        .name("livefeed-decode".into())
        .spawn(move || {
            decode_loop(
                rx,
                track,
                stats,
                window.then(|| Preview::open("livefeed receiver")),
            )
        })
        .context("starting the decoder thread")?;
    let result = loop {
        let received = tokio::select! {
            _ = job.stop.cancelled() => break Ok(()),
            r = player.next() => r,
        };
        match received {
            Ok(Incoming::Video(received)) => {
                let mut stats = job.stats.lock();
                stats.record_received(&received);
                if let (Some(probe), Some(capture)) = (probe.as_mut(), received.au.capture) {
                    let at = stats.in_server_time(received.received_unix_ns);
                    for offset in probe.on_video(capture.unix_ns, at) {
                        stats.record_av_offset(offset, at);
                    }
                }
                drop(stats);
                if tx.send(received).is_err() {
                    break Ok(());
                }
            }
            Ok(Incoming::Audio(audio)) => {
                let mut stats = job.stats.lock();
                let at = stats.record_audio_received(&audio);
                if let (Some(probe), Some(capture)) = (probe.as_mut(), audio.capture_unix_ns) {
                    for offset in probe.on_audio(&audio.payload, audio.pts, capture, at) {
                        stats.record_av_offset(offset, at);
                    }
                }
            }
            Err(e) => break Err(anyhow::Error::new(e).context(format!("reading {shown}"))),
        }
    };
    player.close().await;
    drop(tx);
    let decoded = tokio::task::spawn_blocking(move || decoder.join())
        .await?
        .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
    decoded?;
    result
}

/// Decodes each access unit, reads the pixel timecode and records capture→decoded.
fn decode_loop(
    rx: std_mpsc::Receiver<Received>,
    track: VideoTrack,
    stats: SharedStats,
    window: Option<Preview>,
) -> anyhow::Result<()> {
    let mut decoder = H264Decoder::new()?;
    // Pictures per second over the last second (the receiver overlay's `REC FPS`).
    let mut shown = livefeed_media::rate::RateMeter::default();
    while let Ok(mut received) = rx.recv() {
        add_missing_parameter_sets(&mut received.au, &track);
        // The window shows the same figure as the report: in server time when an offset is known.
        let correction = window
            .as_ref()
            .map_or(0, |_| stats.lock().clock_correction_ns);
        let decoded = decoder.decode(&received.au, |pic| {
            let now = unix_now_ns();
            let tc = timecode::read(pic.y, pic.y_stride, pic.width, pic.height);
            if let Some(window) = &window {
                let at = livefeed_media::clock::corrected(now, correction);
                let lat = tc.map_or(0.0, |t| elapsed_ms(t.unix_ns(), at));
                if let Ok(mut frame) = pic.to_i420() {
                    let instant = std::time::Instant::now();
                    shown.record(instant, 0);
                    let fps = shown.per_second(instant).events;
                    let line = overlay::receiver_line(now, fps, lat);
                    overlay::draw_overlay_on_line(&mut frame, &line, overlay::RED, 1);
                    window.offer(frame);
                }
            }
            (tc, now)
        });
        let mut stats = stats.lock();
        match decoded {
            Ok(Some((tc, now))) => stats.record_decoded(tc, received.au.capture, now),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "undecodable access unit");
                stats.decode_errors += 1;
            }
        }
    }
    Ok(())
}

/// Keyframes from servers that keep parameter sets only in the SDP get them from the track.
fn add_missing_parameter_sets(au: &mut AccessUnit, track: &VideoTrack) {
    if !au.keyframe
        || au
            .nals
            .iter()
            .any(|n| nal_unit_type(n) == Some(nal_type::SPS))
    {
        return;
    }
    if let (Some(sps), Some(pps)) = (&track.sps, &track.pps) {
        au.nals.insert(0, pps.clone());
        au.nals.insert(0, sps.clone());
    }
}

/// Signals `ready` once `path` has a stream on `server` (or gives up when `stop` fires).
pub fn announce_when_published(
    server: &Server,
    path: &str,
    ready: oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let hub = server.hub.clone();
    let path = path.to_string();
    tokio::spawn(async move {
        while hub.stream_info(&path).is_none() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.cancelled() => return,
            }
        }
        let _ = ready.send(());
    });
}

/// Logs each path's publisher, readers and server latency every ten seconds until `stop`.
pub async fn log_server_stats(server: &Server, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut latency = server.metrics.take();
        for path in server.hub.snapshot() {
            let windows = latency.remove(&path.name).unwrap_or_default();
            let added = windows.server_added.summary();
            let ingest = windows.ingest.summary();
            tracing::info!(
                path = %path.name,
                publisher = path.publisher.as_ref().map(|p| p.info.remote.as_str()).unwrap_or("-"),
                readers = path.clients().count(),
                frames = path.frames_in,
                ingest_p50_ms = ingest.map(|s| s.p50),
                server_added_p50_ms = added.map(|s| s.p50),
                server_added_p99_ms = added.map(|s| s.p99),
                "path status"
            );
        }
    }
}

/// capture→encoded of an encoded frame, in ms.
pub fn encoded_latency_ms(encoded: &Encoded) -> Option<f64> {
    encoded
        .au
        .capture
        .map(|c| elapsed_ms(c.unix_ns, encoded.encoded_unix_ns))
}
