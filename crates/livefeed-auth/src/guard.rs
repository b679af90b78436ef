//! State that stateless checks cannot hold: which connection a Digest nonce belongs to and the
//! highest `nc` it was used with (a captured `Authorization` header cannot be replayed from
//! another connection, nor an old `nc` again), and failed attempts per address (after
//! [`MAX_FAILURES`] in [`FAILURE_WINDOW_SECS`], an address's attempts are refused unchecked
//! until the window has passed: guessing is limited, not only slowed).
//!
//! Memory is bounded: nonce entries expire with their nonce, failure entries with their window,
//! and each map holds at most [`MAX_ENTRIES`] (the oldest go first).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use crate::NONCE_LIFETIME_SECS;

/// Failed attempts from one address, within [`FAILURE_WINDOW_SECS`], after which it is blocked.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted over (and how long a blocked address waits), seconds.
pub const FAILURE_WINDOW_SECS: u64 = 60;
/// Entries per map, at most.
pub const MAX_ENTRIES: usize = 10_000;

/// Why a Digest nonce may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonceRefusal {
    /// First used by another connection.
    OtherConnection,
    /// `nc` not above the highest one seen.
    Replayed {
        /// The `nc` given.
        nc: u32,
        /// The highest seen before.
        highest: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct NonceUse {
    peer: SocketAddr,
    nc: u32,
    first_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since_secs: u64,
}

/// Nonce uses and failures.
#[derive(Debug, Default)]
pub struct Guard {
    nonces: Mutex<HashMap<String, NonceUse>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Guard {
    /// Records a verified Digest use of `nonce` by `peer` with `nc` (`None` without qop), or
    /// refuses it.
    pub fn use_nonce(
        &self,
        nonce: &str,
        peer: SocketAddr,
        nc: Option<u32>,
        now_secs: u64,
    ) -> Result<(), NonceRefusal> {
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(used) = nonces.get_mut(nonce) {
            if used.peer != peer {
                return Err(NonceRefusal::OtherConnection);
            }
            if let Some(nc) = nc {
                if nc <= used.nc {
                    return Err(NonceRefusal::Replayed {
                        nc,
                        highest: used.nc,
                    });
                }
                used.nc = nc;
            }
            return Ok(());
        }
        if nonces.len() >= MAX_ENTRIES {
            nonces.retain(|_, u| now_secs.saturating_sub(u.first_secs) <= NONCE_LIFETIME_SECS);
            if nonces.len() >= MAX_ENTRIES {
                let oldest = nonces
                    .iter()
                    .min_by_key(|(_, u)| u.first_secs)
                    .map(|(n, _)| n.clone());
                if let Some(oldest) = oldest {
                    nonces.remove(&oldest);
                }
            }
        }
        nonces.insert(
            nonce.to_string(),
            NonceUse {
                peer,
                nc: nc.unwrap_or(0),
                first_secs: now_secs,
            },
        );
        Ok(())
    }

    /// Whether `ip` is blocked for failing too often; the seconds left if so.
    pub fn blocked(&self, ip: IpAddr, now_secs: u64) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = failures.get(&ip)?;
        let left = (f.since_secs + FAILURE_WINDOW_SECS).saturating_sub(now_secs);
        (f.count >= MAX_FAILURES && left > 0).then_some(left)
    }

    /// One more failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr, now_secs: u64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_ENTRIES && !failures.contains_key(&ip) {
            failures.retain(|_, f| now_secs.saturating_sub(f.since_secs) < FAILURE_WINDOW_SECS);
            if failures.len() >= MAX_ENTRIES {
                return; // the table is full of fresh entries: this one goes uncounted
            }
        }
        let f = failures.entry(ip).or_insert(Failures {
            count: 0,
            since_secs: now_secs,
        });
        if now_secs.saturating_sub(f.since_secs) >= FAILURE_WINDOW_SECS {
            *f = Failures {
                count: 0,
                since_secs: now_secs,
            };
        }
        f.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_nonce_belongs_to_the_connection_that_used_it_first() {
        let g = Guard::default();
        assert_eq!(g.use_nonce("n1", peer(1000), None, 0), Ok(()));
        assert_eq!(
            g.use_nonce("n1", peer(1000), None, 1),
            Ok(()),
            "reused on its connection"
        );
        assert_eq!(
            g.use_nonce("n1", peer(2000), None, 2),
            Err(NonceRefusal::OtherConnection)
        );
    }

    #[test]
    fn nc_must_grow() {
        let g = Guard::default();
        assert_eq!(g.use_nonce("n", peer(1), Some(1), 0), Ok(()));
        assert_eq!(g.use_nonce("n", peer(1), Some(2), 0), Ok(()));
        assert_eq!(
            g.use_nonce("n", peer(1), Some(2), 0),
            Err(NonceRefusal::Replayed { nc: 2, highest: 2 })
        );
    }

    #[test]
    fn an_address_failing_too_often_is_blocked_for_the_window() {
        let g = Guard::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..MAX_FAILURES - 1 {
            g.failed(ip, 100);
        }
        assert_eq!(g.blocked(ip, 100), None);
        g.failed(ip, 101);
        assert_eq!(g.blocked(ip, 101), Some(59));
        assert_eq!(
            g.blocked(IpAddr::from([10, 0, 0, 2]), 101),
            None,
            "others are not"
        );
        assert_eq!(g.blocked(ip, 160), None, "the window passed");
        g.failed(ip, 160);
        assert_eq!(g.blocked(ip, 160), None, "counting starts again");
    }
}
