//! SRT publishers and readers (ffmpeg, OBS): `srt://HOST:8890?streamid=publish:PATH` and
//! `…?streamid=read:PATH`, MPEG-TS over SRT (srt-tokio, pure Rust; live mode), as MediaMTX
//! takes them.
//!
//! The stream id names the action and the path, MediaMTX's way (`publish:PATH`,
//! `publish:PATH:USER:PASS`, `read:PATH`) or the SRT access-control way
//! (`#!::r=PATH,m=publish,u=USER,s=PASS`). A connection request is checked in this order: the
//! stream id, encryption (not supported: srt-protocol cannot accept a caller's key material),
//! the permission (as for RTSP: publishing from off-loopback closed by default), the path
//! (free, to publish), the listener's gate (per-address and total caps), so that
//! unauthenticated requests never push an idle connection out, and last, to read, the path's
//! stream (an on-demand source woken and awaited). A refusal is an SRT rejection with the
//! matching code (400, 401/403, 404, 409, 2402 Overload) and a log line naming the peer, the
//! action and path (never the stream id: it may carry a password) and the cause. A reader is
//! served by [`crate::outputs::srt_reader`].
//!
//! srt-protocol's listener (0.4) keeps a session for every address that sent it a packet and
//! never forgets one, and panics on some handshakes (key material without a key size, which
//! libsrt sends for a passphrase by default: the request never reaches this module): SRT is
//! therefore off unless `--srt-address` is given (see the README), and the end of the listener
//! is logged.
//!
//! A publisher's transport stream goes through [`TsDemuxer`]; the path is claimed at the first
//! video keyframe, once the AAC config is known when the stream has AAC (waiting at most
//! [`AUDIO_CONFIG_WAIT`], the frames since the keyframe held meanwhile); video (H.264/H.265)
//! enters the hub as whole access units, AAC as RTP (RFC 3640). A publisher silent for the read
//! timeout is closed. The latency: the larger of the publisher's (ffmpeg's `latency=` in µs,
//! OBS's setting) and the listener's [`LISTENER_LATENCY`] applies, as SRT negotiates it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use livefeed_auth::{Action, AuthRequest, Authenticator, Decision};
use livefeed_media::aac::AacConfig;
use livefeed_media::h264::split_annex_b;
use livefeed_media::mpegts::{TsDemuxer, TsFrame};
use livefeed_media::rtp::{Depacketized, DepacketizerLimits};
use livefeed_media::VideoCodec;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::hub::{Hub, PublishError, PublisherInfo, ReaderInfo, SubscribeError};
use crate::ingest::aac_rtp::{aac_track, basic_authorization, AacRtp};
use crate::ingest::rtp_in::{IngestShared, TrackIngest};
use crate::limits::conn_gate::{ConnectionGate, Permit};
use crate::measure::metrics::ServerMetrics;
use crate::outputs::srt_reader::{self, Reading};

/// The listener's own latency (the smallest SRT delivers with): the publisher's applies when
/// larger, as SRT negotiates it.
pub const LISTENER_LATENCY: Duration = Duration::from_millis(20);

/// How long the path waits for the AAC config after the first keyframe of a stream with AAC.
pub const AUDIO_CONFIG_WAIT: Duration = Duration::from_secs(1);
/// Video frames held while waiting for it, at most (the path is claimed when they are).
const HELD_FRAMES: usize = 120;
/// How long a reader's connection request waits for an on-demand source's stream: less than
/// libsrt's connection timeout (3 s by default), which runs while the request is unanswered.
pub const READ_ON_DEMAND_WAIT: Duration = Duration::from_millis(2500);
/// A publisher with no video keyframe this long after connecting is closed.
pub const VIDEO_WAIT: Duration = Duration::from_secs(10);

/// Settings of the SRT listener.
#[derive(Debug, Clone)]
pub struct SrtConfig {
    /// A publisher silent this long is closed, and a reader that takes nothing this long.
    pub read_timeout: Duration,
    /// What an access unit may hold.
    pub limits: DepacketizerLimits,
}

/// What a stream id asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// Publish or read.
    pub action: Action,
    /// The path.
    pub path: String,
    /// User and password, when given.
    pub credentials: Option<(String, String)>,
}

