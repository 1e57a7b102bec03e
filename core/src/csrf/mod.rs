//! CSRF protection, as Flask-WTF's `CSRFProtect`: every POST, PUT, PATCH and DELETE must
//! carry a token bound to the browser, in the `csrf_token` form field or the
//! `X-CSRF-Token` header, and must not come from another site (`Sec-Fetch-Site`, `Origin`).
//!
//! Templates put the token in forms with `csrf_token()`:
//!
//! ```html
//! <form method="post">
//!   <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
//! </form>
//! ```
//!
//! Scripts read it from the page or from the [`CsrfToken`] extractor and send it in the
//! header. A refused request gets a 403 saying why ([`CsrfError`]). Routes and blueprints
//! that authenticate otherwise (APIs with bearer tokens) are exempted with
//! [`Setup::csrf_exempt`] and [`Setup::csrf_exempt_blueprint`].
//!
//! Tokens are bound to a random per-browser secret kept in a signed `__Host-csrf` cookie,
//! not in the session store: an anonymous visitor's form costs no store record, and filling
//! the store (evicting records) cannot invalidate anyone's open form. Each call gives a
//! fresh token (no two pages show the same bytes); all verify until the browser's secret
//! is renewed, which happens when the session rotates its id or is deleted (login, logout;
//! CSRF listens with [`Setup::on_session_rotate`]) and on [`rotate_token`]. Tags are
//! HMAC-SHA256 keyed from the app's secret key, compared in constant time. Checking a
//! request loads no session.
//!
//! The origin check compares the full origin (scheme, host, port); how the app's own
//! origin is found is described in `csrf.public_origin` below.
//!
//! A request that carries `Authorization: Bearer …` and no cookie at all (an API client) is
//! not asked for a token: it has no ambient credential a forged request could use. It is still
//! origin-checked. A bearer request that also sends cookies is checked as any other.
//!
//! A form body (`application/x-www-form-urlencoded`, or `multipart/form-data` from an upload
//! form) is read, up to `server.body_limit`, to find the field, then handed to the handler
//! unchanged. Other bodies (JSON) must carry the token in the header.
//!
//! # Configuration (`[csrf]`)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `enabled` | `true` | check unsafe requests |
//! | `check_origin` | `true` | refuse cross-site requests by `Sec-Fetch-Site` / `Origin` |
//! | `trusted_origins` | `[]` | other origins allowed to post (`https://app.example.com`) |
//! | `public_origin` | none | the app's own origin as users reach it (`https://app.example.com`); without it, `Host` plus the scheme from `X-Forwarded-Proto` of a `server.trusted_proxies` peer, else `http` |
//! | `field_name` | `"csrf_token"` | form field holding the token |
//! | `header_name` | `"X-CSRF-Token"` | header holding the token |
//! | `insecure_plain_http` | `false` | development only: the cookie is `csrf` without `Secure` |

mod guard;
mod origin;
mod token;

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderName, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::error::{Origin, SetupError};
use crate::finish::Finish;
use crate::http_error::HttpError;
use crate::request::RequestMeta;
use crate::request_local::{RequestLocal, RequestScope};
use crate::setup::Setup;
use origin::OriginCheck;
use token::{Browser, Tokens};

/// Core's `[csrf]` section (see the [module docs](self)).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfConfig {
    /// Check unsafe requests.
    pub enabled: bool,
    /// Refuse cross-site requests by `Sec-Fetch-Site` / `Origin`.
    pub check_origin: bool,
    /// Other origins allowed to post, as `scheme://host[:port]`.
    pub trusted_origins: Vec<String>,
    /// The app's own origin as users reach it, as `scheme://host[:port]`.
    pub public_origin: Option<String>,
    /// Form field holding the token.
    pub field_name: String,
    /// Header holding the token.
    pub header_name: String,
    /// Development only: the cookie without `Secure` (and so without `__Host-`).
    pub insecure_plain_http: bool,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            enabled: true,
            check_origin: true,
            trusted_origins: Vec::new(),
            public_origin: None,
            field_name: "csrf_token".into(),
            header_name: "X-CSRF-Token".into(),
            insecure_plain_http: false,
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfError {
    /// No token in the form field or the header.
    #[error("The CSRF token is missing.")]
    Missing,
    /// The token is malformed or was not made by this app.
    #[error("The CSRF token is invalid.")]
    Invalid,
    /// The token was made for another browser or session (or before the secret was renewed).
    #[error("The CSRF token does not belong to this session.")]
    OtherSession,
    /// The request comes from another site.
    #[error("The request comes from another origin.")]
    CrossOrigin,
}

impl IntoResponse for CsrfError {
    fn into_response(self) -> Response {
        HttpError::new(StatusCode::FORBIDDEN, format!("CSRF check failed: {self}")).into_response()
    }
}

