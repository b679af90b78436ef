//! Users as the config file lists them:
//!
//! ```toml
//! [[users]]
//! user = "any"                 # no credentials needed
//! permissions = ["read"]
//!
//! [[users]]
//! user = "cam"
//! pass = "secret"              # Basic and Digest
//! token = "long-random-token"  # Bearer (optional)
//! permissions = ["publish", "read"]
//! paths = ["cam/*"]            # optional: all paths when absent; `x/*` = x and below
//! ips = ["192.168.1.0/24"]     # optional: any address when absent
//! ```

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Publish streams.
    Publish,
    /// Read streams.
    Read,
    /// Use the API's controls.
    Api,
}

impl Permission {
    /// The verb for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Permission::Publish => "publish",
            Permission::Read => "read",
            Permission::Api => "control",
        }
    }
}

/// One user.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Name; `any` is everyone, without credentials.
    pub user: String,
    /// Password (Basic, Digest).
    #[serde(default)]
    pub pass: Option<String>,
    /// Bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// What the user may do.
    pub permissions: Vec<Permission>,
    /// Path patterns (`cam`, `cam/*`, `*`); all paths when empty.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Networks the user may come from; anywhere when empty.
    #[serde(default)]
    pub ips: Vec<IpNet>,
}

// Secrets never reach logs, not even through `{:?}`.
impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("permissions", &self.permissions)
            .field("paths", &self.paths)
            .field("ips", &self.ips)
            .finish()
    }
}

/// The name of the everyone-user.
pub const ANONYMOUS: &str = "any";

impl UserConfig {
    /// Whether this entry applies to everyone without credentials.
    pub fn is_anonymous(&self) -> bool {
        self.user == ANONYMOUS
    }

    /// Checks the entry; the error says what is wrong with which user.
    pub fn check(&self) -> Result<(), String> {
        let who = &self.user;
        if who.is_empty() || who.contains(':') {
            return Err(format!(
                "user name {who:?} must be non-empty and without ':'"
            ));
        }
        if self.is_anonymous() && (self.pass.is_some() || self.token.is_some()) {
            return Err("user \"any\" takes no pass or token".into());
        }
        if !self.is_anonymous() && self.pass.is_none() && self.token.is_none() {
            return Err(format!("user {who:?} needs a pass or a token"));
        }
        if self.permissions.is_empty() {
            return Err(format!("user {who:?} has no permissions"));
        }
        Ok(())
    }

    /// Whether this user may use `permission` on `path` from `ip`.
    pub fn grants(&self, permission: Permission, path: &str, ip: IpAddr) -> bool {
        self.permissions.contains(&permission)
            && (self.paths.is_empty() || self.paths.iter().any(|p| path_matches(p, path)))
            && (self.ips.is_empty() || self.ips.iter().any(|net| net.contains(&ip)))
    }
}

/// `*` matches everything, `x/*` matches `x` and everything below it, anything else itself.
fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(prefix) => {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with('/'))
        }
        None => pattern == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        assert!(path_matches("*", "a/b"));
        assert!(path_matches("cam/*", "cam"));
        assert!(path_matches("cam/*", "cam/1"));
        assert!(!path_matches("cam/*", "camera"));
        assert!(path_matches("live", "live"));
        assert!(!path_matches("live", "live/x"));
    }

    #[test]
    fn debug_hides_secrets() {
        let u = UserConfig {
            user: "cam".into(),
            pass: Some("hunter2".into()),
            token: Some("tok".into()),
            permissions: vec![Permission::Read],
            ..Default::default()
        };
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
