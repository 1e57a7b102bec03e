//! Selector/validator token series: issued, checked in constant time, rotated on use, and
//! revoked whole when a replaced validator comes back. Remember-me cookies and refresh
//! tokens are both such series.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagon::tracing;
use subtle::ConstantTimeEq;

use crate::store::{RememberStore, StoreError, TokenRecord, hex, sha256_hex};

/// A token as the client holds it: `selector.validator`.
pub(crate) struct Presented {
    pub selector: String,
    pub validator: String,
}

impl Presented {
    /// Parses `selector.validator` (32 hex digits, a dot, 43 base64url characters).
    pub fn parse(raw: &str) -> Option<Presented> {
        let (selector, validator) = raw.split_once('.')?;
        let ok = selector.len() == 32
            && selector
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && validator.len() == 43
            && validator
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Presented {
            selector: selector.to_owned(),
            validator: validator.to_owned(),
        })
    }
}

fn new_validator() -> (String, String) {
    let v = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let h = sha256_hex(v.as_bytes());
    (v, h)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What checking a presented token found.
pub(crate) enum Checked {
    /// Valid: the user id, the stored auth digest, and the new token to hand out (`None`
    /// when a parallel request already rotated it within the grace period).
    Valid {
        record: TokenRecord,
        replacement: Option<String>,
    },
    /// Unknown, expired or malformed: forget the cookie.
    Invalid,
    /// A replaced validator was replayed: the series is revoked.
    Theft { user_id: String },
}

/// Issues a new series for `user_id`, valid for `ttl`; returns the client's token and its
/// record.
pub(crate) async fn issue(
    store: &Arc<dyn RememberStore>,
    user_id: &str,
    auth_digest: &str,
    now: u64,
    ttl: Duration,
) -> Result<(String, TokenRecord), StoreError> {
    let selector = hex(&rand::random::<[u8; 16]>());
    let (validator, hash) = new_validator();
    let record = TokenRecord {
        selector: selector.clone(),
        user_id: user_id.to_owned(),
        validator_hash: hash,
        previous_hash: None,
        rotated_at: now,
        expires_at: now.saturating_add(ttl.as_secs()),
        auth_digest: auth_digest.to_owned(),
    };
    store.insert(&record).await?;
    Ok((format!("{selector}.{validator}"), record))
}

/// Checks `raw` and rotates its validator.
pub(crate) async fn check(
    store: &Arc<dyn RememberStore>,
    raw: &str,
    now: u64,
    grace: Duration,
) -> Result<Checked, StoreError> {
    let Some(p) = Presented::parse(raw) else {
        return Ok(Checked::Invalid);
    };
    let Some(record) = store.get(&p.selector).await? else {
        return Ok(Checked::Invalid);
    };
    if record.expires_at <= now {
        store.delete(&p.selector).await?;
        return Ok(Checked::Invalid);
    }
    let presented = sha256_hex(p.validator.as_bytes());
    let in_grace = |r: &TokenRecord| {
        !grace.is_zero()
            && r.previous_hash
                .as_deref()
                .is_some_and(|h| same(h, &presented))
            && now.saturating_sub(r.rotated_at) < grace.as_secs().max(1)
    };
    if same(&record.validator_hash, &presented) {
        let (validator, hash) = new_validator();
        if store.rotate(&p.selector, &presented, &hash, now).await? {
            return Ok(Checked::Valid {
                record,
                replacement: Some(format!("{}.{validator}", p.selector)),
            });
        }
        // Another request rotated it first: it is valid only as that one's predecessor.
        return match store.get(&p.selector).await? {
            Some(r) if in_grace(&r) => Ok(Checked::Valid {
                record: r,
                replacement: None,
            }),
            _ => Ok(Checked::Invalid),
        };
    }
    if in_grace(&record) {
        return Ok(Checked::Valid {
            record,
            replacement: None,
        });
    }
    // The selector is right and the validator is not the current one: a copy of an older
    // cookie is in use. Revoke the whole series.
    store.delete(&p.selector).await?;
    tracing::warn!(
        target: "flagon_login",
        user_id = %record.user_id,
        "a replaced remember-me validator was presented again; the token series is revoked (possible cookie theft)"
    );
    Ok(Checked::Theft {
        user_id: record.user_id,
    })
}
