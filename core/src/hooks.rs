//! Request hooks with Flask's semantics, compiled per route into one chain.
//!
//! * `before_request` hooks run app first, then blueprints outer to inner, each scope in
//!   registration order. A hook that breaks with a response skips the remaining before hooks
//!   and the view; after hooks and teardown still run. Before hooks run for 404s too.
//! * `after_request` hooks run innermost blueprint first, then the app, each scope in reverse
//!   registration order. Each may replace the response.
//! * `teardown_request` hooks run in the same order as after hooks, always, every one of them,
//!   with the request's error if it failed (an error response, a panic, or cancellation).
//!
//! A route whose chain is empty is called directly: no hook machinery runs for it.

use std::future::Future;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::AppHandle;
use crate::error::{BoxError, Origin};
use crate::future::BoxFuture;
use crate::g::G;
use crate::http_error::{
    ErrorMarker, Failed, HttpError, carry_headers, render_default, wants_json,
};
use crate::request::RequestMeta;
use crate::signals::AnsweredBy;

pub(crate) type BeforeFn =
    Arc<dyn Fn(Request) -> BoxFuture<ControlFlow<Response, Request>> + Send + Sync>;
pub(crate) type AfterFn =
    Arc<dyn Fn(RequestContext, Response) -> BoxFuture<Response> + Send + Sync>;
pub(crate) type TeardownFn = Arc<
    dyn Fn(RequestContext, Option<Arc<HttpError>>) -> BoxFuture<Result<(), BoxError>> + Send + Sync,
>;
pub(crate) type ErrorHandlerFn = Arc<dyn Fn(ErrorContext) -> BoxFuture<Response> + Send + Sync>;

pub(crate) fn before_fn<F, Fut>(f: F) -> BeforeFn
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ControlFlow<Response, Request>> + Send + 'static,
{
    Arc::new(move |r| Box::pin(f(r)))
}

pub(crate) fn after_fn<F, Fut>(f: F) -> AfterFn
where
    F: Fn(RequestContext, Response) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    Arc::new(move |c, r| Box::pin(f(c, r)))
}

pub(crate) fn teardown_fn<F, Fut>(f: F) -> TeardownFn
where
    F: Fn(RequestContext, Option<Arc<HttpError>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Arc::new(move |c, e| Box::pin(f(c, e)))
}

pub(crate) fn error_handler_fn<F, Fut, R>(f: F) -> ErrorHandlerFn
where
    F: Fn(ErrorContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    let f = Arc::new(f);
    Arc::new(move |c| {
        let f = f.clone();
        Box::pin(async move { f(c).await.into_response() })
    })
}

/// The hooks and error handlers of one scope: the app, or one blueprint.
#[derive(Clone, Default)]
pub(crate) struct HookSet {
    pub(crate) before: Vec<(Origin, BeforeFn)>,
    pub(crate) after: Vec<(Origin, AfterFn)>,
    pub(crate) teardown: Vec<(Origin, TeardownFn)>,
    pub(crate) errors: Vec<(Origin, StatusCode, ErrorHandlerFn)>,
}

/// Everything that runs around one route's view, in execution order.
#[derive(Default)]
pub(crate) struct Chain {
    pub(crate) endpoint: Option<Arc<str>>,
    pub(crate) blueprint: Option<Arc<str>>,
    pub(crate) before: Vec<BeforeFn>,
    pub(crate) after: Vec<AfterFn>,
    pub(crate) teardown: Vec<TeardownFn>,
    /// Lookup order: innermost blueprint first, then the app.
    pub(crate) handlers: Vec<(StatusCode, ErrorHandlerFn)>,
    /// The app's handlers alone, for routing errors.
    pub(crate) app_handlers: Vec<(StatusCode, ErrorHandlerFn)>,
    /// How many of the first `before` steps are route guards.
    pub(crate) guards: usize,
    /// Record who answered in the request's metadata (for `RequestFinished`).
    pub(crate) track: bool,
}

impl Chain {
    /// Compiles the chain for a route in blueprints `scopes` (outermost first).
    pub(crate) fn compile(
        app: &HookSet,
        scopes: &[&HookSet],
        endpoint: Option<Arc<str>>,
        blueprint: Option<Arc<str>>,
    ) -> Chain {
        let mut chain = Chain {
            endpoint,
            blueprint,
            ..Chain::default()
        };
        let outer_to_inner = std::iter::once(app).chain(scopes.iter().copied());
        for set in outer_to_inner {
            chain
                .before
                .extend(set.before.iter().map(|(_, f)| f.clone()));
        }
        let inner_to_outer: Vec<&HookSet> = scopes
            .iter()
            .rev()
            .copied()
            .chain(std::iter::once(app))
            .collect();
        for set in &inner_to_outer {
            chain
                .after
                .extend(set.after.iter().rev().map(|(_, f)| f.clone()));
            chain
                .teardown
                .extend(set.teardown.iter().rev().map(|(_, f)| f.clone()));
            chain
                .handlers
                .extend(set.errors.iter().map(|(_, s, f)| (*s, f.clone())));
        }
        chain.app_handlers = app.errors.iter().map(|(_, s, f)| (*s, f.clone())).collect();
        chain
    }

