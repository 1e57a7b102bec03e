//! The fragment cache: a part of a template rendered once and reused, by name and
//! arguments, with invalidation by name (Flask-Caching's `{% cache %}` block).
//!
//! ```jinja
//! {% call cache_fragment("sidebar", user.id, ttl="5m") %}
//!   … expensive markup …
//! {% endcall %}
//! ```
//!
//! minijinja calls template functions synchronously, in the middle of a render, so a
//! fragment lookup cannot wait for Redis. Fragments are therefore kept in an in-process
//! layer of their own (bounded by bytes, a TTL per entry) on every backend but null, and
//! each instance renders its own: a lookup is a hash-map read, never a network call. What
//! is shared is the invalidation: each fragment name has a generation, part of its keys;
//! [`CacheHandle::forget_fragment`] gives the name a fresh random one, so its old entries
//! are never read again (they expire or are evicted). On the memory backend the generation
//! lives in-process; on Redis it is also written to Redis, and a worker pre-loads every
//! known name's generation from there every `fragments.sync_interval`, so a fragment
//! forgotten on one instance is re-rendered on the others within that interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flagon::minijinja::value::{Kwargs, Rest};
use flagon::minijinja::{Error, ErrorKind, State, Value};

use crate::config::FragmentsConfig;
use crate::view_key::HashKey;
use crate::{CacheHandle, Ttl};

#[derive(Clone)]
struct Entry {
    html: Arc<str>,
    expires_at: Option<Instant>,
}

struct PerEntry;

impl moka::Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _: &String, v: &Entry, now: Instant) -> Option<Duration> {
        v.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

/// The fragment layer of the default cache.
pub(crate) struct Fragments {
    entries: moka::sync::Cache<String, Entry>,
    /// Each name's generation (bounded: names come from templates).
    generations: moka::sync::Cache<Arc<str>, u64>,
    key: HashKey,
    default_ttl: Duration,
    /// `false` for the null backend: every fragment is rendered.
    enabled: bool,
}

/// Fixed cost counted per entry on top of its key and markup.
const ENTRY_OVERHEAD: u64 = 96;

fn bad_call(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

impl Fragments {
    pub(crate) fn new(
        cfg: &FragmentsConfig,
        key: HashKey,
        default_ttl: Duration,
        enabled: bool,
    ) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|k: &String, v: &Entry| {
                let w = k.len() as u64 + v.html.len() as u64 + ENTRY_OVERHEAD;
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntry)
            .build();
        Fragments {
            entries,
            generations: moka::sync::Cache::new(cfg.max_names),
            key,
            default_ttl,
            enabled,
        }
    }

    /// The generation of `name`, a fresh random one for a name not seen yet.
    pub(crate) fn generation(&self, name: &str) -> u64 {
        if let Some(g) = self.generations.get(name) {
            return g;
        }
        self.generations
            .get_with(Arc::from(name), rand::random::<u64>)
    }

    pub(crate) fn set_generation(&self, name: &str, generation: u64) {
        self.generations.insert(Arc::from(name), generation);
    }

    /// The names seen on this instance, with their generations.
    pub(crate) fn known(&self) -> Vec<(Arc<str>, u64)> {
        self.generations
            .iter()
            .map(|(k, v)| ((*k).clone(), v))
            .collect()
    }

    /// Markup held for this many bytes (weighed as the bound counts them), after pending
    /// maintenance.
    pub(crate) fn weight(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    fn entry_key(&self, name: &str, args: &[Value]) -> Result<String, Error> {
        let encoded = flagon::serde_json::to_vec(args).map_err(|e| {
            bad_call(format!(
                "cache_fragment: arguments not usable as a key: {e}"
            ))
        })?;
        let mut d = self.key.hasher();
        d.part(&encoded);
        let mut k = String::with_capacity(name.len() + 56);
        k.push_str(name);
        k.push(':');
        k.push_str(&format!("{:016x}", self.generation(name)));
        k.push(':');
        d.push_hex(&mut k);
        Ok(k)
    }

    /// `cache_fragment(name, *args, ttl=…)` called from a `{% call %}` block.
    pub(crate) fn call(&self, state: &State, args: Rest<Value>) -> Result<Value, Error> {
        let mut args = args.0;
        let kwargs = match args.last() {
            Some(v) if v.is_kwargs() => Kwargs::try_from(args.pop().unwrap_or_default())?,
            _ => Kwargs::from_iter(std::iter::empty::<(&str, Value)>()),
        };
        let caller: Value = kwargs.get("caller").map_err(|_| {
            bad_call(
                "cache_fragment: use it as a block, `{% call cache_fragment(\"name\", args…) %}…{% endcall %}`",
            )
        })?;
        let ttl = match kwargs.get::<Option<Value>>("ttl")? {
            None => self.default_ttl,
            Some(v) => parse_ttl(&v)?,
        };
        kwargs.assert_all_used()?;
        let name = match args.first().and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => {
                return Err(bad_call(
                    "cache_fragment: the first argument is the fragment's name, a string",
                ));
            }
        };
        if !self.enabled || ttl.is_zero() {
            return caller.call(state, &[]);
        }
        let key = self.entry_key(&name, &args[1..])?;
        if let Some(e) = self.entries.get(&key)
            && e.expires_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(Value::from_safe_string(e.html.to_string()));
        }
        let out = caller.call(state, &[])?;
        let html: Arc<str> = match out.as_str() {
            Some(s) => Arc::from(s),
            None => Arc::from(out.to_string()),
        };
        self.entries.insert(
            key,
            Entry {
                html: html.clone(),
                expires_at: Instant::now().checked_add(ttl),
            },
        );
        Ok(Value::from_safe_string(html.to_string()))
    }
}

