//! Client-side RTSP authentication, without I/O: the credentials of an
//! `rtsp://user:pass@host/path` URL answered to the server's `WWW-Authenticate` challenge —
//! Digest (RFC 2617: MD5, with `qop=auth` when offered) in preference to Basic, as ffmpeg and
//! GStreamer do.
//!
//! Contract: take the credentials out of the URL with [`take_credentials`] (requests must not
//! carry userinfo); when a response is 401, build an [`Authorizer`] from its challenges with
//! [`Authorizer::from_challenges`] and send the request again with
//! [`Authorizer::authorization`] as its `Authorization` header, and every later request too.
//! Parsing never panics on what a server sends; a challenge it cannot use is `None`.

use base64::Engine;
use md5::{Digest as _, Md5};
use rtsp_types::Url;

/// A user and password from a URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (percent-decoded).
    pub user: String,
    /// Password (percent-decoded).
    pub pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &"<redacted>")
            .finish()
    }
}

/// Removes the userinfo from `url`, returning it as credentials when it names a user.
pub fn take_credentials(url: &mut Url) -> Option<Credentials> {
    let user = percent_decode(url.username());
    let pass = percent_decode(url.password().unwrap_or(""));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    (!user.is_empty()).then_some(Credentials { user, pass })
}

/// `url` as it may be shown (logs, errors): any `user:pass@` removed. The user info ends at
/// the last `@` before the first `/`, `?` or `#` that follows the first `@`, so a password with
/// an unescaped `/`, `?`, `#` or `@` in it is never shown (a path with an `@` in it and no user
/// info is shown shorter than it is: the safe way to be wrong).
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some(first) = rest.find('@') else {
        return url.to_string();
    };
    let end = rest[first..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| first + i);
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// `%XX` escapes decoded (invalid ones kept as they are), as UTF-8 (lossy).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A challenge livefeed can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Digest realm=…, nonce=…` (MD5).
    Digest {
        /// `realm`.
        realm: String,
        /// `nonce`.
        nonce: String,
        /// `opaque`, echoed back.
        opaque: Option<String>,
        /// Whether `qop` offers `auth`.
        qop_auth: bool,
    },
}

/// The challenge to answer among `values` (each a `WWW-Authenticate` header): Digest with MD5
/// if offered, else Basic; `None` if neither is usable.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for value in values {
        let value = value.trim();
        let (scheme, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        } else if scheme.eq_ignore_ascii_case("digest") {
            if let Some(digest) = parse_digest(params) {
                return Some(digest);
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

fn parse_digest(params: &str) -> Option<Challenge> {
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut qop_auth = false;
    for (key, value) in auth_params(params) {
        if value.chars().any(char::is_control) {
            return None; // nothing a server may send, and never echoed into a request
        }
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "opaque" => opaque = Some(value),
            "qop" => {
                qop_auth = value
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            }
            "algorithm" if !value.eq_ignore_ascii_case("md5") => return None,
            _ => {}
        }
    }
    Some(Challenge::Digest {
        realm: realm?,
        nonce: nonce?,
        opaque,
        qop_auth,
    })
}

/// `key=value` pairs separated by commas; values may be quoted (with `\` escapes) and then hold
/// commas. Malformed pieces are skipped.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect::<String>();
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
}

/// Answers a server's challenge with the URL's credentials.
#[derive(Debug, Clone)]
pub struct Authorizer {
    credentials: Credentials,
    challenge: Challenge,
    /// Requests answered with this nonce so far (Digest `nc`).
    nonce_count: u32,
}

impl Authorizer {
    /// An authorizer for the best of `challenges`, or `None` if none is usable.
    pub fn from_challenges<'a>(
        credentials: Credentials,
        challenges: impl IntoIterator<Item = &'a str>,
    ) -> Option<Authorizer> {
        Some(Authorizer {
            credentials,
            challenge: parse_challenges(challenges)?,
            nonce_count: 0,
        })
    }

    /// The `Authorization` value for `method` on `uri`.
    pub fn authorization(&mut self, method: &str, uri: &str) -> String {
        let Credentials { user, pass } = &self.credentials;
        match &self.challenge {
            Challenge::Basic => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                format!("Basic {token}")
            }
            Challenge::Digest {
                realm,
                nonce,
                opaque,
                qop_auth,
            } => {
                self.nonce_count = self.nonce_count.wrapping_add(1);
                let ha1 = md5_hex(&[user, realm, pass]);
                let ha2 = md5_hex(&[method, uri]);
                let mut header = format!(
                    "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
                    quote(user),
                    quote(realm),
                    quote(nonce),
                    quote(uri)
                );
                if *qop_auth {
                    let nc = format!("{:08x}", self.nonce_count);
                    let cnonce = format!("{:016x}", rand::random::<u64>());
                    let response = md5_hex(&[&ha1, nonce, &nc, &cnonce, "auth", &ha2]);
                    header.push_str(&format!(
                        ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\""
                    ));
                } else {
                    let response = md5_hex(&[&ha1, nonce, &ha2]);
                    header.push_str(&format!(", response=\"{response}\""));
                }
                if let Some(opaque) = opaque {
                    header.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
                }
                header.push_str(", algorithm=MD5");
                header
            }
        }
    }
}

