//! The extension contract: one required method, `init_app`.

use crate::error::SetupError;
use crate::setup::Setup;

/// A Flagon extension: Flask's `init_app(app)` pattern, typed.
///
/// An extension is registered on the app builder; at `build()` core initialises every
/// extension in dependency order, handing each a [`Setup`] through which it registers routes,
/// hooks, config, state, CLI commands, health checks and more. Everything registered is
/// attributed to the extension by its [`name`](Extension::name); clashes with other
/// extensions are build errors naming both.
///
/// ```
/// use flagon::{Extension, Route, Setup, SetupError};
///
/// struct Ping;
///
/// impl Extension for Ping {
///     fn name(&self) -> &'static str {
///         "ping"
///     }
///
///     fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
///         app.route(Route::get("/ping", || async { "pong" }).name("ping"));
///         Ok(())
///     }
/// }
/// ```
pub trait Extension: Send + Sync + 'static {
    /// The unique name: its config section (by convention), the name its CLI commands and
    /// endpoints should start with, and its label in introspection.
    /// Letters, digits, `_` and `-`.
    fn name(&self) -> &'static str;

    /// Names of extensions that must be initialised before this one. A missing one, or a
    /// cycle, fails `build()`.
    fn requires(&self) -> &'static [&'static str] {
        &[]
    }

    /// Registers what the extension contributes.
    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError>;
}

/// How an extension came to be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arrival {
    /// `AppBuilder::register`.
    Explicit,
    /// Link-time discovery.
    Discovered,
}

impl Arrival {
    /// How `extensions` describes it: `registered explicitly` or `discovered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Explicit => "registered explicitly",
            Arrival::Discovered => "discovered",
        }
    }
}
