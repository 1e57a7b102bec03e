//! Caching for Flagon apps (Flask-Caching's role): typed values in an in-process, Redis or
//! null backend, atomic counters, single-flight loading, and a circuit breaker that keeps
//! the app fast while Redis is down.
//!
//! ```
//! use std::time::Duration;
//! use flagon::serde::{Deserialize, Serialize};
//! use flagon_cache::{Cache, CacheHandle, Ttl};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! #[serde(crate = "flagon::serde")]
//! struct Report {
//!     rows: u32,
//! }
//!
//! async fn report(cache: CacheHandle) -> String {
//!     // The loader runs once however many requests miss at the same time.
//!     let r = cache
//!         .get_or_set_with("report", Duration::from_secs(30), || async {
//!             Ok::<_, std::io::Error>(Report { rows: 7 })
//!         })
//!         .await;
//!     match r {
//!         Ok(r) => format!("{} rows", r.rows),
//!         Err(e) => format!("failed: {e}"),
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = flagon::App::builder()
//!     .settings(flagon::testing::testing_config_toml(
//!         "[cache]\ndefault_ttl = \"10m\"\n[cache.memory]\nmax_bytes = 8388608\n",
//!     ))
//!     .register(Cache::new())
//!     .route(flagon::Route::get("/report", report))
//!     .build()
//!     .unwrap();
//! let client = flagon::testing::TestClient::new(&app);
//! assert_eq!(client.get("/report").send().await.text(), "7 rows");
//!
//! // Commands and workers reach the same caches through the app state.
//! let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
//! assert!(cache.has("report").await);
//! cache.set("motd", "hello", Ttl::Forever).await.unwrap();
//! assert_eq!(cache.get::<String>("motd").await.as_deref(), Some("hello"));
//! # });
//! ```
//!
//! # Configuration
//!
//! `[cache]` in `flagon.toml` (or `FLAGON_CACHE__…`); every key is optional. Each
//! `[cache.named.NAME]` section takes the same keys (except `named`) and makes a cache
//! reached with [`Caches::named`]. Durations are written `"500ms"`, `"5m"`, `"1h"`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `backend` | `"memory"` | `"memory"`, `"redis"` (the `redis` feature) or `"null"` (stores nothing; warns outside the testing profile) |
//! | `default_ttl` | `"5m"` | the lifetime [`Ttl::Default`] means; more than 0 |
//! | `max_value_bytes` | `1048576` | the largest encoded value written or decoded |
//! | `fail_readiness` | `false` | make `/readyz` fail while the backend is unreachable (otherwise the check passes and says `reachable: false`) |
//! | `silence_null_warning` | `false` | no warning for `backend = "null"` outside testing |
//! | `session_key_prefix` | `"flagon:session:"` | with the `redis` feature, `[session] store = "redis"` keeps core's sessions in Redis under this prefix, on the `redis` settings below |
//! | `fragments.max_bytes` | `8388608` | the most bytes of rendered fragments kept in-process (top-level section only) |
//! | `fragments.max_names` | `10000` | the most fragment names whose generation is kept |
//! | `fragments.sync_interval` | `"1s"` | with Redis, how often fragment generations are pre-loaded from Redis |
//! | `memory.max_entries` | `100000` | the most entries kept |
//! | `memory.max_bytes` | `67108864` | the most bytes kept: keys, values and 96 bytes per entry; at least `max_value_bytes` |
//! | `memory.housekeeping_interval` | `"5s"` | how often expired entries are reclaimed while serving |
//! | `redis.url` | `"redis://127.0.0.1:6379"` | `redis://[user:pass@]host:port/db`, or `rediss://…` for TLS (the `redis-tls` feature); redacted by `config` |
//! | `redis.tls_ca_file` | none | a PEM file of the CA(s) to trust for `rediss://` instead of the system's trust store |
//! | `redis.key_prefix` | `"flagon:cache:"` (named: `"flagon:cache@NAME:"`) | prepended to every key; not empty; `clear` removes only the keys under it |
//! | `redis.connect_timeout` | `"500ms"` | connection attempts |
//! | `redis.command_timeout` | `"100ms"` | any one call; then it is a miss or a no-op |
//! | `redis.breaker_failures` | `5` | failures in a row that open the circuit breaker |
//! | `redis.breaker_cooldown` | `"1s"` | how long an open breaker skips Redis before one call probes it |
//!
//! An unknown key, a wrong type or a value out of range stops the build with the key's
//! path and where its value came from. The limiter and the sessions can share the Redis
//! server: give each a `key_prefix` of its own (two caches on one server with overlapping
//! prefixes are a build error).
//!
//! # Values
//!
//! Any `Serialize + DeserializeOwned` type. Values are stored as one version byte and
//! MessagePack with field names (rmp-serde): self-describing, so a value written by
//! another type fails to decode instead of misdecoding, a third smaller than JSON, and
//! data only: decoding never runs code (Flask-Caching's pickle, CVE-2021-33026, did). An
//! entry larger than `max_value_bytes` (checked before decoding; on Redis, on the server,
//! before it is sent), of another version, corrupt, or of another type is a miss, is
//! deleted, and is logged (rate-limited). Counters ([`CacheHandle::incr`]) are plain
//! integers, as Redis keeps them.
//!
//! # Failures
//!
//! The app works without its cache, so backend failures are not errors: a read is a
//! miss, a write does nothing, and a warning is logged at most every 10 s per cache. Every
//! Redis call is bounded by `command_timeout`; after `breaker_failures` failures in a row
//! the breaker opens and calls answer at once without Redis, one call probing every
//! `breaker_cooldown` until Redis answers again. Redis may be down when the app starts.
//!
//! # Early refresh
//!
//! [`CacheHandle::get_or_set_early`] keeps a hot key from stampeding when it expires: the
//! entry carries its expiry and how long its load took, and a read near the expiry starts
//! one load in the background (through the single flight) while every reader is served the
//! old value. [`EarlyRefresh::Probabilistic`] is XFetch (the chance grows as expiry nears
//! and with the load's cost, so instances sharing Redis rarely refresh together);
//! [`EarlyRefresh::Ahead`] refreshes on the first read within a fixed window.
//!
//! # View cache
//!
//! [`cached`] (and [`CachedView`] for what a page varies on: the [`flagon::Identity`],
//! the [`flagon::Locale`], named request headers) is a route decorator storing whole
//! responses of `GET`/`HEAD` routes in the default cache. A hit calls no handler.
//! Responses that set a cookie, are `private`/`no-store`, are not `200` (or what
//! [`CachedView::response_filter`] accepts), or read the session (`Vary: Cookie`) without
//! varying on the identity are never stored; a request with an identity bypasses a view
//! that does not vary on it, and [`CachedView::unless`] skips the cache for the requests it
//! picks. [`CacheHandle::delete_cached`] removes one page (every variant of a path, or one
//! query string of it) and [`CacheHandle::purge_cached`] every page of a route.
//!
//! Keys are `view:{len}:{route}:{path}:{query}:{method}[.{varies}]`: the route pattern as
//! written, `=` for a path that is the pattern itself, and otherwise SipHash-1-3-128 digests
//! keyed by a key derived from the app's secret, so they are short whatever the client
//! sends, cannot be steered into colliding without the secret, and are the same on every
//! instance. A response is stored as one flat record (status, headers, body) rather than
//! a serde value, so that a hit is rebuilt with no decoder and no copy of the body.

