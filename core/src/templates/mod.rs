//! Templates: minijinja (Jinja2 by Flask's author), loaded from the app's `templates/`
//! directory and from directories extensions contribute, extended through
//! [`Setup`](crate::Setup) with filters, functions, globals, tests and context processors.
//!
//! A handler takes the [`Templates`] extractor and renders by name; the context it passes
//! is merged with every context processor's values and the built-ins, its own values
//! winning:
//!
//! ```
//! use flagon::templates::{context, Templates};
//! use flagon::HttpError;
//! use axum::response::Html;
//!
//! async fn index(tpl: Templates) -> Result<Html<String>, HttpError> {
//!     tpl.render("index.html", context! { title => "Home" }).await
//! }
//! ```
//!
//! Built into every template: `url_for(endpoint, **params)` and `request` (`path`,
//! `query_string`, `method`, `url`, `args`), from templates; `session` and
//! `get_flashed_messages(with_categories=false, category_filter=[])` from sessions and
//! flash; `csrf_token()` from CSRF. Those owners register them with the same public API an
//! extension uses: [`Setup::template_request_function`](crate::Setup::template_request_function)
//! and [`Setup::template_request_global`](crate::Setup::template_request_global), whose
//! functions see the request being rendered for ([`RenderRequest`]).
//!
//! # Lazy request values, and why `render` is async
//!
//! The `Templates` extractor loads nothing: a render reaches the session (or any
//! request-scoped value, [`crate::RequestLocal`]) only when the template or a context
//! processor asks for it, through [`RenderRequest::load`]. A template that never mentions
//! `session` or `get_flashed_messages` costs no store call and adds no `Vary: Cookie`.
//! minijinja calls functions synchronously, so `load` first tries the value's init without
//! waiting: a request without a session cookie, or the in-memory store, completes at once
//! and the render goes on. When the init has to wait (a Redis or SQL store), the render
//! stops, `render` awaits the load, and renders again: the one extra render is the price
//! of a network store on a page whose handler did not already take the `Session`.
//! Context processors run again in that case, so keep them free of side effects.
//!
//! * Autoescape is on for `.html`, `.htm` and `.xml` templates.
//! * The app's directories are searched first, so an app overrides an extension's template
//!   by writing a file of the same name.
//! * Filter, function, global and test names are clash-checked at build, naming both
//!   registrations.
//! * With `templates.auto_reload` (on in development) a changed file is picked up on the
//!   next render, without a restart.
//! * A template error is a 500: a plain page in production, the template, line and message
//!   in development.

mod builtins;
pub(crate) mod setup;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::response::{Html, IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Uri};
use minijinja::Environment;
use minijinja_autoreload::AutoReloader;
use serde::Serialize;

pub use minijinja::value::from_args;
pub use minijinja::{Error, Value, context};
pub use setup::TemplatesConfig;

use crate::AppHandle;
use crate::facts::Locale;
use crate::future::{BoxFuture, Eventually};
use crate::g::G;
use crate::http_error::HttpError;
use crate::request::RequestMeta;
use crate::request_local::{RequestHead, RequestLocal, request_scope};

pub(crate) type ProcessorFn = Arc<dyn Fn(&RenderRequest) -> Value + Send + Sync>;
/// A global computed per render from the request (`session`).
pub(crate) type RequestGlobalFn =
    Arc<dyn Fn(&RenderRequest) -> Result<Value, minijinja::Error> + Send + Sync>;

/// Most times a render is repeated to load request values it asked for.
const MAX_ROUNDS: usize = 4;

pub(crate) enum EnvSource {
    Fixed(Environment<'static>),
    Reloading(AutoReloader),
}

/// The built template environment and processors.
pub(crate) struct TemplatesRuntime {
    pub(crate) source: EnvSource,
    pub(crate) processors: Arc<[ProcessorFn]>,
    pub(crate) request_globals: Arc<[(String, RequestGlobalFn)]>,
    pub(crate) debug: bool,
}

/// What context processors and request-aware template functions see of the request being
/// rendered for. A [`RequestScope`](crate::RequestScope): request-scoped values are reached through it (see
/// [`RenderRequest::load`]).
pub struct RenderRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// The request's core metadata; `None` when rendering outside a request.
    meta: Option<RequestMeta>,
    /// The locale rendered in when it is known up front: the request's [`Locale`] fact when
    /// it was set before the extractor ran, or the one given to [`Templates::for_locale`].
    /// Otherwise [`RenderRequest::locale`] asks the fact's provider.
    locale: Option<Locale>,
    /// The request's `g` when hooks made one; an empty one is made on first use.
    g: std::sync::OnceLock<G>,
    app: AppHandle,
    /// Loads this render asked for that did not complete at once.
    pending: Mutex<Vec<BoxFuture<()>>>,
}

