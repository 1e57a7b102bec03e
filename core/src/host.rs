//! The `Host` header rule of RFC 9112 §3.2: an HTTP/1.1 request carries exactly one, and it
//! is a valid `host[:port]`; otherwise the request is answered 400 before any route runs.
//!
//! HTTP/2 and HTTP/3 requests carry the authority in the URI (`:authority`) and need no
//! `Host`; HTTP/1.0 ones may omit it. Two `Host` lines or an invalid one are refused in every
//! version. The `Host` lines are found in the one pass core makes over a request's headers
//! ([`CoreHeaders`]), and checked with a byte-class table.

use http::header::{ACCEPT, HOST};
use http::{HeaderMap, HeaderValue, Version};

use crate::service::X_REQUEST_ID;

/// The `Host` lines of a request.
#[derive(Clone, Copy)]
pub(crate) enum Hosts<'a> {
    None,
    One(&'a HeaderValue),
    Many,
}

/// The headers core reads from every request, found in one pass over the header list.
pub(crate) struct CoreHeaders<'a> {
    pub(crate) hosts: Hosts<'a>,
    pub(crate) request_id: Option<&'a HeaderValue>,
    pub(crate) accept: Option<&'a HeaderValue>,
}

impl<'a> CoreHeaders<'a> {
    /// Requests carry few headers, so one scan comparing names (standard names compare as
    /// one byte) beats three hashed lookups; long header lists use the map's index.
    pub(crate) fn read(headers: &'a HeaderMap) -> Self {
        if headers.len() > 16 {
            let mut hosts = headers.get_all(HOST).iter();
            return CoreHeaders {
                hosts: match (hosts.next(), hosts.next()) {
                    (None, _) => Hosts::None,
                    (Some(h), None) => Hosts::One(h),
                    (Some(_), Some(_)) => Hosts::Many,
                },
                request_id: headers.get(X_REQUEST_ID),
                accept: headers.get(ACCEPT),
            };
        }
        let mut found = CoreHeaders {
            hosts: Hosts::None,
            request_id: None,
            accept: None,
        };
        for (name, value) in headers {
            if *name == HOST {
                found.hosts = match found.hosts {
                    Hosts::None => Hosts::One(value),
                    _ => Hosts::Many,
                };
            } else if *name == ACCEPT {
                // The first value, as `HeaderMap::get` gives.
                found.accept.get_or_insert(value);
            } else if *name == X_REQUEST_ID {
                found.request_id.get_or_insert(value);
            }
        }
        found
    }
}

/// Why a request's `Host` is refused, as the message of its 400.
pub(crate) fn problem(version: Version, hosts: Hosts<'_>) -> Option<&'static str> {
    match hosts {
        Hosts::None if version == Version::HTTP_11 => {
            Some("The request has no Host header (required in HTTP/1.1).")
        }
        Hosts::None => None,
        Hosts::Many => Some("The request has more than one Host header."),
        Hosts::One(host) if !valid(host.as_bytes()) => {
            Some("The request's Host header is not a valid host name.")
        }
        Hosts::One(_) => None,
    }
}

/// Whether `host` is `uri-host [ ":" port ]` (RFC 9110 §7.2): a registered name or IPv4
/// address, or a bracketed IP literal, then digits for the port. An empty value is allowed
/// (a target without authority). Anything that could end the authority (`/ ? # @ \`),
/// whitespace and controls are refused.
fn valid(host: &[u8]) -> bool {
    let mut bytes = host.iter();
    if host.first() == Some(&b'[') {
        bytes.next();
        let mut empty = true;
        loop {
            match bytes.next() {
                Some(b']') if !empty => break,
                Some(&b) if CLASS[b as usize] & LITERAL != 0 => empty = false,
                _ => return false,
            }
        }
        match bytes.next() {
            None => return true,
            Some(b':') => {}
            Some(_) => return false,
        }
    } else {
        // One pass: name bytes up to the first `:` (not a name byte), then the port.
        loop {
            match bytes.next() {
                None => return true,
                Some(b':') => break,
                Some(&b) if CLASS[b as usize] & NAME != 0 => {}
                Some(_) => return false,
            }
        }
    }
    bytes.all(u8::is_ascii_digit)
}

/// A byte of a registered name: RFC 3986 `unreserved / sub-delims / "%"`.
const NAME: u8 = 1;
/// A byte of an IP literal between brackets: a name byte or `:`.
const LITERAL: u8 = 2;

/// The class of every byte, so checking a host costs one load per byte.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
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
        {
            t[b] = NAME | LITERAL;
        }
        b += 1;
    }
    t[b':' as usize] = LITERAL;
    t
};

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn check(version: Version, hosts: &[&'static str]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(HOST, HeaderValue::from_static(h));
        }
        problem(version, CoreHeaders::read(&headers).hosts)
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

    #[test]
    fn long_header_lists_are_read_through_the_index() {
        for extra in [0, 20] {
            let mut headers = HeaderMap::new();
            for i in 0..extra {
                headers.append(
                    http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                    HeaderValue::from_static("v"),
                );
            }
            headers.append(ACCEPT, HeaderValue::from_static("text/html"));
            headers.append(ACCEPT, HeaderValue::from_static("application/json"));
            headers.append(X_REQUEST_ID, HeaderValue::from_static("abc"));
            headers.append(HOST, HeaderValue::from_static("a.example"));
            let read = CoreHeaders::read(&headers);
            assert_eq!(read.accept.unwrap(), "text/html");
            assert_eq!(read.request_id.unwrap(), "abc");
            assert!(matches!(read.hosts, Hosts::One(h) if h == "a.example"));
            headers.append(HOST, HeaderValue::from_static("b.example"));
            assert!(matches!(CoreHeaders::read(&headers).hosts, Hosts::Many));
        }
    }
}
