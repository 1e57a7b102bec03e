//! The tower layer that sets the headers, issues nonces and redirects to https.
//!
//! Per request it does one atomic load (the resolved route map), one hash lookup when some
//! route has an override, 16 random bytes and a base64 encoding when the policy has a
//! nonce, and header inserts of precompiled values.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use flagon::axum::extract::{MatchedPath, Request};
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::header::{HOST, LOCATION, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};
use flagon::http::{HeaderValue, Method, StatusCode};
use flagon::tower_layer::Layer;
use flagon::tower_service::Service;
use flagon::{AppHandle, BoxFuture, ClientScheme, G, HttpError, RequestExt, RouteInfo, RouteTable};

use crate::config::PolicyOverride;
use crate::nonce::CspNonce;
use crate::policy::{Compiled, Global, Spec};

/// Everything the layer and the `show` command share, built at `init_app`.
pub(crate) struct Shared {
    pub(crate) base: Spec,
    pub(crate) global: Global,
    pub(crate) default: Arc<Compiled>,
    pub(crate) endpoints: BTreeMap<String, PolicyOverride>,
    pub(crate) blueprints: BTreeMap<String, PolicyOverride>,
    resolved: OnceLock<Resolved>,
}

/// The overridden policies of one path, by method.
type PathPolicies = Vec<(Vec<Method>, Arc<Compiled>)>;

/// One route's effective policy.
pub(crate) struct RoutePolicy {
    pub(crate) route: RouteInfo,
    /// Where the policy comes from: `default`, or the overrides applied, outer first.
    pub(crate) label: String,
    pub(crate) policy: Arc<Compiled>,
}

/// The per-route policies, resolved against the app's route table on first use.
pub(crate) struct Resolved {
    /// Only paths with an overridden policy; empty when nothing is overridden.
    by_path: HashMap<String, PathPolicies>,
    pub(crate) routes: Vec<RoutePolicy>,
    /// Override keys that match no route (`endpoints.x` or `blueprints.x`).
    pub(crate) unmatched: Vec<String>,
}

impl Shared {
    pub(crate) fn new(
        base: Spec,
        global: Global,
        default: Compiled,
        endpoints: BTreeMap<String, PolicyOverride>,
        blueprints: BTreeMap<String, PolicyOverride>,
    ) -> Shared {
        Shared {
            base,
            global,
            default: Arc::new(default),
            endpoints,
            blueprints,
            resolved: OnceLock::new(),
        }
    }

    /// The resolved map, computed once per app.
    pub(crate) fn resolved(&self, app: &AppHandle) -> &Resolved {
        self.resolved.get_or_init(|| self.resolve(app))
    }

    /// Computes every route's policy: the base, then each enclosing blueprint's override
    /// (outermost first), then the endpoint's.
    pub(crate) fn resolve(&self, app: &AppHandle) -> Resolved {
        self.resolve_routes(app.routes())
    }

    /// [`Shared::resolve`] against a route table (the finish phase has no app yet).
    pub(crate) fn resolve_routes(&self, table: &RouteTable) -> Resolved {
        let mut cache: Vec<(Spec, Arc<Compiled>)> = Vec::new();
        let mut routes = Vec::new();
        let mut by_path: HashMap<String, PathPolicies> = HashMap::new();
        let mut used_endpoints = Vec::new();
        let mut used_blueprints = Vec::new();
        for r in table.iter() {
            let mut spec = self.base.clone();
            let mut labels = Vec::new();
            if let Some(bp) = &r.origin.blueprint {
                let mut prefix = String::new();
                for part in bp.split('.') {
                    if !prefix.is_empty() {
                        prefix.push('.');
                    }
                    prefix.push_str(part);
                    if let Some(o) = self.blueprints.get(&prefix) {
                        spec = spec.with(o);
                        labels.push(format!("blueprint `{prefix}`"));
                        used_blueprints.push(prefix.clone());
                    }
                }
            }
            if let Some(o) = self.endpoints.get(&r.endpoint) {
                spec = spec.with(o);
                labels.push(format!("endpoint `{}`", r.endpoint));
                used_endpoints.push(r.endpoint.clone());
            }
            let policy = if labels.is_empty() {
                self.default.clone()
            } else if let Some((_, c)) = cache.iter().find(|(s, _)| *s == spec) {
                c.clone()
            } else {
                // Each override was compiled alone at init, so their combination compiles.
                let compiled = match spec.compile() {
                    Ok(c) => Arc::new(c),
                    Err((key, msg)) => {
                        flagon::tracing::error!(target: "flagon_secure_headers", endpoint = %r.endpoint, key, msg, "override does not compile; using the default policy");
                        self.default.clone()
                    }
                };
                cache.push((spec, compiled.clone()));
                compiled
            };
            if !labels.is_empty() {
                by_path
                    .entry(r.path.clone())
                    .or_default()
                    .push((r.methods.clone(), policy.clone()));
            }
            routes.push(RoutePolicy {
                route: r.clone(),
                label: if labels.is_empty() {
                    "default".into()
                } else {
                    labels.join(" + ")
                },
                policy,
            });
        }
        let mut unmatched: Vec<String> = self
            .endpoints
            .keys()
            .filter(|k| !used_endpoints.contains(k))
            .map(|k| format!("endpoints.{k}"))
            .collect();
        unmatched.extend(
            self.blueprints
                .keys()
                .filter(|k| !used_blueprints.contains(k))
                .map(|k| format!("blueprints.{k}")),
        );
        Resolved {
            by_path,
            routes,
            unmatched,
        }
    }
}

