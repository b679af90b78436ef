//! AAC sound from protocols that carry raw frames (RTMP's FLV tags, SRT's MPEG-TS), wrapped in
//! RTP (RFC 3640 AAC-hbr, one frame per packet) so it enters the hub as a pushed AAC track's
//! does; and the credentials such protocols carry, as an HTTP `Authorization` value.

use livefeed_media::aac::AacConfig;
use livefeed_media::track::TrackDescription;

/// The payload type the hub knows such an AAC track by.
const AAC_PAYLOAD_TYPE: u8 = 97;

/// The track description of an AAC stream (as an RTSP publisher would announce it) and the
/// packetizer that wraps its frames.
pub(crate) fn aac_track(config: &AacConfig) -> Option<(TrackDescription, AacRtp)> {
    let hex: String = config
        .audio_specific_config
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let channels = config.channels.max(1);
    let description = TrackDescription::new(
        "audio",
        AAC_PAYLOAD_TYPE,
        Some(&format!("MPEG4-GENERIC/{}/{channels}", config.sample_rate)),
        Some(&format!(
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={hex}"
        )),
        None,
    )?;
    Some((
        description,
        AacRtp {
            sequence: 0,
            clock_rate: config.sample_rate,
        },
    ))
}

/// Wraps AAC frames in RTP (RFC 3640 AAC-hbr, one frame per packet), so they enter the hub
/// like a pushed AAC track's.
pub(crate) struct AacRtp {
    sequence: u16,
    clock_rate: u32,
}

impl AacRtp {
    /// The RTP packet of `frame`, captured at `timestamp_ms`; `None` for a frame too large for
    /// a 13-bit AU size.
    pub(crate) fn packet(&mut self, frame: &[u8], timestamp_ms: u32) -> Option<Vec<u8>> {
        let ts = (u64::from(timestamp_ms) * u64::from(self.clock_rate) / 1000) as u32;
        self.packet_at(frame, ts)
    }

    /// The RTP packet of `frame` at RTP time `ts` (the track's clock); `None` as for
    /// [`AacRtp::packet`].
    pub(crate) fn packet_at(&mut self, frame: &[u8], ts: u32) -> Option<Vec<u8>> {
        let size = u16::try_from(frame.len()).ok().filter(|s| *s < 1 << 13)?;
        self.sequence = self.sequence.wrapping_add(1);
        let mut p = Vec::with_capacity(16 + frame.len());
        p.extend([0x80, 0x80 | AAC_PAYLOAD_TYPE]);
        p.extend(self.sequence.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend(0x5254_4d50u32.to_be_bytes()); // SSRC "RTMP"
        p.extend([0x00, 0x10]); // AU-headers-length: 16 bits
        p.extend((size << 3).to_be_bytes()); // AU-size (13 bits), AU-index 0
        p.extend(frame);
        Some(p)
    }
}

/// An `Authorization: Basic` value for credentials a protocol carries elsewhere (RTMP's query,
/// SRT's stream id), so they are checked like HTTP's.
pub(crate) fn basic_authorization(user: &str, pass: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn aac_frames_become_rfc_3640_packets() {
        let config = AacConfig::from_audio_specific_config(Bytes::from_static(&[0x11, 0x90]))
            .expect("AAC-LC 48 kHz stereo");
        let (description, mut rtp) = aac_track(&config).expect("a track");
        assert_eq!(description.clock_rate, 48_000);
        assert!(description
            .fmtp
            .as_deref()
            .is_some_and(|f| f.contains("config=1190")));
        let packet = rtp.packet(&[1, 2, 3], 1000).expect("a packet");
        assert_eq!(&packet[4..8], &48_000u32.to_be_bytes());
        assert_eq!(&packet[12..16], &[0x00, 0x10, 0x00, 3 << 3]);
        assert_eq!(&packet[16..], &[1, 2, 3]);
        assert!(rtp.packet(&vec![0; 9000], 0).is_none());
    }
}
