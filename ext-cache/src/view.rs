//! The view cache: a route decorator that stores whole responses (Flask-Caching's
//! `@cache.cached`), keyed so that one user's page never reaches another.

use std::sync::Arc;

use flagon::axum::body::Body;
use flagon::axum::extract::{MatchedPath, Request};
use flagon::axum::response::{IntoResponse, Response};
use flagon::config::Profile;
use flagon::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use flagon::http_body::Body as _;
use flagon::{AppHandle, Decorator, Identity, Locale, Next, RequestExt, UrlParams, tracing};

use futures_util::future::{BoxFuture, Either};

use crate::handle::Backend;
use crate::view_key::{self, HashKey, KeyBuf, KeyOut};
use crate::{CacheError, CacheHandle, Caches, Ttl, stored};

/// Caches a route's whole response for `ttl`, keyed by method, path and canonical query
/// string; [`CachedView`] adds what the page varies on.
///
/// ```
/// use std::time::Duration;
/// use flagon::Route;
///
/// async fn about() -> &'static str { "about us" }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = flagon::App::builder()
///     .settings(flagon::testing::testing_config())
///     .register(flagon_cache::Cache::new())
///     .route(Route::get("/about", about).with(flagon_cache::cached(Duration::from_secs(60))))
///     .build()
///     .unwrap();
/// let client = flagon::testing::TestClient::new(&app);
/// assert_eq!(client.get("/about").send().await.text(), "about us");
/// assert_eq!(client.get("/about").send().await.text(), "about us"); // from the cache
/// # });
/// ```
pub fn cached(ttl: impl Into<Ttl>) -> Decorator {
    CachedView::new(ttl).into_decorator()
}

type Unless = Arc<dyn Fn(&Request) -> bool + Send + Sync>;
type ResponseFilter = Arc<dyn Fn(&Response) -> bool + Send + Sync>;

/// A view cache with its settings; [`into_decorator`](Self::into_decorator) makes the
/// [`Decorator`] for `Route::with` / `Blueprint::with`.
///
/// What is cached: `GET` and `HEAD` responses that are `200` (or what
/// [`response_filter`](Self::response_filter) accepts), set no cookie, are not
/// `Cache-Control: private` or `no-store`, do not say `Vary: *`, fit in `max_value_bytes`
/// with a known length, and do not say `Vary: Cookie` (a page that read the session)
/// unless the view varies on the identity. A request with an [`Identity`] bypasses a view
/// that does not vary on it: an authenticated page is never shared. A hit calls no
/// handler. In the development profile responses carry `X-Cache: HIT` or `MISS`.
///
/// ```
/// use std::time::Duration;
/// use flagon::http::header::ACCEPT_ENCODING;
/// use flagon_cache::CachedView;
///
/// let per_user = CachedView::new(Duration::from_secs(30))
///     .vary_on_identity()
///     .vary_on_locale()
///     .vary_on_header(ACCEPT_ENCODING)
///     .unless(|req| req.headers().contains_key("x-preview"))
///     .response_filter(|res| res.status().is_success() || res.status() == 404)
///     .into_decorator();
/// # let _ = per_user;
/// ```
#[derive(Clone)]
pub struct CachedView {
    ttl: Ttl,
    identity: bool,
    locale: bool,
    headers: Vec<HeaderName>,
    query_string: bool,
    unless: Option<Unless>,
    response_filter: Option<ResponseFilter>,
}

impl std::fmt::Debug for CachedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedView")
            .field("ttl", &self.ttl)
            .field("identity", &self.identity)
            .field("locale", &self.locale)
            .field("headers", &self.headers)
            .field("query_string", &self.query_string)
            .field("unless", &self.unless.is_some())
            .field("response_filter", &self.response_filter.is_some())
            .finish()
    }
}

impl CachedView {
    /// A view cache storing responses for `ttl`, keyed by method, path and query string.
    pub fn new(ttl: impl Into<Ttl>) -> Self {
        CachedView {
            ttl: ttl.into(),
            identity: false,
            locale: false,
            headers: Vec::new(),
            query_string: true,
            unless: None,
            response_filter: None,
        }
    }

    /// One entry per authenticated [`Identity`] (and one for anonymous requests).
    pub fn vary_on_identity(mut self) -> Self {
        self.identity = true;
        self
    }

