//! Rate limits for Flagon apps, as Flask-Limiter gives Flask apps: limit strings, default,
//! per-route and shared limits, exemptions, and 429s with `Retry-After` and the IETF
//! `RateLimit` headers, decided by GCRA on governor in-process with a bounded key count, or
//! (the `redis` feature) by one atomic Lua GCRA script on a Redis every instance shares.
//!
//! ```
//! use flagon::{App, Route};
//! use flagon::testing::{TestClient, testing_config_toml};
//! use flagon_limiter::{Limiter, limit};
//!
//! async fn search() -> &'static str { "results" }
//! async fn index() -> &'static str { "home" }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = App::builder()
//!     .settings(testing_config_toml("[limiter]\ndefault = \"200/minute\"\n"))
//!     .register(Limiter::new())
//!     .route(Route::get("/", index))
//!     .route(Route::get("/search", search).with(limit("2/minute")))
//!     .build()
//!     .unwrap();
//! let client = TestClient::new(&app);
//! let peer = "203.0.113.7:4000".parse().unwrap();
//! for _ in 0..2 {
//!     assert_eq!(client.get("/search").peer(peer).send().await.status(), 200);
//! }
//! let refused = client.get("/search").peer(peer).send().await;
//! assert_eq!(refused.status(), 429);
//! assert_eq!(refused.header("retry-after"), Some("30"));
//! assert_eq!(refused.header("cache-control"), Some("no-store"));
//! # });
//! ```
//!
//! # Semantics
//!
//! Every limit is GCRA (governor's): `10/minute` admits a burst of 10, then one request every
//! 6 s. Flask-Limiter's default fixed window would admit 20 within two seconds across a window
//! edge; GCRA never admits more than `count + elapsed / interval` in any interval. A refused
//! request takes nothing. A route with several limits (`100/day; 10/minute`) checks them in
//! order; the first refusing one answers, and the ones before it keep what they took (as in
//! Flask-Limiter). Every response of the route counts, whatever its status (401/403 too).
//!
//! Where limits apply:
//! - `[limiter] default` on every route without a limit of its own, unless exempt; core's
//!   own routes (`/healthz`, `/readyz`) are left alone, so probes are never refused;
//! - `[limiter] application`: one bucket per key over every route (not exempt ones, not
//!   core's), checked after the route's own limits;
//! - `[limiter.routes] "endpoint" = "..."` replaces the default on that endpoint (an endpoint
//!   that does not exist fails the build);
//! - [`limit`] / [`Limit`] on a route or a blueprint (each route its own bucket), replacing
//!   the default there; [`shared_limit`] gives every route of a scope one bucket;
//! - [`exempt`] on a route or blueprint, and [`Limiter::exempt_when`] for a predicate;
//! - per method, a cost (fixed or computed) and `deduct_when` (count only the responses a
//!   predicate selects, e.g. failed logins) through [`Limit`].
//! - a key only the handler knows (the account a login form names): a [`KeyCheck`] from
//!   [`LimiterState::key_check`], checked in the handler and counted with every other
//!   counter (in Redis with Redis storage, so exact across instances).
//!
//! Keys: the client IP from core's [`ClientIp`](flagon::ClientIp) (the peer address, or the
//! rightmost untrusted hop behind `server.trusted_proxies`; a forged `X-Forwarded-For`
//! from anyone else changes nothing), IPv6 grouped by /64; or the [`Identity`](flagon::Identity)
//! a login extension set; or an API-key header; or a function ([`Limiter::key_fn`]). The
//! latter three fall back to the IP. In-process requests without a peer share one bucket.
//! Default, application and configured limits are checked in a route guard, which runs
//! before the app's `before_request` hooks: an identity set by a before hook is seen by
//! decorators only, one set by a guard (as a login extension should) by every limit.
//!
//! Memory: at most `max_keys` keys are held across every limit. A new key arriving when
//! they are all taken is decided on one cell shared by every such key (strict, never
//! unlimited) until the sweeper, every `sweep_interval`, forgets keys whose bucket is full
//! again (governor's `retain_recent`, then `shrink_to_fit`).
//!
//! # Redis storage
//!
//! With `storage = "redis://host:port/db"` (the `redis` feature) every check of a set of
//! limits (a route's `100/day; 10/minute`, then the application's if any) is one atomic
//! `EVALSHA` of one Lua script (loaded again on `NOSCRIPT`), so N instances
//! sharing Redis admit exactly the quota between them (four instances, 2000 concurrent
//! requests, quota 100: 100 admitted on each of 50 repetitions, in the crate's tests). The
//! script is GCRA with governor's arithmetic in integer microseconds of Redis `TIME`
//! (instances' clocks never matter): the same decisions, `Retry-After`, `RateLimit` and
//! `X-RateLimit-*` as in-process storage. A key holds its bucket's theoretical arrival time
//! and is written with a TTL that ends when the bucket is full again, so no key lives
//! longer than its period and none is ever without a TTL. A stored time further ahead than a
//! full bucket allows (after a failover to a server whose clock is behind) is clamped, so no
//! wait exceeds the period; a failover to an empty replica resets the quota, nothing worse.
//! Keys are `{redis.key_prefix}{len}:{key}:{scope}:{method}:{limit}`.
//!
//! When Redis cannot decide a check (unreachable, slower than `redis.command_timeout`, an
//! error reply, or the circuit breaker open after `redis.breaker_failures` failures in a
//! row), `fail_mode` does: `open` admits, `closed` answers **503** with `Retry-After` (the
//! breaker's cooldown; not 429: the client did nothing wrong), `local` (the default) decides
//! in process with each count divided by `instances` (its `RateLimit` header then names the
//! divided limit); [`Limit::fail_mode`] sets another mode for one route or shared scope
//! (e.g. `closed` on a login route of an app that fails open). Every failure is logged, one warning
//! per 10 s with the count held back; [`LimiterState::failed_over`] counts them. A check
//! never waits longer than `command_timeout`; with the breaker open it does not wait at all,
//! and one check probes Redis every `breaker_cooldown`, so Redis decides again within about
//! a second of coming back, without a restart. `/readyz` has a `limiter` check (details:
//! `reachable`, `circuit_open`, `fail_mode`, `failed_over`) that fails only when Redis is
//! unreachable and `fail_mode = "closed"`. Redis Cluster is not supported (one check's keys
//! may hash to different slots).
//!
//! # Responses
//!
//! A refused request gets 429 with `Retry-After` (whole seconds, rounded up, at least 1: the
//! GCRA wait), `RateLimit-Policy` (`"5/minute";q=5;w=60`) and `RateLimit`
//! (`"5/minute";r=0;t=30`) as Structured-Field lists (draft-ietf-httpapi-ratelimit-headers),
//! `X-RateLimit-Limit/Remaining/Reset` (reset in epoch seconds) when `legacy_headers` is on,
//! and `Cache-Control: no-store`. An API client (`Accept` preferring JSON) gets an RFC 9457
//! `application/problem+json` body of type `quota-exceeded`; others get an
//! [`HttpError`](flagon::HttpError) whose cause is [`LimiterError::Exceeded`], rendered by the
//! app's 429 handler or core's default page; the limiter's after hook puts its headers back
//! on a response the app's handler replaced. Every refusal emits [`RateLimited`].
//!
//! # Command line
//!
//! `app limiter limits [--endpoint E]` prints every route's effective limits and where each
//! comes from (`default`, `limiter.routes`, a decorator, `limit exempt`).
//! `app limiter status KEY...` prints each key's counters (limit, scope, method, requests
//! left, time until full), and `app limiter reset KEY --yes` / `reset --all --yes` forgets
//! them. A KEY is an address (IPv6 grouped as requests are), `user:ID`, `key:API-KEY` or a
//! custom key. With Redis storage they act on the counters every instance shares (`--all`:
//! the keys under `redis.key_prefix` only, by `SCAN`, never `FLUSHDB`); with in-process
//! storage only on the process running the command, which a separate CLI process does not
//! share with the server ([`LimiterState::status`] and [`LimiterState::reset`] do the same
//! from inside the serving process, e.g. an admin route).
//!
//! # Configuration
//!
//! `[limiter]` in `flagon.toml` (or `FLAGON_LIMITER__*`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `enabled` | `true` | `false` limits nothing |
//! | `default` | none | limits for every route without its own, e.g. `"200/minute"` |
//! | `application` | none | limits on the whole app: one bucket per key over every route (not exempt ones, not core's) |
//! | `default_per_method` | `false` | default and configured limits count each method apart |
//! | `routes` | `{}` | `"endpoint" = "5/minute"`: replaces the default on that endpoint |
//! | `key` | `"ip"` | `ip`, `user` (core's `Identity`, else IP) or `header` |
//! | `key_header` | none | the header `key = "header"` reads (an API key) |
//! | `ipv6_prefix` | `64` | IPv6 addresses are grouped by this prefix (0–128) |
//! | `ipv4_prefix` | `32` | IPv4 addresses are grouped by this prefix (0–32) |
//! | `max_keys` | `100000` | keys held in memory, over every limit (≥ 1) |
//! | `sweep_interval` | `"60s"` | how often full buckets are forgotten |
//! | `legacy_headers` | `false` | also send `X-RateLimit-*` on 429s |
//! | `headers_on_success` | `false` | send `RateLimit`/`RateLimit-Policy` on admitted responses of limited routes |
//! | `storage` | `"memory://"` | `memory://` (in process) or `redis://[user:pass@]host:port/db` (the `redis` feature; TLS `rediss://` is not supported yet: a build error naming `limiter.storage`); redacted by `config` |
//! | `fail_mode` | `"local"` | when Redis cannot decide: `open` (admit), `closed` (503 + `Retry-After`), `local` (in process, counts divided by `instances`) |
//! | `instances` | `1` | instances sharing the quota, for `fail_mode = "local"` (≥ 1) |
//! | `redis.key_prefix` | `"flagon:limiter:"` | prepended to every key; not empty; `limiter reset --all` removes every key under it, so give the limiter a prefix of its own |
//! | `redis.connect_timeout` | `"500ms"` | connection attempts |
//! | `redis.command_timeout` | `"100ms"` | one check; then `fail_mode` decides |
//! | `redis.breaker_failures` | `5` | failures in a row that open the circuit breaker |
//! | `redis.breaker_cooldown` | `"1s"` | how long an open breaker skips Redis before one check probes it; also the 503's `Retry-After` |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `redis` | off | Redis storage (redis-rs `ConnectionManager` on tokio, one Lua GCRA script per check) |
//!
//! # Errors
//!
//! - A malformed limit string fails `build()`: [`LimiterError::Parse`] names its source, a
//!   config key (`limiter.default`, `limiter.routes."auth.login"`, as config errors with the
//!   file line) or a route's endpoint for a decorator. [`LimitParseError`] says what is wrong.
//! - Bad settings (`max_keys = 0`, a prefix out of range, `key = "header"` without a valid
//!   `key_header`, an unknown endpoint in `routes`, one shared scope with two different limit
//!   strings) fail `build()` naming the key.
//! - `storage` that is neither `memory://` nor a Redis URL, a Redis URL without the `redis`
//!   feature, an empty `redis.key_prefix`, a zero timeout, `instances = 0` fail `build()`
//!   naming the key. Redis may be down when the app starts: it is reached on first use.
//! - A refused request carries [`LimiterError::Exceeded`] (429); one Redis could not decide
//!   under `fail_mode = "closed"` carries [`LimiterError::Unavailable`] (503).
//! - [`LimiterState::status`] and [`LimiterState::reset`] fail with
//!   [`LimiterError::Storage`] when Redis does not answer.

