//! Test and benchmark support (not part of the library): a 1 kHz tone encoded by ffmpeg as
//! AAC, split into the raw frames an RTP depacketizer would give. Included by the unit tests
//! and by `examples/transcode_bench.rs`.

use bytes::Bytes;
use livefeed_media::aac::AacConfig;

/// Raw AAC frames of `secs` of a 1 kHz tone, encoded by ffmpeg as ADTS, and the stream's
/// AudioSpecificConfig.
pub fn aac_tone(rate: u32, channels: u8, secs: u32) -> (AacConfig, Vec<Vec<u8>>) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=1000:sample_rate={rate}:duration={secs}"
        ))
        .args([
            "-ac",
            &channels.to_string(),
            "-c:a",
            "aac",
            "-f",
            "adts",
            "-",
        ])
        .output()
        .expect("ffmpeg runs (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let adts = out.stdout;
    let mut frames = Vec::new();
    let mut at = 0;
    let mut asc = None;
    while at + 7 <= adts.len() {
        let h = &adts[at..at + 7];
        assert_eq!((h[0], h[1] & 0xf0), (0xff, 0xf0), "ADTS sync at {at}");
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let header = if h[1] & 1 == 0 { 9 } else { 7 };
        let object_type = (h[2] >> 6) + 1;
        let index = (h[2] >> 2) & 0xf;
        let ch = ((h[2] & 1) << 2) | (h[3] >> 6);
        asc.get_or_insert([
            (object_type << 3) | (index >> 1),
            ((index & 1) << 7) | (ch << 3),
        ]);
        frames.push(adts[at + header..at + len].to_vec());
        at += len;
    }
    let config =
        AacConfig::from_audio_specific_config(Bytes::copy_from_slice(&asc.expect("frames")))
            .expect("valid config");
    (config, frames)
}
