//! Security headers for Flagon apps, with safe defaults: a Content-Security-Policy with a
//! per-request nonce, HSTS, frame, referrer and permissions policies, `nosniff`, and an
//! optional redirect to https that believes `X-Forwarded-Proto` only from trusted proxies.
//!
//! Add the crate and the app picks it up by discovery, or register it yourself:
//!
//! ```
//! use flagon::{App, Route};
//! use flagon::testing::{testing_config, TestClient};
//! use flagon_secure_headers::{CspNonce, SecureHeaders};
//!
//! async fn index(nonce: CspNonce) -> String {
//!     format!("<script nonce=\"{nonce}\">console.log('hello')</script>")
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = App::builder()
//!     .settings(testing_config())
//!     .register(SecureHeaders::new())
//!     .route(Route::get("/", index))
//!     .build()
//!     .unwrap();
//! let res = TestClient::new(&app).get("/").send().await;
//! let csp = res.header("content-security-policy").unwrap();
//! assert!(csp.starts_with("default-src 'self'; object-src 'none'"));
//! assert_eq!(res.header("x-frame-options"), Some("SAMEORIGIN"));
//! # });
//! ```
//!
//! By discovery, an app calls `.discover()` on its builder and [`link`] once (the linker
//! drops a crate nothing references, and its registration with it):
//!
//! ```no_run
//! # async fn run() -> std::process::ExitCode {
//! flagon_secure_headers::link();
//! let app = flagon::App::builder().discover().build().unwrap();
//! app.run().await
//! # }
//! ```
//!
//! It is the Flagon counterpart of Flask-Talisman, written as any third-party extension is:
//! against Flagon's public API only.
//!
//! # Configuration
//!
//! The `[secure_headers]` section (environment: `FLAGON_SECURE_HEADERS__KEY`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `force_https` | `false` | redirect plain-http requests to https |
//! | `force_https_permanent` | `false` | 301 instead of 302 |
//! | `https_host` | the request's `Host` | where https redirects go (set it with permanent redirects) |
//! | `content_security_policy` | [`DEFAULT_CSP`] | the policy; `""` sends none |
//! | `content_security_policy_report_only` | `false` | send it as `Content-Security-Policy-Report-Only` |
//! | `csp_nonce_in` | `["script-src", "style-src"]` | directives that get `'nonce-…'`; an absent one starts from `default-src` |
//! | `frame_options` | `"SAMEORIGIN"` | `X-Frame-Options`: `DENY`, `SAMEORIGIN` or `""` |
//! | `strict_transport_security` | `true` | send HSTS on https requests (never over plain http, RFC 6797) |
//! | `hsts_max_age` | `31536000` | seconds |
//! | `hsts_include_subdomains` | `true` | |
//! | `hsts_preload` | `false` | |
//! | `referrer_policy` | `"strict-origin-when-cross-origin"` | `""` sends none |
//! | `permissions_policy` | `"browsing-topics=()"` | `""` sends none |
//! | `content_type_nosniff` | `true` | `X-Content-Type-Options: nosniff` |
//! | `endpoints."name"` | | a [`PolicyOverride`] for one endpoint (qualified name) |
//! | `blueprints.name` | | a [`PolicyOverride`] for every route of a blueprint and its children |
//!
//! ```toml
//! [secure_headers]
//! force_https = true
//!
//! # An embeddable widget: any site may frame it.
//! [secure_headers.endpoints.widget]
//! frame_options = ""
//! content_security_policy = "default-src 'self'; frame-ancestors *"
//!
//! # A JSON API needs no CSP nonce.
//! [secure_headers.blueprints.api]
//! csp_nonce_in = []
//! ```
//!
//! Overrides apply outermost first: the app-wide policy, then each enclosing blueprint's,
//! then the endpoint's. [`SecureHeaders::endpoint`] and [`SecureHeaders::blueprint`] do
//! the same from code (and win over the file). A header the handler set itself is left
//! alone. `secure-headers show` prints every route's effective policy.
//!
//! # HTTPS behind a proxy
//!
//! A request is https when core's [`ClientScheme`](flagon::ClientScheme) says so: its peer
//! is listed in `server.trusted_proxies` and `X-Forwarded-Proto` (or, without it, the
//! client's `Forwarded` element's `proto`) says `https` (see [`flagon::client_ip`]). A client
//! that is not a trusted proxy cannot talk its way out of the redirect (or into HSTS) by
//! sending the header.
//!
//! # Templates
//!
//! Templates call `csp_nonce()`: `<script nonce="{{ csp_nonce() }}">`. It returns the
//! request's nonce, the one in its CSP header (`""` on a route whose policy has none).
//! Handlers take the same value as the [`CspNonce`] extractor; hooks read it from `g`.
//!
//! # Errors
//!
//! A bad value (an unknown `frame_options`, a policy with control characters, a malformed
//! directive name in `csp_nonce_in`, an unknown key) fails `build()` with the key's path.
//! An override naming an endpoint or blueprint that has no route fails `build()` too (it is
//! checked in the finish phase, once every route is registered), naming the key.

