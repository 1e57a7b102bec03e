//! `[limiter]` in `flagon.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
        }
    }
}
