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
//!     tpl.render("index.html", context! { title => "Home" })
//! }
//! ```
//!
//! Built into every template: `url_for(endpoint, **params)`,
//! `get_flashed_messages(with_categories=false, category_filter=[])`, `csrf_token()`,
//! `request` (`path`, `query_string`, `method`, `url`, `args`) and `session`.
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
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{Html, IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Uri};
use minijinja::Environment;
use minijinja::value::merge_maps;
use minijinja_autoreload::AutoReloader;
use serde::Serialize;

pub use minijinja::{Value, context};
pub use setup::TemplatesConfig;

use crate::AppHandle;
use crate::hooks::G;
use crate::http_error::HttpError;
use crate::request::RequestMeta;
use crate::session::Session;

pub(crate) type ProcessorFn = Arc<dyn Fn(&RenderRequest) -> Value + Send + Sync>;

pub(crate) enum EnvSource {
    Fixed(Environment<'static>),
    Reloading(AutoReloader),
}

/// The built template environment and processors.
pub(crate) struct TemplatesRuntime {
    pub(crate) source: EnvSource,
    pub(crate) processors: Arc<[ProcessorFn]>,
    pub(crate) debug: bool,
}

/// What a context processor sees of the request being rendered for.
pub struct RenderRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    session: Option<Session>,
    /// The request's `g` when hooks made one; an empty one is made on first use.
    g: std::sync::OnceLock<G>,
    app: AppHandle,
}

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

    /// The request's session (loaded), when sessions are set up.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
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
        let rt = app.state::<TemplatesRuntime>()?;
        let req = RenderRequest {
            method: Method::GET,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
            session: None,
            g: std::sync::OnceLock::new(),
            app: app.clone(),
        };
        Some(Templates {
            rt,
            req: Arc::new(req),
        })
    }

    /// Renders template `name` with `ctx` (anything `Serialize`, usually
    /// [`context!`]) merged over the context processors' values and the built-ins.
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<Html<String>, HttpError> {
        self.render_string(name, ctx).map(Html)
    }

    /// Like [`Templates::render`], returning the text.
    pub fn render_string(&self, name: &str, ctx: impl Serialize) -> Result<String, HttpError> {
        // Later layers win: built-ins, then processors in registration order, then the
        // explicit context.
        let mut layers = Vec::with_capacity(self.rt.processors.len() + 2);
        layers.push(Value::from_object(builtins::Globals(self.req.clone())));
        for p in self.rt.processors.iter() {
            layers.push(p(&self.req));
        }
        layers.push(Value::from_serialize(ctx));
        let ctx = merge_maps(layers);
        let result = match &self.rt.source {
            EnvSource::Fixed(env) => render_in(env, name, ctx),
            EnvSource::Reloading(reloader) => match reloader.acquire_env() {
                Ok(env) => render_in(&env, name, ctx),
                Err(e) => Err(e),
            },
        };
        result.map_err(|e| self.error(name, e))
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

impl<S: Send + Sync> FromRequestParts<S> for Templates {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(meta) = parts.extensions.get::<RequestMeta>() else {
            return Err(
                HttpError::internal("request did not pass through a Flagon app").into_response(),
            );
        };
        let app = meta.app.clone();
        let Some(rt) = app.state::<TemplatesRuntime>() else {
            return Err(HttpError::internal("templates are not set up").into_response());
        };
        let session = match meta.session {
            Some(_) => Some(Session::from_parts(&parts.extensions, &parts.headers).await?),
            None => None,
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
            session,
            g,
            app,
        };
        Ok(Templates {
            rt,
            req: Arc::new(req),
        })
    }
}
