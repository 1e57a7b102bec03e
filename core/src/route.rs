//! Routes with endpoint names, and blueprints that group them under a name and URL prefix.
//!
//! axum cannot list its routes, so Flagon records every route as it is registered: method,
//! path, endpoint and who registered it. That record drives `url_for`, the `routes` command,
//! clash detection and per-route hook chains.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::extract::Request;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use http::{Method, StatusCode};

use crate::decorator::Decorator;
use crate::error::{BoxError, Origin};
use crate::future::BoxFuture;
use crate::hooks::{
    ErrorContext, HookSet, RequestContext, after_fn, before_fn, error_handler_fn, teardown_fn,
};
use crate::http_error::HttpError;

/// One recorded route.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    /// Methods it answers (`GET` implies `HEAD`).
    pub methods: Vec<Method>,
    /// The full path in axum syntax.
    pub path: String,
    /// The qualified endpoint name.
    pub endpoint: String,
    /// Who registered it.
    pub origin: Origin,
    /// The dotted name of the blueprint it belongs to.
    pub blueprint: Option<Arc<str>>,
    /// Its decorators, outermost first.
    pub decorators: Vec<Decorator>,
}

/// One route: methods, a path in axum syntax (`/users/{id}`, `/files/{*rest}`), a handler per
/// method, and an endpoint name.
///
/// The endpoint defaults to the handler function's name (`fn show_user` → `show_user`), as in
/// Flask; a closure has no name, so give it one with [`Route::name`].
///
/// ```
/// use flagon::Route;
/// async fn show_user() -> &'static str { "user" }
/// async fn update_user() -> &'static str { "updated" }
/// let route = Route::get("/users/{id}", show_user).and_post(update_user);
/// assert_eq!(route.endpoint(), Some("show_user"));
/// let named = Route::get("/", || async { "hi" }).name("index");
/// assert_eq!(named.endpoint(), Some("index"));
/// ```
pub struct Route {
    pub(crate) path: String,
    pub(crate) methods: Vec<Method>,
    pub(crate) endpoint: Option<String>,
    pub(crate) router: MethodRouter,
    /// The same handlers, one per entry of `methods`, called directly where core
    /// dispatches on the method itself (routes with hooks or decorators).
    pub(crate) handlers: Vec<HandlerFn>,
    /// A problem found while building the route, reported by `build()`.
    pub(crate) problem: Option<String>,
    pub(crate) decorators: Vec<Decorator>,
}

