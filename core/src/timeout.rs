//! The request timeout, cut at the handler so that its 503 passes through the after-steps.
//!
//! Core's request future (`service.rs`) arms one timer, only for a request that has to wait.
//! When `server.request_timeout` passes it first cuts the handler: every route handler is
//! wrapped in [`Timed`] (inside the same boxed future axum makes for it, so no allocation is
//! added), and the request is polled once more inside [`poll_cut`]; a handler still pending
//! then answers with the timeout 503 in its place. That response
//! travels back through the after hooks, error handlers and tower layers (security headers,
//! for instance) like any other. Only if those do not finish within [`AFTER_STEPS_GRACE`]
//! more is the whole request dropped and a bare 503 sent.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::http_error::{ErrorKind, HttpError};

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

/// A deadline `bound` after the moment it is first needed: a store call or after-response
/// step that is ready on its first poll reads no clock. Calls that share one deadline (a
/// session save) share one budget from the first of them that has to wait.
pub(crate) struct Deadline {
    bound: Duration,
    at: Option<tokio::time::Instant>,
}

impl Deadline {
    pub(crate) fn after(bound: Duration) -> Self {
        Deadline { bound, at: None }
    }

    fn at(&mut self) -> tokio::time::Instant {
        let bound = self.bound;
        *self
            .at
            .get_or_insert_with(|| tokio::time::Instant::now() + bound)
    }
}

/// `fut` bounded by `deadline` (`None` once it passes), arming no timer and reading no clock
/// for a future that is ready on its first poll (a memory store call, most after-response
/// steps): tokio's timer entry costs more to make and drop than such a call. The timer of
/// a future that has to wait is boxed, so the futures that await this one (a session load,
/// made on every request with a cookie) stay small. Like `tokio::time::timeout_at`, a ready
/// future wins over a deadline that has passed.
pub(crate) async fn ready_or_by<F: Future>(deadline: &mut Deadline, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(out) = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Some(out);
    }
    let mut timer = Box::pin(tokio::time::sleep_until(deadline.at()));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

std::thread_local! {
    /// Set only while core's request future re-polls a timed-out request, so the handler
    /// polled inside that poll gives way. A flag scoped to one synchronous poll (like
    /// tokio's cooperative budget), not shared state: it costs a request nothing until its
    /// handler is pending at the deadline, where a per-request flag would cost a lookup and
    /// a reference count on every request.
    static CUTTING: Cell<bool> = const { Cell::new(false) };
}

/// Polls `f` with the handler inside it told to give way to the timeout 503.
pub(crate) fn poll_cut<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CUTTING.with(|c| c.set(false));
        }
    }
    CUTTING.with(|c| c.set(true));
    let _reset = Reset;
    f()
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
        TimedFuture {
            inner: self.0.call(req, state),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Timed`] handler.
    pub(crate) struct TimedFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = Response>> Future for TimedFuture<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project().inner.poll(cx) {
            Poll::Ready(res) => Poll::Ready(res),
            Poll::Pending if CUTTING.with(Cell::get) => Poll::Ready(timeout_response()),
            Poll::Pending => Poll::Pending,
        }
    }
}
