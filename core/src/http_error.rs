//! `HttpError`: Flask's `abort()` for handlers and hooks, and the default error pages.
//!
//! A handler that returns `Err(HttpError)` (or anything convertible, through `?`) produces
//! an error response that error handlers can replace ([`Setup::error_handler`]). Without a
//! handler, the response is a small page in JSON or HTML, chosen by the `Accept` header.
//!
//! [`Setup::error_handler`]: crate::Setup::error_handler

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::error::BoxError;

/// What kind of failure an [`HttpError`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Raised on purpose by a handler or hook (`abort`).
    Abort,
    /// No route matched (404) or the method is not allowed (405).
    Routing,
    /// An unexpected error converted with `?`: a 500 whose cause is logged, never shown.
    Internal,
    /// A handler, hook or filter panicked.
    Panic,
    /// The request ran past the configured timeout.
    Timeout,
    /// The client went away before the response was ready.
    Cancelled,
}

/// An HTTP error: a status, a message safe to show, and an optional cause that is logged.
///
/// ```
/// use flagon::{HttpError, OrInternal};
///
/// async fn show(id: u32) -> Result<String, HttpError> {
///     if id == 0 {
///         return Err(HttpError::not_found("no such user"));
///     }
///     let n: u32 = "12".parse().or_500()?; // a 500, its cause logged, never shown
///     Ok(format!("user {}", id + n))
/// }
/// ```
pub struct HttpError {
    status: StatusCode,
    message: Cow<'static, str>,
    kind: ErrorKind,
    source: Option<BoxError>,
    /// Headers the error response carries (`Retry-After`, `WWW-Authenticate`).
    headers: Option<Box<HeaderMap>>,
}

