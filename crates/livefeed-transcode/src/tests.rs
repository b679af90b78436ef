use super::*;
use crate::test_tone::aac_tone;

fn transcode(rate: u32, channels: u8) -> Vec<OpusPacket> {
    let (config, frames) = aac_tone(rate, channels, 2);
    assert_eq!((config.sample_rate, config.channels), (rate, channels));
    let mut t = AacToOpus::new(&config).expect("libopus and the decoder are there");
    let start = 1_000_000u64;
    let mut packets = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        packets.extend(t.push(frame, start + i as u64 * 1024).expect("decodes"));
    }
    packets
}

#[test]
fn a_48_khz_stereo_tone_becomes_20_ms_opus_packets_on_the_same_timeline() {
    let packets = transcode(48_000, 2);
    assert!(
        (95..=103).contains(&packets.len()),
        "{} packets for 2 s",
        packets.len()
    );
    assert_eq!(packets[0].pts, 1_000_000, "48 kHz: the same numbers");
    for pair in packets.windows(2) {
        assert_eq!(pair[1].pts, pair[0].pts + 960);
    }
    assert!(packets
        .iter()
        .all(|p| p.duration == 960 && p.data.len() > 10));
    assert_eq!(
        livefeed_media::opus::packet_samples(&packets[0].data),
        Some(960)
    );
}

#[test]
fn a_44_1_khz_mono_tone_is_resampled() {
    let packets = transcode(44_100, 1);
    // Two seconds, less what the resampler holds back.
    assert!(
        (88..=103).contains(&packets.len()),
        "{} packets for 2 s",
        packets.len()
    );
    assert_eq!(packets[0].pts, 1_000_000 * 48_000 / 44_100);
    assert!(packets.windows(2).all(|p| p[1].pts == p[0].pts + 960));
}

#[test]
fn a_gap_restarts_the_timeline_and_garbage_does_not_stop_it() {
    let (config, frames) = aac_tone(48_000, 1, 1);
    let mut t = AacToOpus::new(&config).expect("made");
    let mut packets = Vec::new();
    for (i, frame) in frames.iter().take(20).enumerate() {
        packets.extend(t.push(frame, i as u64 * 1024).expect("decodes"));
    }
    let after_gap = t.push(&frames[20], 500_000).expect("decodes");
    assert!(after_gap.iter().all(|p| p.pts >= 500_000), "{after_gap:?}");
    // Garbage decodes to an error or to silence (an AAC END element is valid), never a panic.
    for garbage in [&[][..], &[0xff; 3], &[0x00, 0x01, 0x02, 0x03], &[0x55; 300]] {
        let _ = t.push(garbage, 501_024);
    }
    let more = t.push(&frames[21], 501_024).expect("decodes on");
    let last = more.last().or(after_gap.last()).map(|p| p.pts);
    assert!(last.is_none_or(|pts| pts >= 500_000));
    assert!(!packets.is_empty());
}

#[test]
fn channels_are_fitted() {
    assert_eq!(fit_channels(&[1.0, 3.0], 2, 1), [2.0]);
    assert_eq!(fit_channels(&[1.0], 1, 2), [1.0, 1.0]);
    assert_eq!(fit_channels(&[1.0, 2.0], 2, 2), [1.0, 2.0]);
}

/// Decodes Opus packets with libopus (loaded as the encoder is) into mono 48 kHz samples.
fn decode_opus(packets: &[OpusPacket], channels: usize) -> Vec<f32> {
    type Create = unsafe extern "C" fn(i32, i32, *mut i32) -> *mut std::ffi::c_void;
    type Decode =
        unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, i32, *mut f32, i32, i32) -> i32;
    // SAFETY: libopus' decoder API (opus.h); buffers sized for 120 ms.
    unsafe {
        let lib = libloading::Library::new("libopus.so.0").expect("libopus");
        let create = *lib.get::<Create>(b"opus_decoder_create\0").expect("symbol");
        let decode = *lib.get::<Decode>(b"opus_decode_float\0").expect("symbol");
        let mut error = 0;
        let decoder = create(48_000, channels as i32, &mut error);
        assert!(!decoder.is_null() && error == 0);
        let mut out = Vec::new();
        let mut pcm = vec![0f32; 5760 * channels];
        for p in packets {
            let n = decode(
                decoder,
                p.data.as_ptr(),
                p.data.len() as i32,
                pcm.as_mut_ptr(),
                5760,
                0,
            );
            assert!(n > 0, "libopus decodes our packet");
            out.extend(pcm[..n as usize * channels].chunks(channels).map(|f| f[0]));
        }
        out
    }
}