mod cli;
mod config;
mod decorator;
mod error;
mod key;
mod key_check;
mod keyed;
mod parse;
#[cfg(feature = "redis")]
mod redis;
mod response;
mod runtime;
mod store;

use std::collections::HashMap;
use std::io::Write as _;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use flagon::axum::extract::Request;
use flagon::http::HeaderName;
use flagon::{Extension, Setup, SetupError};

pub use config::{FailMode, KeyKind, LimiterConfig, RedisSettings};
pub use decorator::{Limit, exempt, limit, shared_limit};
pub use error::{LimitParseError, LimiterError};
pub use key::{KeyBy, KeyFn};
pub use key_check::{KeyCheck, KeyDecision};
pub use keyed::KeyedLimit;
pub use parse::{Rate, Unit, parse_limits};
pub use runtime::{Counter, RateLimited};
pub use store::ManualClock;

use decorator::{PROVIDER, read_description};
use key::Grouping;
use runtime::{Checked, ExemptFn, Guarded, LimitSet, RouteTag, Runtime, SetKind};
use store::{KeyBudget, LimiterClock};

/// The limiter extension (Flask-Limiter's `Limiter`). Register it on the app builder; its
/// settings come from `[limiter]`.
///
/// ```
/// use flagon_limiter::Limiter;
///
/// let limiter = Limiter::new()
///     .key_fn(|req: &flagon::axum::extract::Request| {
///         req.headers().get("x-tenant")?.to_str().ok().map(str::to_owned)
///     })
///     .exempt_when(|req: &flagon::axum::extract::Request| {
///         req.headers().contains_key("x-internal-probe")
///     });
/// # let _ = limiter;
/// ```
#[derive(Default)]
pub struct Limiter {
    key_fn: Option<Arc<dyn KeyFn>>,
    exempt_when: Vec<ExemptFn>,
    clock: Option<ManualClock>,
}

