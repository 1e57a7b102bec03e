//! The client's address and scheme, believing forwarding headers only from trusted proxies.
//!
//! A request's peer is the other end of its TCP connection. Behind a reverse proxy that is the
//! proxy; the client's address is then in `X-Forwarded-For` (or RFC 7239 `Forwarded`), which
//! anyone can also send. Flagon believes those headers only when the peer is listed in
//! `server.trusted_proxies` (addresses and CIDR ranges), and then only up to the rightmost hop
//! that is not itself a trusted proxy: everything left of it was written by the client.
//!
//! ```toml
//! [server]
//! trusted_proxies = ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]
//! ```
//!
//! The rules, in order:
//! * no peer (an in-process request without [`TestRequest::peer`](crate::testing::TestRequest::peer)):
//!   no client address;
//! * the peer is not trusted: the peer's address;
//! * `X-Forwarded-For` is present (all its header lines are one list): walking from the right,
//!   the first hop that is not a trusted proxy; if every hop is trusted, the leftmost one;
//! * else `Forwarded`: the same walk over its `for=` parameters (quoted or not, IPv6 in
//!   brackets, ports allowed);
//! * a hop the walk reaches that cannot be read (not an address, `unknown`, an obfuscated
//!   identifier, a header that is not text or a broken `Forwarded`), or no such header at all:
//!   the peer's address.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are compared and returned as IPv4. The
//! scheme ([`ClientScheme`]) follows the same trust: `X-Forwarded-Proto` (its entry at the
//! client's hop when it lists as many entries as `X-Forwarded-For`, else its last entry), else
//! the `proto=` of the client's `Forwarded` element; from anyone else it is plain http.
//!
//! Your proxy must overwrite (not pass through) the header it sets, and strip the other one
//! if it does not set it: a client-sent `X-Forwarded-For` passed through unchanged by a proxy
//! that only sets `Forwarded` would be read first.
//!
//! Nothing is computed unless asked: the extractors, [`ClientIp::of`] and
//! [`TrustedProxies::client_ip`] read the headers when called.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use http::{Extensions, HeaderMap};

use crate::http_error::HttpError;
use crate::request::RequestMeta;

mod proxies;

pub use proxies::{ClientScheme, IpRange, IpRangeError, TrustedProxies};

/// The client's IP address: the peer, or the rightmost untrusted hop of the forwarding
/// headers when the peer is a trusted proxy (see the [module docs](self)).
///
/// As an extractor it rejects a request without a peer address (only in-process requests
/// lack one) with a 500; extract `Option<ClientIp>` to handle that case.
///
/// ```
/// use flagon::ClientIp;
/// async fn whoami(ClientIp(ip): ClientIp) -> String {
///     ip.to_string()
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client address of a request (for tower layers and hooks, which see the request
    /// itself); `None` without a peer address or outside a Flagon app.
    pub fn of<B>(req: &http::Request<B>) -> Option<ClientIp> {
        Self::from_headers(req.extensions(), req.headers())
    }

    /// [`ClientIp::of`] for request parts.
    pub fn from_parts(parts: &Parts) -> Option<ClientIp> {
        Self::from_headers(&parts.extensions, &parts.headers)
    }

    fn from_headers(extensions: &Extensions, headers: &HeaderMap) -> Option<ClientIp> {
        let meta = extensions.get::<RequestMeta>()?;
        meta.app
            .server_config()
            .trusted_proxies
            .client_ip(headers, meta.peer)
            .map(ClientIp)
    }
}

impl crate::RequestHead<'_> {
    /// The client address of the request a request-scoped value is made for (its init sees
    /// only the head): as [`ClientIp::of`], from the peer and `server.trusted_proxies`.
    /// `None` without a peer address, or when the value is first asked for through a
    /// session (whose head has no headers).
    pub fn client_ip(&self) -> Option<ClientIp> {
        let headers = self.headers()?;
        let meta = self.meta();
        meta.app
            .server_config()
            .trusted_proxies
            .client_ip(headers, meta.peer)
            .map(ClientIp)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        ClientIp::from_parts(parts).ok_or_else(|| {
            HttpError::internal(
                "the request has no peer address (an in-process request; \
                 set one with TestRequest::peer)",
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(ClientIp::from_parts(parts))
    }
}

impl ClientScheme {
    /// Whether the client used https.
    pub fn is_https(self) -> bool {
        self == ClientScheme::Https
    }

    /// The scheme of a request (for tower layers and hooks).
    pub fn of<B>(req: &http::Request<B>) -> ClientScheme {
        Self::from_headers(req.extensions(), req.headers())
    }

    /// [`ClientScheme::of`] for request parts.
    pub fn from_parts(parts: &Parts) -> ClientScheme {
        Self::from_headers(&parts.extensions, &parts.headers)
    }

    fn from_headers(extensions: &Extensions, headers: &HeaderMap) -> ClientScheme {
        match extensions.get::<RequestMeta>() {
            Some(meta) => meta
                .app
                .server_config()
                .trusted_proxies
                .client_scheme(headers, meta.peer),
            None => ClientScheme::Http,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientScheme {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientScheme::from_parts(parts))
    }
}
