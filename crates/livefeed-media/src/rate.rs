//! One rate meter for every "per second" livefeed shows: a publisher's frames and bits, a
//! capture loop's or a receiver's pictures, LL-HLS requests.
//!
//! Contract: [`RateMeter::record`] an event (with an amount, e.g. its bytes) at an instant;
//! [`RateMeter::per_second`] gives the events and the amount within the last window (1 s by
//! default) divided by the window, at the instant asked. Events recorded within one
//! [`RESOLUTION`] of the previous one share its entry, so the memory stays bounded (at most
//! window / resolution entries) however many events arrive; instants must not go backwards
//! (an earlier one is counted as the latest).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Events closer together than this are kept as one entry.
pub const RESOLUTION: Duration = Duration::from_millis(10);

/// The default window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Events and their amounts over a sliding window.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    /// (first instant of the entry, events, amount), oldest first.
    recent: VecDeque<(Instant, u64, u64)>,
}

/// What a [`RateMeter`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Events per second.
    pub events: f64,
    /// Amount (e.g. bytes) per second.
    pub amount: f64,
}

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter::new(WINDOW)
    }
}

impl RateMeter {
    /// A meter over `window` (at least [`RESOLUTION`]).
    pub fn new(window: Duration) -> Self {
        RateMeter {
            window: window.max(RESOLUTION),
            recent: VecDeque::new(),
        }
    }

    /// One event of `amount` at `at`.
    pub fn record(&mut self, at: Instant, amount: u64) {
        match self.recent.back_mut() {
            Some((start, events, total)) if at.saturating_duration_since(*start) < RESOLUTION => {
                *events += 1;
                *total += amount;
            }
            _ => self.recent.push_back((at, 1, amount)),
        }
        self.forget_before(at);
    }

    /// Events and amount per second over the window ending at `now`.
    pub fn per_second(&mut self, now: Instant) -> Rates {
        self.forget_before(now);
        let (events, amount) = self
            .recent
            .iter()
            .fold((0, 0), |(e, a), (_, events, amount)| {
                (e + events, a + amount)
            });
        let secs = self.window.as_secs_f64();
        Rates {
            events: events as f64 / secs,
            amount: amount as f64 / secs,
        }
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        self.recent.clear();
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some((t, _, _)) = self.recent.front() {
            if now.saturating_duration_since(*t) <= self.window {
                break;
            }
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_frames_a_second_are_thirty_per_second() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        let mut at = start;
        for _ in 0..90 {
            meter.record(at, 1000);
            at += Duration::from_micros(33_333);
        }
        let rates = meter.per_second(at);
        assert!((29.0..=31.0).contains(&rates.events), "{rates:?}");
        assert!((29_000.0..=31_000.0).contains(&rates.amount), "{rates:?}");
        // Nothing more: the window empties.
        assert_eq!(meter.per_second(at + Duration::from_secs(2)).events, 0.0);
    }

    #[test]
    fn a_flood_keeps_few_entries_and_counts_every_event() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        for i in 0..100_000u64 {
            meter.record(start + Duration::from_micros(i * 10), 1);
        }
        assert!(meter.recent.len() <= 101, "{} entries", meter.recent.len());
        let rates = meter.per_second(start + Duration::from_secs(1));
        assert_eq!(rates.events, 100_000.0);
    }

    #[test]
    fn an_instant_going_backwards_counts_as_the_latest() {
        let mut meter = RateMeter::new(Duration::from_millis(500));
        let start = Instant::now() + Duration::from_secs(1);
        meter.record(start, 1);
        meter.record(start - Duration::from_millis(100), 1);
        assert_eq!(meter.per_second(start).events, 4.0);
        meter.clear();
        assert_eq!(meter.per_second(start).events, 0.0);
    }
}
