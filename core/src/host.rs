//! The `Host` header rule of RFC 9112 §3.2: an HTTP/1.1 request carries exactly one, and it
//! is a valid `host[:port]`; otherwise the request is answered 400 before any route runs.
//!
//! HTTP/2 and HTTP/3 requests carry the authority in the URI (`:authority`) and need no
//! `Host`; HTTP/1.0 ones may omit it. Two `Host` lines or an invalid one are refused in every
//! version. The check costs one header lookup.

use http::header::HOST;
use http::{HeaderMap, Version};

/// Why a request's `Host` is refused, as the message of its 400.
pub(crate) fn problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => {
            Some("The request has no Host header (required in HTTP/1.1).")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("The request has more than one Host header."),
        (Some(host), None) if !valid(host.as_bytes()) => {
            Some("The request's Host header is not a valid host name.")
        }
        (Some(_), None) => None,
    }
}

/// Whether `host` is `uri-host [ ":" port ]` (RFC 9110 §7.2): a registered name or IPv4
/// address, or a bracketed IP literal, then digits for the port. An empty value is allowed
/// (a target without authority). Anything that could end the authority (`/ ? # @ \`),
/// whitespace and controls are refused.
fn valid(host: &[u8]) -> bool {
    let (name, port) = if host.first() == Some(&b'[') {
        let Some(end) = host.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &host[1..end];
        if literal.is_empty() || !literal.iter().all(|&b| b == b':' || name_char(b)) {
            return false;
        }
        match &host[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(colon) => (&host[..colon], &host[colon + 1..]),
            None => (host, &b""[..]),
        }
    };
    name.iter().all(|&b| name_char(b)) && port.iter().all(u8::is_ascii_digit)
}

/// RFC 3986 `unreserved / sub-delims / "%"`: the bytes of a registered name.
fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn check(version: Version, hosts: &[&'static str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(HOST, HeaderValue::from_static(h));
        }
        problem(version, &headers)
    }

    #[test]
    fn one_valid_host_passes() {
        for host in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:5000",
            "[::1]",
            "[::1]:443",
            "xn--bcher-kva.example",
            "",
        ] {
            assert_eq!(check(Version::HTTP_11, &[host]), None, "{host}");
        }
    }

    #[test]
    fn missing_duplicate_and_invalid_hosts_are_refused() {
        assert!(check(Version::HTTP_11, &[]).is_some());
        assert_eq!(check(Version::HTTP_10, &[]), None);
        assert_eq!(check(Version::HTTP_2, &[]), None);
        for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
            assert!(check(version, &["a.example", "b.example"]).is_some());
        }
        for host in [
            "evil.com/@x",
            "a b",
            "user@example.com",
            "example.com:80a",
            "example.com:80:81",
            "[::1",
            "[::1]x",
            "[]",
            "exa\\mple.com",
            "example.com?",
        ] {
            assert!(check(Version::HTTP_11, &[host]).is_some(), "{host}");
        }
    }
}
