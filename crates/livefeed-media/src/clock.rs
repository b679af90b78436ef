//! Wall-clock helpers. Latency is always "now (wall clock) minus capture (wall clock)", so every
//! stage that measures uses the same function.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Milliseconds (fractional) elapsed from `earlier_ns` to `later_ns`; negative if the clocks
/// disagree.
pub fn elapsed_ms(earlier_ns: u64, later_ns: u64) -> f64 {
    (later_ns as i128 - earlier_ns as i128) as f64 / 1e6
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_round_trip_keeps_nanosecond_precision_within_one_ns() {
        let t = 1_763_700_000_123_456_789u64;
        let back = ntp_to_unix_ns(unix_ns_to_ntp(t));
        assert!(back.abs_diff(t) <= 1, "{t} -> {back}");
    }

    #[test]
    fn elapsed_is_signed() {
        assert_eq!(elapsed_ms(2_000_000, 1_000_000), -1.0);
        assert_eq!(elapsed_ms(1_000_000, 3_500_000), 2.5);
    }
}
