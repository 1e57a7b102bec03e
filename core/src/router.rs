//! Turns the recorded routes into an axum `Router` with per-route hook chains, and keeps the
//! route table for `url_for` and `routes`.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Display;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http::{HeaderValue, Method, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tower::ServiceExt;
use tower_service::Service;

use crate::config::ServerConfig;
use crate::error::{Origin, SetupError};
use crate::hooks::{BoxFuture, Chain};
use crate::http_error::HttpError;
use crate::registry::Registry;

/// One recorded route.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    /// Methods it answers (`GET` implies `HEAD`).
    pub methods: Vec<Method>,
    /// The full path in axum syntax.
    pub path: String,
    /// The qualified endpoint name.
    pub endpoint: String,
    /// Who registered it.
    pub origin: Origin,
}

/// The app's routes, in registration order.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<RouteInfo>,
    by_endpoint: HashMap<String, usize>,
}

/// Why `url_for` could not build a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No route has this endpoint name.
    #[error("url_for: no endpoint named `{endpoint}`{hint}")]
    UnknownEndpoint {
        /// The name asked for.
        endpoint: String,
        /// A suggestion, when a close name exists.
        hint: String,
    },
    /// A path parameter was not given.
    #[error("url_for(`{endpoint}`): missing path parameter `{param}` for {path}")]
    MissingParam {
        /// The endpoint.
        endpoint: String,
        /// The missing parameter.
        param: String,
        /// The route's path.
        path: String,
    },
}

/// Parameters for `url_for`: `()`, arrays, slices or vectors of pairs, or maps.
pub trait UrlParams {
    /// The parameters as text pairs.
    fn into_pairs(self) -> Vec<(String, String)>;
}

impl UrlParams for () {
    fn into_pairs(self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl<K: AsRef<str>, V: Display, const N: usize> UrlParams for [(K, V); N] {
    fn into_pairs(self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.to_string()))
            .collect()
    }
}

impl<K: AsRef<str>, V: Display> UrlParams for &[(K, V)] {
    fn into_pairs(self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.to_string()))
            .collect()
    }
}

impl<K: AsRef<str>, V: Display> UrlParams for Vec<(K, V)> {
    fn into_pairs(self) -> Vec<(String, String)> {
        self.as_slice().into_pairs()
    }
}

impl<K: AsRef<str>, V: Display> UrlParams for BTreeMap<K, V> {
    fn into_pairs(self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.to_string()))
            .collect()
    }
}

/// Characters escaped in a wildcard (`{*rest}`): slashes stay.
const WILDCARD: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
/// Characters escaped in a path segment: a wildcard's, and `/`.
const SEGMENT: &AsciiSet = &WILDCARD.add(b'/');

impl RouteTable {
    /// All routes, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &RouteInfo> {
        self.routes.iter()
    }

    /// The routes registered by `owner` (an extension's name, `app` or `flagon`).
    pub fn by_owner<'a>(&'a self, owner: &'a str) -> impl Iterator<Item = &'a RouteInfo> + 'a {
        self.routes.iter().filter(move |r| r.origin.owner == owner)
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route with endpoint `name`.
    pub fn get(&self, endpoint: &str) -> Option<&RouteInfo> {
        self.by_endpoint.get(endpoint).map(|&i| &self.routes[i])
    }

    /// Builds the path for `endpoint`; parameters not in the path become the query string.
    pub fn url_for(&self, endpoint: &str, params: impl UrlParams) -> Result<String, UrlError> {
        let Some(route) = self.get(endpoint) else {
            let hint = self
                .routes
                .iter()
                .find(|r| {
                    r.endpoint.ends_with(&format!(".{endpoint}"))
                        || endpoint.ends_with(&format!(".{}", r.endpoint))
                })
                .map(|r| format!(" (did you mean `{}`?)", r.endpoint))
                .unwrap_or_default();
            return Err(UrlError::UnknownEndpoint {
                endpoint: endpoint.to_owned(),
                hint,
            });
        };
        let mut params = params.into_pairs();
        let mut out = String::with_capacity(route.path.len() + 16);
        let mut rest = route.path.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .unwrap_or(rest.len() - 1);
            let spec = &rest[open + 1..close];
            let (name, wildcard) = match spec.strip_prefix('*') {
                Some(n) => (n, true),
                None => (spec, false),
            };
            let Some(pos) = params.iter().position(|(k, _)| k == name) else {
                return Err(UrlError::MissingParam {
                    endpoint: endpoint.to_owned(),
                    param: name.to_owned(),
                    path: route.path.clone(),
                });
            };
            let (_, value) = params.remove(pos);
            let set = if wildcard { WILDCARD } else { SEGMENT };
            out.extend(utf8_percent_encode(&value, set));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        if !params.is_empty() {
            out.push('?');
            out.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.iter())
                    .finish(),
            );
        }
        Ok(out)
    }
}

