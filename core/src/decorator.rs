//! Route decorators: Flask's `@login_required`, `@limiter.limit(...)`, `@cache.cached(...)`.
//!
//! A [`Decorator`] is an around-step for the routes it is put on with
//! [`Route::with`](crate::Route::with) or [`Blueprint::with`](crate::Blueprint::with). It
//! sees the request after the app's and blueprints' before hooks, may answer without the
//! handler, and sees (and may change) the response; after hooks see what it returned.
//! Decorators run outermost first in the order written: a blueprint's (outer blueprint
//! first) around the route's own. Each names the extension that provides it, so a route
//! decorated by an extension that is not registered fails the build; and each carries a
//! short description that `routes` shows.
//!
//! Decorators are compiled into the route's chain at build. A route without decorators has
//! no decorator step at all.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;

use crate::future::BoxFuture;
use crate::request::RequestMeta;
use crate::route::HandlerFn;
use crate::signals::AnsweredBy;

pub(crate) type DecoratorFn = Arc<dyn Fn(Request, Next) -> BoxFuture<Response> + Send + Sync>;

/// An around-step for a route, provided by an extension: Flask's `@login_required`.
///
/// Put it on a route with [`Route::with`](crate::Route::with) or on every route of a
/// blueprint with [`Blueprint::with`](crate::Blueprint::with). It sees the request after the
/// app's and blueprints' before hooks, may answer without the handler, and sees (and may
/// change) the response; after hooks see what it returned. Decorators run outermost first in
/// the order written, a blueprint's (outer blueprint first) around the route's own. Each
/// names the extension that provides it, so a route decorated by an extension that is not
/// registered fails the build; its description is what `routes` shows. A route without
/// decorators has no decorator step at all.
///
/// An extension hands these out from functions, so that an app writes
/// `Route::get("/admin", admin).with(login_required())`:
///
/// ```
/// use flagon::{Decorator, Next, Route};
/// use flagon::axum::extract::Request;
/// use flagon::axum::response::IntoResponse;
/// use flagon::http::StatusCode;
///
/// /// Only requests with an `Authorization` header reach the view.
/// pub fn login_required() -> Decorator {
///     Decorator::new("login", "login required", |req: Request, next: Next| async move {
///         if !req.headers().contains_key("authorization") {
///             return StatusCode::UNAUTHORIZED.into_response();
///         }
///         let mut res = next.run(req).await;
///         res.headers_mut().insert("cache-control", "private".parse().unwrap());
///         res
///     })
/// }
///
/// async fn admin() -> &'static str { "admin" }
/// let route = Route::get("/admin", admin).with(login_required());
/// ```
///
/// A value (rather than a trait each decorator implements) keeps the call site short and
/// lets a decorator carry its settings in the closure: `limiter.limit("5/minute")` parses
/// its argument once and returns a `Decorator` that captures the parsed quota.
#[derive(Clone)]
pub struct Decorator {
    provider: &'static str,
    description: Arc<str>,
    pub(crate) call: DecoratorFn,
}

impl Decorator {
    /// A decorator provided by extension `provider` (its [`name`](crate::Extension::name);
    /// `"app"` for the app's own), described in `routes` as `description`. `f` receives the
    /// request and what follows it ([`Next`]), and returns the response.
    pub fn new<F, Fut>(provider: &'static str, description: impl Into<String>, f: F) -> Self
    where
        F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Decorator {
            provider,
            description: description.into().into(),
            call: Arc::new(move |req, next| Box::pin(f(req, next))),
        }
    }

    /// The extension that provides it.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Its short description (`login required`, `limit 5/minute`).
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl fmt::Debug for Decorator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decorator")
            .field("provider", &self.provider)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// What follows a decorator: the next decorator, or the handler.
pub struct Next {
    steps: Arc<[DecoratorFn]>,
    index: usize,
    handler: HandlerFn,
    /// Present when the app records who answered (someone subscribed to `RequestFinished`).
    meta: Option<RequestMeta>,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &(self.steps.len() - self.index))
            .finish_non_exhaustive()
    }
}

impl Next {
    /// Runs the rest of the route (later decorators, then the handler) and returns its
    /// response.
    pub async fn run(self, req: Request) -> Response {
        match self.steps.get(self.index) {
            Some(step) => {
                let step = step.clone();
                let next = Next {
                    index: self.index + 1,
                    ..self
                };
                step(req, next).await
            }
            None => {
                if let Some(meta) = &self.meta {
                    meta.mark_answered(AnsweredBy::Handler);
                }
                // Boxed (by the handler), so that the futures of the decorators before it
                // stay small: one that answers without the handler (a cache hit) never
                // builds this.
                (self.handler)(req).await
            }
        }
    }
}

/// Runs `steps` around `handler`; a response made without reaching the handler is marked
/// as the decorators' when the app records who answered.
pub(crate) async fn run(
    steps: Arc<[DecoratorFn]>,
    handler: HandlerFn,
    req: Request,
    track: bool,
) -> Response {
    let meta = if track {
        req.extensions().get::<RequestMeta>().cloned()
    } else {
        None
    };
    let next = Next {
        steps,
        index: 0,
        handler,
        meta: meta.clone(),
    };
    let res = next.run(req).await;
    if let Some(meta) = meta {
        meta.mark_answered(AnsweredBy::Decorator);
    }
    res
}