fn generation_key(name: &str) -> String {
    format!("fragment:generation:{name}")
}

impl CacheHandle {
    /// Bytes the fragment layer holds (as its bound `fragments.max_bytes` counts them);
    /// `None` on a named cache, which has none.
    pub fn fragment_bytes(&self) -> Option<u64> {
        self.inner.fragments.as_ref().map(|f| f.weight())
    }

    /// Forgets every cached rendering of the fragment `name` (all its arguments): the
    /// name gets a fresh generation, here at once and, on Redis, on the other instances
    /// within `fragments.sync_interval`. Fragments live with the default cache; on a named
    /// cache this does nothing.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let app = flagon::App::builder().settings(flagon::testing::testing_config())
    /// #     .register(flagon_cache::Cache::new()).build().unwrap();
    /// let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
    /// cache.forget_fragment("sidebar").await;
    /// # });
    /// ```
    pub async fn forget_fragment(&self, name: &str) {
        let Some(f) = &self.inner.fragments else {
            return;
        };
        let fresh = rand::random::<u64>();
        f.set_generation(name, fresh);
        if self.backend() == crate::BackendKind::Redis {
            let _ = self.set(&generation_key(name), &fresh, Ttl::Forever).await;
        }
    }

    /// Pre-loads the generations of the fragment names this instance knows from Redis, and
    /// publishes those Redis has none for. While serving, a worker calls this every
    /// `fragments.sync_interval`; call it yourself to pick up a forget at once. Does nothing
    /// for the other backends, whose generations are in-process.
    pub async fn sync_fragments(&self) {
        if self.backend() != crate::BackendKind::Redis {
            return;
        }
        let Some(f) = &self.inner.fragments else {
            return;
        };
        let known = f.known();
        if known.is_empty() {
            return;
        }
        let keys: Vec<String> = known.iter().map(|(n, _)| generation_key(n)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let shared = self.get_many::<u64>(&refs).await;
        for (((name, local), key), shared) in known.iter().zip(&keys).zip(shared) {
            match shared {
                Some(g) if g != *local => f.set_generation(name, g),
                Some(_) => {}
                None => {
                    // First to publish wins; the others adopt it at the next sync.
                    if let Ok(false) = self.add(key, local, Ttl::Forever).await
                        && let Some(g) = self.get::<u64>(key).await
                    {
                        f.set_generation(name, g);
                    }
                }
            }
        }
    }
}

/// `ttl=300` (seconds) or `ttl="5m"`.
fn parse_ttl(v: &Value) -> Result<Duration, Error> {
    if let Some(s) = v.as_str() {
        return humantime_serde::re::humantime::parse_duration(s)
            .map_err(|e| bad_call(format!("cache_fragment: ttl `{s}`: {e}")));
    }
    let secs = f64::try_from(v.clone())
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| {
            bad_call("cache_fragment: ttl is seconds (a number) or a duration like \"5m\"")
        })?;
    Duration::try_from_secs_f64(secs).map_err(|e| bad_call(format!("cache_fragment: ttl: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_in_seconds_or_words() {
        assert_eq!(
            parse_ttl(&Value::from(90)).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_ttl(&Value::from(0.5)).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_ttl(&Value::from("5m")).unwrap(),
            Duration::from_secs(300)
        );
        assert!(parse_ttl(&Value::from(-1)).is_err());
        assert!(parse_ttl(&Value::from("soon")).is_err());
        assert!(parse_ttl(&Value::from(true)).is_err());
    }
}
