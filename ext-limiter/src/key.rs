//! Who a request is counted against: client IP (core's trusted-proxy-aware [`ClientIp`]),
//! user (core's [`Identity`]), an API-key header, or a function of the app's.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use flagon::axum::extract::Request;
use flagon::http::HeaderName;
use flagon::{ClientIp, Identity};

/// Longest header value or custom key kept as a key; longer ones are cut (so a client cannot
/// make the limiter hold megabytes per key).
const MAX_KEY_BYTES: usize = 128;

/// The client a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Who {
    /// An address, already grouped (IPv6 by its prefix).
    Ip(IpAddr),
    /// A user id, API key or custom key.
    Text(Arc<str>),
    /// No address is known (an in-process request without a peer): all such requests
    /// share one bucket.
    Unknown,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Ip(ip) => write!(f, "{ip}"),
            Who::Text(t) => f.write_str(t),
            Who::Unknown => f.write_str("unknown"),
        }
    }
}

/// The full key of one bucket cell: which route (0 for shared scopes), which method (0 unless
/// the limit is per method) and who.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BucketKey {
    pub(crate) route: u32,
    pub(crate) method: u8,
    pub(crate) who: Who,
}

/// A custom key function: the key for a request, or `None` to fall back to the client IP.
pub trait KeyFn: Send + Sync + 'static {
    /// The key `req` is counted against.
    fn key(&self, req: &Request) -> Option<String>;
}

impl<F> KeyFn for F
where
    F: Fn(&Request) -> Option<String> + Send + Sync + 'static,
{
    fn key(&self, req: &Request) -> Option<String> {
        self(req)
    }
}

/// What requests are keyed by.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client IP as core derives it (the peer, or the rightmost untrusted hop behind a
    /// configured trusted proxy).
    Ip,
    /// core's [`Identity`] when a login extension set one, else the client IP.
    User,
    /// The value of this header (an API key), else the client IP.
    Header(HeaderName),
    /// A function of the app's, else the client IP.
    Custom(Arc<dyn KeyFn>),
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyBy::Ip => f.write_str("Ip"),
            KeyBy::User => f.write_str("User"),
            KeyBy::Header(h) => write!(f, "Header({h})"),
            KeyBy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// How addresses are grouped: IPv4 and IPv6 prefix lengths.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grouping {
    pub(crate) v4: u8,
    pub(crate) v6: u8,
}

impl Grouping {
    /// `ip` with its host bits cleared. IPv4-mapped IPv6 counts as IPv4.
    pub(crate) fn group(self, ip: IpAddr) -> IpAddr {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX.checked_shl(32 - u32::from(self.v4)).unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX.checked_shl(128 - u32::from(self.v6)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }
}

fn text(s: &str) -> Who {
    let mut end = s.len().min(MAX_KEY_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Who::Text(Arc::from(&s[..end]))
}

impl KeyBy {
    pub(crate) fn who(&self, req: &Request, grouping: Grouping) -> Who {
        let found = match self {
            KeyBy::Ip => None,
            KeyBy::User => Identity::of(req).map(|id| text(&format!("user:{}", id.as_str()))),
            KeyBy::Header(name) => req
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(|v| text(&format!("key:{v}"))),
            KeyBy::Custom(f) => f.key(req).map(|k| text(&k)),
        };
        found.unwrap_or_else(|| match ClientIp::of(req) {
            Some(ClientIp(ip)) => Who::Ip(grouping.group(ip)),
            None => Who::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        let g = Grouping { v4: 32, v6: 64 };
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(g.group(a), g.group(b));
        assert_ne!(g.group(a), g.group(c));
        assert_eq!(g.group(a).to_string(), "2001:db8:1:2::");
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(g.group(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(g.group(mapped), v4);
        let g24 = Grouping { v4: 24, v6: 128 };
        assert_eq!(g24.group(v4).to_string(), "203.0.113.0");
        assert_eq!(g24.group(a), a);
        let all = Grouping { v4: 0, v6: 0 };
        assert_eq!(all.group(v4).to_string(), "0.0.0.0");
    }

    #[test]
    fn long_keys_are_cut_on_a_char_boundary() {
        let Who::Text(t) = text(&"é".repeat(200)) else {
            panic!()
        };
        assert!(t.len() <= MAX_KEY_BYTES);
    }
}
