//! `[limiter]` in `flagon.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use flagon::config::Secret;
use serde::{Deserialize, Serialize};

/// What a check does when Redis cannot decide it (unreachable, slower than
/// `redis.command_timeout`, erroring, or the circuit breaker open): `[limiter] fail_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FailMode {
    /// Admit the request (counted, with a rate-limited warning).
    Open,
    /// Refuse it with 503 and `Retry-After` (not 429: the client did nothing wrong).
    Closed,
    /// Decide it in process, each limit's count divided by `instances` (the default).
    #[default]
    Local,
}

impl FailMode {
    /// The name written in `fail_mode = "…"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
            FailMode::Local => "local",
        }
    }
}

/// `[limiter.redis]`: how the Redis storage is reached and how long a check may wait.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Prepended to every key the limiter writes; `limiter reset --all` removes the keys under
    /// it and nothing else, so it must not be empty.
    pub key_prefix: String,
    /// How long a connection attempt may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one check may wait for Redis before `fail_mode` decides it.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Failures in a row that open the circuit breaker (checks then skip Redis).
    pub breaker_failures: u32,
    /// While the breaker is open, checks skip Redis; after this long one check probes it.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            key_prefix: "flagon:limiter:".to_owned(),
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(100),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

/// What requests are counted against, by name (`[limiter] key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyKind {
    /// The client IP (default).
    #[default]
    Ip,
    /// The identity a login extension set, else the client IP.
    User,
    /// The header named by `key_header`, else the client IP.
    Header,
}

/// `[limiter]`: see the crate docs' configuration table.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimiterConfig {
    /// Off: no request is limited (the routes and decorators stay).
    pub enabled: bool,
    /// Limits every route gets unless it has a limit of its own or is exempt.
    pub default: Option<String>,
    /// Limits on the whole app: one bucket per key shared by every route (except exempt
    /// ones and core's own), on top of each route's limits.
    pub application: Option<String>,
    /// Whether default limits count each method separately.
    pub default_per_method: bool,
    /// Limits by endpoint, replacing the default for that endpoint.
    pub routes: BTreeMap<String, String>,
    /// What requests are counted against.
    pub key: KeyKind,
    /// The header `key = "header"` reads.
    pub key_header: Option<String>,
    /// IPv6 addresses are grouped by this prefix length.
    pub ipv6_prefix: u8,
    /// IPv4 addresses are grouped by this prefix length.
    pub ipv4_prefix: u8,
    /// The most keys held in memory, over every limit.
    pub max_keys: usize,
    /// How often the sweeper forgets keys whose buckets are full again.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Also send `X-RateLimit-Limit`, `-Remaining` and `-Reset` on 429s.
    pub legacy_headers: bool,
    /// Send `RateLimit` and `RateLimit-Policy` on admitted responses of limited routes too.
    pub headers_on_success: bool,
    /// Where counters live: `memory://` (in process, the default) or
    /// `redis://[user:password@]host:port/db` (the `redis` feature), shared by every
    /// instance. Redacted by `config`.
    pub storage: Secret,
    /// What a check does when Redis cannot decide it.
    pub fail_mode: FailMode,
    /// How many instances share the quota: `fail_mode = "local"` divides each count by it.
    pub instances: u32,
    /// Settings of the Redis storage.
    pub redis: RedisSettings,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            enabled: true,
            default: None,
            application: None,
            default_per_method: false,
            routes: BTreeMap::new(),
            key: KeyKind::Ip,
            key_header: None,
            ipv6_prefix: 64,
            ipv4_prefix: 32,
            max_keys: 100_000,
            sweep_interval: Duration::from_secs(60),
            legacy_headers: false,
            headers_on_success: false,
            storage: Secret::new("memory://"),
            fail_mode: FailMode::Local,
            instances: 1,
            redis: RedisSettings::default(),
        }
    }
}
