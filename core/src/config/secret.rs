//! Secrets in settings: a type that never prints, and redaction for the `config` command.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A configuration string that is never printed: `Debug`, `Display` and `Serialize` show
/// `********`. Use it for passwords and tokens in config structs.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

pub(crate) const REDACTED: &str = "********";

/// Whether a key name looks like it holds a secret (`password`, `secret_key`, `token`, …).
pub(crate) fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "api_key",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|w| last.contains(w))
}

/// Redacts the password of a URL-shaped value (`postgres://user:pw@host/db`).
pub(crate) fn redact_url(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:{REDACTED}{}",
            &value[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => value.to_owned(),
    }
}
