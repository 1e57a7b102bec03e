//! The session store contract: records keyed by a random id, behind a `dyn`-safe trait
//! (create, load, update, delete).
//!
//! It is close to tower-sessions' `SessionStore` but not the same: tower-sessions writes
//! back a whole record (`save`), which loses concurrent changes and can bring a deleted
//! record back; Flagon's stores apply a request's changes atomically
//! ([`SessionStore::update`]) and never recreate a record.

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

/// A record as [`SessionStore::load_shared`] hands it out: its data behind an `Arc` the
/// store may share with its own copy, so a request that only reads its session copies
/// nothing (sessions copy the data on the first write).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedRecord {
    /// The session id.
    pub id: Id,
    /// The session's values (serde JSON), possibly shared with the store.
    pub data: Arc<BTreeMap<String, serde_json::Value>>,
    /// When the session was created (Unix seconds).
    pub created_at: u64,
    /// When the record expires (Unix seconds).
    pub expires_at: u64,
}

impl From<Record> for SharedRecord {
    fn from(r: Record) -> Self {
        SharedRecord {
            id: r.id,
            data: Arc::new(r.data),
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// The size of `data` encoded as JSON, in bytes, counted without building the text: what
/// `session.max_record_bytes` bounds.
pub fn encoded_size(data: &BTreeMap<String, serde_json::Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Maps with string keys always serialise; a failure would leave a short count.
    let _ = serde_json::to_writer(&mut count, data);
    count.0
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
    /// The record would be larger than the store keeps (`size` and `limit` in bytes, as the
    /// store measures them). Nothing was written: the record as stored before is unchanged.
    #[error("session record of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The record's size.
        size: usize,
        /// The largest size kept.
        limit: usize,
    },
}

/// What one request changed in a session, applied by [`SessionStore::update`] in one
/// atomic step to the record as it is in the store at that moment.
///
/// A refresh of the idle deadline alone (a "touch") is an empty `Changes` with a new
/// `expires_at`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The keys set (`Some`) or removed (`None`).
    pub keys: BTreeMap<String, Option<serde_json::Value>>,
    /// The session was cleared: the stored data is dropped whole before `keys` apply, so
    /// keys written meanwhile by other requests go too.
    pub replace: bool,
    /// The record's new expiry (Unix seconds).
    pub expires_at: u64,
}

impl Changes {
    /// Whether only the expiry changes.
    pub fn is_touch(&self) -> bool {
        self.keys.is_empty() && !self.replace
    }

    /// Applies the changes to `data` (for stores that read, change and write back a record
    /// under a lock or in a transaction).
    pub fn apply_to(&self, data: &mut BTreeMap<String, serde_json::Value>) {
        if self.replace {
            data.clear();
        }
        for (k, v) in &self.keys {
            match v {
                Some(v) => {
                    data.insert(k.clone(), v.clone());
                }
                None => {
                    data.remove(k);
                }
            }
        }
    }
}

/// What [`SessionStore::update`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Updated {
    /// The record existed and now holds the changes.
    Applied,
    /// No live record under that id (never created, deleted, or expired): nothing was
    /// written.
    Gone,
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
/// Run [`conformance::run`](super::conformance::run) in the store's tests (and
/// [`conformance::undecodable_records`](super::conformance::undecodable_records) when the
/// store keeps records encoded).
///
/// # Atomicity
///
/// Sessions change through [`update`](SessionStore::update), never by writing back a
/// whole record that was read earlier, so that concurrent requests of one visitor (a page
/// and its XHRs, two tabs) keep each other's changes. A store must guarantee:
///
/// * **Updates are atomic.** Concurrent updates of one id have the effect of running one
///   after another, each applied to the record as the previous one left it: a key set by
///   one update is never lost to another update that did not touch that key.
/// * **Updates never recreate.** An update of a record that is gone (deleted, or past its
///   `expires_at`) writes nothing and returns [`Updated::Gone`]; an update racing a delete
///   either happens before it or finds the record gone, so a logout stays a logout.
/// * **Create is insert-if-absent.** [`create`](SessionStore::create) never overwrites a
///   record.
///
/// How the backends meet it: Redis with one Lua script per update (`GET`, decode, apply,
/// `SET ... KEEPTTL` or `EXPIREAT`; a missing key returns "gone"), or a `WATCH`/`MULTI`
/// retry loop; SQL with one transaction (`SELECT ... FOR UPDATE`, apply, `UPDATE`) or a
/// single `UPDATE ... WHERE id = $1 AND expires_at > now()` that merges JSON in the
/// database. The memory store applies updates under its shard lock.
///
/// A store may bound a record's size: a create or update that would exceed it fails with
/// [`StoreError::TooLarge`] and leaves the stored record as it was.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new record. If `record.id` is already taken the store must pick a fresh
    /// [`Id::random`] and write it back into `record`. A record whose `expires_at` has
    /// passed may be dropped at once (it is never returned); that is not an error.
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()>;

    /// Reads a record; `None` when it is unknown or expired.
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>>;

    /// Like [`load`](SessionStore::load), with the data in an `Arc` the store may share
    /// with its own copy: what sessions call on every request with a cookie. The default
    /// calls `load`; a store that keeps records in memory overrides it to hand out its copy
    /// without cloning it.
    fn load_shared<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<SharedRecord>> {
        let loading = self.load(id);
        Box::pin(async move { Ok(loading.await?.map(SharedRecord::from)) })
    }

    /// The record `id` (as [`load_shared`](SessionStore::load_shared)) if the store can
    /// answer without waiting, else `None` and sessions call `load_shared`. A store that
    /// keeps records in memory answers here: a request then loads its session without a
    /// future or a timer. The default answers `None`.
    fn load_now(&self, id: &Id) -> Option<Result<Option<SharedRecord>, StoreError>> {
        let _ = id;
        None
    }

    /// Applies `changes` to the live record `id` and sets its `expires_at`, atomically
    /// (see [Atomicity](SessionStore#atomicity)); a record that is gone stays gone.
    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated>;

    /// Deletes a record; deleting an unknown id is not an error.
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()>;
}

impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        (**self).create(record)
    }
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        (**self).load(id)
    }
    fn load_shared<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<SharedRecord>> {
        (**self).load_shared(id)
    }
    fn load_now(&self, id: &Id) -> Option<Result<Option<SharedRecord>, StoreError>> {
        (**self).load_now(id)
    }
    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        (**self).update(id, changes)
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