impl HttpError {
    /// An error with `status` and a message shown to the client.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        HttpError {
            status,
            message: message.into(),
            kind: ErrorKind::Abort,
            source: None,
            headers: None,
        }
    }

    /// Flask's `abort(status)`: the status's standard reason as message.
    pub fn abort(status: StatusCode) -> Self {
        HttpError::new(status, status.canonical_reason().unwrap_or("Error"))
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        HttpError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        HttpError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        HttpError::new(StatusCode::NOT_FOUND, message)
    }

    /// A 500 whose cause is logged but not shown.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: Cow::Borrowed("The server could not complete the request."),
            kind: ErrorKind::Internal,
            source: Some(source.into()),
            headers: None,
        }
    }

    /// The answer to a request body that could not be read: 413 when it ran past a length
    /// limit (`server.body_limit`, or an [`http_body_util::Limited`] of the caller's), however
    /// deeply the limit error is wrapped, otherwise 400. The error is kept as the cause.
    ///
    /// ```
    /// use flagon::HttpError;
    /// use flagon::axum::body::{Body, to_bytes};
    ///
    /// async fn upload(body: Body) -> Result<String, HttpError> {
    ///     let bytes = to_bytes(body, 1024)
    ///         .await
    ///         .map_err(HttpError::from_body_error)?;
    ///     Ok(format!("{} bytes", bytes.len()))
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let err = upload(Body::from(vec![0u8; 2048])).await.unwrap_err();
    /// assert_eq!(err.status(), 413);
    /// # });
    /// ```
    pub fn from_body_error(error: impl Into<BoxError>) -> Self {
        let error = error.into();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*error);
        let too_large = std::iter::from_fn(|| {
            let e = cause?;
            cause = e.source();
            Some(e)
        })
        .any(|e| e.is::<http_body_util::LengthLimitError>());
        let (status, message) = if too_large {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            )
        };
        HttpError {
            source: Some(error),
            ..HttpError::new(status, message)
        }
    }

    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn routing(status: StatusCode) -> Self {
        HttpError::abort(status).with_kind(ErrorKind::Routing)
    }

    pub(crate) fn panic(payload: &(dyn std::any::Any + Send), during: &str) -> Self {
        let text = panic_message(payload);
        tracing::error!(target: "flagon::request", during, panic = %text, "panic while handling a request");
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: Cow::Borrowed("The server could not complete the request."),
            kind: ErrorKind::Panic,
            source: Some(format!("panic in {during}: {text}").into()),
            headers: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// An error with `status` whose typed `cause` stays reachable: through
    /// [`HttpError::find_cause`] (by type, as an error handler tells a CSRF refusal from another
    /// 403) and [`std::error::Error::source`]. The message shown to the client is the
    /// cause's `Display`, so use it for errors meant to be shown (a refusal's reason); hide an
    /// unexpected failure behind [`HttpError::internal`] instead.
    ///
    /// ```
    /// use flagon::HttpError;
    /// use http::StatusCode;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("the account is locked")]
    /// struct Locked;
    ///
    /// let e = HttpError::with_cause(StatusCode::FORBIDDEN, Locked);
    /// assert_eq!(e.message(), "the account is locked");
    /// assert!(e.find_cause::<Locked>().is_some());
    /// ```
    pub fn with_cause(
        status: StatusCode,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        HttpError {
            status,
            message: Cow::Owned(cause.to_string()),
            kind: ErrorKind::Abort,
            source: Some(Box::new(cause)),
            headers: None,
        }
    }

    /// The first error of type `T` in the cause chain (the cause, its source, and so on).
    pub fn find_cause<T: std::error::Error + 'static>(&self) -> Option<&T> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self.source.as_deref()?);
        while let Some(e) = next {
            if let Some(t) = e.downcast_ref::<T>() {
                return Some(t);
            }
            next = e.source();
        }
        None
    }

    /// Adds a header to the error's response: `Retry-After` on a 429 or 503,
    /// `WWW-Authenticate` on a 401. It is kept on whatever page answers the error: the
    /// default page, or the response of an app's error handler
    /// ([`Setup::error_handler`](crate::Setup::error_handler)) unless that handler sets the
    /// same header itself. A second value of the same name is appended.
    ///
    /// ```
    /// use flagon::HttpError;
    /// use flagon::axum::response::IntoResponse;
    /// use http::{HeaderValue, StatusCode, header::RETRY_AFTER};
    ///
    /// let e = HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "Down for maintenance.")
    ///     .with_header(RETRY_AFTER, HeaderValue::from_static("120"));
    /// assert_eq!(e.headers().get(RETRY_AFTER).unwrap(), "120");
    /// let res = e.into_response();
    /// assert_eq!(res.headers().get(RETRY_AFTER).unwrap(), "120");
    /// ```
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers
            .get_or_insert_with(Default::default)
            .append(name, value);
        self
    }

    /// The headers added with [`HttpError::with_header`].
    pub fn headers(&self) -> &HeaderMap {
        static NONE: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        match &self.headers {
            Some(h) => h,
            None => NONE.get_or_init(HeaderMap::new),
        }
    }

    /// Whether the router produced this error (404/405): such errors go to the app's
    /// handlers only, as in Flask.
    pub fn is_routing(&self) -> bool {
        self.kind == ErrorKind::Routing
    }
}

impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpError")
            .field("status", &self.status)
            .field("message", &self.message)
            .field("kind", &self.kind)
            .field("cause", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for HttpError {
    /// The status and the message shown to the client; the cause is the error's `source()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `?` on a boxed error (what hooks, commands and stores return): a 500, its cause logged.
impl From<BoxError> for HttpError {
    fn from(e: BoxError) -> Self {
        HttpError::internal(e)
    }
}

/// `?` on I/O: a 500, its cause logged.
impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::internal(e)
    }
}