request_scope!(RenderRequest, |r| {
    let meta = r.meta.as_ref()?;
    Some(RequestHead::new(meta, &r.method, &r.uri, &r.headers))
});

impl fmt::Debug for RenderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl RenderRequest {
    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The request-scoped value `key` for a template function or context processor:
    /// `Ok(None)` outside a request. A value not made yet is made now when its init
    /// completes without waiting; otherwise this returns an error that stops the render,
    /// and [`Templates::render`] awaits the load and renders again (where this returns the
    /// value). Pass the error on with `?`; a context processor may ignore it (its values are
    /// recomputed in the next round).
    pub fn load<T: Send + Sync + 'static>(
        &self,
        key: RequestLocal<T>,
    ) -> Result<Option<Arc<T>>, minijinja::Error> {
        if self.meta.is_none() {
            return Ok(None);
        }
        let mut loading = match key.load_eventually(self) {
            Eventually::Now(v) => return Ok(v),
            Eventually::Later(loading) => loading,
        };
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        if let std::task::Poll::Ready(v) = loading.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::pin(async move {
                let _ = loading.await;
            }));
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "the request value `{}` is loading; the render runs again once it is loaded",
                std::any::type_name::<T>()
            ),
        ))
    }

    fn take_pending(&self) -> Vec<BoxFuture<()>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The locale this render is for: the request's [`Locale`] fact (set before the
    /// `Templates` extractor ran, or computed now by its provider on first read), or the
    /// locale given to [`Templates::for_locale`] outside a request (a mail in its
    /// recipient's language). Translating template functions read it first.
    pub fn locale(&self) -> Option<&Locale> {
        if let Some(l) = &self.locale {
            return Some(l);
        }
        let meta = self.meta.as_ref()?;
        crate::facts::provided(&RequestHead::new(
            meta,
            &self.method,
            &self.uri,
            &self.headers,
        ))
    }

    /// The request's `g`.
    pub fn g(&self) -> &G {
        self.g.get_or_init(G::default)
    }

    /// The app.
    pub fn app(&self) -> &AppHandle {
        &self.app
    }
}

/// Renders templates for the current request: Flask's `render_template`, as an extractor.
pub struct Templates {
    rt: Arc<TemplatesRuntime>,
    req: Arc<RenderRequest>,
}

impl Templates {
    /// Templates for rendering outside a request (mail bodies, CLI output): context
    /// processors see a `GET /` request with no headers and no session, and `url_for`
    /// works. `None` when the app was built without templates.
    pub fn for_app(app: &AppHandle) -> Option<Templates> {
        Self::outside_request(app, None)
    }

    /// Like [`Templates::for_app`], rendering in `locale`: template functions see it as
    /// [`RenderRequest::locale`], so a mail is rendered in its recipient's language with
    /// no request in sight.
    ///
    /// ```
    /// use flagon::templates::Templates;
    /// use flagon::{App, Locale, Setup, SetupError};
    ///
    /// let app = App::builder()
    ///     .configure(|app: &mut Setup<'_>| {
    ///         app.template_request_function("lang", |req, _args| {
    ///             Ok(req.locale().map(|l| l.to_string()).unwrap_or_default())
    ///         });
    ///         app.configure_templates(|env| {
    ///             env.add_template("hi.txt", "{{ lang() }}").unwrap();
    ///         });
    ///         Ok(())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let zh = Locale::parse("zh").unwrap();
    /// let tpl = Templates::for_locale(app.handle(), zh).unwrap();
    /// let out = flagon::tokio::runtime::Runtime::new()
    ///     .unwrap()
    ///     .block_on(tpl.render_string("hi.txt", ()))
    ///     .unwrap();
    /// assert_eq!(out, "zh");
    /// ```
    pub fn for_locale(app: &AppHandle, locale: Locale) -> Option<Templates> {
        Self::outside_request(app, Some(locale))
    }

    fn outside_request(app: &AppHandle, locale: Option<Locale>) -> Option<Templates> {
        let rt = app.state::<TemplatesRuntime>()?;
        let req = RenderRequest {
            method: Method::GET,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
            meta: None,
            locale,
            g: std::sync::OnceLock::new(),
            app: app.clone(),
            pending: Mutex::new(Vec::new()),
        };
        Some(Templates {
            rt,
            req: Arc::new(req),
        })
    }