//! # Fragment cache
//!
//! Templates get `cache_fragment`, used as a `{% call %}` block: the block is rendered
//! once per name and arguments and reused for `ttl` (seconds, or `"5m"`; default
//! `default_ttl`). Put everything the block depends on in the arguments.
//!
//! ```jinja
//! {% call cache_fragment("sidebar", user.id, ttl="5m") %}
//!   {% for post in recent_posts() %}…{% endfor %}
//! {% endcall %}
//! ```
//!
//! [`CacheHandle::forget_fragment`] invalidates a name for all its arguments.
//!
//! **Why fragments are served from an in-process layer.** minijinja calls template
//! functions synchronously, in the middle of a render, so a lookup cannot wait for Redis
//! (blocking a runtime thread on it would stall every request on that thread; re-rendering
//! the page after an async load would pay a round trip and a second render per fragment).
//! So fragments are kept in a bounded in-process layer (`fragments.max_bytes`, a TTL per
//! entry) with every backend but null, and each instance renders its own copy once. What
//! must be shared is invalidation: each name has a random generation that is part of its
//! keys, and forgetting gives it a fresh one. With the memory backend the generation is
//! in-process; with Redis it is written to Redis, and a worker pre-loads the generations of
//! the names it knows every `fragments.sync_interval`, so a fragment forgotten on one
//! instance is re-rendered on the others within that interval. The null backend renders
//! every block every time.
//!
//! # Memoize
//!
//! [`CacheHandle::memoize`] gives a function's [`Memo`]: results cached by the arguments'
//! digest in a versioned namespace, `forget(args)` for one result and `forget_all()` for
//! all of them without scanning keys ([`CacheHandle::delete_memoized`] and
//! [`CacheHandle::delete_memoized_args`] do the same by the function's name).
//!
//! # CLI
//!
//! `cache clear --yes [--cache NAME]` removes the cache's entries (on Redis, only its
//! prefix); `cache stats [--cache NAME]` prints entries, weight and hit rate (memory) or the
//! key count under the prefix and the server's version and memory (Redis); `cache get KEY
//! [--cache NAME]` prints an entry as JSON, for debugging.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `redis` | off | the Redis backend (redis-rs `ConnectionManager` on tokio) |
//! | `redis-tls` | off | `rediss://` URLs: TLS with rustls on ring (no OpenSSL, no aws-lc), the system's roots (rustls-native-certs) or `tls_ca_file`; installs ring as rustls's process default provider unless the app installed one. A `rediss://` URL without it is a build error naming `cache.redis.url` |
//!
//! # Errors
//!
//! [`CacheError`]: a value too large ([`CacheError::TooLarge`]) or not encodable
//! ([`CacheError::Encode`]) on writes; [`CacheError::NotACounter`],
//! [`CacheError::Overflow`] and [`CacheError::Unavailable`] from `incr`/`decr`. Loader
//! errors of [`CacheHandle::get_or_set_with`] come back as the loader's own type, shared.
//!
//! # Why not moka's own `get_with` for single flight
//!
//! moka coalesces loads in the memory backend only; the Redis backend needs the same
//! guarantee, so [`CacheHandle::get_or_set_with`] has its own per-instance single flight
//! over both.

