//! Checks on what the account forms send. Each failure is a catalog id (`auth-error-…`),
//! shown next to its field.

use std::collections::BTreeMap;

/// Field name → catalog id of what is wrong with it.
pub type FieldErrors = BTreeMap<&'static str, &'static str>;

/// The longest address accepted (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;

/// `raw` trimmed and lower-cased, if it looks like a deliverable address: one `@`, a local
/// part of printable ASCII without spaces or specials, a domain of dot-separated labels of
/// letters, digits and `-`; no CR, LF or any other control character anywhere (a header
/// injection is refused here, before the mail extension refuses it again).
pub fn email(raw: &str) -> Result<String, &'static str> {
    let e = raw.trim().to_lowercase();
    if e.is_empty() {
        return Err("auth-error-email-required");
    }
    if e.len() > EMAIL_MAX || e.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("auth-error-email-invalid");
    }
    let Some((local, domain)) = e.split_once('@') else {
        return Err("auth-error-email-invalid");
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !local_ok || !domain_ok || flagon_mail::Address::new(&e).is_err() {
        return Err("auth-error-email-invalid");
    }
    Ok(e)
}

/// `raw` trimmed, if it is 3–32 letters (any script), digits, `_` or `-`.
pub fn username(raw: &str) -> Result<String, &'static str> {
    let u = raw.trim();
    let n = u.chars().count();
    if n == 0 {
        return Err("auth-error-username-required");
    }
    if !(3..=32).contains(&n) {
        return Err("auth-error-username-length");
    }
    if !u
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err("auth-error-username-chars");
    }
    Ok(u.to_owned())
}

/// Passwords too common to accept, whatever their length.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "qwerty123",
    "letmein1",
    "football",
    "baseball",
    "welcome1",
];

/// The password policy: flagon-login's (length, in characters and bytes) plus a short list
/// of passwords everyone tries first.
pub fn password(passwords: &flagon_login::Passwords, pw: &str) -> Result<(), &'static str> {
    use flagon_login::PolicyError;
    match passwords.check_policy(pw, |p| COMMON.contains(&p.to_lowercase().as_str())) {
        Ok(()) => Ok(()),
        Err(PolicyError::TooShort { .. }) => Err("auth-error-password-short"),
        Err(PolicyError::TooLong { .. }) => Err("auth-error-password-long"),
        Err(_) => Err("auth-error-password-common"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(email(" Ann@Example.COM ").as_deref(), Ok("ann@example.com"));
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "ann@example.com\r\nBcc: eve@example.com",
            "ann\n@example.com",
            "a nn@example.com",
            "ann@exa_mple.com",
            "<ann@example.com>",
            "ann..x@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(username(" ann_1 ").as_deref(), Ok("ann_1"));
        assert!(username("小明明").is_ok());
        assert_eq!(username("ab"), Err("auth-error-username-length"));
        assert_eq!(username(&"a".repeat(33)), Err("auth-error-username-length"));
        assert_eq!(
            username("ann\r\nBcc: eve@example.com"),
            Err("auth-error-username-chars")
        );
        assert_eq!(username("ann\u{202e}xx"), Err("auth-error-username-chars"));
        assert_eq!(username("ann smith"), Err("auth-error-username-chars"));
    }
}
