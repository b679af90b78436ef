//! The audio track of a path, as the server's own muxers (LL-HLS, recordings) read it: which
//! of the tracks beside the video is carried (the first AAC — MPEG4-GENERIC or MP4A-LATM —,
//! Opus or G.711 track that can be read), and its RTP payloads turned into frames (raw AAC frames, Opus
//! packets) with decode times and durations in the track's sampling rate. G.711, which fMP4
//! players do not take, is transcoded to Opus (48 kHz) here.

use bytes::Bytes;
use livefeed_hls::cmaf::AudioTrack;
use livefeed_media::aac::{AacConfig, AacDepacketizer, AacError, AacFrame};
use livefeed_media::clock::rescale;
use livefeed_media::latm::{self, LatmDepacketizer};
use livefeed_media::opus;
use livefeed_media::track::{Codec, TrackDescription, TrackPacket};
use livefeed_transcode::G711ToOpus;
use tracing::{debug, warn};

/// One audio frame for a muxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// The frame (a raw AAC frame, an Opus packet).
    pub data: Bytes,
    /// Decode time in the sampling rate, on the path's timeline.
    pub decode_time: u64,
    /// Duration in the sampling rate.
    pub duration: u32,
}

/// The audio track muxed beside a path's video.
pub struct MuxedAudio {
    /// The track number (1, 2, …).
    pub track: usize,
    /// What the publisher announced for it.
    pub description: TrackDescription,
    reader: Reader,
}

enum Reader {
    Aac(AacDepacketizer),
    Latm(LatmDepacketizer),
    Opus { channels: u8 },
    G711(Box<G711ToOpus>),
}

/// What a track is, for the muxers.
enum Kind {
    Aac(AacConfig),
    Latm(AacConfig, u32),
    Opus { channels: u8 },
    G711 { a_law: bool },
}

impl MuxedAudio {
    /// The audio track of `others` that the muxers carry, if any (logs why an AAC track cannot
    /// be).
    pub fn find(path: &str, others: &[TrackDescription]) -> Option<MuxedAudio> {
        others.iter().enumerate().find_map(|(i, t)| {
            let reader = match kind_of(t)?.and_then(Reader::new) {
                Ok(reader) => reader,
                Err(e) => {
                    warn!(path, track = i + 1, error = %e, "audio track cannot be muxed");
                    return None;
                }
            };
            Some(MuxedAudio {
                track: i + 1,
                description: t.clone(),
                reader,
            })
        })
    }

    /// Whether `current` is the audio track of `others` the muxers carry (a new publisher
    /// may bring another one, or none).
    pub fn is_current(current: Option<&MuxedAudio>, others: &[TrackDescription]) -> bool {
        let wanted = others
            .iter()
            .enumerate()
            .find(|(_, t)| can_carry(t))
            .map(|(i, t)| (i + 1, t));
        wanted == current.map(|a| (a.track, &a.description))
    }

    /// Makes `current` the audio track of `others` the muxers carry; `true` if it changed.
    pub fn follow(
        path: &str,
        current: &mut Option<MuxedAudio>,
        others: &[TrackDescription],
    ) -> bool {
        if Self::is_current(current.as_ref(), others) {
            return false;
        }
        *current = MuxedAudio::find(path, others);
        true
    }

    /// What the init segment says about the track.
    pub fn cmaf_track(&self) -> AudioTrack {
        match &self.reader {
            Reader::Aac(d) => AudioTrack::Aac(d.config().clone()),
            Reader::Latm(d) => AudioTrack::Aac(d.config().clone()),
            Reader::Opus { channels } => AudioTrack::Opus {
                channels: *channels,
            },
            Reader::G711(_) => AudioTrack::Opus { channels: 1 },
        }
    }

