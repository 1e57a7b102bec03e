//! The one core layer every request passes: request id, panic and timeout safety, default
//! error pages, one log line, and the request signals.
//!
//! It is written as a named future rather than an `async` block so that a request costs no
//! extra allocation here: the timeout timer is created only for a request that has to wait.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{CatchUnwind, Either, Ready, ready};
use http::{HeaderName, Method, StatusCode, Uri};
use tower_service::Service;

use crate::connection::{Activity, InFlight};
use crate::error::BoxError;
use crate::future::{BoxFuture, Eventually};
use crate::http_error::{ErrorMarker, HttpError, render_default, wants_json};
use crate::request::{MetaInner, RequestId, RequestMeta};
use crate::signals::{AnsweredBy, RequestFinished, RequestStarted};
use crate::{App, AppHandle};

/// The `X-Request-Id` header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The app as a tower service: what the server and the test client call.
#[derive(Clone)]
pub struct AppService {
    router: Router,
    app: AppHandle,
    peer: Option<SocketAddr>,
    activity: Option<Arc<Activity>>,
    timeout: Duration,
    body_limit: usize,
    emit_started: bool,
    emit_finished: bool,
}

impl App {
    /// The app as a `tower::Service`, for in-process use or custom servers.
    pub fn service(&self) -> AppService {
        AppService {
            router: self.router.clone(),
            app: self.handle.clone(),
            peer: None,
            activity: None,
            timeout: self.handle.0.server.request_timeout,
            body_limit: self.handle.0.server.body_limit,
            emit_started: self.handle.0.signals.has::<RequestStarted>(),
            emit_finished: self.handle.0.signals.has::<RequestFinished>(),
        }
    }
}

impl AppService {
    /// The service as if serving a connection from `peer` (the test client's `peer`).
    pub(crate) fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    pub(crate) fn for_connection(mut self, peer: SocketAddr, activity: Arc<Activity>) -> Self {
        self.peer = Some(peer);
        self.activity = Some(activity);
        self
    }
}

impl<B> Service<http::Request<B>> for AppService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> AppFuture {
        // Every body is bounded, streamed ones included: the extractors' limit covers only
        // what they buffer. (Wrapping costs nothing extra: the body is boxed either way.)
        let limit = self.body_limit;
        let in_flight = self
            .activity
            .as_ref()
            .map(|a| InFlight::start(a.clone(), req.body().size_hint().exact()));
        let mut req: Request = if req.body().is_end_stream() {
            // Nothing to read (most GETs): an empty body is not allocated, where the bounded
            // wrapper is boxed.
            req.map(|_| Body::empty())
        } else {
            req.map(|b| Body::new(http_body_util::Limited::new(b, limit)))
        };
        let logged = tracing::enabled!(target: "flagon::request", tracing::Level::INFO);
        let timed = logged || self.emit_finished;
        let read = crate::host::CoreHeaders::read(req.headers());
        let host_problem = crate::host::problem(req.version(), read.hosts);
        let id = read
            .request_id
            .and_then(RequestId::from_client)
            .unwrap_or_else(RequestId::generate);
        let accept = read.accept.cloned();
        let summary = (timed || self.emit_started).then(|| {
            Box::new(Summary {
                method: req.method().clone(),
                uri: req.uri().clone(),
                started: Instant::now(),
            })
        });
        let meta = RequestMeta::new(MetaInner {
            app: self.app.clone(),
            id,
            accept,
            peer: self.peer,
            locals: Default::default(),
            answered: std::sync::atomic::AtomicU8::new(0),
            route: std::sync::OnceLock::new(),
        });
        req.extensions_mut().insert(meta.clone());
        if let (true, Some(s)) = (self.emit_started, &summary) {
            self.app.0.signals.emit(RequestStarted {
                method: s.method.clone(),
                path: s.uri.path().to_owned(),
                request_id: meta.id.to_string(),
            });
        }
        let routed = match host_problem {
            None => Either::Left(self.router.call(req)),
            Some(problem) => {
                Either::Right(ready(Ok(HttpError::bad_request(problem).into_response())))
            }
        };
        AppFuture {
            inner: AssertUnwindSafe(routed).catch_unwind(),
            timer: None,
            timeout: self.timeout,
            handler_cut: false,
            saving: None,
            finish: Some(Finish {
                meta,
                summary,
                logged,
                emit_finished: self.emit_finished,
                in_flight,
            }),
        }
    }
}

/// The future of one request through [`AppService`].
pub struct AppFuture {
    /// The router's future, or the 400 of a request refused before routing (its `Host`).
    inner: CatchUnwind<AssertUnwindSafe<Either<RouteFuture<Infallible>, Refused>>>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    /// The timeout passed and the handler was told to answer with the 503.
    handler_cut: bool,
    /// The after-response steps of the request-scoped values the request made (a session
    /// save, a cookie), run once the response is ready.
    saving: Option<BoxFuture<Response>>,
    finish: Option<Finish>,
}

