//! `/healthz` (the process answers) and `/readyz` (every registered check passes).
//!
//! Checks registered with [`Setup::health_check`](crate::Setup::health_check) run
//! concurrently, each cut off at its own timeout. `/readyz` answers 200 when all pass and 503
//! otherwise, with a JSON body naming each check's status, duration, bounded error message
//! and detail (pool sizes, breaker state):
//!
//! ```json
//! {"status": "fail", "checks": {
//!   "db": {"status": "ok", "duration_ms": 2, "detail": {"in_use": 3, "idle": 7}},
//!   "redis": {"status": "fail", "duration_ms": 0, "error": "connection refused"}}}
//! ```
//!
//! A failure is logged with its whole error chain; the body shows only the first
//! [`MAX_ERROR_LEN`] characters of its message. Results are kept for `health.cache_for`
//! (default `1s`): probes within that interval get the same answer without running the
//! checks, and probes that arrive while the checks run wait for that run instead of
//! starting their own. A run finishes, and is kept, even if the probe that started it gives
//! up.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{BoxError, SetupError};
use crate::route::Route;
use crate::setup::Setup;
use crate::{AppHandle, BoxFuture};
use futures_util::FutureExt as _;
use futures_util::future::Shared;

/// The longest error message `/readyz` shows, in characters (the log has all of it).
pub const MAX_ERROR_LEN: usize = 200;
/// The most detail entries `/readyz` shows per check.
pub const MAX_DETAIL_ENTRIES: usize = 16;
/// The longest detail value `/readyz` shows, in bytes of JSON; a longer one is replaced by
/// `"(too large)"`.
pub const MAX_DETAIL_VALUE_LEN: usize = 256;

/// What one readiness check found: healthy or not (with the error, which keeps its source),
/// and a detail shown in `/readyz`.
///
/// A check returns one of these, or a `Result<(), E>` or `Result<CheckOutcome, E>` with
/// `E: Into<BoxError>` (so `?` works) — see [`IntoCheckOutcome`].
///
/// ```
/// use flagon::health::CheckOutcome;
/// let ok = CheckOutcome::healthy().detail("in_use", 3).detail("idle", 7);
/// assert!(ok.is_healthy());
/// let open = CheckOutcome::unhealthy("circuit open after 5 failures").detail("breaker", "open");
/// assert!(!open.is_healthy());
/// ```
#[derive(Debug)]
pub struct CheckOutcome {
    error: Option<BoxError>,
    detail: Map<String, Value>,
}

impl CheckOutcome {
    /// A passing check.
    pub fn healthy() -> Self {
        CheckOutcome {
            error: None,
            detail: Map::new(),
        }
    }

    /// A failing check, with why.
    pub fn unhealthy(error: impl Into<BoxError>) -> Self {
        CheckOutcome {
            error: Some(error.into()),
            detail: Map::new(),
        }
    }

    /// Adds a detail entry (a number, string, bool or any JSON value).
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.detail.insert(key.into(), value.into());
        self
    }

    /// Whether the check passed.
    pub fn is_healthy(&self) -> bool {
        self.error.is_none()
    }

    /// The error of a failing check.
    pub fn error(&self) -> Option<&BoxError> {
        self.error.as_ref()
    }
}

/// What a health check's future may return.
pub trait IntoCheckOutcome: Send + 'static {
    /// The outcome.
    fn into_outcome(self) -> CheckOutcome;
}

impl IntoCheckOutcome for CheckOutcome {
    fn into_outcome(self) -> CheckOutcome {
        self
    }
}

impl IntoCheckOutcome for Result<(), BoxError> {
    fn into_outcome(self) -> CheckOutcome {
        match self {
            Ok(()) => CheckOutcome::healthy(),
            Err(e) => CheckOutcome::unhealthy(e),
        }
    }
}

impl IntoCheckOutcome for Result<CheckOutcome, BoxError> {
    fn into_outcome(self) -> CheckOutcome {
        self.unwrap_or_else(CheckOutcome::unhealthy)
    }
}

/// Wraps a check function for the registry.
pub(crate) fn check_fn<F, Fut>(check: F) -> crate::registry::HealthFn
where
    F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoCheckOutcome,
{
    Arc::new(move |a| {
        let fut = check(a);
        Box::pin(async move { fut.await.into_outcome() })
    })
}

/// `[health]`: how long `/readyz` keeps a result.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `cache_for` | `1s` | probes within this of the last run get its result (`0s`: no caching; probes arriving during a run still share it) |
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HealthConfig {
    #[serde(with = "humantime_serde")]
    cache_for: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            cache_for: Duration::from_secs(1),
        }
    }
}

/// Claims `[health]` and registers `/healthz` and `/readyz`.
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg: HealthConfig = s.config("health")?;
    let readiness = Arc::new(Readiness {
        cache_for: cfg.cache_for,
        state: Mutex::default(),
    });
    s.route(Route::get("/healthz", healthz).name("healthz"));
    s.route(
        Route::get("/readyz", move |app: AppHandle| {
            let readiness = readiness.clone();
            readiness.respond(app)
        })
        .name("readyz"),
    );
    Ok(())
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// The last `/readyz` result and the run in progress, shared by probes.
struct Readiness {
    cache_for: Duration,
    state: Mutex<ReadinessState>,
}

#[derive(Default)]
struct ReadinessState {
    last: Option<Arc<Report>>,
    /// The run in progress: a task of its own, so it finishes (and is kept) even when the
    /// probe that started it goes away.
    running: Option<Shared<BoxFuture<Option<Arc<Report>>>>>,
}

