//! The 429 response and the rate-limit headers.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flagon::HttpError;
use flagon::axum::body::Body;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, VARY};
use flagon::http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::{LimiterError, retry_secs};
use crate::parse::Rate;

/// A refused check: which limit, how long to wait, when the bucket is full again.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub(crate) rate: Rate,
    pub(crate) wait: Duration,
    pub(crate) reset: Duration,
}

/// An admitted check: the limit with the fewest requests left.
#[derive(Clone, Debug)]
pub(crate) struct Passed {
    pub(crate) rate: Rate,
    pub(crate) remaining: u32,
    pub(crate) reset: Duration,
}

fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `RateLimit-Policy`: one Structured-Field list item per limit,
/// `"5/minute";q=5;w=60`.
fn policy(rates: &[Rate]) -> String {
    let mut out = String::new();
    for (i, r) in rates.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{r}\";q={};w={}", r.count(), r.period().as_secs());
    }
    out
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

/// Adds `RateLimit` and `RateLimit-Policy` for an admitted request.
pub(crate) fn success_headers(headers: &mut HeaderMap, rates: &[Rate], passed: &Passed) {
    insert(headers, "ratelimit-policy", policy(rates));
    insert(
        headers,
        "ratelimit",
        format!(
            "\"{}\";r={};t={}",
            passed.rate,
            passed.remaining,
            secs_up(passed.reset)
        ),
    );
}

/// The 429: `Retry-After`, `RateLimit`, `RateLimit-Policy`, optionally the legacy
/// `X-RateLimit-*`, `Cache-Control: no-store`; a problem+json body for API clients, else an
/// [`HttpError`] the app's 429 handler or core's default page renders.
pub(crate) fn too_many(
    request_headers: &HeaderMap,
    rates: &[Rate],
    refusal: &Refusal,
    legacy: bool,
) -> Response {
    let retry = retry_secs(refusal.wait);
    let reset = secs_up(refusal.reset).max(retry);
    let limit = refusal.rate.to_string();
    let error = LimiterError::Exceeded {
        limit: limit.clone(),
        retry_after_secs: retry,
    };
    let body = flagon::serde_json::json!({
        "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
        "title": "Too Many Requests",
        "status": 429,
        "detail": error.to_string(),
        "limit": limit,
        "retry_after": retry,
    });
    let mut res = refusal_response(
        request_headers,
        StatusCode::TOO_MANY_REQUESTS,
        error,
        body,
        retry,
    );
    let h = res.headers_mut();
    insert(h, "ratelimit-policy", policy(rates));
    insert(h, "ratelimit", format!("\"{limit}\";r=0;t={reset}"));
    if legacy {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        h.insert("x-ratelimit-limit", HeaderValue::from(refusal.rate.count()));
        h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
        h.insert("x-ratelimit-reset", HeaderValue::from(now + reset));
    }
    res
}

/// The 503 of `fail_mode = "closed"` while Redis cannot decide: `Retry-After`,
/// `Cache-Control: no-store`, a problem+json body for API clients, else an [`HttpError`] the
/// app's 503 handler or core's default page renders.
pub(crate) fn unavailable(request_headers: &HeaderMap, wait: Duration) -> Response {
    let retry = retry_secs(wait);
    let error = LimiterError::Unavailable {
        retry_after_secs: retry,
    };
    let body = flagon::serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": error.to_string(),
        "retry_after": retry,
    });
    refusal_response(
        request_headers,
        StatusCode::SERVICE_UNAVAILABLE,
        error,
        body,
        retry,
    )
}

/// A refusal (429 or 503): `problem` as `application/problem+json` (with `Vary: Accept`)
/// for API clients, else an [`HttpError`] carrying `error` for the app's handler or core's
/// default page; either way with `Retry-After: retry` and `Cache-Control: no-store`.
fn refusal_response(
    request_headers: &HeaderMap,
    status: StatusCode,
    error: LimiterError,
    problem: flagon::serde_json::Value,
    retry: u64,
) -> Response {
    let mut res = if flagon::wants_json(request_headers.get(ACCEPT)) {
        let mut res = Response::new(Body::from(problem.to_string()));
        *res.status_mut() = status;
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res.headers_mut()
            .append(VARY, HeaderValue::from_static("accept"));
        res
    } else {
        HttpError::with_cause(status, error).into_response()
    };
    let h = res.headers_mut();
    h.insert(RETRY_AFTER, HeaderValue::from(retry));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The limiter's headers for an admitted response of a route limited by a guard
/// (`headers_on_success`), kept in the request's `g` for the limiter's after hook.
#[derive(Clone, Debug)]
pub(crate) struct LimitHeaders(pub(crate) HeaderMap);

impl LimitHeaders {
    /// Adds those `res` lacks.
    pub(crate) fn restore(self, res: &mut Response) {
        for (name, value) in self.0.iter() {
            if !res.headers().contains_key(name) {
                res.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
}