type Refused = Ready<Result<Response, Infallible>>;

struct Summary {
    method: Method,
    uri: Uri,
    started: Instant,
}

/// What happens once the response is ready. Kept small: it travels inside every request's
/// future, and what the request itself knows lives in its shared metadata.
struct Finish {
    meta: RequestMeta,
    /// Only when a log line or a signal needs it.
    summary: Option<Box<Summary>>,
    logged: bool,
    emit_finished: bool,
    /// The connection's record of this request (none in-process).
    in_flight: Option<InFlight>,
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(saving) = &mut this.saving {
            let res = std::task::ready!(saving.as_mut().poll(cx));
            let finish = this
                .finish
                .take()
                .expect("AppFuture polled after completion");
            return Poll::Ready(Ok(finish.complete(res)));
        }
        let res = loop {
            let polled = if this.handler_cut {
                crate::timeout::poll_cut(|| Pin::new(&mut this.inner).poll(cx))
            } else {
                Pin::new(&mut this.inner).poll(cx)
            };
            match polled {
                Poll::Ready(Ok(Ok(res))) => break res,
                Poll::Ready(Ok(Err(never))) => match never {},
                Poll::Ready(Err(panic)) => {
                    break HttpError::panic(&*panic, "request").into_response();
                }
                Poll::Pending => {}
            }
            // Only a request that has to wait pays for a timer.
            let timeout = this.timeout;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if this.handler_cut {
                tracing::warn!(target: "flagon::request", ?timeout, "request timed out and its after-steps did not finish: dropped");
                break crate::timeout::timeout_response();
            }
            // The handler gives way to the 503, which then passes the after hooks and
            // layers like any response (see `timeout.rs`); poll again at once.
            tracing::warn!(target: "flagon::request", ?timeout, "request timed out");
            this.handler_cut = true;
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + crate::timeout::AFTER_STEPS_GRACE);
        };
        if let Some(meta) = this
            .finish
            .as_ref()
            .map(|f| &f.meta)
            .filter(|m| m.locals.has_after_steps())
        {
            // The request made values with after-response steps (a session to save): run
            // them (store I/O) before the response leaves.
            let completed = !crate::http_error::incomplete(&res);
            let res = match crate::request_local::run_after_steps(meta, res, completed) {
                // Nothing to wait for (a session only read): no future at all.
                Eventually::Now(res) => res,
                Eventually::Later(mut saving) => match saving.as_mut().poll(cx) {
                    Poll::Ready(res) => res,
                    Poll::Pending => {
                        this.saving = Some(saving);
                        return Poll::Pending;
                    }
                },
            };
            let finish = this
                .finish
                .take()
                .expect("AppFuture polled after completion");
            return Poll::Ready(Ok(finish.complete(res)));
        }
        let finish = this
            .finish
            .take()
            .expect("AppFuture polled after completion");
        Poll::Ready(Ok(finish.complete(res)))
    }
}

impl Drop for AppFuture {
    fn drop(&mut self) {
        // Dropped before the response was ready: the client went away (or the server cut the
        // connection). The request still gets its log line and signal, with status 499.
        if let Some(finish) = self.finish.take() {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST);
            drop(finish.complete(res));
        }
    }
}

impl Finish {
    fn complete(self, res: Response) -> Response {
        // An error no hook chain rendered (a route without hooks): the default page.
        let mut res = match res.extensions().get::<ErrorMarker>().cloned() {
            Some(ErrorMarker(e)) => render_default(res, &e, wants_json(self.meta.accept.as_ref())),
            None => res,
        };
        res.headers_mut()
            .insert(X_REQUEST_ID, self.meta.id.header());
        if let Some(in_flight) = self.in_flight {
            res = in_flight.finish(res);
        }
        let Some(s) = self.summary else {
            return res;
        };
        let latency = s.started.elapsed();
        if self.logged {
            tracing::info!(
                target: "flagon::request",
                method = %s.method,
                path = %s.uri.path(),
                status = res.status().as_u16(),
                latency_us = latency.as_micros() as u64,
                request_id = %self.meta.id,
            );
        }
        if self.emit_finished {
            let s = *s;
            let (endpoint, blueprint) = match self.meta.route.get() {
                Some((e, b)) => (Some(e.clone()), b.clone()),
                None => (None, None),
            };
            let answered_by = self.meta.answered().unwrap_or(match endpoint {
                Some(_) => AnsweredBy::Handler,
                None => AnsweredBy::Router,
            });
            self.meta.app.0.signals.emit(RequestFinished {
                method: s.method,
                path: s.uri.path().to_owned(),
                status: res.status(),
                latency,
                request_id: self.meta.id.to_string(),
                endpoint,
                blueprint,
                answered_by,
            });
        }
        res
    }
}
