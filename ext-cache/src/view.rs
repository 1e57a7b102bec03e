//! The view cache: a route decorator that stores whole responses (Flask-Caching's
//! `@cache.cached`), keyed so that one user's page never reaches another.

use flagon::axum::body::Body;
use flagon::axum::extract::Request;
use flagon::axum::response::{IntoResponse, Response};
use flagon::config::Profile;
use flagon::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use flagon::http_body::Body as _;
use flagon::serde::de::{self, Deserializer, Visitor};
use flagon::serde::{Deserialize, Serialize, Serializer};
use flagon::{Decorator, Identity, Locale, Next, RequestExt, tracing};
use sha2::{Digest, Sha256};

use crate::{Caches, Ttl};

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

/// A view cache with its settings; [`into_decorator`](Self::into_decorator) makes the
/// [`Decorator`] for `Route::with` / `Blueprint::with`.
///
/// What is cached: `GET` and `HEAD` responses that are `200`, set no cookie, are not
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
///     .into_decorator();
/// # let _ = per_user;
/// ```
#[derive(Clone, Debug)]
pub struct CachedView {
    ttl: Ttl,
    identity: bool,
    locale: bool,
    headers: Vec<HeaderName>,
    query_string: bool,
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
        d
    }

    /// The decorator.
    pub fn into_decorator(self) -> Decorator {
        let description = self.describe();
        let view = std::sync::Arc::new(self);
        Decorator::new("cache", description, move |req: Request, next: Next| {
            let view = view.clone();
            async move { view.run(req, next).await }
        })
    }

    /// The entry's key: a digest of everything the response may depend on, so that
    /// client-chosen paths and queries cannot make keys long.
    fn key(&self, req: &Request) -> String {
        let mut h = Sha256::new();
        let mut part = |label: &[u8], value: &[u8]| {
            h.update(label);
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        part(b"method", req.method().as_str().as_bytes());
        part(b"path", req.uri().path().as_bytes());
        if self.query_string {
            part(
                b"query",
                canonical_query(req.uri().query().unwrap_or("")).as_bytes(),
            );
        }
        if self.identity {
            match Identity::of(req) {
                Some(i) => part(b"identity", i.as_str().as_bytes()),
                None => part(b"anonymous", b""),
            }
        }
        if self.locale {
            part(
                b"locale",
                Locale::of(req).map(Locale::as_str).unwrap_or("").as_bytes(),
            );
        }
        for name in &self.headers {
            part(b"header", name.as_str().as_bytes());
            for v in req.headers().get_all(name) {
                part(b"value", v.as_bytes());
            }
        }
        let digest = h.finalize();
        let mut key = String::with_capacity(5 + 64);
        key.push_str("view:");
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest {
            key.push(char::from(HEX[usize::from(b >> 4)]));
            key.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        key
    }

    async fn run(&self, req: Request, next: Next) -> Response {
        if !matches!(*req.method(), Method::GET | Method::HEAD)
            || (!self.identity && Identity::of(&req).is_some())
        {
            return next.run(req).await;
        }
        let Some(app) = req.app().cloned() else {
            return next.run(req).await;
        };
        let Some(caches) = Caches::of(&app) else {
            return next.run(req).await;
        };
        let cache = caches.default().clone();
        let dev = app.profile() == Profile::Development;
        let key = self.key(&req);
        if let Some(stored) = cache.get::<Stored>(&key).await {
            return stored.into_response(dev);
        }
        let res = next.run(req).await;
        if !self.storable(res.headers(), res.status()) {
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
        let stored = Stored {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), Blob(v.as_bytes().to_vec())))
                .collect(),
            body: Blob(bytes.to_vec()),
        };
        if let Err(e) = cache.set(&key, &stored, self.ttl).await {
            tracing::debug!("view cache: response not stored: {e}");
        }
        mark(Response::from_parts(parts, Body::from(bytes)), dev, "MISS")
    }

    fn storable(&self, headers: &HeaderMap, status: StatusCode) -> bool {
        if status != StatusCode::OK || headers.contains_key(header::SET_COOKIE) {
            return false;
        }
        let has = |name: HeaderName, token: &str| {
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
        };
        if has(header::CACHE_CONTROL, "private")
            || has(header::CACHE_CONTROL, "no-store")
            || has(header::VARY, "*")
        {
            return false;
        }
        self.identity || !has(header::VARY, "cookie")
    }
}

/// The query string with its parameters sorted by name (values of a repeated name keep
/// their order, which may matter), so `?b=1&a=2` and `?a=2&b=1` share an entry.
fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn mark(mut res: Response, dev: bool, what: &'static str) -> Response {
    if dev {
        res.headers_mut()
            .insert("x-cache", HeaderValue::from_static(what));
    }
    res
}

/// A stored response.
#[derive(Serialize, Deserialize)]
#[serde(crate = "flagon::serde")]
struct Stored {
    status: u16,
    headers: Vec<(String, Blob)>,
    body: Blob,
}

impl Stored {
    fn into_response(self, dev: bool) -> Response {
        let mut res = Response::new(Body::from(self.body.0));
        *res.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value.0),
            ) {
                res.headers_mut().append(n, v);
            }
        }
        mark(res, dev, "HIT")
    }
}

/// Bytes stored as a MessagePack `bin`, not an array of numbers.
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_order_does_not_matter_but_repeated_values_do() {
        assert_eq!(canonical_query("b=1&a=2"), canonical_query("a=2&b=1"));
        assert_ne!(canonical_query("a=1&a=2"), canonical_query("a=2&a=1"));
        assert_ne!(canonical_query("a=1"), canonical_query("a=2"));
        assert_eq!(canonical_query("a=%20"), canonical_query("a=+"));
    }
}
