//! The tower layer that gives every request a lazy session and persists it afterwards.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use axum::routing::Route;
use futures_util::future::Either;
use tower_layer::Layer;
use tower_service::Service;

use super::runtime::{RequestSession, SessionRuntime};
use crate::hooks::BoxFuture;
use crate::request::RequestMeta;

/// Inserts the lazy session handle; after the response, saves what changed.
#[derive(Clone, Copy, Default)]
pub(crate) struct SessionLayer;

impl Layer<Route> for SessionLayer {
    type Service = SessionService;

    fn layer(&self, inner: Route) -> SessionService {
        SessionService { inner }
    }
}

#[derive(Clone)]
pub(crate) struct SessionService {
    inner: Route,
}

impl Service<Request> for SessionService {
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<<Route as Service<Request>>::Future, BoxFuture<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let rt = req
            .extensions()
            .get::<RequestMeta>()
            .and_then(|m| m.app.slot::<Arc<SessionRuntime>>())
            .cloned();
        let Some(rt) = rt else {
            return Either::Left(self.inner.call(req));
        };
        let handle = Arc::new(RequestSession::new(rt));
        req.extensions_mut().insert(handle.clone());
        let fut = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let res = fut.await?;
            Ok(handle.finish(res).await)
        }))
    }
}
