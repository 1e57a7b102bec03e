//! A safe `next`: only relative same-site paths survive.

use flagon::http::request::Parts;
use percent_encoding::percent_decode_str;

/// The longest `next` kept, in bytes.
const MAX_NEXT: usize = 2048;

/// Where to go after logging in: the request's `next` query parameter if it is a safe
/// relative path (see [`safe_next_value`]), else `/`.
///
/// ```
/// use flagon::http::Request;
/// let (parts, ()) = Request::get("/login?next=%2Fprivate%3Ftab%3D1").body(()).unwrap().into_parts();
/// assert_eq!(flagon_login::safe_next(&parts), "/private?tab=1");
/// let (parts, ()) = Request::get("/login?next=%2F%2Fevil.com").body(()).unwrap().into_parts();
/// assert_eq!(flagon_login::safe_next(&parts), "/");
/// ```
pub fn safe_next(parts: &Parts) -> String {
    let next = parts.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    let host = parts
        .headers
        .get(flagon::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    next.as_deref()
        .and_then(|n| safe_next_value(n, host))
        .unwrap_or_else(|| "/".to_owned())
}

/// `next` as a redirect target if it is safe, else `None`. Safe means a path on this site:
///
/// * it starts with a single `/` (not `//`, not `/\`), or it is an absolute `http(s)` URL
///   whose host is exactly `host` (the request's `Host`) without userinfo, which is cut to
///   its path;
/// * it holds no `\`, no whitespace, no control character and nothing but printable ASCII
///   (full-width `／／evil.com` is refused), and neither does its percent-decoded form
///   (`/%09/evil`, `/%2F%2Fevil`, `/%5Cevil` are refused; `%20` in a path is kept);
/// * it is at most 2048 bytes.
///
/// ```
/// use flagon_login::safe_next_value;
/// assert_eq!(safe_next_value("/posts/7?edit=1", None).as_deref(), Some("/posts/7?edit=1"));
/// assert_eq!(safe_next_value("https://good.com/x", Some("good.com")).as_deref(), Some("/x"));
/// for bad in ["//evil.com", "/\\evil.com", "https:evil.com", "http://good.com.evil.com",
///             "http://evil.com#@good.com", "javascript:alert(1)", "/%09/evil"] {
///     assert_eq!(safe_next_value(bad, Some("good.com")), None, "{bad}");
/// }
/// ```
pub fn safe_next_value(next: &str, host: Option<&str>) -> Option<String> {
    if next.is_empty() || next.len() > MAX_NEXT {
        return None;
    }
    if !next.bytes().all(|b| b.is_ascii_graphic()) || next.contains('\\') {
        return None;
    }
    let path = match strip_same_host(next, host) {
        Some(rest) => rest,
        None if next.starts_with('/') => next.to_owned(),
        None => return None,
    };
    if !relative_path_ok(&path) {
        return None;
    }
    let decoded = percent_decode_str(&path).decode_utf8().ok()?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') || !relative_path_ok(&decoded) {
        return None;
    }
    Some(path)
}

/// A path that a browser cannot read as another host.
fn relative_path_ok(path: &str) -> bool {
    let b = path.as_bytes();
    b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\'))
}

/// For `http(s)://HOST/rest` with `HOST` equal to `host`: `/rest` (or `/`). `None` for
/// anything else, including every other absolute URL.
fn strip_same_host(next: &str, host: Option<&str>) -> Option<String> {
    let lower = next.get(..8)?.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &next[8..]
    } else if lower.starts_with("http://") {
        &next[7..]
    } else {
        return None;
    };
    let host = host?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') || !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    Some(match tail {
        "" => "/".to_owned(),
        t if t.starts_with('/') => t.to_owned(),
        t => format!("/{t}"),
    })
}

/// `next` percent-encoded for a query string.
pub(crate) fn encode_component(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Django's `url_has_allowed_host_and_scheme` corpus (bad URLs), plus the issue's and
    /// our own: encoded, backslash, tab, full-width, userinfo, scheme-relative.
    const BAD: &[&str] = &[
        "http://example.com",
        "http:///example.com",
        "https://example.com",
        "ftp://example.com",
        r"\\example.com",
        r"\\\example.com",
        r"/\\/example.com",
        r"\\//example.com",
        r"/\/example.com",
        r"\/example.com",
        r"/\example.com",
        r"http:/\//example.com",
        r"http:\/example.com",
        r"http:/\example.com",
        "javascript:alert(\"XSS\")",
        "\njavascript:alert(x)",
        "\x08//example.com",
        r"http://otherserver\@example.com",
        r"http:\\testserver\@example.com",
        r"http://testserver\me:pass@example.com",
        r"http://testserver\@example.com",
        r"http:\\testserver\confirm\me@example.com",
        "http:999999999",
        "ftp:9999999999",
        "\n",
        "http://[2001:cdba:0000:0000:0000:0000:3257:9652/",
        "http://2001:cdba:0000:0000:0000:0000:3257:9652]/",
        // The issue's.
        "%2F%2Fevil",
        "/%2F%2Fevil",
        "/%09/evil",
        "\u{ff0f}\u{ff0f}evil.com",
        "https:evil.com",
        "http://testserver.evil.com",
        "http://evil.com#@testserver",
        // Ours.
        "//evil.com",
        "///evil.com",
        "//testserver/",
        "/\t/evil.com",
        "/ /evil.com",
        " /x",
        "/%5Cevil.com",
        "/%5C%5Cevil.com",
        "/%0d%0aSet-Cookie:x=1",
        "/\u{ff0f}evil.com",
        "http://user:pass@testserver/",
        "http://testserver@evil.com/",
        "HTTP://evil.com/",
        "data:text/html,<script>alert(1)</script>",
        "",
        "view/?param=//example.com",
        "/%ff",
    ];

    const GOOD: &[(&str, &str)] = &[
        (
            "/view/?param=http://example.com",
            "/view/?param=http://example.com",
        ),
        (
            "/view/?param=https://example.com",
            "/view/?param=https://example.com",
        ),
        (
            "/view?param=ftp://example.com",
            "/view?param=ftp://example.com",
        ),
        ("https://testserver/", "/"),
        ("HTTPS://testserver/", "/"),
        ("http://testserver", "/"),
        (
            "http://testserver/confirm?email=me@example.com",
            "/confirm?email=me@example.com",
        ),
        ("/url%20with%20spaces/", "/url%20with%20spaces/"),
        ("/", "/"),
        ("/private", "/private"),
        ("/posts/7/edit?tab=2#top", "/posts/7/edit?tab=2#top"),
        ("/caf%C3%A9", "/caf%C3%A9"),
    ];

    #[test]
    fn the_open_redirect_corpus_is_refused() {
        for bad in BAD {
            assert_eq!(safe_next_value(bad, Some("testserver")), None, "{bad:?}");
        }
    }

    #[test]
    fn good_relative_urls_are_kept() {
        for (good, want) in GOOD {
            assert_eq!(
                safe_next_value(good, Some("testserver")).as_deref(),
                Some(*want),
                "{good:?}"
            );
        }
        // Without a known host, absolute URLs are all refused.
        assert_eq!(safe_next_value("https://testserver/", None), None);
        assert!(safe_next_value(&format!("/{}", "a".repeat(3000)), None).is_none());
    }
}
