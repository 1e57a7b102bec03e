//! Neutral request facts that let extensions cooperate without depending on each other: the
//! request's authenticated [`Identity`] (set by a login extension, read by a cache or a
//! limiter to vary and key on it) and its [`Locale`] (chosen by an i18n extension, read by a
//! cache, mail and login's messages).
//!
//! A fact is either set explicitly, at most once per request, by a before hook, guard or
//! decorator ([`Locale::set`]), or computed on first read by the provider an extension
//! registered with [`Setup::provide_fact`]: a [`RequestLocal`] value the fact is read from,
//! so it is computed at most once per request, and only for requests that read it (a route
//! that never asks for the locale pays no negotiation). A fact set explicitly wins over the
//! provider. Handlers read facts with an extractor, hooks and decorators with `of`. A
//! request nobody sets them on and nobody reads them from pays nothing.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use http::{Extensions, HeaderMap, Method, StatusCode, Uri};

use crate::http_error::HttpError;
use crate::request::RequestMeta;
use crate::request_local::{ProjectFn, RequestHead, RequestLocal};
use crate::setup::Setup;

/// A request fact: a value at most one per request, set explicitly or computed on first
/// read by a provider ([`Setup::provide_fact`]). Core's are [`Identity`] and [`Locale`];
/// an extension may define its own (a tenant) and read it with [`RequestFact::get_from`].
pub trait RequestFact: Clone + Send + Sync + 'static {
    /// The fact's name in build errors and the `extensions` listing (`Locale`).
    const NAME: &'static str;

    /// The fact on `req`: the one set explicitly, else its provider's (computed now if this
    /// is the first read in this request), else `None`.
    fn get_from<B>(req: &http::Request<B>) -> Option<&Self> {
        lookup(req.extensions(), req.method(), req.uri(), req.headers())
    }

    /// [`RequestFact::get_from`] for request parts (in an extractor).
    fn get_from_parts(parts: &Parts) -> Option<&Self> {
        lookup(&parts.extensions, &parts.method, &parts.uri, &parts.headers)
    }

    /// Sets the fact on `req`. It is set once: if one is already set, or the provider
    /// already computed one in this request (someone read it), that one stays and `value` is
    /// handed back as the error.
    fn set_on<B>(req: &mut http::Request<B>, value: Self) -> Result<(), Self> {
        set_once(req.extensions_mut(), value)
    }
}

/// The fact of type `T` of a request: explicit first, then the provider.
fn lookup<'a, T: RequestFact>(
    ext: &'a Extensions,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Option<&'a T> {
    if let Some(v) = ext.get::<T>() {
        return Some(v);
    }
    let meta = ext.get::<RequestMeta>()?;
    provided(&RequestHead::new(meta, method, uri, headers))
}

/// The fact of type `T` from its provider, computed now on first read.
pub(crate) fn provided<'a, T: RequestFact>(head: &RequestHead<'a>) -> Option<&'a T> {
    let meta: &'a RequestMeta = head.meta();
    let slot = &meta.app.0.locals;
    if !slot.has_facts() {
        return None;
    }
    slot.provided(TypeId::of::<T>(), head)?.downcast_ref()
}

fn set_once<T: RequestFact>(ext: &mut Extensions, value: T) -> Result<(), T> {
    if ext.get::<T>().is_some() {
        return Err(value);
    }
    if let Some(meta) = ext.get::<RequestMeta>()
        && meta
            .app
            .0
            .locals
            .provided_if_made(TypeId::of::<T>(), meta)
            .is_some()
    {
        return Err(value);
    }
    ext.insert(value);
    Ok(())
}

