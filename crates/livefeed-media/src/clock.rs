//! Wall-clock helpers. Latency is always "now (wall clock) minus capture (wall clock)", so every
//! stage that measures uses the same function.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The monotonic instant at which the wall clock read `unix_ns`, for APIs that take an
/// [`Instant`]; a time in the future (a publisher's clock ahead of ours) is now.
pub fn instant_of_unix_ns(unix_ns: u64) -> Instant {
    let now = Instant::now();
    let ago = Duration::from_nanos(unix_now_ns().saturating_sub(unix_ns));
    now.checked_sub(ago).unwrap_or(now)
}

/// Milliseconds (fractional) elapsed from `earlier_ns` to `later_ns`; negative if the clocks
/// disagree.
pub fn elapsed_ms(earlier_ns: u64, later_ns: u64) -> f64 {
    (later_ns as i128 - earlier_ns as i128) as f64 / 1e6
}

/// `ns` moved by a signed correction (a clock offset), saturating at the ends of `u64`.
pub fn corrected(ns: u64, correction_ns: i64) -> u64 {
    ns.saturating_add_signed(correction_ns)
}

/// One request/response exchange with a time server, NTP-style: when the request left (local
/// clock), the server's clock in the answer, when the answer arrived (local clock); ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeExchange {
    /// Local clock when the request was sent.
    pub sent_ns: u64,
    /// The server's clock in its answer.
    pub server_ns: u64,
    /// Local clock when the answer arrived.
    pub received_ns: u64,
}

/// How far the server's clock is ahead of the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOffset {
    /// Server clock minus local clock, ns: add it to a local time to get server time.
    pub offset_ns: i64,
    /// Half the round trip of the exchange used: the true offset is within ± this.
    pub uncertainty_ns: u64,
}

/// Estimates the offset from exchanges: the one with the shortest round trip wins (its
/// answer's time was taken closest to the middle of it), assuming symmetric paths. `None`
/// without a usable exchange (one whose answer came back before it was sent is skipped).
pub fn estimate_offset(exchanges: &[TimeExchange]) -> Option<ClockOffset> {
    let best = exchanges
        .iter()
        .filter(|e| e.received_ns >= e.sent_ns)
        .min_by_key(|e| e.received_ns - e.sent_ns)?;
    let rtt = best.received_ns - best.sent_ns;
    let midpoint = best.sent_ns as i128 + rtt as i128 / 2;
    let offset = (best.server_ns as i128 - midpoint).clamp(i64::MIN as i128, i64::MAX as i128);
    Some(ClockOffset {
        offset_ns: offset as i64,
        uncertainty_ns: rtt / 2,
    })
}

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01 (Unix epoch).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Converts Unix nanoseconds to a 64-bit NTP timestamp (32.32 fixed point), as RTCP carries it.
pub fn unix_ns_to_ntp(unix_ns: u64) -> u64 {
    let secs = unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET_SECS;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Converts a 64-bit NTP timestamp back to Unix nanoseconds (saturating at the Unix epoch).
pub fn ntp_to_unix_ns(ntp: u64) -> u64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac
}

