//! ICE servers (STUN, TURN) for WebRTC viewers (`--webrtc-ice-server`): livefeed's pages give
//! them to the browser's `RTCPeerConnection`, and the WHEP endpoint announces them as `Link`
//! headers (RFC 9725 section 4.6) on `OPTIONS PATH/whep` and on the `201` answer, so a viewer
//! behind a firewall that blocks UDP to the server can reach it through a TURN relay.
//!
//! Contract: [`IceServer::from_str`] takes `stun:HOST[:PORT]` or
//! `turn[s]:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]` (MediaMTX's form for credentials)
//! and refuses anything else with a reason, including credentials a quoted header parameter
//! cannot carry (`"`, `\`, control characters). The server itself never contacts them.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// One STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IceServer {
    /// The URL without credentials: `stun:…`, `turn:…` or `turns:…`.
    pub url: String,
    /// TURN long-term credentials.
    pub credentials: Option<(String, String)>,
}

impl FromStr for IceServer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("ICE server {text:?}: {why}");
        let (scheme, rest) = text
            .split_once(':')
            .filter(|(s, _)| matches!(*s, "stun" | "stuns" | "turn" | "turns"))
            .ok_or_else(|| bad("expected stun:HOST[:PORT] or turn:[USER:PASSWORD@]HOST[:PORT]"))?;
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((userinfo, address)) => {
                let (user, password) = userinfo
                    .split_once(':')
                    .ok_or_else(|| bad("credentials are USER:PASSWORD@"))?;
                (Some((user.to_string(), password.to_string())), address)
            }
            None => (None, rest),
        };
        if credentials.is_some() && scheme.starts_with("stun") {
            return Err(bad("STUN takes no credentials"));
        }
        if let Some((user, password)) = &credentials {
            if user.is_empty() || [user, password].iter().any(|s| !quotable(s)) {
                return Err(bad("credentials must be non-empty text without quotes, backslashes or control characters"));
            }
        }
        let (host_port, query) = address.split_once('?').unwrap_or((address, ""));
        if host_port.is_empty()
            || !host_port.bytes().all(|b| b.is_ascii_graphic())
            || host_port.contains(['<', '>', '/'])
        {
            return Err(bad("no host"));
        }
        if !matches!(query, "" | "transport=udp" | "transport=tcp") {
            return Err(bad("the only parameter is transport=udp or transport=tcp"));
        }
        Ok(IceServer {
            url: format!("{scheme}:{address}"),
            credentials,
        })
    }
}

impl TryFrom<String> for IceServer {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for IceServer {
    /// The URL, credentials left out (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl IceServer {
    /// The value of its `Link` header (RFC 9725 section 4.6).
    pub fn link(&self) -> String {
        match &self.credentials {
            None => format!("<{}>; rel=\"ice-server\"", self.url),
            Some((user, password)) => format!(
                "<{}>; rel=\"ice-server\"; username=\"{user}\"; credential=\"{password}\"; \
                 credential-type=\"password\"",
                self.url
            ),
        }
    }
}

/// Whether `text` can be a quoted-string parameter as it is.
fn quotable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_urls_become_link_headers() {
        let stun: IceServer = "stun:stun.example.net".parse().unwrap();
        assert_eq!(stun.link(), "<stun:stun.example.net>; rel=\"ice-server\"");
        let turn: IceServer = "turn:user:pa:ss@turn.example.net:3478?transport=udp"
            .parse()
            .unwrap();
        assert_eq!(turn.url, "turn:turn.example.net:3478?transport=udp");
        assert_eq!(
            turn.link(),
            "<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\"user\"; \
             credential=\"pa:ss\"; credential-type=\"password\""
        );
        assert_eq!(turn.to_string(), "turn:turn.example.net:3478?transport=udp");
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (bad, why) in [
            ("http://example.net", "expected stun:"),
            ("turn:", "no host"),
            ("turn:u@host", "USER:PASSWORD"),
            ("turn:u:p\"x@host", "without quotes"),
            ("turn::p@host", "non-empty"),
            ("stun:u:p@host", "STUN takes no credentials"),
            ("turn:host?transport=sctp", "transport=udp"),
            ("turn:ho st", "no host"),
            ("turn:host/path", "no host"),
        ] {
            let refused = bad.parse::<IceServer>().expect_err(bad);
            assert!(refused.contains(why), "{bad}: {refused}");
        }
    }
}
