//! The Redis backend: one multiplexed, self-reconnecting `ConnectionManager`, every call
//! under `command_timeout`, a circuit breaker in front.

use std::sync::OnceLock;
use std::time::Duration;

use flagon::bytes::Bytes;
use flagon::tracing;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};

use crate::config::RedisConfig;
use crate::{CacheError, Expire};
use flagon::breaker::{Breaker, Change};
use flagon::throttle::Throttle;

/// Reads keys with the size cap applied on the server: an oversized entry, or one of
/// another Redis type, is unlinked there and never sent. Returns per key the bytes, nil,
/// -1 (oversized) or -2 (not a string).
const GET_CHECKED: &str = r"
local cap = tonumber(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)['ok']
  if t == 'none' then
    out[i] = false
  elseif t ~= 'string' then
    redis.call('UNLINK', k)
    out[i] = -2
  elseif redis.call('STRLEN', k) > cap then
    redis.call('UNLINK', k)
    out[i] = -1
  else
    out[i] = redis.call('GET', k)
  end
end
return out
";

/// `INCRBY` that gives a key it creates the TTL in ARGV[2] (ms; 0 = none).
const INCR: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if existed == 0 and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return v
";

/// Why a call did not complete.
pub(crate) enum Fail {
    /// Redis could not be reached, timed out, or the breaker is open (already logged).
    Down,
    /// Redis answered with an error (the server is up).
    Reply(RedisError),
}

pub(crate) struct RedisBackend {
    client: redis::Client,
    manager_cfg: ConnectionManagerConfig,
    con: OnceLock<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    breaker: Breaker,
    warn: Throttle,
    get_checked: redis::Script,
    incr: redis::Script,
    cache_name: String,
}

/// Milliseconds for `PX`, rounded up so that a sub-millisecond TTL is not "no TTL".
fn px(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms)
        .unwrap_or(u64::MAX)
        .clamp(1, i64::MAX as u64 / 2)
}

/// Escapes glob characters so `SCAN MATCH` sees the prefix literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a Redis backend could not be made from its settings.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    /// The URL does not parse (or names a scheme redis-rs does not know).
    #[error("not a Redis URL: {0}")]
    Url(#[source] RedisError),
    /// `rediss://` without the `redis-tls` feature.
    #[cfg(not(feature = "redis-tls"))]
    #[error("TLS (`rediss://`) needs flagon-cache's `redis-tls` feature")]
    TlsNotBuilt,
    /// `tls_ca_file` with a plain `redis://` URL.
    #[error("a CA file is only used with a `rediss://` URL")]
    CaWithoutTls,
    /// `tls_ca_file` could not be read.
    #[cfg(feature = "redis-tls")]
    #[error("cannot read {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl SettingsError {
    /// The key under `[cache.redis]` the error is about.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            SettingsError::CaWithoutTls => "tls_ca_file",
            #[cfg(feature = "redis-tls")]
            SettingsError::CaFile { .. } => "tls_ca_file",
            _ => "url",
        }
    }
}

/// The client for `cfg`: plain, TLS with the system's roots, or TLS trusting `tls_ca_file`.
fn client(cfg: &RedisConfig) -> Result<redis::Client, SettingsError> {
    let url = cfg.url.expose();
    let tls = url.starts_with("rediss://");
    if cfg.tls_ca_file.is_some() && !tls {
        return Err(SettingsError::CaWithoutTls);
    }
    if !tls {
        return redis::Client::open(url).map_err(SettingsError::Url);
    }
    #[cfg(not(feature = "redis-tls"))]
    {
        Err(SettingsError::TlsNotBuilt)
    }
    #[cfg(feature = "redis-tls")]
    {
        // redis-rs's rustls takes the process's default crypto provider; ring unless the
        // app installed another first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &cfg.tls_ca_file {
            None => redis::Client::open(url).map_err(SettingsError::Url),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| SettingsError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(url, certs).map_err(SettingsError::Url)
            }
        }
    }
}