/// Endpoints exempt from CSRF checks (a registry; many parties may exempt the same one).
struct ExemptEndpoints;

impl crate::RegistryKind for ExemptEndpoints {
    type Entry = ();
    const KIND: &'static str = "CSRF-exempt endpoint";
    const UNIQUE: bool = false;
}

/// Blueprints exempt from CSRF checks.
struct ExemptBlueprints;

impl crate::RegistryKind for ExemptBlueprints {
    type Entry = ();
    const KIND: &'static str = "CSRF-exempt blueprint";
    const UNIQUE: bool = false;
}

/// What requests reach, as app state: the runtime (filled by the finish step) and CSRF's
/// request-local key.
struct Shared {
    runtime: Arc<OnceLock<Arc<CsrfRuntime>>>,
    key: RequestLocal<Browser>,
}

impl Setup<'_> {
    /// Exempts the route with endpoint `endpoint` (qualified: `api.create`) from CSRF
    /// checks, for routes that authenticate without cookies.
    /// An endpoint no route has fails the build.
    pub fn csrf_exempt(&mut self, endpoint: &str) -> &mut Self {
        self.add_to::<ExemptEndpoints>(endpoint, ())
    }

    /// Exempts every route registered in blueprint `name` (and its children) from CSRF
    /// checks; a route outside the blueprint is not exempt, whatever its endpoint name.
    /// A blueprint that is not registered fails the build.
    pub fn csrf_exempt_blueprint(&mut self, name: &str) -> &mut Self {
        self.add_to::<ExemptBlueprints>(name, ())
    }
}

pub(crate) fn init(s: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg: CsrfConfig = s.config("csrf")?;
    if HeaderName::from_bytes(cfg.header_name.as_bytes()).is_err() {
        return Err(s.config_error("csrf.header_name", "not a valid header name"));
    }
    if cfg.field_name.is_empty() {
        return Err(s.config_error("csrf.field_name", "must not be empty"));
    }
    if cfg.insecure_plain_http && s.profile() != Profile::Development {
        return Err(s.config_error(
            "csrf.insecure_plain_http",
            "allowed only in the development profile",
        ));
    }
    for (i, o) in cfg.trusted_origins.iter().enumerate() {
        if origin::normalise(o).is_none() {
            return Err(s.config_error(
                &format!("csrf.trusted_origins.{i}"),
                format!("`{o}` is not an origin (`https://host[:port]`)"),
            ));
        }
    }
    if let Some(o) = &cfg.public_origin
        && origin::normalise(o).is_none()
    {
        return Err(s.config_error(
            "csrf.public_origin",
            format!("`{o}` is not an origin (`https://host[:port]`)"),
        ));
    }
    // The browser's secret is a request-scoped value: read from the cookie on first use,
    // and set as a cookie after the response when it is new or renewed.
    let runtime: Arc<OnceLock<Arc<CsrfRuntime>>> = Arc::default();
    let cell = runtime.clone();
    let key: RequestLocal<Browser> = s.request_local(move |head| {
        let secret = match (runtime.get(), head.headers()) {
            (Some(rt), Some(headers)) => rt.tokens.browser_secret(headers),
            _ => None,
        };
        Browser::new(secret)
    });
    let runtime = cell.clone();
    s.after_response_maybe_async(key, move |browser: Arc<Browser>, mut res, _| {
        if let Some(rt) = runtime.get() {
            browser.finish(&rt.tokens, res.headers_mut());
        }
        crate::future::Eventually::Now(res)
    });
    s.on_session_rotate(move |session| {
        if let Some(browser) = key.get(session) {
            browser.renew();
        }
    });
    s.template_request_function("csrf_token", |req, _args| {
        token(req).ok_or_else(|| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "CSRF protection is not set up",
            )
        })
    });
    let proxies: crate::client_ip::TrustedProxies = s
        .settings()
        .value("server.trusted_proxies")?
        .unwrap_or_default();
    s.provide(Shared {
        runtime: cell.clone(),
        key,
    });
    s.on_finish(move |f| {
        finish(f, cfg, proxies, &cell);
        Ok(())
    });
    Ok(())
}