macro_rules! method_constructors {
    ($($(#[$doc:meta])* $name:ident $add:ident => $method:ident;)*) => {
        impl Route {
            $(
                $(#[$doc])*
                pub fn $name<H, T>(path: impl Into<String>, handler: H) -> Self
                where
                    H: Handler<T, ()>,
                    T: 'static,
                {
                    Route::on(Method::$method, path, handler)
                }

                $(#[$doc])*
                #[doc = " (added to this route, under the same endpoint)."]
                pub fn $add<H, T>(self, handler: H) -> Self
                where
                    H: Handler<T, ()>,
                    T: 'static,
                {
                    self.and(Method::$method, handler)
                }
            )*
        }
    };
}

method_constructors! {
    /// A `GET` route (answers `HEAD` too)
    get and_get => GET;
    /// A `POST` route
    post and_post => POST;
    /// A `PUT` route
    put and_put => PUT;
    /// A `PATCH` route
    patch and_patch => PATCH;
    /// A `DELETE` route
    delete and_delete => DELETE;
}

impl Route {
    /// A route for `method`.
    pub fn on<H, T>(method: Method, path: impl Into<String>, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        let endpoint = endpoint_from_type_name(std::any::type_name::<H>());
        let route = Route {
            path: path.into(),
            methods: Vec::new(),
            endpoint,
            router: MethodRouter::new(),
            handlers: Vec::new(),
            problem: None,
            decorators: Vec::new(),
        };
        route.and(method, handler)
    }

    /// Adds another method to this route, with its own handler, under the same endpoint.
    pub fn and<H, T>(mut self, method: Method, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        if self.methods.contains(&method) {
            self.problem = Some(format!("the method {method} is given twice"));
            return self;
        }
        let Ok(filter) = MethodFilter::try_from(method.clone()) else {
            self.problem = Some(format!("the method {method} is not supported"));
            return self;
        };
        let handler = crate::timeout::Timed(handler);
        self.handlers.push(handler_fn(handler.clone()));
        self.router = self.router.on(filter, handler);
        self.methods.push(method);
        self
    }

    /// Sets the endpoint name (used by `url_for` and shown by `routes`).
    pub fn name(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Wraps the route in `decorator` (Flask's `@login_required`). Decorators run after the
    /// app's and blueprints' before hooks, outermost first in the order written, around the
    /// handler; see [`Decorator`]. A decorator whose provider is not registered fails the
    /// build, naming this route and the provider.
    pub fn with(mut self, decorator: Decorator) -> Self {
        self.decorators.push(decorator);
        self
    }

    /// The endpoint name, if known yet.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The path as written.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A handler called with its request: a route's view where core dispatches on the method
/// itself. Calling it costs one `Arc` deref and the boxed future; going through axum's
/// `MethodRouter` instead would clone the router (its routes, fallback and `Allow` header,
/// several allocations) and box the handler again on every request.
pub(crate) type HandlerFn = Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;

fn handler_fn<H, T>(handler: H) -> HandlerFn
where
    H: Handler<T, ()>,
    T: 'static,
{
    Arc::new(move |req| Box::pin(handler.clone().call(req, ())))
}

/// `my_app::views::show_user` → `show_user`; closures have no usable name. A function
/// nested in another (`tests::it_works::{{closure}}::show_user`) keeps its own name.
fn endpoint_from_type_name(name: &str) -> Option<String> {
    let base = name.split('<').next().unwrap_or(name);
    let last = base.rsplit("::").next()?;
    (!last.is_empty() && !last.contains('{')).then(|| last.to_owned())
}

/// Flask's `Blueprint`: routes, hooks and error handlers under a name and URL prefix.
///
/// Blueprints nest: a child's name and prefix are appended to its parent's (`admin.users`,
/// `/admin/users`). Its hooks run only for its own routes (and its children's). Endpoints
/// inside are qualified by the blueprint name: `admin.index`.
///
/// ```
/// use flagon::{Blueprint, Route};
/// async fn index() -> &'static str { "admin" }
/// let admin = Blueprint::new("admin")
///     .url_prefix("/admin")
///     .route(Route::get("/", index))
///     .after_request(|_ctx, mut res| async move {
///         res.headers_mut().insert("x-admin", "1".parse().unwrap());
///         res
///     });
/// ```
pub struct Blueprint {
    pub(crate) name: String,
    pub(crate) url_prefix: String,
    pub(crate) routes: Vec<Route>,
    pub(crate) children: Vec<Blueprint>,
    pub(crate) hooks: HookSet,
    pub(crate) template_dirs: Vec<std::path::PathBuf>,
    pub(crate) decorators: Vec<Decorator>,
}

impl Blueprint {
    /// A blueprint named `name` (letters, digits, `_` and `-`; no dots).
    pub fn new(name: impl Into<String>) -> Self {
        Blueprint {
            name: name.into(),
            url_prefix: String::new(),
            routes: Vec::new(),
            children: Vec::new(),
            hooks: HookSet::default(),
            template_dirs: Vec::new(),
            decorators: Vec::new(),
        }
    }

    /// A directory of templates this blueprint brings (Flask's `template_folder`). It is
    /// searched after the app's own directories, so the app can override its templates.
    pub fn template_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.template_dirs.push(dir.into());
        self
    }

    /// The URL prefix for every route inside (`/admin`).
    pub fn url_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.url_prefix = prefix.into();
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Wraps every route of this blueprint (and of its children) in `decorator`, outside
    /// the routes' own decorators; see [`Route::with`].
    pub fn with(mut self, decorator: Decorator) -> Self {
        self.decorators.push(decorator);
        self
    }

    /// Nests a child blueprint.
    pub fn blueprint(mut self, child: Blueprint) -> Self {
        self.children.push(child);
        self
    }

    /// A hook run before this blueprint's views; break with a response to skip the view.
    pub fn before_request<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ControlFlow<Response, Request>> + Send + 'static,
    {
        self.hooks.before.push((Origin::new(""), before_fn(f)));
        self
    }

    /// A hook run after this blueprint's views; it may edit or replace the response.
    pub fn after_request<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(RequestContext, Response) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        self.hooks.after.push((Origin::new(""), after_fn(f)));
        self
    }

    /// A hook that always runs at the end of this blueprint's requests.
    pub fn teardown_request<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(RequestContext, Option<std::sync::Arc<HttpError>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.hooks.teardown.push((Origin::new(""), teardown_fn(f)));
        self
    }

    /// Handles errors with `status` raised in this blueprint's routes (routing 404/405 go to
    /// the app's handlers).
    pub fn error_handler<F, Fut, R>(mut self, status: StatusCode, f: F) -> Self
    where
        F: Fn(ErrorContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.hooks
            .errors
            .push((Origin::new(""), status, error_handler_fn(f)));
        self
    }

    /// The blueprint's own name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a blueprint or extension name: non-empty, letters, digits, `_` and `-`.
pub(crate) fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "`{name}` contains `{c}`; use letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

/// Checks a path or prefix: starts with `/`, a prefix does not end with `/`, parameters
/// are written `{name}` or `{*rest}` (not axum 0.7's `:name` / `*rest`), braces balance.
pub(crate) fn valid_path(path: &str, prefix: bool) -> Result<(), String> {
    if prefix && path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    if prefix && path.len() > 1 && path.ends_with('/') {
        return Err(format!("the URL prefix `{path}` must not end with `/`"));
    }
    for segment in path.split('/') {
        if segment.starts_with(':') || segment.starts_with('*') {
            return Err(format!(
                "`{path}`: write the parameter `{segment}` as `{{{}}}`",
                if segment.starts_with('*') {
                    segment.to_owned()
                } else {
                    segment[1..].to_owned()
                }
            ));
        }
        let (mut depth, mut ok) = (0i32, true);
        for c in segment.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            ok &= (0..=1).contains(&depth);
        }
        if !ok || depth != 0 {
            return Err(format!("`{path}`: unbalanced `{{` or `}}` in `{segment}`"));
        }
        // `{a}{b}`, `{}` and `{*rest}` before the last segment are not routable.
        let params = segment.matches('{').count();
        if params > 1 {
            return Err(format!(
                "`{path}`: the segment `{segment}` has {params} parameters; use one per segment"
            ));
        }
        if segment
            .find('}')
            .is_some_and(|close| close + 1 != segment.len())
        {
            return Err(format!(
                "`{path}`: in `{segment}`, a parameter must end its segment"
            ));
        }
        if let (Some(open), Some(close)) = (segment.find('{'), segment.find('}')) {
            let name = segment[open + 1..close].trim_start_matches('*');
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`{path}`: the parameter `{}` needs a name of letters, digits and `_`",
                    &segment[open..=close]
                ));
            }
        }
    }
    let segments: Vec<&str> = path.split('/').collect();
    if let Some(i) = segments.iter().position(|s| s.contains("{*"))
        && (prefix
            || i + 1 < segments.len()
            || !segments[i].starts_with("{*")
            || !segments[i].ends_with('}'))
    {
        return Err(format!(
            "`{path}`: a catch-all `{{*name}}` must be the whole last segment"
        ));
    }
    Ok(())
}

/// A before-request helper: continue with the request unchanged.
pub fn proceed(req: Request) -> ControlFlow<Response, Request> {
    ControlFlow::Continue(req)
}

/// A before-request helper: answer now with `response`, skipping the view.
pub fn respond(response: impl IntoResponse) -> ControlFlow<Response, Request> {
    ControlFlow::Break(response.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_from_functions() {
        assert_eq!(
            endpoint_from_type_name("my_app::views::show_user"),
            Some("show_user".into())
        );
        assert_eq!(endpoint_from_type_name("my_app::main::{{closure}}"), None);
        assert_eq!(
            endpoint_from_type_name("my_app::main::{{closure}}::nested"),
            Some("nested".into())
        );
    }

    #[test]
    fn names_and_paths() {
        assert!(valid_name("admin_v2").is_ok());
        assert!(valid_name("a.b").is_err());
        assert!(valid_path("/x", false).is_ok());
        assert!(valid_path("x", false).is_err());
        assert!(valid_path("/admin/", true).is_err());
        assert!(valid_path("/users/:id", false).is_err());
        assert!(valid_path("/files/*rest", false).is_err());
        assert!(valid_path("/users/{id", false).is_err());
        assert!(valid_path("/users/{id}/{*rest}", false).is_ok());
        assert!(valid_path("/{}", false).is_err());
        assert!(valid_path("/{*}", false).is_err());
        assert!(valid_path("/{a}{b}", false).is_err());
        assert!(valid_path("/{*x}/y", false).is_err());
        assert!(valid_path("/x{*rest}", false).is_err());
        assert!(valid_path("/{a-b}", false).is_err());
        assert!(valid_path("/{*rest}x", false).is_err());
        assert!(valid_path("/{id}.json", false).is_err());
        assert!(valid_path("/v{version}", false).is_ok());
        assert!(valid_path("/files/{*rest}", true).is_err());
    }
}
