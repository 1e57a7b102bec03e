//! Link-time discovery: extension crates announce themselves, an app opts in with
//! [`AppBuilder::discover`](crate::AppBuilder::discover).
//!
//! An extension crate submits a [`Discovered`] entry with [`submit_extension!`](crate::submit_extension):
//! a name and a factory that builds the extension from the app's settings. An app that calls
//! `.discover()` registers every entry linked into its binary, sorted by name, unless the
//! `[extensions]` section disables it:
//!
//! ```toml
//! [extensions]
//! disabled = ["secure-headers"]
//! ```
//!
//! Discovered extensions go through the same ordering, `requires`, attribution and clash
//! checks as explicit ones. An extension registered explicitly under the same name as a
//! discovered one replaces it (the explicit one is configured by the app, so it wins), and
//! `extensions` says so.
//!
//! # The linker caveat
//!
//! Registration works through linker sections, so it exists only if the extension crate is
//! linked into the binary. A crate that the app's code never mentions is not linked at all:
//! listing it in `Cargo.toml` is not enough (test binaries, which link only what they
//! mention, are the usual victims). Every discoverable extension crate therefore exports a
//! `link()` function, and the app calls it once:
//!
//! ```ignore
//! flagon_secure_headers::link(); // in main, next to `.discover()`
//! ```
//!
//! The call costs nothing at run time. It references a symbol defined beside the crate's
//! registration, so the linker keeps that object file on every platform and toolchain.
//! (`use flagon_secure_headers as _;` also works with current rustc, which keeps the `#[used]`
//! statics of every crate it links; it relies on that behaviour, `link()` does not.)

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::SetupError;
use crate::extension::{Arrival, Extension};

/// Builds a discovered extension from the app's settings.
pub type Factory = fn(&Config) -> Result<Box<dyn Extension>, SetupError>;

/// An extension announced for link-time discovery; submit one with
/// [`submit_extension!`](crate::submit_extension).
pub struct Discovered {
    name: &'static str,
    module: &'static str,
    factory: Factory,
}

impl Discovered {
    /// An entry named `name` (the extension's [`name`](Extension::name)), submitted from
    /// module `module`, built by `factory`.
    pub const fn new(name: &'static str, module: &'static str, factory: Factory) -> Self {
        Discovered {
            name,
            module,
            factory,
        }
    }

    /// The extension's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The module that submitted the entry (`module_path!()` of the submitting crate).
    pub fn module(&self) -> &'static str {
        self.module
    }
}

impl fmt::Debug for Discovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovered")
            .field("name", &self.name)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

inventory::collect!(Discovered);

/// Announces an extension for link-time discovery: a name and a factory
/// `fn(&Config) -> Result<Box<dyn Extension>, SetupError>` (a closure without captures).
///
/// Put it in the crate root next to a `pub fn link() {}` that apps call (see
/// [the linker caveat](crate::discovery#the-linker-caveat)).
///
/// ```
/// use flagon::{Extension, Setup, SetupError};
///
/// pub struct Ping;
///
/// impl Extension for Ping {
///     fn name(&self) -> &'static str { "ping" }
///     fn init_app(&self, _app: &mut Setup<'_>) -> Result<(), SetupError> { Ok(()) }
/// }
///
/// flagon::submit_extension!("ping", |_config| Ok(Box::new(Ping)));
///
/// /// Keeps this crate's discovery entry in the app's binary; call it once from `main`.
/// #[inline(never)]
/// pub fn link() {}
/// ```
#[macro_export]
macro_rules! submit_extension {
    ($name:expr, $factory:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::discovery::Discovered::new($name, ::core::module_path!(), $factory)
        }
    };
}

/// Every entry linked into this binary, sorted by name (then module).
pub fn linked() -> Vec<&'static Discovered> {
    let mut all: Vec<&'static Discovered> = inventory::iter::<Discovered>.into_iter().collect();
    all.sort_by_key(|d| (d.name, d.module));
    all
}