    /// Whether anything after the view runs (and so needs a copy of the request).
    fn needs_context(&self) -> bool {
        !(self.after.is_empty() && self.teardown.is_empty() && self.handlers.is_empty())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.before.is_empty()
            && self.after.is_empty()
            && self.teardown.is_empty()
            && self.handlers.is_empty()
    }

    /// Runs the chain around `view`.
    pub(crate) async fn run<V, Fut>(self: Arc<Self>, mut req: Request, view: V) -> Response
    where
        V: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        // Only after hooks, teardown hooks and error handlers need a copy of the request; a
        // chain of before hooks alone (a route guard) makes none.
        let ctx = self.needs_context().then(|| {
            let g = G::of(&mut req);
            RequestContext::new(&req, &self, g)
        });
        let mut guard = ctx.as_ref().map(|ctx| TeardownGuard {
            chain: self.clone(),
            ctx: ctx.clone(),
            armed: !self.teardown.is_empty(),
            error: None,
            next: 0,
        });

        let meta = match self.track && !self.before.is_empty() {
            true => req.extensions().get::<RequestMeta>().cloned(),
            false => None,
        };
        let mut pending = Some(req);
        let mut early = None;
        for (i, hook) in self.before.iter().enumerate() {
            let Some(r) = pending.take() else { break };
            let res = match AssertUnwindSafe(hook(r)).catch_unwind().await {
                Ok(ControlFlow::Continue(r)) => {
                    pending = Some(r);
                    continue;
                }
                Ok(ControlFlow::Break(res)) => res,
                Err(p) => HttpError::panic(&*p, "before_request hook").into_response(),
            };
            if let Some(meta) = &meta {
                meta.mark_answered(match i < self.guards {
                    true => AnsweredBy::Guard,
                    false => AnsweredBy::Hook,
                });
            }
            early = Some(res);
            break;
        }
        let mut res = match (early, pending) {
            (Some(res), _) => res,
            (None, Some(req)) => match AssertUnwindSafe(view(req)).catch_unwind().await {
                Ok(res) => res,
                Err(p) => HttpError::panic(&*p, "handler").into_response(),
            },
            (None, None) => HttpError::internal("no request after before hooks").into_response(),
        };

        // Without a context there are no handlers: the core layer renders the default page.
        let Some(ctx) = ctx else { return res };

        let mut error = None;
        if let Some(ErrorMarker(e)) = res.extensions().get::<ErrorMarker>().cloned() {
            res = self.handle_error(&ctx, e.clone(), res).await;
            error = Some(e);
        }

        for hook in &self.after {
            match AssertUnwindSafe(hook(ctx.clone(), res))
                .catch_unwind()
                .await
            {
                Ok(r) => res = r,
                Err(p) => {
                    // As in Flask: the remaining after hooks are skipped and the 500 goes
                    // to the error handlers.
                    let e = Arc::new(HttpError::panic(&*p, "after_request hook"));
                    res = self
                        .handle_error(&ctx, e.clone(), ErrorMarker(e.clone()).respond())
                        .await;
                    error = Some(e);
                    break;
                }
            }
        }

        // The guard stays armed through teardown: if the request is cut off midway, the
        // hooks not yet run still run.
        if let Some(guard) = &mut guard {
            guard.error = error.clone();
        }
        for (i, hook) in self.teardown.iter().enumerate() {
            if let Some(guard) = &mut guard {
                guard.next = i + 1;
            }
            run_teardown(std::slice::from_ref(hook), &ctx, error.clone()).await;
        }
        if let Some(guard) = &mut guard {
            guard.armed = false;
        }
        res
    }

    async fn handle_error(
        &self,
        ctx: &RequestContext,
        e: Arc<HttpError>,
        res: Response,
    ) -> Response {
        let handlers = if e.is_routing() {
            &self.app_handlers
        } else {
            &self.handlers
        };
        let json = wants_json(ctx.headers().get(http::header::ACCEPT));
        match handlers.iter().find(|(s, _)| *s == e.status()) {
            Some((_, handler)) => {
                let ec = ErrorContext {
                    error: e.clone(),
                    request: ctx.clone(),
                };
                match AssertUnwindSafe(handler(ec)).catch_unwind().await {
                    Ok(r) => {
                        // A handler that answers with an error of its own gets that error's
                        // default page; otherwise its response stands. Either way it keeps
                        // the headers the error carried unless it set them itself.
                        let mut r = match r.extensions().get::<ErrorMarker>().cloned() {
                            Some(ErrorMarker(own)) => render_default(r, &own, json),
                            None => r,
                        };
                        carry_headers(&res, &mut r);
                        r.extensions_mut().insert(Failed(e.kind()));
                        r
                    }
                    Err(p) => {
                        let pe = HttpError::panic(&*p, "error handler");
                        render_default(res, &pe, json)
                    }
                }
            }
            None => render_default(res, &e, json),
        }
    }
}