/// Builds the router; path conflicts are reported as setup errors.
pub(crate) fn assemble(
    reg: &mut Registry,
    server: &ServerConfig,
) -> Result<(Router, RouteTable), Vec<SetupError>> {
    let mut errors = Vec::new();
    let mut matcher: matchit::Router<usize> = matchit::Router::new();
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (i, r) in reg.routes.iter().enumerate() {
        if let Some(&g) = group_of.get(&r.path) {
            groups[g].1.push(i);
            continue;
        }
        if let Err(e) = matcher.insert(r.path.clone(), i) {
            let (other, first) = match &e {
                matchit::InsertError::Conflict { with } => {
                    let first = reg
                        .routes
                        .iter()
                        .find(|o| &o.path == with)
                        .map(|o| o.origin.clone())
                        .unwrap_or_else(|| r.origin.clone());
                    (with.clone(), first)
                }
                _ => (r.path.clone(), r.origin.clone()),
            };
            errors.push(SetupError::PathConflict {
                path: r.path.clone(),
                other,
                first,
                second: r.origin.clone(),
            });
            continue;
        }
        group_of.insert(r.path.clone(), groups.len());
        groups.push((r.path.clone(), vec![i]));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let app_chain = Arc::new(Chain::compile(&reg.app_hooks, &[], None, None));
    let mut router = Router::new();
    let routes = std::mem::take(&mut reg.routes);
    let mut table = RouteTable::default();
    let mut entries: Vec<Option<crate::registry::RouteEntry>> =
        routes.into_iter().map(Some).collect();

    for (path, members) in groups {
        let mut path_entries = Vec::new();
        let mut allow: Vec<String> = Vec::new();
        for i in members {
            let r = entries[i].take().expect("each route is used once");
            let scopes: Vec<&crate::hooks::HookSet> =
                r.scopes.iter().map(|&s| &reg.blueprints[s].hooks).collect();
            let blueprint = r
                .scopes
                .last()
                .map(|&s| Arc::<str>::from(reg.blueprints[s].name.as_str()));
            let mut chain = Chain::compile(
                &reg.app_hooks,
                &scopes,
                Some(Arc::from(r.endpoint.as_str())),
                blueprint,
            );
            for m in &r.methods {
                allow.push(m.to_string());
                if m == Method::GET {
                    allow.push("HEAD".into());
                }
            }
            table
                .by_endpoint
                .entry(r.endpoint.clone())
                .or_insert(table.routes.len());
            let info = RouteInfo {
                methods: r.methods.clone(),
                path: r.path.clone(),
                endpoint: r.endpoint.clone(),
                origin: r.origin.clone(),
            };
            let guards = reg.guards.iter().filter(|g| (g.applies)(&info));
            chain.before.splice(0..0, guards.map(|g| g.hook.clone()));
            table.routes.push(info);
            path_entries.push(PathEntry {
                methods: r.methods,
                chain: Arc::new(chain),
                router: r.router,
            });
        }
        let single_plain = path_entries.len() == 1 && path_entries[0].chain.is_empty();
        if single_plain {
            let entry = path_entries.pop().expect("one entry");
            router = router.route(&path, entry.router.fallback(method_not_allowed));
        } else {
            allow.dedup();
            let allow =
                HeaderValue::from_str(&allow.join(",")).unwrap_or(HeaderValue::from_static(""));
            router = router.route_service(
                &path,
                PathService {
                    entries: path_entries.into(),
                    allow,
                    app_chain: app_chain.clone(),
                },
            );
        }
    }

    let matcher = Arc::new(matcher);
    router = if app_chain.is_empty() {
        router.fallback(move |req: Request| {
            let matcher = matcher.clone();
            async move { not_found(&matcher, &req) }
        })
    } else {
        let chain = app_chain.clone();
        router.fallback(move |req: Request| {
            let (chain, matcher) = (chain.clone(), matcher.clone());
            async move {
                chain
                    .run(req, |req| async move { not_found(&matcher, &req) })
                    .await
            }
        })
    };
    for (_, layer) in std::mem::take(&mut reg.layers) {
        router = layer(router);
    }
    if server.body_limit != 2 * 1024 * 1024 {
        router = router.layer(DefaultBodyLimit::max(server.body_limit));
    }
    // Turns every handler into a ready route once, instead of on each request.
    Ok((router.with_state(()), table))
}

/// No route matched: 404, except that a `GET` or `HEAD` for `/admin` when only `/admin/`
/// exists is redirected there with a 308, as Flask does for rules ending in `/`.
fn not_found(matcher: &matchit::Router<usize>, req: &Request) -> Response {
    let path = req.uri().path();
    let safe = req.method() == Method::GET || req.method() == Method::HEAD;
    if safe && !path.ends_with('/') && redirect_safe(path) {
        let slashed = format!("{path}/");
        if matcher.at(&slashed).is_ok() {
            let target = match req.uri().query() {
                Some(q) => format!("{slashed}?{q}"),
                None => slashed,
            };
            if let Ok(location) = HeaderValue::from_str(&target) {
                return (
                    StatusCode::PERMANENT_REDIRECT,
                    [(http::header::LOCATION, location)],
                )
                    .into_response();
            }
        }
    }
    HttpError::routing(StatusCode::NOT_FOUND).into_response()
}

/// Whether `path` stays on this site when sent back as a `Location`. Browsers read `\` as `/`
/// and drop tabs and line breaks in http(s) URLs, so `//host`, `/\host` and `/\t/host` all
/// name another site: a path whose first segment is empty after that is never redirected.
fn redirect_safe(path: &str) -> bool {
    let mut rest = path.bytes().filter(|b| !matches!(b, b'\t' | b'\n' | b'\r'));
    rest.next() == Some(b'/') && !matches!(rest.next(), Some(b'/' | b'\\'))
}

/// A method the path does not take: 405, except `OPTIONS`, which is answered with the
/// `Allow` header as Flask does (a route may still handle `OPTIONS` itself).
async fn method_not_allowed(method: Method) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    HttpError::routing(StatusCode::METHOD_NOT_ALLOWED).into_response()
}

