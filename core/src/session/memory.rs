//! The in-memory session store: bounded by count and by weight, with a probation queue so
//! one-shot sessions cannot push out the sessions of returning visitors.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use super::clock::{Clock, SystemClock};
use super::config::{DEFAULT_MAX_RECORD_BYTES, DEFAULT_MEMORY_MAX_BYTES};
use super::store::{
    Changes, Id, Record, SessionStore, SharedRecord, StoreError, StoreFuture, Updated, encoded_size,
};

/// Core's default store: records in process memory, bounded three ways: at most
/// `capacity` records, at most [`max_bytes`](MemoryStore::max_bytes) of them in total
/// (their estimated size in memory), and at most
/// [`max_record_bytes`](MemoryStore::max_record_bytes) of encoded data per record (a
/// bigger create or update fails with [`StoreError::TooLarge`] and changes nothing).
/// Lost on restart and not shared between instances: use the `db` or `cache` extension's
/// store for that.
///
/// # Eviction
///
/// A new record starts on probation. It moves to the main queue the first time it is
/// loaded again, that is when its visitor comes back with the cookie. When the store is
/// full, it removes, in this order:
///
/// 1. an expired record among the oldest few of either queue;
/// 2. the oldest record on probation, once probation holds more than a tenth of the
///    store (by count or by weight), or when the main queue is empty;
/// 3. otherwise the least recently used record of the main queue.
///
/// So a flood of requests that each create a session and never come back (a crawler, an
/// attacker) can take at most a tenth of the store from returning visitors; after that the
/// one-shot sessions only evict one another. Making a session "return" costs the sender a
/// second request with the cookie, and each such session then evicts at most one other:
/// junk cannot evict real visitors faster than it is created. This does not depend on what
/// the sessions hold.
///
/// Records are spread over up to 16 shards by id, each with its own lock and its share of
/// the bounds, so concurrent requests rarely wait on one another. Updates are applied under
/// the shard lock, which makes them atomic as the [`SessionStore`] contract requires.
///
/// ```
/// use flagon::session::MemoryStore;
/// let store = MemoryStore::new(10_000).max_bytes(64 << 20).max_record_bytes(16 << 10);
/// assert!(store.is_empty());
/// ```
pub struct MemoryStore {
    capacity: usize,
    max_bytes: usize,
    max_record_bytes: usize,
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
}

/// Most shards a store is split into.
const MAX_SHARDS: usize = 16;
/// A shard's weight share holds at least this many records of the largest size.
const RECORDS_PER_SHARD: usize = 8;
/// How many of the oldest records of each queue are looked at for an expired one.
const EXPIRED_SCAN: usize = 8;
/// Estimated bytes per record besides its data: the entry, its hash-map slot, its queue
/// slot, the id.
const RECORD_OVERHEAD: usize = 160;
/// Estimated bytes per map entry besides its key and value (a B-tree slot, the key's
/// `String`).
const ENTRY_OVERHEAD: usize = 48;

struct Entry {
    /// Its data is shared with the sessions that loaded it (copied when one writes).
    record: SharedRecord,
    /// Position in its queue.
    tick: u64,
    weight: usize,
    /// In the main queue (loaded again since it was created), else on probation.
    main: bool,
}

#[derive(Default)]
struct Shard {
    records: HashMap<Id, Entry, BuildHasherDefault<IdHasher>>,
    /// Records not loaded since they were created, oldest first.
    probation: BTreeMap<u64, Id>,
    /// Records loaded again, least recently used first.
    main: BTreeMap<u64, Id>,
    tick: u64,
    /// Total weight of the records held.
    weight: usize,
    /// Weight of the records on probation.
    probation_weight: usize,
    capacity: usize,
    max_bytes: usize,
}

