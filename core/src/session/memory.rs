//! The in-memory session store: bounded, least recently used records evicted first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::clock::{Clock, SystemClock};
use super::store::{Id, Record, SessionStore, StoreError, StoreFuture};

/// Core's default store: records in process memory, at most `capacity` of them. When full,
/// expired records go first, then the least recently used record holding only Flagon's own
/// keys (those starting with `_`: a visitor's CSRF secret or flashed messages), and only
/// then the least recently used one: a flood of anonymous visitors cannot push signed-in
/// users out. Lost on restart and not shared between instances: use the `db` or `cache`
/// extension's store for that.
///
/// Records are spread over up to 16 shards by id, each with its own lock and its share of
/// the capacity, so concurrent requests rarely wait on one another; eviction is least
/// recently used within a shard.
///
/// ```
/// use flagon::session::MemoryStore;
/// let store = MemoryStore::new(10_000);
/// assert!(store.is_empty());
/// ```
pub struct MemoryStore {
    capacity: usize,
    clock: Arc<dyn Clock>,
    /// Each shard with its capacity; the capacities add up to `capacity`.
    shards: Box<[(Mutex<Lru>, usize)]>,
}

/// Most shards a store is split into.
const MAX_SHARDS: usize = 16;

#[derive(Default)]
struct Lru {
    records: HashMap<Id, (Record, u64)>,
    /// Use tick → id, oldest first.
    order: BTreeMap<u64, Id>,
    /// The same, for anonymous records only (evicted first).
    anonymous: BTreeMap<u64, Id>,
    tick: u64,
}

/// A record holding only Flagon's own keys (`_csrf_secret`, `_flashes`): a visitor that
/// has not signed in or stored anything of the app's.
fn is_anonymous(record: &Record) -> bool {
    record.data.keys().all(|k| k.starts_with('_'))
}

impl Lru {
    /// Files `id` under a fresh tick, in the anonymous order too when it is anonymous.
    fn stamp(&mut self, id: Id) {
        self.tick += 1;
        let tick = self.tick;
        let Some((record, t)) = self.records.get_mut(&id) else {
            return;
        };
        self.order.remove(t);
        self.anonymous.remove(t);
        *t = tick;
        self.order.insert(tick, id);
        if is_anonymous(record) {
            self.anonymous.insert(tick, id);
        }
    }

    fn touch(&mut self, id: Id) {
        self.stamp(id);
    }

    fn remove(&mut self, id: &Id) -> Option<Record> {
        let (r, t) = self.records.remove(id)?;
        self.order.remove(&t);
        self.anonymous.remove(&t);
        Some(r)
    }

    fn put(&mut self, record: Record, capacity: usize, now: u64) {
        let id = record.id;
        if let Some(slot) = self.records.get_mut(&id) {
            slot.0 = record;
            self.stamp(id);
            return;
        }
        while self.records.len() >= capacity {
            self.evict_one(now);
        }
        self.records.insert(id, (record, 0));
        self.stamp(id);
    }

    /// Removes an expired record among the oldest few, else the least recently used
    /// anonymous one, else the least recently used.
    fn evict_one(&mut self, now: u64) {
        let expired = self.order.values().take(8).copied().find(|id| {
            self.records
                .get(id)
                .is_some_and(|(r, _)| r.expires_at <= now)
        });
        let victim = expired
            .or_else(|| self.anonymous.values().next().copied())
            .or_else(|| self.order.values().next().copied());
        if let Some(id) = victim {
            self.remove(&id);
        }
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions (at least one), on the system clock.
    pub fn new(capacity: usize) -> Self {
        MemoryStore::with_clock(capacity, Arc::new(SystemClock))
    }

    /// A store on an explicit clock (for tests).
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let capacity = capacity.max(1);
        let n = capacity.min(MAX_SHARDS);
        let shards = (0..n)
            .map(|i| {
                let share = capacity / n + usize::from(i < capacity % n);
                (Mutex::new(Lru::default()), share)
            })
            .collect();
        MemoryStore {
            capacity,
            clock,
            shards,
        }
    }

    /// How many records are held (expired ones included until they are evicted or read).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|(m, _)| m.lock().unwrap_or_else(|e| e.into_inner()).records.len())
            .sum()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records the store keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The shard holding `id`, locked, with its capacity.
    fn shard(&self, id: &Id) -> (std::sync::MutexGuard<'_, Lru>, usize) {
        let key = u16::from_le_bytes([id.0[0], id.0[1]]) as usize;
        let (m, cap) = &self.shards[key % self.shards.len()];
        (m.lock().unwrap_or_else(|e| e.into_inner()), *cap)
    }
}

impl SessionStore for MemoryStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = self.clock.unix_now();
            loop {
                let (mut lru, cap) = self.shard(&record.id);
                if !lru.records.contains_key(&record.id) {
                    lru.put(record.clone(), cap, now);
                    return Ok::<(), StoreError>(());
                }
                drop(lru);
                record.id = Id::random();
            }
        })
    }

    fn save<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = self.clock.unix_now();
            let (mut lru, cap) = self.shard(&record.id);
            // Update only: a record deleted meanwhile (logout, rotation) is not recreated.
            if lru.records.contains_key(&record.id) {
                lru.put(record.clone(), cap, now);
            }
            Ok(())
        })
    }

    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let now = self.clock.unix_now();
            let (mut lru, _) = self.shard(id);
            let expired = match lru.records.get(id) {
                None => return Ok(None),
                Some((r, _)) => r.expires_at <= now,
            };
            if expired {
                lru.remove(id);
                return Ok(None);
            }
            lru.touch(*id);
            Ok(lru.records.get(id).map(|(r, _)| r.clone()))
        })
    }

    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.shard(id).0.remove(id);
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

    #[test]
    fn anonymous_records_are_evicted_before_signed_in_ones() {
        block_on(async {
            let clock = ManualClock::new();
            let far = clock.unix_now() + 3600;
            // Capacity 32 is 16 shards of two; put every id in shard 0.
            let store = MemoryStore::with_clock(32, Arc::new(clock));
            let in_shard_0 = |n: u8, key: &str| {
                let mut r = record(far);
                r.id = Id([0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                r.data.insert(key.into(), serde_json::json!(1));
                r
            };
            let mut user = in_shard_0(1, "user_id");
            store.create(&mut user).await.unwrap();
            for n in 2..20 {
                let mut visitor = in_shard_0(n, "_csrf_secret");
                store.create(&mut visitor).await.unwrap();
            }
            assert_eq!(store.len(), 2);
            assert!(
                store.load(&user.id).await.unwrap().is_some(),
                "a flood of visitors does not push the signed-in user out"
            );
        });
    }

    #[test]
    fn evicts_least_recently_used() {
        block_on(async {
            let clock = ManualClock::new();
            let far = clock.unix_now() + 3600;
            // Capacity 32 is 16 shards of two; put all three ids in shard 0.
            let store = MemoryStore::with_clock(32, Arc::new(clock));
            let in_shard_0 = |n: u8| {
                let mut r = record(far);
                r.id = Id([0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                r
            };
            let (mut a, mut b, mut c) = (in_shard_0(1), in_shard_0(2), in_shard_0(3));
            store.create(&mut a).await.unwrap();
            store.create(&mut b).await.unwrap();
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
}