mod cli;
mod codec;
mod config;
mod early;
mod error;
mod flight;
mod fragment;
mod handle;
mod memo;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod session;
mod stored;
mod view;
mod view_key;

use std::collections::BTreeMap;
use std::sync::Arc;

use flagon::config::Profile;
use flagon::{Extension, Setup, SetupError, tracing};

pub use config::{BackendKind, CacheConfig, FragmentsConfig, MemoryConfig, RedisConfig};
pub use early::EarlyRefresh;
pub use error::CacheError;
pub use handle::{CacheHandle, CacheStats, Caches, MemoryUsage, Ttl};
pub use memo::Memo;
#[cfg(feature = "redis")]
pub use session::RedisSessionStore;
pub use view::{CachedView, cached};

use handle::{Backend, Expire, Inner};

/// The cache extension: reads `[cache]`, provides [`Caches`] as app state and makes
/// [`CacheHandle`] an extractor.
///
/// ```
/// let app = flagon::App::builder()
///     .settings(flagon::testing::testing_config())
///     .register(flagon_cache::Cache::new())
///     .build()
///     .unwrap();
/// assert!(flagon_cache::Caches::of(app.handle()).is_some());
/// ```
#[derive(Debug, Default)]
pub struct Cache {
    _private: (),
}

impl Cache {
    /// The extension, configured from `[cache]`.
    pub fn new() -> Self {
        Cache::default()
    }
}