impl Limiter {
    /// A limiter configured by `[limiter]`.
    pub fn new() -> Limiter {
        Limiter::default()
    }

    /// Keys requests with `f` (falling back to the client IP when it returns `None`),
    /// whatever `[limiter] key` says.
    pub fn key_fn(mut self, f: impl KeyFn) -> Limiter {
        self.key_fn = Some(Arc::new(f));
        self
    }

    /// Exempts the requests `f` selects from every limit (Flask-Limiter's `request_filter`).
    pub fn exempt_when(mut self, f: impl Fn(&Request) -> bool + Send + Sync + 'static) -> Limiter {
        self.exempt_when.push(Arc::new(f));
        self
    }

    /// Decides on `clock` instead of the machine's monotonic clock: for tests. With Redis
    /// storage, Redis's `TIME` decides; the clock then only drives the `local` fallback.
    pub fn clock(mut self, clock: ManualClock) -> Limiter {
        self.clock = Some(clock);
        self
    }
}

/// The limiter's counters, provided as state (`Ext<LimiterState>` in a handler,
/// `app.state::<LimiterState>()` elsewhere).
pub struct LimiterState(Arc<Runtime>);

impl LimiterState {
    /// Keys held in process now, over every limit (never more than `max_keys`). With Redis
    /// storage these are the `local` fallback's only; Redis bounds its own keys by TTL.
    pub fn keys(&self) -> usize {
        self.0.budget.used()
    }

