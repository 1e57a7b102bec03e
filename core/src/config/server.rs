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
/// | `write_timeout` | `30s` | a connection whose response makes no progress for this is closed |
/// | `max_connections` | ¾ of the file-descriptor limit | connections open at once; more wait unaccepted |
/// | `shutdown_deadline` | `10s` | how long in-flight requests and workers may finish after a stop signal |
/// | `shutdown_hooks_timeout` | `10s` | how long shutdown hooks may run, after that |
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
    /// A connection whose response makes no progress for this (the client stopped reading)
    /// is closed.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Connections open at once; beyond it new connections wait in the backlog, unread.
    /// Unset: three quarters of the process's file-descriptor limit (see
    /// [`ServerConfig::effective_max_connections`]).
    pub max_connections: Option<usize>,
    /// How long in-flight requests and background workers may finish after a stop signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// How long the shutdown hooks may run together, after requests and workers are done
    /// (or cut).
    #[serde(with = "humantime_serde")]
    pub shutdown_hooks_timeout: Duration,
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
            write_timeout: Duration::from_secs(30),
            max_connections: None,
            shutdown_deadline: Duration::from_secs(10),
            shutdown_hooks_timeout: Duration::from_secs(10),
            trusted_proxies: Default::default(),
        }
    }
}

impl ServerConfig {
    /// `max_connections`, or when unset three quarters of the soft limit on open file
    /// descriptors (the rest is left for files, pools and logs); 768 when the limit cannot be
    /// read. Never below 1.
    pub fn effective_max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| fd_limit().map_or(768, |n| n / 4 * 3))
            .max(1)
    }
}

/// The soft limit on open file descriptors (Linux: from `/proc/self/limits`).
fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_fd_limit(&limits)
}

fn parse_fd_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(usize::MAX / 2),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_defaults_to_three_quarters_of_the_fd_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63432                63432                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_fd_limit(limits), Some(1024));
        assert_eq!(parse_fd_limit("nothing"), None);
        let c = ServerConfig::default();
        let n = c.effective_max_connections();
        assert!(n >= 1);
        if let Some(limit) = fd_limit() {
            assert_eq!(n, limit / 4 * 3);
        }
        let set = ServerConfig {
            max_connections: Some(5),
            ..ServerConfig::default()
        };
        assert_eq!(set.effective_max_connections(), 5);
    }
}
