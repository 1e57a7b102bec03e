//! Tokens and the per-browser secret they are bound to.
//!
//! Each browser gets a random 16-byte secret in a signed cookie (`__Host-csrf`, `HttpOnly`,
//! `SameSite=Lax`), made the first time a page asks for a token: no store record, so no
//! amount of store eviction can invalidate a visitor's open form. A token is a random nonce
//! with two HMAC-SHA256 tags keyed from the app's secret key: one over the nonce (a token
//! from this app is told from garbage), one over the nonce and the browser's secret (another
//! browser's token is refused, and says so). When the session changes identity (login,
//! logout: sessions' rotation listeners) the browser gets a fresh secret, so tokens handed
//! out before stop verifying.

use std::sync::{Arc, Mutex};

use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

use super::CsrfError;
use crate::crypto::{SigningKey, hex, random_16, unhex};

/// Hex length of a token: nonce, app tag, browser tag (16 bytes each).
const TOKEN_HEX_LEN: usize = 96;
/// Hex length of the cookie value: secret and its tag.
const COOKIE_HEX_LEN: usize = 64;

/// Signs and checks tokens and the browser cookie.
pub(crate) struct Tokens {
    key: SigningKey,
    /// The cookie name actually used (`__Host-` unless plain http is allowed).
    cookie_name: String,
    attributes: &'static str,
}

impl Tokens {
    pub(crate) fn new(key: &crate::DerivedKey, plain_http: bool) -> Self {
        let (cookie_name, attributes) = if plain_http {
            ("csrf".to_owned(), "; Path=/; HttpOnly; SameSite=Lax")
        } else {
            (
                "__Host-csrf".to_owned(),
                "; Path=/; HttpOnly; SameSite=Lax; Secure",
            )
        };
        Tokens {
            key: SigningKey::new(key),
            cookie_name,
            attributes,
        }
    }

    /// The browser secret the request's cookie holds, if it is one this app signed. A
    /// duplicated cookie counts as none.
    pub(crate) fn browser_secret(&self, headers: &HeaderMap) -> Option<[u8; 16]> {
        let crate::cookies::Lookup::One(v) =
            crate::cookies::lookup(headers, self.cookie_name.as_bytes())
        else {
            return None;
        };
        if v.len() != COOKIE_HEX_LEN {
            return None;
        }
        let (mut secret, mut tag) = ([0u8; 16], [0u8; 16]);
        let ok = unhex(&v[..32], &mut secret)
            && unhex(&v[32..], &mut tag)
            && self.key.verify(&[b"cookie", &secret], &tag);
        ok.then_some(secret)
    }

    fn set_cookie(&self, secret: &[u8; 16]) -> HeaderValue {
        let tag = self.key.tag(&[b"cookie", secret]);
        let v = format!(
            "{}={}{}{}",
            self.cookie_name,
            hex(secret),
            hex(&tag),
            self.attributes
        );
        HeaderValue::from_str(&v).expect("hex and fixed attributes are ASCII")
    }

    /// A fresh token bound to `secret`.
    pub(crate) fn token(&self, secret: &[u8; 16]) -> String {
        let nonce = random_16();
        let app_tag = self.key.tag(&[b"app", &nonce]);
        let browser_tag = self.key.tag(&[b"browser", secret, &nonce]);
        let mut out = hex(&nonce);
        out.push_str(&hex(&app_tag));
        out.push_str(&hex(&browser_tag));
        out
    }

    /// Checks `token` against the browser secret of the request (`None`: no valid cookie).
    pub(crate) fn verify(&self, secret: Option<[u8; 16]>, token: &str) -> Result<(), CsrfError> {
        let t = token.trim().as_bytes();
        if t.len() != TOKEN_HEX_LEN {
            return Err(CsrfError::Invalid);
        }
        let (mut nonce, mut app_tag, mut browser_tag) = ([0u8; 16], [0u8; 16], [0u8; 16]);
        if !unhex(&t[..32], &mut nonce)
            || !unhex(&t[32..64], &mut app_tag)
            || !unhex(&t[64..], &mut browser_tag)
        {
            return Err(CsrfError::Invalid);
        }
        if !self.key.verify(&[b"app", &nonce], &app_tag) {
            return Err(CsrfError::Invalid);
        }
        let Some(secret) = secret else {
            return Err(CsrfError::OtherSession);
        };
        if !self
            .key
            .verify(&[b"browser", &secret, &nonce], &browser_tag)
        {
            return Err(CsrfError::OtherSession);
        }
        Ok(())
    }
}