    /// Decisions made on the shared overflow cell because `max_keys` keys were held.
    pub fn overflowed(&self) -> u64 {
        self.0.budget.overflowed()
    }

    /// Forgets the keys whose buckets are full again, as the sweeper does; returns the keys
    /// still held.
    pub fn sweep(&self) -> usize {
        self.0.sweep()
    }

    /// Checks that Redis could not decide (unreachable, slower than
    /// `redis.command_timeout`, erroring, or the breaker open), decided by `fail_mode`
    /// instead. Always 0 with in-process storage.
    pub fn failed_over(&self) -> u64 {
        self.0.failed_over.load(Ordering::Relaxed)
    }

    /// Whether counters live in Redis (`storage = "redis://…"`).
    pub fn is_redis(&self) -> bool {
        self.0.remote()
    }

    /// The counters held for `key` (an address, grouped as requests are; `user:ID`;
    /// `key:API-KEY`; a custom key), one per limit, route and method: in Redis, or with
    /// in-process storage those of this process.
    pub async fn status(&self, key: &str) -> Result<Vec<Counter>, LimiterError> {
        self.0.status(key).await.map_err(LimiterError::Storage)
    }

    /// A limit on keys the app chooses (an account named in a login form), checked in a
    /// handler with [`KeyCheck::check`] and counted with every other counter of the limiter
    /// (in Redis when it is the storage, so exact across instances). `scope` names its
    /// counters (`limiter status`: scope `key SCOPE`); each call makes a new set of buckets,
    /// so make it once (at setup) and keep it. A malformed `limits` string is an error.
    pub fn key_check(&self, scope: &str, limits: &str) -> Result<KeyCheck, LimitParseError> {
        KeyCheck::new(self.0.clone(), scope, limits)
    }

    /// Forgets `key`'s counters (every counter of the limiter for `None`: on Redis, the
    /// keys under `redis.key_prefix` only), so its buckets are full again. Returns how many
    /// counters were removed.
    pub async fn reset(&self, key: Option<&str>) -> Result<u64, LimiterError> {
        self.0.reset(key).await.map_err(LimiterError::Storage)
    }
}