/// `ticks` of a `from` Hz clock in a `to` Hz clock (rounded down; saturating, never
/// overflowing; 0 for a clock of 0 Hz).
pub fn rescale(ticks: u64, to: u32, from: u32) -> u64 {
    if from == 0 {
        return 0;
    }
    let scaled = u128::from(ticks) * u128::from(to) / u128::from(from);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The duration of a video track's frames (90 kHz), estimated from the distance between
/// consecutive presentation times: a step of more than 0 and at most one second replaces the
/// estimate; until there is one, a frame lasts [`crate::DEFAULT_FRAME_TICKS`]. The hub, the
/// LL-HLS muxer and the recorder all time frames with it.
#[derive(Debug, Clone, Copy)]
pub struct FrameDuration {
    last_pts: Option<u64>,
    ticks: u32,
}

impl Default for FrameDuration {
    fn default() -> Self {
        FrameDuration {
            last_pts: None,
            ticks: crate::DEFAULT_FRAME_TICKS,
        }
    }
}

impl FrameDuration {
    /// Longest step taken as a frame duration: one second of the 90 kHz clock.
    pub const MAX_STEP: u64 = 90_000;

    /// Takes the next frame's `pts`; returns the estimate after it.
    pub fn observe(&mut self, pts: u64) -> u32 {
        if let Some(last) = self.last_pts {
            if pts > last && pts - last <= Self::MAX_STEP {
                self.ticks = (pts - last) as u32;
            }
        }
        self.last_pts = Some(pts);
        self.ticks
    }

    /// The current estimate, in ticks.
    pub fn ticks(&self) -> u32 {
        self.ticks
    }

    /// The last `pts` observed.
    pub fn last_pts(&self) -> Option<u64> {
        self.last_pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_of_unix_ns_is_as_long_ago_as_the_wall_clock_says() {
        let before = Instant::now();
        let then = instant_of_unix_ns(unix_now_ns() - 250_000_000);
        let after = Instant::now();
        // 250 ms before some moment between `before` and `after` (the clocks' reading of it
        // may differ by a few µs).
        let slack = Duration::from_millis(1);
        assert!(
            then + Duration::from_millis(250) + slack >= before,
            "{then:?} {before:?}"
        );
        assert!(
            then + Duration::from_millis(250) <= after + slack,
            "{then:?} {after:?}"
        );
        let future = instant_of_unix_ns(unix_now_ns() + 5_000_000_000);
        assert!(future <= Instant::now(), "a future time is now, not later");
    }

    #[test]
    fn frame_durations_follow_plausible_steps_only() {
        let mut frames = FrameDuration::default();
        assert_eq!(frames.ticks(), crate::DEFAULT_FRAME_TICKS);
        assert_eq!(frames.observe(1000), 3000, "one pts says nothing");
        assert_eq!(frames.observe(4600), 3600);
        assert_eq!(
            frames.observe(4600),
            3600,
            "a repeated pts keeps the estimate"
        );
        assert_eq!(frames.observe(1000), 3600, "a step back keeps it");
        assert_eq!(
            frames.observe(500_000),
            3600,
            "a jump over a second keeps it"
        );
        assert_eq!(frames.observe(501_500), 1500);
        assert_eq!(frames.last_pts(), Some(501_500));
    }

    #[test]
    fn ntp_round_trip_keeps_nanosecond_precision_within_one_ns() {
        let t = 1_763_700_000_123_456_789u64;
        let back = ntp_to_unix_ns(unix_ns_to_ntp(t));
        assert!(back.abs_diff(t) <= 1, "{t} -> {back}");
    }

    #[test]
    fn the_shortest_round_trip_gives_the_offset() {
        // Local clock 5 s behind the server; the second exchange has the shortest round trip.
        let ex = |sent: u64, rtt: u64, server_delay: u64| TimeExchange {
            sent_ns: sent,
            server_ns: sent + 5_000_000_000 + server_delay,
            received_ns: sent + rtt,
        };
        let got = estimate_offset(&[
            ex(1_000_000_000, 40_000_000, 30_000_000),
            ex(2_000_000_000, 2_000_000, 1_000_000),
            ex(3_000_000_000, 10_000_000, 1_000_000),
        ])
        .expect("an estimate");
        assert_eq!(got.offset_ns, 5_000_000_000);
        assert_eq!(got.uncertainty_ns, 1_000_000);
        let backwards = TimeExchange {
            sent_ns: 10,
            server_ns: 0,
            received_ns: 5,
        };
        assert_eq!(estimate_offset(&[backwards]), None);
        assert_eq!(corrected(100, -150), 0);
        assert_eq!(corrected(100, 50), 150);
    }

    #[test]
    fn elapsed_is_signed() {
        assert_eq!(elapsed_ms(2_000_000, 1_000_000), -1.0);
        assert_eq!(elapsed_ms(1_000_000, 3_500_000), 2.5);
    }

    #[test]
    fn rescaling_never_overflows() {
        assert_eq!(rescale(44_100, 48_000, 44_100), 48_000);
        assert_eq!(rescale(u64::MAX, 48_000, 8_000), u64::MAX);
        assert_eq!(rescale(u64::MAX / 2, 8_000, 48_000), u64::MAX / 12);
        assert_eq!(rescale(5, 48_000, 0), 0);
    }
}
