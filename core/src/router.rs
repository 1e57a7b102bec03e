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
use tower_service::Service;

use crate::config::ServerConfig;
use crate::decorator::DecoratorFn;
use crate::error::{Origin, SetupError};
use crate::future::BoxFuture;
use crate::hooks::Chain;
use crate::http_error::HttpError;
use crate::registry::Registry;
use crate::request::RequestMeta;
use crate::route::{HandlerFn, RouteInfo};

/// A router or service mounted under a prefix ([`Setup::mount`](crate::Setup::mount)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MountInfo {
    /// The path prefix it serves (`/static`).
    pub prefix: String,
    /// What it is, as given at registration.
    pub description: String,
    /// Who mounted it.
    pub origin: Origin,
}

/// The app's routes, in registration order, and its mounts.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<RouteInfo>,
    by_endpoint: HashMap<String, usize>,
    mounts: Vec<MountInfo>,
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

/// `?` on `url_for`: a 500, its cause logged.
impl From<UrlError> for HttpError {
    fn from(e: UrlError) -> Self {
        HttpError::internal(e)
    }
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

    /// The mounted routers and services, in registration order.
    pub fn mounts(&self) -> impl Iterator<Item = &MountInfo> {
        self.mounts.iter()
    }

    /// The table of what setup recorded: index `i` describes `reg.routes[i]`.
    pub(crate) fn of(reg: &Registry) -> RouteTable {
        let mut table = RouteTable::default();
        for r in &reg.routes {
            table
                .by_endpoint
                .entry(r.endpoint.clone())
                .or_insert(table.routes.len());
            table.routes.push(RouteInfo {
                methods: r.methods.clone(),
                path: r.path.clone(),
                endpoint: r.endpoint.clone(),
                origin: r.origin.clone(),
                blueprint: r
                    .scopes
                    .last()
                    .map(|&s| Arc::<str>::from(reg.blueprints[s].name.as_str())),
                decorators: r.decorators.clone(),
            });
        }
        table.mounts = reg
            .mounts
            .iter()
            .map(|m| MountInfo {
                prefix: m.prefix.clone(),
                description: m.description.clone(),
                origin: m.origin.clone(),
            })
            .collect();
        table
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

/// The path conflicts among the recorded routes and mounts, checked with every other
/// problem, before anything is built.
pub(crate) fn path_conflicts(reg: &Registry) -> Vec<SetupError> {
    let mut matcher = match route_matcher(&reg.routes) {
        Ok((matcher, _)) => matcher,
        Err(errors) => return errors,
    };
    let errors = mount_conflicts(reg);
    if !errors.is_empty() {
        return errors;
    }
    // What axum's `nest_service` will insert (it panics on a conflict): the prefix, the
    // prefix with a slash, and everything below.
    for m in &reg.mounts {
        let tail = format!("{}/{{*__private__axum_nest_tail_param}}", m.prefix);
        for path in [tail, m.prefix.clone(), format!("{}/", m.prefix)] {
            if let Err(e) = matcher.insert(path.clone(), usize::MAX) {
                let other = match e {
                    matchit::InsertError::Conflict { with } => with,
                    _ => path,
                };
                let first = reg
                    .routes
                    .iter()
                    .find(|r| r.path == other)
                    .map_or(m.origin.clone(), |r| r.origin.clone());
                return vec![SetupError::PathConflict {
                    path: format!("{} (mounted: {})", m.prefix, m.description),
                    other,
                    first,
                    second: m.origin.clone(),
                }];
            }
        }
    }
    Vec::new()
}

/// Routes grouped by path (indexes into `routes`), with the matcher that tells paths apart.
type Groups = (matchit::Router<usize>, Vec<(String, Vec<usize>)>);

/// Groups routes by path and finds the paths the router cannot tell apart.
fn route_matcher(routes: &[crate::registry::RouteEntry]) -> Result<Groups, Vec<SetupError>> {
    let mut errors = Vec::new();
    let mut matcher: matchit::Router<usize> = matchit::Router::new();
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        if let Some(&g) = group_of.get(&r.path) {
            groups[g].1.push(i);
            continue;
        }
        if let Err(e) = matcher.insert(r.path.clone(), i) {
            let (other, first) = match &e {
                matchit::InsertError::Conflict { with } => {
                    let first = routes
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
    match errors.is_empty() {
        true => Ok((matcher, groups)),
        false => Err(errors),
    }
}

/// Builds the router from what setup recorded and its `table` ([`RouteTable::of`]); path
/// conflicts are reported as setup errors. With `track`, every request records its route and
/// who answered it (for `RequestFinished`), so no route takes the direct path.
pub(crate) fn assemble(
    reg: &mut Registry,
    server: &ServerConfig,
    table: &RouteTable,
    track: bool,
) -> Result<Router, Vec<SetupError>> {
    let (matcher, groups) = route_matcher(&reg.routes)?;
    let errors = mount_conflicts(reg);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut app_chain = Chain::compile(&reg.app_hooks, &[], None, None);
    app_chain.track = track;
    let app_chain = Arc::new(app_chain);
    let mut router = Router::new();
    let routes = std::mem::take(&mut reg.routes);
    let mut entries: Vec<Option<crate::registry::RouteEntry>> =
        routes.into_iter().map(Some).collect();

    for (path, members) in groups {
        let mut path_entries = Vec::new();
        let mut allow: Vec<String> = Vec::new();
        for i in members {
            let r = entries[i].take().expect("each route is used once");
            let info = &table.routes[i];
            let scopes: Vec<&crate::hooks::HookSet> =
                r.scopes.iter().map(|&s| &reg.blueprints[s].hooks).collect();
            let endpoint = Arc::<str>::from(r.endpoint.as_str());
            let mut chain = Chain::compile(
                &reg.app_hooks,
                &scopes,
                Some(endpoint.clone()),
                info.blueprint.clone(),
            );
            for m in &r.methods {
                allow.push(m.to_string());
                if m == Method::GET {
                    allow.push("HEAD".into());
                }
            }
            let guards: Vec<_> = reg
                .guards
                .iter()
                .filter(|g| (g.applies)(info))
                .map(|g| g.hook.clone())
                .collect();
            chain.guards = guards.len();
            chain.before.splice(0..0, guards);
            chain.track = track;
            let decorators: Arc<[DecoratorFn]> =
                r.decorators.iter().map(|d| d.call.clone()).collect();
            path_entries.push(PathEntry {
                methods: r.methods,
                handlers: r.handlers,
                chain: Arc::new(chain),
                router: r.router,
                decorators,
                facts: track.then(|| (endpoint, info.blueprint.clone())),
            });
        }
        let single_plain = path_entries.len() == 1
            && path_entries[0].chain.is_empty()
            && path_entries[0].decorators.is_empty()
            && !track;
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
    for m in std::mem::take(&mut reg.mounts) {
        router = (m.nest)(router, track);
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
    Ok(router.with_state(()))
}

/// A mount serves its prefix and everything below it: a route or another mount there would
/// be shadowed (or make the router panic), so either is a build error naming both.
fn mount_conflicts(reg: &Registry) -> Vec<SetupError> {
    let under = |path: &str, prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let mut errors = Vec::new();
    for (i, m) in reg.mounts.iter().enumerate() {
        for r in reg.routes.iter().filter(|r| under(&r.path, &m.prefix)) {
            errors.push(SetupError::PathConflict {
                path: format!("{} (mounted: {})", m.prefix, m.description),
                other: r.path.clone(),
                first: r.origin.clone(),
                second: m.origin.clone(),
            });
        }
        for other in &reg.mounts[..i] {
            if under(&m.prefix, &other.prefix) || under(&other.prefix, &m.prefix) {
                errors.push(SetupError::PathConflict {
                    path: format!("{} (mounted: {})", m.prefix, m.description),
                    other: format!("{} (mounted: {})", other.prefix, other.description),
                    first: other.origin.clone(),
                    second: m.origin.clone(),
                });
            }
        }
    }
    errors
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
    /// The handler of each of `methods`.
    handlers: Vec<HandlerFn>,
    chain: Arc<Chain>,
    /// The same handlers as axum's router, for a path served without `PathService`.
    router: MethodRouter,
    decorators: Arc<[DecoratorFn]>,
    /// The route's endpoint and blueprint, when requests record them.
    facts: Option<(Arc<str>, Option<Arc<str>>)>,
}

/// Dispatches one path's methods to their routes, each with its own hook chain.
#[derive(Clone)]
struct PathService {
    entries: Arc<[PathEntry]>,
    allow: HeaderValue,
    app_chain: Arc<Chain>,
}

impl PathService {
    /// The entry and handler for `method`: its own, else for `HEAD` the `GET` one (axum's
    /// router, around this service, drops the body of a `HEAD` answer).
    fn find(&self, method: &Method) -> Option<(&PathEntry, &HandlerFn)> {
        let by = |m: &Method| {
            self.entries.iter().find_map(|e| {
                let i = e.methods.iter().position(|x| x == m)?;
                Some((e, e.handlers.get(i)?))
            })
        };
        by(method).or_else(|| (method == Method::HEAD).then(|| by(&Method::GET)).flatten())
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
            Some((entry, handler)) => {
                if let Some(facts) = &entry.facts
                    && let Some(meta) = req.extensions().get::<RequestMeta>()
                {
                    let _ = meta.route.set(facts.clone());
                }
                let track = entry.facts.is_some();
                if entry.chain.is_empty() && entry.decorators.is_empty() {
                    let view = handler(req);
                    return Box::pin(async move { Ok(view.await) });
                }
                let handler = handler.clone();
                if entry.chain.is_empty() {
                    // Decorators alone: their run is the whole future, so a decorator that
                    // answers itself (a cache hit) pays for no handler state.
                    let steps = entry.decorators.clone();
                    return Box::pin(async move {
                        Ok(crate::decorator::run(steps, handler, req, track).await)
                    });
                }
                let decorators = (!entry.decorators.is_empty()).then(|| entry.decorators.clone());
                let view = move |req: Request| async move {
                    match decorators {
                        None => handler(req).await,
                        Some(steps) => crate::decorator::run(steps, handler, req, track).await,
                    }
                };
                let chain = entry.chain.clone();
                Box::pin(async move { Ok(chain.run(req, view).await) })
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

/// A mounted service whose requests are recorded as answered by a mount.
#[derive(Clone)]
pub(crate) struct Mounted<S>(pub(crate) S);

impl<S> Service<Request> for Mounted<S>
where
    S: Service<Request, Error = Infallible>,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let Some(meta) = req.extensions().get::<RequestMeta>() {
            meta.mark_answered(crate::signals::AnsweredBy::Mount);
        }
        self.0.call(req)
    }
}