impl RedisBackend {
    /// Validates the settings now; connects on first use, so an app starts while Redis is
    /// down.
    pub(crate) fn new(
        cfg: &RedisConfig,
        prefix: String,
        cache_name: &str,
    ) -> Result<Self, SettingsError> {
        let client = client(cfg)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        Ok(RedisBackend {
            client,
            manager_cfg,
            con: OnceLock::new(),
            prefix,
            timeout: cfg.command_timeout,
            breaker: Breaker::new(
                cfg.breaker_failures,
                cfg.breaker_cooldown,
                cfg.command_timeout,
            ),
            warn: Throttle::new(Duration::from_secs(10)),
            get_checked: redis::Script::new(GET_CHECKED),
            incr: redis::Script::new(INCR),
            cache_name: cache_name.to_owned(),
        })
    }

    fn con(&self) -> Result<ConnectionManager, Fail> {
        if let Some(c) = self.con.get() {
            return Ok(c.clone());
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager_cfg.clone())
        {
            Ok(c) => Ok(self.con.get_or_init(|| c).clone()),
            Err(e) => {
                self.log_down("connect", &e.to_string());
                Err(Fail::Down)
            }
        }
    }

    pub(crate) fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    fn log_down(&self, op: &str, why: &str) {
        if let Some(held) = self.warn.allow() {
            tracing::warn!(
                cache = %self.cache_name,
                op,
                held_back = held,
                "Redis cache call failed ({why}); serving without the cache"
            );
        }
    }

