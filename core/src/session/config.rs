//! Core's `[session]` settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default of `session.memory_max_bytes`: 64 MiB.
pub(crate) const DEFAULT_MEMORY_MAX_BYTES: usize = 64 << 20;
/// Default of `session.max_record_bytes`: 16 KiB.
pub(crate) const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 10;

/// The `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, not on their subrequests (default).
    Lax,
    /// Never sent on requests from other sites.
    Strict,
    /// Always sent (requires `Secure`).
    None,
}

impl SameSite {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// What a request gets when the session store fails or times out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// Log the failure and carry on with an empty session (default).
    Empty,
    /// Answer 503 Service Unavailable with `Retry-After`.
    Unavailable,
}

/// Core's `[session]` section.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `store` | `"memory"` | store name: `memory`, or one an extension registers (`sql`, `redis`) |
/// | `capacity` | `10000` | most sessions the memory store keeps (see [`MemoryStore`](super::MemoryStore) for what is evicted) |
/// | `memory_max_bytes` | `67108864` (64 MiB) | most memory the memory store's records take together (estimated) |
/// | `max_record_bytes` | `16384` (16 KiB) | largest session (its values and flashes, encoded as JSON), for every store: a bigger save is refused and logged, the session keeps its previous state, and the response goes out |
/// | `idle_timeout` | `"2h"` | a session unused this long expires |
/// | `absolute_timeout` | `"7d"` | a session expires this long after creation, however used |
/// | `cookie_name` | `"session"` | cookie name (`__Host-` is prefixed when `Secure` and no domain) |
/// | `cookie_domain` | none | `Domain` attribute; none keeps the cookie on this host |
/// | `same_site` | `"lax"` | `lax`, `strict` or `none` |
/// | `insecure_plain_http` | `false` | development only: drop `Secure` so plain-http works |
/// | `on_store_error` | `"empty"` | `empty` (log, empty session) or `unavailable` (503) |
/// | `store_timeout` | `"2s"` | bound on each store call |
/// | `retry_after` | `"5s"` | `Retry-After` sent with a 503 for a failed store |
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Store name.
    pub store: String,
    /// Most sessions the memory store keeps.
    pub capacity: usize,
    /// Most memory, in bytes, the memory store's records take together.
    pub memory_max_bytes: usize,
    /// Largest session data, in bytes of JSON; bigger saves are refused.
    pub max_record_bytes: usize,
    /// A session unused this long expires.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session expires this long after creation.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Cookie name.
    pub cookie_name: String,
    /// Cookie `Domain`.
    pub cookie_domain: Option<String>,
    /// Cookie `SameSite`.
    pub same_site: SameSite,
    /// Development only: send the cookie without `Secure`.
    pub insecure_plain_http: bool,
    /// What a store failure gives.
    pub on_store_error: OnStoreError,
    /// Bound on each store call.
    #[serde(with = "humantime_serde")]
    pub store_timeout: Duration,
    /// `Retry-After` of the 503 for a failed store.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            store: "memory".into(),
            capacity: 10_000,
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            idle_timeout: Duration::from_secs(2 * 3600),
            absolute_timeout: Duration::from_secs(7 * 24 * 3600),
            cookie_name: "session".into(),
            cookie_domain: None,
            same_site: SameSite::Lax,
            insecure_plain_http: false,
            on_store_error: OnStoreError::Empty,
            store_timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl SessionConfig {
    /// Checks values serde cannot: returns `(key, message)` for the first bad one.
    pub(crate) fn validate(&self, development: bool) -> Result<(), (&'static str, String)> {
        if self.capacity == 0 {
            return Err(("session.capacity", "must be at least 1".into()));
        }
        if self.max_record_bytes < 64 {
            return Err(("session.max_record_bytes", "must be at least 64".into()));
        }
        if self.memory_max_bytes < self.max_record_bytes.saturating_mul(4).max(1024) {
            return Err((
                "session.memory_max_bytes",
                "must be at least 1024 and at least four times session.max_record_bytes".into(),
            ));
        }
        if self.idle_timeout.as_secs() == 0 {
            return Err(("session.idle_timeout", "must be at least one second".into()));
        }
        if self.absolute_timeout < self.idle_timeout {
            return Err((
                "session.absolute_timeout",
                "must not be shorter than session.idle_timeout".into(),
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(("session.store_timeout", "must be more than zero".into()));
        }
        let name_ok = !self.cookie_name.is_empty()
            && self.cookie_name.len() <= 64
            && self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err((
                "session.cookie_name",
                "use 1-64 letters, digits, `_` or `-`".into(),
            ));
        }
        if let Some(d) = &self.cookie_domain {
            let ok = !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(("session.cookie_domain", "not a valid domain name".into()));
            }
        }
        if self.insecure_plain_http && !development {
            return Err((
                "session.insecure_plain_http",
                "allowed only in the development profile: session cookies are `Secure` \
                 everywhere else"
                    .into(),
            ));
        }
        if self.insecure_plain_http && self.same_site == SameSite::None {
            return Err((
                "session.same_site",
                "`none` requires a Secure cookie; unset session.insecure_plain_http".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn secure(&self) -> bool {
        !self.insecure_plain_http
    }
}