/// CSRF's request-scoped value: the browser's secret as this request knows it.
pub(crate) struct Browser {
    state: Mutex<BrowserState>,
}

struct BrowserState {
    /// The secret tokens are bound to (`None` until one is needed).
    secret: Option<[u8; 16]>,
    /// The response must set the cookie (a new or renewed secret).
    set_cookie: bool,
    /// A token was handed out: the page depends on the cookie.
    issued: bool,
}

impl Browser {
    /// The request's value: the secret its cookie holds, if any.
    pub(crate) fn new(secret: Option<[u8; 16]>) -> Self {
        Browser {
            state: Mutex::new(BrowserState {
                secret,
                set_cookie: false,
                issued: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BrowserState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The secret to bind a new token to, made (and set as a cookie) if the browser has none.
    pub(crate) fn issue(&self, tokens: &Tokens) -> String {
        let mut st = self.lock();
        st.issued = true;
        let secret = match st.secret {
            Some(s) => s,
            None => {
                let s = random_16();
                st.secret = Some(s);
                st.set_cookie = true;
                s
            }
        };
        tokens.token(&secret)
    }

    /// Gives the browser a fresh secret now (tokens bound to the old one stop verifying).
    pub(crate) fn renew(&self) {
        let mut st = self.lock();
        st.secret = Some(random_16());
        st.set_cookie = true;
    }

    /// Adds the cookie and cache headers the request's tokens need.
    pub(crate) fn finish(&self, tokens: &Arc<Tokens>, headers: &mut HeaderMap) {
        let st = self.lock();
        if let (true, Some(secret)) = (st.set_cookie, &st.secret) {
            headers.append(SET_COOKIE, tokens.set_cookie(secret));
        }
        if st.issued || st.set_cookie {
            crate::session::add_vary_cookie(headers);
            headers
                .entry(CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("private"));
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::COOKIE;

    use super::*;

    fn key(secret: &[u8]) -> crate::DerivedKey {
        crate::crypto::KeyRing::new(secret).derive("flagon.csrf")
    }

    #[test]
    fn tokens_verify_only_with_their_browser_secret() {
        let t = Tokens::new(&key(b"k"), false);
        let (a, b) = (random_16(), random_16());
        let token = t.token(&a);
        assert_eq!(token.len(), TOKEN_HEX_LEN);
        assert!(t.verify(Some(a), &token).is_ok());
        assert_eq!(t.verify(Some(b), &token), Err(CsrfError::OtherSession));
        assert_eq!(t.verify(None, &token), Err(CsrfError::OtherSession));
        assert_eq!(t.verify(Some(a), "abc"), Err(CsrfError::Invalid));
        let other_app = Tokens::new(&key(b"other"), false).token(&a);
        assert_eq!(t.verify(Some(a), &other_app), Err(CsrfError::Invalid));
    }

    #[test]
    fn the_cookie_is_signed() {
        let t = Tokens::new(&key(b"k"), false);
        let secret = random_16();
        let set = t.set_cookie(&secret);
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert!(pair.starts_with("__Host-csrf="));
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&pair).unwrap());
        assert_eq!(t.browser_secret(&h), Some(secret));
        let forged = format!("__Host-csrf={}{}", hex(&secret), hex(&[0u8; 16]));
        h.insert(COOKIE, HeaderValue::from_str(&forged).unwrap());
        assert_eq!(t.browser_secret(&h), None);
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{pair}; {pair}")).unwrap(),
        );
        assert_eq!(
            t.browser_secret(&h),
            None,
            "a duplicated cookie counts as none"
        );
    }
}