/// Hashes a session id by folding its bytes. An id is 128 bits from a CSPRNG, and only ids
/// the server made reach the store (a cookie's id is checked against its MAC first), so
/// its bits are already a uniform hash no client can steer: SipHash would cost a couple of
/// hundred instructions per lookup and add no protection.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(23) ^ u64::from_le_bytes(word);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Estimated bytes a record holding `data` takes in memory.
fn weight(data: &BTreeMap<String, serde_json::Value>) -> usize {
    RECORD_OVERHEAD + map_weight(data.iter())
}

fn map_weight<'a>(entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>) -> usize {
    entries
        .map(|(k, v)| ENTRY_OVERHEAD + k.len() + value_weight(v))
        .sum()
}

fn value_weight(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    std::mem::size_of::<Value>()
        + match v {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(value_weight).sum(),
            Value::Object(map) => map_weight(map.iter()),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

impl Shard {
    fn queue(&mut self, main: bool) -> &mut BTreeMap<u64, Id> {
        if main {
            &mut self.main
        } else {
            &mut self.probation
        }
    }

    /// Moves `id` to the young end of its queue, or of the main queue when `promote`.
    fn stamp(&mut self, id: Id, promote: bool) {
        let Some(entry) = self.records.get_mut(&id) else {
            return;
        };
        // Already the youngest record (the last stamped or inserted) and staying in its
        // queue, as on a visitor's consecutive requests: moving it would change no order,
        // so the two queue updates are skipped.
        if entry.tick == self.tick && (entry.main || !promote) {
            return;
        }
        self.tick += 1;
        let tick = self.tick;
        let (old_tick, was_main, w) = (entry.tick, entry.main, entry.weight);
        entry.tick = tick;
        entry.main |= promote;
        let main = entry.main;
        self.queue(was_main).remove(&old_tick);
        if was_main != main {
            self.probation_weight -= w;
        }
        self.queue(main).insert(tick, id);
    }

    fn remove(&mut self, id: &Id) -> Option<SharedRecord> {
        let entry = self.records.remove(id)?;
        self.queue(entry.main).remove(&entry.tick);
        self.weight -= entry.weight;
        if !entry.main {
            self.probation_weight -= entry.weight;
        }
        Some(entry.record)
    }

    /// Adds a record the shard does not hold, evicting others until it fits. The caller
    /// has checked that `weight` is within the shard's share.
    fn insert(&mut self, record: SharedRecord, weight: usize, main: bool, now: u64) {
        while !self.records.is_empty()
            && (self.records.len() >= self.capacity || self.weight + weight > self.max_bytes)
        {
            self.evict_one(now);
        }
        let id = record.id;
        self.tick += 1;
        let tick = self.tick;
        self.queue(main).insert(tick, id);
        self.weight += weight;
        if !main {
            self.probation_weight += weight;
        }
        self.records.insert(
            id,
            Entry {
                record,
                tick,
                weight,
                main,
            },
        );
    }

    /// Whether probation holds more than its tenth of the shard.
    fn probation_over_share(&self) -> bool {
        self.probation.len() * 10 > self.capacity || self.probation_weight * 10 > self.max_bytes
    }

    /// Removes one record, as the type's docs describe.
    fn evict_one(&mut self, now: u64) {
        let expired = |q: &BTreeMap<u64, Id>| {
            q.values().take(EXPIRED_SCAN).copied().find(|id| {
                self.records
                    .get(id)
                    .is_some_and(|e| e.record.expires_at <= now)
            })
        };
        let oldest = |q: &BTreeMap<u64, Id>| q.values().next().copied();
        let victim = expired(&self.probation)
            .or_else(|| expired(&self.main))
            .or_else(|| {
                if self.main.is_empty() || self.probation_over_share() {
                    oldest(&self.probation).or_else(|| oldest(&self.main))
                } else {
                    oldest(&self.main).or_else(|| oldest(&self.probation))
                }
            });
        if let Some(id) = victim {
            self.remove(&id);
        }
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions (at least one), on the system clock,
    /// with the default byte bounds (those of `session.memory_max_bytes` and
    /// `session.max_record_bytes`).
    pub fn new(capacity: usize) -> Self {
        MemoryStore::with_clock(capacity, Arc::new(SystemClock))
    }

    /// A store on an explicit clock (for tests).
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            capacity: capacity.max(1),
            max_bytes: DEFAULT_MEMORY_MAX_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            clock,
            shards: Box::new([]),
        }
        .reshard()
    }

    /// Bounds the estimated memory of all records together (at least 1 KiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1024);
        self.reshard()
    }

    /// Bounds each record's data, encoded as JSON (at least 64 bytes).
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes.max(64);
        self.reshard()
    }

    /// Splits the (empty) store into shards: as many as the bounds allow, so that each
    /// shard has room for several records of the largest size.
    fn reshard(mut self) -> Self {
        let by_bytes = self.max_bytes / (RECORDS_PER_SHARD * self.max_record_bytes);
        let n = self.capacity.min(MAX_SHARDS).min(by_bytes.max(1));
        self.shards = (0..n)
            .map(|i| {
                Mutex::new(Shard {
                    capacity: self.capacity / n + usize::from(i < self.capacity % n),
                    max_bytes: self.max_bytes / n,
                    ..Shard::default()
                })
            })
            .collect();
        self
    }

    /// How many records are held (expired ones included until they are evicted or read).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|m| lock(m).records.len()).sum()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records the store keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The estimated memory the records take, in bytes; never more than the bound set with
    /// [`max_bytes`](MemoryStore::max_bytes).
    pub fn weight(&self) -> usize {
        self.shards.iter().map(|m| lock(m).weight).sum()
    }

    /// The live record `id`, its data shared; an expired one is removed. Getting a record
    /// moves it out of probation: its visitor came back.
    fn live(&self, id: &Id) -> Option<SharedRecord> {
        let now = self.clock.unix_now();
        let mut shard = self.shard(id);
        let record = match shard.records.get(id) {
            None => return None,
            Some(e) if e.record.expires_at <= now => None,
            Some(e) => Some(e.record.clone()),
        };
        let Some(record) = record else {
            shard.remove(id);
            return None;
        };
        shard.stamp(*id, true);
        Some(record)
    }

    /// The shard holding `id`, locked.
    fn shard(&self, id: &Id) -> MutexGuard<'_, Shard> {
        let key = u16::from_le_bytes([id.0[0], id.0[1]]) as usize;
        lock(&self.shards[key % self.shards.len()])
    }

    /// Checks a record's data against both size bounds, returning its weight.
    fn check_size(
        &self,
        data: &BTreeMap<String, serde_json::Value>,
        shard: &Shard,
    ) -> Result<usize, StoreError> {
        let size = encoded_size(data);
        if size > self.max_record_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.max_record_bytes,
            });
        }
        let w = weight(data);
        if w > shard.max_bytes {
            return Err(StoreError::TooLarge {
                size: w,
                limit: shard.max_bytes,
            });
        }
        Ok(w)
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionStore for MemoryStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = self.clock.unix_now();
            loop {
                let mut shard = self.shard(&record.id);
                if !shard.records.contains_key(&record.id) {
                    let w = self.check_size(&record.data, &shard)?;
                    shard.insert(SharedRecord::from(record.clone()), w, false, now);
                    return Ok(());
                }
                drop(shard);
                record.id = Id::random();
            }
        })
    }

    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            Ok(self.live(id).map(|r| Record {
                id: r.id,
                data: (*r.data).clone(),
                created_at: r.created_at,
                expires_at: r.expires_at,
            }))
        })
    }

    fn load_shared<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<SharedRecord>> {
        Box::pin(async move { Ok(self.live(id)) })
    }

    fn load_now(&self, id: &Id) -> Option<Result<Option<SharedRecord>, StoreError>> {
        Some(Ok(self.live(id)))
    }

    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        Box::pin(async move {
            let now = self.clock.unix_now();
            let mut shard = self.shard(id);
            let (main, mut record) = match shard.records.get_mut(id) {
                None => return Ok(Updated::Gone),
                Some(e) if e.record.expires_at <= now => {
                    shard.remove(id);
                    return Ok(Updated::Gone);
                }
                Some(e) if changes.is_touch() => {
                    e.record.expires_at = changes.expires_at;
                    shard.stamp(*id, false);
                    return Ok(Updated::Applied);
                }
                Some(e) => (e.main, e.record.clone()),
            };
            changes.apply_to(Arc::make_mut(&mut record.data));
            record.expires_at = changes.expires_at;
            // Refused for size before anything is removed: the stored record stays.
            let w = self.check_size(&record.data, &shard)?;
            shard.remove(id);
            shard.insert(record, w, main, now);
            Ok(Updated::Applied)
        })
    }

    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.shard(id).remove(id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ManualClock;

    fn record(expires_at: u64) -> Record {
        Record {
            id: Id::random(),
            data: Default::default(),
            created_at: 0,
            expires_at,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A record whose id falls in shard 0 of a 16-shard store.
    fn in_shard_0(n: u16, expires_at: u64) -> Record {
        let mut r = record(expires_at);
        let [a, b] = n.to_le_bytes();
        r.id = Id([0, 0, a, b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        r
    }

    #[test]
    fn shared_data_handed_out_is_never_changed_by_an_update() {
        block_on(async {
            let clock = ManualClock::new();
            let store = MemoryStore::with_clock(10, Arc::new(clock.clone()));
            let mut r = record(clock.unix_now() + 60);
            r.data.insert("n".into(), serde_json::json!(1));
            store.create(&mut r).await.unwrap();
            let before = store.load_shared(&r.id).await.unwrap().expect("present");
            let mut changes = Changes {
                expires_at: clock.unix_now() + 60,
                ..Changes::default()
            };
            changes.keys.insert("n".into(), Some(serde_json::json!(2)));
            assert_eq!(
                store.update(&r.id, &changes).await.unwrap(),
                Updated::Applied
            );
            assert_eq!(
                before.data["n"],
                serde_json::json!(1),
                "the copy handed out stays"
            );
            let after = store.load_shared(&r.id).await.unwrap().expect("present");
            assert_eq!(after.data["n"], serde_json::json!(2));
            assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, *after.data);
        });
    }

    #[test]
    fn one_shot_sessions_do_not_evict_returning_visitors_whatever_they_hold() {
        block_on(async {
            let clock = ManualClock::new();
            let far = clock.unix_now() + 3600;
            // 16 shards of 100; every id below is in shard 0.
            let store = MemoryStore::with_clock(1600, Arc::new(clock));
            let mut regulars = Vec::new();
            for n in 0..60 {
                let mut r = in_shard_0(n, far);
                r.data.insert("user_id".into(), serde_json::json!(n));
                store.create(&mut r).await.unwrap();
                store.load(&r.id).await.unwrap().expect("just created");
                regulars.push(r.id);
            }
            // 5,000 visits that each store something an app would (not only `_` keys)
            // and never come back.
            for n in 1000..6000 {
                let mut junk = in_shard_0(n, far);
                junk.data.insert("visits".into(), serde_json::json!(1));
                store.create(&mut junk).await.unwrap();
            }
            assert_eq!(store.len(), 100, "the shard is full");
            for id in &regulars {
                assert!(
                    store.load(id).await.unwrap().is_some(),
                    "a returning visitor's session survives the flood"
                );
            }
        });
    }

    #[test]
    fn the_main_queue_evicts_least_recently_used() {
        block_on(async {
            let clock = ManualClock::new();
            let far = clock.unix_now() + 3600;
            // 16 shards of two; every id below is in shard 0.
            let store = MemoryStore::with_clock(32, Arc::new(clock));
            let (mut a, mut b, mut c) =
                (in_shard_0(1, far), in_shard_0(2, far), in_shard_0(3, far));
            store.create(&mut a).await.unwrap();
            store.create(&mut b).await.unwrap();
            store.load(&b.id).await.unwrap().unwrap();
            store.load(&a.id).await.unwrap().unwrap(); // a is now more recent than b
            store.create(&mut c).await.unwrap();
            assert_eq!(store.len(), 2);
            assert!(store.load(&b.id).await.unwrap().is_none());
            assert!(store.load(&a.id).await.unwrap().is_some());
        });
    }

    #[test]
    fn expired_records_are_not_returned() {
        block_on(async {
            let clock = ManualClock::new();
            let store = MemoryStore::with_clock(4, Arc::new(clock.clone()));
            let mut r = record(clock.unix_now() + 10);
            store.create(&mut r).await.unwrap();
            assert!(store.load(&r.id).await.unwrap().is_some());
            clock.advance(std::time::Duration::from_secs(11));
            assert!(store.load(&r.id).await.unwrap().is_none());
            assert!(store.is_empty());
        });
    }

    fn flashes(n: usize, bytes: usize) -> serde_json::Value {
        serde_json::json!(vec!["x".repeat(bytes); n])
    }

    #[test]
    fn an_oversized_record_is_refused_and_the_previous_one_kept() {
        block_on(async {
            let clock = ManualClock::new();
            let store =
                MemoryStore::with_clock(100, Arc::new(clock.clone())).max_record_bytes(4096);
            let mut big = record(clock.unix_now() + 60);
            big.data.insert("_flashes".into(), flashes(64, 800));
            let err = store.create(&mut big).await.unwrap_err();
            assert!(
                matches!(err, StoreError::TooLarge { limit: 4096, .. }),
                "{err}"
            );
            assert!(store.is_empty());

            let mut r = record(clock.unix_now() + 60);
            r.data.insert("n".into(), serde_json::json!(1));
            store.create(&mut r).await.unwrap();
            let mut changes = Changes {
                expires_at: clock.unix_now() + 60,
                ..Changes::default()
            };
            changes
                .keys
                .insert("_flashes".into(), Some(flashes(64, 800)));
            let err = store.update(&r.id, &changes).await.unwrap_err();
            assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
            let kept = store
                .load(&r.id)
                .await
                .unwrap()
                .expect("the record is kept");
            assert_eq!(kept.data, r.data, "unchanged by the refused update");
        });
    }

    #[test]
    fn the_store_stays_within_its_weight() {
        block_on(async {
            let clock = ManualClock::new();
            let far = clock.unix_now() + 3600;
            let max = 512 << 10;
            let store = MemoryStore::with_clock(10_000, Arc::new(clock))
                .max_bytes(max)
                .max_record_bytes(16 << 10);
            for _ in 0..2000 {
                let mut r = record(far);
                r.data.insert("_flashes".into(), flashes(16, 800));
                store.create(&mut r).await.unwrap();
                assert!(store.weight() <= max, "{} > {max}", store.weight());
            }
            let held = store.len();
            assert!(
                held < 2000 && held > 10,
                "bounded by weight, not count: {held}"
            );
            let per_record = store.weight() / held;
            assert!(
                per_record > 16 * 800,
                "weight counts the data: {per_record}"
            );
        });
    }

    #[test]
    fn a_touch_moves_only_the_expiry() {
        block_on(async {
            let clock = ManualClock::new();
            let store = MemoryStore::with_clock(10, Arc::new(clock.clone()));
            let mut r = record(clock.unix_now() + 10);
            r.data.insert("n".into(), serde_json::json!(1));
            store.create(&mut r).await.unwrap();
            let touch = Changes {
                expires_at: clock.unix_now() + 100,
                ..Changes::default()
            };
            assert_eq!(store.update(&r.id, &touch).await.unwrap(), Updated::Applied);
            clock.advance(std::time::Duration::from_secs(50));
            let loaded = store.load(&r.id).await.unwrap().expect("still live");
            assert_eq!(loaded.expires_at, r.expires_at + 90);
            assert_eq!(loaded.data, r.data);
        });
    }
}
