//! What checks a request at run time: the limiter's shared state, sets of limits, and the
//! tag the limiter's guard leaves on each limited route's requests.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicU64;
#[cfg(feature = "redis")]
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flagon::axum::extract::Request;
use flagon::axum::response::Response;
use flagon::http::Method;
use flagon::{RequestExt, tracing};

use crate::config::FailMode;
use crate::key::{BucketKey, Grouping, KeyBy, Who};
use crate::parse::Rate;
use crate::response::{self, Passed, Refusal};
use crate::store::{Bucket, Decision, KeyBudget, LimiterClock};

/// A predicate that exempts a request from every limit (an internal network, a health
/// prober).
pub(crate) type ExemptFn = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// Emitted when the limiter refuses a request (login uses it to slow brute force).
///
/// ```
/// use flagon_limiter::RateLimited;
/// # fn init(app: &mut flagon::Setup<'_>) {
/// app.subscribe(|e: &RateLimited| {
///     eprintln!("{} refused on {:?} by {}", e.key, e.endpoint, e.limit);
/// });
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RateLimited {
    /// The endpoint of the refused request.
    pub endpoint: Option<Arc<str>>,
    /// Who was refused: an address (IPv6 grouped), `user:<id>` or `key:<api key>`.
    pub key: String,
    /// The limit that refused it (`5/minute`).
    pub limit: String,
    /// How long until the same request would be admitted.
    pub retry_after: Duration,
}

/// The limiter's state, shared by its guards, decorators, sweeper and commands.
pub(crate) struct Runtime {
    pub(crate) enabled: bool,
    pub(crate) key_by: KeyBy,
    pub(crate) grouping: Grouping,
    pub(crate) clock: LimiterClock,
    pub(crate) budget: Arc<KeyBudget>,
    pub(crate) legacy: bool,
    pub(crate) on_success: bool,
    pub(crate) exempt_when: Vec<ExemptFn>,
    /// Every limit set, for the sweeper and the `status`/`reset` commands.
    pub(crate) sets: Mutex<Vec<Arc<LimitSet>>>,
    /// Shared limits by scope name, built at finish.
    pub(crate) shared: OnceLock<HashMap<String, Arc<LimitSet>>>,
    /// Endpoints by route id (index 0 unused: route 0 is a shared or application bucket).
    pub(crate) endpoints: OnceLock<Vec<Arc<str>>>,
    /// The Redis storage, when `storage` is a `redis://` URL.
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<Arc<crate::redis::RedisStore>>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fail_mode: FailMode,
    /// `instances`: the local fallback divides each count by it.
    pub(crate) instances: u32,
    /// Checks decided by `fail_mode` because Redis could not decide them.
    pub(crate) failed_over: AtomicU64,
}

/// Which bucket family a set of limits counts in: on Redis, part of every key.
#[derive(Clone, Debug)]
pub(crate) enum SetKind {
    /// `[limiter] default` or `[limiter.routes]`: per route.
    Route,
    /// A route or blueprint decorator: per route.
    Decorator,
    /// `[limiter] application`: one bucket per key over the app.
    Application,
    /// A shared scope: one bucket per key over the scope's routes.
    Shared(Arc<str>),
    /// A [`KeyCheck`](crate::KeyCheck): keys the app chooses, checked in its handlers.
    Keyed(Arc<str>),
}

/// Several limits checked together (`100/day; 10/minute`).
pub(crate) struct LimitSet {
    pub(crate) rates: Vec<Rate>,
    /// In-process buckets: the limits themselves, or with Redis storage the local fallback
    /// (each count divided by `instances`).
    buckets: Vec<Arc<Bucket>>,
    per_method: bool,
    kind: SetKind,
    /// This set's own `fail_mode` (a decorator's), else the app's.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fail_mode: Option<FailMode>,
}

