//! The origin check: refuse requests another site makes the browser send.
//!
//! `Sec-Fetch-Site` decides when the browser sends it (`same-origin` and `none` pass).
//! Otherwise the `Origin` header, when present, must equal the app's own origin — scheme,
//! host and port, default ports normalised (`https://x` is `https://x:443`) — or one of
//! `csrf.trusted_origins`. The app's own origin is `csrf.public_origin` when set (the
//! address users type, for apps behind a TLS-terminating proxy); otherwise its host is the
//! request's `Host` (or HTTP/2 `:authority`) and its scheme is `X-Forwarded-Proto` when the
//! peer is one of `server.trusted_proxies`, else the request URI's scheme, else `http` (the
//! server itself speaks plain http).

use std::net::SocketAddr;

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, Uri};

/// An origin as `scheme://host[:port]`, lower-case, the default port dropped.
pub(crate) fn normalise(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/');
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    Some(with_scheme(&scheme, rest))
}

/// `scheme://authority` with the default port of `scheme` dropped.
fn with_scheme(scheme: &str, authority: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    format!("{scheme}://{authority}")
}

/// What the origin check needs from config.
pub(crate) struct OriginCheck {
    pub(crate) trusted: Vec<String>,
    pub(crate) public: Option<String>,
    /// `server.trusted_proxies`: only their `X-Forwarded-Proto` / `Forwarded` is believed.
    pub(crate) proxies: crate::client_ip::TrustedProxies,
}

impl OriginCheck {
    /// The app's own origin for this request.
    fn own(&self, headers: &HeaderMap, uri: &Uri, peer: Option<SocketAddr>) -> Option<String> {
        if let Some(public) = &self.public {
            return Some(public.clone());
        }
        // HTTP/2 clients send `:authority` rather than `Host`.
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .or(uri.authority().map(|a| a.as_str()))?;
        // Behind a trusted proxy the scheme is the one it reports (core's `ClientScheme`
        // rules); otherwise the request line's, else plain http (what Flagon serves).
        let scheme = if peer.is_some_and(|p| self.proxies.contains(p.ip())) {
            match self.proxies.client_scheme(headers, peer) {
                crate::ClientScheme::Https => "https".to_owned(),
                crate::ClientScheme::Http => "http".to_owned(),
            }
        } else {
            uri.scheme_str()
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| "http".to_owned())
        };
        Some(with_scheme(&scheme, host))
    }

    /// Whether the request comes from another site.
    pub(crate) fn cross_origin(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        peer: Option<SocketAddr>,
    ) -> bool {
        let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        let normalised = origin.and_then(normalise);
        let trusted = normalised
            .as_ref()
            .is_some_and(|o| self.trusted.contains(o));
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            return !matches!(site, "same-origin" | "none") && !trusted;
        }
        if origin.is_none() {
            // Not a browser, or an old one: the token alone decides.
            return false;
        }
        if trusted {
            return false;
        }
        match (normalised, self.own(headers, uri, peer)) {
            (Some(o), Some(own)) => o != own,
            // `null`, garbage, or no host to compare with.
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn check() -> OriginCheck {
        OriginCheck {
            trusted: vec!["https://partner.example".into()],
            public: None,
            proxies: crate::client_ip::TrustedProxies::parse(["10.0.0.1"]).unwrap(),
        }
    }

    #[test]
    fn origins_normalise_default_ports() {
        assert_eq!(
            normalise("https://X.example:443/").as_deref(),
            Some("https://x.example")
        );
        assert_eq!(normalise("http://x:80").as_deref(), Some("http://x"));
        assert_eq!(normalise("http://x:8080").as_deref(), Some("http://x:8080"));
        assert_eq!(normalise("null"), None);
        assert_eq!(normalise("ftp://x"), None);
    }

    #[test]
    fn the_scheme_is_compared() {
        let c = check();
        let uri = Uri::from_static("/submit");
        let h = headers(&[("host", "app.example"), ("origin", "https://app.example")]);
        assert!(
            c.cross_origin(&h, &uri, None),
            "plain http serves http://app.example"
        );
        let h = headers(&[("host", "app.example"), ("origin", "http://app.example")]);
        assert!(!c.cross_origin(&h, &uri, None));
        let h = headers(&[
            ("host", "app.example:443"),
            ("origin", "https://app.example"),
        ]);
        assert!(
            c.cross_origin(&h, &uri, None),
            "port 443 over http is not https"
        );
    }

    #[test]
    fn forwarded_proto_counts_only_from_trusted_proxies() {
        let c = check();
        let uri = Uri::from_static("/submit");
        let h = headers(&[
            ("host", "app.example:443"),
            ("origin", "https://app.example"),
            ("x-forwarded-proto", "https"),
        ]);
        let proxy: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        assert!(!c.cross_origin(&h, &uri, Some(proxy)));
        assert!(c.cross_origin(&h, &uri, Some(stranger)));
    }

    #[test]
    fn a_public_origin_and_trusted_origins() {
        let mut c = check();
        c.public = Some("https://app.example".into());
        let uri = Uri::from_static("/submit");
        let h = headers(&[("host", "internal:5000"), ("origin", "https://app.example")]);
        assert!(!c.cross_origin(&h, &uri, None));
        let h = headers(&[("host", "internal:5000"), ("origin", "http://app.example")]);
        assert!(c.cross_origin(&h, &uri, None));
        let h = headers(&[
            ("origin", "https://partner.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(!c.cross_origin(&h, &uri, None));
    }
}
