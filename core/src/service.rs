//! The one core layer every request passes: request id, panic and timeout safety, default
//! error pages, one log line, and the request signals.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::header::ACCEPT;
use http::{HeaderMap, HeaderName, StatusCode};
use tower_service::Service;

use crate::hooks::BoxFuture;
use crate::http_error::{ErrorKind, HttpError, render_if_error};
use crate::request::{RequestId, RequestMeta};
use crate::signals::{RequestFinished, RequestStarted};
use crate::{App, AppHandle};

/// The `X-Request-Id` header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The app as a tower service: what the server and the test client call.
#[derive(Clone)]
pub struct AppService {
    router: Router,
    app: AppHandle,
    peer: Option<SocketAddr>,
    timeout: Duration,
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
            timeout: self.handle.0.server.request_timeout,
            emit_started: self.handle.0.signals.has::<RequestStarted>(),
            emit_finished: self.handle.0.signals.has::<RequestFinished>(),
        }
    }
}

impl AppService {
    pub(crate) fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }
}

impl Service<Request> for AppService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let id = req
            .headers()
            .get(X_REQUEST_ID)
            .and_then(RequestId::from_client)
            .unwrap_or_else(|| RequestId::generate(&self.app.0.ids));
        let method = req.method().clone();
        let uri = req.uri().clone();
        let accept = req.headers().get(ACCEPT).cloned();
        req.extensions_mut().insert(RequestMeta {
            app: self.app.clone(),
            id: id.clone(),
            peer: self.peer,
        });
        if let Some(peer) = self.peer {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        if self.emit_started {
            self.app.0.signals.emit(RequestStarted {
                method: method.clone(),
                path: uri.path().to_owned(),
                request_id: id.as_str().to_owned(),
            });
        }
        let fut = self.router.call(req);
        let timeout = self.timeout;
        let app = self.emit_finished.then(|| self.app.clone());
        Box::pin(async move {
            let res = match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind())
                .await
            {
                Ok(Ok(Ok(res))) => res,
                Ok(Ok(Err(never))) => match never {},
                Ok(Err(panic)) => HttpError::panic(&*panic, "request").into_response(),
                Err(_) => {
                    tracing::warn!(target: "flagon::request", method = %method, path = %uri.path(), timeout = ?timeout, "request timed out");
                    HttpError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The request took too long.",
                    )
                    .with_kind(ErrorKind::Timeout)
                    .into_response()
                }
            };
            let mut res = if res
                .extensions()
                .get::<crate::http_error::ErrorMarker>()
                .is_some()
            {
                let mut h = HeaderMap::new();
                if let Some(a) = accept {
                    h.insert(ACCEPT, a);
                }
                render_if_error(res, &h)
            } else {
                res
            };
            res.headers_mut().insert(X_REQUEST_ID, id.header());
            let latency = started.elapsed();
            tracing::info!(
                target: "flagon::request",
                method = %method,
                path = %uri.path(),
                status = res.status().as_u16(),
                latency_us = latency.as_micros() as u64,
                request_id = id.as_str(),
            );
            if let Some(app) = app {
                app.0.signals.emit(RequestFinished {
                    method,
                    path: uri.path().to_owned(),
                    status: res.status(),
                    latency,
                    request_id: id.as_str().to_owned(),
                });
            }
            Ok(res)
        })
    }
}