/// Core's own errors that a handler meets convert with `?` too, each a 500 whose cause is
/// kept: they are bugs in the app (a value that is not JSON, a wrong endpoint name), not the
/// client's fault.
macro_rules! internal_from {
    ($($(#[$doc:meta])* $ty:ty;)*) => {$(
        $(#[$doc])*
        impl From<$ty> for HttpError {
            fn from(e: $ty) -> Self {
                HttpError::internal(e)
            }
        }
    )*};
}

internal_from! {
    /// `?` on JSON (de)serialisation in a handler: a 500, its cause logged.
    serde_json::Error;
}

/// Any other error `E` becomes a 500 with `?` after `.map_err(HttpError::internal)`, or
/// through this extension trait: `value.or_500()?`.
pub trait OrInternal<T> {
    /// The value, or a 500 [`HttpError`] whose cause (`E`) is logged, never shown.
    fn or_500(self) -> Result<T, HttpError>;
}

impl<T, E: Into<BoxError>> OrInternal<T> for Result<T, E> {
    fn or_500(self) -> Result<T, HttpError> {
        self.map_err(HttpError::internal)
    }
}

/// Marks a response as an error that has not yet been rendered.
#[derive(Clone)]
pub(crate) struct ErrorMarker(pub(crate) Arc<HttpError>);

/// Stays on a rendered error response: what kind of failure produced it.
#[derive(Clone, Copy)]
pub(crate) struct Failed(pub(crate) ErrorKind);

/// Whether `res` answers a request that did not complete (a panic or a timeout), whose
/// session changes must not be kept.
pub(crate) fn incomplete(res: &Response) -> bool {
    let kind = res
        .extensions()
        .get::<ErrorMarker>()
        .map(|m| m.0.kind())
        .or_else(|| res.extensions().get::<Failed>().map(|f| f.0));
    matches!(kind, Some(ErrorKind::Panic | ErrorKind::Timeout))
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = self.status;
        if let Some(h) = &self.headers {
            res.headers_mut()
                .extend(h.iter().map(|(n, v)| (n.clone(), v.clone())));
        }
        if let (ErrorKind::Internal, Some(src)) = (self.kind, &self.source) {
            tracing::error!(target: "flagon::request", error = %src, "request failed");
        }
        res.extensions_mut().insert(ErrorMarker(Arc::new(self)));
        res
    }
}

/// Whether the client prefers JSON over HTML, from its `Accept` header: how core picks
/// between a JSON and an HTML error page, for extensions that answer on their own (a 429,
/// a 503) to choose the same way. `application/json` and any `+json` type count as JSON;
/// `*/*` or no header means HTML.
///
/// ```
/// use flagon::http::HeaderValue;
/// assert!(flagon::wants_json(Some(&HeaderValue::from_static("application/problem+json"))));
/// assert!(!flagon::wants_json(Some(&HeaderValue::from_static("text/html,application/json;q=0.9"))));
/// assert!(!flagon::wants_json(None));
/// ```
pub fn wants_json(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut json, mut html) = (-1.0f32, -1.0f32);
    for item in accept.split(',').take(32) {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if media == "application/json" || media.ends_with("+json") {
            json = json.max(q);
        } else if media == "text/html" || media == "application/xhtml+xml" {
            html = html.max(q);
        }
    }
    json > 0.0 && json > html
}