fn parse_config(app: &Setup<'_>, key: &str, raw: &str) -> Result<Vec<Rate>, SetupError> {
    parse_limits(raw).map_err(|e| app.config_error(key, e.to_string()))
}

impl Extension for Limiter {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let cfg: LimiterConfig = app.config("limiter")?;
        if cfg.max_keys == 0 {
            return Err(app.config_error("limiter.max_keys", "must be at least 1"));
        }
        if cfg.ipv6_prefix > 128 {
            return Err(app.config_error("limiter.ipv6_prefix", "must be 0 to 128"));
        }
        if cfg.ipv4_prefix > 32 {
            return Err(app.config_error("limiter.ipv4_prefix", "must be 0 to 32"));
        }
        if cfg.sweep_interval.is_zero() {
            return Err(app.config_error("limiter.sweep_interval", "must be longer than 0s"));
        }
        if cfg.instances == 0 {
            return Err(app.config_error("limiter.instances", "must be at least 1"));
        }
        #[cfg(feature = "redis")]
        let redis = match storage_kind(app, cfg.storage.expose())? {
            None => None,
            Some(url) => Some(Arc::new(redis_store(app, url, &cfg)?)),
        };
        #[cfg(not(feature = "redis"))]
        if storage_kind(app, cfg.storage.expose())?.is_some() {
            return Err(app.config_error(
                "limiter.storage",
                "Redis storage needs flagon-limiter's `redis` feature",
            ));
        }
        let key_by = match (&self.key_fn, cfg.key) {
            (Some(f), _) => KeyBy::Custom(f.clone()),
            (None, KeyKind::Ip) => KeyBy::Ip,
            (None, KeyKind::User) => KeyBy::User,
            (None, KeyKind::Header) => {
                let Some(name) = &cfg.key_header else {
                    return Err(app.config_error(
                        "limiter.key_header",
                        "`key = \"header\"` needs the header's name, e.g. key_header = \"x-api-key\"",
                    ));
                };
                match HeaderName::try_from(name.as_str()) {
                    Ok(h) => KeyBy::Header(h),
                    Err(_) => {
                        return Err(app.config_error(
                            "limiter.key_header",
                            format!("`{name}` is not a valid header name"),
                        ));
                    }
                }
            }
        };
        let default = match &cfg.default {
            Some(raw) => Some(parse_config(app, "limiter.default", raw)?),
            None => None,
        };
        let application = match &cfg.application {
            Some(raw) => Some(parse_config(app, "limiter.application", raw)?),
            None => None,
        };
        let mut configured = HashMap::new();
        for (endpoint, raw) in &cfg.routes {
            let key = format!("limiter.routes.\"{endpoint}\"");
            configured.insert(endpoint.clone(), parse_config(app, &key, raw)?);
        }

        let rt = Arc::new(Runtime {
            enabled: cfg.enabled,
            key_by,
            grouping: Grouping {
                v4: cfg.ipv4_prefix,
                v6: cfg.ipv6_prefix,
            },
            clock: match &self.clock {
                Some(c) => LimiterClock::Manual(c.clone()),
                None => LimiterClock::real(),
            },
            budget: KeyBudget::new(cfg.max_keys),
            legacy: cfg.legacy_headers,
            on_success: cfg.headers_on_success,
            exempt_when: self.exempt_when.clone(),
            sets: Mutex::new(Vec::new()),
            shared: OnceLock::new(),
            endpoints: OnceLock::new(),
            #[cfg(feature = "redis")]
            redis: redis.clone(),
            fail_mode: cfg.fail_mode,
            instances: cfg.instances,
            failed_over: AtomicU64::new(0),
        });
        app.provide(LimiterState(rt.clone()));

        #[cfg(feature = "redis")]
        if let Some(store) = redis {
            let (ready, mode) = (rt.clone(), cfg.fail_mode);
            let timeout = cfg.redis.command_timeout * 2;
            app.health_check("limiter", timeout, move |_app| {
                let (store, rt) = (store.clone(), ready.clone());
                async move { readiness(&store, &rt, mode).await }
            });
        }

