//! What setup recorded, attributed to its origin, and the clash checks run at build.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::MethodRouter;
use http::Method;

use crate::AppHandle;
use crate::command::CommandFn;
use crate::error::{APP, CORE};
use crate::error::{BoxError, Origin, SetupError};
use crate::future::BoxFuture;
use crate::hooks::HookSet;
use crate::signals::SignalsBuilder;
use crate::state::StateMap;

pub(crate) type LifecycleFn =
    Arc<dyn Fn(AppHandle) -> BoxFuture<Result<(), BoxError>> + Send + Sync>;
pub(crate) type ShutdownFn = Arc<dyn Fn(AppHandle) -> BoxFuture<()> + Send + Sync>;
pub(crate) type HealthFn =
    Arc<dyn Fn(AppHandle) -> BoxFuture<crate::health::CheckOutcome> + Send + Sync>;
pub(crate) type LayerFn = Box<dyn FnOnce(Router) -> Router + Send>;

pub(crate) struct RouteEntry {
    pub(crate) methods: Vec<Method>,
    pub(crate) path: String,
    pub(crate) endpoint: String,
    pub(crate) origin: Origin,
    /// Indexes into `Registry::blueprints`, outermost first.
    pub(crate) scopes: Vec<usize>,
    pub(crate) router: MethodRouter,
    /// The route's handlers, one per entry of `methods` ([`crate::route::HandlerFn`]).
    pub(crate) handlers: Vec<crate::route::HandlerFn>,
    /// Outermost first: the blueprints' (outer to inner), then the route's own.
    pub(crate) decorators: Vec<crate::Decorator>,
}

/// A router or service mounted under a prefix.
pub(crate) struct MountEntry {
    pub(crate) prefix: String,
    pub(crate) description: String,
    pub(crate) origin: Origin,
    /// Nests the service into the router; with `true`, requests it answers are recorded as
    /// a mount's (for `RequestFinished`).
    pub(crate) nest: Box<dyn FnOnce(Router, bool) -> Router + Send>,
}

pub(crate) struct BlueprintEntry {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) origin: Origin,
    pub(crate) hooks: HookSet,
    /// Template directories the blueprint brings (read by templates' finish step).
    pub(crate) template_dirs: Vec<std::path::PathBuf>,
}

pub(crate) struct CommandEntry {
    pub(crate) origin: Origin,
    pub(crate) command: clap::Command,
    pub(crate) run: CommandFn,
}

/// A before-request step for the routes a predicate selects, decided once at build.
pub(crate) struct RouteGuard {
    pub(crate) origin: Origin,
    pub(crate) applies: Arc<dyn Fn(&crate::RouteInfo) -> bool + Send + Sync>,
    pub(crate) hook: crate::hooks::BeforeFn,
}

pub(crate) struct HealthCheck {
    pub(crate) name: String,
    pub(crate) origin: Origin,
    pub(crate) timeout: Duration,
    pub(crate) check: HealthFn,
}

