//! [`CacheHandle`]: the typed API handlers, hooks, workers and commands call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flagon::axum::extract::FromRequestParts;
use flagon::bytes::Bytes;
use flagon::http::request::Parts;
use flagon::serde::Serialize;
use flagon::serde::de::DeserializeOwned;
use flagon::{AppHandle, HttpError, tracing};
use futures_util::FutureExt;

use crate::CacheError;
use crate::codec::{self, Undecodable};
use crate::config::BackendKind;
use crate::flight::Flights;
use crate::memory::MemoryBackend;
use flagon::throttle::Throttle;

/// How long a value is kept.
///
/// `Duration`s convert into it, so `cache.set("k", &v, Duration::from_secs(60))` works.
/// A zero duration keeps nothing: the write removes any value the key had. A duration
/// too far in the future to represent is treated as [`Ttl::Forever`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ttl {
    /// The cache's `default_ttl`.
    #[default]
    Default,
    /// This long from the write.
    After(Duration),
    /// Until evicted (memory) or deleted.
    Forever,
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::After(d)
    }
}

/// A resolved, non-zero lifetime.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Expire {
    Never,
    After(Duration),
}

pub(crate) enum Backend {
    Memory(MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(Box<crate::redis::RedisBackend>),
    Null,
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) kind: BackendKind,
    pub(crate) backend: Backend,
    pub(crate) default_ttl: Duration,
    pub(crate) max_value_bytes: usize,
    pub(crate) flights: Flights,
    pub(crate) bad_entry_log: Throttle,
    pub(crate) reads: Reads,
    /// The key of the view cache's digests (from the app's secret).
    pub(crate) view_key: crate::view_key::HashKey,
    /// The fragment layer (the default cache only).
    pub(crate) fragments: Option<Arc<crate::fragment::Fragments>>,
}

/// The hit and miss counters, on a cache line of their own: every read of every worker
/// writes one, and sharing a line with the fields a read only loads (the backend, the
/// digest key) would make each write evict those from the other workers' caches.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Reads {
    pub(crate) hits: std::sync::atomic::AtomicU64,
    pub(crate) misses: std::sync::atomic::AtomicU64,
}

/// One cache: cheap to clone, shared by every clone.
///
/// In a handler it is an extractor for the default cache; [`Caches`] (through
/// `Ext<Caches>` or [`AppHandle::state`]) has the named ones. Reads never fail: a value
/// that is absent, expired, undecodable or unreachable is `None`. Writes report only
/// the caller's mistakes ([`CacheError::TooLarge`], [`CacheError::Encode`]); a backend
/// that is down makes them no-ops, with a rate-limited warning.
///
/// ```
/// use std::time::Duration;
/// use flagon_cache::{Cache, CacheHandle, Ttl};
///
/// async fn views(cache: CacheHandle) -> String {
///     let n = cache.incr("views", 1).await.unwrap_or(0);
///     cache.set("last", &n, Duration::from_secs(60)).await.ok();
///     format!("{n} views")
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = flagon::App::builder()
///     .settings(flagon::testing::testing_config())
///     .register(Cache::new())
///     .route(flagon::Route::get("/", views))
///     .build()
///     .unwrap();
/// let client = flagon::testing::TestClient::new(&app);
/// assert_eq!(client.get("/").send().await.text(), "1 views");
/// assert_eq!(client.get("/").send().await.text(), "2 views");
/// let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
/// assert_eq!(cache.get::<i64>("last").await, Some(2));
/// # let _ = Ttl::Forever;
/// # });
/// ```
#[derive(Clone)]
pub struct CacheHandle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

/// Entries and weight of a memory cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Live entries (approximate until [`CacheHandle::run_pending_tasks`]).
    pub entries: u64,
    /// Their weight in bytes, as bounded by `memory.max_bytes`.
    pub bytes: u64,
}

