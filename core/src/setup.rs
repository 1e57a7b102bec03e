//! `Setup`: what an extension can register during `init_app`, each registration attributed.

use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::AppHandle;
use crate::command::CommandContext;
use crate::config::{Config, Profile};
use crate::decorator::Decorator;
use crate::error::{BoxError, Origin, SetupError};
use crate::finish::Finish;
use crate::hooks::{
    ErrorContext, RequestContext, after_fn, before_fn, error_handler_fn, teardown_fn,
};
use crate::http_error::HttpError;
use crate::registries::{Entries, RegistryKind};
use crate::registry::{BlueprintEntry, CommandEntry, HealthCheck, Registry, RouteEntry};
use crate::route::{Blueprint, Route, valid_name, valid_path};

/// The registration surface handed to [`Extension::init_app`](crate::Extension::init_app).
///
/// Every method records who called it, so `extensions` can list each extension's
/// contributions and a clash names both parties. Registration problems are collected and
/// reported together by `build()`.
pub struct Setup<'a> {
    pub(crate) reg: &'a mut Registry,
    pub(crate) owner: &'static str,
    pub(crate) config: &'a Config,
}

impl<'a> Setup<'a> {
    pub(crate) fn new(reg: &'a mut Registry, owner: &'static str, config: &'a Config) -> Self {
        Setup { reg, owner, config }
    }

    pub(crate) fn origin(&self) -> Origin {
        Origin::new(self.owner)
    }