struct PathEntry {
    methods: Vec<Method>,
    chain: Arc<Chain>,
    router: MethodRouter,
}

/// Dispatches one path's methods to their routes, each with its own hook chain.
#[derive(Clone)]
struct PathService {
    entries: Arc<[PathEntry]>,
    allow: HeaderValue,
    app_chain: Arc<Chain>,
}

impl PathService {
    fn find(&self, method: &Method) -> Option<&PathEntry> {
        self.entries
            .iter()
            .find(|e| e.methods.contains(method))
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| {
                        self.entries
                            .iter()
                            .find(|e| e.methods.contains(&Method::GET))
                    })
                    .flatten()
            })
    }
}

impl Service<Request> for PathService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.find(req.method()) {
            Some(entry) => {
                let router = entry.router.clone();
                if entry.chain.is_empty() {
                    Box::pin(router.oneshot(req))
                } else {
                    let chain = entry.chain.clone();
                    Box::pin(async move {
                        Ok(chain
                            .run(req, |req| async move {
                                match router.oneshot(req).await {
                                    Ok(res) => res,
                                    Err(never) => match never {},
                                }
                            })
                            .await)
                    })
                }
            }
            None => {
                let allow = self.allow.clone();
                let chain = self.app_chain.clone();
                let method = req.method().clone();
                Box::pin(async move {
                    let view = |_| async move {
                        let mut res = method_not_allowed(method).await;
                        res.headers_mut().insert(http::header::ALLOW, allow);
                        res
                    };
                    Ok(chain.run(req, view).await)
                })
            }
        }
    }
}
