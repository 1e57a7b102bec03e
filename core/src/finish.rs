//! The finish phase: checks and assembly that need every registration.
//!
//! An extension registers a finish step in `init_app` with
//! [`Setup::on_finish`](crate::Setup::on_finish). Steps run at `build()`, after every
//! extension and the app have registered, in registration order (core's first, then each
//! extension's in initialisation order, then the app's). A step sees the final route table
//! (endpoints, blueprints, decorators), the blueprints, the names and registry entries
//! everyone registered, and the settings; it may provide state, add route guards and fail
//! the build with errors naming the parties. Errors from every step are reported together.
//!
//! Core's own sessions, CSRF and templates use it: the session store is chosen among the
//! registered ones, CSRF exemptions are checked against the routes, and the template
//! environment is built from every filter and function.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;

use crate::config::{Config, Profile};
use crate::error::{Origin, SetupError};
use crate::hooks::before_fn;
use crate::registries::{Entries, RegistryKind};
use crate::registry::{Registry, RouteGuard};
use crate::route::RouteInfo;
use crate::router::RouteTable;

/// A finish step, as registered.
pub(crate) type FinishFn = Box<dyn FnOnce(&mut Finish<'_>) -> Result<(), SetupError> + Send>;

/// What a finish step sees and may do.
///
/// An extension registers a finish step in `init_app` with
/// [`Setup::on_finish`](crate::Setup::on_finish). Steps run at `build()`, after every
/// extension and the app have registered, in registration order (core's first, then each
/// extension's in initialisation order, then the app's). A step sees the final route table
/// (endpoints, blueprints, decorators, mounts), the blueprints, the names and registry
/// entries everyone registered, and the settings; it may provide state, add route guards and
/// fail the build with errors naming the parties. Errors from every step are reported
/// together. Core's sessions (choosing the store), CSRF (checking exemptions) and templates
/// (building the environment) are finish steps too.
pub struct Finish<'a> {
    pub(crate) reg: &'a mut Registry,
    pub(crate) owner: &'static str,
    pub(crate) config: &'a Config,
    pub(crate) routes: &'a RouteTable,
}

/// A registered blueprint, as the finish phase sees it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct BlueprintInfo<'a> {
    /// Its dotted name (`admin.users`).
    pub name: &'a str,
    /// Its full URL prefix (`/admin/users`; empty for none).
    pub prefix: &'a str,
    /// Who registered it.
    pub origin: &'a Origin,
    /// The template directories it brings ([`Blueprint::template_dir`](crate::Blueprint::template_dir)).
    pub template_dirs: &'a [std::path::PathBuf],
}

impl Finish<'_> {
    fn origin(&self) -> Origin {
        Origin::new(self.owner)
    }

    /// The name of the extension whose step this is (`app` for the app's own).
    pub fn name(&self) -> &'static str {
        self.owner
    }

    /// The selected profile.
    pub fn profile(&self) -> Profile {
        self.config.profile()
    }

    /// The whole settings tree.
    pub fn settings(&self) -> &Config {
        self.config
    }

    /// A config error for `key`, with the value's source (as [`Setup::config_error`](crate::Setup::config_error)).
    pub fn config_error(&self, key: &str, message: impl Into<String>) -> SetupError {
        SetupError::Config(self.config.error(key, message))
    }

    /// The key for `purpose` derived from the app's secret key, the same as
    /// [`Setup::derive_key`](crate::Setup::derive_key) and [`AppHandle::derive_key`](crate::AppHandle::derive_key) give.
    pub fn derive_key(&self, purpose: &str) -> crate::DerivedKey {
        crate::registries::derive_key(&self.reg.slots, purpose)
    }

    /// The final route table: every route's methods, path, endpoint, blueprint, decorators
    /// and owner, and every mount.
    pub fn routes(&self) -> &RouteTable {
        self.routes
    }

    /// Every registered blueprint, in registration order.
    pub fn blueprints(&self) -> impl Iterator<Item = BlueprintInfo<'_>> {
        self.reg.blueprints.iter().map(|b| BlueprintInfo {
            name: &b.name,
            prefix: &b.prefix,
            origin: &b.origin,
            template_dirs: &b.template_dirs,
        })
    }

    /// Whether an extension named `name` is registered.
    pub fn has_extension(&self, name: &str) -> bool {
        self.reg.extension_names.contains(&name)
    }

    /// The names claimed with [`Setup::claim_name`](crate::Setup::claim_name), or of
    /// registry entries, under `kind` (`template filter`, `session store`, …), with their
    /// owners.
    pub fn names<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = (&'s str, &'s Origin)> + 's {
        self.reg
            .names
            .iter()
            .chain(&self.reg.listed)
            .filter(move |(k, _, _)| *k == kind)
            .map(|(_, n, o)| (n.as_str(), o))
    }

    /// The entries of registry `K`, everyone's.
    pub fn registry<K: RegistryKind>(&self) -> Entries<'_, K::Entry> {
        self.reg.registries.entries::<K>()
    }

    /// The value kept in slot `T` during setup ([`Setup::slot`](crate::Setup::slot)).
    pub fn slot<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.reg.slots.get::<T>()
    }

    /// Takes the value out of slot `T`.
    pub fn take_slot<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.reg.slots.take::<T>()
    }

    /// State provided so far (by `provide` in setup or an earlier finish step).
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.reg.state.get::<T>()
    }

    /// Provides typed state (as [`Setup::provide`](crate::Setup::provide)) and returns the
    /// shared value, for hooks built in the same step.
    pub fn provide<T: Send + Sync + 'static>(&mut self, value: T) -> Arc<T> {
        let value = Arc::new(value);
        if let Err(e) = self.reg.state.insert(value.clone(), self.origin()) {
            self.reg.errors.push(e);
        }
        value
    }

    /// A before-request step for the routes `applies` selects (as
    /// [`Setup::guard`](crate::Setup::guard)), for guards that depend on everything
    /// registered.
    pub fn guard<P, F, Fut>(&mut self, applies: P, f: F) -> &mut Self
    where
        P: Fn(&RouteInfo) -> bool + Send + Sync + 'static,
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ControlFlow<Response, Request>> + Send + 'static,
    {
        let origin = self.origin();
        self.reg.guards.push(RouteGuard {
            origin,
            applies: Arc::new(applies),
            hook: before_fn(f),
        });
        self
    }

    /// Reports a build error and goes on (the step's `Err` return reports one and stops):
    /// a step that checks many things reports every problem at once.
    pub fn report(&mut self, error: SetupError) -> &mut Self {
        self.reg.errors.push(error);
        self
    }
}

/// Runs every finish step against the final route table.
pub(crate) fn run(reg: &mut Registry, config: &Config, routes: &RouteTable) {
    for (origin, step) in std::mem::take(&mut reg.finish) {
        let mut f = Finish {
            reg: &mut *reg,
            owner: origin.owner,
            config,
            routes,
        };
        if let Err(e) = step(&mut f) {
            reg.errors.push(e);
        }
    }
}