/// Reads a stream id: `publish:PATH[:USER:PASS]`, `read:PATH[:USER:PASS]`, or
/// `#!::r=PATH,m=publish|request,u=USER,s=PASS`. `Err` says what is wrong.
pub fn parse_stream_id(id: &str) -> Result<StreamRequest, String> {
    if let Some(fields) = id.strip_prefix("#!::") {
        return access_control(fields);
    }
    let mut parts = id.splitn(4, ':');
    let action = match parts.next() {
        Some("publish") => Action::Publish,
        Some("read") => Action::Read,
        _ => return Err("the stream id is not publish:PATH or read:PATH".into()),
    };
    let path = parts.next().unwrap_or("");
    let credentials = match (parts.next(), parts.next()) {
        (Some(user), Some(pass)) => Some((user.to_string(), pass.to_string())),
        (None, _) => None,
        (Some(_), None) => return Err("stream id has a user but no password".into()),
    };
    Ok(StreamRequest {
        action,
        path: valid_path(path)?,
        credentials,
    })
}

/// The SRT access-control syntax (`r=`, `m=`, `u=`, `s=`; other keys ignored).
fn access_control(fields: &str) -> Result<StreamRequest, String> {
    let (mut path, mut mode, mut user, mut pass) = (None, None, None, None);
    for field in fields.split(',') {
        let Some((key, value)) = field.split_once('=') else {
            return Err("a stream id field is not key=value".into());
        };
        match key {
            "r" => path = Some(value),
            "m" => mode = Some(value),
            "u" => user = Some(value),
            "s" => pass = Some(value),
            _ => {}
        }
    }
    let action = match mode.unwrap_or("request") {
        "publish" => Action::Publish,
        "request" => Action::Read,
        _ => return Err("the stream id's mode (m=) is not publish or request".into()),
    };
    Ok(StreamRequest {
        action,
        path: valid_path(path.ok_or("stream id has no r= (the path)")?)?,
        credentials: match (user, pass) {
            (Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
            _ => None,
        },
    })
}

fn valid_path(path: &str) -> Result<String, String> {
    livefeed_media::path::validate(path)
        .map(str::to_string)
        .map_err(|e| e.to_string())
}

/// What the connection tasks share.
#[derive(Clone)]
struct Shared {
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    auth: Arc<Authenticator>,
    gate: Arc<ConnectionGate>,
    config: Arc<SrtConfig>,
}

/// Binds the SRT listener at `address` (port 0: any); returns it with the address it got.
pub async fn bind(address: SocketAddr) -> std::io::Result<(SrtListener, SrtIncoming, SocketAddr)> {
    let socket = tokio::net::UdpSocket::bind(address).await?;
    let local = socket.local_addr()?;
    let (listener, incoming) = SrtListener::builder()
        .latency(LISTENER_LATENCY)
        .socket(socket)
        .bind(local)
        .await?;
    Ok((listener, incoming, local))
}

/// Answers connection requests until the returned task is aborted.
pub fn spawn_listener(
    listener: SrtListener,
    mut incoming: SrtIncoming,
    hub: Arc<Hub>,
    metrics: Arc<ServerMetrics>,
    auth: Arc<Authenticator>,
    gate: Arc<ConnectionGate>,
    config: SrtConfig,
) -> JoinHandle<()> {
    let shared = Shared {
        hub,
        metrics,
        auth,
        gate,
        config: Arc::new(config),
    };
    tokio::spawn(async move {
        let _listener = listener; // closes the socket when the task ends
        while let Some(request) = incoming.incoming().next().await {
            let shared = shared.clone();
            tokio::spawn(answer(request, shared));
        }
        tracing::error!(
            "the SRT listener stopped (srt-protocol's task ended): SRT is no longer served"
        );
    })
}

/// Accepts or rejects one connection request; an accepted publisher is served until it leaves.
async fn answer(request: ConnectionRequest, shared: Shared) {
    let peer = request.remote();
    let id = request
        .stream_id()
        .map(ToString::to_string)
        .unwrap_or_default();
    let encrypted = request.key_size() != srt_tokio::options::KeySize::Unspecified;
    let (wanted, permit) = match admit(&shared, peer, &id, encrypted) {
        Ok(admitted) => admitted,
        Err((code, asked, cause)) => return refuse(request, (code, asked, cause)).await,
    };
    if wanted.action == Action::Read {
        return read(request, wanted.path, permit, shared).await;
    }
    let Some(socket) = accept(request).await else {
        return;
    };
    info!(%peer, path = %wanted.path, "SRT publisher connected");
    let mut publishing = Publishing::new(wanted.path.clone(), peer, &shared);
    let result = publishing.run(socket, &permit).await;
    drop(permit);
    match result {
        Ok(()) => info!(%peer, path = %wanted.path, "SRT publisher left"),
        Err(cause) => warn!(%peer, path = %wanted.path, %cause, "SRT publisher closed"),
    }
}

async fn accept(request: ConnectionRequest) -> Option<SrtSocket> {
    let peer = request.remote();
    match request.accept(None).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            warn!(%peer, error = %e, "SRT connection failed while accepting");
            None
        }
    }
}

