//! Locale negotiation per request: the app's selectors, then `?lang=`, the cookie and
//! `Accept-Language` (in `[i18n] sources` order), then the default.

use std::borrow::Cow;
use std::sync::OnceLock;

use flagon::axum::extract::Request;
use flagon::axum::response::Response;
use flagon::http::header::{CONTENT_LANGUAGE, COOKIE, HeaderValue, VARY};
use flagon::http::{HeaderMap, Uri};
use flagon::{Locale, RequestHead};
use memchr::memmem::Finder;

use crate::accept;
use crate::catalog::Bundles;
use crate::config::SourceKind;
use crate::state::Shared;

/// The app's own locale selector (the user's stored preference, a sub-domain): asked first,
/// for every request; `None` lets the next step decide. Whatever it returns is checked
/// against the available locales (RFC 4647 lookup) like any other requested value.
///
/// ```
/// use flagon::axum::extract::Request;
/// let by_host = |req: &Request| -> Option<String> {
///     let host = req.headers().get("host")?.to_str().ok()?;
///     host.strip_suffix(".example.com").map(str::to_owned)
/// };
/// let _i18n = flagon_i18n::I18n::new().selector(by_host);
/// ```
pub trait LocaleSelector: Send + Sync + 'static {
    /// The locale the app wants for `req`, if it knows.
    fn select(&self, req: &Request) -> Option<String>;
}

impl<F> LocaleSelector for F
where
    F: Fn(&Request) -> Option<String> + Send + Sync + 'static,
{
    fn select(&self, req: &Request) -> Option<String> {
        self(req)
    }
}

/// A selector that has to wait for its answer: the logged-in user's stored preference
/// (loading the user reads the session and a database), a tenant's setting. Asked after the
/// plain [`LocaleSelector`]s and before the configured sources; `None` lets the chain go
/// on. The future borrows nothing from the request (take what it needs first, as
/// flagon-login's `current_user(req)` does). Whatever it returns is checked against the
/// available locales like any other requested value.
///
/// A response whose locale such a selector may have decided gets `Vary: Cookie`, since
/// what it reads is usually found by the session cookie.
///
/// ```
/// use flagon::axum::extract::Request;
/// let by_header = |req: &Request| {
///     let wanted = req.headers().get("x-tenant-locale").and_then(|v| v.to_str().ok()).map(str::to_owned);
///     async move {
///         flagon::tokio::task::yield_now().await; // a lookup
///         wanted
///     }
/// };
/// let _i18n = flagon_i18n::I18n::new().async_selector(by_header);
/// ```
pub trait AsyncLocaleSelector: Send + Sync + 'static {
    /// The locale the app wants for `req`, once it knows.
    fn select(&self, req: &Request) -> flagon::BoxFuture<Option<String>>;
}

impl<F, Fut> AsyncLocaleSelector for F
where
    F: Fn(&Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<String>> + Send + 'static,
{
    fn select(&self, req: &Request) -> flagon::BoxFuture<Option<String>> {
        Box::pin(self(req))
    }
}

/// Which steps a request's locale depended on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Consulted {
    pub(crate) cookie: bool,
    pub(crate) header: bool,
}

/// A requested value, checked before any lookup: a well-formed range, then RFC 4647 lookup
/// among the available locales. Raw input never reaches a path or a bundle.
fn resolve(b: &Bundles, value: &str) -> Option<usize> {
    if value == "*" || accept::parse(value, 64, 1).is_empty() {
        return None;
    }
    b.find(value)
}

/// The value of query parameter `name`, percent-decoded.
pub(crate) fn query_value<'a>(uri: &'a Uri, name: &str) -> Option<Cow<'a, str>> {
    let q = uri.query()?;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return Some(if v.contains(['%', '+']) {
                let v = v.replace('+', " ");
                Cow::Owned(
                    percent_encoding::percent_decode_str(&v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            } else {
                Cow::Borrowed(v)
            });
        }
    }
    None
}

/// The cookie `finder` looks for (its needle is the cookie's name), if the request has
/// exactly one. A `Cookie` header without the name's bytes cannot hold it and is not split
/// pair by pair (most requests carry only a session cookie).
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, finder: &Finder<'_>) -> Option<&'a str> {
    let name = finder.needle();
    let mut found = None;
    for h in headers.get_all(COOKIE) {
        if finder.find(h.as_bytes()).is_none() {
            continue;
        }
        for pair in h.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name {
                continue;
            }
            if found.is_some() {
                return None; // A planted duplicate: believe neither.
            }
            found = Some(pair[eq + 1..].trim_ascii());
        }
    }
    std::str::from_utf8(found?).ok()
}

