//! Secrets in settings: a type that never prints, redaction for the `config` command, and the
//! check that refuses an obviously guessable `secret_key` in production.

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

/// Why `key` is obviously guessable, if it is: too little variety to hold 80 bits however it
/// is read (`aaaa…`, `abab…`), one short piece repeated, or a run such as `abcdef…` or
/// `123456…`. A random key of 32 or more characters (hex, base64, alphanumeric) does not trip
/// it: 32 random hex characters measure about 110 bits, and below 90 in fewer than one draw in
/// 300,000.
pub(crate) fn weakness(key: &str) -> Option<&'static str> {
    let b = key.as_bytes();
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let n = b.len() as f64;
    // The key's length times its empirical entropy per character: what it could hold at best.
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2() * n
        })
        .sum();
    if bits < 80.0 {
        return Some("it uses too few different characters");
    }
    if (1..=b.len() / 2).any(|period| b[period..].iter().zip(b).all(|(x, y)| x == y)) {
        return Some("it repeats a shorter piece");
    }
    let steps = b
        .windows(3)
        .filter(|w| w[1].wrapping_sub(w[0]) == w[2].wrapping_sub(w[1]))
        .count();
    if steps * 2 >= b.len() {
        return Some("it is mostly a run of consecutive characters");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_keys_are_named_and_random_ones_pass() {
        assert!(weakness(&"a".repeat(32)).is_some());
        assert!(weakness(&"ab".repeat(32)).is_some());
        assert!(weakness("password1234password1234password").is_some());
        assert!(weakness("abcdefghijklmnopqrstuvwxyz012345").is_some());
        assert!(weakness("0123456789012345678901234567890123456789").is_some());
        for _ in 0..1000 {
            let hex = crate::crypto::hex(&crate::crypto::random_16());
            assert_eq!(weakness(&hex), None, "{hex}");
            let long: [u8; 32] = rand::random();
            let hex = crate::crypto::hex(&long);
            assert_eq!(weakness(&hex), None, "{hex}");
        }
    }
}
