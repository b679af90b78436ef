//! The AAC track of a path, as the server's own muxers (LL-HLS, recordings) read it: which of
//! the tracks beside the video is carried (the first MPEG4-GENERIC AAC track whose fmtp can be
//! read), and its RTP payloads turned into raw AAC frames with decode times in the track's
//! sampling rate.

use bytes::Bytes;
use livefeed_media::aac::{AacConfig, AacDepacketizer, AacError};
use livefeed_media::track::{Codec, TrackDescription, TrackPacket};
use tracing::{debug, warn};

/// One AAC track being read.
pub struct AacTrack {
    /// The track number (1, 2, …).
    pub track: usize,
    /// What the publisher announced for it.
    pub description: TrackDescription,
    clock_rate: u32,
    depacketizer: AacDepacketizer,
}

impl AacTrack {
    /// The AAC track of `others` that the muxers carry, if any (logs why an AAC track is not).
    pub fn find(path: &str, others: &[TrackDescription]) -> Option<AacTrack> {
        others
            .iter()
            .enumerate()
            .find_map(|(i, t)| match aac_config(t)? {
                Ok(config) => Some(AacTrack {
                    track: i + 1,
                    description: t.clone(),
                    clock_rate: t.clock_rate,
                    depacketizer: AacDepacketizer::new(config),
                }),
                Err(e) => {
                    warn!(path, track = i + 1, error = %e, "AAC track cannot be muxed");
                    None
                }
            })
    }

    /// The stream's configuration.
    pub fn config(&self) -> &AacConfig {
        self.depacketizer.config()
    }

    /// The frames `packet` completes, with their decode times in the sampling rate (the path's
    /// timeline). A malformed payload yields none.
    pub fn frames(&mut self, packet: &TrackPacket) -> Vec<(Bytes, u64)> {
        let frames = match self
            .depacketizer
            .push(&packet.payload, packet.pts, packet.marker)
        {
            Ok(frames) => frames,
            Err(e) => {
                debug!(track = self.track, error = %e, "AAC payload skipped");
                return Vec::new();
            }
        };
        let rate = u64::from(self.config().sample_rate);
        let clock = u64::from(self.clock_rate.max(1));
        frames
            .into_iter()
            .map(|f| (f.data, f.timestamp * rate / clock))
            .collect()
    }
}

/// Whether the muxers can carry `track` (the first such track of a stream is carried).
pub fn can_carry(track: &TrackDescription) -> bool {
    matches!(aac_config(track), Some(Ok(_)))
}

/// The config of an MPEG4-GENERIC AAC track; `None` for any other track.
fn aac_config(t: &TrackDescription) -> Option<Result<AacConfig, AacError>> {
    let generic = t
        .rtpmap
        .as_deref()
        .is_some_and(|m| m.to_ascii_uppercase().starts_with("MPEG4-GENERIC/"));
    (t.codec == Codec::Aac && generic)
        .then(|| AacConfig::from_fmtp(t.fmtp.as_deref().unwrap_or("")))
}
