//! The `[cache]` config section and its named caches.

use std::collections::BTreeMap;
use std::time::Duration;

use flagon::config::Secret;
use flagon::serde::{Deserialize, Serialize};

/// Which store a cache keeps its values in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", rename_all = "lowercase")]
pub enum BackendKind {
    /// In-process, bounded (moka). The default.
    #[default]
    Memory,
    /// A Redis server (the `redis` feature), shared by every instance of the app.
    Redis,
    /// Stores nothing: every read is a miss. Meant for tests.
    Null,
}

impl BackendKind {
    /// The name written in `backend = "…"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::Null => "null",
        }
    }
}

/// `[cache]` in `flagon.toml`, and each `[cache.named.NAME]`. Every key is optional; the
/// crate docs have the table of defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `memory`, `redis` or `null`.
    pub backend: BackendKind,
    /// The TTL of `set` and friends given [`Ttl::Default`](crate::Ttl::Default).
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// The largest encoded value stored or decoded; a larger one is refused on write and is
    /// a miss (and deleted) on read.
    pub max_value_bytes: usize,
    /// Make `/readyz` fail while the backend is unreachable. Off by default: the app
    /// works without its cache, so an outage is reported in the check's detail only.
    pub fail_readiness: bool,
    /// Do not warn when `backend = "null"` is chosen outside the testing profile.
    pub silence_null_warning: bool,
    /// Settings of the memory backend.
    pub memory: MemoryConfig,
    /// Settings of the Redis backend.
    pub redis: RedisConfig,
    /// The key prefix of the Redis session store (`[session] store = "redis"`), which
    /// uses this section's `redis` settings. Only read on the top-level section.
    pub session_key_prefix: String,
    /// The fragment cache's in-process layer (`cache_fragment` in templates). Only read on
    /// the top-level section.
    pub fragments: FragmentsConfig,
    /// Further caches by name, each a full section of its own (`[cache.named.bulk]`).
    /// Only the top-level section may have them.
    pub named: BTreeMap<String, CacheConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            backend: BackendKind::Memory,
            default_ttl: Duration::from_secs(300),
            max_value_bytes: 1 << 20,
            fail_readiness: false,
            silence_null_warning: false,
            memory: MemoryConfig::default(),
            redis: RedisConfig::default(),
            session_key_prefix: "flagon:session:".to_owned(),
            fragments: FragmentsConfig::default(),
            named: BTreeMap::new(),
        }
    }
}

/// `[cache.memory]`: the in-process backend's bounds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The most entries kept.
    pub max_entries: u64,
    /// The most bytes kept (keys, encoded values and a fixed per-entry overhead).
    pub max_bytes: u64,
    /// How often expired entries are reclaimed while serving.
    #[serde(with = "humantime_serde")]
    pub housekeeping_interval: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            housekeeping_interval: Duration::from_secs(5),
        }
    }
}

/// `[cache.fragments]`: the fragment cache's in-process layer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct FragmentsConfig {
    /// The most bytes of rendered fragments kept (keys, markup and 96 bytes per entry).
    pub max_bytes: u64,
    /// The most fragment names whose generation is kept.
    pub max_names: u64,
    /// With the Redis backend, how often the fragment names' generations are read from
    /// Redis: a fragment forgotten on another instance is re-rendered here within this long.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
}

impl Default for FragmentsConfig {
    fn default() -> Self {
        FragmentsConfig {
            max_bytes: 8 << 20,
            max_names: 10_000,
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// `[cache.redis]`: where the Redis backend connects and how long it waits.
///
/// The limiter and the sessions can share the same server: give each its own `key_prefix`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, or `rediss://…` for TLS (the `redis-tls`
    /// feature; rustls with ring, the system's trust store unless `tls_ca_file` is set).
    pub url: Secret,
    /// A PEM file with the CA certificate(s) to trust for a `rediss://` server instead of
    /// the system's trust store (a private CA, a self-signed server).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Prepended to every key. `clear` removes the keys under it and nothing else, so it
    /// must not be empty and no two caches may share one. Default: `flagon:cache:` for the
    /// default cache, `flagon:cache@NAME:` for a named one.
    pub key_prefix: Option<String>,
    /// How long a connection attempt may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long any one cache call may wait for Redis before it is a miss (or a no-op).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Failures in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// While the breaker is open, calls skip Redis; after this long one call probes it.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: Secret::new("redis://127.0.0.1:6379"),
            tls_ca_file: None,
            key_prefix: None,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(100),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

impl RedisConfig {
    /// The key prefix in effect for the cache called `name` (`None`: the default cache).
    pub fn prefix_for(&self, name: Option<&str>) -> String {
        match (&self.key_prefix, name) {
            (Some(p), _) => p.clone(),
            (None, None) => "flagon:cache:".to_owned(),
            (None, Some(n)) => format!("flagon:cache@{n}:"),
        }
    }
}

/// A problem with one key, reported by [`CacheConfig::validate`]: the key's path below
/// the section and what is wrong.
pub(crate) struct Invalid(pub String, pub String);

impl CacheConfig {
    /// Checks the values serde cannot: `path` is this section's dotted path.
    pub(crate) fn validate(&self, path: &str, nested: bool) -> Result<(), Invalid> {
        let bad = |key: &str, msg: &str| Err(Invalid(format!("{path}.{key}"), msg.to_owned()));
        if nested && !self.named.is_empty() {
            return bad(
                "named",
                "named caches cannot have named caches of their own",
            );
        }
        if self.default_ttl.is_zero() {
            return bad(
                "default_ttl",
                "must be more than 0 (pass `Ttl::Forever` for no expiry)",
            );
        }
        if self.fragments.max_bytes == 0 {
            return bad("fragments.max_bytes", "must be at least 1");
        }
        if self.fragments.max_names == 0 {
            return bad("fragments.max_names", "must be at least 1");
        }
        if self.fragments.sync_interval.is_zero() {
            return bad("fragments.sync_interval", "must be more than 0");
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > u32::MAX as usize / 2 {
            return bad("max_value_bytes", "must be between 1 and 2147483647");
        }
        match self.backend {
            BackendKind::Memory => {
                if self.memory.max_entries == 0 {
                    return bad("memory.max_entries", "must be at least 1");
                }
                if self.memory.max_bytes < self.max_value_bytes as u64 {
                    return bad("memory.max_bytes", "must be at least `max_value_bytes`");
                }
                if self.memory.housekeeping_interval.is_zero() {
                    return bad("memory.housekeeping_interval", "must be more than 0");
                }
            }
            BackendKind::Redis => {
                if self.redis.key_prefix.as_deref() == Some("") {
                    return bad(
                        "redis.key_prefix",
                        "must not be empty (`clear` removes the keys under it)",
                    );
                }
                if self.redis.command_timeout.is_zero() {
                    return bad("redis.command_timeout", "must be more than 0");
                }
                if self.redis.connect_timeout.is_zero() {
                    return bad("redis.connect_timeout", "must be more than 0");
                }
                if self.redis.breaker_failures == 0 {
                    return bad("redis.breaker_failures", "must be at least 1");
                }
                if self.redis.breaker_cooldown.is_zero() {
                    return bad("redis.breaker_cooldown", "must be more than 0");
                }
            }
            BackendKind::Null => {}
        }
        Ok(())
    }
}
