//! CSRF protection, as Flask-WTF's `CSRFProtect`: every POST, PUT, PATCH and DELETE must
//! carry a token bound to the session, in the `csrf_token` form field or the
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
//! Tokens are a random nonce with two HMAC-SHA256 tags keyed by the app's secret key: one
//! over the nonce (so a token from this app is told from garbage), one over the nonce and a
//! per-session secret (so another session's token is refused, and says so). Each call gives
//! a fresh token (no two pages show the same bytes); all verify until
//! [`rotate_token`] replaces the session's secret. Tags are compared in constant time.
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
//! | `field_name` | `"csrf_token"` | form field holding the token |
//! | `header_name` | `"X-CSRF-Token"` | header holding the token |

use std::ops::ControlFlow;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};

use crate::AppHandle;
use crate::crypto::{SigningKey, hex, random_16, unhex};
use crate::error::{Origin, SetupError};
use crate::finish::Finish;
use crate::http_error::HttpError;
use crate::request::RequestMeta;
use crate::session::Session;
use crate::setup::Setup;

/// The session key holding the per-session CSRF secret.
/// The session key holding the per-session CSRF secret.
pub(crate) const SECRET_KEY: &str = "_csrf_secret";
/// Hex length of a token: nonce, app tag, session tag (16 bytes each).
const TOKEN_HEX_LEN: usize = 96;

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
    /// Form field holding the token.
    pub field_name: String,
    /// Header holding the token.
    pub header_name: String,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            enabled: true,
            check_origin: true,
            trusted_origins: Vec::new(),
            field_name: "csrf_token".into(),
            header_name: "X-CSRF-Token".into(),
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
    /// The token was made for another session (or before the token was rotated).
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

impl Setup<'_> {
    /// Exempts the route with endpoint `endpoint` (qualified: `api.create`) from CSRF
    /// checks, for routes that authenticate without cookies.
    /// An endpoint no route has fails the build.
    pub fn csrf_exempt(&mut self, endpoint: &str) -> &mut Self {
        self.add_to::<ExemptEndpoints>(endpoint, ())
    }

    /// Exempts every route of blueprint `name` (and its children) from CSRF checks.
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
    s.on_finish(move |f| {
        finish(f, cfg);
        Ok(())
    });
    Ok(())
}

fn finish(f: &mut Finish<'_>, cfg: CsrfConfig) {
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
    let rt = f.provide(CsrfRuntime {
        key: SigningKey::new(&f.derive_key("flagon.csrf")),
        header,
        trusted: cfg
            .trusted_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect(),
        cfg,
    });
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
            && !exempt_blueprints
                .iter()
                .any(|b| route.endpoint.starts_with(&format!("{b}.")))
    };
    let hook = move |req: Request| {
        let rt = rt.clone();
        async move {
            if !is_unsafe(req.method()) {
                return ControlFlow::Continue(req);
            }
            let Some(app) = req.extensions().get::<RequestMeta>().map(|m| m.app.clone()) else {
                return ControlFlow::Continue(req);
            };
            match rt.check(&app, req).await {
                Ok(req) => ControlFlow::Continue(req),
                Err(res) => ControlFlow::Break(res),
            }
        }
    };
    f.guard(applies, hook);
}

pub(crate) struct CsrfRuntime {
    key: SigningKey,
    cfg: CsrfConfig,
    header: HeaderName,
    trusted: Vec<String>,
}

impl CsrfRuntime {
    fn secret(&self, session: &Session, create: bool) -> Option<[u8; 16]> {
        let mut secret = [0u8; 16];
        if let Some(text) = session.get::<String>(SECRET_KEY)
            && unhex(text.as_bytes(), &mut secret)
        {
            return Some(secret);
        }
        if !create {
            return None;
        }
        let secret = random_16();
        // A String always serialises.
        let _ = session.insert(SECRET_KEY, hex(&secret));
        Some(secret)
    }

    fn token(&self, session: &Session) -> String {
        let secret = self.secret(session, true).unwrap_or_default();
        let nonce = random_16();
        let app_tag = self.key.tag(&[b"app", &nonce]);
        let session_tag = self.key.tag(&[b"session", &secret, &nonce]);
        let mut out = hex(&nonce);
        out.push_str(&hex(&app_tag));
        out.push_str(&hex(&session_tag));
        out
    }