impl ErrorMarker {
    fn respond(self) -> Response {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = self.0.status();
        r.extensions_mut().insert(self);
        r
    }
}

async fn run_teardown(hooks: &[TeardownFn], ctx: &RequestContext, error: Option<Arc<HttpError>>) {
    for hook in hooks {
        match AssertUnwindSafe(hook(ctx.clone(), error.clone()))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(target: "flagon::request", error = %e, path = %ctx.path(), "teardown hook failed")
            }
            Err(p) => {
                HttpError::panic(&*p, "teardown hook");
            }
        }
    }
}

/// Runs teardown hooks when a request future is dropped before finishing (client gone,
/// timeout): teardown always runs.
struct TeardownGuard {
    chain: Arc<Chain>,
    ctx: RequestContext,
    armed: bool,
    /// The request's error, once known.
    error: Option<Arc<HttpError>>,
    /// The first teardown hook not yet started.
    next: usize,
}

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let chain = self.chain.clone();
        let ctx = self.ctx.clone();
        let (next, error) = (self.next, self.error.take());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let e = error.unwrap_or_else(|| {
                    Arc::new(
                        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "request cancelled")
                            .with_kind(crate::http_error::ErrorKind::Cancelled),
                    )
                });
                run_teardown(&chain.teardown[next..], &ctx, Some(e)).await;
            });
        }
    }
}

/// What after and teardown hooks and error handlers know of the request.
#[derive(Clone)]
pub struct RequestContext(Arc<ContextInner>);

struct ContextInner {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    endpoint: Option<Arc<str>>,
    blueprint: Option<Arc<str>>,
    g: G,
    meta: Option<RequestMeta>,
}

// After and teardown hooks and error handlers reach request-scoped values through it.
crate::request_local::request_scope!(RequestContext, |c| {
    let meta = c.0.meta.as_ref()?;
    Some(crate::request_local::RequestHead::new(
        meta,
        &c.0.method,
        &c.0.uri,
        &c.0.headers,
    ))
});

impl RequestContext {
    fn new(req: &Request, chain: &Chain, g: G) -> Self {
        RequestContext(Arc::new(ContextInner {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            endpoint: chain.endpoint.clone(),
            blueprint: chain.blueprint.clone(),
            g,
            meta: req.extensions().get::<RequestMeta>().cloned(),
        }))
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.0.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.0.uri
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.0.uri.path()
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The matched endpoint (`None` for a 404).
    pub fn endpoint(&self) -> Option<&str> {
        self.0.endpoint.as_deref()
    }

    /// The dotted name of the blueprint that owns the matched route.
    pub fn blueprint(&self) -> Option<&str> {
        self.0.blueprint.as_deref()
    }

    /// The request's `g`.
    pub fn g(&self) -> &G {
        &self.0.g
    }

    /// The request id (as sent in `X-Request-Id`).
    pub fn request_id(&self) -> Option<&crate::RequestId> {
        self.0.meta.as_ref().map(|m| &m.id)
    }

    /// The app serving the request.
    pub fn app(&self) -> Option<&AppHandle> {
        self.0.meta.as_ref().map(|m| &m.app)
    }

    /// Whether the client prefers JSON to HTML (its `Accept` header).
    pub fn wants_json(&self) -> bool {
        wants_json(self.0.headers.get(http::header::ACCEPT))
    }
}

/// What an error handler receives: the error and the request.
#[derive(Clone)]
pub struct ErrorContext {
    /// The error being handled.
    pub error: Arc<HttpError>,
    /// The request it happened in.
    pub request: RequestContext,
}

impl ErrorContext {
    /// The error's status.
    pub fn status(&self) -> StatusCode {
        self.error.status()
    }

    /// Whether the client prefers JSON to HTML.
    pub fn wants_json(&self) -> bool {
        self.request.wants_json()
    }
}
