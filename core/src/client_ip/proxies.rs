//! The pure half of [`client_ip`](crate::client_ip): trusted proxy ranges and the walk over the
//! forwarding headers, with no request in sight, so that `server.trusted_proxies` can be read
//! by config without config knowing requests.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One address or CIDR range of `server.trusted_proxies` (`10.0.0.1`, `10.0.0.0/8`,
/// `fd00::/8`). An IPv4-mapped IPv6 range is stored as its IPv4 range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range (an IPv4-mapped `ip` is compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` (of `width`) with all but the first `prefix` cleared.
fn mask(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (width - prefix)) & (u128::MAX >> (128 - u32::from(width)))
    }
}

/// Why a trusted-proxy entry is not an address or CIDR range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` {problem}")]
pub struct IpRangeError {
    input: String,
    problem: String,
}

impl FromStr for IpRange {
    type Err = IpRangeError;

    fn from_str(s: &str) -> Result<Self, IpRangeError> {
        let err = |problem: String| IpRangeError {
            input: s.to_owned(),
            problem,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| err("is not an IP address or CIDR range".into()))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(err(format!(
                        "has a bad prefix length: use a number from 0 to {width}"
                    )));
                }
            },
        };
        let bits = match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        if mask(bits, width, prefix) != bits {
            return Err(err(format!(
                "has bits set after its /{prefix} prefix: write the network address"
            )));
        }
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= 96
        {
            return Ok(IpRange {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
        Ok(IpRange { addr, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == width {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// `server.trusted_proxies`: the proxies whose forwarding headers are believed. Empty by
/// default (every request's client is its peer). See the [module docs](crate::client_ip) for the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpRange>);

impl TrustedProxies {
    /// Parses a list of addresses and CIDR ranges.
    ///
    /// ```
    /// use flagon::client_ip::TrustedProxies;
    /// let trusted = TrustedProxies::parse(["10.0.0.0/8", "::1"]).unwrap();
    /// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
    /// assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
    /// ```
    pub fn parse<I: IntoIterator<Item = S>, S: AsRef<str>>(
        ranges: I,
    ) -> Result<Self, IpRangeError> {
        ranges
            .into_iter()
            .map(|r| r.as_ref().trim().parse())
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// The ranges.
    pub fn ranges(&self) -> &[IpRange] {
        &self.0
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client address of a request from `peer` with `headers` (`None` without a peer):
    /// the function behind [`ClientIp`](super::ClientIp), for code that has the headers but not a request
    /// (a rate limiter's key function).
    ///
    /// ```
    /// use flagon::client_ip::TrustedProxies;
    /// use flagon::http::HeaderMap;
    /// let trusted = TrustedProxies::parse(["10.0.0.1"]).unwrap();
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.4".parse().unwrap());
    /// let from_proxy = trusted.client_ip(&headers, Some("10.0.0.1:4000".parse().unwrap()));
    /// assert_eq!(from_proxy, Some("198.51.100.4".parse().unwrap()));
    /// let direct = trusted.client_ip(&headers, Some("198.51.100.4:5000".parse().unwrap()));
    /// assert_eq!(direct, Some("198.51.100.4".parse().unwrap()));
    /// ```
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        Some(match self.walk(headers) {
            Walk::Client { ip, .. } => ip,
            Walk::Unreadable | Walk::Absent => peer,
        })
    }

    /// The scheme a request from `peer` with `headers` was made with (see [`ClientScheme`]).
    pub fn client_scheme(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> ClientScheme {
        let Some(peer) = peer else {
            return ClientScheme::Http;
        };
        if !self.contains(peer.ip()) {
            return ClientScheme::Http;
        }
        let xfp: Vec<&str> = match list(headers, "x-forwarded-proto") {
            Some(entries) => entries.collect(),
            None => return ClientScheme::Http,
        };
        let proto = if xfp.is_empty() {
            match self.walk_forwarded(headers) {
                Walk::Client { proto, .. } => proto,
                Walk::Unreadable | Walk::Absent => None,
            }
        } else {
            let hops = list(headers, "x-forwarded-for").map(Iterator::count);
            let aligned = match self.walk_xff(headers) {
                Walk::Client { from_right, .. } if hops == Some(xfp.len()) => {
                    xfp.get(xfp.len() - 1 - from_right).copied()
                }
                _ => None,
            };
            aligned.or(xfp.last().copied())
        };
        match proto {
            Some(p) if p.eq_ignore_ascii_case("https") => ClientScheme::Https,
            _ => ClientScheme::Http,
        }
    }

    fn walk<'h>(&self, headers: &'h HeaderMap) -> Walk<'h> {
        match self.walk_xff(headers) {
            Walk::Absent => self.walk_forwarded(headers),
            found => found,
        }
    }

    /// Walks `X-Forwarded-For` from the right, without allocating.
    fn walk_xff<'h>(&self, headers: &'h HeaderMap) -> Walk<'h> {
        let mut from_right = 0;
        let mut leftmost = None;
        for line in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = line.to_str() else {
                return Walk::Unreadable;
            };
            for entry in text.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
                let Some(ip) = parse_xff_entry(entry) else {
                    return Walk::Unreadable;
                };
                if !self.contains(ip) {
                    return Walk::Client {
                        ip,
                        from_right,
                        proto: None,
                    };
                }
                leftmost = Some((ip, from_right));
                from_right += 1;
            }
        }
        match leftmost {
            Some((ip, from_right)) => Walk::Client {
                ip,
                from_right,
                proto: None,
            },
            None => Walk::Absent,
        }
    }

    /// Walks RFC 7239 `Forwarded` from the right.
    fn walk_forwarded<'h>(&self, headers: &'h HeaderMap) -> Walk<'h> {
        let mut elements = Vec::new();
        for line in headers.get_all("forwarded") {
            match parse_forwarded(line) {
                Some(mut e) => elements.append(&mut e),
                None => return Walk::Unreadable,
            }
        }
        let mut chosen = None;
        for (from_right, e) in elements.into_iter().rev().enumerate() {
            let Some(Node::Ip(ip)) = e.node else {
                return Walk::Unreadable;
            };
            chosen = Some(Walk::Client {
                ip,
                from_right,
                proto: e.proto,
            });
            if !self.contains(ip) {
                break;
            }
        }
        chosen.unwrap_or(Walk::Absent)
    }
}