mod cli;
mod config;
mod layer;
mod nonce;
mod policy;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use flagon::{Extension, Setup, SetupError};

pub use config::{DEFAULT_CSP, PolicyOverride, SecureHeadersConfig};
pub use nonce::CspNonce;

use layer::{SecureHeadersLayer, Shared};
use policy::{Global, Spec};

/// The extension's name: its CLI group and its entry in `[extensions] disabled`.
pub const NAME: &str = "secure-headers";
/// Its config section.
pub const SECTION: &str = "secure_headers";

/// The extension: reads `[secure_headers]`, adds the headers to every response.
///
/// ```
/// use flagon_secure_headers::{PolicyOverride, SecureHeaders};
///
/// let ext = SecureHeaders::new().endpoint(
///     "widget",
///     PolicyOverride {
///         frame_options: Some(String::new()),
///         ..PolicyOverride::default()
///     },
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct SecureHeaders {
    endpoints: BTreeMap<String, PolicyOverride>,
    blueprints: BTreeMap<String, PolicyOverride>,
}

impl SecureHeaders {
    /// The extension with the settings of `[secure_headers]`.
    pub fn new() -> Self {
        SecureHeaders::default()
    }

    /// Overrides the policy of endpoint `name` (qualified: `admin.index`); merged over the
    /// file's override for it.
    pub fn endpoint(mut self, name: impl Into<String>, policy: PolicyOverride) -> Self {
        self.endpoints
            .entry(name.into())
            .or_default()
            .merge(&policy);
        self
    }

    /// Overrides the policy of every route in blueprint `name` (dotted for nested ones).
    pub fn blueprint(mut self, name: impl Into<String>, policy: PolicyOverride) -> Self {
        self.blueprints
            .entry(name.into())
            .or_default()
            .merge(&policy);
        self
    }
}

impl Extension for SecureHeaders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let mut cfg: SecureHeadersConfig = app.config(SECTION)?;
        for (name, o) in &self.endpoints {
            cfg.endpoints.entry(name.clone()).or_default().merge(o);
        }
        for (name, o) in &self.blueprints {
            cfg.blueprints.entry(name.clone()).or_default().merge(o);
        }
        if let Some(host) = &cfg.https_host
            && !layer::valid_host(host)
        {
            return Err(app.config_error(
                &format!("{SECTION}.https_host"),
                "not a host name (letters, digits, `.`, `-`, an optional `:port`)",
            ));
        }
        let base = Spec::from_config(&cfg);
        let default = base
            .compile()
            .map_err(|(key, msg)| app.config_error(&format!("{SECTION}.{key}"), msg))?;
        for (kind, overrides) in [
            ("endpoints", &cfg.endpoints),
            ("blueprints", &cfg.blueprints),
        ] {
            for (name, o) in overrides {
                base.with(o).compile().map_err(|(key, msg)| {
                    app.config_error(&format!("{SECTION}.{kind}.{name}.{key}"), msg)
                })?;
            }
        }
        let shared = Arc::new(Shared::new(
            base,
            Global::from_config(&cfg),
            default,
            cfg.endpoints,
            cfg.blueprints,
        ));

        app.layer(SecureHeadersLayer {
            shared: shared.clone(),
        });

        // Overrides name endpoints and blueprints: check them once every route is known.
        let for_finish = shared.clone();
        app.on_finish(move |late| {
            let resolved = for_finish.resolve_routes(late.routes());
            for key in &resolved.unmatched {
                let what = if key.starts_with("endpoints.") {
                    "endpoint name"
                } else {
                    "blueprint"
                };
                let error = late.config_error(
                    &format!("{SECTION}.{key}"),
                    format!(
                        "no route has this {what}; `routes` lists the endpoints and their \
                         blueprints"
                    ),
                );
                late.report(error);
            }
            Ok(())
        });

        app.command(cli::command(), move |ctx| {
            let shared = shared.clone();
            async move {
                match ctx.matches().subcommand_name() {
                    Some("show") => {
                        ctx.out()
                            .write_all(cli::show(&shared, ctx.app()).as_bytes())?;
                        Ok(())
                    }
                    other => Err(format!("unknown subcommand {other:?}").into()),
                }
            }
        });

        // `csp_nonce()` in templates: a request-aware template function, registered once
        // and clash-checked like any template global (another `csp_nonce` fails the build,
        // naming both). It reads the nonce the layer put in the request's `g`.
        app.template_request_function("csp_nonce", |req, _args| {
            Ok::<_, flagon::templates::Error>(CspNonce::template_value(req.g()))
        });
        Ok(())
    }
}

flagon::submit_extension!(NAME, |_config| Ok(Box::new(SecureHeaders::new())));

/// Keeps this crate's discovery entry in the app's binary. Call it once (from `main`) in an
/// app that uses `.discover()`: the linker drops a crate nothing references, and
/// `use flagon_secure_headers as _;` references nothing.
#[inline(never)]
pub fn link() {}
