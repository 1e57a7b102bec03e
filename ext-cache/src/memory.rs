//! The in-process backend on moka: bounded by entries and by bytes, a TTL per entry.
//!
//! moka's `sync` cache, not its `future` one: every operation here is CPU work on
//! lock-free structures (there is no eviction listener that could block), so it needs no
//! future, and a read can be answered synchronously (the view cache answers a hit without
//! building a future for it). The methods stay `async` for the callers' sake.

use std::time::{Duration, Instant};

use flagon::bytes::Bytes;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache as Moka;

use std::sync::Arc;

use crate::config::MemoryConfig;
use crate::{CacheError, Expire};
use crate::{codec, stored};

/// Fixed cost counted per entry on top of its key and value (moka's node, the `String`
/// and `Bytes` headers).
pub(crate) const ENTRY_OVERHEAD: u64 = 96;

#[derive(Clone)]
pub(crate) struct Entry {
    bytes: Bytes,
    /// A stored response, parsed once when it was stored (the view cache's), so that a
    /// hit clones it instead of parsing the record again. It shares the record's bytes.
    parsed: Option<Arc<stored::Parts>>,
    /// `None`: kept until evicted.
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

struct PerEntry;

impl PerEntry {
    fn left(v: &Entry, now: Instant) -> Option<Duration> {
        v.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

impl Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _: &String, v: &Entry, now: Instant) -> Option<Duration> {
        Self::left(v, now)
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Self::left(v, now)
    }
}

pub(crate) struct MemoryBackend {
    cache: Moka<String, Entry>,
}

fn deadline(expire: Expire) -> Option<Instant> {
    match expire {
        Expire::Never => None,
        // `checked_add`: a far deadline that does not fit an `Instant` is "never".
        Expire::After(d) => Instant::now().checked_add(d),
    }
}

impl MemoryBackend {
    pub(crate) fn new(cfg: &MemoryConfig) -> Self {
        // moka bounds one quantity, the total weight. Weighing each entry at least
        // `max_bytes / max_entries` bounds both: never more than `max_bytes` in all, and
        // never more than `max_entries` entries.
        let floor = cfg.max_bytes.div_ceil(cfg.max_entries).max(1);
        let cache = Moka::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(move |k: &String, v: &Entry| {
                let parsed = v.parsed.as_ref().map_or(0, |p| p.weight());
                let w =
                    (k.len() as u64 + v.bytes.len() as u64 + parsed + ENTRY_OVERHEAD).max(floor);
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntry)
            .build();
        MemoryBackend { cache }
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Bytes> {
        self.get_now(key)
    }

    /// Stores a view-cache record with its parsed form.
    pub(crate) fn set_parsed(
        &self,
        key: &str,
        parsed: Arc<stored::Parts>,
        bytes: Bytes,
        expire: Expire,
    ) {
        let entry = Entry {
            bytes,
            parsed: Some(parsed),
            expires_at: deadline(expire),
        };
        self.cache.insert(key.to_owned(), entry);
    }

    /// The live entry under `key`, synchronously: its bytes and, for a view-cache record,
    /// its parsed form.
    pub(crate) fn get_entry_now(&self, key: &str) -> Option<(Bytes, Option<Arc<stored::Parts>>)> {
        self.cache.get(key).map(|e| (e.bytes, e.parsed))
    }

    /// The live bytes under `key`, synchronously. moka checks the entry's own deadline
    /// on every read (`PerEntry`), so an expired entry is never returned.
    pub(crate) fn get_now(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key).map(|e| e.bytes)
    }

    pub(crate) async fn set(&self, key: &str, bytes: Bytes, expire: Expire) {
        let entry = Entry {
            bytes,
            parsed: None,
            expires_at: deadline(expire),
        };
        self.cache.insert(key.to_owned(), entry);
    }

    pub(crate) async fn add(&self, key: &str, bytes: Bytes, expire: Expire) -> bool {
        let entry = Entry {
            bytes,
            parsed: None,
            expires_at: deadline(expire),
        };
        let now = Instant::now();
        let res = self
            .cache
            .entry(key.to_owned())
            .and_compute_with(move |old| match old {
                Some(e) if e.value().live(now) => Op::Nop,
                _ => Op::Put(entry),
            });
        matches!(
            res,
            moka::ops::compute::CompResult::Inserted(_)
                | moka::ops::compute::CompResult::ReplacedWith(_)
        )
    }

    pub(crate) async fn delete(&self, key: &str) -> bool {
        self.cache
            .remove(key)
            .is_some_and(|e| e.live(Instant::now()))
    }

    pub(crate) async fn incr(
        &self,
        key: &str,
        delta: i64,
        expire: Expire,
    ) -> Result<i64, CacheError> {
        let now = Instant::now();
        let mut outcome: Result<i64, CacheError> = Err(CacheError::Unavailable("not computed"));
        let out = &mut outcome;
        self.cache.entry(key.to_owned()).and_compute_with(|old| {
            match old.map(|e| e.into_value()).filter(|e| e.live(now)) {
                None => {
                    *out = Ok(delta);
                    Op::Put(Entry {
                        bytes: delta.to_string().into(),
                        parsed: None,
                        expires_at: deadline(expire),
                    })
                }
                Some(e) => match codec::parse_counter(&e.bytes) {
                    None => {
                        *out = Err(CacheError::NotACounter(key.to_owned()));
                        Op::Nop
                    }
                    Some(n) => match n.checked_add(delta) {
                        None => {
                            *out = Err(CacheError::Overflow(key.to_owned()));
                            Op::Nop
                        }
                        Some(v) => {
                            *out = Ok(v);
                            // The counter keeps its deadline, as Redis `INCRBY` does.
                            Op::Put(Entry {
                                bytes: v.to_string().into(),
                                parsed: None,
                                expires_at: e.expires_at,
                            })
                        }
                    },
                },
            }
        });
        outcome
    }

    pub(crate) async fn clear(&self) -> u64 {
        self.cache.run_pending_tasks();
        let n = self.cache.entry_count();
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
        n
    }

    /// Removes the live entries whose key starts with `prefix`; returns how many.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> u64 {
        let keys: Vec<std::sync::Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in keys {
            n += u64::from(self.delete(&k).await);
        }
        n
    }

    pub(crate) async fn housekeeping(&self) {
        self.cache.run_pending_tasks();
    }

    /// (entries, weighted size in bytes), exact after `housekeeping`.
    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}
