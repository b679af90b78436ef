//! What AAC → Opus costs: transcodes a 1 kHz tone (ffmpeg-encoded AAC-LC) several times and
//! prints, per configuration, the CPU time one second of audio takes (median and p95 over the
//! runs) and the share of one core a live path costs.
//!
//! Usage: `cargo run --release -p livefeed-transcode --example transcode_bench -- [SECONDS] [RUNS]`
//! (bench/transcode.sh runs it). Needs ffmpeg and libopus0.

use std::time::Duration;

use livefeed_transcode::AacToOpus;

#[path = "../src/test_tone.rs"]
mod test_tone;
use test_tone::aac_tone;

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9);
    println!("| AAC in | channels | audio per run | runs | CPU per audio second, p50 | p95 | share of one core per path (p50) |");
    println!("|---|---|---|---|---|---|---|");
    for (rate, channels) in [(48_000, 2u8), (48_000, 1), (44_100, 2), (44_100, 1)] {
        let (config, frames) = aac_tone(rate, channels, seconds);
        let mut per_second: Vec<Duration> = (0..runs)
            .map(|_| {
                let mut t = AacToOpus::new(&config).expect("libopus and the decoder load");
                let started = cpu_time();
                let mut packets = 0;
                for (i, frame) in frames.iter().enumerate() {
                    packets += t.push(frame, i as u64 * 1024).expect("decodes").len();
                }
                assert!(packets > 0);
                (cpu_time() - started) / seconds
            })
            .collect();
        per_second.sort();
        let p50 = per_second[per_second.len() / 2];
        let p95 = per_second[(per_second.len() * 95 / 100).min(per_second.len() - 1)];
        println!(
            "| {:.1} kHz | {channels} | {seconds} s | {runs} | {:.2} ms | {:.2} ms | {:.2} % |",
            f64::from(rate) / 1000.0,
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0,
            p50.as_secs_f64() * 100.0,
        );
    }
}

/// CPU time of this thread.
fn cpu_time() -> Duration {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe {
        clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, &mut ts)
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}
