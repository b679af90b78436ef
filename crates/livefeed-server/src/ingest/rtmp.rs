//! The RTMP listener (`rtmp://HOST:1935/PATH`, MediaMTX's port and URL shape): ffmpeg and OBS
//! publish H.264 (or H.265 over enhanced RTMP) with AAC. `rml_rtmp` does the handshake and the
//! chunk stream and AMF0 commands (sans-IO); [`livefeed_media::flv`] reads the FLV tags; the
//! frames go into the hub through [`crate::ingest::rtp_in`], as RTSP publishers' do. This
//! module moves bytes, checks the publish permission (credentials as MediaMTX takes them:
//! `rtmp://HOST/PATH?user=U&pass=P`) and decides when the stream's tracks are known.
//!
//! The path is claimed once the video's sequence header arrived and, when the stream's
//! metadata announces sound, the AAC config too (or a second of video passed without it);
//! media before that is dropped. Bad input (a broken chunk stream, a malformed tag) is logged
//! with the peer and the cause; a broken chunk stream closes the connection, a bad tag is
//! dropped.
//!
//! Reading (`rtmp://HOST:1935/PATH` played, for recorders and restreaming tools) sends the
//! path's H.264 video and its AAC sound, if it has some, as FLV tags: the sequence headers
//! first, then the GOP cache from its keyframe, then live frames, timestamps in ms from the
//! first frame sent. The read permission is checked as for RTSP; an on-demand source is woken.
//! H.265 paths are refused for reading (enhanced RTMP out is not written yet).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livefeed_auth::{Action, AuthRequest, Authenticator, Decision};
use livefeed_media::aac::AacConfig;
use livefeed_media::flv::{self, AudioTag, VideoConfig, VideoTag};
use livefeed_media::rtp::{Depacketized, DepacketizerLimits};
use livefeed_media::track::TrackDescription;
use livefeed_media::VideoCodec;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::hub::{
    Delivery, Hub, Media, PublisherInfo, ReaderInfo, StreamInfo, Subscription,
    ON_DEMAND_START_TIMEOUT,
};
use crate::ingest::aac_rtp::{aac_track, basic_authorization, AacRtp};
use crate::ingest::rtmp_guard::ChunkGuard;
use crate::ingest::rtp_in::{IngestShared, TrackIngest};
use crate::limits::conn_gate::{ConnectionGate, Permit};
use crate::measure::metrics::ServerMetrics;
use crate::outputs::audio_track::MuxedAudio;

/// The whole handshake must be done within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a connection may send before it publishes or plays (ffmpeg and OBS send under 2 KiB).
const MAX_BYTES_BEFORE_STREAMING: u64 = 64 * 1024;
/// How long a publisher may go without a video sequence header.
const VIDEO_CONFIG_WAIT: Duration = Duration::from_secs(10);
/// FLV's sound format id of AAC.
const FLV_AAC: u32 = 10;

/// How long a publisher's stream may stay without its AAC config once video flows.
const AUDIO_CONFIG_WAIT: Duration = Duration::from_secs(1);

/// Timeouts and limits of the RTMP listener.
#[derive(Debug, Clone)]
pub struct RtmpConfig {
    /// A connection that does not publish and sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A publisher that sends nothing for this long is dropped.
    pub read_timeout: Duration,
    /// Caps on access units.
    pub limits: DepacketizerLimits,
}

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    auth: Arc<Authenticator>,
    config: Arc<RtmpConfig>,
}