impl Resolved {
    fn policy_for<'a>(&'a self, req: &Request) -> Option<&'a Arc<Compiled>> {
        if self.by_path.is_empty() {
            return None;
        }
        let path = req.extensions().get::<MatchedPath>()?;
        let entries = self.by_path.get(path.as_str())?;
        let m = req.method();
        entries
            .iter()
            .find(|(methods, _)| methods.contains(m))
            .or_else(|| {
                (m == Method::HEAD)
                    .then(|| entries.iter().find(|(ms, _)| ms.contains(&Method::GET)))
                    .flatten()
            })
            .map(|(_, p)| p)
    }
}

/// The layer registered with `Setup::layer`.
#[derive(Clone)]
pub(crate) struct SecureHeadersLayer {
    pub(crate) shared: Arc<Shared>,
}

impl<S> Layer<S> for SecureHeadersLayer {
    type Service = SecureHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecureHeadersService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service the layer wraps each route (and the 404 fallback) in.
#[derive(Clone)]
pub(crate) struct SecureHeadersService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for SecureHeadersService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let Some(app) = req.app() else {
            // Not served by a Flagon app: pass through untouched.
            return Box::pin(self.inner.call(req));
        };
        let resolved = self.shared.resolved(app);
        let policy = resolved
            .policy_for(&req)
            .unwrap_or(&self.shared.default)
            .clone();
        // Core's trusted-proxy rules: `X-Forwarded-Proto` or `Forwarded` only from
        // `server.trusted_proxies`; a request line's `https://` is the client's word.
        let https = ClientScheme::of(&req).is_https();
        if policy.force_https && !https {
            let global = &self.shared.global;
            let res = redirect_to_https(
                &req,
                global.permanent_redirect,
                global.https_host.as_deref(),
            );
            return Box::pin(async move { Ok(res) });
        }
        let shared = self.shared.clone();
        let nonce = policy.wants_nonce().then(CspNonce::generate);
        if let Some(n) = &nonce {
            req.extensions_mut().insert(n.clone());
            G::of(&mut req).insert(n.clone());
        }
        // Call the clone that was driven to readiness, keep a fresh one for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut = inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let headers = res.headers_mut();
            // A header the handler set itself wins: that is the per-response escape hatch.
            if let Some(csp) = &policy.csp
                && let Some(v) = csp.value(nonce.as_ref().map(CspNonce::as_str))
            {
                headers.entry(csp.name.clone()).or_insert(v);
            }
            for (name, value) in &policy.fixed {
                headers.entry(name.clone()).or_insert_with(|| value.clone());
            }
            if shared.global.nosniff {
                headers
                    .entry(X_CONTENT_TYPE_OPTIONS)
                    .or_insert(HeaderValue::from_static("nosniff"));
            }
            if https && let Some(hsts) = &shared.global.hsts {
                headers
                    .entry(STRICT_TRANSPORT_SECURITY)
                    .or_insert_with(|| hsts.clone());
            }
            Ok(res)
        })
    }
}

/// Whether `h` looks like a host name with an optional port (no path, no user info).
pub(crate) fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// 302 (or 301) to the same URL over https. The host comes from `Host` (or the URI's
/// authority); a missing or malformed host is a 400, never a redirect elsewhere.
fn redirect_to_https(req: &Request, permanent: bool, configured: Option<&str>) -> Response {
    let host = match configured {
        Some(h) => h,
        None => {
            let host = req
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str()));
            let Some(host) = host.filter(|h| valid_host(h)) else {
                return HttpError::bad_request("a missing or malformed Host header")
                    .into_response();
            };
            // The plain-http port means nothing on https: redirect to the default port.
            match host.rsplit_once(':') {
                Some((name, port)) if !name.is_empty() && !port.contains(']') => name,
                _ => host,
            }
        }
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(location) = HeaderValue::from_str(&format!("https://{host}{path}")) else {
        return HttpError::bad_request("the URL cannot be redirected to https").into_response();
    };
    let status = if permanent {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::FOUND
    };
    let mut res = status.into_response();
    res.headers_mut().insert(LOCATION, location);
    res
}