/// The outcome of checking one set.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Checked {
    Passed(Passed),
    Refused(Refusal),
    /// Redis could not decide and `fail_mode = "closed"`: answer 503 with this Retry-After.
    Unavailable(Duration),
    /// Redis could not decide and `fail_mode = "open"`: admitted, nothing known.
    Open,
}

/// One counter of one key, from [`LimiterState::status`](crate::LimiterState::status)
/// (and `limiter status`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counter {
    /// The limit (`5/minute`).
    pub limit: String,
    /// Where it counts: `route ENDPOINT` (default or configured limits), `decorator
    /// ENDPOINT`, `application`, or `shared SCOPE`.
    pub scope: String,
    /// The method counted apart (`POST`), or `*`.
    pub method: String,
    /// Requests of cost 1 admissible now.
    pub remaining: u32,
    /// How long until the bucket is full again.
    pub full_in: Duration,
}

pub(crate) fn method_index(m: &Method) -> u8 {
    match *m {
        Method::GET => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::HEAD => 6,
        Method::OPTIONS => 7,
        _ => 8,
    }
}

fn method_name(i: u8) -> &'static str {
    match i {
        0 => "*",
        1 => "GET",
        2 => "POST",
        3 => "PUT",
        4 => "DELETE",
        5 => "PATCH",
        6 => "HEAD",
        7 => "OPTIONS",
        _ => "other",
    }
}

impl Runtime {
    pub(crate) fn set(&self, rates: Vec<Rate>, per_method: bool, kind: SetKind) -> Arc<LimitSet> {
        self.set_failing(rates, per_method, kind, None)
    }

    /// As [`set`](Self::set), with a `fail_mode` of its own (`None`: the app's).
    pub(crate) fn set_failing(
        &self,
        rates: Vec<Rate>,
        per_method: bool,
        kind: SetKind,
        fail_mode: Option<FailMode>,
    ) -> Arc<LimitSet> {
        let local = |r: &Rate| -> Rate {
            if self.instances <= 1 || !self.remote() {
                return *r;
            }
            let count = (r.count() / self.instances).max(1);
            Rate::new(count, r.multiples(), r.unit()).unwrap_or(*r)
        };
        let buckets: Vec<Arc<Bucket>> = rates
            .iter()
            .map(|r| Arc::new(Bucket::new(local(r), &self.clock, &self.budget)))
            .collect();
        let set = Arc::new(LimitSet {
            rates,
            buckets,
            per_method,
            kind,
            fail_mode,
        });
        self.sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(set.clone());
        set
    }

    /// Whether counters live in Redis.
    pub(crate) fn remote(&self) -> bool {
        #[cfg(feature = "redis")]
        {
            self.redis.is_some()
        }
        #[cfg(not(feature = "redis"))]
        {
            false
        }
    }

    pub(crate) fn exempt(&self, req: &Request) -> bool {
        !self.enabled || self.exempt_when.iter().any(|f| f(req))
    }

    pub(crate) fn who(&self, req: &Request) -> Who {
        self.key_by.who(req, self.grouping)
    }

    /// The key a command names: an address (grouped as requests are), `unknown`, or text
    /// (`user:42`, `key:abc`, a custom key).
    pub(crate) fn parse_who(&self, key: &str) -> Who {
        match key.parse::<std::net::IpAddr>() {
            Ok(ip) => Who::Ip(self.grouping.group(ip)),
            Err(_) if key == "unknown" => Who::Unknown,
            Err(_) => Who::Text(Arc::from(key)),
        }
    }

    fn sets(&self) -> Vec<Arc<LimitSet>> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets every key whose bucket is full again; returns the keys still held.
    pub(crate) fn sweep(&self) -> usize {
        self.sets()
            .iter()
            .flat_map(|s| s.buckets.iter())
            .map(|b| {
                b.sweep();
                b.len()
            })
            .sum()
    }

    fn endpoint(&self, route: u32) -> String {
        self.endpoints
            .get()
            .and_then(|e| e.get(route as usize))
            .map_or_else(|| format!("route {route}"), |e| e.to_string())
    }