/// Accepts RTMP connections until the returned task is aborted; each is admitted by `gate`.
pub fn spawn_listener(
    listener: TcpListener,
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    auth: Arc<Authenticator>,
    gate: Arc<ConnectionGate>,
    config: RtmpConfig,
) -> JoinHandle<()> {
    let shared = Shared {
        hub,
        metrics,
        auth,
        config: Arc::new(config),
    };
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => match gate.admit(peer) {
                    Ok(permit) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            if let Err(cause) = serve(stream, peer, &shared, &permit).await {
                                warn!(%peer, %cause, "RTMP connection closed");
                            }
                        });
                    }
                    Err(refusal) => debug!(%peer, ?refusal, "RTMP connection refused"),
                },
                Err(e) => {
                    warn!(error = %e, "RTMP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// One connection: handshake, then the session until the peer leaves or fails.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    permit: &Permit,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut buf = vec![0u8; 64 * 1024];
    let idle = shared.config.idle_timeout;
    let rest = tokio::select! {
        _ = permit.cancel.cancelled() => return Err("shed: idle while the server was full".into()),
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut read, &mut write, &mut buf, idle)) => {
            r.map_err(|_| format!("no RTMP handshake within {HANDSHAKE_TIMEOUT:?}"))??
        }
    };
    let mut guard = ChunkGuard::new(shared.config.limits.max_access_unit_bytes);
    let mut bytes_before_streaming = rest.len() as u64;
    let (session, start) = ServerSession::new(ServerSessionConfig::new())
        .map_err(|e| format!("starting the RTMP session: {e:?}"))?;
    let mut conn = Connection {
        session,
        write,
        peer,
        shared: shared.clone(),
        publish: None,
        play_request: None,
        playing: None,
    };
    conn.results(start).await?;
    guard.check(&rest).map_err(|e| e.to_string())?;
    conn.input(&rest).await?;
    // Silence is counted from the last bytes read, whatever is sent meanwhile.
    let mut last_read = tokio::time::Instant::now();
    loop {
        let timeout = if conn.publish.is_some() {
            shared.config.read_timeout
        } else if conn.playing.is_some() {
            Duration::from_secs(3600) // a player may stay silent
        } else {
            idle
        };
        let n = tokio::select! {
            _ = permit.cancel.cancelled() => return Err("shed: idle while the server was full".into()),
            delivery = next_delivery(&mut conn.playing) => {
                match delivery {
                    Some(delivery) => conn.send_media(&delivery).await?,
                    None => {
                        info!(%peer, "RTMP reader: the stream ended");
                        return Ok(());
                    }
                }
                continue;
            }
            r = tokio::time::timeout_at(last_read + timeout, read.read(&mut buf)) => match r {
                Err(_) => return Err(format!("nothing received for {timeout:?}")),
                Ok(Err(e)) => return Err(format!("read error: {e}")),
                Ok(Ok(0)) => {
                    debug!(%peer, "RTMP peer closed the connection");
                    return Ok(());
                }
                Ok(Ok(n)) => n,
            },
        };
        last_read = tokio::time::Instant::now();
        permit.activity.touch();
        guard.check(&buf[..n]).map_err(|e| e.to_string())?;
        if conn.publish.is_none() && conn.playing.is_none() {
            bytes_before_streaming += n as u64;
            if bytes_before_streaming > MAX_BYTES_BEFORE_STREAMING {
                return Err(format!(
                    "{bytes_before_streaming} bytes without publishing or playing"
                ));
            }
        }
        if conn.publish.as_ref().is_some_and(Publishing::video_overdue) {
            return Err(format!(
                "no video sequence header within {VIDEO_CONFIG_WAIT:?}"
            ));
        }
        tokio::select! {
            _ = permit.cancel.cancelled() => return Err("shed: idle while the server was full".into()),
            r = conn.input(&buf[..n]) => r?,
        }
        permit
            .activity
            .set_streaming(conn.publish.is_some() || conn.playing.is_some());
    }
}

/// Runs the RTMP handshake; returns the bytes that came after it.
async fn handshake(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut OwnedWriteHalf,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut handshake = Handshake::new(PeerType::Server);
    loop {
        let n = match tokio::time::timeout(timeout, read.read(buf)).await {
            Err(_) => return Err(format!("no RTMP handshake within {timeout:?}")),
            Ok(Err(e)) => return Err(format!("read error: {e}")),
            Ok(Ok(0)) => return Err("closed during the handshake".into()),
            Ok(Ok(n)) => n,
        };
        let result = handshake
            .process_bytes(&buf[..n])
            .map_err(|e| format!("bad RTMP handshake: {e:?}"))?;
        let (response, done) = match result {
            HandshakeProcessResult::InProgress { response_bytes } => (response_bytes, None),
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => (response_bytes, Some(remaining_bytes)),
        };
        write
            .write_all(&response)
            .await
            .map_err(|e| format!("write error: {e}"))?;
        if let Some(rest) = done {
            return Ok(rest);
        }
    }
}

