//! Opus over RTP (RFC 7587): one Opus packet per RTP payload, on a 48 kHz clock. This module
//! reads what a muxer needs from a packet (its duration, from the TOC byte of RFC 6716 §3.1)
//! and the channel count from the `fmtp`.

/// The RTP clock (and sample rate) of Opus.
pub const CLOCK_RATE: u32 = 48_000;

/// Longest Opus packet: 120 ms at 48 kHz.
pub const MAX_PACKET_SAMPLES: u32 = 5760;

/// Samples (at 48 kHz) one frame lasts, by the TOC's configuration number.
fn frame_samples(config: u8) -> u32 {
    match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// The duration of an Opus packet in 48 kHz samples; `None` if it is empty, its frame count
/// is missing or zero, or it lasts more than 120 ms.
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let samples = frames * frame_samples(toc >> 3);
    (1..=MAX_PACKET_SAMPLES)
        .contains(&samples)
        .then_some(samples)
}

/// Channels the stream carries: 2 when the fmtp says `sprop-stereo=1`, else 1 (RFC 7587
/// §7.1: the receiver may decode either way).
pub fn channels(fmtp: Option<&str>) -> u8 {
    let stereo = fmtp.unwrap_or("").split(';').any(|p| {
        p.trim()
            .split_once('=')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("sprop-stereo") && v.trim() == "1")
    });
    if stereo {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_from_the_toc() {
        assert_eq!(
            packet_samples(&[0xfc, 1, 2]),
            Some(960),
            "CELT 20 ms, one frame"
        );
        assert_eq!(
            packet_samples(&[0x78 | 1]),
            Some(1920),
            "hybrid 20 ms, two frames"
        );
        assert_eq!(
            packet_samples(&[0x18 | 3, 2]),
            Some(2 * 2880),
            "SILK 60 ms x2"
        );
        assert_eq!(
            packet_samples(&[0x80 | 3, 48]),
            Some(5760),
            "2.5 ms x48 = 120 ms"
        );
        assert_eq!(packet_samples(&[0x18 | 3, 3]), None, "180 ms is too long");
        assert_eq!(packet_samples(&[0x03]), None, "code 3 without a count");
        assert_eq!(packet_samples(&[0x03, 0]), None, "zero frames");
        assert_eq!(packet_samples(&[]), None);
    }

    #[test]
    fn stereo_only_when_announced() {
        assert_eq!(
            channels(Some("minptime=10;useinbandfec=1;sprop-stereo=1")),
            2
        );
        assert_eq!(channels(Some("sprop-stereo=0")), 1);
        assert_eq!(channels(None), 1);
    }
}