    /// One entry per request [`Locale`].
    pub fn vary_on_locale(mut self) -> Self {
        self.locale = true;
        self
    }

    /// One entry per value of the request header `name`.
    pub fn vary_on_header(mut self, name: HeaderName) -> Self {
        self.headers.push(name);
        self
    }

    /// Leaves the query string out of the key (`/search?q=a` and `?q=b` share an entry).
    pub fn ignore_query_string(mut self) -> Self {
        self.query_string = false;
        self
    }

    /// Skips the cache, reading and storing, for requests where `f` says `true`
    /// (Flask-Caching's `unless`): a preview, an admin, a `?nocache`.
    pub fn unless<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> bool + Send + Sync + 'static,
    {
        self.unless = Some(Arc::new(f));
        self
    }

    /// Decides which responses are stored instead of "the status is 200"
    /// (Flask-Caching's `response_filter`): `f` sees the handler's response and says
    /// whether to keep it. The safety rules hold whatever it says: a response that sets a
    /// cookie, is `private` or `no-store`, says `Vary: *`, or read the session without the
    /// view varying on the identity is never stored.
    pub fn response_filter<F>(mut self, f: F) -> Self
    where
        F: Fn(&Response) -> bool + Send + Sync + 'static,
    {
        self.response_filter = Some(Arc::new(f));
        self
    }

    fn describe(&self) -> String {
        let mut d = match self.ttl {
            Ttl::Default => "cached (default TTL)".to_owned(),
            Ttl::Forever => "cached (forever)".to_owned(),
            Ttl::After(t) => format!("cached ({}s)", t.as_secs_f64()),
        };
        let mut vary: Vec<String> = Vec::new();
        if self.identity {
            vary.push("identity".into());
        }
        if self.locale {
            vary.push("locale".into());
        }
        vary.extend(self.headers.iter().map(|h| h.to_string()));
        if !vary.is_empty() {
            d.push_str(&format!(", varies on {}", vary.join(", ")));
        }
        if self.unless.is_some() {
            d.push_str(", unless");
        }
        if self.response_filter.is_some() {
            d.push_str(", response filter");
        }
        d
    }

    /// The decorator.
    pub fn into_decorator(self) -> Decorator {
        let description = self.describe();
        let view = Arc::new(self);
        Decorator::new("cache", description, move |req: Request, next: Next| {
            // A memory hit is answered here, synchronously: no future is built for it.
            // Everything else runs in a boxed future, so a hit's (the one core boxes) stays
            // the size of a response.
            match view.first(&req) {
                First::Hit(res) => Either::Left(std::future::ready(res)),
                First::Bypass => {
                    let rest: BoxFuture<'static, Response> = Box::pin(next.run(req));
                    Either::Right(rest)
                }
                First::Look(look) => {
                    let view = view.clone();
                    let rest: BoxFuture<'static, Response> =
                        Box::pin(async move { view.run(req, next, look).await });
                    Either::Right(rest)
                }
            }
        })
    }

    fn varies(&self) -> bool {
        self.identity || self.locale || !self.headers.is_empty()
    }

    /// The entry's key (see [`view_key`] for the layout).
    fn key(&self, req: &Request, hk: &HashKey) -> KeyBuf {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let mut key = KeyBuf::new();
        view_key::push_route(&mut key, route);
        view_key::push_path(&mut key, hk, route, req.uri().path());
        if self.query_string {
            let q = req.uri().query().unwrap_or("");
            view_key::push_query(&mut key, hk, Some(&view_key::canonical_query(q)));
        } else {
            view_key::push_query(&mut key, hk, None);
        }
        key.put(req.method().as_str());
        if self.varies() {
            let mut d = hk.hasher();
            if self.identity {
                match Identity::of(req) {
                    Some(i) => {
                        d.part(b"identity");
                        d.part(i.as_str().as_bytes());
                    }
                    None => d.part(b"anonymous"),
                }
            }
            if self.locale {
                d.part(b"locale");
                d.part(Locale::of(req).map(Locale::as_str).unwrap_or("").as_bytes());
            }
            for name in &self.headers {
                d.part(b"header");
                d.part(name.as_str().as_bytes());
                for v in req.headers().get_all(name) {
                    d.part(b"value");
                    d.part(v.as_bytes());
                }
            }
            key.put_char('.');
            d.push_hex(&mut key);
        }
        key
    }