    fn verify(&self, session: &Session, token: &str) -> Result<(), CsrfError> {
        let t = token.trim().as_bytes();
        if t.len() != TOKEN_HEX_LEN {
            return Err(CsrfError::Invalid);
        }
        let (mut nonce, mut app_tag, mut session_tag) = ([0u8; 16], [0u8; 16], [0u8; 16]);
        if !unhex(&t[..32], &mut nonce)
            || !unhex(&t[32..64], &mut app_tag)
            || !unhex(&t[64..], &mut session_tag)
        {
            return Err(CsrfError::Invalid);
        }
        if !self.key.verify(&[b"app", &nonce], &app_tag) {
            return Err(CsrfError::Invalid);
        }
        let Some(secret) = self.secret(session, false) else {
            return Err(CsrfError::OtherSession);
        };
        if !self
            .key
            .verify(&[b"session", &secret, &nonce], &session_tag)
        {
            return Err(CsrfError::OtherSession);
        }
        Ok(())
    }

    /// Whether the request comes from another site.
    fn cross_origin(&self, headers: &HeaderMap, authority: Option<&str>) -> bool {
        let origin = headers
            .get(ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase());
        let trusted = origin.as_ref().is_some_and(|o| self.trusted.contains(o));
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            match site {
                "same-origin" | "none" => return false,
                _ if trusted => return false,
                _ => return true,
            }
        }
        let Some(origin) = origin else {
            // Not a browser, or an old one: the token alone decides.
            return false;
        };
        if trusted {
            return false;
        }
        // HTTP/2 clients send `:authority` rather than `Host`.
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .or(authority)
            .map(str::to_ascii_lowercase);
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        match (origin_host, host) {
            (Some(o), Some(h)) => o != h,
            _ => true,
        }
    }

    /// The token field of a `multipart/form-data` body (an upload form), if any. The body is
    /// already buffered within the limit; a malformed one has no token.
    async fn multipart_token(&self, bytes: bytes::Bytes, boundary: String) -> Option<String> {
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some(self.cfg.field_name.as_str()) {
                return field.text().await.ok();
            }
        }
        None
    }

    /// Checks an unsafe request; returns it (its body restored) or the refusal.
    async fn check(&self, app: &AppHandle, req: Request) -> Result<Request, Response> {
        if self.cfg.check_origin
            && self.cross_origin(req.headers(), req.uri().authority().map(|a| a.as_str()))
        {
            return Err(CsrfError::CrossOrigin.into_response());
        }
        let session = Session::from_request(&req).await?;
        if let Some(v) = req.headers().get(&self.header) {
            let token = v.to_str().map_err(|_| CsrfError::Invalid.into_response())?;
            self.verify(&session, token)
                .map_err(IntoResponse::into_response)?;
            return Ok(req);
        }
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let is_form = content_type.starts_with("application/x-www-form-urlencoded");
        let boundary = multer::parse_boundary(&content_type).ok();
        if !is_form && boundary.is_none() {
            return Err(CsrfError::Missing.into_response());
        }
        let limit = app.server_config().body_limit;
        let (parts, body) = req.into_parts();
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Err(HttpError::from_body_error(e).into_response()),
        };
        let token = match boundary {
            None => form_urlencoded::parse(&bytes)
                .find(|(k, _)| *k == self.cfg.field_name)
                .map(|(_, v)| v.into_owned()),
            Some(boundary) => self.multipart_token(bytes.clone(), boundary).await,
        };
        let req = Request::from_parts(parts, Body::from(bytes));
        match token {
            None => Err(CsrfError::Missing.into_response()),
            Some(t) => {
                self.verify(&session, &t)
                    .map_err(IntoResponse::into_response)?;
                Ok(req)
            }
        }
    }
}

/// A fresh CSRF token for `session` (`None` when CSRF protection is not set up).
pub fn token(app: &AppHandle, session: &Session) -> Option<String> {
    let rt = app.state::<CsrfRuntime>()?;
    Some(rt.token(session))
}

/// Replaces the session's CSRF secret: tokens issued before stop verifying. The login
/// extension calls this on login and logout.
pub fn rotate_token(session: &Session) {
    session.remove(SECRET_KEY);
}

/// A fresh CSRF token for the request's session, as an extractor (for pages that build
/// forms without templates, and for scripts).
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

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_parts(&parts.extensions, &parts.headers).await?;
        let app = parts
            .extensions
            .get::<RequestMeta>()
            .map(|m| m.app.clone())
            .ok_or_else(|| {
                HttpError::internal("request did not pass through a Flagon app").into_response()
            })?;
        token(&app, &session)
            .map(CsrfToken)
            .ok_or_else(|| HttpError::internal("CSRF protection is not set up").into_response())
    }
}

fn is_unsafe(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}
