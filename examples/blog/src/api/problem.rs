//! The API's errors: RFC 9457 `application/problem+json` bodies, whatever went wrong.

use flagon::HttpError;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use flagon::http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error the API answers with: status, a short machine-readable `code`, a message for
/// people (`detail`, in the request's language) and, for a refused field, its name.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// `about:blank`: the status says what kind of problem it is; `code` says more.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// What went wrong, for programs (`invalid-field`, `malformed-json`, …).
    pub code: &'static str,
    /// The field at fault (422s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    headers: HeaderMap,
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
            headers: HeaderMap::new(),
        }
    }

    /// 400: the request itself is unusable (not JSON, not an object, a bad query).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422: well-formed, but `field` is refused.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", detail);
        p.field = Some(field.into());
        p
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, code, detail)
            .header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 429 with `Retry-After: secs`.
    pub fn too_many(detail: impl Into<String>, secs: u64) -> Problem {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", detail)
            .header(RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }

    /// Adds a response header.
    pub fn header(mut self, name: flagon::http::HeaderName, value: HeaderValue) -> Problem {
        self.headers.append(name, value);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = flagon::serde_json::to_string(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in &self.headers {
            h.append(name.clone(), value.clone());
        }
        res
    }
}

/// What an API handler fails with: a [`Problem`] it chose, or an [`HttpError`] from an
/// extension (a database outage, a throttled login), which the blueprint's error handlers
/// turn into a problem (a 500's cause is logged by core, never shown).
#[derive(Debug)]
pub enum ApiError {
    /// Answered as it is.
    Problem(Box<Problem>),
    /// Answered through the error handlers.
    Http(HttpError),
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError::Problem(Box::new(p))
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        ApiError::Http(e)
    }
}

impl From<flagon_db::Error> for ApiError {
    fn from(e: flagon_db::Error) -> Self {
        ApiError::Http(e.into())
    }
}

impl From<flagon_db::sqlx::Error> for ApiError {
    fn from(e: flagon_db::sqlx::Error) -> Self {
        ApiError::Http(HttpError::internal(e))
    }
}

impl From<flagon_db::PaginateError> for ApiError {
    fn from(e: flagon_db::PaginateError) -> Self {
        ApiError::Http(e.into())
    }
}

impl From<flagon_login::PasswordError> for ApiError {
    fn from(e: flagon_login::PasswordError) -> Self {
        ApiError::Http(e.into())
    }
}

impl From<flagon_login::TokenError> for ApiError {
    fn from(e: flagon_login::TokenError) -> Self {
        ApiError::Http(e.into())
    }
}

impl From<flagon_login::LoginError> for ApiError {
    fn from(e: flagon_login::LoginError) -> Self {
        ApiError::Http(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Problem(p) => p.into_response(),
            ApiError::Http(e) => e.into_response(),
        }
    }
}

/// The problem for an [`HttpError`] raised in the blueprint (by a handler, an extractor or
/// core: a CSRF refusal, an oversized body, a database outage). Its headers
/// (`Retry-After`, `WWW-Authenticate`) are carried over by core.
pub fn from_http_error(e: &HttpError) -> Problem {
    let status = e.status();
    let code = match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 if e.message().starts_with("CSRF") => "csrf",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        413 => "body-too-large",
        415 => "unsupported-media-type",
        422 => "invalid-field",
        429 => "too-many-requests",
        503 => "unavailable",
        _ => "error",
    };
    Problem::new(status, code, e.message())
}

/// The problem for an error in the blueprint, as [`from_http_error`] makes it, except that
/// a CSRF refusal of a request that carries neither a cookie nor credentials is the 401 it
/// really is: such a request could never pass the check (the token is bound to a cookie),
/// and what it lacks is an access token.
pub fn for_error(ctx: &flagon::ErrorContext) -> Problem {
    use flagon::http::header::{AUTHORIZATION, COOKIE};
    let headers = ctx.request.headers();
    let bare = !headers.contains_key(COOKIE) && !headers.contains_key(AUTHORIZATION);
    let p = from_http_error(&ctx.error);
    if p.code == "csrf" && bare {
        return Problem::unauthorized(
            "login-required",
            "Send an access token: Authorization: Bearer <token>.",
        );
    }
    p
}

/// Every status the blueprint's error handlers render as a problem.
pub const HANDLED: [StatusCode; 13] = [
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::CONFLICT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    StatusCode::UNPROCESSABLE_ENTITY,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::SERVICE_UNAVAILABLE,
];