    /// What to do with a request before anything is awaited.
    fn first(&self, req: &Request) -> First {
        let Some((caches, dev)) = self.applies(req) else {
            return First::Bypass;
        };
        let cache = caches.default();
        let key = self.key(req, &cache.inner.view_key);
        let (mut looked, mut bad) = (false, false);
        if let Backend::Memory(m) = &cache.inner.backend {
            let got = m.get_entry_now(key.as_str());
            cache.count(got.is_some());
            if let Some((_, Some(parts))) = &got {
                return First::Hit(mark(parts.to_response(), dev, "HIT"));
            }
            if let Some((bytes, None)) = got {
                match stored::decode(&bytes, cache.inner.max_value_bytes) {
                    Ok(parts) => return First::Hit(mark(parts.into_response(), dev, "HIT")),
                    Err(why) => {
                        cache.bad_entry(key.as_str(), &why);
                        bad = true;
                    }
                }
            }
            looked = true;
        }
        // Only now, past the hits, is the key copied to the heap and the caches kept.
        First::Look(Look {
            caches,
            key: key.into_string(),
            dev,
            looked,
            bad,
        })
    }

    async fn run(&self, req: Request, next: Next, look: Look) -> Response {
        let cache = look.caches.default();
        if look.bad {
            cache.delete(&look.key).await;
        }
        if look.looked {
            // A memory miss (or an entry that did not decode, removed above).
        } else if let Some(bytes) = cache.get_raw(&look.key).await {
            match stored::decode(&bytes, cache.inner.max_value_bytes) {
                Ok(parts) => return mark(parts.into_response(), look.dev, "HIT"),
                Err(why) => {
                    cache.bad_entry(&look.key, &why);
                    cache.delete(&look.key).await;
                }
            }
        }
        self.miss(req, next, cache, look.key, look.dev).await
    }

    /// The caches, and whether the profile is development, when this request may be served
    /// from (and stored in) the view cache.
    fn applies(&self, req: &Request) -> Option<(Arc<Caches>, bool)> {
        if !matches!(*req.method(), Method::GET | Method::HEAD)
            || (!self.identity && Identity::of(req).is_some())
            || self.unless.as_ref().is_some_and(|f| f(req))
        {
            return None;
        }
        let app = req.app()?;
        let dev = app.profile() == Profile::Development;
        Some((Caches::of(app)?, dev))
    }

    async fn miss(
        &self,
        req: Request,
        next: Next,
        cache: &CacheHandle,
        key: String,
        dev: bool,
    ) -> Response {
        let res = next.run(req).await;
        if !self.storable(&res) {
            return mark(res, dev, "MISS");
        }
        let cap = cache.inner.max_value_bytes as u64;
        match res.body().size_hint().exact() {
            Some(n) if n <= cap => {}
            _ => return mark(res, dev, "MISS"),
        }
        let (parts, body) = res.into_parts();
        let bytes = match flagon::axum::body::to_bytes(body, cap as usize).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("view cache: the response body failed: {e}");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        match stored::encode(parts.status, &parts.headers, &bytes) {
            Some(record) => {
                let parsed = match &cache.inner.backend {
                    // Parsed now, once, so that memory hits need not parse it.
                    Backend::Memory(m) if record.len() <= cache.inner.max_value_bytes => {
                        match (
                            stored::decode(&record, cache.inner.max_value_bytes),
                            cache.expire(self.ttl),
                        ) {
                            (Ok(parts), Some(expire)) => {
                                m.set_parsed(&key, Arc::new(parts), record.clone(), expire);
                                true
                            }
                            _ => false,
                        }
                    }
                    _ => false,
                };
                if !parsed && let Err(e) = cache.set_raw(&key, record, self.ttl).await {
                    tracing::debug!("view cache: response not stored: {e}");
                }
            }
            None => tracing::debug!("view cache: response not stored: a header is too long"),
        }
        mark(Response::from_parts(parts, Body::from(bytes)), dev, "MISS")
    }

