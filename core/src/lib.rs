//! Flagon: Flask's extension ecosystem, rebuilt on axum and tokio — a small core with
//! typed, clash-checked extensions registered at startup.
//!
//! A Flask developer knows the shape: an app, `init_app`, blueprints, `before_request`,
//! `url_for`, CLI commands. Flagon keeps it and makes it typed and async. An axum developer
//! keeps plain axum handlers and extractors; Flagon adds what axum leaves out: a recorded
//! route table (`url_for`, `routes`), Flask-ordered hooks, extensions that contribute routes,
//! config sections, state, commands and health checks, and build-time errors for clashes.
//!
//! ```no_run
//! use flagon::{App, Extension, Route, Setup, SetupError};
//!
//! struct Greeter;
//!
//! impl Extension for Greeter {
//!     fn name(&self) -> &'static str { "greeter" }
//!     fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
//!         app.route(Route::get("/hello", || async { "Hello!" }).name("hello"));
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     match App::builder().register(Greeter).build() {
//!         Ok(app) => app.run().await, // `serve` by default; also `routes`, `config`, …
//!         Err(e) => {
//!             eprintln!("{e}");
//!             std::process::ExitCode::FAILURE
//!         }
//!     }
//! }
//! ```
//!
//! # Configuration
//!
//! Settings come from `flagon.toml` (or `FLAGON_CONFIG`), its profile tables (`FLAGON_ENV`
//! selects `development`, `testing` or `production`), and `FLAGON_SECTION__KEY` variables;
//! see [`config`]. Core reads:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `secret_key` | generated (not in production) | signing key; required in production: ≥ 32 random characters (`app secret-key` prints one) |
//! | `server.host` | `127.0.0.1` | bind address |
//! | `server.port` | `5000` | bind port |
//! | `server.body_limit` | `2097152` | request body limit in bytes |
//! | `server.request_timeout` | `30s` | a longer request gets a 503 |
//! | `server.header_read_timeout` | `10s` | time to receive request headers |
//! | `server.keep_alive_timeout` | `75s` | idle connections between requests are closed |
//! | `server.write_timeout` | `30s` | a response making no progress this long is cut |
//! | `server.max_connections` | ¾ of the fd limit | connections open at once |
//! | `server.shutdown_deadline` | `10s` | grace period for in-flight requests and workers on stop |
//! | `server.shutdown_hooks_timeout` | `10s` | bound on the shutdown hooks, after that |
//! | `server.trusted_proxies` | `[]` | proxies (addresses, CIDR ranges) whose forwarding headers are believed |
//! | `health.cache_for` | `1s` | `/readyz` reuses a result this long; concurrent probes share one run ([`health`]) |
//! | `extensions.disabled` | `[]` | discovered extensions not to register (see [`discovery`]) |
//! | `session.store` | `memory` | session store by name ([`session`]; extensions add more) |
//! | `session.capacity` | `10000` | most sessions the memory store keeps (one-shot sessions evicted first) |
//! | `session.memory_max_bytes` | `67108864` | most memory the memory store's sessions take together |
//! | `session.max_record_bytes` | `16384` | largest session (JSON bytes); a bigger save is refused and logged |
//! | `session.idle_timeout` | `2h` | an unused session expires after this |
//! | `session.absolute_timeout` | `7d` | a session expires this long after creation |
//! | `session.insecure_plain_http` | `false` | development only: session cookie without `Secure` |
//! | `session.on_store_error` | `empty` | `empty` (log, empty session) or `unavailable` (503) |
//! | `session.store_timeout` | `2s` | bound on each store call |
//! | `templates.dir` | `templates` | the app's template directory ([`templates`]) |
//! | `templates.auto_reload` | on in development | reload changed templates without a restart |
//! | `csrf.enabled` | `true` | token and origin checks on unsafe methods ([`csrf`]) |
//! | `csrf.trusted_origins` | `[]` | other origins allowed to post |
//! | `csrf.public_origin` | none | the app's origin as users reach it, for the origin check |
//!
//! The full key lists are on [`session::SessionConfig`], [`templates::TemplatesConfig`] and
//! [`csrf::CsrfConfig`].
//!
//! # Sessions, flash messages, templates, CSRF
//!
//! Every app has server-side [`session`]s (lazily loaded; a route that does not touch the
//! session pays no store call and sets no cookie, and a template loads it only if it uses
//! it), [`flash`]ed messages, minijinja
//! [`templates`] that extensions extend with filters, functions, globals, tests and context
//! processors, and [`csrf`] protection for forms and scripts.
//!
//! # Writing an extension
//!
//! The [`guide`] walks through writing, testing and publishing one, for readers who know
//! Flask's extensions; [`testing`] is the kit to test one alone. Beyond routes and hooks, an
//! extension can check the whole app at build ([`Setup::on_finish`]), hand out route
//! [`Decorator`]s (`@login_required`), offer [registries](RegistryKind) other extensions
//! fill, share the request's [`Identity`] and [`Locale`], and [mount](Setup::mount) routers
//! and services.
//!
//! # Errors
//!
//! [`AppBuilder::build`] returns a [`BuildError`] listing every [`SetupError`]: duplicate
//! routes, endpoints, commands, config sections, state types, registry entries or extension
//! names (each naming both parties), missing or cyclic `requires`, a route decorated by an
//! extension that is not registered (naming both), a mount over a route, what extensions'
//! [finish steps](Setup::on_finish) report, and configuration errors naming the key and
//! where its value came from (a [`config::ConfigError`], its cause kept as `source()`).
//! Handlers return [`HttpError`] for HTTP failures; the
//! [`extract`] wrappers (`Json`, `Form`, `Query`, `Path`) turn bad input into one too, so
//! error handlers and the client's `Accept` header decide how it is answered.
//! An `HttpError` is a `std::error::Error` with an optional typed cause
//! ([`HttpError::with_cause`]), which error handlers find by type ([`HttpError::find_cause`]);
//! `?` turns core's errors into a 500, and [`OrInternal`] any other.
//!
//! # Feature flags
//!
//! None yet: core builds with no network service and no C library.

#![forbid(unsafe_code)]

mod app;
pub mod breaker;
pub mod cli;
pub mod client_ip;
mod command;
pub mod config;
mod connection;
mod cookies;
mod core_setup;
mod crypto;
pub mod csrf;
mod decorator;
pub mod discovery;
mod error;
mod extension;
pub mod extract;
mod facts;
mod finish;
pub mod flash;
mod future;
mod g;
#[doc = include_str!("../docs/writing-extensions.md")]
pub mod guide {}
mod handle;
pub mod health;
mod hooks;
mod host;
mod http_error;
pub mod messages;
mod registries;
mod registry;
mod request;
mod request_local;
mod route;
mod router;
pub mod serve;
mod service;
pub mod session;
mod setup;
pub mod signals;
mod state;
pub mod templates;
pub mod testing;
pub mod throttle;
mod timeout;
mod worker;

pub use app::{App, AppBuilder, ExtensionInfo};
pub use client_ip::{ClientIp, ClientScheme};
pub use crypto::DerivedKey;
pub use decorator::{Decorator, Next};
pub use error::{BoxError, BuildError, Origin, SetupError};
pub use extension::{Arrival, Extension};
pub use facts::{Identity, Locale, RequestFact};
pub use finish::{BlueprintInfo, Finish};
pub use future::{BoxFuture, Eventually};
pub use g::G;
pub use handle::AppHandle;
pub use hooks::{ErrorContext, RequestContext};
pub use http_error::{ErrorKind, HttpError, OrInternal, escape_html, wants_json};
pub use registries::{Entries, Entry, RegistryKind};
pub use request::{Ext, PeerAddr, RequestExt, RequestId};
pub use request_local::{RequestHead, RequestLocal, RequestScope, ResponseOutcome};
pub use route::{Blueprint, Route, RouteInfo, proceed, respond};
pub use router::{MountInfo, RouteTable, UrlError, UrlParams};
pub use service::{AppService, X_REQUEST_ID};
pub use setup::Setup;
pub use worker::WorkerContext;

pub use discovery::Discovered;

// The crates whose types appear in Flagon's public API, so that an extension can depend on
// `flagon` alone. Deriving serde traits through the re-export needs
// `#[serde(crate = "flagon::serde")]` (see the guide).
pub use axum;
pub use bytes;
pub use clap;
pub use http;
pub use http_body;
pub use minijinja;
pub use serde;
pub use serde_json;
pub use tokio;
pub use tower;
pub use tower_layer;
pub use tower_service;
pub use tracing;

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