    /// Every counter held for `key`: in Redis, or in this process's memory.
    pub(crate) async fn status(&self, key: &str) -> Result<Vec<Counter>, String> {
        let who = self.parse_who(key);
        #[cfg(feature = "redis")]
        if let Some(store) = &self.redis {
            return store.status(&who).await;
        }
        let mut out = Vec::new();
        for set in self.sets() {
            for b in &set.buckets {
                for k in b.keys_of(&who) {
                    let scope = match &set.kind {
                        SetKind::Route => format!("route {}", self.endpoint(k.route)),
                        SetKind::Decorator => format!("decorator {}", self.endpoint(k.route)),
                        SetKind::Application => "application".to_owned(),
                        SetKind::Shared(n) => format!("shared {n}"),
                        SetKind::Keyed(n) => format!("key {n}"),
                    };
                    let rate = b.rate();
                    let (remaining, full_in) = match b.peek(&k, NonZeroU32::MIN) {
                        Decision::Allowed { remaining, reset } => {
                            (remaining + 1, reset.saturating_sub(rate.interval()))
                        }
                        Decision::Denied { reset, .. } => (0, reset),
                    };
                    out.push(Counter {
                        limit: rate.to_string(),
                        scope,
                        method: method_name(k.method).to_owned(),
                        remaining,
                        full_in,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.scope, &a.method, &a.limit).cmp(&(&b.scope, &b.method, &b.limit)));
        Ok(out)
    }

    /// Forgets `key`'s counters (every counter for `None`); returns how many were removed.
    pub(crate) async fn reset(&self, key: Option<&str>) -> Result<u64, String> {
        let who = key.map(|k| self.parse_who(k));
        #[cfg(feature = "redis")]
        if let Some(store) = &self.redis {
            return store.reset(who.as_ref()).await;
        }
        let n: usize = self
            .sets()
            .iter()
            .flat_map(|s| s.buckets.iter())
            .map(|b| b.forget(who.as_ref()))
            .sum();
        Ok(n as u64)
    }

    /// The 429 for `refusal`, logged and signalled. An app's 429 handler that replaces it
    /// keeps its headers (core carries an error response's headers onto the handler's page).
    pub(crate) fn refuse(
        &self,
        req: &mut Request,
        endpoint: &Arc<str>,
        who: &Who,
        rates: &[Rate],
        refusal: &Refusal,
    ) -> Response {
        self.refused(req, endpoint, who, refusal);
        response::too_many(req.headers(), rates, refusal, self.legacy)
    }

    /// The 503 of `fail_mode = "closed"`.
    pub(crate) fn unavailable(&self, req: &mut Request, wait: Duration) -> Response {
        response::unavailable(req.headers(), wait)
    }

    /// Logs and signals a refusal.
    fn refused(&self, req: &Request, endpoint: &Arc<str>, who: &Who, r: &Refusal) {
        tracing::info!(
            target: "flagon_limiter",
            endpoint = %endpoint,
            key = %who,
            limit = %r.rate,
            "rate limit exceeded"
        );
        if let Some(app) = req.app()
            && app.signals().has::<RateLimited>()
        {
            app.signals().emit(RateLimited {
                endpoint: Some(endpoint.clone()),
                key: who.to_string(),
                limit: r.rate.to_string(),
                retry_after: r.wait,
            });
        }
    }
}

impl LimitSet {
    /// Checks every limit of the set for `who` on `route` (0 for a shared scope or the
    /// application), taking `cost` from each; the first refusal wins. Limits checked before
    /// a refusing one keep what they took, as in Flask-Limiter. With `take` false nothing is
    /// taken (governor's decision on a dry store; on Redis, the same script not writing).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn check(
        &self,
        rt: &Runtime,
        method: &Method,
        route: u32,
        endpoint: &str,
        who: Who,
        cost: NonZeroU32,
        take: bool,
    ) -> Checked {
        #[cfg(feature = "redis")]
        if let Some(store) = &rt.redis {
            let keys = self.redis_keys(store.prefix(), method, endpoint, &who);
            match store.check(&keys, &self.rates, cost, take).await {
                Ok(c) => return c,
                Err(()) => {
                    rt.failed_over.fetch_add(1, Ordering::Relaxed);
                    match self.fail_mode.unwrap_or(rt.fail_mode) {
                        FailMode::Open => return Checked::Open,
                        FailMode::Closed => return Checked::Unavailable(store.retry_after()),
                        FailMode::Local => {}
                    }
                }
            }
        }
        #[cfg(not(feature = "redis"))]
        let _ = (rt, endpoint);
        self.local(method, route, who, cost, take)
    }

    /// The Redis key of each limit: `{prefix}{len(who)}:{who}:{scope}:{method}:{limit}`,
    /// the key first so that one `SCAN MATCH` finds every counter of a key.
    #[cfg(feature = "redis")]
    fn redis_keys(&self, prefix: &str, method: &Method, endpoint: &str, who: &Who) -> Vec<String> {
        use std::fmt::Write as _;
        let who = who.to_string();
        let mut head = format!("{prefix}{}:{who}:", who.len());
        match &self.kind {
            SetKind::Route => write!(head, "r:{endpoint}"),
            SetKind::Decorator => write!(head, "d:{endpoint}"),
            SetKind::Application => write!(head, "a"),
            SetKind::Shared(n) => write!(head, "s:{n}"),
            SetKind::Keyed(n) => write!(head, "k:{n}"),
        }
        .expect("writing to a String");
        head.push(':');
        head.push_str(if self.per_method {
            method.as_str()
        } else {
            "*"
        });
        self.rates.iter().map(|r| format!("{head}:{r}")).collect()
    }

    /// The in-process check ([`check`](Self::check) without Redis storage): it never waits.
    pub(crate) fn local(
        &self,
        method: &Method,
        route: u32,
        who: Who,
        cost: NonZeroU32,
        take: bool,
    ) -> Checked {
        let key = BucketKey {
            route,
            method: if self.per_method {
                method_index(method)
            } else {
                0
            },
            who,
        };
        let mut best: Option<Passed> = None;
        for b in &self.buckets {
            let decision = if take {
                b.check(&key, cost)
            } else {
                b.peek(&key, cost)
            };
            match decision {
                Decision::Allowed { remaining, reset } => {
                    if best.as_ref().is_none_or(|p| remaining < p.remaining) {
                        best = Some(Passed {
                            rate: b.rate(),
                            remaining,
                            reset,
                        });
                    }
                }
                Decision::Denied { wait, reset } => {
                    return Checked::Refused(Refusal {
                        rate: b.rate(),
                        wait,
                        reset,
                    });
                }
            }
        }
        Checked::Passed(best.expect("a limit set has at least one limit"))
    }
}

/// Left on a limited route's requests by the limiter's guard: which route it is, the
/// limiter's state (for the route's decorators) and the limits the guard checks. One `Arc`:
/// the guard's clone for a request is the one it leaves on the request, and decorators
/// read it in place.
#[derive(Clone)]
pub(crate) struct RouteTag(pub(crate) Arc<Guarded>);

/// What a [`RouteTag`] holds.
pub(crate) struct Guarded {
    pub(crate) route: u32,
    pub(crate) endpoint: Arc<str>,
    pub(crate) rt: Arc<Runtime>,
    /// The route's configured or default limits.
    pub(crate) set: Option<Arc<LimitSet>>,
    /// `[limiter] application`.
    pub(crate) app_set: Option<Arc<LimitSet>>,
}

impl std::ops::Deref for RouteTag {
    type Target = Guarded;

    fn deref(&self) -> &Guarded {
        &self.0
    }
}
