//! The session cookie: a signed id, found strictly in the request and written with safe
//! attributes.
//!
//! The value is `<id as 32 hex>.<SipHash-2-4-128 tag as 32 hex>`, keyed from the app's secret key,
//! so a forged or altered id is refused without a store lookup.

use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderValue};

use super::config::SessionConfig;
use super::store::Id;
use crate::crypto::{DerivedKey, ShortMac, hex, unhex};

/// Longest cookie value looked at; anything longer is ignored whole.
const MAX_VALUE_LEN: usize = 128;
/// Exact length of a value: 32 + 1 + 32.
const VALUE_LEN: usize = 65;

/// Signs and checks ids, and writes `Set-Cookie` values.
pub(crate) struct CookieCodec {
    key: ShortMac,
    /// The name actually used (with `__Host-` when it applies).
    pub(crate) name: String,
    attributes: String,
    secure: bool,
    /// The warning for a cookie without `Secure` was logged.
    warned_insecure: AtomicBool,
}

/// What the request carried under the session cookie's name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No cookie of that name.
    Absent,
    /// One well-signed id.
    Valid(Id),
    /// Present but unusable: tampered, truncated, oversized or sent twice.
    Invalid(&'static str),
}

impl CookieCodec {
    pub(crate) fn new(key: &DerivedKey, cfg: &SessionConfig) -> Self {
        let secure = cfg.secure();
        let name = if secure && cfg.cookie_domain.is_none() {
            format!("__Host-{}", cfg.cookie_name)
        } else {
            cfg.cookie_name.clone()
        };
        let mut attributes = String::from("; Path=/; HttpOnly; SameSite=");
        attributes.push_str(cfg.same_site.as_str());
        if secure {
            attributes.push_str("; Secure");
        }
        if let Some(d) = &cfg.cookie_domain {
            attributes.push_str("; Domain=");
            attributes.push_str(d);
        }
        CookieCodec {
            key: ShortMac::new(key),
            name,
            attributes,
            secure,
            warned_insecure: AtomicBool::new(false),
        }
    }

    /// The signed cookie value for `id`.
    pub(crate) fn encode(&self, id: &Id) -> String {
        let tag = self.key.tag(&id.0);
        format!("{}.{}", id.to_hex(), hex(&tag))
    }

    /// Checks a cookie value's signature.
    ///
    /// Takes the header's bytes: a value that is not ASCII fails the format check, so no
    /// UTF-8 check is needed first.
    pub(crate) fn decode(&self, v: &[u8]) -> Option<Id> {
        if v.len() != VALUE_LEN || v[32] != b'.' {
            return None;
        }
        let mut id = [0u8; 16];
        let mut tag = [0u8; 16];
        if !unhex(&v[..32], &mut id) || !unhex(&v[33..], &mut tag) {
            return None;
        }
        self.key.verify(&id, &tag).then_some(Id(id))
    }

    /// Looks for the session cookie in every `Cookie` header ([`crate::cookies::lookup`]: a
    /// foreign non-ASCII cookie is skipped alone; a duplicated session cookie is refused).
    pub(crate) fn find(&self, headers: &HeaderMap) -> Found {
        let v = match crate::cookies::lookup(headers, self.name.as_bytes()) {
            crate::cookies::Lookup::Absent => return Found::Absent,
            crate::cookies::Lookup::Duplicated => return Found::Invalid("duplicated"),
            crate::cookies::Lookup::One(v) => v,
        };
        if v.len() > MAX_VALUE_LEN {
            return Found::Invalid("oversized");
        }
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        match self.decode(v) {
            Some(id) => Found::Valid(id),
            None => Found::Invalid("bad signature or format"),
        }
    }

    /// `Set-Cookie` for `id`. Without `Secure` (development's `insecure_plain_http`), the
    /// first one also logs a warning, once per app.
    pub(crate) fn set_cookie(&self, id: &Id) -> HeaderValue {
        if !self.secure && !self.warned_insecure.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "flagon::session",
                cookie = %self.name,
                "a session cookie was sent without `Secure` (session.insecure_plain_http is \
                 on): fine on http://localhost, never in production; this is logged once"
            );
        }
        let v = format!("{}={}{}", self.name, self.encode(id), self.attributes);
        HeaderValue::from_str(&v).expect("cookie names and values are checked ASCII")
    }

    /// `Set-Cookie` that removes the cookie.
    pub(crate) fn removal(&self) -> HeaderValue {
        let v = format!(
            "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{}",
            self.name, self.attributes
        );
        HeaderValue::from_str(&v).expect("cookie names and values are checked ASCII")
    }
}

#[cfg(test)]
mod tests {
    use http::header::COOKIE;

    use super::*;

    fn codec() -> CookieCodec {
        CookieCodec::new(
            &crate::crypto::KeyRing::new(b"k").derive("flagon.session.cookie"),
            &SessionConfig::default(),
        )
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn round_trip_and_rejections() {
        let c = codec();
        let id = Id::random();
        let v = c.encode(&id);
        assert_eq!(c.decode(v.as_bytes()), Some(id));
        assert_eq!(
            c.find(&headers(&format!("a=b; __Host-session={v}"))),
            Found::Valid(id)
        );
        let mut tampered = v.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(c.decode(&tampered), None);
        assert_eq!(c.decode(&v.as_bytes()[..60]), None);
        assert_eq!(
            c.find(&headers(&format!("__Host-session={v}; __Host-session={v}"))),
            Found::Invalid("duplicated")
        );
        assert_eq!(
            c.find(&headers(&format!("__Host-session={}", "a".repeat(4000)))),
            Found::Invalid("oversized")
        );
        assert_eq!(c.find(&headers("other=1")), Found::Absent);
        assert_eq!(
            c.find(&headers(&format!("__Host-session=\"{v}\""))),
            Found::Valid(id),
            "a quoted value"
        );
    }

    fn raw(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn a_foreign_non_ascii_cookie_is_skipped_alone() {
        let c = codec();
        let id = Id::random();
        let v = c.encode(&id);
        for header in [
            format!("lang=fran\u{e7}ais; __Host-session={v}"),
            format!("__Host-session={v}; lang=fran\u{e7}ais"),
            format!("caf\u{e9}=1; __Host-session={v}; theme=\u{1f319}"),
        ] {
            assert_eq!(
                c.find(&raw(header.as_bytes())),
                Found::Valid(id),
                "{header}"
            );
        }
        // Latin-1 bytes that are not UTF-8 at all.
        let mut latin1 = b"lang=fran\xe7ais; __Host-session=".to_vec();
        latin1.extend_from_slice(v.as_bytes());
        assert_eq!(c.find(&raw(&latin1)), Found::Valid(id));
        // The session cookie itself with a non-ASCII byte is refused, and still counted.
        let bad = format!("__Host-session={}\u{e9}", &v[..64]);
        assert_eq!(
            c.find(&raw(bad.as_bytes())),
            Found::Invalid("bad signature or format")
        );
        let twice = format!("__Host-session={v}; lang=fran\u{e7}ais; __Host-session={v}");
        assert_eq!(c.find(&raw(twice.as_bytes())), Found::Invalid("duplicated"));
    }

    #[test]
    fn attributes() {
        let c = codec();
        let v = c.set_cookie(&Id::random());
        let s = v.to_str().unwrap();
        assert!(s.starts_with("__Host-session="));
        assert!(s.contains("; Path=/; HttpOnly; SameSite=Lax; Secure"));
    }
}
