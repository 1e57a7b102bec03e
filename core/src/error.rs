//! Build-time errors: everything `AppBuilder::build` can refuse, each naming the parties.

use std::fmt;

use crate::config::ConfigError;

/// A boxed error, the currency of user callbacks (hooks, commands, health checks).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The owner name of registrations made on the app builder itself.
pub(crate) const APP: &str = "app";
/// The owner name of core's own registrations.
pub(crate) const CORE: &str = "flagon";

/// Who registered something: the app itself, core, or an extension, optionally inside a
/// blueprint. Printed in clash messages, `routes` and `extensions`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `app`, `flagon` (core) or the extension's name.
    pub owner: &'static str,
    /// The dotted blueprint path the registration sits in, if any.
    pub blueprint: Option<std::sync::Arc<str>>,
}

impl Origin {
    pub(crate) fn new(owner: &'static str) -> Self {
        Origin {
            owner,
            blueprint: None,
        }
    }

    pub(crate) fn in_blueprint(owner: &'static str, blueprint: &str) -> Self {
        Origin {
            owner,
            blueprint: Some(blueprint.into()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            APP => f.write_str("the app")?,
            CORE => f.write_str("flagon core")?,
            name => write!(f, "extension `{name}`")?,
        }
        if let Some(bp) = &self.blueprint {
            write!(f, " (blueprint `{bp}`)")?;
        }
        Ok(())
    }
}

/// One reason an app cannot be built.
///
/// Every variant that involves two registrations names both, so a clash between two
/// extensions can be fixed without reading either one's source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The same extension name was registered twice.
    #[error("extension `{name}` is registered twice ({first} and {second}); register it once")]
    DuplicateExtension {
        /// The extension's name.
        name: &'static str,
        /// How the first one arrived.
        first: String,
        /// How the second one arrived.
        second: String,
    },
    /// An extension requires another that is not registered.
    #[error(
        "extension `{extension}` requires extension `{requires}`, which is not registered; \
         register it on the app builder (`.register(...)`) before calling build()"
    )]
    MissingRequirement {
        /// The extension with the requirement.
        extension: &'static str,
        /// The missing extension's name.
        requires: &'static str,
    },
    /// Extensions require each other in a loop.
    #[error("extension dependency cycle: {}", .cycle.join(" -> "))]
    DependencyCycle {
        /// The names along the cycle, the first repeated at the end.
        cycle: Vec<&'static str>,
    },
    /// Two routes answer the same method on the same path.
    #[error("route {method} {path} is registered twice: by {first} and by {second}")]
    RouteClash {
        /// The HTTP method.
        method: String,
        /// The full path.
        path: String,
        /// The first registration.
        first: Origin,
        /// The second registration.
        second: Origin,
    },
    /// Two paths cannot both be routed (for example `/{id}` and `/{name}`).
    #[error(
        "route path {path} (by {second}) conflicts with {other} (by {first}); the router cannot tell them apart"
    )]
    PathConflict {
        /// The path that could not be added.
        path: String,
        /// The path it conflicts with.
        other: String,
        /// Who registered `other`.
        first: Origin,
        /// Who registered `path`.
        second: Origin,
    },
    /// Two routes share an endpoint name.
    #[error(
        "endpoint `{endpoint}` is registered twice: {first_path} by {first} and {second_path} by {second}"
    )]
    EndpointClash {
        /// The endpoint name.
        endpoint: String,
        /// Path of the first route.
        first_path: Box<str>,
        /// The first registration.
        first: Origin,
        /// Path of the second route.
        second_path: Box<str>,
        /// The second registration.
        second: Origin,
    },
    /// Two CLI commands share a name.
    #[error("CLI command `{command}` is registered twice: by {first} and by {second}")]
    CommandClash {
        /// The command name.
        command: String,
        /// The first registration.
        first: Origin,
        /// The second registration.
        second: Origin,
    },
    /// Two parties read the same config section.
    #[error("config section `[{section}]` is claimed twice: by {first} and by {second}")]
    ConfigSectionClash {
        /// The section name.
        section: String,
        /// The first claimant.
        first: Origin,
        /// The second claimant.
        second: Origin,
    },
    /// Two parties provide state of the same type.
    #[error("state of type `{type_name}` is provided twice: by {first} and by {second}")]
    StateClash {
        /// The Rust type name.
        type_name: &'static str,
        /// The first provider.
        first: Origin,
        /// The second provider.
        second: Origin,
    },
    /// Two parties register the same named item (template filter, health check, …).
    #[error("{kind} `{name}` is registered twice: by {first} and by {second}")]
    NameClash {
        /// What kind of item (`template filter`, `health check`, …).
        kind: &'static str,
        /// The item's name.
        name: String,
        /// The first registration.
        first: Origin,
        /// The second registration.
        second: Origin,
    },
    /// A route, blueprint or name is malformed.
    #[error("{what} registered by {origin} is invalid: {reason}")]
    Invalid {
        /// What was being registered, e.g. ``route GET /x``.
        what: String,
        /// Who registered it.
        origin: Origin,
        /// What is wrong.
        reason: String,
    },
    /// Configuration could not be read or is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An extension's `init_app` failed for its own reason.
    #[error("extension `{extension}` failed to initialise: {source}")]
    Init {
        /// The extension.
        extension: &'static str,
        /// Its error.
        #[source]
        source: BoxError,
    },
}

impl SetupError {
    /// An extension's own initialisation failure, for use inside `init_app`.
    pub fn init(extension: &'static str, source: impl Into<BoxError>) -> Self {
        SetupError::Init {
            extension,
            source: source.into(),
        }
    }
}

/// Why `AppBuilder::build` refused: every problem found, not only the first.
#[derive(Debug)]
pub struct BuildError {
    errors: Vec<SetupError>,
}

impl BuildError {
    pub(crate) fn new(errors: Vec<SetupError>) -> Self {
        BuildError { errors }
    }

    /// Each problem found.
    pub fn errors(&self) -> &[SetupError] {
        &self.errors
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "cannot build the app: {one}"),
            many => {
                write!(f, "cannot build the app ({} problems):", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<SetupError> for BuildError {
    fn from(e: SetupError) -> Self {
        BuildError { errors: vec![e] }
    }
}