impl CacheHandle {
    /// The cache's name: `default`, or its key under `[cache.named]`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The backend it uses.
    pub fn backend(&self) -> BackendKind {
        self.inner.kind
    }

    /// Whether the Redis circuit breaker is open (calls skip Redis). Always `false` for
    /// the other backends.
    pub fn circuit_open(&self) -> bool {
        match &self.inner.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.circuit_open(),
            _ => false,
        }
    }

    /// Whether the backend answers now: a `PING` for Redis (through the breaker, so an
    /// open circuit is "no" without a call), always `true` for memory and null.
    pub async fn reachable(&self) -> bool {
        match &self.inner.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.ping().await.is_ok(),
            _ => true,
        }
    }

    /// The memory backend's entries and weight; `None` for the other backends.
    pub fn memory_usage(&self) -> Option<MemoryUsage> {
        match &self.inner.backend {
            Backend::Memory(m) => {
                let (entries, bytes) = m.usage();
                Some(MemoryUsage { entries, bytes })
            }
            _ => None,
        }
    }

    /// Runs the memory backend's pending maintenance (eviction to the bounds, removal of
    /// expired entries) now. Serving runs it periodically; other backends need none.
    pub async fn run_pending_tasks(&self) {
        if let Backend::Memory(m) = &self.inner.backend {
            m.housekeeping().await;
        }
    }

    pub(crate) fn expire(&self, ttl: Ttl) -> Option<Expire> {
        match ttl {
            Ttl::Default => Some(Expire::After(self.inner.default_ttl)),
            Ttl::After(d) if d.is_zero() => None,
            Ttl::After(d) => Some(Expire::After(d)),
            Ttl::Forever => Some(Expire::Never),
        }
    }

    pub(crate) fn count(&self, hit: bool) {
        let c = if hit {
            &self.inner.reads.hits
        } else {
            &self.inner.reads.misses
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// What this cache holds and how it has done since the app started (for `cache stats`).
    pub async fn stats(&self) -> CacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        let mut s = CacheStats {
            hits: self.inner.reads.hits.load(Relaxed),
            misses: self.inner.reads.misses.load(Relaxed),
            entries: None,
            bytes: None,
            server: None,
        };
        match &self.inner.backend {
            Backend::Memory(m) => {
                m.housekeeping().await;
                let (entries, bytes) = m.usage();
                (s.entries, s.bytes) = (Some(entries), Some(bytes));
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                if let Ok((keys, server)) = r.stats().await {
                    (s.entries, s.server) = (Some(keys), Some(server));
                }
            }
            Backend::Null => {}
        }
        s
    }

    /// The entry under `key` as JSON, whatever type wrote it (for `cache get`): `None` when
    /// absent, `Err` with the reason when it does not decode (the entry is left alone).
    pub async fn inspect(&self, key: &str) -> Option<Result<flagon::serde_json::Value, String>> {
        let bytes = self.raw_get_many(&[key]).await.pop().flatten()?;
        if bytes.first() == Some(&crate::stored::TAG_RESPONSE) {
            return Some(
                crate::stored::decode(&bytes, self.inner.max_value_bytes)
                    .map(|p| p.describe())
                    .map_err(|e| e.to_string()),
            );
        }
        Some(codec::decode(&bytes, self.inner.max_value_bytes).map_err(|e| e.to_string()))
    }

    pub(crate) fn bad_entry(&self, key: &str, why: &dyn std::fmt::Display) {
        if let Some(held) = self.inner.bad_entry_log.allow() {
            tracing::warn!(
                cache = %self.inner.name,
                key,
                held_back = held,
                "cache entry is not a value of the asked type ({why}); treated as a miss and deleted"
            );
        }
    }

    async fn raw_get_many(&self, keys: &[&str]) -> Vec<Option<Bytes>> {
        match &self.inner.backend {
            Backend::Memory(m) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(m.get(k).await);
                }
                out
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => match r.get_many(keys, self.inner.max_value_bytes).await {
                Ok(values) => values
                    .into_iter()
                    .zip(keys)
                    .map(|(v, k)| {
                        v.unwrap_or_else(|why| {
                            self.bad_entry(k, &why);
                            None
                        })
                    })
                    .collect(),
                Err(_) => vec![None; keys.len()],
            },
            Backend::Null => vec![None; keys.len()],
        }
    }

    /// The stored bytes under `key`, counted as a hit or a miss (for records this crate
    /// lays out itself, such as the view cache's responses).
    pub(crate) async fn get_raw(&self, key: &str) -> Option<Bytes> {
        let got = match &self.inner.backend {
            Backend::Memory(m) => m.get(key).await,
            _ => self.raw_get_many(&[key]).await.pop().flatten(),
        };
        self.count(got.is_some());
        got
    }

    /// Stores already-encoded bytes under `key` (checked against `max_value_bytes`).
    pub(crate) async fn set_raw(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Ttl,
    ) -> Result<(), CacheError> {
        if bytes.len() > self.inner.max_value_bytes {
            return Err(CacheError::TooLarge {
                size: bytes.len(),
                max: self.inner.max_value_bytes,
            });
        }
        let Some(expire) = self.expire(ttl) else {
            self.delete(key).await;
            return Ok(());
        };
        match &self.inner.backend {
            Backend::Memory(m) => m.set(key, bytes, expire).await,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let _ = r.set_many(&[(key, bytes)], expire).await;
            }
            Backend::Null => {}
        }
        Ok(())
    }

    /// Removes every entry whose key starts with `prefix` (below the cache's own Redis
    /// prefix): on Redis found with `SCAN`, in memory by walking the entries.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.delete_prefix(prefix).await),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r
                .delete_matching(prefix)
                .await
                .map_err(|_| CacheError::Unavailable("Redis failed while deleting entries")),
            Backend::Null => Ok(0),
        }
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T, Undecodable> {
        codec::decode(bytes, self.inner.max_value_bytes).inspect_err(|why| self.bad_entry(key, why))
    }

    /// The value under `key`, or `None` when it is absent, expired, of another type,
    /// corrupt, or the backend cannot be reached. An entry that does not decode is deleted.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let got = self.raw_get_many(&[key]).await.pop().flatten();
        let Some(bytes) = got else {
            self.count(false);
            return None;
        };
        match self.decode(key, &bytes) {
            Ok(v) => {
                self.count(true);
                Some(v)
            }
            Err(_) => {
                self.count(false);
                self.delete(key).await;
                None
            }
        }
    }

    /// The values under `keys`, in order, each as [`get`](Self::get) would return it.
    /// On Redis this is one round trip.
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Vec<Option<T>> {
        let raw = self.raw_get_many(keys).await;
        let mut bad = Vec::new();
        let out = raw
            .into_iter()
            .zip(keys)
            .map(|(b, k)| {
                let v = b.and_then(|b| self.decode(k, &b).map_err(|_| bad.push(*k)).ok());
                self.count(v.is_some());
                v
            })
            .collect();
        if !bad.is_empty() {
            self.delete_many(&bad).await;
        }
        out
    }

    /// Whether `key` holds a live value (of any type).
    pub async fn has(&self, key: &str) -> bool {
        match &self.inner.backend {
            Backend::Memory(m) => m.get(key).await.is_some(),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.has(key).await.unwrap_or(false),
            Backend::Null => false,
        }
    }

    /// Stores `value` under `key` for `ttl` (see [`Ttl`]), replacing what was there.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<(), CacheError> {
        let bytes = codec::encode(value, self.inner.max_value_bytes)?;
        let Some(expire) = self.expire(ttl.into()) else {
            self.delete(key).await;
            return Ok(());
        };
        match &self.inner.backend {
            Backend::Memory(m) => m.set(key, bytes, expire).await,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let _ = r.set_many(&[(key, bytes)], expire).await;
            }
            Backend::Null => {}
        }
        Ok(())
    }

    /// Stores several values with one `ttl`; on Redis, one pipelined round trip. Every
    /// value is encoded before anything is written, so an error writes nothing.
    pub async fn set_many<K: AsRef<str>, T: Serialize>(
        &self,
        items: &[(K, T)],
        ttl: impl Into<Ttl>,
    ) -> Result<(), CacheError> {
        let mut encoded = Vec::with_capacity(items.len());
        for (k, v) in items {
            encoded.push((k.as_ref(), codec::encode(v, self.inner.max_value_bytes)?));
        }
        let Some(expire) = self.expire(ttl.into()) else {
            let keys: Vec<&str> = encoded.iter().map(|(k, _)| *k).collect();
            self.delete_many(&keys).await;
            return Ok(());
        };
        match &self.inner.backend {
            Backend::Memory(m) => {
                for (k, b) in encoded {
                    m.set(k, b, expire).await;
                }
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let _ = r.set_many(&encoded, expire).await;
            }
            Backend::Null => {}
        }
        Ok(())
    }

    /// Stores `value` only if `key` holds no live value, atomically (Redis `SET NX`).
    /// `Ok(true)` when it was stored; `Ok(false)` when the key was taken, the TTL is zero,
    /// or the backend is unreachable.
    pub async fn add<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<bool, CacheError> {
        let bytes = codec::encode(value, self.inner.max_value_bytes)?;
        let Some(expire) = self.expire(ttl.into()) else {
            return Ok(false);
        };
        Ok(match &self.inner.backend {
            Backend::Memory(m) => m.add(key, bytes, expire).await,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.add(key, bytes, expire).await.unwrap_or(false),
            Backend::Null => false,
        })
    }

    /// Removes `key`; `true` if it held a value.
    pub async fn delete(&self, key: &str) -> bool {
        self.delete_many(&[key]).await > 0
    }

    /// Removes `keys`; returns how many held a value (on Redis, one `UNLINK`).
    pub async fn delete_many(&self, keys: &[&str]) -> u64 {
        match &self.inner.backend {
            Backend::Memory(m) => {
                let mut n = 0;
                for k in keys {
                    n += u64::from(m.delete(k).await);
                }
                n
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.delete_many(keys).await.unwrap_or(0),
            Backend::Null => 0,
        }
    }

    /// Adds `delta` to the counter under `key`, atomically, and returns the new value. An
    /// absent key starts at 0 and gets the default TTL; an existing counter keeps its TTL.
    ///
    /// A counter is read back with `get::<i64>` (or any integer type). A key written by
    /// [`set`](Self::set) holds an encoded value, not a counter:
    /// [`CacheError::NotACounter`]. The backend being unreachable is
    /// [`CacheError::Unavailable`], since no value can be made up.
    pub async fn incr(&self, key: &str, delta: i64) -> Result<i64, CacheError> {
        let expire = Expire::After(self.inner.default_ttl);
        match &self.inner.backend {
            Backend::Memory(m) => m.incr(key, delta, expire).await,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.incr(key, delta, expire).await,
            Backend::Null => Err(CacheError::Unavailable("the null backend stores nothing")),
        }
    }

    /// Subtracts `delta`: [`incr`](Self::incr) with `-delta`.
    pub async fn decr(&self, key: &str, delta: i64) -> Result<i64, CacheError> {
        let neg = delta
            .checked_neg()
            .ok_or_else(|| CacheError::Overflow(key.to_owned()))?;
        self.incr(key, neg).await
    }

    /// Removes every entry of this cache, and nothing else: on Redis, the keys under this
    /// cache's `key_prefix`, found with `SCAN` and removed with `UNLINK` in batches (never
    /// `FLUSHDB`). Returns how many were removed (approximate for memory), or
    /// [`CacheError::Unavailable`] if Redis failed part way.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.clear().await),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r
                .clear()
                .await
                .map_err(|_| CacheError::Unavailable("Redis failed during clear")),
            Backend::Null => Ok(0),
        }
    }

    /// The value under `key`, or the one `loader` makes, stored for `ttl`.
    ///
    /// Concurrent calls for one key on one instance run one loader (single flight) and
    /// all get its outcome: its value, or its error, shared (`Arc<E>`) and not cached.
    /// The load belongs to no caller: if the one that started it is dropped, the others
    /// carry it on. A value too large to store is still returned (and logged).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let app = flagon::App::builder().settings(flagon::testing::testing_config())
    /// #     .register(flagon_cache::Cache::new()).build().unwrap();
    /// let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
    /// let v: Result<u32, _> = cache
    ///     .get_or_set_with("answer", flagon_cache::Ttl::Default, || async {
    ///         Ok::<_, std::io::Error>(42)
    ///     })
    ///     .await;
    /// assert_eq!(v.unwrap(), 42);
    /// assert_eq!(cache.get::<u32>("answer").await, Some(42));
    /// # });
    /// ```
    pub async fn get_or_set_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        loader: F,
    ) -> Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if let Some(v) = self.get::<T>(key).await {
            return Ok(v);
        }
        let ttl = ttl.into();
        let this = self.clone();
        let owned_key = key.to_owned();
        let mut waiter = self.inner.flights.join_or_start(key, move || {
            async move {
                // A load that finished just before this one started may have stored it.
                match this.get::<T>(&owned_key).await {
                    Some(v) => Ok(v),
                    None => this.load_and_store(&owned_key, ttl, loader).await,
                }
            }
            .boxed()
        });
        waiter.wait().await
    }

    /// Loads in flight in [`get_or_set_with`](Self::get_or_set_with).
    pub fn loads_in_flight(&self) -> usize {
        self.inner.flights.len()
    }

    async fn load_and_store<T, E, F, Fut>(&self, key: &str, ttl: Ttl, load: F) -> Result<T, Arc<E>>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let v = load().await.map_err(Arc::new)?;
        if let Err(e) = self.set(key, &v, ttl).await {
            tracing::warn!(cache = %self.inner.name, key, "loaded value not cached: {e}");
        }
        Ok(v)
    }
}

