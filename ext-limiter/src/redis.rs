//! The Redis storage: GCRA as one Lua script per check, on Redis's own clock, through one
//! multiplexed, self-reconnecting `ConnectionManager`, every call under `command_timeout`,
//! a circuit breaker in front.
//!
//! The script follows rwz/redis-gcra and go-redis/redis_rate, with governor's arithmetic so
//! that both storages answer the same: times are integer microseconds from Redis `TIME`
//! (instances' clocks never matter), a key holds its theoretical arrival time (TAT) and
//! expires when the TAT passes (the bucket is then full, as if the key never existed), so
//! no key outlives its use and none is written without a TTL.

use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::time::Duration;

use flagon::tracing;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};

use crate::config::RedisSettings;
use crate::key::Who;
use crate::parse::Rate;
use crate::response::{Passed, Refusal};
use crate::runtime::{Checked, Counter};
use flagon::breaker::{Breaker, Change};
use flagon::throttle::Throttle;

/// KEYS: one per limit, in order. ARGV[1]: cost; ARGV[2]: 1 to take, 0 to only decide;
/// then per limit its emission interval T (µs) and its burst. Returns `{1, i, remaining}`
/// (admitted; limit `i` has the fewest left), `{0, i, wait}` (refused by limit `i`, admitted
/// after `wait` µs) or `{0, i, -1}` (the cost exceeds limit `i`'s burst: never admitted).
/// A TAT further ahead than a full bucket allows (a clock that went back after a failover,
/// or a foreign value) is clamped to it, so no wait exceeds the period; a non-number or a
/// key of another type is replaced.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local take = ARGV[2] == '1'
local best, best_rem = 0, -1
for i, key in ipairs(KEYS) do
  local T = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  if cost > burst then
    return {0, i, -1}
  end
  local tau = T * (burst - 1)
  local add = T * (cost - 1)
  local v = redis.pcall('GET', key)
  local tat = nil
  if type(v) == 'string' then
    tat = tonumber(v)
  elseif type(v) == 'table' and v.err then
    redis.call('DEL', key)
  end
  if tat == nil or tat < now then
    tat = now
  elseif tat > now + tau + T then
    tat = now + tau + T
  end
  local earliest = tat + add - tau
  if now < earliest then
    return {0, i, earliest - now}
  end
  local nxt = tat + T + add
  if take then
    redis.call('SET', key, string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))
  end
  local rem = math.floor((now + tau + T - nxt) / T)
  if rem < 0 then
    rem = 0
  end
  if best_rem < 0 or rem < best_rem then
    best, best_rem = i, rem
  end
end
return {1, best, best_rem}
";

/// Redis's time (µs) and each key's value, for `limiter status`.
const READ: &str = r"
local t = redis.call('TIME')
local out = {string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))}
for i, key in ipairs(KEYS) do
  local v = redis.pcall('GET', key)
  if type(v) == 'string' then
    out[i + 1] = v
  else
    out[i + 1] = ''
  end
end
return out
";

/// A limit's emission interval in whole microseconds, rounded up (never admits more than
/// the in-process limiter), at least 1.
fn interval_us(rate: &Rate) -> u64 {
    let us = rate.interval().as_nanos().div_ceil(1000);
    u64::try_from(us).unwrap_or(u64::MAX).max(1)
}

/// Escapes glob characters so `SCAN MATCH` sees the text literally.
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

/// The limiter's Redis storage.
pub(crate) struct RedisStore {
    client: redis::Client,
    manager_cfg: ConnectionManagerConfig,
    con: OnceLock<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    cooldown: Duration,
    breaker: Breaker,
    warn: Throttle,
    gcra: redis::Script,
    read: redis::Script,
    fail_mode: &'static str,
}