fn build_one(
    app: &Setup<'_>,
    name: Option<&str>,
    cfg: &CacheConfig,
) -> Result<CacheHandle, SetupError> {
    let path = match name {
        None => "cache".to_owned(),
        Some(n) => format!("cache.named.{n}"),
    };
    let backend = match cfg.backend {
        BackendKind::Memory => Backend::Memory(memory::MemoryBackend::new(&cfg.memory)),
        BackendKind::Null => {
            if app.profile() != Profile::Testing && !cfg.silence_null_warning {
                tracing::warn!(
                    "`{path}.backend = \"null\"` caches nothing (set `{path}.silence_null_warning = true` if that is meant)"
                );
            }
            Backend::Null
        }
        #[cfg(feature = "redis")]
        BackendKind::Redis => {
            let prefix = cfg.redis.prefix_for(name);
            let r = redis::RedisBackend::new(&cfg.redis, prefix, name.unwrap_or("default"))
                .map_err(|e| {
                    app.config_error(&format!("{path}.redis.{}", e.key()), e.to_string())
                })?;
            Backend::Redis(Box::new(r))
        }
        #[cfg(not(feature = "redis"))]
        BackendKind::Redis => {
            return Err(app.config_error(
                &format!("{path}.backend"),
                "the Redis backend needs flagon-cache's `redis` feature",
            ));
        }
    };
    let key = view_key::HashKey(view_hash_key(app));
    let fragments = name.is_none().then(|| {
        Arc::new(fragment::Fragments::new(
            &cfg.fragments,
            key,
            cfg.default_ttl,
            cfg.backend != BackendKind::Null,
        ))
    });
    Ok(CacheHandle {
        inner: Arc::new(Inner {
            name: name.unwrap_or("default").to_owned(),
            kind: cfg.backend,
            backend,
            default_ttl: cfg.default_ttl,
            max_value_bytes: cfg.max_value_bytes,
            flights: flight::Flights::default(),
            bad_entry_log: flagon::throttle::Throttle::new(std::time::Duration::from_secs(10)),
            reads: Default::default(),
            view_key: key,
            fragments,
        }),
    })
}

/// The view cache's digest key: 128 bits derived from the app's secret, the same on every
/// instance that shares it.
fn view_hash_key(app: &Setup<'_>) -> [u8; 16] {
    let k = app.derive_key("flagon-cache.view-key");
    let mut out = [0; 16];
    out.copy_from_slice(&k.as_bytes()[..16]);
    out
}

/// Redis caches on one server must not have prefixes where one starts with the other, or
/// one's `clear` would remove the other's keys.
fn check_prefixes(app: &Setup<'_>, cfg: &CacheConfig) -> Result<(), SetupError> {
    let mut seen: Vec<(String, String, String)> = Vec::new(); // (path, url, prefix)
    let all =
        std::iter::once((None, cfg)).chain(cfg.named.iter().map(|(n, c)| (Some(n.as_str()), c)));
    for (name, c) in all {
        if c.backend != BackendKind::Redis {
            continue;
        }
        let path = name.map_or("cache".to_owned(), |n| format!("cache.named.{n}"));
        let prefix = c.redis.prefix_for(name);
        let url = c.redis.url.expose().to_owned();
        for (other, other_url, other_prefix) in &seen {
            if *other_url == url
                && (other_prefix.starts_with(&prefix) || prefix.starts_with(other_prefix.as_str()))
            {
                return Err(app.config_error(
                    &format!("{path}.redis.key_prefix"),
                    format!("`{prefix}` overlaps `{other}`'s `{other_prefix}` on the same server"),
                ));
            }
        }
        seen.push((path, url, prefix));
    }
    Ok(())
}

async fn readiness(handle: &CacheHandle, fail: bool) -> flagon::health::CheckOutcome {
    use flagon::health::CheckOutcome;
    let reachable = handle.reachable().await;
    let mut out = if reachable || !fail {
        CheckOutcome::healthy()
    } else {
        CheckOutcome::unhealthy(format!(
            "the {} cache's backend is unreachable",
            handle.name()
        ))
    };
    out = out
        .detail("backend", handle.backend().as_str())
        .detail("reachable", reachable);
    if handle.backend() == BackendKind::Redis {
        out = out.detail("circuit_open", handle.circuit_open());
    }
    if let Some(u) = handle.memory_usage() {
        out = out.detail("entries", u.entries).detail("bytes", u.bytes);
    }
    out
}

