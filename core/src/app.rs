//! The two phases of an app: `AppBuilder` (registration) and the frozen `App`.
//!
//! Registration happens on the builder; `build()` initialises extensions in dependency order,
//! runs every clash check and freezes the result. `App` has no registration methods, so
//! registering after `build()` does not compile.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::Router;

use crate::config::Config;
use crate::error::{APP, CORE};
use crate::error::{BuildError, Origin, SetupError};
use crate::extension::{Arrival, Extension};
use crate::handle::{AppHandle, AppShared, ExtensionRecord};
use crate::registry::Registry;
use crate::route::valid_name;
use crate::router::{RouteTable, assemble};
use crate::setup::Setup;
use crate::signals::RequestFinished;

type AppSetupFn = Box<dyn FnOnce(&mut Setup<'_>) -> Result<(), SetupError> + Send>;

/// Top-level names that cannot be extension names or config sections.
const RESERVED: &[&str] = &[
    "app",
    "flagon",
    "server",
    "secret_key",
    "extensions",
    "development",
    "testing",
    "production",
];

/// Registers extensions and the app's own routes and hooks, then builds a frozen [`App`].
///
/// ```
/// use flagon::{App, Route};
/// use flagon::config::{Config, Profile};
///
/// async fn index() -> &'static str { "Hello" }
///
/// let app = App::builder()
///     .settings(Config::builder().profile(Profile::Testing).build().unwrap())
///     .route(Route::get("/", index))
///     .build()
///     .unwrap();
/// assert_eq!(app.url_for("index", ()).unwrap(), "/");
/// ```
#[must_use = "an AppBuilder does nothing until build() is called"]
pub struct AppBuilder {
    config: Option<Config>,
    extensions: Vec<(Box<dyn Extension>, Arrival)>,
    app_setup: Vec<AppSetupFn>,
    discover: bool,
}

impl App {
    /// Starts building an app.
    pub fn builder() -> AppBuilder {
        AppBuilder {
            config: None,
            extensions: Vec::new(),
            app_setup: Vec::new(),
            discover: false,
        }
    }
}

impl AppBuilder {
    /// Uses `settings` (the whole tree) instead of loading `flagon.toml` and the environment
    /// at build. (`Setup::config` reads one section of it; "settings" is always the tree.)
    pub fn settings(mut self, settings: Config) -> Self {
        self.config = Some(settings);
        self
    }

    /// Registers an extension; it is initialised at `build()`, after those it requires.
    pub fn register(mut self, extension: impl Extension) -> Self {
        self.extensions
            .push((Box::new(extension), Arrival::Explicit));
        self
    }

    /// Also registers every extension crate linked into the binary that announced itself
    /// with [`submit_extension!`](crate::submit_extension), except those listed in
    /// `[extensions] disabled`. They are sorted by name and then go through the same ordering
    /// and clash checks as explicit ones; an explicit registration of the same name replaces
    /// the discovered one. See [`discovery`](crate::discovery) for the linker caveat.
    pub fn discover(mut self) -> Self {
        self.discover = true;
        self
    }

    /// Registers anything on the app itself, through the same [`Setup`] extensions use.
    /// The app's registrations are made after every extension's.
    pub fn configure(
        mut self,
        f: impl FnOnce(&mut Setup<'_>) -> Result<(), SetupError> + Send + 'static,
    ) -> Self {
        self.app_setup.push(Box::new(f));
        self
    }

    fn with(self, f: impl FnOnce(&mut Setup<'_>) + Send + 'static) -> Self {
        self.configure(move |s| {
            f(s);
            Ok(())
        })
    }

    /// Registers a route on the app (`@app.route`).
    pub fn route(self, route: crate::Route) -> Self {
        self.with(move |s| {
            s.route(route);
        })
    }

    /// Registers a blueprint on the app (`app.register_blueprint`).
    pub fn blueprint(self, blueprint: crate::Blueprint) -> Self {
        self.with(move |s| {
            s.blueprint(blueprint);
        })
    }

    /// Builds the app: extensions initialised in dependency order, all registrations
    /// checked. Every problem found is reported at once.
    pub fn build(self) -> Result<App, BuildError> {
        let config = match self.config {
            Some(c) => c,
            None => Config::load().map_err(SetupError::from)?,
        };
        let mut extensions = self.extensions;
        let discovery = crate::discovery::resolve(&config, self.discover, &mut extensions)
            .map_err(BuildError::new)?;
        let order = order_extensions(&extensions)?;

        let mut reg = Registry {
            extension_names: extensions.iter().map(|(e, _)| e.name()).collect(),
            ..Registry::default()
        };
        if discovery.claims_section {
            reg.sections.push(("extensions".into(), Origin::new(CORE)));
            if let Some(v) = &discovery.effective {
                reg.effective.insert("extensions".into(), v.clone());
            }
        }
        let core = {
            let mut s = Setup::new(&mut reg, CORE, &config);
            crate::core_setup::init(&mut s)
        };
        let (server, secret_generated) = core?;

        let mut records = Vec::new();
        for i in order {
            let (ext, arrival) = &extensions[i];
            let mut s = Setup::new(&mut reg, ext.name(), &config);
            if let Err(e) = ext.init_app(&mut s) {
                reg.errors.push(e);
            }
            records.push(ExtensionRecord {
                name: ext.name(),
                arrival: *arrival,
                requires: ext.requires(),
                replaces_discovered: discovery.replaced.contains(&ext.name()),
                contributions: Vec::new(),
            });
        }
        for f in self.app_setup {
            let mut s = Setup::new(&mut reg, APP, &config);
            if let Err(e) = f(&mut s) {
                reg.errors.push(e);
            }
        }

        let routes = RouteTable::of(&reg);
        crate::finish::run(&mut reg, &config, &routes);
        reg.check_clashes();
        let conflicts = crate::router::path_conflicts(&reg);
        reg.errors.extend(conflicts);
        let unknown = unknown_sections(&config, &reg);
        reg.errors.extend(unknown);
        if !reg.errors.is_empty() {
            return Err(BuildError::new(std::mem::take(&mut reg.errors)));
        }
        for r in &mut records {
            r.contributions = reg.contributions(r.name);
        }
        let core_lines = reg.contributions(CORE);
        let app_lines = reg.contributions(APP);

        let track = reg.signals.has::<RequestFinished>();
        let router = assemble(&mut reg, &server, &routes, track).map_err(BuildError::new)?;
        let shared = Arc::new(AppShared {
            config,
            server,
            secret_generated,
            state: std::mem::take(&mut reg.state),
            signals: std::mem::take(&mut reg.signals).freeze(),
            routes,
            extensions: records,
            disabled: discovery.disabled,
            core_lines,
            app_lines,
            commands: std::mem::take(&mut reg.commands),
            startup: std::mem::take(&mut reg.startup),
            before_serving: std::mem::take(&mut reg.before_serving),
            shutdown: std::mem::take(&mut reg.shutdown),
            health: std::mem::take(&mut reg.health),
            effective: std::mem::take(&mut reg.effective),
            registries: std::mem::take(&mut reg.registries),
            locals: reg.slots.take().unwrap_or_default(),
            keys: reg
                .slots
                .get::<crate::crypto::KeyRing>()
                .cloned()
                .expect("core sets up the key ring before anything else registers"),
            test_lifecycle: Default::default(),
        });
        Ok(App {
            handle: AppHandle(shared),
            router,
        })
    }
}

/// Orders extensions so each comes after those it requires, keeping registration order
/// otherwise; reports duplicates, missing requirements and cycles.
fn order_extensions(exts: &[(Box<dyn Extension>, Arrival)]) -> Result<Vec<usize>, BuildError> {
    let mut errors = Vec::new();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, (e, arrival)) in exts.iter().enumerate() {
        let name = e.name();
        if let Err(reason) = valid_name(name) {
            errors.push(SetupError::Invalid {
                what: "extension name".into(),
                origin: Origin::new(name),
                reason,
            });
        } else if RESERVED.contains(&name) {
            errors.push(SetupError::Invalid {
                what: "extension name".into(),
                origin: Origin::new(name),
                reason: format!("`{name}` is reserved by Flagon; choose another name"),
            });
        }
        if let Some(&first) = index.get(name) {
            errors.push(SetupError::DuplicateExtension {
                name,
                first: exts[first].1.as_str().into(),
                second: arrival.as_str().into(),
            });
        } else {
            index.insert(name, i);
        }
    }
    for (e, _) in exts {
        for req in e.requires() {
            if !index.contains_key(req) {
                errors.push(SetupError::MissingRequirement {
                    extension: e.name(),
                    requires: req,
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(BuildError::new(errors));
    }

    // Depth-first topological sort, visiting in registration order.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        exts: &[(Box<dyn Extension>, Arrival)],
        index: &HashMap<&'static str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), SetupError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<&'static str> =
                    stack[start..].iter().map(|&s| exts[s].0.name()).collect();
                cycle.push(exts[i].0.name());
                return Err(SetupError::DependencyCycle { cycle });
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        stack.push(i);
        for req in exts[i].0.requires() {
            visit(index[req], exts, index, marks, stack, out)?;
        }
        stack.pop();
        marks[i] = Mark::Done;
        out.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; exts.len()];
    let mut out = Vec::with_capacity(exts.len());
    for i in 0..exts.len() {
        let i = index.get(exts[i].0.name()).copied().unwrap_or(i);
        visit(i, exts, &index, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// A top-level config key nobody reads is a typo until proven otherwise.
fn unknown_sections(config: &Config, reg: &Registry) -> Vec<SetupError> {
    let claimed: Vec<&str> = reg.sections.iter().map(|(s, _)| s.as_str()).collect();
    let mut errors = Vec::new();
    for key in config.top_level_keys() {
        if !claimed.contains(&key.as_str()) {
            let mut known: Vec<&str> = claimed.clone();
            known.sort_unstable();
            known.dedup();
            errors.push(SetupError::Config(config.error(
                &key,
                format!(
                    "no registered extension reads this section (known sections: {})",
                    known.join(", ")
                ),
            )));
        }
    }
    errors
}

/// A built app: serve it, run its CLI, or drive it in tests. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) handle: AppHandle,
    pub(crate) router: Router,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("profile", &self.handle.0.config.profile())
            .field("routes", &self.handle.0.routes.len())
            .finish_non_exhaustive()
    }
}

impl App {
    /// The handle hooks, commands and handlers use (also an extractor).
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// What extension `name` registered, one line per contribution (as `extensions` prints
    /// them), or `None` if no extension of that name is registered. Use `"app"` for the
    /// app's own registrations and `"flagon"` for core's.
    pub fn registrations(&self, name: &str) -> Option<&[String]> {
        let s = &self.handle.0;
        match name {
            APP => Some(&s.app_lines),
            CORE => Some(&s.core_lines),
            _ => s
                .extensions
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.contributions.as_slice()),
        }
    }

    /// The registered extensions in initialisation order, with how each arrived.
    pub fn extensions(&self) -> impl Iterator<Item = ExtensionInfo<'_>> {
        self.handle.0.extensions.iter().map(|e| ExtensionInfo {
            name: e.name,
            arrival: e.arrival,
            requires: e.requires,
            registrations: &e.contributions,
        })
    }

    /// Builds a URL path for `endpoint` (see [`AppHandle::url_for`]).
    pub fn url_for(
        &self,
        endpoint: &str,
        params: impl crate::UrlParams,
    ) -> Result<String, crate::UrlError> {
        self.handle.url_for(endpoint, params)
    }
}

impl std::ops::Deref for App {
    type Target = AppHandle;

    fn deref(&self) -> &AppHandle {
        &self.handle
    }
}

/// A registered extension, as [`App::extensions`] lists it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ExtensionInfo<'a> {
    /// Its name.
    pub name: &'static str,
    /// How it arrived: registered explicitly or discovered.
    pub arrival: Arrival,
    /// What it requires.
    pub requires: &'static [&'static str],
    /// What it registered, one line each (see [`App::registrations`]).
    pub registrations: &'a [String],
}