    fn storable(&self, res: &Response) -> bool {
        let headers = res.headers();
        let wanted = match &self.response_filter {
            Some(f) => f(res),
            None => res.status() == StatusCode::OK,
        };
        if !wanted || headers.contains_key(header::SET_COOKIE) {
            return false;
        }
        if has_token(headers, header::CACHE_CONTROL, "private")
            || has_token(headers, header::CACHE_CONTROL, "no-store")
            || has_token(headers, header::VARY, "*")
        {
            return false;
        }
        self.identity || !has_token(headers, header::VARY, "cookie")
    }
}

/// The decorator's decision before it awaits anything.
enum First {
    /// Served from the memory backend.
    Hit(Response),
    /// Not for the view cache: straight to the handler.
    Bypass,
    /// Look the key up (on Redis), or render and store after a memory miss.
    Look(Look),
}

struct Look {
    caches: Arc<Caches>,
    key: String,
    dev: bool,
    /// The memory backend was read already (and missed).
    looked: bool,
    /// What it held did not decode.
    bad: bool,
}

/// Whether the comma-separated header `name` has `token` (alone or as `token=…`); a value
/// that is not text counts as having it, so that it is never stored.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',').any(|t| {
                let t = t.trim();
                t.eq_ignore_ascii_case(token)
                    || t.split('=')
                        .next()
                        .is_some_and(|k| k.trim().eq_ignore_ascii_case(token))
            })
        })
    })
}

fn mark(mut res: Response, dev: bool, what: &'static str) -> Response {
    if dev {
        res.headers_mut()
            .insert("x-cache", HeaderValue::from_static(what));
    }
    res
}

impl CacheHandle {
    /// Removes the view-cache entries of one page: the route `endpoint` with its path
    /// parameters from `params` (as [`AppHandle::url_for`] takes them), for every method,
    /// user, locale and header the view varies on. Parameters that are not in the path
    /// form a query string and narrow the removal to that (canonical) query; without them
    /// every query string of the path goes. Returns how many entries were removed.
    ///
    /// View entries live in the default cache, so call this on it. On Redis the entries
    /// are found with `SCAN` under the page's key prefix (never `KEYS`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use flagon::Route;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// async fn post() -> &'static str { "a post" }
    /// let app = flagon::App::builder()
    ///     .settings(flagon::testing::testing_config())
    ///     .register(flagon_cache::Cache::new())
    ///     .route(Route::get("/posts/{id}", post).with(flagon_cache::cached(Duration::from_secs(60))))
    ///     .build()
    ///     .unwrap();
    /// let client = flagon::testing::TestClient::new(&app);
    /// client.get("/posts/7").send().await;
    /// let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
    /// assert_eq!(cache.delete_cached(app.handle(), "post", [("id", 7)]).await.unwrap(), 1);
    /// # });
    /// ```
    pub async fn delete_cached(
        &self,
        app: &AppHandle,
        endpoint: &str,
        params: impl UrlParams,
    ) -> Result<u64, CacheError> {
        let url = app.url_for(endpoint, params)?;
        let route = route_of(app, endpoint)?;
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url.as_str(), None),
        };
        let hk = self.inner.view_key;
        let mut prefix = String::new();
        view_key::push_route(&mut prefix, &route);
        view_key::push_path(&mut prefix, &hk, &route, path);
        if let Some(q) = query {
            view_key::push_query(&mut prefix, &hk, Some(&view_key::canonical_query(q)));
        }
        self.delete_prefix(&prefix).await
    }

    /// Removes every view-cache entry of the route `endpoint`: all its paths, queries and
    /// variants. Returns how many entries were removed.
    pub async fn purge_cached(&self, app: &AppHandle, endpoint: &str) -> Result<u64, CacheError> {
        let route = route_of(app, endpoint)?;
        let mut prefix = String::new();
        view_key::push_route(&mut prefix, &route);
        self.delete_prefix(&prefix).await
    }
}

/// The route pattern of `endpoint`.
fn route_of(app: &AppHandle, endpoint: &str) -> Result<String, CacheError> {
    match app.routes().get(endpoint) {
        Some(r) => Ok(r.path.clone()),
        // `url_for` gives the error with its hint.
        None => Err(app.url_for(endpoint, ()).err().map_or_else(
            || CacheError::Unavailable("the route table changed"),
            CacheError::Url,
        )),
    }
}
