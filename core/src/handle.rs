//! The handle on a built app (Flask's `current_app`) and the frozen data behind it. Requests,
//! hooks, commands, workers and templates reach the app through this module, not through the
//! builder in `app.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, Profile, ServerConfig};
use crate::error::Origin;
use crate::extension::Arrival;
use crate::registries::{Entries, RegistryKind, RegistryStore};
use crate::registry::{CommandEntry, HealthCheck, LifecycleFn, ShutdownFn};
use crate::router::RouteTable;
use crate::signals::Signals;
use crate::state::StateMap;

/// What one extension is and what it registered.
pub(crate) struct ExtensionRecord {
    pub(crate) name: &'static str,
    pub(crate) arrival: Arrival,
    pub(crate) requires: &'static [&'static str],
    /// An explicit registration that replaced a discovered extension of the same name.
    pub(crate) replaces_discovered: bool,
    pub(crate) contributions: Vec<String>,
}

pub(crate) struct AppShared {
    pub(crate) config: Config,
    pub(crate) server: ServerConfig,
    /// No `secret_key` was configured: a throwaway one was generated for this process.
    pub(crate) secret_generated: bool,
    pub(crate) state: StateMap,
    pub(crate) signals: Signals,
    pub(crate) routes: RouteTable,
    pub(crate) extensions: Vec<ExtensionRecord>,
    /// Discovered extensions turned off by `[extensions] disabled`.
    pub(crate) disabled: Vec<&'static str>,
    pub(crate) core_lines: Vec<String>,
    pub(crate) app_lines: Vec<String>,
    pub(crate) commands: Vec<CommandEntry>,
    pub(crate) startup: Vec<(Origin, LifecycleFn)>,
    pub(crate) before_serving: Vec<(Origin, LifecycleFn)>,
    pub(crate) shutdown: Vec<(Origin, ShutdownFn)>,
    pub(crate) health: Vec<HealthCheck>,
    pub(crate) effective: BTreeMap<String, serde_json::Value>,
    pub(crate) registries: RegistryStore,
    /// The request-scoped values extensions declared.
    pub(crate) locals: crate::request_local::LocalsSlot,
    /// What every purpose key is derived from.
    pub(crate) keys: crate::crypto::KeyRing,
    /// Whether the test kit ran this app's startup and shutdown hooks.
    pub(crate) test_lifecycle: TestLifecycle,
}

/// Whether the startup and shutdown hooks of one app have run under the test kit
/// ([`testing`](crate::testing)): once per app, however many clients drive it.
#[derive(Default)]
pub(crate) struct TestLifecycle {
    pub(crate) started: tokio::sync::OnceCell<()>,
    pub(crate) stopped: tokio::sync::OnceCell<()>,
}

/// A cheap handle on a built app: state, settings, signals, `url_for`. Handlers get it as an
/// extractor (Flask's `current_app`); hooks through their request context; CLI commands
/// through [`CommandContext::app`](crate::cli::CommandContext::app).
#[derive(Clone)]
pub struct AppHandle(pub(crate) Arc<AppShared>);

impl AppHandle {
    /// State of type `T` provided by an extension.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0.state.get::<T>()
    }

    /// The settings tree.
    pub fn settings(&self) -> &Config {
        &self.0.config
    }

    /// The selected profile.
    pub fn profile(&self) -> Profile {
        self.0.config.profile()
    }

    /// Core's `[server]` settings.
    pub fn server_config(&self) -> &ServerConfig {
        &self.0.server
    }

    /// A 32-byte key for `purpose`, derived from the app's secret key (which is not handed
    /// out): name the purpose after your extension (`"login.remember"`, `"mail.unsubscribe"`).
    /// Outside production the secret key is generated per process, and so are these keys.
    ///
    /// ```
    /// # let app = flagon::App::builder()
    /// #     .settings(flagon::testing::testing_config_toml("secret_key = \"an example key\""))
    /// #     .build()
    /// #     .unwrap();
    /// let remember = app.derive_key("login.remember");
    /// assert_ne!(remember.as_bytes(), app.derive_key("login.reset").as_bytes());
    /// ```
    pub fn derive_key(&self, purpose: &str) -> crate::DerivedKey {
        self.0.keys.derive(purpose)
    }

    /// The app's signals, to emit events.
    pub fn signals(&self) -> &Signals {
        &self.0.signals
    }

    /// Builds a URL path for `endpoint`: path parameters filled in, the rest as a query
    /// string.
    ///
    /// ```
    /// # use flagon::{App, Route};
    /// # use flagon::config::{Config, Profile};
    /// async fn show_user() -> &'static str { "" }
    /// let app = App::builder()
    ///     .settings(Config::builder().profile(Profile::Testing).build().unwrap())
    ///     .route(Route::get("/users/{id}", show_user))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     app.url_for("show_user", [("id", "7"), ("tab", "posts")]).unwrap(),
    ///     "/users/7?tab=posts"
    /// );
    /// ```
    pub fn url_for(
        &self,
        endpoint: &str,
        params: impl crate::UrlParams,
    ) -> Result<String, crate::UrlError> {
        self.0.routes.url_for(endpoint, params)
    }

    /// The recorded route table.
    pub fn routes(&self) -> &RouteTable {
        &self.0.routes
    }

    /// The entries of registry `K` (see [`RegistryKind`](crate::RegistryKind)).
    pub fn registry<K: RegistryKind>(&self) -> Entries<'_, K::Entry> {
        self.0.registries.entries::<K>()
    }
}
