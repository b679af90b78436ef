//! Who may publish, read and control, and how they prove it (sans-IO: no sockets, no clock —
//! the caller passes the time in).
//!
//! Contract:
//! - [`Authenticator::check`] decides one request: an [`Action`] on a path, from an IP address,
//!   with the `Authorization` header value if any. It answers [`Decision::Allowed`],
//!   [`Decision::Unauthorized`] (send the [`Authenticator::challenges`]; delay the answer when
//!   credentials were given and wrong) or [`Decision::Forbidden`] (known user, no right).
//! - Without configured users the defaults hold: anyone reads; publishing and the API's
//!   controls only from loopback (publishing from anywhere with `allow_remote_publish`).
//! - With users, only what they grant: a user named `any` needs no credentials. Each user has
//!   permissions (`publish`, `read`, `api`), optional path patterns (`cam/*`) and IP networks.
//! - Credentials: HTTP/RTSP Basic, RTSP Digest (MD5, RFC 2617, with or without `qop=auth`;
//!   nonces are stateless HMACs of their issue time, valid for [`NONCE_LIFETIME_SECS`]), and
//!   Bearer tokens. Secrets are compared in constant time (through SHA-256, so lengths do not
//!   leak either). Nothing here logs, and [`Credentials`]' `Debug` hides secrets.

mod config;
mod credentials;
mod digest;
pub mod guard;

use std::net::{IpAddr, SocketAddr};

pub use config::{Permission, UserConfig};
pub use credentials::{parse_authorization, Credentials, DigestFields};
use digest::NonceKey;

/// The realm in challenges.
pub const REALM: &str = "livefeed";

/// How long an answer to wrong credentials is held back (slows down guessing).
pub const FAILURE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a Digest nonce is accepted after it was issued.
pub const NONCE_LIFETIME_SECS: u64 = 600;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish a stream on a path.
    Publish,
    /// Read a path (RTSP play, LL-HLS, WHEP, its API entries).
    Read,
    /// Use the API's controls (start/stop sources, disconnect readers).
    Api,
}

impl Action {
    fn permission(self) -> Permission {
        match self {
            Action::Publish => Permission::Publish,
            Action::Read => Permission::Read,
            Action::Api => Permission::Api,
        }
    }
}

/// One request to decide.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// What it wants.
    pub action: Action,
    /// The stream path (empty for API controls that name none).
    pub path: &'a str,
    /// Where it comes from.
    pub ip: IpAddr,
    /// The client's address and port when the request arrives on a connection that carries
    /// many (RTSP): a Digest nonce is bound to the connection that first used it.
    pub connection: Option<SocketAddr>,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a str>,
    /// Request method (for Digest), e.g. `DESCRIBE`.
    pub method: &'a str,
    /// Request URI as sent (for Digest).
    pub uri: &'a str,
    /// Unix seconds now (for Digest nonces).
    pub now_secs: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `user` is who (None: anonymous).
    Allowed {
        /// The authenticated user, if any.
        user: Option<String>,
    },
    /// Credentials are missing or wrong: answer 401 with the challenges.
    Unauthorized {
        /// Why, for logs (never contains secrets).
        reason: String,
        /// Credentials were given (and wrong): delay the answer.
        credentials_given: bool,
    },
    /// Authenticated (or anonymous) but not allowed: answer 403.
    Forbidden {
        /// Why, for logs and the response.
        reason: String,
    },
}

/// Settings without users.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenDefaults {
    /// Accept publishers from any address (not only loopback).
    pub allow_remote_publish: bool,
}

/// Decides requests against the configured users.
pub struct Authenticator {
    users: Vec<UserConfig>,
    defaults: OpenDefaults,
    nonces: NonceKey,
    guard: guard::Guard,
}

impl Authenticator {
    /// An authenticator over `users` (checked already by [`UserConfig::check`]); without users
    /// `defaults` apply.
    pub fn new(users: Vec<UserConfig>, defaults: OpenDefaults) -> Self {
        Authenticator {
            users,
            defaults,
            nonces: NonceKey::random(),
            guard: guard::Guard::default(),
        }
    }

    /// Whether users are configured (otherwise the open defaults apply).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// `WWW-Authenticate` values for a 401: Digest (RTSP only) and Basic.
    pub fn challenges(&self, now_secs: u64, digest: bool) -> Vec<String> {
        let mut out = Vec::new();
        if digest {
            out.push(format!(
                "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5",
                self.nonces.mint(now_secs)
            ));
        }
        out.push(format!("Basic realm=\"{REALM}\""));
        out
    }