/// Core's `[extensions]` section.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct ExtensionsConfig {
    /// Names of discovered extensions not to register.
    disabled: Vec<String>,
}

/// What discovery decided, for `extensions` and the section claim.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Whether core reads `[extensions]` (discovery on, or the section written).
    pub(crate) claims_section: bool,
    /// Discovered entries turned off by `[extensions] disabled`.
    pub(crate) disabled: Vec<&'static str>,
    /// Discovered entries replaced by an explicit registration of the same name.
    pub(crate) replaced: Vec<&'static str>,
    /// The section's effective value, for the `config` command.
    pub(crate) effective: Option<serde_json::Value>,
}

/// Adds the discovered extensions to `exts` (after the explicit ones), honouring
/// `[extensions] disabled`.
pub(crate) fn resolve(
    config: &Config,
    enabled: bool,
    exts: &mut Vec<(Box<dyn Extension>, Arrival)>,
) -> Result<Outcome, Vec<SetupError>> {
    let section_written = config.top_level_keys().iter().any(|k| k == "extensions");
    let mut outcome = Outcome {
        claims_section: enabled || section_written,
        ..Outcome::default()
    };
    if !outcome.claims_section {
        return Ok(outcome);
    }
    let cfg: ExtensionsConfig = config
        .section("extensions")
        .map_err(|errs| errs.into_iter().map(SetupError::Config).collect::<Vec<_>>())?;
    outcome.effective = serde_json::to_value(&cfg).ok();
    let linked = linked();
    let mut errors = Vec::new();
    for name in &cfg.disabled {
        if !linked.iter().any(|d| d.name == name) {
            let known: Vec<&str> = linked.iter().map(|d| d.name).collect();
            let known = if known.is_empty() {
                "none is linked into this binary".to_owned()
            } else {
                format!("linked: {}", known.join(", "))
            };
            errors.push(SetupError::Config(config.error(
                "extensions.disabled",
                format!("no discoverable extension is named `{name}` ({known})"),
            )));
        }
    }
    if !enabled {
        return if errors.is_empty() {
            Ok(outcome)
        } else {
            Err(errors)
        };
    }
    let explicit: Vec<&'static str> = exts.iter().map(|(e, _)| e.name()).collect();
    let mut taken: Vec<&'static Discovered> = Vec::new();
    for d in linked {
        if cfg.disabled.iter().any(|n| n == d.name) {
            if !outcome.disabled.contains(&d.name) {
                outcome.disabled.push(d.name);
            }
            continue;
        }
        if explicit.contains(&d.name) {
            if !outcome.replaced.contains(&d.name) {
                outcome.replaced.push(d.name);
            }
            continue;
        }
        if let Some(first) = taken.iter().find(|t| t.name == d.name) {
            errors.push(SetupError::DuplicateExtension {
                name: d.name,
                first: format!("discovered from `{}`", first.module),
                second: format!("discovered from `{}`", d.module),
            });
            continue;
        }
        taken.push(d);
        match (d.factory)(config) {
            Ok(ext) if ext.name() == d.name => exts.push((ext, Arrival::Discovered)),
            Ok(ext) => errors.push(SetupError::Invalid {
                what: format!("discovered extension `{}`", d.name),
                origin: crate::error::Origin::new(d.name),
                reason: format!(
                    "its factory (in `{}`) built an extension named `{}`; the names must match",
                    d.module,
                    ext.name()
                ),
            }),
            Err(e) => errors.push(e),
        }
    }
    for (ext, _) in exts.iter() {
        for req in ext.requires() {
            if outcome.disabled.contains(req) && !exts.iter().any(|(e, _)| e.name() == *req) {
                errors.push(SetupError::Config(config.error(
                    "extensions.disabled",
                    format!(
                        "`{req}` is disabled, but extension `{}` requires it; \
                         enable `{req}` or disable `{}` too",
                        ext.name(),
                        ext.name()
                    ),
                )));
            }
        }
    }
    if errors.is_empty() {
        Ok(outcome)
    } else {
        Err(errors)
    }
}