    /// The name of the extension being initialised (`app` for the app's own registrations).
    pub fn name(&self) -> &'static str {
        self.owner
    }

    /// The selected profile.
    pub fn profile(&self) -> Profile {
        self.config.profile()
    }

    /// The whole settings tree (prefer [`Setup::config`] for your own section).
    pub fn settings(&self) -> &Config {
        self.config
    }

    /// Claims config section `section` and reads it into `T` (absent keys take `T`'s serde
    /// defaults). Use `#[serde(default, deny_unknown_fields)]` so typos are errors. A second
    /// claim of the same section by another party fails the build.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// #[derive(Default, serde::Deserialize, serde::Serialize)]
    /// #[serde(default, deny_unknown_fields)]
    /// struct MailConfig { host: String, port: u16 }
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// let cfg: MailConfig = app.config("mail")?;
    /// # Ok(()) }
    /// ```
    pub fn config<T: DeserializeOwned + Serialize>(
        &mut self,
        section: &str,
    ) -> Result<T, SetupError> {
        self.reg.sections.push((section.to_owned(), self.origin()));
        let value: T = self.config.section(section).map_err(|mut errs| {
            let first = errs.remove(0);
            SetupError::Config(first)
        })?;
        if let Ok(v) = serde_json::to_value(&value) {
            self.reg.effective.insert(section.to_owned(), v);
        }
        Ok(value)
    }

    /// A config error for `key` in this extension's settings, with the value's source.
    pub fn config_error(&self, key: &str, message: impl Into<String>) -> SetupError {
        SetupError::Config(self.config.error(key, message))
    }

    /// Registers a route.
    pub fn route(&mut self, route: Route) -> &mut Self {
        let origin = self.origin();
        self.add_route(route, origin, "", &[], &[]);
        self
    }

    fn add_route(
        &mut self,
        route: Route,
        origin: Origin,
        prefix: &str,
        scopes: &[usize],
        inherited: &[Decorator],
    ) {
        let what = || format!("route {}", route.path);
        if let Some(reason) = route.problem.clone() {
            self.reg.errors.push(SetupError::Invalid {
                what: what(),
                origin: origin.clone(),
                reason,
            });
            return;
        }
        if let Err(reason) = valid_path(&route.path, false) {
            self.reg.errors.push(SetupError::Invalid {
                what: what(),
                origin: origin.clone(),
                reason,
            });
            return;
        }
        let Some(endpoint) = route.endpoint.clone() else {
            self.reg.errors.push(SetupError::Invalid {
                what: what(),
                origin,
                reason: "its handler is a closure, so it has no endpoint name; \
                         add one with `.name(\"...\")`"
                    .into(),
            });
            return;
        };
        let qualified = match scopes.last() {
            Some(&i) => format!("{}.{endpoint}", self.reg.blueprints[i].name),
            None => endpoint,
        };
        self.reg.routes.push(RouteEntry {
            methods: route.methods,
            path: format!("{prefix}{}", route.path),
            endpoint: qualified,
            origin,
            scopes: scopes.to_vec(),
            router: route.router,
            handlers: route.handlers,
            decorators: inherited.iter().cloned().chain(route.decorators).collect(),
        });
    }

    /// Registers a blueprint with its routes, hooks, error handlers and children.
    pub fn blueprint(&mut self, bp: Blueprint) -> &mut Self {
        self.add_blueprint(bp, "", "", &[], &[]);
        self
    }

    fn add_blueprint(
        &mut self,
        bp: Blueprint,
        parent_name: &str,
        parent_prefix: &str,
        scopes: &[usize],
        parent_decorators: &[Decorator],
    ) {
        let name = if parent_name.is_empty() {
            bp.name.clone()
        } else {
            format!("{parent_name}.{}", bp.name)
        };
        let origin = Origin::in_blueprint(self.owner, &name);
        let invalid = valid_name(&bp.name).and_then(|_| valid_path(&bp.url_prefix, true));
        if let Err(reason) = invalid {
            self.reg.errors.push(SetupError::Invalid {
                what: format!("blueprint `{name}`"),
                origin,
                reason,
            });
            return;
        }
        let prefix = format!("{parent_prefix}{}", bp.url_prefix);
        let mut hooks = bp.hooks;
        for (o, _) in &mut hooks.before {
            *o = origin.clone();
        }
        for (o, _) in &mut hooks.after {
            *o = origin.clone();
        }
        for (o, _) in &mut hooks.teardown {
            *o = origin.clone();
        }
        for (o, _, _) in &mut hooks.errors {
            *o = origin.clone();
        }
        let index = self.reg.blueprints.len();
        self.reg.blueprints.push(BlueprintEntry {
            name: name.clone(),
            prefix: prefix.clone(),
            origin: origin.clone(),
            hooks,
            template_dirs: bp.template_dirs,
        });
        let mut inner_scopes = scopes.to_vec();
        inner_scopes.push(index);
        let decorators: Vec<Decorator> = parent_decorators
            .iter()
            .cloned()
            .chain(bp.decorators)
            .collect();
        for route in bp.routes {
            self.add_route(route, origin.clone(), &prefix, &inner_scopes, &decorators);
        }
        for child in bp.children {
            self.add_blueprint(child, &name, &prefix, &inner_scopes, &decorators);
        }
    }

    /// An app-wide hook run before every request's view, 404s included. Return
    /// `ControlFlow::Break(response)` to answer now and skip the rest
    /// ([`respond`](crate::respond) and [`proceed`](crate::proceed) spell it shortly).
    pub fn before_request<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ControlFlow<Response, Request>> + Send + 'static,
    {
        let o = self.origin();
        self.reg.app_hooks.before.push((o, before_fn(f)));
        self
    }

    /// A before-request hook for the routes `applies` selects, decided once at build from
    /// each route's methods, path and endpoint: routes it does not select pay nothing. It
    /// runs before the app's `before_request` hooks. Core's CSRF check is one (routes that
    /// take unsafe methods); `login_required` for a blueprint would be another.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError, RouteInfo};
    /// # use std::ops::ControlFlow;
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.guard(
    ///     |route: &RouteInfo| route.endpoint.starts_with("admin."),
    ///     |req| async move {
    ///         match req.headers().contains_key("authorization") {
    ///             true => ControlFlow::Continue(req),
    ///             false => flagon::respond(http::StatusCode::UNAUTHORIZED),
    ///         }
    ///     },
    /// );
    /// # Ok(()) }
    /// ```
    pub fn guard<P, F, Fut>(&mut self, applies: P, f: F) -> &mut Self
    where
        P: Fn(&crate::RouteInfo) -> bool + Send + Sync + 'static,
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ControlFlow<Response, Request>> + Send + 'static,
    {
        let origin = self.origin();
        self.reg.guards.push(crate::registry::RouteGuard {
            origin,
            applies: Arc::new(applies),
            hook: before_fn(f),
        });
        self
    }

    /// An app-wide hook run after every view (reverse registration order); it may edit or
    /// replace the response.
    pub fn after_request<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(RequestContext, Response) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let o = self.origin();
        self.reg.app_hooks.after.push((o, after_fn(f)));
        self
    }

    /// An app-wide hook that always runs when a request ends, with its error if it failed.
    pub fn teardown_request<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(RequestContext, Option<Arc<HttpError>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let o = self.origin();
        self.reg.app_hooks.teardown.push((o, teardown_fn(f)));
        self
    }

    /// Handles errors with `status` app-wide (including routing 404/405).
    pub fn error_handler<F, Fut, R>(&mut self, status: StatusCode, f: F) -> &mut Self
    where
        F: Fn(ErrorContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        let o = self.origin();
        self.reg
            .app_hooks
            .errors
            .push((o, status, error_handler_fn(f)));
        self
    }

    /// Provides typed state, reachable from handlers ([`Ext`](crate::Ext)), hooks and
    /// commands ([`AppHandle::state`]) and later extensions ([`Setup::state`]). Returns the
    /// shared `Arc` that all of them will see, for the extension to keep (in a layer, a
    /// command, a hook) without a lookup. A second value of the same type is a build error.
    pub fn provide<T: Send + Sync + 'static>(&mut self, value: T) -> Arc<T> {
        let o = self.origin();
        let shared = Arc::new(value);
        if let Err(e) = self.reg.state.insert(shared.clone(), o) {
            self.reg.errors.push(e);
        }
        shared
    }

    /// State provided by an extension initialised earlier (list it in `requires`).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.reg.state.get::<T>()
    }

    /// Adds a CLI command. It runs with the app initialised (startup hooks done) but without
    /// binding a port; write output to [`CommandContext::out`].
    pub fn command<F, Fut>(&mut self, command: clap::Command, run: F) -> &mut Self
    where
        F: Fn(CommandContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let origin = self.origin();
        self.reg.commands.push(CommandEntry {
            origin,
            command,
            run: Arc::new(move |ctx| Box::pin(run(ctx))),
        });
        self
    }

    /// An async hook run before serving (and before CLI commands). A failure aborts startup
    /// with its message.
    pub fn on_startup<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let o = self.origin();
        self.reg
            .startup
            .push((o, Arc::new(move |a| Box::pin(f(a)))));
        self
    }

    /// An async hook run when the app is about to serve, after every startup hook and before
    /// the first connection is accepted (Quart's `before_serving`); not before CLI commands.
    /// A failure aborts serving with its message, like a startup hook's. The test client
    /// runs these too, before its first request. Use it for work that would surprise a
    /// command: `[db] auto_upgrade` applies migrations here, so `db status` still shows them
    /// pending.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.before_serving(|_app| async {
    ///     // warm a cache, apply migrations, announce the instance …
    ///     Ok(())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn before_serving<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let o = self.origin();
        self.reg
            .before_serving
            .push((o, Arc::new(move |a| Box::pin(f(a)))));
        self
    }

    /// An async hook run when the app stops, bounded by the shutdown deadline.
    pub fn on_shutdown<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let o = self.origin();
        self.reg
            .shutdown
            .push((o, Arc::new(move |a| Box::pin(f(a)))));
        self
    }

    /// Subscribes a sync function to signal `E`.
    pub fn subscribe<E, F>(&mut self, f: F) -> &mut Self
    where
        E: Send + Sync + 'static,
        F: Fn(&E) + Send + Sync + 'static,
    {
        let o = self.origin();
        self.reg.signals.subscribe(o, f);
        self
    }

    /// Subscribes an async function to signal `E`.
    pub fn subscribe_async<E, F, Fut>(&mut self, f: F) -> &mut Self
    where
        E: Send + Sync + 'static,
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let o = self.origin();
        self.reg.signals.subscribe_async(o, f);
        self
    }

    /// A readiness check for `/readyz`, cut off after `timeout`. It returns a
    /// [`CheckOutcome`](crate::health::CheckOutcome) (to add a detail), or a `Result<(), E>`
    /// with any error `E` `?` works with; see [`health`](crate::health).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use flagon::{Setup, SetupError};
    /// use flagon::health::CheckOutcome;
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.health_check("queue", Duration::from_millis(500), |_app| async {
    ///     CheckOutcome::healthy().detail("pending", 12)
    /// });
    /// # Ok(()) }
    /// ```
    pub fn health_check<F, Fut>(&mut self, name: &str, timeout: Duration, check: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: crate::health::IntoCheckOutcome,
    {
        let origin = self.origin();
        self.reg.health.push(HealthCheck {
            name: name.to_owned(),
            origin,
            timeout,
            check: crate::health::check_fn(check),
        });
        self
    }

    /// Wraps every route in a tower layer, for what hooks cannot express. Layers wrap in
    /// registration order (a later layer is outside an earlier one).
    pub fn layer<L>(&mut self, layer: L) -> &mut Self
    where
        L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        let o = self.origin();
        self.reg
            .layers
            .push((o, Box::new(move |router: axum::Router| router.layer(layer))));
        self
    }

    /// Records a named item of `kind` for clash checks and the `extensions` listing. Core
    /// subsystems (templates, sessions) call this; so may extensions that keep registries
    /// of their own.
    pub fn claim_name(&mut self, kind: &'static str, name: &str) -> &mut Self {
        let o = self.origin();
        self.reg.names.push((kind, name.to_owned(), o));
        self
    }

    /// A 32-byte key for `purpose` derived from the app's secret key, for an extension that
    /// needs its key while it registers (to build a signer its layer or state keeps). It
    /// equals [`AppHandle::derive_key`] for the same purpose. Name the purpose after your
    /// extension (`"login.remember"`); `flagon.` purposes are core's.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// let key = app.derive_key("login.remember");
    /// assert_eq!(key.as_bytes().len(), 32);
    /// # Ok(()) }
    /// ```
    pub fn derive_key(&self, purpose: &str) -> crate::DerivedKey {
        crate::registries::derive_key(&self.reg.slots, purpose)
    }

    /// A typed value of the calling subsystem's own, kept through setup and read back in its
    /// finish step with [`Finish::slot`] or [`Finish::take_slot`]. One value per type: key
    /// it by a private type so that nobody else can reach it. For entries that other
    /// extensions add, use a registry ([`Setup::add_to`]) instead, which records who added
    /// each.
    pub fn slot<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.reg.slots.get_or_default::<T>()
    }

    /// Adds entry `name` to registry `K`, attributed to the caller. In a registry of unique
    /// names ([`RegistryKind::UNIQUE`]), a second entry of the same name fails the build,
    /// naming both parties.
    ///
    /// ```
    /// # use flagon::{RegistryKind, Setup, SetupError};
    /// pub struct Greetings;
    /// impl RegistryKind for Greetings {
    ///     type Entry = &'static str;
    ///     const KIND: &'static str = "greeting";
    /// }
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.add_to::<Greetings>("fr", "Bonjour");
    /// assert_eq!(app.registry::<Greetings>().get("fr"), Some(&"Bonjour"));
    /// # Ok(()) }
    /// ```
    pub fn add_to<K: RegistryKind>(&mut self, name: &str, entry: K::Entry) -> &mut Self {
        let origin = self.origin();
        if K::UNIQUE {
            self.reg
                .names
                .push((K::KIND, name.to_owned(), origin.clone()));
        } else {
            self.reg
                .listed
                .push((K::KIND, name.to_owned(), origin.clone()));
        }
        self.reg.registries.add::<K>(name.to_owned(), origin, entry);
        self
    }

    /// The entries of registry `K` added so far (read it in a finish step to see everyone's).
    pub fn registry<K: RegistryKind>(&self) -> Entries<'_, K::Entry> {
        self.reg.registries.entries::<K>()
    }

    /// Registers a finish step: it runs after every extension and the app registered, sees
    /// the final route table and everything registered, and may fail the build. See
    /// [`Finish`].
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// let login_view = "auth.login".to_owned();
    /// app.on_finish(move |late| match late.routes().get(&login_view) {
    ///     Some(_) => Ok(()),
    ///     None => Err(late.config_error("login.login_view", "no route has this endpoint")),
    /// });
    /// # Ok(()) }
    /// ```
    pub fn on_finish<F>(&mut self, step: F) -> &mut Self
    where
        F: FnOnce(&mut Finish<'_>) -> Result<(), SetupError> + Send + 'static,
    {
        let origin = self.origin();
        self.reg.finish_owners.push(origin.clone());
        self.reg.finish.push((origin, Box::new(step)));
        self
    }

    /// Mounts an axum `Router` or any tower service under `prefix` (`/static`, `/admin`):
    /// it receives every request whose path is `prefix` or starts with `prefix/`, with the
    /// prefix stripped (axum's `nest_service`). `routes` lists it as `description`, owned by
    /// the caller. Mounted services bypass Flagon's request hooks, guards and decorators (as
    /// Flask's `DispatcherMiddleware` bypasses Flask); core's request layer (request id,
    /// timeout, log line, signals) and tower layers still apply. A prefix that overlaps a
    /// route or another mount fails the build.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// use flagon::axum::{Router, routing::get};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// let admin = Router::new().route("/", get(|| async { "admin home" }));
    /// app.mount("/admin", "third-party admin", admin);
    /// # Ok(()) }
    /// ```
    pub fn mount<S>(&mut self, prefix: &str, description: &str, service: S) -> &mut Self
    where
        S: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let origin = self.origin();
        let invalid = valid_path(prefix, true).and_then(|_| {
            if prefix.len() <= 1 {
                Err("a mount needs a prefix other than `/`".to_owned())
            } else if prefix.contains('{') {
                Err(format!(
                    "the mount prefix `{prefix}` must not have parameters"
                ))
            } else {
                Ok(())
            }
        });
        if let Err(reason) = invalid {
            self.reg.errors.push(SetupError::Invalid {
                what: format!("mount at {prefix}"),
                origin,
                reason,
            });
            return self;
        }
        let at = prefix.to_owned();
        self.reg.mounts.push(crate::registry::MountEntry {
            prefix: prefix.to_owned(),
            description: description.to_owned(),
            origin,
            nest: Box::new(move |router: axum::Router, track: bool| match track {
                true => router.nest_service(&at, crate::router::Mounted(service)),
                false => router.nest_service(&at, service),
            }),
        });
        self
    }
}
