//! WHIP publishers (OBS 30+, browsers, the `/PATH/publish` page): what their sessions receive,
//! into the hub. The HTTP endpoint (`POST /PATH/whip`) checks the offer and claims the path
//! ([`WhipIngest::claim`]: one publisher per path, as for every protocol); the WebRTC media
//! loop ([`crate::outputs::whep`]) owns the session, which shares the UDP socket and the
//! ICE-TCP listener with the viewers, and hands each frame str0m completes to
//! [`WhipIngest::push`].
//!
//! Video (H.264 or H.265, Annex B from str0m) enters the hub as a whole access unit from the
//! first keyframe on; Opus packets are wrapped in RTP again (RFC 7587) so they enter the hub as
//! a pushed Opus track's do. Capture times are arrival times (a browser's frames carry no
//! livefeed stamp; the publish page's pixel timecode is measured by the players instead).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use livefeed_media::h264::split_annex_b;
use livefeed_media::rtp::{Depacketized, DepacketizerLimits};
use livefeed_media::track::TrackDescription;
use livefeed_media::VideoCodec;
use livefeed_webrtc::Received;

use crate::hub::{Hub, PublishError, PublisherInfo};
use crate::ingest::rtp_in::{IngestShared, TrackIngest};
use crate::measure::metrics::ServerMetrics;

/// The payload type the hub knows a WHIP publisher's Opus track by.
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// One WHIP publisher's tracks in the hub.
pub struct WhipIngest {
    video: TrackIngest,
    codec: VideoCodec,
    limits: DepacketizerLimits,
    audio: Option<(TrackIngest, OpusRtp)>,
    keyframe_seen: bool,
    /// Changes when a reader asks the publisher for a keyframe.
    keyframe_requests: tokio::sync::watch::Receiver<u64>,
}

impl WhipIngest {
    /// Claims `path` for a WHIP publisher at `peer` sending `codec` (and Opus when `audio`).
    pub fn claim(
        hub: &Arc<Hub>,
        metrics: Arc<ServerMetrics>,
        path: &str,
        peer: SocketAddr,
        codec: VideoCodec,
        audio: bool,
        limits: DepacketizerLimits,
    ) -> Result<WhipIngest, PublishError> {
        let info = PublisherInfo {
            protocol: "webrtc".into(),
            remote: peer.to_string(),
        };
        let others: Vec<TrackDescription> = audio
            .then(|| {
                TrackDescription::new(
                    "audio",
                    OPUS_PAYLOAD_TYPE,
                    Some("opus/48000/2"),
                    Some("minptime=10;useinbandfec=1"),
                    None,
                )
            })
            .flatten()
            .into_iter()
            .collect();
        let publisher = hub.claim_publisher_with(path, info, None, others.clone())?;
        let keyframe_requests = publisher.keyframe_requests();
        let shared = Arc::new(IngestShared::new(publisher, peer.to_string(), metrics));
        let video = TrackIngest::video(shared.clone(), codec, 0, limits, false);
        let audio = others
            .first()
            .map(|d| (TrackIngest::packets(shared, 1, d), OpusRtp::default()));
        Ok(WhipIngest {
            video,
            codec,
            limits,
            audio,
            keyframe_seen: false,
            keyframe_requests,
        })
    }

    /// Whether a reader asked for a keyframe since the last call.
    pub fn keyframe_wanted(&mut self) -> bool {
        let changed = self.keyframe_requests.has_changed().unwrap_or(false);
        if changed {
            self.keyframe_requests.borrow_and_update();
        }
        changed
    }

    /// One frame into the hub. `Err` (with the reason) once another publisher took the path
    /// over, or for a frame no reader could take: the session should close.
    pub fn push(&mut self, received: Received) -> Result<(), String> {
        match received {
            Received::Video {
                annex_b,
                rtp_time,
                lost_before,
                ..
            } => self.video(&annex_b, rtp_time, lost_before),
            Received::Audio {
                packet, rtp_time, ..
            } => match self.audio.as_mut() {
                Some((track, rtp)) if self.keyframe_seen => {
                    track.push(&rtp.packet(&packet, rtp_time))
                }
                _ => Ok(()),
            },
        }
    }

    fn video(&mut self, annex_b: &[u8], rtp_time: u64, lost_before: bool) -> Result<(), String> {
        if annex_b.len() > self.limits.max_access_unit_bytes {
            return Err(format!(
                "a video frame of {} bytes, over the {}-byte limit",
                annex_b.len(),
                self.limits.max_access_unit_bytes
            ));
        }
        let nals: Vec<Bytes> = split_annex_b(annex_b)
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(Bytes::copy_from_slice)
            .collect();
        if nals.len() > self.limits.max_nals {
            return Err(format!(
                "a video frame of {} NAL units, over the limit of {}",
                nals.len(),
                self.limits.max_nals
            ));
        }
        let keyframe = nals.iter().any(|n| self.codec.is_keyframe_nal(n));
        self.keyframe_seen |= keyframe;
        if !self.keyframe_seen || nals.is_empty() {
            return Ok(()); // a reader could not decode it
        }
        self.video.push_frame(Depacketized {
            nals,
            rtp_timestamp: rtp_time as u32,
            ext_timestamp: rtp_time,
            keyframe,
            lost_packets_before: lost_before,
            ssrc: 0,
        })
    }
}

/// Wraps Opus packets in RTP again (RFC 7587: one packet per payload, 48 kHz clock).
#[derive(Default)]
struct OpusRtp {
    sequence: u16,
}

impl OpusRtp {
    fn packet(&mut self, opus: &[u8], rtp_time: u64) -> Vec<u8> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut p = Vec::with_capacity(12 + opus.len());
        p.extend([0x80, OPUS_PAYLOAD_TYPE]);
        p.extend(self.sequence.to_be_bytes());
        p.extend((rtp_time as u32).to_be_bytes());
        p.extend(0x5748_4950u32.to_be_bytes()); // SSRC "WHIP"
        p.extend(opus);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packets_become_rfc_7587_rtp() {
        let mut rtp = OpusRtp::default();
        let first = rtp.packet(&[0xfc, 1, 2], 48_000 * 3 + (1 << 32));
        assert_eq!(&first[..2], &[0x80, OPUS_PAYLOAD_TYPE]);
        assert_eq!(&first[2..4], &1u16.to_be_bytes());
        assert_eq!(
            &first[4..8],
            &(48_000u32 * 3).to_be_bytes(),
            "RTP time wraps at 32 bits"
        );
        assert_eq!(&first[12..], &[0xfc, 1, 2]);
        let second = rtp.packet(&[0xfc], 0);
        assert_eq!(&second[2..4], &2u16.to_be_bytes());
    }
}