/// Everything recorded during setup.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) routes: Vec<RouteEntry>,
    pub(crate) blueprints: Vec<BlueprintEntry>,
    pub(crate) app_hooks: HookSet,
    pub(crate) guards: Vec<RouteGuard>,
    pub(crate) commands: Vec<CommandEntry>,
    pub(crate) sections: Vec<(String, Origin)>,
    pub(crate) effective: BTreeMap<String, serde_json::Value>,
    pub(crate) state: StateMap,
    pub(crate) signals: SignalsBuilder,
    pub(crate) startup: Vec<(Origin, LifecycleFn)>,
    pub(crate) before_serving: Vec<(Origin, LifecycleFn)>,
    pub(crate) shutdown: Vec<(Origin, ShutdownFn)>,
    pub(crate) health: Vec<HealthCheck>,
    pub(crate) layers: Vec<(Origin, LayerFn)>,
    /// Named items of other kinds (template filters, …), for clash checks and listings.
    pub(crate) names: Vec<(&'static str, String, Origin)>,
    /// Typed values subsystems keep for themselves during setup.
    pub(crate) slots: crate::registries::SlotStore,
    /// Entries of typed registries.
    pub(crate) registries: crate::registries::RegistryStore,
    /// Entries of registries whose names need not be unique, for listings.
    pub(crate) listed: Vec<(&'static str, String, Origin)>,
    pub(crate) finish: Vec<(Origin, crate::finish::FinishFn)>,
    /// Who registered each finish step (kept after the steps ran, for listings).
    pub(crate) finish_owners: Vec<Origin>,
    pub(crate) mounts: Vec<MountEntry>,
    /// Names of the registered extensions.
    pub(crate) extension_names: Vec<&'static str>,
    pub(crate) errors: Vec<SetupError>,
}

impl Registry {
    /// Runs every clash check, pushing errors.
    pub(crate) fn check_clashes(&mut self) {
        let mut errors = Vec::new();

        let mut by_route: HashMap<(String, &str), &Origin> = HashMap::new();
        let mut by_endpoint: HashMap<&str, &RouteEntry> = HashMap::new();
        for r in &self.routes {
            for m in &r.methods {
                if let Some(first) = by_route.insert((m.to_string(), &r.path), &r.origin) {
                    errors.push(SetupError::RouteClash {
                        method: m.to_string(),
                        path: r.path.clone(),
                        first: first.clone(),
                        second: r.origin.clone(),
                    });
                }
            }
            if let Some(first) = by_endpoint.get(r.endpoint.as_str()) {
                let same_route = first.path == r.path && first.origin == r.origin;
                if !same_route {
                    errors.push(SetupError::EndpointClash {
                        endpoint: r.endpoint.clone(),
                        first_path: first.path.as_str().into(),
                        first: first.origin.clone(),
                        second_path: r.path.as_str().into(),
                        second: r.origin.clone(),
                    });
                }
            } else {
                by_endpoint.insert(&r.endpoint, r);
            }
        }

        for r in &self.routes {
            for d in &r.decorators {
                let provider = d.provider();
                if provider == APP || provider == CORE || self.extension_names.contains(&provider) {
                    continue;
                }
                let methods: Vec<String> = r.methods.iter().map(|m| m.to_string()).collect();
                errors.push(SetupError::Invalid {
                    what: format!(
                        "route {} {} (endpoint `{}`)",
                        methods.join(","),
                        r.path,
                        r.endpoint
                    ),
                    origin: r.origin.clone(),
                    reason: format!(
                        "its decorator `{}` is provided by extension `{provider}`, which is not \
                         registered; register `{provider}` on the app builder (`.register(...)`)",
                        d.description()
                    ),
                });
            }
        }

        let core = Origin::new(CORE);
        let mut commands: HashMap<String, &Origin> = crate::command::BUILTINS
            .iter()
            .map(|b| ((*b).to_owned(), &core))
            .collect();
        for c in &self.commands {
            let name = c.command.get_name().to_owned();
            if let Some(first) = commands.insert(name.clone(), &c.origin) {
                errors.push(SetupError::CommandClash {
                    command: name,
                    first: first.clone(),
                    second: c.origin.clone(),
                });
            }
        }

        let mut sections: HashMap<&str, &Origin> = HashMap::new();
        for (s, o) in &self.sections {
            if let Some(first) = sections.insert(s, o).filter(|first| *first != o) {
                errors.push(SetupError::ConfigSectionClash {
                    section: s.clone(),
                    first: first.clone(),
                    second: o.clone(),
                });
            }
        }

        let mut names: HashMap<(&str, &str), &Origin> = HashMap::new();
        let health = self
            .health
            .iter()
            .map(|h| ("health check", h.name.as_str(), &h.origin));
        let blueprints = self
            .blueprints
            .iter()
            .map(|b| ("blueprint", b.name.as_str(), &b.origin));
        let named = self.names.iter().map(|(k, n, o)| (*k, n.as_str(), o));
        for (kind, name, origin) in health.chain(blueprints).chain(named) {
            if let Some(first) = names.insert((kind, name), origin) {
                errors.push(SetupError::NameClash {
                    kind,
                    name: name.to_owned(),
                    first: first.clone(),
                    second: origin.clone(),
                });
            }
        }

        for b in &self.blueprints {
            let mut seen: HashMap<u16, &Origin> = HashMap::new();
            for (o, s, _) in &b.hooks.errors {
                if let Some(first) = seen.insert(s.as_u16(), o) {
                    errors.push(SetupError::NameClash {
                        kind: "error handler",
                        name: format!("{} in blueprint `{}`", s.as_u16(), b.name),
                        first: first.clone(),
                        second: o.clone(),
                    });
                }
            }
        }
        let mut seen: HashMap<u16, &Origin> = HashMap::new();
        for (o, s, _) in &self.app_hooks.errors {
            if let Some(first) = seen.insert(s.as_u16(), o) {
                errors.push(SetupError::NameClash {
                    kind: "app error handler",
                    name: s.as_u16().to_string(),
                    first: first.clone(),
                    second: o.clone(),
                });
            }
        }

        self.errors.extend(errors);
    }

    /// Lines describing what `owner` registered, for the `extensions` command.
    pub(crate) fn contributions(&self, owner: &str) -> Vec<String> {
        let mine = |o: &Origin| o.owner == owner;
        let mut out = Vec::new();
        for (s, o) in &self.sections {
            if mine(o) {
                if s == "secret_key" {
                    out.push("setting secret_key".to_owned());
                } else {
                    out.push(format!("config section [{s}]"));
                }
            }
        }
        for r in self.routes.iter().filter(|r| mine(&r.origin)) {
            let methods: Vec<String> = r.methods.iter().map(|m| m.to_string()).collect();
            out.push(format!(
                "route {} {} -> {}",
                methods.join(","),
                r.path,
                r.endpoint
            ));
        }
        for b in self.blueprints.iter().filter(|b| mine(&b.origin)) {
            let prefix = if b.prefix.is_empty() { "/" } else { &b.prefix };
            out.push(format!("blueprint {} at {}", b.name, prefix));
            let h = &b.hooks;
            push_hook_counts(
                &mut out,
                &format!("blueprint {} ", b.name),
                h.before.len(),
                h.after.len(),
                h.teardown.len(),
                h.errors.len(),
            );
        }
        let h = &self.app_hooks;
        push_hook_counts(
            &mut out,
            "",
            h.before.iter().filter(|(o, _)| mine(o)).count(),
            h.after.iter().filter(|(o, _)| mine(o)).count(),
            h.teardown.iter().filter(|(o, _)| mine(o)).count(),
            h.errors.iter().filter(|(o, _, _)| mine(o)).count(),
        );
        for c in self.commands.iter().filter(|c| mine(&c.origin)) {
            out.push(format!("command `{}`", c.command.get_name()));
        }
        let mut state: Vec<&str> = self
            .state
            .entries()
            .filter(|(_, o)| mine(o))
            .map(|(n, _)| n)
            .collect();
        state.sort_unstable();
        for n in state {
            out.push(format!("state {n}"));
        }
        let startup = self.startup.iter().filter(|(o, _)| mine(o)).count();
        let before_serving = self.before_serving.iter().filter(|(o, _)| mine(o)).count();
        let shutdown = self.shutdown.iter().filter(|(o, _)| mine(o)).count();
        if startup > 0 {
            out.push(format!("startup hooks: {startup}"));
        }
        if before_serving > 0 {
            out.push(format!("before-serving hooks: {before_serving}"));
        }
        if shutdown > 0 {
            out.push(format!("shutdown hooks: {shutdown}"));
        }
        for h in self.health.iter().filter(|h| mine(&h.origin)) {
            out.push(format!(
                "health check `{}` (timeout {:?})",
                h.name, h.timeout
            ));
        }
        let guards = self.guards.iter().filter(|g| mine(&g.origin)).count();
        if guards > 0 {
            out.push(format!("route guards: {guards}"));
        }
        let layers = self.layers.iter().filter(|(o, _)| mine(o)).count();
        if layers > 0 {
            out.push(format!("tower layers: {layers}"));
        }
        for m in self.mounts.iter().filter(|m| mine(&m.origin)) {
            out.push(format!("mount {} ({})", m.prefix, m.description));
        }
        let finish = self.finish_owners.iter().filter(|o| mine(o)).count();
        if finish > 0 {
            out.push(format!("finish steps: {finish}"));
        }
        for (kind, name, o) in self.names.iter().chain(&self.listed) {
            if mine(o) {
                out.push(format!("{kind} `{name}`"));
            }
        }
        let mut subs: Vec<String> = self
            .signals
            .subs
            .values()
            .flat_map(|s| {
                s.sync
                    .iter()
                    .map(|(o, _)| o)
                    .chain(s.asynchronous.iter().map(|(o, _)| o))
                    .filter(|o| mine(o))
                    .map(move |_| format!("subscribes to {}", s.type_name))
            })
            .collect();
        subs.sort();
        subs.dedup();
        out.extend(subs);
        out
    }
}

fn push_hook_counts(out: &mut Vec<String>, scope: &str, b: usize, a: usize, t: usize, e: usize) {
    for (n, what) in [
        (b, "before_request"),
        (a, "after_request"),
        (t, "teardown_request"),
        (e, "error handlers"),
    ] {
        if n > 0 {
            out.push(format!("{scope}{what}: {n}"));
        }
    }
}