/// Checks the exemptions against the final route table, builds the runtime and compiles
/// the check onto the routes that need it.
fn finish(
    f: &mut Finish<'_>,
    cfg: CsrfConfig,
    proxies: crate::client_ip::TrustedProxies,
    cell: &OnceLock<Arc<CsrfRuntime>>,
) {
    let exempt_endpoints: Vec<(String, Origin)> = f
        .registry::<ExemptEndpoints>()
        .iter()
        .map(|e| (e.name().to_owned(), e.origin().clone()))
        .collect();
    let exempt_blueprints: Vec<(String, Origin)> = f
        .registry::<ExemptBlueprints>()
        .iter()
        .map(|e| (e.name().to_owned(), e.origin().clone()))
        .collect();
    // An exemption that matches nothing is a typo that would leave a route protected (or an
    // API broken) silently.
    for (endpoint, origin) in &exempt_endpoints {
        if f.routes().get(endpoint).is_none() {
            f.report(SetupError::Invalid {
                what: format!("CSRF exemption for endpoint `{endpoint}`"),
                origin: origin.clone(),
                reason: "no route has this endpoint name (blueprint routes are \
                         `blueprint.endpoint`)"
                    .into(),
            });
        }
    }
    for (name, origin) in &exempt_blueprints {
        if !f.blueprints().any(|b| b.name == name) {
            f.report(SetupError::Invalid {
                what: format!("CSRF exemption for blueprint `{name}`"),
                origin: origin.clone(),
                reason: "no blueprint has this name".into(),
            });
        }
    }
    let header = HeaderName::from_bytes(cfg.header_name.as_bytes())
        .unwrap_or(HeaderName::from_static("x-csrf-token"));
    let rt = Arc::new(CsrfRuntime {
        tokens: Arc::new(Tokens::new(
            &f.derive_key("flagon.csrf"),
            cfg.insecure_plain_http,
        )),
        header,
        origins: OriginCheck {
            trusted: cfg
                .trusted_origins
                .iter()
                .filter_map(|o| origin::normalise(o))
                .collect(),
            public: cfg.public_origin.as_deref().and_then(origin::normalise),
            proxies,
        },
        cfg,
    });
    let _ = cell.set(rt.clone());
    if !rt.cfg.enabled {
        return;
    }
    // The check is decided per route at build: only routes that take an unsafe method, and
    // are not exempt, carry it. A request that ends in a routing 404 or 405 matches no
    // route and is left to the router, as in Flask-WTF.
    let exempt_endpoints: Vec<String> = exempt_endpoints.into_iter().map(|(e, _)| e).collect();
    let exempt_blueprints: Vec<String> = exempt_blueprints.into_iter().map(|(b, _)| b).collect();
    let applies = move |route: &crate::RouteInfo| {
        route.methods.iter().any(is_unsafe)
            && !exempt_endpoints.contains(&route.endpoint)
            && !route
                .origin
                .blueprint
                .as_deref()
                .is_some_and(|bp| exempt_blueprints.iter().any(|b| in_blueprint(bp, b)))
    };
    let hook = move |req: Request| {
        let rt = rt.clone();
        async move {
            if !is_unsafe(req.method()) {
                return ControlFlow::Continue(req);
            }
            let Some(meta) = req.extensions().get::<RequestMeta>().cloned() else {
                return ControlFlow::Continue(req);
            };
            match rt.check(&meta, req).await {
                Ok(req) => ControlFlow::Continue(req),
                Err(res) => ControlFlow::Break(res),
            }
        }
    };
    f.guard(applies, hook);
}

/// Whether a route in blueprint `bp` (dotted path) is inside blueprint `name`.
fn in_blueprint(bp: &str, name: &str) -> bool {
    bp == name
        || bp
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('.'))
}

pub(crate) struct CsrfRuntime {
    tokens: Arc<Tokens>,
    cfg: CsrfConfig,
    header: HeaderName,
    origins: OriginCheck,
}

/// A fresh CSRF token for the request `scope` belongs to (`None` when CSRF protection is
/// not set up, or outside a request). The browser gets its secret cookie with this
/// response if it had none.
pub fn token(scope: &impl RequestScope) -> Option<String> {
    let head = scope.request_head()?;
    let shared = head.app().state::<Shared>()?;
    let rt = shared.runtime.get()?;
    let browser = shared.key.get(scope)?;
    Some(browser.issue(&rt.tokens))
}

/// Renews the browser's CSRF secret: tokens issued before stop verifying. Sessions' id
/// rotation and deletion do this on their own; call it for other occasions (a password
/// change).
pub fn rotate_token(scope: &impl RequestScope) {
    let Some(head) = scope.request_head() else {
        return;
    };
    let Some(key) = head.app().state::<Shared>().map(|s| s.key) else {
        return;
    };
    if let Some(browser) = key.get(scope) {
        browser.renew();
    }
}

/// A fresh CSRF token for the request, as an extractor (for pages that build forms without
/// templates, and for scripts).
#[derive(Clone, Debug)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the [`CsrfToken`] extractor failed (a server error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfTokenRejection {
    /// The request did not pass through a Flagon app with CSRF protection set up.
    #[error("CSRF protection is not set up for this request")]
    NotSetUp,
}

impl IntoResponse for CsrfTokenRejection {
    fn into_response(self) -> Response {
        HttpError::internal(self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = CsrfTokenRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        token(parts)
            .map(CsrfToken)
            .ok_or(CsrfTokenRejection::NotSetUp)
    }
}

fn is_unsafe(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}
