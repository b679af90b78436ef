//! OpenH264 against libx264 on the same pictures at the same settings (bitrate, GOP, frame
//! rate, constrained baseline, zero latency): encode time per frame, the bitrate each really
//! produced, and the quality it reached (luma PSNR of the OpenH264-decoded picture against the
//! source). One JSON line per encoder. Run by `bench/encoders.sh`:
//!
//! ```text
//! cargo run --release -p livefeed-source --features x264 --example encoder_bench -- \
//!     SOURCE(pattern|FILE.y4m) WIDTH HEIGHT KBPS FRAMES
//! ```

use std::time::Instant;

use livefeed_media::latency::summarize;
use livefeed_media::CaptureStamp;
use livefeed_source::decoder::H264Decoder;
use livefeed_source::encoder::{open_encoder, EncoderKind, EncoderSettings};
use livefeed_source::{I420Frame, TestPattern, Y4mInput};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, width, height, kbps, frames] = args.as_slice() else {
        anyhow::bail!("usage: encoder_bench SOURCE(pattern|FILE.y4m) WIDTH HEIGHT KBPS FRAMES");
    };
    let (width, height): (usize, usize) = (width.parse()?, height.parse()?);
    let (kbps, frames): (u32, usize) = (kbps.parse()?, frames.parse()?);
    let pictures = load(source, width, height, frames)?;
    for kind in [EncoderKind::OpenH264, EncoderKind::X264] {
        let settings = EncoderSettings {
            width,
            height,
            fps: 30.0,
            bitrate_kbps: kbps,
            gop: 30,
        };
        let mut encoder = open_encoder(kind, settings)?;
        let mut decoder = H264Decoder::new()?;
        let (mut times, mut bytes, mut psnr_sum) = (Vec::new(), 0usize, 0.0);
        for (n, picture) in pictures.iter().enumerate() {
            let stamp = CaptureStamp {
                unix_ns: n as u64,
                frame: n as u64,
            };
            let started = Instant::now();
            let au = encoder.encode(picture, n as u64 * 3000, stamp)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes += au.payload_len();
            let psnr = decoder
                .decode(&au, |pic| pic.to_i420().map(|out| luma_psnr(picture, &out)))?
                .transpose()?
                .unwrap_or(0.0);
            psnr_sum += psnr;
        }
        let s = summarize(&times).expect("frames were encoded");
        let seconds = pictures.len() as f64 / 30.0;
        println!(
            "{}",
            serde_json::json!({
                "encoder": format!("{kind:?}"),
                "source": source, "width": width, "height": height,
                "target_kbps": kbps, "frames": pictures.len(),
                "encode_ms": {"p50": s.p50, "p95": s.p95, "max": s.max},
                "kbps": bytes as f64 * 8.0 / seconds / 1000.0,
                "psnr_y_db": psnr_sum / pictures.len() as f64,
            })
        );
    }
    Ok(())
}

/// The pictures to encode: the moving test pattern, or the frames of a y4m file.
fn load(
    source: &str,
    width: usize,
    height: usize,
    frames: usize,
) -> anyhow::Result<Vec<I420Frame>> {
    let mut out = Vec::with_capacity(frames);
    if source == "pattern" {
        let mut pattern = TestPattern::new(width, height);
        for n in 0..frames {
            let mut f = I420Frame::new_black(width, height)?;
            pattern.render(n as u64, &mut f);
            out.push(f);
        }
        return Ok(out);
    }
    let mut input = Y4mInput::new(std::io::BufReader::new(std::fs::File::open(source)?))?;
    while out.len() < frames {
        let mut f = I420Frame::new_black(input.width(), input.height())?;
        if !input.next_frame(&mut f)? {
            break;
        }
        out.push(f);
    }
    anyhow::ensure!(!out.is_empty(), "{source} holds no frame");
    Ok(out)
}

/// Luma PSNR of `b` against `a`, dB (capped at 100 for identical pictures).
fn luma_psnr(a: &I420Frame, b: &I420Frame) -> f64 {
    let mse: f64 = a
        .y()
        .iter()
        .zip(b.y())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.y().len() as f64;
    if mse == 0.0 {
        100.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}
