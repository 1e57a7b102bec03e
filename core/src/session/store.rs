//! The session store contract: records keyed by a random id, behind a `dyn`-safe trait
//! shaped like tower-sessions' `SessionStore` (create, save, load, delete), so a store
//! written for one ports to the other with little change.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::clock::Clock;
use super::config::SessionConfig;
use crate::config::Config;
use crate::crypto::{hex, random_16, unhex};
use crate::error::BoxError;

/// What a store method returns: a boxed, sendable future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A session id: 128 random bits from a CSPRNG. Shown as 32 hex digits; `Debug` shows only
/// a prefix, so ids do not end up in logs whole.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 16]);

impl Id {
    /// A fresh random id.
    pub fn random() -> Id {
        Id(random_16())
    }

    /// The id as 32 lower-case hex digits (the key stores should use).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(text: &str) -> Option<Id> {
        let mut out = [0u8; 16];
        unhex(text.as_bytes(), &mut out).then_some(Id(out))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({}…)", &self.to_hex()[..6])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a session id is 32 hex digits"))
    }
}

/// One session as stored: id, data, and its two deadlines in Unix seconds. Serialisable,
/// so SQL and Redis stores can keep it as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The session id.
    pub id: Id,
    /// The session's values (serde JSON).
    pub data: BTreeMap<String, serde_json::Value>,
    /// When the session was created (Unix seconds); the absolute timeout counts from here.
    pub created_at: u64,
    /// When the record expires (Unix seconds): the idle deadline, never past the absolute
    /// one. Stores may drop the record after this (Redis `EXPIREAT`, an SQL sweep).
    pub expires_at: u64,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (connection lost, query error, …).
    #[error("session store backend failed: {0}")]
    Backend(#[source] BoxError),
    /// A record could not be encoded or decoded.
    #[error("session record could not be encoded or decoded: {0}")]
    Encoding(#[source] BoxError),
    /// The call did not finish within `session.store_timeout`.
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
}

/// A session backend. Core ships [`MemoryStore`](super::MemoryStore); the `db` and `cache`
/// extensions add SQL and Redis stores with [`Setup::session_store`](crate::Setup::session_store).
///
/// Every call is bounded by `session.store_timeout` by the caller; a store need not add its
/// own timeout but must be cancel-safe (a dropped future leaves the store usable).
///
/// Errors are for the backend being unreachable or failing. A stored record that cannot be
/// decoded (written by an older version, corrupted) is a miss: `load` returns `Ok(None)`,
/// logs it and deletes it, so one bad record never turns into a 503 for its owner.
/// Run [`conformance::run`](super::conformance::run) in the store's tests.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new record. If `record.id` is already taken the store must pick a fresh
    /// [`Id::random`] and write it back into `record`.
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()>;

    /// Replaces an existing record. A record that is gone (deleted by a logout or an id
    /// rotation in another request, or expired) stays gone: `save` must not recreate it,
    /// or a concurrent request would bring a logged-out session back to life. Use an
    /// update-only write (`SET ... XX` in Redis, `UPDATE` in SQL).
    fn save<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()>;

    /// Reads a record; `None` when it is unknown or expired.
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>>;

    /// Deletes a record; deleting an unknown id is not an error.
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()>;
}

impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        (**self).create(record)
    }
    fn save<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        (**self).save(record)
    }
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        (**self).load(id)
    }
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        (**self).delete(id)
    }
}

/// What a store factory is given when the app is built.
pub struct StoreContext<'a> {
    pub(crate) session: &'a SessionConfig,
    pub(crate) settings: &'a Config,
    pub(crate) clock: Arc<dyn Clock>,
}

impl StoreContext<'_> {
    /// Core's `[session]` settings (capacity, timeouts).
    pub fn session_config(&self) -> &SessionConfig {
        self.session
    }

    /// The whole settings tree.
    pub fn settings(&self) -> &Config {
        self.settings
    }

    /// The clock sessions use; stores that expire records should read it too.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }
}

/// Builds a store when the app is built (see [`Setup::session_store`](crate::Setup::session_store)).
pub type StoreFactory =
    Arc<dyn Fn(&StoreContext<'_>) -> Result<Arc<dyn SessionStore>, BoxError> + Send + Sync>;