struct Report {
    started: Instant,
    finished: Instant,
    status: StatusCode,
    body: Bytes,
}

impl Report {
    fn response(&self) -> Response {
        let mut res = (self.status, self.body.clone()).into_response();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

impl Readiness {
    fn state(&self) -> MutexGuard<'_, ReadinessState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn respond(self: Arc<Self>, app: AppHandle) -> Response {
        let arrived = Instant::now();
        let run = {
            let mut state = self.state();
            if let Some(r) = &state.last {
                // A run that started after this probe arrived is as fresh as its own would be.
                if r.started >= arrived || r.finished.elapsed() < self.cache_for {
                    return r.response();
                }
            }
            match &state.running {
                Some(run) => run.clone(),
                None => {
                    let this = self.clone();
                    let task = tokio::spawn(async move {
                        let report = Arc::new(run(&app).await);
                        let mut state = this.state();
                        state.last = Some(report.clone());
                        state.running = None;
                        report
                    });
                    let run: BoxFuture<Option<Arc<Report>>> =
                        Box::pin(async move { task.await.ok() });
                    let run = run.shared();
                    state.running = Some(run.clone());
                    run
                }
            }
        };
        match run.await {
            Some(report) => report.response(),
            None => {
                // The run's task died before storing its result: let the next probe retry.
                self.state().running = None;
                tracing::error!("the readiness checks could not run");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "status": "fail", "checks": {} })),
                )
                    .into_response()
            }
        }
    }
}

/// Runs every check concurrently and renders the body.
async fn run(app: &AppHandle) -> Report {
    let started = Instant::now();
    let checks = app.0.health.iter().map(|h| {
        let app = app.clone();
        async move {
            let started = Instant::now();
            let check = std::panic::AssertUnwindSafe((h.check)(app));
            let result =
                tokio::time::timeout(h.timeout, futures_util::FutureExt::catch_unwind(check))
                    .await;
            let ms = started.elapsed().as_millis() as u64;
            let (ok, mut body, detail) = match result {
                Ok(Ok(outcome)) => match outcome.error {
                    None => (true, json!({ "status": "ok" }), outcome.detail),
                    Some(e) => {
                        tracing::warn!(check = %h.name, owner = %h.origin, error = %chain(&*e), "readiness check failed");
                        let body = json!({ "status": "fail", "error": bounded(&e.to_string()) });
                        (false, body, outcome.detail)
                    }
                },
                Ok(Err(_)) => {
                    tracing::error!(check = %h.name, owner = %h.origin, "readiness check panicked");
                    let body = json!({ "status": "fail", "error": "the check panicked" });
                    (false, body, Map::new())
                }
                Err(_) => {
                    tracing::warn!(check = %h.name, owner = %h.origin, timeout = ?h.timeout, "readiness check timed out");
                    let body = json!({
                        "status": "timeout",
                        "error": format!("no answer within {:?}", h.timeout),
                    });
                    (false, body, Map::new())
                }
            };
            body["duration_ms"] = ms.into();
            if !detail.is_empty() {
                body["detail"] = Value::Object(bounded_detail(detail));
            }
            (h.name.clone(), ok, body)
        }
    });
    let results = futures_util::future::join_all(checks).await;
    let all_ok = results.iter().all(|(_, ok, _)| *ok);
    let mut map = Map::new();
    for (name, _, body) in results {
        map.insert(name, body);
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        json!({ "status": if all_ok { "ok" } else { "fail" }, "checks": Value::Object(map) });
    Report {
        started,
        finished: Instant::now(),
        status,
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    }
}

/// An error and its sources, `outer: inner: root`, for the log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

/// The first [`MAX_ERROR_LEN`] characters of `message`, on one line.
fn bounded(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_LEN)
        .collect();
    if message.chars().count() > MAX_ERROR_LEN {
        out.push('…');
    }
    out
}

/// At most [`MAX_DETAIL_ENTRIES`] entries, each value at most [`MAX_DETAIL_VALUE_LEN`]
/// bytes of JSON and each key at most 64 characters.
fn bounded_detail(detail: Map<String, Value>) -> Map<String, Value> {
    detail
        .into_iter()
        .take(MAX_DETAIL_ENTRIES)
        .map(|(k, v)| {
            let k: String = k.chars().take(64).collect();
            let too_large = serde_json::to_vec(&v).map_or(true, |b| b.len() > MAX_DETAIL_VALUE_LEN);
            (
                k,
                if too_large {
                    Value::from("(too large)")
                } else {
                    v
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_text_is_bounded() {
        assert_eq!(bounded("refused\nat host"), "refused at host");
        let long = "x".repeat(500);
        assert_eq!(bounded(&long).chars().count(), MAX_ERROR_LEN + 1);
        let mut detail = Map::new();
        for i in 0..40 {
            detail.insert(format!("k{i:02}"), Value::from(i));
        }
        detail.insert("a_big".into(), Value::from("y".repeat(1000)));
        let shown = bounded_detail(detail);
        assert_eq!(shown.len(), MAX_DETAIL_ENTRIES);
        assert_eq!(shown["a_big"], "(too large)");
    }

    #[test]
    fn the_log_line_has_the_whole_chain() {
        let e = Wrapped(std::io::Error::other("connection refused"));
        assert_eq!(chain(&e), "pool: connection refused");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("pool")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
