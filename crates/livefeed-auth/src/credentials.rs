//! The `Authorization` header: `Basic base64(user:pass)`, `Bearer token`, or `Digest k=v, ...`.
//! Parsing never panics on any input (fuzzed: `auth_header`).

use std::fmt;

use base64::Engine;

/// Largest header value accepted.
const MAX_LEN: usize = 4096;

/// What a client sent.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User and password.
    Basic {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// A Digest response.
    Digest(DigestFields),
    /// A token.
    Bearer(String),
}

impl Credentials {
    /// The user name claimed, for logs (`-` for a token).
    pub fn user(&self) -> &str {
        match self {
            Credentials::Basic { user, .. } => user,
            Credentials::Digest(d) => &d.username,
            Credentials::Bearer(_) => "-",
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, ***)"),
            Credentials::Digest(d) => write!(f, "Digest({:?})", d.username),
            Credentials::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// The fields of a Digest `Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestFields {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`.
    pub uri: String,
    /// `response` (hex MD5).
    pub response: String,
    /// `qop` (`auth`) if given.
    pub qop: Option<String>,
    /// `nc` with `qop`.
    pub nc: Option<String>,
    /// `cnonce` with `qop`.
    pub cnonce: Option<String>,
    /// `algorithm` if given (only MD5 is accepted).
    pub algorithm: Option<String>,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Too long.
    #[error("Authorization header longer than {MAX_LEN} bytes")]
    TooLong,
    /// Not Basic, Digest or Bearer.
    #[error("unsupported scheme {0:?} (Basic, Digest or Bearer)")]
    Scheme(String),
    /// Malformed.
    #[error("malformed {0} credentials: {1}")]
    Malformed(&'static str, &'static str),
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Credentials, CredentialsError> {
    if value.len() > MAX_LEN {
        return Err(CredentialsError::TooLong);
    }
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => parse_basic(rest),
        "bearer" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(Credentials::Bearer(rest.to_string()))
        }
        "bearer" => Err(CredentialsError::Malformed("Bearer", "no token")),
        "digest" => parse_digest(rest).map(Credentials::Digest),
        _ => Err(CredentialsError::Scheme(scheme.chars().take(32).collect())),
    }
}

fn parse_basic(b64: &str) -> Result<Credentials, CredentialsError> {
    let bad = |why| CredentialsError::Malformed("Basic", why);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let (user, pass) = text.split_once(':').ok_or_else(|| bad("no ':'"))?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        pass: pass.to_string(),
    })
}

fn parse_digest(params: &str) -> Result<DigestFields, CredentialsError> {
    let bad = |why| CredentialsError::Malformed("Digest", why);
    let mut d = DigestFields::default();
    let mut rest = params;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| bad("a parameter without '='"))?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| bad("an unterminated quoted value"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        let value = value.to_string();
        match key.as_str() {
            "username" => d.username = value,
            "realm" => d.realm = value,
            "nonce" => d.nonce = value,
            "uri" => d.uri = value,
            "response" => d.response = value,
            "qop" => d.qop = Some(value),
            "nc" => d.nc = Some(value),
            "cnonce" => d.cnonce = Some(value),
            "algorithm" => d.algorithm = Some(value),
            _ => {} // opaque and extensions: not used
        }
        rest = remaining.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(bad("parameters not separated by ','"));
        }
    }
    if d.username.is_empty() || d.nonce.is_empty() || d.response.is_empty() || d.uri.is_empty() {
        return Err(bad("username, nonce, uri and response are required"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_bearer_and_digest_parse() {
        assert_eq!(
            parse_authorization("Basic dXNlcjpwYTpzcw=="),
            Ok(Credentials::Basic {
                user: "user".into(),
                pass: "pa:ss".into()
            })
        );
        assert_eq!(
            parse_authorization("Bearer abc.def"),
            Ok(Credentials::Bearer("abc.def".into()))
        );
        let d = parse_authorization(
            r#"Digest username="cam", realm="livefeed", nonce="n1", uri="rtsp://h/cam", response="0123", algorithm=MD5"#,
        );
        match d {
            Ok(Credentials::Digest(f)) => {
                assert_eq!(
                    (f.username.as_str(), f.uri.as_str()),
                    ("cam", "rtsp://h/cam")
                );
                assert_eq!(f.algorithm.as_deref(), Some("MD5"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "Basic",
            "Basic !!!",
            "Basic dXNlcg==",
            "Bearer",
            "Digest",
            "Digest username=\"x",
            "Digest username=x nonce=y",
            "Negotiate abc",
            "Digest ===,,,",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_authorization(&"a".repeat(5000)),
            Err(CredentialsError::TooLong)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::Basic {
            user: "u".into(),
            pass: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }
}
