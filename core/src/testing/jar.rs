//! The test client's cookie jar: the storage and sending rules of RFC 6265 that a test can
//! trip over (Path, Domain, Secure, expiry, the `__Secure-` and `__Host-` prefixes).

use std::collections::BTreeMap;

use http::HeaderValue;

/// One stored cookie.
#[derive(Clone, Debug)]
struct Stored {
    value: String,
    /// The `Domain` attribute: sent only to hosts in it. A cookie without one is sent to
    /// every host (a test often changes `Host` to test origin checks, not cookie scope).
    domain: Option<String>,
    secure: bool,
}

/// Cookies keyed by (name, path).
#[derive(Default)]
pub(super) struct Jar {
    cookies: BTreeMap<(String, String), Stored>,
}

/// Where a request goes, as the jar needs it.
pub(super) struct Target<'a> {
    pub(super) host: &'a str,
    pub(super) path: &'a str,
    /// Whether the client may send and store `Secure` cookies (https, or a browser's
    /// trustworthy `localhost`).
    pub(super) secure: bool,
}

impl Jar {
    /// The value of the first cookie called `name` (any path).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|((n, _), _)| n == name)
            .map(|(_, c)| c.value.clone())
    }

    /// Stores a cookie the test sets itself: path `/`, sent to every host.
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.cookies.insert(
            (name.to_owned(), "/".to_owned()),
            Stored {
                value: value.to_owned(),
                domain: None,
                secure: false,
            },
        );
    }

    pub(super) fn clear(&mut self) {
        self.cookies.clear();
    }

    /// The `Cookie` header for a request to `to`: matching cookies, longer paths first.
    pub(super) fn header(&self, to: &Target<'_>) -> Option<HeaderValue> {
        let mut matching: Vec<(&str, &str, &str)> = self
            .cookies
            .iter()
            .filter(|((_, path), c)| {
                path_matches(to.path, path)
                    && (!c.secure || to.secure)
                    && c.domain.as_ref().is_none_or(|d| domain_matches(to.host, d))
            })
            .map(|((name, path), c)| (name.as_str(), path.as_str(), c.value.as_str()))
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|(_, path, _)| std::cmp::Reverse(path.len()));
        let text: Vec<String> = matching
            .iter()
            .map(|(n, _, v)| format!("{n}={v}"))
            .collect();
        HeaderValue::from_str(&text.join("; ")).ok()
    }

    /// Applies one `Set-Cookie` received from `from`, as a browser would: a cookie it would
    /// refuse is ignored.
    pub(super) fn store(&mut self, set_cookie: &str, from: &Target<'_>) {
        let Ok(c) = cookie::Cookie::parse(set_cookie.to_owned()) else {
            return;
        };
        let secure = c.secure().unwrap_or(false);
        if secure && !from.secure {
            return;
        }
        let domain = c
            .domain()
            .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        if let Some(d) = &domain
            && !domain_matches(from.host, d)
        {
            return;
        }
        let path = match c.path() {
            Some(p) if p.starts_with('/') => p.to_owned(),
            _ => default_path(from.path),
        };
        let name = c.name();
        if name.starts_with("__Secure-") && !secure {
            return;
        }
        if name.starts_with("__Host-") && (!secure || domain.is_some() || c.path() != Some("/")) {
            return;
        }
        let expired = c.max_age().is_some_and(|a| a.is_zero() || a.is_negative())
            || c.expires_datetime()
                .is_some_and(|t| t <= cookie::time::OffsetDateTime::now_utc());
        let key = (name.to_owned(), path);
        if expired {
            self.cookies.remove(&key);
            return;
        }
        self.cookies.insert(
            key,
            Stored {
                value: c.value().to_owned(),
                domain,
                secure,
            },
        );
    }
}

/// RFC 6265 5.1.4: `request` path-matches `cookie`.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// RFC 6265 5.1.4: the default path is the request path's directory.
fn default_path(request: &str) -> String {
    match request.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request[..i].to_owned(),
    }
}

/// RFC 6265 5.1.3: `host` domain-matches `domain`.
fn domain_matches(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && host.parse::<std::net::IpAddr>().is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to<'a>(host: &'a str, path: &'a str) -> Target<'a> {
        Target {
            host,
            path,
            secure: true,
        }
    }

    fn sent(jar: &Jar, t: &Target<'_>) -> String {
        jar.header(t)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn path_and_domain_decide_what_is_sent() {
        let mut jar = Jar::default();
        let here = to("app.example", "/admin/users");
        jar.store("a=1; Path=/admin", &here);
        jar.store("b=2", &here); // default path: /admin
        jar.store("c=3; Path=/; Domain=example", &here);
        jar.store("d=4; Domain=other.example", &here); // refused
        assert_eq!(sent(&jar, &to("app.example", "/admin/x")), "a=1; b=2; c=3");
        assert_eq!(sent(&jar, &to("app.example", "/administrator")), "c=3");
        assert_eq!(sent(&jar, &to("www.example", "/admin")), "a=1; b=2; c=3");
        assert_eq!(sent(&jar, &to("elsewhere", "/admin")), "a=1; b=2");
    }

    #[test]
    fn secure_cookies_need_a_secure_client_and_prefixes_are_enforced() {
        let mut jar = Jar::default();
        let plain = Target {
            host: "app.example",
            path: "/",
            secure: false,
        };
        jar.store("s=1; Secure", &plain);
        assert_eq!(jar.get("s"), None, "not stored over plain http");
        jar.store("s=1; Secure", &to("app.example", "/"));
        assert_eq!(sent(&jar, &plain), "");
        assert_eq!(sent(&jar, &to("app.example", "/")), "s=1");
        let mut jar = Jar::default();
        let here = to("app.example", "/");
        jar.store("__Host-a=1; Path=/", &here);
        jar.store("__Host-b=1; Secure; Path=/; Domain=app.example", &here);
        jar.store("__Host-c=1; Secure", &here);
        jar.store("__Secure-d=1", &here);
        jar.store("__Host-ok=1; Secure; Path=/", &here);
        assert_eq!(sent(&jar, &here), "__Host-ok=1");
    }

    #[test]
    fn expiry_removes_only_the_same_path() {
        let mut jar = Jar::default();
        let here = to("h", "/");
        jar.store("a=1; Path=/", &here);
        jar.store("a=2; Path=/x", &here);
        jar.store("a=; Max-Age=0; Path=/x", &here);
        assert_eq!(sent(&jar, &to("h", "/x")), "a=1");
    }
}