impl Extension for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let cfg: CacheConfig = app.config("cache")?;
        if let Err(config::Invalid(key, msg)) = cfg.validate("cache", false) {
            return Err(app.config_error(&key, msg));
        }
        for (name, c) in &cfg.named {
            let path = format!("cache.named.{name}");
            let ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(app.config_error(&path, "a cache name is letters, digits and `_`"));
            }
            if let Err(config::Invalid(key, msg)) = c.validate(&path, true) {
                return Err(app.config_error(&key, msg));
            }
        }
        check_prefixes(app, &cfg)?;

        let default = build_one(app, None, &cfg)?;
        let mut named = BTreeMap::new();
        for (name, c) in &cfg.named {
            named.insert(name.clone(), build_one(app, Some(name), c)?);
        }
        let caches = app.provide(Caches { default, named });

        #[cfg(feature = "redis")]
        {
            if cfg.session_key_prefix.is_empty() {
                return Err(app.config_error("cache.session_key_prefix", "must not be empty"));
            }
            let cache_prefix = cfg.redis.prefix_for(None);
            if cfg.backend == BackendKind::Redis
                && (cache_prefix.starts_with(&cfg.session_key_prefix)
                    || cfg.session_key_prefix.starts_with(&cache_prefix))
            {
                return Err(app.config_error(
                    "cache.session_key_prefix",
                    format!("overlaps the cache's key prefix `{cache_prefix}`, whose `clear` would remove sessions"),
                ));
            }
            let (redis_cfg, prefix) = (cfg.redis.clone(), cfg.session_key_prefix.clone());
            app.session_store("redis", move |_ctx| {
                let backend = redis::RedisBackend::new(&redis_cfg, prefix.clone(), "sessions")?;
                Ok(Arc::new(session::RedisSessionStore::new(backend)))
            });
        }

        cli::register(app);

        if let Some(frags) = caches.default().inner.fragments.clone() {
            app.template_function(
                "cache_fragment",
                move |state: &flagon::minijinja::State,
                      args: flagon::minijinja::value::Rest<flagon::minijinja::Value>| {
                    frags.call(state, args)
                },
            );
        }
        if cfg.backend == BackendKind::Redis {
            let (handle, every) = (caches.default().clone(), cfg.fragments.sync_interval);
            app.worker("cache_fragment_sync", move |ctx| {
                let handle = handle.clone();
                async move {
                    let mut tick = flagon::tokio::time::interval(every);
                    tick.set_missed_tick_behavior(flagon::tokio::time::MissedTickBehavior::Delay);
                    loop {
                        flagon::tokio::select! {
                            _ = tick.tick() => handle.sync_fragments().await,
                            () = ctx.stopping() => return Ok(()),
                        }
                    }
                }
            });
        }

        // One readiness check per cache: `cache`, `cache_NAME`.
        let configs = std::iter::once(&cfg).chain(cfg.named.values());
        for (handle, c) in caches.all().zip(configs) {
            let check = if handle.name() == "default" {
                "cache".to_owned()
            } else {
                format!("cache_{}", handle.name())
            };
            let (handle, fail) = (handle.clone(), c.fail_readiness);
            let timeout = c.redis.command_timeout * 2;
            app.health_check(&check, timeout, move |_app| {
                let handle = handle.clone();
                async move { readiness(&handle, fail).await }
            });
        }

        let memory: Vec<(CacheHandle, std::time::Duration)> = caches
            .all()
            .zip(std::iter::once(&cfg).chain(cfg.named.values()))
            .filter(|(h, _)| h.backend() == BackendKind::Memory)
            .map(|(h, c)| (h.clone(), c.memory.housekeeping_interval))
            .collect();
        if !memory.is_empty() {
            let memory = Arc::new(memory);
            app.worker("cache_housekeeping", move |ctx| {
                let memory = memory.clone();
                async move {
                    let every = memory.iter().map(|(_, d)| *d).min().unwrap_or_default();
                    let mut tick = flagon::tokio::time::interval(every);
                    tick.set_missed_tick_behavior(flagon::tokio::time::MissedTickBehavior::Delay);
                    loop {
                        flagon::tokio::select! {
                            _ = tick.tick() => {
                                for (h, _) in memory.iter() {
                                    h.run_pending_tasks().await;
                                }
                            }
                            () = ctx.stopping() => return Ok(()),
                        }
                    }
                }
            });
        }
        Ok(())
    }
}