    /// The frames `packet` completes. A malformed payload yields none.
    pub fn frames(&mut self, packet: &TrackPacket) -> Vec<AudioFrame> {
        let clock = self.description.clock_rate;
        match &mut self.reader {
            Reader::Aac(depacketizer) => {
                let frames = depacketizer.push(&packet.payload, packet.pts, packet.marker);
                aac_frames(self.track, depacketizer.config(), clock, frames)
            }
            Reader::Latm(depacketizer) => {
                let frames = depacketizer.push(&packet.payload, packet.pts, packet.marker);
                aac_frames(self.track, depacketizer.config(), clock, frames)
            }
            Reader::Opus { .. } => match opus::packet_samples(&packet.payload) {
                Some(duration) => vec![AudioFrame {
                    data: packet.payload.clone(),
                    decode_time: rescale(packet.pts, opus::CLOCK_RATE, clock),
                    duration,
                }],
                None => {
                    debug!(
                        track = self.track,
                        "Opus payload without a valid TOC skipped"
                    );
                    Vec::new()
                }
            },
            Reader::G711(transcoder) => {
                let timestamp = rescale(packet.pts, 8_000, clock);
                match transcoder.push(&packet.payload, timestamp) {
                    Ok(packets) => packets
                        .into_iter()
                        .map(|p| AudioFrame {
                            data: p.data,
                            decode_time: p.pts,
                            duration: p.duration,
                        })
                        .collect(),
                    Err(e) => {
                        debug!(track = self.track, error = %e, "G.711 payload not transcoded");
                        Vec::new()
                    }
                }
            }
        }
    }
}

/// The muxer frames of what an AAC depacketizer (either payload format) returned.
fn aac_frames(
    track: usize,
    config: &AacConfig,
    clock: u32,
    frames: Result<Vec<AacFrame>, AacError>,
) -> Vec<AudioFrame> {
    let frames = match frames {
        Ok(frames) => frames,
        Err(e) => {
            debug!(track, error = %e, "AAC payload skipped");
            return Vec::new();
        }
    };
    frames
        .into_iter()
        .map(|f| AudioFrame {
            data: f.data,
            decode_time: rescale(f.timestamp, config.sample_rate, clock),
            duration: config.frame_length,
        })
        .collect()
}

impl Reader {
    fn new(kind: Kind) -> Result<Reader, String> {
        Ok(match kind {
            Kind::Aac(config) => Reader::Aac(AacDepacketizer::new(config)),
            Kind::Latm(config, clock) => Reader::Latm(LatmDepacketizer::new(config, clock)),
            Kind::Opus { channels } => Reader::Opus { channels },
            Kind::G711 { a_law } => {
                Reader::G711(Box::new(G711ToOpus::new(a_law).map_err(|e| e.to_string())?))
            }
        })
    }
}

/// Whether the muxers can carry `track` (the first such track of a stream is carried).
pub fn can_carry(track: &TrackDescription) -> bool {
    match kind_of(track) {
        Some(Ok(Kind::G711 { .. })) => livefeed_transcode::opus_encoder::available().is_ok(),
        Some(Ok(_)) => true,
        _ => false,
    }
}

/// What `t` is; `None` for a track the muxers do not carry.
fn kind_of(t: &TrackDescription) -> Option<Result<Kind, String>> {
    let encoding = t.rtpmap.as_deref().unwrap_or("").to_ascii_uppercase();
    match t.codec {
        Codec::Aac if encoding.starts_with("MPEG4-GENERIC/") => Some(
            AacConfig::from_fmtp(t.fmtp.as_deref().unwrap_or(""))
                .map(Kind::Aac)
                .map_err(|e: AacError| e.to_string()),
        ),
        Codec::Aac if encoding.starts_with("MP4A-LATM/") => Some(
            latm::config_from_fmtp(t.fmtp.as_deref().unwrap_or(""))
                .map(|config| Kind::Latm(config, t.clock_rate))
                .map_err(|e| format!("MP4A-LATM: {e}")),
        ),
        Codec::Opus if t.clock_rate == opus::CLOCK_RATE => Some(Ok(Kind::Opus {
            channels: opus::channels(t.fmtp.as_deref()),
        })),
        Codec::Pcmu | Codec::Pcma if t.clock_rate == 8_000 => Some(Ok(Kind::G711 {
            a_law: t.codec == Codec::Pcma,
        })),
        _ => None,
    }
}