/// Serves a reader of `path`: its stream (an on-demand source woken), the subscription, then
/// the transport stream until it leaves.
async fn read(request: ConnectionRequest, path: String, permit: Permit, shared: Shared) {
    let peer = request.remote();
    let hub = &shared.hub;
    let subscribed = match hub.stream_on_demand(&path, READ_ON_DEMAND_WAIT).await {
        None => Err((
            ServerRejectReason::Notfound,
            format!("no stream is being published on path {path:?}"),
        )),
        Some(stream) => {
            permit.activity.touch(); // the wait was not idleness
            let reader = ReaderInfo {
                protocol: "srt".into(),
                remote: peer.to_string(),
            };
            hub.subscribe_as(&path, reader)
                .map(|sub| Reading::new(&path, &stream, sub))
                .map_err(|e| {
                    let code = match e {
                        SubscribeError::NotServed(_) => ServerRejectReason::Notfound,
                        SubscribeError::TooManyReaders { .. } => ServerRejectReason::Overload,
                    };
                    (code, e.to_string())
                })
        }
    };
    let reading = match subscribed {
        Ok(reading) => reading,
        Err((code, cause)) => {
            return refuse(
                request,
                (code, format!("{:?} {path:?}", Action::Read), cause),
            )
            .await
        }
    };
    let Some(socket) = accept(request).await else {
        return;
    };
    info!(%peer, %path, "SRT reader started");
    let result = srt_reader::play(socket, reading, &permit, shared.config.read_timeout).await;
    drop(permit);
    match result {
        Ok(()) => info!(%peer, %path, "SRT reader left"),
        Err(cause) => warn!(%peer, %path, %cause, "SRT reader closed"),
    }
}

/// Rejects `request` with the refusal's code, and logs it naming the peer, what was asked and
/// the cause.
async fn refuse(request: ConnectionRequest, (code, asked, cause): Refusal) {
    let peer = request.remote();
    warn!(%peer, asked = %asked, %cause, "SRT connection refused");
    let _ = request.reject(RejectReason::Server(code)).await;
}

/// A refusal: the code, what was asked (action and path, never the credentials), the cause.
type Refusal = (ServerRejectReason, String, String);

/// The checks before accepting, in the order of the module docs.
fn admit(
    shared: &Shared,
    peer: SocketAddr,
    id: &str,
    encrypted: bool,
) -> Result<(StreamRequest, Permit), Refusal> {
    let wanted =
        parse_stream_id(id).map_err(|e| (ServerRejectReason::BadRequest, "?".to_string(), e))?;
    let asked = format!("{:?} {:?}", wanted.action, wanted.path);
    let refuse = |code, cause: String| (code, asked.clone(), cause);
    if encrypted {
        return Err(refuse(
            ServerRejectReason::BadRequest,
            "encrypted SRT (a passphrase) is not supported: publish without one".into(),
        ));
    }
    permitted(shared, peer, &wanted).map_err(|(code, cause)| refuse(code, cause))?;
    if wanted.action == Action::Publish {
        shared
            .hub
            .check_publishable(&wanted.path)
            .map_err(|e| match e {
                PublishError::Busy { .. } => refuse(ServerRejectReason::Conflict, e.to_string()),
                PublishError::UnknownPath(_) => refuse(ServerRejectReason::Notfound, e.to_string()),
            })?;
    }
    let permit = shared
        .gate
        .admit(peer)
        .map_err(|e| refuse(ServerRejectReason::Overload, e.to_string()))?;
    Ok((wanted, permit))
}

