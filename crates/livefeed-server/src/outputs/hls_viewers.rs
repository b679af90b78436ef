//! Who watches a path over LL-HLS. HTTP has no sessions, so a viewer is whoever keeps asking
//! for the path's playlist: keyed by the `viewer=ID` query parameter the player page adds (other
//! players are keyed by their IP address), forgotten [`VIEWER_TIMEOUT`] after its last request.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use livefeed_media::rate::RateMeter;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A viewer that asked for no playlist for this long has left.
pub const VIEWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Most viewers tracked (a bound on memory whatever clients send).
pub const MAX_VIEWERS: usize = 10_000;

/// Longest `viewer` id kept (longer ones are cut).
const MAX_ID_LEN: usize = 64;

/// One LL-HLS viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsViewer {
    /// The viewer id (or its IP address).
    pub key: String,
    /// Address of its last request.
    pub remote: SocketAddr,
    /// When it first asked.
    pub since: SystemTime,
}

struct Seen {
    viewer: HlsViewer,
    last: Instant,
}

/// LL-HLS viewers of every path.
#[derive(Default)]
pub struct HlsViewers {
    seen: Mutex<HashMap<(String, String), Seen>>,
    requests: Mutex<HashMap<String, RateMeter>>,
}

/// Paths whose request rate is tracked (a bound on memory: paths are validated names, but many).
const MAX_RATE_PATHS: usize = 10_000;

impl HlsViewers {
    /// Counts one LL-HLS request (playlist, part, segment or init) for `path`.
    pub fn count_request(&self, path: &str) {
        let now = Instant::now();
        let mut rates = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if !rates.contains_key(path) && rates.len() >= MAX_RATE_PATHS {
            rates.retain(|_, r| r.per_second(now).events > 0.0);
            if rates.len() >= MAX_RATE_PATHS {
                return;
            }
        }
        // Allocates the path's name once, not per request.
        match rates.get_mut(path) {
            Some(rate) => rate.record(now, 0),
            None => rates.entry(path.to_string()).or_default().record(now, 0),
        }
    }

    /// LL-HLS requests for `path` over the last second.
    pub fn requests_per_second(&self, path: &str) -> u64 {
        let now = Instant::now();
        let mut rates = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        rates
            .get_mut(path)
            .map_or(0, |rate| rate.per_second(now).events.round() as u64)
    }

    /// A playlist request for `path` from `remote` with the raw query `query`.
    pub fn request(&self, path: &str, remote: SocketAddr, query: Option<&str>) {
        let key = viewer_id(query).unwrap_or_else(|| remote.ip().to_string());
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_VIEWERS {
            seen.retain(|_, s| now.duration_since(s.last) < VIEWER_TIMEOUT);
        }
        let full = seen.len() >= MAX_VIEWERS;
        match seen.entry((path.to_string(), key)) {
            Entry::Occupied(mut known) => {
                let s = known.get_mut();
                s.last = now;
                s.viewer.remote = remote;
            }
            Entry::Vacant(new) if !full => {
                let viewer = HlsViewer {
                    key: new.key().1.clone(),
                    remote,
                    since: SystemTime::now(),
                };
                new.insert(Seen { viewer, last: now });
            }
            Entry::Vacant(_) => {}
        }
    }

    /// The viewers of `path` seen within [`VIEWER_TIMEOUT`].
    pub fn of(&self, path: &str) -> Vec<HlsViewer> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, s| now.duration_since(s.last) < VIEWER_TIMEOUT);
        let mut out: Vec<HlsViewer> = seen
            .iter()
            .filter(|((p, _), _)| p == path)
            .map(|(_, s)| s.viewer.clone())
            .collect();
        out.sort_by_key(|v| v.since);
        out
    }
}

/// The `viewer` query parameter: letters, digits, `-` and `_` only, at most 64 of them.
fn viewer_id(query: Option<&str>) -> Option<String> {
    let value = query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("viewer="))?;
    let id: String = value
        .chars()
        .take(MAX_ID_LEN)
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn viewers_are_keyed_by_id_or_address() {
        let v = HlsViewers::default();
        v.request("live", addr("127.0.0.1:1000"), Some("viewer=a&_HLS_msn=3"));
        v.request("live", addr("127.0.0.1:1001"), Some("viewer=a"));
        v.request("live", addr("127.0.0.1:1002"), Some("viewer=b"));
        v.request("live", addr("10.0.0.1:5"), None);
        v.request("live", addr("10.0.0.1:6"), Some("_HLS_msn=1"));
        v.request("other", addr("10.0.0.1:6"), None);
        let keys: Vec<String> = v.of("live").into_iter().map(|v| v.key).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(keys.contains(&"a".to_string()) && keys.contains(&"10.0.0.1".to_string()));
        assert_eq!(v.of("other").len(), 1);
    }

    #[test]
    fn hostile_ids_are_cleaned_and_bounded() {
        assert_eq!(viewer_id(Some("viewer=<script>")), Some("script".into()));
        assert_eq!(viewer_id(Some("viewer=")), None);
        assert_eq!(
            viewer_id(Some(&format!("viewer={}", "x".repeat(500)))).map(|s| s.len()),
            Some(64)
        );
    }
}