/// [`CacheHandle::stats`]: hits and misses of `get`/`get_many` on this instance since it
/// started, and what the backend holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found none (including undecodable entries and backend failures).
    pub misses: u64,
    /// Memory: live entries. Redis: keys under the prefix. `None` for null, or Redis down.
    pub entries: Option<u64>,
    /// Memory: their weight in bytes.
    pub bytes: Option<u64>,
    /// Redis: the server's version and memory use.
    pub server: Option<String>,
}

impl CacheStats {
    /// Hits over reads, `None` before the first read.
    pub fn hit_rate(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }
}

/// Every cache of the app: the default one and the named ones. Provided as app state.
#[derive(Debug)]
pub struct Caches {
    pub(crate) default: CacheHandle,
    pub(crate) named: BTreeMap<String, CacheHandle>,
}

impl Caches {
    /// The caches of an app that registered [`Cache`](crate::Cache).
    pub fn of(app: &AppHandle) -> Option<Arc<Caches>> {
        app.state::<Caches>()
    }

    /// The cache configured by `[cache]`.
    pub fn default(&self) -> &CacheHandle {
        &self.default
    }

    /// The cache configured by `[cache.named.NAME]`.
    pub fn named(&self, name: &str) -> Option<&CacheHandle> {
        self.named.get(name)
    }

    /// Every cache, the default one first.
    pub fn all(&self) -> impl Iterator<Item = &CacheHandle> {
        std::iter::once(&self.default).chain(self.named.values())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CacheHandle {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppHandle::from_request_parts(parts, state).await?;
        Caches::of(&app).map(|c| c.default.clone()).ok_or_else(|| {
            HttpError::internal(
                "CacheHandle needs the cache extension: register `flagon_cache::Cache::new()`",
            )
        })
    }
}
