//! The request timeout, cut at the handler so that its 503 passes through the after-steps.
//!
//! Core's request future (`service.rs`) arms one timer, only for a request that has to wait.
//! When `server.request_timeout` passes it first cuts the handler: every route handler is
//! wrapped in [`Timed`] (inside the same boxed future axum makes for it, so no allocation is
//! added), which then answers with the timeout 503 in place of the handler. That response
//! travels back through the after hooks, error handlers and tower layers (security headers,
//! for instance) like any other. Only if those do not finish within [`AFTER_STEPS_GRACE`]
//! more is the whole request dropped and a bare 503 sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::http_error::{ErrorKind, HttpError};
use crate::request::RequestMeta;

/// How long the after-steps of a timed-out request may take before it is dropped.
pub(crate) const AFTER_STEPS_GRACE: Duration = Duration::from_secs(1);

/// The timeout 503.
pub(crate) fn timeout_response() -> Response {
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The request took too long.",
    )
    .with_kind(ErrorKind::Timeout)
    .into_response()
}

/// A route handler that gives way to the timeout 503 once the request's time is up.
#[derive(Clone)]
pub(crate) struct Timed<H>(pub(crate) H);

impl<H, T, S> Handler<T, S> for Timed<H>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + 'static,
{
    type Future = TimedFuture<H::Future>;

    fn call(self, req: Request, state: S) -> Self::Future {
        let meta = req.extensions().get::<RequestMeta>().cloned();
        TimedFuture {
            inner: self.0.call(req, state),
            meta,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Timed`] handler.
    pub(crate) struct TimedFuture<F> {
        #[pin]
        inner: F,
        meta: Option<RequestMeta>,
    }
}

impl<F: Future<Output = Response>> Future for TimedFuture<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res);
        }
        match this.meta {
            Some(m) if m.timed_out.load(Ordering::Acquire) => Poll::Ready(timeout_response()),
            _ => Poll::Pending,
        }
    }
}
