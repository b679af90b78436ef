//! Extra ICE host candidates (`--webrtc-additional-host`): an IP address, or a host name that is
//! resolved each time a viewer's offer arrives, so a dynamic-DNS name follows its address.
//!
//! Contract: [`IceHost::from_str`] takes an IP address (v4 or v6) or a DNS host name (letters,
//! digits, `-` and `.`, labels of 1–63 characters, 253 in all) and refuses anything else with
//! a reason. [`resolve`] turns a list into addresses, in order: a name that does not resolve
//! within [`RESOLVE_TIMEOUT`] is left out with a warning naming it, never an error for the
//! viewer.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use tracing::warn;

/// How long one name may take to resolve before the offer is answered without it.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// One `--webrtc-additional-host`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum IceHost {
    /// An address, announced as it is.
    Ip(IpAddr),
    /// A host name, resolved per offer.
    Name(String),
}

impl FromStr for IceHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(IceHost::Ip(ip));
        }
        if is_host_name(text) {
            return Ok(IceHost::Name(text.to_ascii_lowercase()));
        }
        Err(format!("{text:?} is neither an IP address nor a host name"))
    }
}

impl TryFrom<String> for IceHost {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for IceHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IceHost::Ip(ip) => write!(f, "{ip}"),
            IceHost::Name(name) => f.write_str(name),
        }
    }
}

/// RFC 1123 host name syntax (a trailing dot allowed), not all digits and dots (which would be
/// a malformed IPv4 address).
fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(label_ok)
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The addresses of `hosts`, in order; names that do not resolve are left out.
pub async fn resolve(hosts: &[IceHost]) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for host in hosts {
        match host {
            IceHost::Ip(ip) => ips.push(*ip),
            IceHost::Name(name) => ips.extend(resolve_name(name).await),
        }
    }
    ips
}

async fn resolve_name(name: &str) -> Vec<IpAddr> {
    let lookup = tokio::net::lookup_host((name, 0));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(e)) => {
            warn!(host = name, error = %e, "cannot resolve --webrtc-additional-host; not announced");
            Vec::new()
        }
        Err(_) => {
            warn!(host = name, timeout = ?RESOLVE_TIMEOUT, "--webrtc-additional-host did not resolve in time; not announced");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_are_taken_anything_else_is_refused() {
        assert_eq!(
            "203.0.113.5".parse(),
            Ok(IceHost::Ip("203.0.113.5".parse().unwrap()))
        );
        assert_eq!(
            "2001:db8::1".parse(),
            Ok(IceHost::Ip("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(
            "Camera-1.example.org.".parse(),
            Ok(IceHost::Name("camera-1.example.org.".into()))
        );
        for bad in [
            "",
            "bad host",
            "-x.example",
            "x..y",
            "1.2.3",
            "a_b.example",
            "ex:ample",
        ] {
            let refused = bad.parse::<IceHost>().expect_err(bad);
            assert!(
                refused.contains("neither an IP address nor a host name"),
                "{refused}"
            );
        }
        assert!(
            IceHost::from_str(&"a".repeat(64)).is_err(),
            "a label is at most 63"
        );
    }

    #[tokio::test]
    async fn names_resolve_and_failures_are_left_out() {
        let hosts = [
            IceHost::Ip("203.0.113.5".parse().unwrap()),
            IceHost::Name("localhost".into()),
            IceHost::Name("no-such-host.invalid".into()),
            IceHost::Ip("203.0.113.5".parse().unwrap()),
        ];
        let ips = resolve(&hosts).await;
        let documentation: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(ips.first(), Some(&documentation));
        assert_eq!(ips.last(), Some(&documentation));
        let resolved = &ips[1..ips.len() - 1];
        assert!(!resolved.is_empty(), "localhost resolves: {ips:?}");
        assert!(resolved.iter().all(|ip| ip.is_loopback()), "{ips:?}");
    }
}