/// Where a walk over the forwarding hops ended.
enum Walk<'a> {
    /// The client's hop, `from_right` hops left of the last one.
    Client {
        ip: IpAddr,
        from_right: usize,
        proto: Option<&'a str>,
    },
    /// A hop or header that cannot be read.
    Unreadable,
    /// No forwarding header.
    Absent,
}

/// The non-empty entries of every `name` header line, in order; `None` if one is not text.
fn list<'a>(headers: &'a HeaderMap, name: &str) -> Option<impl Iterator<Item = &'a str>> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    Some(
        lines
            .into_iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty()),
    )
}

/// An `X-Forwarded-For` entry: an address, `v4:port`, `[v6]` or `[v6]:port`.
fn parse_xff_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    node_with_port(entry).map(|ip| ip.to_canonical())
}

/// `1.2.3.4:80`, `[::1]` or `[::1]:80`.
fn node_with_port(s: &str) -> Option<IpAddr> {
    let valid_port =
        |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return ok.then(|| v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    }
    let (v4, port) = s.split_once(':')?;
    valid_port(port).then(|| v4.parse().ok().map(IpAddr::V4))?
}

/// What a `Forwarded` element's `for=` names.
enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`), or not a node at all.
    Unreadable,
}

struct Element<'a> {
    node: Option<Node>,
    proto: Option<&'a str>,
}

/// Parses one `Forwarded` header line into its elements; `None` if it is malformed.
fn parse_forwarded(line: &HeaderValue) -> Option<Vec<Element<'_>>> {
    let text = line.to_str().ok()?;
    let bytes = text.as_bytes();
    let mut elements = Vec::new();
    let mut current = Element {
        node: None,
        proto: None,
    };
    let mut i = 0;
    let mut empty = true;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i == bytes.len() || bytes[i] == b',' {
            if !empty {
                elements.push(std::mem::replace(
                    &mut current,
                    Element {
                        node: None,
                        proto: None,
                    },
                ));
            }
            empty = true;
            if i == bytes.len() {
                return Some(elements);
            }
            i += 1;
            continue;
        }
        if bytes[i] == b';' {
            i += 1;
            continue;
        }
        // name=value
        let start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        let name = &text[start..i];
        if name.is_empty() || bytes.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            while i < bytes.len() && bytes[i] != b'"' {
                // A quoted pair: the escaped byte is part of the value. An address needs
                // none, so a value with one is not an address.
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= bytes.len() {
                return None;
            }
            let v = &text[start..i];
            i += 1;
            v
        } else {
            let start = i;
            // Lenient: an unquoted `[v6]:port` is accepted too.
            while bytes
                .get(i)
                .is_some_and(|&b| is_tchar(b) || matches!(b, b'[' | b']' | b':'))
            {
                i += 1;
            }
            &text[start..i]
        };
        empty = false;
        if name.eq_ignore_ascii_case("for") {
            let node = parse_xff_entry(value)
                .map(Node::Ip)
                .unwrap_or(Node::Unreadable);
            if current.node.is_some() {
                return None;
            }
            current.node = Some(node);
        } else if name.eq_ignore_ascii_case("proto") {
            current.proto = Some(value);
        }
    }
}

/// An RFC 9110 token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        TrustedProxies::parse(&list).map_err(serde::de::Error::custom)
    }
}

/// The scheme the client used: `Https` only when a trusted proxy says so
/// (`X-Forwarded-Proto`, else `Forwarded`'s `proto`); Flagon's own server speaks plain http,
/// so a request line's `https://` is not believed. An extractor that never fails.
///
/// ```
/// use flagon::ClientScheme;
/// async fn page(scheme: ClientScheme) -> &'static str {
///     if scheme.is_https() { "secure" } else { "plain" }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientScheme {
    /// Plain http (also when unknown).
    Http,
    /// https, terminated by a trusted proxy.
    Https,
}