fn permitted(
    shared: &Shared,
    peer: SocketAddr,
    wanted: &StreamRequest,
) -> Result<(), (ServerRejectReason, String)> {
    let authorization = wanted
        .credentials
        .as_ref()
        .map(|(user, pass)| basic_authorization(user, pass));
    let decision = shared.auth.check(&AuthRequest {
        action: wanted.action,
        path: &wanted.path,
        ip: peer.ip(),
        connection: Some(peer),
        authorization: authorization.as_deref(),
        method: if wanted.action == Action::Read {
            "READ"
        } else {
            "PUBLISH"
        },
        uri: &wanted.path,
        now_secs: livefeed_media::clock::unix_now_ns() / 1_000_000_000,
    });
    match decision {
        Decision::Allowed { .. } => Ok(()),
        Decision::Unauthorized { reason, .. } => Err((ServerRejectReason::Unauthorized, reason)),
        Decision::Forbidden { reason } => Err((ServerRejectReason::Forbidden, reason)),
    }
}

/// One publisher's stream.
struct Publishing {
    path: String,
    peer: SocketAddr,
    shared: Shared,
    demux: TsDemuxer,
    /// The video frames since the first keyframe, while the path waits for the AAC config.
    held: Vec<HeldFrame>,
    first_keyframe: Option<Instant>,
    audio_config: Option<[u8; 2]>,
    tracks: Option<Tracks>,
}

/// A video access unit on its way to the hub.
struct HeldFrame {
    nals: Vec<Bytes>,
    pts: u64,
    keyframe: bool,
    lost_before: bool,
}

/// The path's tracks, once claimed.
struct Tracks {
    video: TrackIngest,
    audio: Option<(TrackIngest, AacRtp, u32)>,
}

impl Publishing {
    fn new(path: String, peer: SocketAddr, shared: &Shared) -> Self {
        Publishing {
            path,
            peer,
            shared: shared.clone(),
            demux: TsDemuxer::default(),
            held: Vec::new(),
            first_keyframe: None,
            audio_config: None,
            tracks: None,
        }
    }

    /// Reads the socket until the publisher leaves, falls silent, or the hub refuses it.
    async fn run(&mut self, mut socket: SrtSocket, permit: &Permit) -> Result<(), String> {
        let timeout = self.shared.config.read_timeout;
        let connected = Instant::now();
        loop {
            if self.tracks.is_none() && connected.elapsed() >= VIDEO_WAIT {
                return Err(format!(
                    "no video keyframe (H.264 or H.265 in the transport stream) within {VIDEO_WAIT:?}"
                ));
            }
            let next = tokio::select! {
                next = tokio::time::timeout(timeout, socket.next()) => next,
                () = permit.cancel.cancelled() => return Err("shed: idle while the server was full".into()),
            };
            let bytes = match next {
                Err(_) => return Err(format!("nothing received for {timeout:?}")),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(format!("SRT: {e}")),
                Ok(Some(Ok((_, bytes)))) => bytes,
            };
            permit.activity.touch();
            for frame in self.demux.push(&bytes) {
                self.frame(frame)?;
            }
        }
    }

    fn frame(&mut self, frame: TsFrame) -> Result<(), String> {
        match frame {
            TsFrame::Video {
                codec,
                annex_b,
                pts,
                lost_before,
                ..
            } => {
                let limits = self.shared.config.limits;
                if annex_b.len() > limits.max_access_unit_bytes {
                    return Err(format!(
                        "a video frame of {} bytes, over the {}-byte limit",
                        annex_b.len(),
                        limits.max_access_unit_bytes
                    ));
                }
                let nals: Vec<Bytes> = split_annex_b(&annex_b)
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .map(|n| annex_b.slice_ref(n))
                    .collect();
                if nals.is_empty() || nals.len() > limits.max_nals {
                    return Ok(()); // nothing a reader could take
                }
                let keyframe = nals.iter().any(|n| codec.is_keyframe_nal(n));
                let frame = HeldFrame {
                    nals,
                    pts,
                    keyframe,
                    lost_before,
                };
                self.video(codec, frame)
            }
            TsFrame::Aac {
                audio_specific_config,
                frame,
                pts,
            } => {
                self.audio_config.get_or_insert(audio_specific_config);
                let Some((track, rtp, rate)) = self.tracks.as_mut().and_then(|t| t.audio.as_mut())
                else {
                    return Ok(());
                };
                let ts = (u128::from(pts) * u128::from(*rate) / 90_000) as u32;
                match rtp.packet_at(&frame, ts) {
                    Some(packet) => track.push(&packet),
                    None => Ok(()), // over 8191 bytes: not AAC a reader could take
                }
            }
        }
    }

