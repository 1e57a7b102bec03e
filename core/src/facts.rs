//! Neutral request facts that let extensions cooperate without depending on each other: the
//! request's authenticated [`Identity`] (set by a login extension, read by a cache or a
//! limiter to vary and key on it) and its [`Locale`] (set by an i18n extension, read by a
//! cache, mail and login's messages).
//!
//! Each is set at most once per request, by a before hook, guard or decorator, on the request
//! itself; handlers read it with an extractor, later hooks and decorators with `of`. A request
//! nobody sets them on pays nothing.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::StatusCode;
use http::request::Parts;

use crate::http_error::HttpError;

/// Who the request is authenticated as: an opaque id (a user id, an API key's name), set
/// once per request by the extension that authenticated it.
///
/// ```
/// use flagon::Identity;
/// use flagon::axum::extract::Request;
///
/// // In a login extension's decorator or before hook:
/// fn authenticated(req: &mut Request, user_id: u64) {
///     let _ = Identity::set(req, Identity::new(user_id.to_string()));
/// }
///
/// // In a handler: `Identity` answers 401 when nobody is logged in;
/// // `Option<Identity>` lets the handler decide.
/// async fn whoami(who: Option<Identity>) -> String {
///     who.map(|w| w.to_string()).unwrap_or_else(|| "anonymous".into())
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity(Arc<str>);

impl Identity {
    /// An identity with id `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Identity(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity set on `req`, if any.
    pub fn of<B>(req: &http::Request<B>) -> Option<&Identity> {
        req.extensions().get::<Identity>()
    }

    /// Sets the request's identity. It is set once: if one is already set, it stays and
    /// `identity` is handed back as the error.
    pub fn set<B>(req: &mut http::Request<B>, identity: Identity) -> Result<(), Identity> {
        set_once(req.extensions_mut(), identity)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| HttpError::new(StatusCode::UNAUTHORIZED, "Authentication required."))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// The request's language, as a language tag (`en`, `fr-CA`), set once per request by the
/// extension that chose it.
///
/// ```
/// use flagon::Locale;
/// let fr = Locale::parse("fr-CA").unwrap();
/// assert_eq!(fr.as_str(), "fr-CA");
/// assert_eq!(fr.language(), "fr");
/// assert!(Locale::parse("../etc/passwd").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Locale(Arc<str>);

impl Locale {
    /// The longest tag accepted, in bytes.
    pub const MAX_LEN: usize = 35;

    /// `tag` as a locale, if it is a well-formed language tag: subtags of 1–8 ASCII letters
    /// or digits separated by `-`, the first of letters, at most [`Locale::MAX_LEN`] bytes.
    pub fn parse(tag: &str) -> Option<Locale> {
        let ok = tag.len() <= Self::MAX_LEN
            && tag.split('-').enumerate().all(|(i, sub)| {
                (1..=8).contains(&sub.len())
                    && sub.bytes().all(|b| match i {
                        0 => b.is_ascii_alphabetic(),
                        _ => b.is_ascii_alphanumeric(),
                    })
            });
        ok.then(|| Locale(tag.into()))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag (`fr` for `fr-CA`).
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// The locale set on `req`, if any.
    pub fn of<B>(req: &http::Request<B>) -> Option<&Locale> {
        req.extensions().get::<Locale>()
    }

    /// Sets the request's locale. It is set once: if one is already set, it stays and
    /// `locale` is handed back as the error.
    pub fn set<B>(req: &mut http::Request<B>, locale: Locale) -> Result<(), Locale> {
        set_once(req.extensions_mut(), locale)
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Locale {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Locale>().cloned().ok_or_else(|| {
            HttpError::internal(
                "no locale was set for this request; register an extension that sets one \
                 (i18n), or take `Option<Locale>`",
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Locale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Locale>().cloned())
    }
}

fn set_once<T: Clone + Send + Sync + 'static>(
    ext: &mut http::Extensions,
    value: T,
) -> Result<(), T> {
    if ext.get::<T>().is_some() {
        return Err(value);
    }
    ext.insert(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_tags_are_checked() {
        for ok in ["en", "fr-CA", "zh-Hant-TW", "es-419"] {
            assert_eq!(Locale::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "-",
            "en-",
            "1en",
            "en_US",
            "../x",
            "abcdefghi",
            &"a-".repeat(20),
        ] {
            assert!(Locale::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn facts_are_set_once() {
        let mut req = http::Request::new(());
        assert!(Identity::of(&req).is_none());
        assert!(Identity::set(&mut req, Identity::new("7")).is_ok());
        let rejected = Identity::set(&mut req, Identity::new("8")).unwrap_err();
        assert_eq!(rejected.as_str(), "8");
        assert_eq!(Identity::of(&req).unwrap().as_str(), "7");
        let en = Locale::parse("en").unwrap();
        assert!(Locale::set(&mut req, en.clone()).is_ok());
        assert!(Locale::set(&mut req, Locale::parse("fr").unwrap()).is_err());
        assert_eq!(Locale::of(&req), Some(&en));
    }
}
