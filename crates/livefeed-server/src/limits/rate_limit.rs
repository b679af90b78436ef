//! Token buckets per client address: each address may spend `rate` units a second, with bursts
//! up to `burst`. Used for latency samples submitted to the store (a unit is a sample).
//!
//! Contract: [`RateLimiter::take`] either spends `n` units of the address's bucket and answers
//! `Ok`, or spends nothing and answers how long until `n` units are there. Memory is bounded:
//! beyond [`MAX_ADDRESSES`] tracked addresses, those whose bucket has refilled are forgotten
//! (they would start full anyway), and if none has, the request is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most.
pub const MAX_ADDRESSES: usize = 4096;

/// Token buckets per address.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, rate: f64, burst: f64) -> Bucket {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        Bucket {
            tokens: (self.tokens + gained).min(burst),
            at: now,
        }
    }
}

impl RateLimiter {
    /// `rate` units a second per address, bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(rate).max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Units a second per address.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Spends `n` units of `ip`'s bucket at `now`, or says how long until they are there.
    pub fn take(&self, ip: IpAddr, n: usize, now: Instant) -> Result<(), Duration> {
        let n = n as f64;
        if n > self.burst {
            return Err(Duration::MAX);
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst).tokens < burst);
            if buckets.len() >= MAX_ADDRESSES {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.get(&ip).map_or(
            Bucket {
                tokens: self.burst,
                at: now,
            },
            |b| b.refilled(now, self.rate, self.burst),
        );
        if bucket.tokens >= n {
            buckets.insert(
                ip,
                Bucket {
                    tokens: bucket.tokens - n,
                    at: now,
                },
            );
            Ok(())
        } else {
            buckets.insert(ip, bucket);
            Err(Duration::from_secs_f64((n - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_address_gets_its_rate_and_bursts_no_more() {
        let limiter = RateLimiter::new(100, 200);
        let t0 = Instant::now();
        assert!(limiter.take(ip(1), 200, t0).is_ok(), "a full burst");
        let wait = limiter.take(ip(1), 50, t0).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            limiter.take(ip(2), 200, t0).is_ok(),
            "others have their own"
        );
        // Half a second later 50 units are back.
        assert!(limiter
            .take(ip(1), 50, t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .take(ip(1), 1, t0 + Duration::from_millis(500))
            .is_err());
        // Never more than the burst, however long it waited.
        assert!(limiter
            .take(ip(1), 201, t0 + Duration::from_secs(60))
            .is_err());
        assert!(limiter
            .take(ip(1), 200, t0 + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = RateLimiter::new(10, 10);
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES as u32 {
            let addr = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            assert!(limiter.take(addr, 10, t0).is_ok());
        }
        // All buckets are empty: a new address (outside 10.0.0.0/20) is refused, not tracked.
        let newcomer = IpAddr::from([192, 168, 0, 1]);
        assert!(limiter.take(newcomer, 1, t0).is_err());
        // Once they refilled they are forgotten and new ones fit.
        let later = t0 + Duration::from_secs(2);
        assert!(limiter.take(newcomer, 1, later).is_ok());
        assert!(limiter.buckets.lock().expect("lock").len() <= 2);
    }
}