    /// A video frame: held from the first keyframe until the path is claimed, then published.
    fn video(&mut self, codec: VideoCodec, frame: HeldFrame) -> Result<(), String> {
        if self.tracks.is_some() {
            return self.push_video(frame);
        }
        if frame.keyframe && self.first_keyframe.is_none() {
            self.first_keyframe = Some(Instant::now());
        }
        if self.first_keyframe.is_none() {
            return Ok(()); // a reader could not decode it
        }
        self.held.push(frame);
        let waited = self.first_keyframe.map_or(Duration::ZERO, |t| t.elapsed());
        if self.demux.has_audio()
            && self.audio_config.is_none()
            && waited < AUDIO_CONFIG_WAIT
            && self.held.len() < HELD_FRAMES
        {
            return Ok(());
        }
        self.claim(codec)?;
        for frame in std::mem::take(&mut self.held) {
            self.push_video(frame)?;
        }
        Ok(())
    }

    fn push_video(&mut self, frame: HeldFrame) -> Result<(), String> {
        let Some(tracks) = self.tracks.as_mut() else {
            return Ok(());
        };
        tracks.video.push_frame(Depacketized {
            nals: frame.nals,
            rtp_timestamp: frame.pts as u32,
            ext_timestamp: frame.pts,
            keyframe: frame.keyframe,
            lost_packets_before: frame.lost_before,
            ssrc: 0,
        })
    }

    /// Claims the path for the stream's tracks.
    fn claim(&mut self, codec: VideoCodec) -> Result<(), String> {
        let audio = self
            .audio_config
            .and_then(|c| AacConfig::from_audio_specific_config(Bytes::copy_from_slice(&c)).ok())
            .and_then(|c| aac_track(&c).map(|(d, rtp)| (d, rtp, c.sample_rate)));
        let info = PublisherInfo {
            protocol: "srt".into(),
            remote: self.peer.to_string(),
        };
        let others = audio.iter().map(|(d, _, _)| d.clone()).collect();
        let publisher = self
            .shared
            .hub
            .claim_publisher_with(&self.path, info, None, others)
            .map_err(|e| e.to_string())?;
        let ingest = Arc::new(IngestShared::new(
            publisher,
            self.peer.to_string(),
            self.shared.metrics.clone(),
        ));
        let limits = self.shared.config.limits;
        let video = TrackIngest::video(ingest.clone(), codec, 0, limits, false);
        let audio = audio.map(|(description, rtp, rate)| {
            (TrackIngest::packets(ingest, 1, &description), rtp, rate)
        });
        info!(peer = %self.peer, path = %self.path, video = codec.name(),
            audio = audio.is_some(), "SRT publisher streaming");
        self.tracks = Some(Tracks { video, audio });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_in_both_syntaxes() {
        let publish = parse_stream_id("publish:live/cam").expect("MediaMTX's syntax");
        assert_eq!(publish.action, Action::Publish);
        assert_eq!(publish.path, "live/cam");
        assert_eq!(publish.credentials, None);
        let read = parse_stream_id("read:cam:user:pa:ss").expect("with credentials");
        assert_eq!(read.action, Action::Read);
        assert_eq!(read.credentials, Some(("user".into(), "pa:ss".into())));
        let ac = parse_stream_id("#!::r=cam,m=publish,u=u,s=p").expect("access control");
        assert_eq!((ac.action, ac.path.as_str()), (Action::Publish, "cam"));
        assert_eq!(ac.credentials, Some(("u".into(), "p".into())));
        assert_eq!(
            parse_stream_id("#!::r=cam").expect("request").action,
            Action::Read
        );
        for bad in [
            "",
            "cam",
            "publish:",
            "publish:../etc",
            "publish:cam:user",
            "#!::m=publish",
            "#!::r=cam,m=record",
            "#!::garbage",
        ] {
            assert!(parse_stream_id(bad).is_err(), "{bad:?}");
        }
    }
}