    /// Renders template `name` with `ctx` (anything `Serialize`, usually
    /// [`context!`]) merged over the context processors' values and the built-ins. Async
    /// because a template may ask for a request value that must be loaded first (the
    /// session from a network store; see the [module docs](self)).
    pub fn render(
        &self,
        name: &str,
        ctx: impl Serialize,
    ) -> impl Future<Output = Result<Html<String>, HttpError>> + Send + '_ {
        let rendering = self.render_string(name, ctx);
        async move { rendering.await.map(Html) }
    }

    /// Like [`Templates::render`], returning the text.
    pub fn render_string(
        &self,
        name: &str,
        ctx: impl Serialize,
    ) -> impl Future<Output = Result<String, HttpError>> + Send + '_ {
        let ctx = Value::from_serialize(ctx);
        let name = name.to_owned();
        async move {
            for _ in 0..MAX_ROUNDS {
                let result = self.render_once(&name, ctx.clone());
                let pending = self.req.take_pending();
                if pending.is_empty() {
                    return result.map_err(|e| self.error(&name, e));
                }
                for load in pending {
                    load.await;
                }
            }
            Err(self.error(
                &name,
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "request values the template asked for could not be loaded",
                ),
            ))
        }
    }

    fn render_once(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        // The explicit context wins, then the processors, the last registered first, then
        // the built-ins.
        let mut layers = Vec::with_capacity(self.rt.processors.len() + 1);
        layers.push(ctx);
        // Processors run in registration order; their layers are kept the other way round.
        layers.extend(self.rt.processors.iter().map(|p| p(&self.req)));
        layers[1..].reverse();
        let ctx = Value::from_object(builtins::RenderContext {
            layers,
            req: self.req.clone(),
            request_globals: self.rt.request_globals.clone(),
        });
        match &self.rt.source {
            EnvSource::Fixed(env) => render_in(env, name, ctx),
            EnvSource::Reloading(reloader) => match reloader.acquire_env() {
                Ok(env) => render_in(&env, name, ctx),
                Err(e) => Err(e),
            },
        }
    }

    /// Whether template `name` exists, for optional templates (a mail's HTML part, an
    /// optional partial). A template that exists but does not compile counts as existing,
    /// so rendering it reports the error instead of it being skipped.
    ///
    /// ```
    /// # use flagon::templates::Templates;
    /// # fn f(tpl: &Templates) {
    /// if tpl.exists("mail/welcome.html") { /* render it */ }
    /// # }
    /// ```
    pub fn exists(&self, name: &str) -> bool {
        let found = |env: &Environment<'static>| match env.get_template(name) {
            Ok(_) => true,
            Err(e) => e.kind() != minijinja::ErrorKind::TemplateNotFound,
        };
        match &self.rt.source {
            EnvSource::Fixed(env) => found(env),
            // An environment that fails to load reports its error when rendered.
            EnvSource::Reloading(reloader) => match reloader.acquire_env() {
                Ok(env) => found(&env),
                Err(_) => true,
            },
        }
    }

    fn error(&self, name: &str, e: minijinja::Error) -> HttpError {
        let template = e.name().unwrap_or(name).to_owned();
        let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
        let what = format!("{}: {}", e.kind(), e.detail().unwrap_or(""));
        tracing::error!(target: "flagon::templates", template = %template, line = ?e.line(), error = %what, "template error");
        if self.rt.debug {
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Template error in {template}{line}: {what}"),
            )
        } else {
            HttpError::internal(e)
        }
    }
}

/// Renders `name`; a panicking filter or function becomes a template error here, while the
/// development reloader's lock is still held, so that lock is never poisoned.
fn render_in(
    env: &Environment<'static>,
    name: &str,
    ctx: Value,
) -> Result<String, minijinja::Error> {
    let render = std::panic::AssertUnwindSafe(|| env.get_template(name)?.render(ctx));
    std::panic::catch_unwind(render).unwrap_or_else(|payload| {
        let what = crate::http_error::panic_message(&*payload);
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("a template filter or function panicked: {what}"),
        ))
    })
}

/// Why the [`Templates`] extractor could not be had (both are server errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplatesRejection {
    /// The request did not pass through a Flagon app.
    #[error("request did not pass through a Flagon app")]
    NotAFlagonRequest,
    /// The app was built without templates.
    #[error("templates are not set up")]
    NotSetUp,
}

impl IntoResponse for TemplatesRejection {
    fn into_response(self) -> Response {
        HttpError::internal(self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Templates {
    type Rejection = TemplatesRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(meta) = parts.extensions.get::<RequestMeta>() else {
            return Err(TemplatesRejection::NotAFlagonRequest);
        };
        let app = meta.app.clone();
        let Some(rt) = app.state::<TemplatesRuntime>() else {
            return Err(TemplatesRejection::NotSetUp);
        };
        // Only a `g` that hooks or extractors already made: making one costs an allocation
        // that most renders never use.
        let g = std::sync::OnceLock::new();
        if let Some(existing) = parts.extensions.get::<G>() {
            let _ = g.set(existing.clone());
        }
        let req = RenderRequest {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            meta: Some(meta.clone()),
            locale: parts.extensions.get::<Locale>().cloned(),
            g,
            app,
            pending: Mutex::new(Vec::new()),
        };
        Ok(Templates {
            rt,
            req: Arc::new(req),
        })
    }
}