impl RedisStore {
    /// Validates the URL now; connects on first use, so an app starts while Redis is down.
    pub(crate) fn new(
        url: &str,
        cfg: &RedisSettings,
        fail_mode: &'static str,
    ) -> Result<RedisStore, RedisError> {
        let client = redis::Client::open(url)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        Ok(RedisStore {
            client,
            manager_cfg,
            con: OnceLock::new(),
            prefix: cfg.key_prefix.clone(),
            timeout: cfg.command_timeout,
            cooldown: cfg.breaker_cooldown,
            breaker: Breaker::new(
                cfg.breaker_failures,
                cfg.breaker_cooldown,
                cfg.command_timeout,
            ),
            warn: Throttle::new(Duration::from_secs(10)),
            gcra: redis::Script::new(GCRA),
            read: redis::Script::new(READ),
            fail_mode,
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The `Retry-After` of a 503 in `fail_mode = "closed"`: the breaker's cooldown.
    pub(crate) fn retry_after(&self) -> Duration {
        self.cooldown
    }

    /// Whether checks are skipping Redis (breaker open or probing).
    pub(crate) fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    fn con(&self) -> Result<ConnectionManager, ()> {
        if let Some(c) = self.con.get() {
            return Ok(c.clone());
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager_cfg.clone())
        {
            Ok(c) => Ok(self.con.get_or_init(|| c).clone()),
            Err(e) => {
                self.log_failure("connect", &e.to_string());
                Err(())
            }
        }
    }

    fn log_failure(&self, op: &str, why: &str) {
        if let Some(held) = self.warn.allow() {
            tracing::warn!(
                target: "flagon_limiter",
                op,
                held_back = held,
                fail_mode = self.fail_mode,
                "Redis limiter call failed ({why}); checks are decided by fail_mode"
            );
        }
    }

    /// Runs one call under the breaker and the timeout. Every failure (unreachable, slow,
    /// an error reply) is logged, at most one line per 10 s with the count held back.
    async fn run<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, ()>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allow() {
            self.log_failure(op, "circuit breaker open");
            return Err(());
        }
        let con = self.con()?;
        let outcome = flagon::tokio::time::timeout(self.timeout, call(con)).await;
        let (ok, result) = match outcome {
            Ok(Ok(v)) => (true, Ok(v)),
            Ok(Err(e)) => {
                self.log_failure(op, &e.to_string());
                // An error reply means the server is up; still, the check was not decided.
                (e.code().is_some(), Err(()))
            }
            Err(_) => {
                self.log_failure(op, &format!("no answer within {:?}", self.timeout));
                (false, Err(()))
            }
        };
        match self.breaker.record(ok) {
            Change::Opened => tracing::warn!(
                target: "flagon_limiter",
                "Redis limiter circuit open: checks skip Redis until a probe succeeds"
            ),
            Change::Closed => {
                tracing::info!(target: "flagon_limiter", "Redis limiter reachable again")
            }
            Change::None => {}
        }
        result
    }

    /// `PING`, through the breaker and the timeout.
    pub(crate) async fn ping(&self) -> bool {
        self.run("ping", |mut con| async move {
            redis::cmd("PING").query_async::<()>(&mut con).await
        })
        .await
        .is_ok()
    }

    /// One check of every limit of a set: one `EVALSHA` (the script is loaded again on
    /// `NOSCRIPT`). `Err` when Redis did not decide.
    pub(crate) async fn check(
        &self,
        keys: &[String],
        rates: &[Rate],
        cost: NonZeroU32,
        take: bool,
    ) -> Result<Checked, ()> {
        let reply: Vec<i64> = self
            .run("check", |mut con| async move {
                let mut inv = self.gcra.prepare_invoke();
                for k in keys {
                    inv.key(k);
                }
                inv.arg(cost.get()).arg(u8::from(take));
                for r in rates {
                    inv.arg(interval_us(r)).arg(r.count());
                }
                inv.invoke_async(&mut con).await
            })
            .await?;
        let [allowed, index, n] = reply[..] else {
            self.log_failure("check", "unexpected reply");
            return Err(());
        };
        let Some(rate) = usize::try_from(index - 1).ok().and_then(|i| rates.get(i)) else {
            self.log_failure("check", "reply names no limit");
            return Err(());
        };
        let rate = *rate;
        let interval = rate.interval();
        let burst = rate.count();
        Ok(if allowed == 1 {
            let remaining = u32::try_from(n).unwrap_or(0).min(burst);
            Checked::Passed(Passed {
                rate,
                remaining,
                reset: interval * (burst - remaining),
            })
        } else if n < 0 {
            Checked::Refused(Refusal {
                rate,
                wait: rate.period(),
                reset: rate.period(),
            })
        } else {
            let wait = Duration::from_micros(n.unsigned_abs());
            Checked::Refused(Refusal {
                rate,
                wait,
                reset: wait + interval * (burst - 1),
            })
        })
    }

    fn pattern(&self, who: Option<&Who>) -> String {
        match who {
            Some(w) => {
                let w = w.to_string();
                format!(
                    "{}{}:{}:*",
                    glob_escape(&self.prefix),
                    w.len(),
                    glob_escape(&w)
                )
            }
            None => format!("{}*", glob_escape(&self.prefix)),
        }
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, String> {
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = self
                .run(
                    "scan",
                    |mut con| async move { scan.query_async(&mut con).await },
                )
                .await
                .map_err(|()| "Redis did not answer (see the log)".to_owned())?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Every counter Redis holds for `who`.
    pub(crate) async fn status(&self, who: &Who) -> Result<Vec<Counter>, String> {
        let keys = self.scan(&self.pattern(Some(who))).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys_ref = &keys;
        let values: Vec<Value> = self
            .run("status", |mut con| async move {
                let mut inv = self.read.prepare_invoke();
                for k in keys_ref {
                    inv.key(k);
                }
                inv.invoke_async(&mut con).await
            })
            .await
            .map_err(|()| "Redis did not answer (see the log)".to_owned())?;
        let text = |v: &Value| -> String {
            match v {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => String::new(),
            }
        };
        let now: u64 = values
            .first()
            .and_then(|v| text(v).parse().ok())
            .ok_or("Redis sent no time")?;
        let head = {
            let w = who.to_string();
            format!("{}{}:{w}:", self.prefix, w.len())
        };
        let mut out = Vec::new();
        for (key, v) in keys.iter().zip(values.iter().skip(1)) {
            let Some(counter) = key
                .strip_prefix(&head)
                .and_then(|rest| counter(rest, text(v).parse().ok(), now))
            else {
                continue;
            };
            out.push(counter);
        }
        out.sort_by(|a, b| (&a.scope, &a.method, &a.limit).cmp(&(&b.scope, &b.method, &b.limit)));
        Ok(out)
    }

    /// Unlinks `who`'s counters (every counter under the prefix for `None`), in batches of
    /// `SCAN … COUNT 1000`: never `FLUSHDB`.
    pub(crate) async fn reset(&self, who: Option<&Who>) -> Result<u64, String> {
        let keys = self.scan(&self.pattern(who)).await?;
        let mut removed = 0;
        for chunk in keys.chunks(1000) {
            let mut unlink = redis::cmd("UNLINK");
            unlink.arg(chunk);
            let n: u64 = self
                .run("reset", |mut con| async move {
                    unlink.query_async(&mut con).await
                })
                .await
                .map_err(|()| "Redis did not answer (see the log)".to_owned())?;
            removed += n;
        }
        Ok(removed)
    }
}

/// Reads `{scope}:{method}:{limit}` (what follows the key in a Redis key) and the
/// stored TAT into a counter.
fn counter(rest: &str, tat: Option<u64>, now: u64) -> Option<Counter> {
    let (rest, rate) = rest.rsplit_once(':')?;
    let (scope, method) = rest.rsplit_once(':')?;
    let rate: Rate = rate.parse().ok()?;
    let count = rate.count();
    let t = interval_us(&rate);
    let tau = t * u64::from(count - 1);
    let tat = tat.unwrap_or(now).max(now).min(now + tau + t);
    let remaining = ((now + tau + t - tat) / t).min(u64::from(count));
    let scope = match scope.split_once(':') {
        Some(("r", e)) => format!("route {e}"),
        Some(("d", e)) => format!("decorator {e}"),
        Some(("s", n)) => format!("shared {n}"),
        Some(("k", n)) => format!("keyed {n}"),
        _ if scope == "a" => "application".to_owned(),
        _ => scope.to_owned(),
    };
    Some(Counter {
        limit: rate.to_string(),
        scope,
        method: method.to_owned(),
        remaining: remaining as u32,
        full_in: Duration::from_micros(tat - now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_up_to_microseconds() {
        let r: Rate = "3/second".parse().unwrap();
        assert_eq!(interval_us(&r), 333_334);
        let r: Rate = "100/minute".parse().unwrap();
        assert_eq!(interval_us(&r), 600_000);
        let r: Rate = "4000000000/second".parse().unwrap();
        assert_eq!(interval_us(&r), 1);
    }

    #[test]
    fn counters_read_back_from_keys() {
        let c = counter(
            "r:auth.login:*:5/minute",
            Some(1_000_000 + 24_000_000),
            1_000_000,
        )
        .unwrap();
        assert_eq!(c.scope, "route auth.login");
        assert_eq!(c.limit, "5/minute");
        assert_eq!(c.method, "*");
        // TAT 24 s ahead with T = 12 s, τ = 48 s: (48 + 12 − 24) / 12 = 3 left.
        assert_eq!(c.remaining, 3);
        assert_eq!(c.full_in, Duration::from_secs(24));
        let c = counter("s:up:a:b:POST:10/hour", None, 5).unwrap();
        assert_eq!(c.scope, "shared up:a:b");
        assert_eq!(c.method, "POST");
        assert_eq!(c.limit, "10/hour");
        assert_eq!(c.remaining, 10);
        assert!(counter("garbage", None, 0).is_none());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("app:*[x]?\\"), "app:\\*\\[x\\]\\?\\\\");
    }
}