impl Setup<'_> {
    /// Provides request fact `T` (a [`Locale`], an [`Identity`]) lazily: the first read of
    /// `T` in a request that nobody set it on explicitly makes `key`'s value (at most once
    /// per request, as any [`RequestLocal`]) and takes the fact from it with `project`
    /// (`None`: no fact for this request). A request that never reads `T` never runs the
    /// provider. [`Setup::after_response`] on `key` adds a step for exactly the requests that
    /// read it (i18n adds `Content-Language` this way).
    ///
    /// One provider per fact: a second one, from another extension or the same, fails the
    /// build naming both. Keep the provider's init synchronous (`request_local`) for the
    /// fact to be computed on read; with an async init the fact is there only once the value
    /// was loaded. The init must not read `T` itself.
    ///
    /// ```
    /// use flagon::{Locale, Setup, SetupError};
    ///
    /// fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    ///     // The locale from a `?lang=` parameter, else English; only for requests that ask.
    ///     let chosen = app.request_local(|head| {
    ///         let tag = head.uri().and_then(|u| u.query()).and_then(|q| q.strip_prefix("lang="));
    ///         tag.and_then(Locale::parse).or_else(|| Locale::parse("en"))
    ///     });
    ///     app.provide_fact(chosen, |l: &Option<Locale>| l.as_ref());
    ///     Ok(())
    /// }
    /// ```
    pub fn provide_fact<T, V, P>(&mut self, key: RequestLocal<V>, project: P) -> &mut Self
    where
        T: RequestFact,
        V: Send + Sync + 'static,
        P: for<'v> Fn(&'v V) -> Option<&'v T> + Send + Sync + 'static,
    {
        let project: ProjectFn = Arc::new(move |v| {
            let v = v.downcast_ref::<V>()?;
            project(v).map(|t| t as &(dyn std::any::Any + Send + Sync))
        });
        self.claim_name("request fact provider", T::NAME);
        let origin = self.origin();
        let slot = self.slot::<crate::request_local::LocalsSlot>();
        if let Err(reason) =
            slot.add_fact(TypeId::of::<T>(), key.index(), TypeId::of::<V>(), project)
        {
            self.reg.errors.push(crate::SetupError::Invalid {
                what: format!("request fact provider for `{}`", T::NAME),
                origin,
                reason: reason.to_owned(),
            });
        }
        self
    }
}

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

    /// The identity of `req`: set on it, or from the provider an extension registered
    /// ([`Setup::provide_fact`]), if any.
    pub fn of<B>(req: &http::Request<B>) -> Option<&Identity> {
        Identity::get_from(req)
    }

    /// [`Identity::of`] for request parts (in an extractor).
    pub fn of_parts(parts: &Parts) -> Option<&Identity> {
        Identity::get_from_parts(parts)
    }

    /// Sets the request's identity. It is set once: if one is already set (or its provider
    /// already made one), it stays and `identity` is handed back as the error.
    pub fn set<B>(req: &mut http::Request<B>, identity: Identity) -> Result<(), Identity> {
        Identity::set_on(req, identity)
    }
}

impl RequestFact for Identity {
    const NAME: &'static str = "Identity";
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Identity::of_parts(parts)
            .cloned()
            .ok_or_else(|| HttpError::new(StatusCode::UNAUTHORIZED, "Authentication required."))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(Identity::of_parts(parts).cloned())
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

    /// The locale of `req`: set on it, or from the provider an extension registered
    /// ([`Setup::provide_fact`]; i18n negotiates it then, on this first read), if any.
    pub fn of<B>(req: &http::Request<B>) -> Option<&Locale> {
        Locale::get_from(req)
    }

    /// [`Locale::of`] for request parts (in an extractor).
    pub fn of_parts(parts: &Parts) -> Option<&Locale> {
        Locale::get_from_parts(parts)
    }

    /// Sets the request's locale. It is set once: if one is already set (or its provider
    /// already made one), it stays and `locale` is handed back as the error.
    pub fn set<B>(req: &mut http::Request<B>, locale: Locale) -> Result<(), Locale> {
        Locale::set_on(req, locale)
    }
}

impl RequestFact for Locale {
    const NAME: &'static str = "Locale";
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Locale {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Locale::of_parts(parts).cloned().ok_or_else(|| {
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
        Ok(Locale::of_parts(parts).cloned())
    }
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