/// A connection after its handshake.
struct Connection {
    session: ServerSession,
    write: OwnedWriteHalf,
    peer: SocketAddr,
    shared: Shared,
    publish: Option<Publishing>,
    /// A play request the session raised, answered once the input is handled.
    play_request: Option<PlayRequest>,
    playing: Option<Playing>,
}

/// A client's request to play a stream.
struct PlayRequest {
    request_id: u32,
    stream_id: u32,
    app: String,
    key: String,
}

impl Connection {
    async fn input(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        // rml_rtmp indexes into some messages without checking them (a command with fewer
        // than three values, a bare @setDataFrame): its panic ends this connection only, with
        // a reason, rather than the task without one.
        let session = &mut self.session;
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.handle_input(bytes)))
                .map_err(|_| {
                    "malformed RTMP input: the RTMP library could not read a message".to_string()
                })?
                .map_err(|e| format!("malformed RTMP input: {e:?}"))?;
        self.results(results).await?;
        if let Some(request) = self.play_request.take() {
            self.start_play(request).await?;
        }
        Ok(())
    }

    /// Sends what the session answers and acts on what it raises (which may answer more).
    async fn results(&mut self, results: Vec<ServerSessionResult>) -> Result<(), String> {
        let mut pending = std::collections::VecDeque::from(results);
        while let Some(result) = pending.pop_front() {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    let timeout = self.shared.config.read_timeout;
                    tokio::time::timeout(timeout, self.write.write_all(&packet.bytes))
                        .await
                        .map_err(|_| format!("the peer took nothing for {timeout:?}"))?
                        .map_err(|e| format!("write error: {e}"))?
                }
                ServerSessionResult::RaisedEvent(event) => {
                    let more = self.event(event)?;
                    for (i, r) in more.into_iter().enumerate() {
                        pending.insert(i, r);
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    /// Acts on one session event; returns what the session says in reply.
    fn event(&mut self, event: ServerSessionEvent) -> Result<Vec<ServerSessionResult>, String> {
        let accept = |session: &mut ServerSession, id| {
            session
                .accept_request(id)
                .map_err(|e| format!("RTMP session: {e:?}"))
        };
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, .. }
            | ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                accept(&mut self.session, request_id)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.publish_requested(request_id, &app_name, &stream_key),
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => {
                self.play_request = Some(PlayRequest {
                    request_id,
                    stream_id,
                    app: app_name,
                    key: stream_key,
                });
                Ok(Vec::new())
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = self.publish.as_mut() {
                    p.expects_audio = metadata.audio_codec_id == Some(FLV_AAC);
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                if let Some(p) = self.publish.as_mut() {
                    p.video(&self.shared, &data, timestamp.value)?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                if let Some(p) = self.publish.as_mut() {
                    p.audio(&data, timestamp.value)?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamFinished { .. } => {
                if self.playing.take().is_some() {
                    info!(peer = %self.peer, "RTMP reader finished");
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(p) = self.publish.take() {
                    info!(peer = %self.peer, path = %p.path, "RTMP publisher finished");
                }
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Checks the publish permission of `app/key` and accepts or refuses.
    fn publish_requested(
        &mut self,
        request_id: u32,
        app: &str,
        key: &str,
    ) -> Result<Vec<ServerSessionResult>, String> {
        let (path, credentials) = path_and_credentials(app, key);
        let refuse = |session: &mut ServerSession, reason: &str| {
            session
                .reject_request(request_id, "NetStream.Publish.BadName", reason)
                .map_err(|e| format!("RTMP session: {e:?}"))
        };
        let path = match livefeed_media::path::validate(&path) {
            Ok(p) => p.to_string(),
            Err(e) => {
                warn!(peer = %self.peer, cause = %e, "RTMP publish refused: bad path");
                return refuse(&mut self.session, &e.to_string());
            }
        };
        if let Err(reason) = self.permitted(Action::Publish, &path, credentials) {
            warn!(peer = %self.peer, %path, %reason, "RTMP publish refused");
            return refuse(&mut self.session, &reason);
        }
        if self.shared.hub.has_publisher(&path) {
            let reason = format!("path {path:?} already has a publisher");
            warn!(peer = %self.peer, %path, "RTMP publish refused: the path has a publisher");
            return refuse(&mut self.session, &reason);
        }
        info!(peer = %self.peer, %path, "RTMP publisher accepted");
        self.publish = Some(Publishing::new(path, self.peer));
        self.session
            .accept_request(request_id)
            .map_err(|e| format!("RTMP session: {e:?}"))
    }
}

impl Connection {
    /// Whether `action` on `path` is allowed to this peer with `credentials`; the refusal's
    /// reason otherwise.
    fn permitted(
        &self,
        action: Action,
        path: &str,
        credentials: Option<(String, String)>,
    ) -> Result<(), String> {
        let authorization = credentials.map(|(user, pass)| basic_authorization(&user, &pass));
        let decision = self.shared.auth.check(&AuthRequest {
            action,
            path,
            ip: self.peer.ip(),
            connection: Some(self.peer),
            authorization: authorization.as_deref(),
            method: if action == Action::Read {
                "PLAY"
            } else {
                "PUBLISH"
            },
            uri: path,
            now_secs: livefeed_media::clock::unix_now_ns() / 1_000_000_000,
        });
        match decision {
            Decision::Allowed { .. } => Ok(()),
            Decision::Unauthorized { reason, .. } | Decision::Forbidden { reason } => Err(reason),
        }
    }

    /// Answers a play request: permission, the stream (an on-demand source woken), the
    /// subscription, then the sequence headers.
    async fn start_play(&mut self, request: PlayRequest) -> Result<(), String> {
        let (path, credentials) = path_and_credentials(&request.app, &request.key);
        let refusal = match self.play_refusal(&path, credentials).await {
            Ok(playing) => {
                let accepted = self
                    .session
                    .accept_request(request.request_id)
                    .map_err(|e| format!("RTMP session: {e:?}"))?;
                self.results(accepted).await?;
                info!(peer = %self.peer, %path, "RTMP reader started");
                self.playing = Some(playing);
                return self.send_headers(request.stream_id).await;
            }
            Err(reason) => reason,
        };
        warn!(peer = %self.peer, %path, reason = %refusal, "RTMP play refused");
        let refused = self
            .session
            .reject_request(
                request.request_id,
                "NetStream.Play.StreamNotFound",
                &refusal,
            )
            .map_err(|e| format!("RTMP session: {e:?}"))?;
        self.results(refused).await
    }

    /// The reader of `path`, or why it cannot be one.
    async fn play_refusal(
        &mut self,
        path: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Playing, String> {
        let path = livefeed_media::path::validate(path)
            .map_err(|e| e.to_string())?
            .to_string();
        self.permitted(Action::Read, &path, credentials)?;
        let hub = &self.shared.hub;
        let stream = hub
            .stream_on_demand(&path, ON_DEMAND_START_TIMEOUT)
            .await
            .ok_or_else(|| format!("no stream is being published on path {path:?}"))?;
        if stream.codec != VideoCodec::H264 {
            return Err(format!(
                "the path's video is {}: reading it over RTMP is not served yet (use RTSP, LL-HLS or WebRTC)",
                stream.codec.name()
            ));
        }
        let reader = ReaderInfo {
            protocol: "rtmp".into(),
            remote: self.peer.to_string(),
        };
        let sub = hub.subscribe_as(&path, reader).map_err(|e| e.to_string())?;
        let audio = MuxedAudio::find(&path, &sub.others())
            .filter(|a| matches!(a.cmaf_track(), livefeed_hls::cmaf::AudioTrack::Aac(_)));
        let audio_rate = match audio.as_ref().map(MuxedAudio::cmaf_track) {
            Some(livefeed_hls::cmaf::AudioTrack::Aac(config)) => {
                u64::from(config.sample_rate.max(1))
            }
            _ => 1,
        };
        Ok(Playing {
            stream_id: 0,
            sub,
            audio,
            stream,
            base_ms: None,
            audio_rate,
        })
    }

    /// The video's and the sound's sequence headers.
    async fn send_headers(&mut self, stream_id: u32) -> Result<(), String> {
        let Some(playing) = self.playing.as_mut() else {
            return Ok(());
        };
        playing.stream_id = stream_id;
        let mut tags = Vec::new();
        if let Some(header) = flv::avc_sequence_header(&playing.stream.sps, &playing.stream.pps) {
            tags.push((true, header));
        }
        if let Some(livefeed_hls::cmaf::AudioTrack::Aac(config)) =
            playing.audio.as_ref().map(MuxedAudio::cmaf_track)
        {
            tags.push((
                false,
                flv::aac_sequence_header(&config.audio_specific_config),
            ));
        }
        for (video, tag) in tags {
            self.send_tag(video, tag, 0, false).await?;
        }
        Ok(())
    }

    /// One frame of the path to the reader (audio before the first video frame is dropped).
    async fn send_media(&mut self, delivery: &Delivery) -> Result<(), String> {
        let Some(playing) = self.playing.as_mut() else {
            return Ok(());
        };
        match &delivery.frame.media {
            Media::Video(au) => {
                let ms = au.pts / 90;
                let base = *playing.base_ms.get_or_insert(ms);
                let tag = flv::avc_frame(&au.nals, au.keyframe);
                let at = ms.saturating_sub(base) as u32;
                self.send_tag(true, tag, at, !au.keyframe).await
            }
            Media::Packet(packet) => {
                let Some(base) = playing.base_ms else {
                    return Ok(());
                };
                let Some(audio) = playing.audio.as_mut().filter(|a| a.track == packet.track) else {
                    return Ok(());
                };
                let rate = playing.audio_rate;
                let frames = audio.frames(packet);
                for frame in frames {
                    let at = (frame.decode_time * 1000 / rate).saturating_sub(base) as u32;
                    self.send_tag(false, flv::aac_frame(&frame.data), at, true)
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Writes one FLV tag to the reader, within the write timeout.
    async fn send_tag(
        &mut self,
        video: bool,
        tag: Bytes,
        at_ms: u32,
        droppable: bool,
    ) -> Result<(), String> {
        let Some(stream_id) = self.playing.as_ref().map(|p| p.stream_id) else {
            return Ok(());
        };
        let at = RtmpTimestamp::new(at_ms);
        let packet = if video {
            self.session.send_video_data(stream_id, tag, at, droppable)
        } else {
            self.session.send_audio_data(stream_id, tag, at, droppable)
        }
        .map_err(|e| format!("RTMP session: {e:?}"))?;
        let timeout = self.shared.config.read_timeout;
        match tokio::time::timeout(timeout, self.write.write_all(&packet.bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write error: {e}")),
            Err(_) => Err(format!(
                "the reader took nothing for {timeout:?}: disconnected"
            )),
        }
    }
}

/// A connection playing a path.
struct Playing {
    stream_id: u32,
    sub: Subscription,
    audio: Option<MuxedAudio>,
    /// The AAC sampling rate: the unit of the audio frames' times (not the RTP clock's).
    audio_rate: u64,
    stream: StreamInfo,
    /// The first video frame's time, ms: the zero of the timestamps sent.
    base_ms: Option<u64>,
}

/// The next frame for a playing connection; never, for one that does not play.
async fn next_delivery(playing: &mut Option<Playing>) -> Option<Delivery> {
    match playing {
        Some(p) => p.sub.recv().await,
        None => std::future::pending().await,
    }
}

/// The hub path and the `user`/`pass` query credentials of an RTMP app and stream key:
/// `rtmp://HOST/live/cam?user=U&pass=P` → (`live/cam`, (U, P)); `rtmp://HOST/cam` → `cam`.
pub fn path_and_credentials(app: &str, key: &str) -> (String, Option<(String, String)>) {
    let joined = match (app.trim_matches('/'), key.trim_matches('/')) {
        (a, "") => a.to_string(),
        ("", k) => k.to_string(),
        (a, k) => format!("{a}/{k}"),
    };
    // The query may follow the app (`rtmp://HOST/cam?user=…`) or the key.
    let (path, query) = match joined.split_once('?') {
        Some((p, q)) => (p.to_string(), q.split('/').next().unwrap_or("").to_string()),
        None => (joined, String::new()),
    };
    let mut user = None;
    let mut pass = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("user", v)) => user = Some(v.to_string()),
            Some(("pass", v)) => pass = Some(v.to_string()),
            _ => {}
        }
    }
    let credentials = user.map(|u| (u, pass.unwrap_or_default()));
    (path.trim_matches('/').to_string(), credentials)
}

/// A publishing connection's stream.
struct Publishing {
    path: String,
    peer: SocketAddr,
    video: Option<(VideoConfig, Instant)>,
    audio: Option<AacConfig>,
    expects_audio: bool,
    tracks: Option<Tracks>,
    /// Tags dropped as malformed so far.
    bad_tags: u64,
    /// When the publish was accepted.
    accepted: Instant,
    /// A keyframe has been published since the claim (frames before it are dropped).
    keyframe_seen: bool,
}

/// The claimed path and its tracks.
struct Tracks {
    video: TrackIngest,
    nal_length_size: usize,
    audio: Option<(TrackIngest, AacRtp)>,
}

impl Publishing {
    fn new(path: String, peer: SocketAddr) -> Self {
        Publishing {
            path,
            peer,
            video: None,
            audio: None,
            expects_audio: false,
            tracks: None,
            bad_tags: 0,
            accepted: Instant::now(),
            keyframe_seen: false,
        }
    }

    /// No video sequence header long after the publish was accepted.
    fn video_overdue(&self) -> bool {
        self.video.is_none() && self.accepted.elapsed() >= VIDEO_CONFIG_WAIT
    }

    fn bad_tag(&mut self, what: &str, cause: &dyn std::fmt::Display) {
        self.bad_tags += 1;
        if self.bad_tags <= 5 || self.bad_tags.is_multiple_of(100) {
            warn!(peer = %self.peer, path = %self.path, %cause, count = self.bad_tags, "bad RTMP {what} tag dropped");
        }
    }

    fn video(&mut self, shared: &Shared, data: &Bytes, timestamp_ms: u32) -> Result<(), String> {
        let tag = match flv::parse_video_tag(data) {
            Ok(tag) => tag,
            Err(e) => {
                self.bad_tag("video", &e);
                return Ok(());
            }
        };
        match tag {
            VideoTag::SequenceHeader(config) => {
                if self.tracks.is_none() {
                    // The audio wait counts from the first header, not the latest repeat.
                    let since = self.video.as_ref().map_or_else(Instant::now, |(_, t)| *t);
                    self.video = Some((config, since));
                }
            }
            VideoTag::Frame {
                keyframe,
                composition_ms,
                data,
                codec,
            } => {
                self.claim_when_ready(shared)?;
                let Some(tracks) = self.tracks.as_mut() else {
                    return Ok(()); // tracks not known yet: dropped
                };
                let nals = match flv::split_nals(
                    &data,
                    tracks.nal_length_size,
                    shared.config.limits.max_nals,
                ) {
                    Ok(nals) => nals,
                    Err(e) => {
                        self.bad_tag("video", &e);
                        return Ok(());
                    }
                };
                let pts_ms = (i64::from(timestamp_ms) + i64::from(composition_ms)).max(0);
                let pts = pts_ms as u64 * 90;
                let keyframe = keyframe || nals.iter().any(|n| codec.is_keyframe_nal(n));
                self.keyframe_seen |= keyframe;
                if !self.keyframe_seen {
                    return Ok(()); // a reader could not decode it
                }
                tracks.video.push_frame(Depacketized {
                    nals,
                    rtp_timestamp: pts as u32,
                    ext_timestamp: pts,
                    keyframe,
                    lost_packets_before: false,
                    ssrc: 0,
                })?;
            }
            VideoTag::Other => {}
        }
        Ok(())
    }

    fn audio(&mut self, data: &Bytes, timestamp_ms: u32) -> Result<(), String> {
        let tag = match flv::parse_audio_tag(data) {
            Ok(tag) => tag,
            Err(e) => {
                self.bad_tag("audio", &e);
                return Ok(());
            }
        };
        match tag {
            AudioTag::AacConfig(config) => {
                self.audio = Some(config);
                Ok(())
            }
            AudioTag::AacFrame(frame) => {
                let Some((track, rtp)) = self.tracks.as_mut().and_then(|t| t.audio.as_mut()) else {
                    return Ok(());
                };
                match rtp.packet(&frame, timestamp_ms) {
                    Some(packet) => track.push(&packet),
                    None => {
                        self.bad_tag("audio", &"an AAC frame over 8191 bytes");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Claims the path once the tracks are known (see the module docs).
    fn claim_when_ready(&mut self, shared: &Shared) -> Result<(), String> {
        if self.tracks.is_some() {
            return Ok(());
        }
        let Some((config, since)) = &self.video else {
            return Ok(());
        };
        if self.audio.is_none() && self.expects_audio && since.elapsed() < AUDIO_CONFIG_WAIT {
            return Ok(());
        }
        let audio = self.audio.as_ref().and_then(aac_track);
        let stream = StreamInfo::from_parameter_sets(config.codec, &parameter_sets(config));
        let info = PublisherInfo {
            protocol: "rtmp".into(),
            remote: self.peer.to_string(),
        };
        let others: Vec<TrackDescription> = audio.iter().map(|(d, _)| d.clone()).collect();
        let publisher = shared
            .hub
            .claim_publisher_with(&self.path, info, stream, others)
            .map_err(|e| e.to_string())?;
        let ingest = Arc::new(IngestShared::new(
            publisher,
            self.peer.to_string(),
            shared.metrics.clone(),
        ));
        let video =
            TrackIngest::video(ingest.clone(), config.codec, 0, shared.config.limits, false);
        let audio = audio
            .map(|(description, rtp)| (TrackIngest::packets(ingest.clone(), 1, &description), rtp));
        info!(peer = %self.peer, path = %self.path, video = config.codec.name(),
            audio = audio.is_some(), "RTMP publisher streaming");
        self.tracks = Some(Tracks {
            video,
            nal_length_size: config.nal_length_size,
            audio,
        });
        Ok(())
    }
}

/// One parameter set of each type the codec needs (the first of each), whatever else the
/// configuration record holds (SEI, a second PPS).
fn parameter_sets(config: &VideoConfig) -> Vec<Bytes> {
    config
        .codec
        .parameter_set_types()
        .iter()
        .filter_map(|&t| {
            config
                .parameter_sets
                .iter()
                .find(|n| config.codec.nal_unit_type(n) == Some(t))
                .cloned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_key_make_the_path_and_the_query_the_credentials() {
        assert_eq!(
            path_and_credentials("live", "cam"),
            ("live/cam".into(), None)
        );
        assert_eq!(path_and_credentials("cam", ""), ("cam".into(), None));
        assert_eq!(
            path_and_credentials("live", "cam?user=u&pass=p"),
            ("live/cam".into(), Some(("u".into(), "p".into())))
        );
        assert_eq!(
            path_and_credentials("cam?user=u&pass=p", ""),
            ("cam".into(), Some(("u".into(), "p".into())))
        );
    }
}