    /// Runs one call under the breaker and the timeout.
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, Fail>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allow() {
            return Err(Fail::Down);
        }
        let con = self.con()?;
        let outcome = tokio_timeout(self.timeout, call(con)).await;
        let (ok, result) = match outcome {
            Ok(Ok(v)) => (true, Ok(v)),
            // The server answered with an error: it is up.
            Ok(Err(e)) if e.code().is_some() => (true, Err(Fail::Reply(e))),
            Ok(Err(e)) => {
                self.log_down(op, &e.to_string());
                (false, Err(Fail::Down))
            }
            Err(_) => {
                self.log_down(op, &format!("no answer within {:?}", self.timeout));
                (false, Err(Fail::Down))
            }
        };
        match self.breaker.record(ok) {
            Change::Opened => tracing::warn!(
                cache = %self.cache_name,
                "Redis cache circuit open: calls skip Redis until a probe succeeds"
            ),
            Change::Closed => {
                tracing::info!(cache = %self.cache_name, "Redis cache reachable again")
            }
            Change::None => {}
        }
        result
    }

    /// `PING`, through the breaker and the timeout.
    pub(crate) async fn ping(&self) -> Result<(), Fail> {
        self.run("ping", |mut con| async move {
            redis::cmd("PING").query_async::<()>(&mut con).await
        })
        .await
    }

    /// Keys under the prefix (a full `SCAN`) and a line about the server.
    pub(crate) async fn stats(&self) -> Result<(u64, String), Fail> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let (mut cursor, mut keys) = (0u64, 0u64);
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<Vec<u8>>) = self
                .run("stats", |mut con| async move {
                    scan.query_async(&mut con).await
                })
                .await?;
            keys += batch.len() as u64;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let info: String = self
            .run("stats", |mut con| async move {
                redis::cmd("INFO").query_async(&mut con).await
            })
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .unwrap_or("?")
                .trim()
                .to_owned()
        };
        Ok((
            keys,
            format!(
                "redis {} used_memory={}",
                field("redis_version"),
                field("used_memory_human")
            ),
        ))
    }

    pub(crate) fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Per key: `Ok(Some(bytes))`, `Ok(None)` (absent), or `Err(what)` for an entry the
    /// server refused to send and deleted.
    pub(crate) async fn get_many(
        &self,
        keys: &[&str],
        cap: usize,
    ) -> Result<Vec<Result<Option<Bytes>, &'static str>>, Fail> {
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let values: Vec<Value> = self
            .run("get", |mut con| async move {
                let mut inv = self.get_checked.prepare_invoke();
                for k in &full {
                    inv.key(k);
                }
                inv.arg(cap).invoke_async(&mut con).await
            })
            .await?;
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => Ok(Some(Bytes::from(b))),
                Value::Int(-1) => Err("over the size cap"),
                Value::Int(_) => Err("not a Redis string"),
                _ => Ok(None),
            })
            .collect())
    }

    pub(crate) async fn set_many(
        &self,
        items: &[(&str, Bytes)],
        expire: Expire,
    ) -> Result<(), Fail> {
        let mut pipe = redis::pipe();
        for (k, v) in items {
            let c = pipe.cmd("SET").arg(self.key(k)).arg(v.as_ref());
            if let Expire::After(d) = expire {
                c.arg("PX").arg(px(d));
            }
            c.ignore();
        }
        self.run("set", |mut con| async move {
            pipe.query_async::<()>(&mut con).await
        })
        .await
    }

    pub(crate) async fn add(&self, key: &str, bytes: Bytes, expire: Expire) -> Result<bool, Fail> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(bytes.as_ref()).arg("NX");
        if let Expire::After(d) = expire {
            cmd.arg("PX").arg(px(d));
        }
        let r: Option<String> = self
            .run(
                "add",
                |mut con| async move { cmd.query_async(&mut con).await },
            )
            .await?;
        Ok(r.is_some())
    }

    pub(crate) async fn delete_many(&self, keys: &[&str]) -> Result<u64, Fail> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("UNLINK");
        for k in keys {
            cmd.arg(self.key(k));
        }
        self.run("delete", |mut con| async move {
            cmd.query_async(&mut con).await
        })
        .await
    }

    pub(crate) async fn has(&self, key: &str) -> Result<bool, Fail> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(key));
        let n: u64 = self
            .run(
                "has",
                |mut con| async move { cmd.query_async(&mut con).await },
            )
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn incr(
        &self,
        key: &str,
        delta: i64,
        expire: Expire,
    ) -> Result<i64, CacheError> {
        let ttl = match expire {
            Expire::Never => 0,
            Expire::After(d) => px(d),
        };
        let full = self.key(key);
        let r = self
            .run("incr", |mut con| async move {
                self.incr
                    .key(&full)
                    .arg(delta)
                    .arg(ttl)
                    .invoke_async(&mut con)
                    .await
            })
            .await;
        match r {
            Ok(v) => Ok(v),
            Err(Fail::Down) => Err(CacheError::Unavailable("Redis is unreachable")),
            Err(Fail::Reply(e)) if e.to_string().contains("overflow") => {
                Err(CacheError::Overflow(key.to_owned()))
            }
            Err(Fail::Reply(_)) => Err(CacheError::NotACounter(key.to_owned())),
        }
    }

    /// Unlinks every key under the prefix, in batches of `SCAN … COUNT 1000`: never
    /// `FLUSHDB`. Returns how many were removed, or `Down` if Redis failed part way.
    pub(crate) async fn clear(&self) -> Result<u64, Fail> {
        self.delete_matching("").await
    }

    /// Unlinks every key that starts with the prefix followed by `sub`, found with `SCAN`.
    pub(crate) async fn delete_matching(&self, sub: &str) -> Result<u64, Fail> {
        let pattern = format!("{}*", glob_escape(&self.key(sub)));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("clear", |mut con| async move {
                    scan.query_async(&mut con).await
                })
                .await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                let n: u64 = self
                    .run("clear", |mut con| async move {
                        unlink.query_async(&mut con).await
                    })
                    .await?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

async fn tokio_timeout<F: Future>(
    d: Duration,
    f: F,
) -> Result<F::Output, flagon::tokio::time::error::Elapsed> {
    flagon::tokio::time::timeout(d, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn px_rounds_up_and_clamps() {
        assert_eq!(px(Duration::from_nanos(1)), 1);
        assert_eq!(px(Duration::from_millis(1500)), 1500);
        assert_eq!(px(Duration::MAX), i64::MAX as u64 / 2);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("app:*[x]?\\"), "app:\\*\\[x\\]\\?\\\\");
    }
}
