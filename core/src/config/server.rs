//! Core's `[server]` section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Core's own `[server]` section.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `host` | `127.0.0.1` | address to bind |
/// | `port` | `5000` | port to bind |
/// | `body_limit` | `2097152` | largest request body in bytes (413 beyond) |
/// | `request_timeout` | `30s` | a request still running after this gets a 503 |
/// | `header_read_timeout` | `10s` | a client must send its headers within this |
/// | `keep_alive_timeout` | `75s` | an idle connection between requests is closed after this |
/// | `shutdown_deadline` | `10s` | how long in-flight requests may finish after a stop signal |
/// | `trusted_proxies` | `[]` | proxy addresses and CIDR ranges whose `X-Forwarded-For` / `Forwarded` are believed ([`client_ip`](crate::client_ip)) |
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind.
    pub port: u16,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// A request still running after this gets a 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A client must send its request headers within this.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// An idle connection between requests is closed after this.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// How long in-flight requests may finish after a stop signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// Proxy addresses and CIDR ranges whose forwarding headers are believed.
    pub trusted_proxies: crate::client_ip::TrustedProxies,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 5000,
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            shutdown_deadline: Duration::from_secs(10),
            trusted_proxies: Default::default(),
        }
    }
}