/// A value inside a quoted-string (control characters dropped: a header never breaks a line).
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let mut url = Url::parse("rtsp://cam:s%40cret%3A1@127.0.0.1:8554/live").expect("url");
        let c = take_credentials(&mut url).expect("credentials");
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("cam", "s@cret:1"));
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:8554/live");
        assert!(
            !format!("{c:?}").contains("cret"),
            "the password is never printed"
        );
        let mut plain = Url::parse("rtsp://127.0.0.1/live").expect("url");
        assert_eq!(take_credentials(&mut plain), None);
    }

    #[test]
    fn shown_urls_carry_no_userinfo() {
        assert_eq!(
            without_userinfo("rtsp://cam:s3cret@10.0.0.9:554/stream?a=b@c"),
            "rtsp://10.0.0.9:554/stream?a=b@c"
        );
        assert_eq!(without_userinfo("rtsp://h/p@x"), "rtsp://x");
        for url in [
            "rtsp://admin:12345#@10.0.0.2/s",
            "rtsp://admin:a/b?c@10.0.0.2/s",
            "rtsp://admin:x@y@10.0.0.2/s",
        ] {
            assert_eq!(without_userinfo(url), "rtsp://10.0.0.2/s", "{url}");
        }
        assert_eq!(without_userinfo("not a url"), "not a url");
    }

    #[test]
    fn digest_is_preferred_and_basic_is_the_fallback() {
        let basic = r#"Basic realm="livefeed""#;
        let digest = r#"Digest realm="livefeed", nonce="abc,def", opaque="o", qop="auth,auth-int""#;
        assert_eq!(
            parse_challenges([basic, digest]),
            Some(Challenge::Digest {
                realm: "livefeed".into(),
                nonce: "abc,def".into(),
                opaque: Some("o".into()),
                qop_auth: true,
            })
        );
        assert_eq!(parse_challenges([basic]), Some(Challenge::Basic));
        // SHA-256 only, or a Digest without a nonce: Basic if offered, else nothing.
        let sha = r#"Digest realm="r", nonce="n", algorithm=SHA-256"#;
        assert_eq!(parse_challenges([sha, basic]), Some(Challenge::Basic));
        assert_eq!(parse_challenges([r#"Digest realm="r""#]), None);
        assert_eq!(
            parse_challenges(["Bearer", "", "Digest", "\u{0}\"=,"]),
            None
        );
    }

    #[test]
    fn basic_answer() {
        let creds = Credentials {
            user: "Aladdin".into(),
            pass: "open sesame".into(),
        };
        let mut a = Authorizer::from_challenges(creds, [r#"Basic realm="x""#]).expect("basic");
        assert_eq!(
            a.authorization("DESCRIBE", "rtsp://h/p"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    /// The answer is what the server side (livefeed-auth) checks, computed independently: RFC
    /// 2617's example without qop.
    #[test]
    fn digest_answer_without_qop_follows_rfc_2617() {
        let creds = Credentials {
            user: "Mufasa".into(),
            pass: "Circle Of Life".into(),
        };
        let challenge =
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#;
        let mut a = Authorizer::from_challenges(creds, [challenge]).expect("digest");
        let header = a.authorization("GET", "/dir/index.html");
        // MD5(MD5(Mufasa:testrealm@host.com:Circle Of Life):nonce:MD5(GET:/dir/index.html))
        let ha1 = md5_hex(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
        let ha2 = md5_hex(&["GET", "/dir/index.html"]);
        let want = md5_hex(&[&ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", &ha2]);
        assert!(header.contains(&format!("response=\"{want}\"")), "{header}");
        assert!(header.starts_with("Digest username=\"Mufasa\""), "{header}");
    }

    #[test]
    fn digest_with_qop_counts_its_nonce_uses() {
        let creds = Credentials {
            user: "u".into(),
            pass: "p".into(),
        };
        let mut a =
            Authorizer::from_challenges(creds, [r#"Digest realm="r", nonce="n", qop="auth""#])
                .expect("digest");
        assert!(a
            .authorization("OPTIONS", "rtsp://h/p")
            .contains("nc=00000001"));
        assert!(a
            .authorization("DESCRIBE", "rtsp://h/p")
            .contains("nc=00000002"));
    }
}