        let sweeper = rt.clone();
        let every = cfg.sweep_interval;
        app.worker("limiter-sweeper", move |ctx| {
            let rt = sweeper.clone();
            async move {
                let mut tick = flagon::tokio::time::interval(every);
                tick.tick().await;
                loop {
                    flagon::tokio::select! {
                        _ = tick.tick() => {
                            let held = rt.sweep();
                            flagon::tracing::debug!(target: "flagon_limiter", held, "swept limiter keys");
                        }
                        () = ctx.stopping() => return Ok(()),
                    }
                }
            }
        });

        // Adds the limiter's headers to admitted responses of guard-limited routes
        // (`headers_on_success`); without that option no request pays for an after hook. (A
        // 429 an app's error handler replaces keeps its headers through core.)
        if cfg.headers_on_success {
            app.after_request(|ctx, mut res| async move {
                if let Some(h) = ctx.g().get::<response::LimitHeaders>() {
                    h.restore(&mut res);
                }
                res
            });
        }

        let rows: Arc<OnceLock<Vec<cli::Row>>> = Arc::default();
        let table = rows.clone();
        let commands = rt.clone();
        app.command(cli::command(), move |ctx| {
            let table = table.clone();
            let rt = commands.clone();
            async move {
                match ctx.matches().subcommand() {
                    Some(("limits", m)) => {
                        let endpoint = m.get_one::<String>("endpoint").map(String::as_str);
                        let rows = table.get().map(Vec::as_slice).unwrap_or_default();
                        let text = cli::limits(rows, endpoint)?;
                        ctx.out().write_all(text.as_bytes())?;
                        Ok(())
                    }
                    Some(("status", m)) => {
                        let mut text = String::new();
                        for key in m.get_many::<String>("key").into_iter().flatten() {
                            let counters = rt.status(key).await?;
                            text.push_str(&cli::status(key, &counters, rt.remote()));
                        }
                        ctx.out().write_all(text.as_bytes())?;
                        Ok(())
                    }
                    Some(("reset", m)) => {
                        let all = m.get_flag("all");
                        let key = m.get_one::<String>("key").map(String::as_str);
                        let what = match (key, all) {
                            (Some(k), false) => format!("the counters of `{k}`"),
                            (None, true) => "every counter".to_owned(),
                            _ => return Err("give a KEY or --all (not both)".into()),
                        };
                        if !m.get_flag("yes") {
                            return Err(format!(
                                "`limiter reset` forgets {what}: run it again with --yes"
                            )
                            .into());
                        }
                        let n = rt.reset(key).await?;
                        let place = if rt.remote() {
                            "in Redis"
                        } else {
                            "in this process"
                        };
                        writeln!(ctx.out(), "reset {what}: {n} counters removed {place}")?;
                        Ok(())
                    }
                    other => Err(format!("unknown subcommand {other:?}").into()),
                }
            }
        });

        let per_method = cfg.default_per_method;
        app.on_finish(move |late| {
            let limits = Limits {
                default,
                application,
                configured,
                per_method,
            };
            let _ = rows.set(finish(late, rt, limits));
            Ok(())
        });
        Ok(())
    }
}