/// The tone's strength at `freq` (Goertzel) relative to the signal's power: near 1 for a pure
/// tone at that frequency, near 0 for silence or another sound.
fn tone_share(samples: &[f32], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut power = 0.0f64;
    for &x in samples {
        let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
        power += f64::from(x) * f64::from(x);
    }
    let magnitude = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    if power == 0.0 {
        return 0.0;
    }
    2.0 * magnitude / (samples.len() as f64 * power)
}

#[test]
fn the_opus_packets_carry_the_publishers_tone() {
    for (rate, channels) in [(48_000, 2), (44_100, 1)] {
        let packets = transcode(rate, channels);
        let pcm = decode_opus(&packets, usize::from(channels));
        // Skip the first 100 ms (decoder and resampler start-up).
        let steady = &pcm[4800..];
        let rms = (steady.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / steady.len() as f64)
            .sqrt();
        assert!(
            rms > 0.05,
            "{rate} Hz: the sound is not silence (rms {rms:.3})"
        );
        let share = tone_share(steady, 1000.0);
        assert!(
            share > 0.8,
            "{rate} Hz: the 1 kHz tone holds {share:.2} of the power"
        );
        assert!(
            tone_share(steady, 1500.0) < 0.05,
            "and another frequency does not"
        );
    }
}

/// `secs` of a 1 kHz tone as G.711 bytes (ffmpeg's encoder), and ffmpeg's own decoding of them.
fn g711_tone(format: &str, secs: u32) -> (Vec<u8>, Vec<i16>) {
    let encoded = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=1000:sample_rate=8000:duration={secs}"
        ))
        .args(["-f", format, "-"])
        .output()
        .expect("ffmpeg runs")
        .stdout;
    let mut child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            format,
            "-ar",
            "8000",
            "-ac",
            "1",
        ])
        .args(["-i", "-", "-f", "s16le", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let bytes = encoded.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("ffmpeg decodes");
    let _ = writer.join();
    let decoded = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (encoded, decoded)
}

#[test]
fn g711_decoding_matches_ffmpeg_sample_for_sample() {
    for (format, decode) in [
        ("mulaw", g711::mu_law as fn(u8) -> i16),
        ("alaw", g711::a_law),
    ] {
        let (encoded, reference) = g711_tone(format, 1);
        assert_eq!(encoded.len(), 8000);
        let ours: Vec<i16> = encoded.iter().map(|&b| decode(b)).collect();
        assert_eq!(ours, reference, "{format}");
    }
    // Every byte decodes (no overflow), and silence is near zero.
    for b in 0..=255u8 {
        let _ = (g711::mu_law(b), g711::a_law(b));
    }
    assert_eq!(g711::mu_law(0xff), 0);
    assert!(g711::a_law(0xd5).abs() <= 8);
}

#[test]
fn g711_becomes_opus_carrying_the_same_tone() {
    for (format, a_law) in [("mulaw", false), ("alaw", true)] {
        let (encoded, _) = g711_tone(format, 2);
        let mut t = G711ToOpus::new(a_law).expect("libopus is there");
        let mut packets = Vec::new();
        for (i, payload) in encoded.chunks(160).enumerate() {
            packets.extend(
                t.push(payload, 80_000 + i as u64 * 160)
                    .expect("transcodes"),
            );
        }
        assert!(
            (90..=100).contains(&packets.len()),
            "{format}: {} packets",
            packets.len()
        );
        assert_eq!(packets[0].pts, 80_000 * 6, "8 kHz → 48 kHz timeline");
        assert!(packets.windows(2).all(|p| p[1].pts == p[0].pts + 960));
        let pcm = decode_opus(&packets, 1);
        let share = tone_share(&pcm[4800..], 1000.0);
        assert!(
            share > 0.8,
            "{format}: the 1 kHz tone holds {share:.2} of the power"
        );
    }
}