impl Shared {
    /// The steps after the selectors: the locale (an index into `b.available`) and what was
    /// consulted to find it.
    pub(crate) fn negotiate_head(
        &self,
        b: &Bundles,
        uri: Option<&Uri>,
        headers: Option<&HeaderMap>,
        session: Option<&str>,
    ) -> (usize, Consulted) {
        let mut consulted = Consulted::default();
        for source in &self.cfg.sources {
            let found = match source {
                SourceKind::Query => uri
                    .and_then(|u| query_value(u, &self.cfg.query_param))
                    .and_then(|v| resolve(b, &v)),
                SourceKind::Cookie => {
                    consulted.cookie = true;
                    headers
                        .and_then(|h| cookie_value(h, &self.cookie_finder))
                        .and_then(|v| resolve(b, v))
                }
                SourceKind::Session => {
                    // The session is found by its cookie.
                    consulted.cookie = true;
                    session.and_then(|v| resolve(b, v))
                }
                SourceKind::Header => {
                    consulted.header = true;
                    headers
                        .and_then(|h| h.get(flagon::http::header::ACCEPT_LANGUAGE))
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            let ranges = accept::parse(
                                v,
                                self.cfg.accept_language_max_len,
                                self.cfg.max_ranges,
                            );
                            accept::negotiate(&ranges, &b.available)
                        })
                }
            };
            if let Some(i) = found {
                return (i, consulted);
            }
        }
        (b.default, consulted)
    }

    /// The whole chain for a request; `session` is the session's value, when the `session`
    /// source is configured.
    pub(crate) fn negotiate(&self, req: &Request, session: Option<&str>) -> Locale {
        self.select_sync(req)
            .unwrap_or_else(|| self.negotiate_sources(req, session))
    }

    /// What the plain selectors say, checked.
    pub(crate) fn select_sync(&self, req: &Request) -> Option<Locale> {
        let b = self.bundles();
        self.selectors
            .iter()
            .find_map(|s| s.select(req).and_then(|v| resolve(&b, &v)))
            .map(|i| b.available[i].clone())
    }

    /// `value` (an async selector's answer) as an available locale.
    pub(crate) fn resolve_value(&self, value: &str) -> Option<Locale> {
        let b = self.bundles();
        resolve(&b, value).map(|i| b.available[i].clone())
    }

    /// The configured sources, then the default.
    pub(crate) fn negotiate_sources(&self, req: &Request, session: Option<&str>) -> Locale {
        let b = self.bundles();
        let (i, _) = self.negotiate_head(&b, Some(req.uri()), Some(req.headers()), session);
        b.available[i].clone()
    }
}

/// A request whose response used its locale (a translation, `Lang`, or, when i18n provides
/// core's `Locale` fact, any read of it): the after-response step adds `Content-Language`
/// and the `Vary` the negotiation needs.
pub(crate) struct Used {
    pub(crate) consulted: Consulted,
    /// What negotiation from the request's head picks (query, cookie, header, default):
    /// the request's `Locale` fact when i18n provides it.
    pub(crate) negotiated: Option<Locale>,
    /// `negotiated` as a `Content-Language` value.
    negotiated_header: Option<HeaderValue>,
    /// i18n provides the fact from this value: it was made because someone read it.
    provided: bool,
    /// The locale a translation used, when it was one set explicitly on the request.
    pub(crate) locale: OnceLock<Locale>,
}

impl Used {
    /// Negotiates from the request's head (without the selectors and the session, which
    /// need the whole request: with either configured, a before hook sets the fact).
    pub(crate) fn new(shared: Option<&Shared>, head: &RequestHead<'_>, provided: bool) -> Used {
        let (consulted, negotiated, negotiated_header) = match (shared, head.headers()) {
            (Some(s), Some(h)) => {
                let b = s.bundles();
                let (i, consulted) = s.negotiate_head(&b, head.uri(), Some(h), None);
                let header = b.content_language.get(i).cloned().flatten();
                (consulted, Some(b.available[i].clone()), header)
            }
            _ => (
                Consulted {
                    cookie: true,
                    header: true,
                },
                None,
                None,
            ),
        };
        Used {
            consulted,
            negotiated,
            negotiated_header,
            provided,
            locale: OnceLock::new(),
        }
    }
}

/// The after-response step for a request that used its locale.
pub(crate) fn finish_response(used: &Used, mut res: Response) -> Response {
    let provided = used.negotiated.as_ref().filter(|_| used.provided);
    let Some(locale) = used.locale.get().or(provided) else {
        return res;
    };
    let headers = res.headers_mut();
    if !headers.contains_key(CONTENT_LANGUAGE) {
        // The negotiated locale's value was made once; another locale's is made now.
        let value = match (&used.negotiated, &used.negotiated_header) {
            (Some(n), Some(v)) if n == locale => Some(v.clone()),
            _ => HeaderValue::from_str(locale.as_str()).ok(),
        };
        if let Some(v) = value {
            headers.insert(CONTENT_LANGUAGE, v);
        }
    }
    // A response without `Vary` (the usual one) gets the names without reading anything.
    let had_vary = headers.contains_key(VARY);
    let mut add = |name: &'static str| {
        let present = had_vary
            && headers.get_all(VARY).iter().any(|v| {
                v.to_str().is_ok_and(|s| {
                    s.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case(name) || p.trim() == "*")
                })
            });
        if !present {
            headers.append(VARY, HeaderValue::from_static(name));
        }
    };
    if used.consulted.header {
        add("Accept-Language");
    }
    if used.consulted.cookie {
        add("Cookie");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let uri: Uri = "/x?a=1&lang=zh%2DHant&b".parse().unwrap();
        assert_eq!(query_value(&uri, "lang").as_deref(), Some("zh-Hant"));
        assert_eq!(query_value(&uri, "b").as_deref(), Some(""));
        assert_eq!(query_value(&uri, "c"), None);
    }

    #[test]
    fn duplicate_cookies_are_not_believed() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; lang=zh"));
        let lang = Finder::new("lang");
        assert_eq!(cookie_value(&h, &lang), Some("zh"));
        h.append(COOKIE, HeaderValue::from_static("lang=en"));
        assert_eq!(cookie_value(&h, &lang), None);
    }
}