/// At build: checks every limiter decorator's limit string and `[limiter.routes]` against the
/// real endpoints, builds the shared scopes, and puts the limiter's guard on every route it
/// concerns.
fn finish(late: &mut flagon::Finish<'_>, rt: Arc<Runtime>, limits: Limits) -> Vec<cli::Row> {
    let Limits {
        default,
        application,
        mut configured,
        per_method,
    } = limits;
    let default = default.map(|rates| rt.set(rates, per_method, SetKind::Route));
    let application = application.map(|rates| rt.set(rates, false, SetKind::Application));
    let mut endpoints: Vec<Arc<str>> = vec![Arc::from("")];
    let mut rows = Vec::new();
    let mut shared: HashMap<String, (String, Arc<LimitSet>)> = HashMap::new();
    let mut guards = Vec::new();
    let mut errors = Vec::new();

    for (i, route) in late.routes().iter().enumerate() {
        endpoints.push(Arc::from(route.endpoint.as_str()));
        let mut own = false;
        let mut exempt = false;
        for d in route.decorators.iter().filter(|d| d.provider() == PROVIDER) {
            let Some((scope, raw)) = read_description(d.description()) else {
                exempt = true;
                continue;
            };
            own = true;
            let rates = match parse_limits(raw) {
                Ok(r) => r,
                Err(error) => {
                    errors.push(SetupError::init(
                        PROVIDER,
                        LimiterError::Parse {
                            source_name: format!("endpoint `{}`", route.endpoint),
                            error,
                        },
                    ));
                    continue;
                }
            };
            if let Some(scope) = scope {
                match shared.get(scope) {
                    Some((first, _)) if first != raw => errors.push(SetupError::init(
                        PROVIDER,
                        format!(
                            "shared limit `{scope}` is `{first}` elsewhere but `{raw}` on endpoint `{}`; \
                             give every use of a scope the same limit",
                            route.endpoint
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        let pm = d.description().contains("[per method");
                        let kind = SetKind::Shared(Arc::from(scope));
                        let opts = d.description().rsplit_once(" [").map_or("", |(_, o)| o);
                        let mode = [FailMode::Open, FailMode::Closed, FailMode::Local]
                            .into_iter()
                            .find(|m| opts.contains(&format!("fail {}", m.as_str())));
                        let set = rt.set_failing(rates, pm, kind, mode);
                        shared.insert(scope.to_owned(), (raw.to_owned(), set));
                    }
                }
            }
        }
        let from_config = configured.remove(&route.endpoint);
        let cfg_limited = from_config.is_some() && !exempt;
        let set = match from_config {
            Some(rates) => Some(rt.set(rates, per_method, SetKind::Route)),
            None if own || exempt => None,
            // Core's own routes (`/healthz`, `/readyz`): probes must not be refused.
            None if route.origin.owner == "flagon" => None,
            None => default.clone(),
        };
        let set = if exempt { None } else { set };
        let app_set = application
            .clone()
            .filter(|_| !exempt && route.origin.owner != "flagon");
        let mut shown: Vec<String> = Vec::new();
        if let Some(set) = &app_set {
            let rates: Vec<String> = set.rates.iter().map(Rate::to_string).collect();
            shown.push(format!("{} (application)", rates.join("; ")));
        }
        if let Some(set) = &set {
            let from = if cfg_limited {
                "limiter.routes"
            } else {
                "default"
            };
            let rates: Vec<String> = set.rates.iter().map(Rate::to_string).collect();
            shown.push(format!("{} ({from})", rates.join("; ")));
        }
        shown.extend(
            route
                .decorators
                .iter()
                .filter(|d| d.provider() == PROVIDER)
                .map(|d| d.description().to_owned()),
        );
        if shown.is_empty() {
            shown.push("none".to_owned());
        }
        rows.push(cli::Row {
            path: route.path.clone(),
            methods: route
                .methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(","),
            endpoint: route.endpoint.clone(),
            limits: shown.join(", "),
        });
        if set.is_some() || own || app_set.is_some() {
            let route_id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            guards.push((route.endpoint.clone(), route_id, set, app_set));
        }
    }

    let mut unknown: Vec<_> = configured.into_keys().collect();
    unknown.sort();
    for endpoint in unknown {
        errors.push(late.config_error(
            &format!("limiter.routes.\"{endpoint}\""),
            format!("`{endpoint}` is not an endpoint; `routes` lists them"),
        ));
    }
    for e in errors {
        late.report(e);
    }
    let _ = rt
        .shared
        .set(shared.into_iter().map(|(k, (_, set))| (k, set)).collect());
    let _ = rt.endpoints.set(endpoints);

    for (endpoint, route_id, set, app_set) in guards {
        let tag = RouteTag(Arc::new(Guarded {
            route: route_id,
            endpoint: Arc::from(endpoint.as_str()),
            rt: rt.clone(),
            set,
            app_set,
        }));
        late.guard(
            move |r| r.endpoint == endpoint,
            move |req| guard(tag.clone(), req),
        );
    }
    rows.sort();
    rows
}

/// The limits read from `[limiter]`, applied at finish.
struct Limits {
    default: Option<Vec<Rate>>,
    application: Option<Vec<Rate>>,
    configured: HashMap<String, Vec<Rate>>,
    per_method: bool,
}

const ONE: std::num::NonZeroU32 = std::num::NonZeroU32::MIN;

async fn guard(
    tag: RouteTag,
    mut req: Request,
) -> ControlFlow<flagon::axum::response::Response, Request> {
    let (set, app_set) = (&tag.set, &tag.app_set);
    if (set.is_some() || app_set.is_some()) && !tag.rt.exempt(&req) {
        let rt = &tag.rt;
        let who = rt.who(&req);
        let method = req.method().clone();
        // The route's own limits, then the application's (route 0: one bucket per key).
        let checks = [(set.as_ref(), tag.route), (app_set.as_ref(), 0)];
        for (s, route) in checks {
            let Some(s) = s else { continue };
            match s
                .check(rt, &method, route, &tag.endpoint, who.clone(), ONE, true)
                .await
            {
                Checked::Refused(refusal) => {
                    let res = rt.refuse(&mut req, &tag.endpoint, &who, &s.rates, &refusal);
                    return ControlFlow::Break(res);
                }
                Checked::Unavailable(wait) => {
                    return ControlFlow::Break(rt.unavailable(&mut req, wait));
                }
                // The route's own limit is the one shown (the application's is shown when it
                // is the only one).
                Checked::Passed(passed) if rt.on_success && (route != 0 || set.is_none()) => {
                    let mut h = flagon::http::HeaderMap::new();
                    response::success_headers(&mut h, &s.rates, &passed);
                    flagon::G::of(&mut req).insert(response::LimitHeaders(h));
                }
                Checked::Passed(_) | Checked::Open => {}
            }
        }
    }
    req.extensions_mut().insert(tag);
    ControlFlow::Continue(req)
}

/// `storage`: `None` for in-process (`memory://`), the URL for Redis.
fn storage_kind<'a>(app: &Setup<'_>, storage: &'a str) -> Result<Option<&'a str>, SetupError> {
    let s = storage.trim();
    if s.is_empty() || s == "memory://" || s == "memory" {
        return Ok(None);
    }
    // TLS is refused here, whatever features the `redis` crate was built with in this build
    // (another crate may enable its TLS): the limiter has no TLS settings (CA file, server
    // name) yet, and a half-configured TLS connection is worse than a clear error.
    if s.starts_with("rediss://") {
        return Err(app.config_error(
            "limiter.storage",
            "TLS to Redis (`rediss://`) is not supported by the limiter yet; use `redis://` \
             on a trusted network or a local TLS tunnel",
        ));
    }
    if s.starts_with("redis://") || s.starts_with("redis+unix://") {
        return Ok(Some(s));
    }
    Err(app.config_error(
        "limiter.storage",
        "must be `memory://` or a Redis URL (`redis://host:port/db`)",
    ))
}

#[cfg(feature = "redis")]
fn redis_store(
    app: &Setup<'_>,
    url: &str,
    cfg: &LimiterConfig,
) -> Result<redis::RedisStore, SetupError> {
    let r = &cfg.redis;
    if r.key_prefix.is_empty() {
        return Err(app.config_error(
            "limiter.redis.key_prefix",
            "must not be empty (`limiter reset --all` removes the keys under it)",
        ));
    }
    for (key, d) in [
        ("limiter.redis.command_timeout", r.command_timeout),
        ("limiter.redis.connect_timeout", r.connect_timeout),
        ("limiter.redis.breaker_cooldown", r.breaker_cooldown),
    ] {
        if d.is_zero() {
            return Err(app.config_error(key, "must be longer than 0s"));
        }
    }
    if r.breaker_failures == 0 {
        return Err(app.config_error("limiter.redis.breaker_failures", "must be at least 1"));
    }
    redis::RedisStore::new(url, r, cfg.fail_mode.as_str())
        .map_err(|e| app.config_error("limiter.storage", format!("not a usable Redis URL: {e}")))
}

/// `/readyz`'s `limiter` check with Redis storage: fails only when Redis is unreachable and
/// `fail_mode = "closed"` (every limited request is then a 503); otherwise the app serves,
/// and the outage shows in the details.
#[cfg(feature = "redis")]
async fn readiness(
    store: &redis::RedisStore,
    rt: &Runtime,
    mode: FailMode,
) -> flagon::health::CheckOutcome {
    use flagon::health::CheckOutcome;
    let reachable = store.ping().await;
    let out = if reachable || mode != FailMode::Closed {
        CheckOutcome::healthy()
    } else {
        CheckOutcome::unhealthy("the limiter's Redis is unreachable and fail_mode is closed")
    };
    out.detail("storage", "redis")
        .detail("reachable", reachable)
        .detail("circuit_open", store.circuit_open())
        .detail("fail_mode", mode.as_str())
        .detail("failed_over", rt.failed_over.load(Ordering::Relaxed))
}
