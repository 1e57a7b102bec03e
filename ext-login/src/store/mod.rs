//! Remember-me token stores: where the server side of each token lives.
//!
//! A remember-me cookie is `selector.validator`: the selector (128 random bits) finds the
//! record, the validator (256 random bits) proves the cookie, and only its SHA-256 is stored,
//! beside the user id, the expiry and a keyed digest of the user's auth hash. Each use
//! replaces the validator ([`RememberStore::rotate`], a compare-and-set); a replay of a
//! replaced validator after `login.remember_rotation_grace` revokes the whole series.
//!
//! Stores are chosen by `login.remember_store`: `memory` (always), `db` (feature `db`, on
//! `flagon-db`), `redis` (feature `redis`). A store of your own implements
//! [`RememberStore`], is added with `app.add_to::<RememberStores>(name, factory)`, and runs
//! [`conformance::run`] in its tests.

pub mod conformance;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "db")]
mod sql;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use flagon::serde::{Deserialize, Serialize};
use flagon::{AppHandle, BoxError, RegistryKind};

pub use memory::MemoryRememberStore;
#[cfg(feature = "redis")]
pub use redis::RedisRememberStore;
#[cfg(feature = "db")]
pub use sql::{REMEMBER_TABLE, SqlRememberStore, remember_migrations};

/// A store call's future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed or timed out.
    #[error("the remember-token store failed: {0}")]
    Backend(#[source] BoxError),
}

/// The server side of one remember-me token series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(crate = "flagon::serde")]
pub struct TokenRecord {
    /// The selector: 32 hex digits, the record's key.
    pub selector: String,
    /// The user's id.
    pub user_id: String,
    /// SHA-256 of the current validator, hex.
    pub validator_hash: String,
    /// SHA-256 of the validator it replaced, hex (accepted within the rotation grace).
    pub previous_hash: Option<String>,
    /// When the validator was last replaced (Unix seconds).
    pub rotated_at: u64,
    /// When the series expires (Unix seconds).
    pub expires_at: u64,
    /// Keyed digest of the user's auth hash when the token was issued, hex.
    pub auth_digest: String,
}

/// Where remember-me tokens live. Implementations must make [`RememberStore::rotate`]
/// atomic (compare-and-set on the current validator hash), so that of two requests
/// presenting the same validator at once only one rotates it.
pub trait RememberStore: Send + Sync + 'static {
    /// Stores a new series.
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()>;
    /// The series with `selector`, if stored (expired ones may be returned; the caller
    /// checks `expires_at`).
    fn get<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, Option<TokenRecord>>;
    /// Replaces the validator hash if it is still `current`: `previous_hash` becomes
    /// `current`, `rotated_at` becomes `now`, and `expires_at` is kept. Returns whether the
    /// record was changed.
    fn rotate<'a>(
        &'a self,
        selector: &'a str,
        current: &'a str,
        next: &'a str,
        now: u64,
    ) -> StoreFuture<'a, bool>;
    /// Deletes one series (logout, theft).
    fn delete<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, ()>;
    /// Deletes every series of `user_id` (password change, `login remember revoke`);
    /// returns how many.
    fn delete_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, u64>;
    /// Deletes series expired at `now`; returns how many.
    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64>;
}

/// What a store factory sees.
pub struct StoreSetup<'a> {
    pub(crate) app: &'a AppHandle,
    pub(crate) config: &'a crate::LoginConfig,
}

impl StoreSetup<'_> {
    /// The app being started (its state: a `flagon_db::Db`).
    pub fn app(&self) -> &AppHandle {
        self.app
    }

    /// The `[login]` settings.
    pub fn config(&self) -> &crate::LoginConfig {
        self.config
    }
}

/// Makes a store when the app starts.
pub type StoreFactory =
    Arc<dyn Fn(&StoreSetup<'_>) -> Result<Arc<dyn RememberStore>, BoxError> + Send + Sync>;

/// The registry of remember-token stores, by name (`login.remember_store`).
pub struct RememberStores;

impl RegistryKind for RememberStores {
    type Entry = StoreFactory;
    const KIND: &'static str = "remember-token store";
}

/// Hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of `data`, hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}
