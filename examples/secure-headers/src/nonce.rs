//! The per-request CSP nonce and the extractor that hands it to handlers and templates.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flagon::G;
use flagon::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use flagon::http::request::Parts;
use flagon::{HttpError, RequestContext};
use rand::RngCore as _;

/// The request's Content-Security-Policy nonce: 128 bits from `rand`'s thread-local CSPRNG
/// (ChaCha12, seeded from the operating system), base64-encoded, fresh for every request. The same value is in the response's CSP header as `'nonce-…'`.
///
/// Put it on inline `<script>` and `<style>` tags: `<script nonce="{{ csp_nonce() }}">`.
/// Handlers take it as an extractor (`Option<CspNonce>` where the route may have no
/// nonce); hooks and template context processors read it from `g` with
/// [`CspNonce::from_g`] or [`CspNonce::from_context`].
///
/// ```
/// use flagon_secure_headers::CspNonce;
/// async fn page(nonce: CspNonce) -> String {
///     format!("<script nonce=\"{nonce}\">console.log('hi')</script>")
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CspNonce(Arc<str>);

impl CspNonce {
    /// A fresh random nonce.
    pub(crate) fn generate() -> CspNonce {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        CspNonce(Arc::from(STANDARD.encode(bytes)))
    }

    /// The nonce as text (24 base64 characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nonce of the request whose `g` this is, if its policy has one.
    pub fn from_g(g: &G) -> Option<CspNonce> {
        g.get::<CspNonce>()
    }

    /// The nonce of the request an after hook, teardown hook or error handler (or a
    /// template context processor) is looking at.
    pub fn from_context(ctx: &RequestContext) -> Option<CspNonce> {
        CspNonce::from_g(ctx.g())
    }

    /// What the template function `csp_nonce()` returns: the nonce, or `""` when the
    /// request's policy has none.
    pub fn template_value(g: &G) -> String {
        CspNonce::from_g(g)
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default()
    }
}

impl fmt::Display for CspNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CspNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CspNonce").field(&&*self.0).finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CspNonce {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<CspNonce>().cloned().ok_or_else(|| {
            HttpError::internal(
                "no CSP nonce for this request: register the `secure-headers` extension and \
                 keep `csp_nonce_in` non-empty for this route (or extract `Option<CspNonce>`)",
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CspNonce {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<CspNonce>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_and_well_formed() {
        let a = CspNonce::generate();
        let b = CspNonce::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 24);
        assert!(STANDARD.decode(a.as_str()).is_ok());
    }
}