/// Turns an unrendered error response into the default page, keeping its headers.
pub(crate) fn render_default(res: Response, error: &HttpError, json: bool) -> Response {
    let (mut parts, _) = res.into_parts();
    parts.extensions.remove::<ErrorMarker>();
    parts.extensions.insert(Failed(error.kind()));
    let status = error.status;
    let title = status.canonical_reason().unwrap_or("Error");
    let (body, ctype) = if json {
        let v = serde_json::json!({
            "error": { "status": status.as_u16(), "title": title, "message": error.message() }
        });
        (v.to_string(), "application/json")
    } else {
        (
            format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n<body><h1>{title}</h1>\n<p>{msg}</p></body></html>\n",
                code = status.as_u16(),
                title = escape_html(title),
                msg = escape_html(error.message()),
            ),
            "text/html; charset=utf-8",
        )
    };
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    // The page depends on `Accept`: caches must not serve the JSON one to a browser.
    parts
        .headers
        .append(http::header::VARY, HeaderValue::from_static("accept"));
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Copies onto `page` (an error handler's answer) the headers of the error response it
/// replaces (`Retry-After`, `WWW-Authenticate`, rate-limit headers) that the page does not
/// set itself; the body's own headers (`Content-Type`, `Content-Length`, `Content-Encoding`)
/// are the page's.
pub(crate) fn carry_headers(from: &Response, page: &mut Response) {
    use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
    if from.headers().is_empty() {
        return;
    }
    let carried: Vec<(HeaderName, HeaderValue)> = from
        .headers()
        .iter()
        .filter(|(n, _)| {
            ![
                CONTENT_TYPE,
                CONTENT_LENGTH,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
            ]
            .contains(n)
                && !page.headers().contains_key(*n)
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    for (n, v) in carried {
        page.headers_mut().append(n, v);
    }
}

/// Minimal HTML escaping for text content and attribute values (`& < > " '`).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let _ = write_escaped_html(&mut out, s);
    out
}

/// Writes `s` HTML-escaped into `out`, copying unescaped runs whole.
pub(crate) fn write_escaped_html(out: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    let bytes = s.as_bytes();
    let mut last = 0;
    while let Some(i) = next_to_escape(bytes, last) {
        out.write_str(&s[last..i])?;
        out.write_str(escape_of(bytes[i]).unwrap_or_default())?;
        last = i + 1;
    }
    out.write_str(&s[last..])
}

/// What HTML escaping writes for `b`, if it changes it.
fn escape_of(b: u8) -> Option<&'static str> {
    Some(match b {
        b'&' => "&amp;",
        b'<' => "&lt;",
        b'>' => "&gt;",
        b'"' => "&quot;",
        b'\'' => "&#x27;",
        _ => return None,
    })
}

/// The index of the first byte at or after `from` that escaping changes. Eight bytes at a
/// time are passed with one test while none of them could be one (template values are
/// mostly letters and spaces), then the rest byte by byte.
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if may_need_escaping(word)
            && let Some(p) = chunk.iter().position(|&b| escape_of(b).is_some())
        {
            return Some(i + p);
        }
        i += 8;
    }
    let tail = bytes.get(i..).unwrap_or_default();
    tail.iter()
        .position(|&b| escape_of(b).is_some())
        .map(|p| i + p)
}

/// Whether a byte of `word` lies in `"`..=`>` (0x22 to 0x3e), where all five escaped
/// bytes are: the "has a byte between m and n" bit trick (exclusive bounds 0x21 and 0x3f),
/// computed per byte without carries between them; bytes from 0x80 never match.
fn may_need_escaping(word: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const LOW7: u64 = ONES * 0x7f;
    const HIGH: u64 = ONES * 0x80;
    let low = word & LOW7;
    let below_upper = (ONES * (0x7f + 0x3f)).wrapping_sub(low);
    let above_lower = low + ONES * (0x7f - 0x21);
    below_upper & !word & above_lower & HIGH != 0
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_the_byte_by_byte_rule() {
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'a', b'b', b, b'c', b'd', b'e', b'f', b'g']);
            assert_eq!(
                may_need_escaping(word),
                (0x22..=0x3e).contains(&b),
                "{b:#x}"
            );
        }
        let cases = [
            ("", ""),
            ("plain text here", "plain text here"),
            ("a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&#x27;"),
            ("0123456789/,.-:; end <", "0123456789/,.-:; end &lt;"),
            ("sixteen letters!<", "sixteen letters!&lt;"),
            ("caf\u{e9} <\u{1f319}>", "caf\u{e9} &lt;\u{1f319}&gt;"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_html(input), want, "{input}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(wants_json(Some(&h("application/json"))));
        assert!(!wants_json(Some(&h("text/html,application/json;q=0.9"))));
        assert!(wants_json(Some(&h("text/html;q=0.5, application/json"))));
        assert!(wants_json(Some(&h("application/problem+json"))));
        assert!(!wants_json(Some(&h("*/*"))));
        assert!(!wants_json(None));
    }
}
