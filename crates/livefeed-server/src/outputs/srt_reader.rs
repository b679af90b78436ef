//! SRT readers (`srt://HOST:8890?streamid=read:PATH`: ffmpeg, ffplay, VLC, OBS): a path's
//! frames as MPEG-TS ([`TsMuxer`]) over an accepted SRT socket, in live mode.
//!
//! ## Contract
//!
//! [`play`] sends from the first live keyframe (the publisher is asked for one) until the
//! reader leaves, the path ends (its publisher gone past the grace), the gate sheds the connection, or the socket takes
//! nothing for the write timeout. The video goes out whatever its codec (H.264 or H.265); the
//! audio track the server's muxers carry goes with it when it is AAC that ADTS can describe
//! (MPEG-4 Generic or LATM in, ADTS out); other audio (Opus, G.711, HE-AAC) is not carried (a
//! log line says so). A new publisher whose video codec or tracks differ ends the reader (the
//! hub disconnects every reader then; it reconnects and gets the new stream). TS packets go seven to an SRT message (1316
//! bytes, libsrt's live-mode payload), paced (see [`MESSAGES_PER_MS`]). What SRT does
//! with a reader that cannot keep up is srt-tokio's: live mode drops what is older than the
//! latency.
//!
//! The GOP cache is not sent, unlike to RTSP, RTMP and WebRTC readers, so a reader waits up to
//! one keyframe interval for its first picture (less when the publisher honours the request):
//! sent by srt-tokio (0.4) at once, the cache left ffmpeg's libsrt (1.5) dropping packets as
//! too late and decoding nothing at all, every time on loopback; live and paced as [`send`]
//! does, the same stream plays. Bursts of 16 messages a millisecond were too many for a
//! 1280x720 8 Mbit/s stream (nothing decoded); 4 play it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use livefeed_hls::cmaf::AudioTrack;
use livefeed_media::mpegts_mux::{TsMuxer, TS_PACKET_SIZE};
use srt_tokio::SrtSocket;
use tracing::info;

use crate::hub::{Delivery, Media, StreamInfo, Subscription};
use crate::limits::conn_gate::Permit;
use crate::outputs::audio_track::MuxedAudio;

/// An SRT message: seven TS packets.
const MESSAGE_SIZE: usize = 7 * TS_PACKET_SIZE;
/// The most messages sent in one millisecond: 4 (5.3 kB), about 42 Mbit/s; a 300 kB keyframe
/// goes out over 57 ms.
const MESSAGES_PER_MS: usize = 4;

/// A reader's stream: the subscription, its muxer, and the audio track carried.
pub struct Reading {
    sub: Subscription,
    mux: TsMuxer,
    /// The AAC track carried, with its sampling rate (the frames' time unit).
    audio: Option<(MuxedAudio, u32)>,
}

impl Reading {
    /// The reader of `stream` through `sub` (its audio found among the subscription's tracks).
    pub fn new(path: &str, stream: &StreamInfo, sub: Subscription) -> Self {
        let audio = MuxedAudio::find(path, &sub.others());
        let aac = match audio.as_ref().map(MuxedAudio::cmaf_track) {
            Some(AudioTrack::Aac(config)) => Some(config),
            _ => None,
        };
        let parameter_sets = stream
            .parameter_sets()
            .into_iter()
            .filter(|set| !set.is_empty())
            .map(|set| set.to_vec())
            .collect();
        let rate = aac.as_ref().map_or(0, |c| c.sample_rate);
        let mux = TsMuxer::new(stream.codec, parameter_sets, aac);
        if audio.is_some() && !mux.has_audio() {
            info!(
                path,
                "the path's audio is not AAC that ADTS can carry (LC, 1 to 7 channels, 1024-sample \
                 frames): SRT readers get the video alone"
            );
        }
        Reading {
            sub,
            audio: audio.filter(|_| mux.has_audio()).map(|a| (a, rate)),
            mux,
        }
    }

    /// The transport stream of one delivery (possibly nothing).
    fn mux(&mut self, delivery: &Delivery) -> Vec<u8> {
        let mut out = Vec::new();
        if delivery.from_cache {
            return out; // see the module docs
        }
        match &delivery.frame.media {
            Media::Video(au) => {
                let nals: Vec<&[u8]> = au.nals.iter().map(|n| &n[..]).collect();
                self.mux.video(&nals, au.pts, au.keyframe, &mut out);
            }
            Media::Packet(packet) => {
                let Some((audio, rate)) =
                    self.audio.as_mut().filter(|(a, _)| a.track == packet.track)
                else {
                    return out;
                };
                let rate = *rate;
                for frame in audio.frames(packet) {
                    let pts = livefeed_media::clock::rescale(frame.decode_time, 90_000, rate);
                    self.mux.aac(&frame.data, pts, &mut out);
                }
            }
        }
        out
    }
}

/// Sends the path to the reader on `socket` until one of the ends in the module docs.
pub async fn play(
    socket: SrtSocket,
    mut reading: Reading,
    permit: &Permit,
    write_timeout: Duration,
) -> Result<(), String> {
    let (mut sink, mut incoming) = socket.split();
    reading.sub.request_keyframe();
    loop {
        let delivery = tokio::select! {
            delivery = reading.sub.recv() => delivery,
            message = incoming.next() => match message {
                None => return Ok(()),
                Some(Err(e)) => return Err(format!("SRT: {e}")),
                Some(Ok(_)) => continue, // a reader has nothing to say: ignored
            },
            () = permit.cancel.cancelled() => return Err("shed: idle while the server was full".into()),
        };
        let Some(delivery) = delivery else {
            return Err("the path ended or changed (its readers were disconnected)".into());
        };
        let ts = reading.mux(&delivery);
        if ts.is_empty() {
            continue;
        }
        let sent = send(&mut sink, Bytes::from(ts));
        match tokio::time::timeout(write_timeout, sent).await {
            Ok(Ok(())) => permit.activity.touch(),
            Ok(Err(e)) => return Err(format!("SRT: {e}")),
            Err(_) => return Err(format!("the reader took nothing for {write_timeout:?}")),
        }
    }
}

/// Sends `ts` as SRT messages, at most [`MESSAGES_PER_MS`] a millisecond (a large
/// keyframe is spread over a few milliseconds rather than sent in one burst).
async fn send<S>(sink: &mut S, ts: Bytes) -> Result<(), std::io::Error>
where
    S: futures_util::Sink<(Instant, Bytes), Error = std::io::Error> + Unpin,
{
    let messages: Vec<_> = (0..ts.len())
        .step_by(MESSAGE_SIZE)
        .map(|at| ts.slice(at..ts.len().min(at + MESSAGE_SIZE)))
        .collect();
    for (i, batch) in messages.chunks(MESSAGES_PER_MS).enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let now = Instant::now(); // each batch stamped when it goes (TSBPD plays it from then)
        let batch: Vec<_> = batch.iter().map(|m| Ok((now, m.clone()))).collect();
        sink.send_all(&mut futures_util::stream::iter(batch))
            .await?;
    }
    Ok(())
}