    /// Decides `req`.
    pub fn check(&self, req: &AuthRequest<'_>) -> Decision {
        if self.users.is_empty() {
            return self.check_open(req);
        }
        let credentials = match req.authorization.map(parse_authorization) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                self.guard.failed(req.ip, req.now_secs);
                return Decision::Unauthorized {
                    reason: format!("unreadable Authorization header: {e}"),
                    credentials_given: true,
                };
            }
        };
        let permission = req.action.permission();
        // Anonymous grants first: they need nothing.
        let anonymous = self
            .users
            .iter()
            .filter(|u| u.is_anonymous())
            .find(|u| u.grants(permission, req.path, req.ip));
        if anonymous.is_some() && credentials.is_none() {
            return Decision::Allowed { user: None };
        }
        let Some(credentials) = credentials else {
            return Decision::Unauthorized {
                reason: "credentials required".into(),
                credentials_given: false,
            };
        };
        if let Some(left) = self.guard.blocked(req.ip, req.now_secs) {
            return Decision::Unauthorized {
                reason: format!(
                    "{} failed attempts from {} within {} s: refused unchecked for {left} s more",
                    guard::MAX_FAILURES,
                    req.ip,
                    guard::FAILURE_WINDOW_SECS
                ),
                credentials_given: true,
            };
        }
        let user = self.authenticate(&credentials, req);
        if let (Some(_), Credentials::Digest(fields)) = (user, &credentials) {
            if let Err(reason) = self.use_nonce(fields, req) {
                // Not counted as a failed attempt: the password was right (a client carrying
                // its nonce to a new connection must not lock its address out).
                return Decision::Unauthorized {
                    reason,
                    credentials_given: true,
                };
            }
        }
        let Some(user) = user else {
            self.guard.failed(req.ip, req.now_secs);
            if anonymous.is_some() {
                // Wrong credentials never beat anonymous access silently.
                return Decision::Unauthorized {
                    reason: "wrong credentials".into(),
                    credentials_given: true,
                };
            }
            return Decision::Unauthorized {
                reason: format!("wrong credentials for user {:?}", credentials.user()),
                credentials_given: true,
            };
        };
        if user.grants(permission, req.path, req.ip) {
            Decision::Allowed {
                user: Some(user.user.clone()),
            }
        } else {
            Decision::Forbidden {
                reason: format!(
                    "user {:?} may not {} path {:?} from {}",
                    user.user,
                    permission.verb(),
                    req.path,
                    req.ip
                ),
            }
        }
    }

    fn check_open(&self, req: &AuthRequest<'_>) -> Decision {
        let from_loopback = req.ip.is_loopback();
        match req.action {
            Action::Read => Decision::Allowed { user: None },
            Action::Publish if from_loopback || self.defaults.allow_remote_publish => {
                Decision::Allowed { user: None }
            }
            Action::Publish => Decision::Forbidden {
                reason: format!(
                    "publishing is only accepted from loopback until users are configured (or allow-remote-publish is set); {} is not",
                    req.ip
                ),
            },
            Action::Api if from_loopback => Decision::Allowed { user: None },
            Action::Api => Decision::Forbidden {
                reason: format!(
                    "controls are only accepted from loopback until users are configured; {} is not",
                    req.ip
                ),
            },
        }
    }

    /// Records a verified Digest answer's nonce use on its connection, or says why it is a
    /// replay.
    fn use_nonce(&self, fields: &DigestFields, req: &AuthRequest<'_>) -> Result<(), String> {
        let Some(peer) = req.connection else {
            return Ok(());
        };
        let nc = match fields.nc.as_deref() {
            None => None,
            Some(hex) => Some(
                u32::from_str_radix(hex, 16)
                    .map_err(|_| format!("Digest nc {hex:?} is not a hex count"))?,
            ),
        };
        self.guard
            .use_nonce(&fields.nonce, peer, nc, req.now_secs)
            .map_err(|refusal| match refusal {
                guard::NonceRefusal::OtherConnection => {
                    "Digest nonce first used by another connection (a replayed header?)".to_string()
                }
                guard::NonceRefusal::Replayed { nc, highest } => {
                    format!("Digest nc {nc} replayed (already at {highest})")
                }
            })
    }

    /// The user these credentials prove, if any.
    fn authenticate(
        &self,
        credentials: &Credentials,
        req: &AuthRequest<'_>,
    ) -> Option<&UserConfig> {
        let mut found = None;
        // Check every user (no early exit) so timing does not tell which names exist.
        for user in self.users.iter().filter(|u| !u.is_anonymous()) {
            let ok = match credentials {
                Credentials::Basic { user: name, pass } => {
                    secret_eq(name, &user.user)
                        & user.pass.as_deref().is_some_and(|p| secret_eq(pass, p))
                }
                Credentials::Bearer(token) => {
                    user.token.as_deref().is_some_and(|t| secret_eq(token, t))
                }
                Credentials::Digest(fields) => {
                    fields.username == user.user
                        && fields.realm == REALM
                        && fields.uri == req.uri
                        && self.nonces.valid(&fields.nonce, req.now_secs)
                        && user
                            .pass
                            .as_deref()
                            .is_some_and(|p| digest::response_matches(fields, p, req.method))
                }
            };
            if ok && found.is_none() {
                found = Some(user);
            }
        }
        found
    }
}

/// Constant-time equality of two secrets (through SHA-256: equal lengths, no length leak).
fn secret_eq(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.ct_eq(&hb).into()
}

#[cfg(test)]
mod tests;
