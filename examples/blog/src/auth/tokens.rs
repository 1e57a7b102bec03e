//! Signed, expiring links: `{user id}.{expiry}.{HMAC}`, the HMAC (SHA-256, keyed by a key
//! derived from the app's secret for one purpose) over the purpose, the id, the expiry and a
//! binding the link must still match when it is used: the email address for a verification
//! link (a changed address kills it), the password hash for a reset link (using it changes
//! the hash, so it works once).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagon::AppHandle;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::models::Account;

/// What a link is for: each purpose has its own derived key, so a verification link never
/// works as a reset link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `GET /auth/verify/{token}`, bound to the email address.
    Verify,
    /// `/auth/reset/{token}`, bound to the password hash.
    Reset,
}

impl Purpose {
    fn key_name(self) -> &'static str {
        match self {
            Purpose::Verify => "blog.verify",
            Purpose::Reset => "blog.reset",
        }
    }

    /// How long a link lasts, in seconds.
    pub fn lifetime(self) -> i64 {
        match self {
            Purpose::Verify => 48 * 3600,
            Purpose::Reset => 3600,
        }
    }

    fn binding(self, account: &Account) -> &str {
        match self {
            Purpose::Verify => &account.email,
            Purpose::Reset => &account.password_hash,
        }
    }
}

/// Why a link was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link this app signed (or its account changed since: a new email, a new
    /// password).
    Invalid,
    /// Signed, but past its expiry.
    Expired,
}

fn mac(app: &AppHandle, purpose: Purpose, id: i64, expires: i64, binding: &str) -> [u8; 32] {
    let key = app.derive_key(purpose.key_name());
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    for part in [
        purpose.key_name().as_bytes(),
        id.to_string().as_bytes(),
        expires.to_string().as_bytes(),
        binding.as_bytes(),
    ] {
        // Length-prefixed, so no two different inputs read the same.
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// A link token for `account`, valid until `expires` (Unix seconds).
pub fn sign(app: &AppHandle, purpose: Purpose, account: &Account, expires: i64) -> String {
    let tag = mac(app, purpose, account.id, expires, purpose.binding(account));
    format!("{}.{}.{}", account.id, expires, URL_SAFE_NO_PAD.encode(tag))
}

/// A link token for `account` lasting the purpose's lifetime from now.
pub fn issue(app: &AppHandle, purpose: Purpose, account: &Account) -> String {
    sign(
        app,
        purpose,
        account,
        crate::models::now() + purpose.lifetime(),
    )
}

/// The account id a token names, before its signature is checked (to load the account),
/// or `Invalid` for anything that is not `{id}.{expiry}.{tag}`.
pub fn claimed_id(token: &str) -> Result<i64, LinkError> {
    let mut parts = token.splitn(3, '.');
    let id = parts.next().and_then(|s| s.parse::<i64>().ok());
    match (id, parts.next(), parts.next()) {
        (Some(id), Some(_), Some(_)) => Ok(id),
        _ => Err(LinkError::Invalid),
    }
}

/// Checks `token` against `account` (the one [`claimed_id`] named) at time `now`.
pub fn check(
    app: &AppHandle,
    purpose: Purpose,
    token: &str,
    account: &Account,
    now: i64,
) -> Result<(), LinkError> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(LinkError::Invalid);
    };
    let id: i64 = id.parse().map_err(|_| LinkError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| LinkError::Invalid)?;
    if id != account.id {
        return Err(LinkError::Invalid);
    }
    let want = mac(app, purpose, id, expires, purpose.binding(account));
    if tag.len() != want.len() || !bool::from(tag.ct_eq(&want)) {
        return Err(LinkError::Invalid);
    }
    // Checked after the signature: an expired link is reported as such only when it is ours.
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}
