//! [`Lang`]: a locale bound to the catalogs, in handlers (an extractor) and outside
//! requests ([`I18n::for_locale`](crate::I18n::for_locale)).

use std::borrow::Cow;
use std::sync::Arc;

use flagon::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use flagon::axum::response::Response;
use flagon::http::header::{HeaderValue, SET_COOKIE};
use flagon::http::request::Parts;
use flagon::messages::{Arg, Message};
use flagon::{AppHandle, HttpError, Locale};
use fluent_bundle::{FluentArgs, FluentValue};

use crate::state::Shared;

/// Message arguments for [`Lang::t`]: `()` for none, an array of `(name, value)` pairs
/// (values are anything [`Arg`] converts from: text and numbers), or Fluent's own
/// [`FluentArgs`].
pub trait IntoArgs<'a> {
    /// The arguments as Fluent takes them (`None` for none).
    fn into_args(self) -> Option<FluentArgs<'a>>;
}

impl<'a> IntoArgs<'a> for () {
    fn into_args(self) -> Option<FluentArgs<'a>> {
        None
    }
}

impl<'a> IntoArgs<'a> for FluentArgs<'a> {
    fn into_args(self) -> Option<FluentArgs<'a>> {
        Some(self)
    }
}

impl<'a, K: Into<Cow<'a, str>>, V: Into<Arg>, const N: usize> IntoArgs<'a> for [(K, V); N] {
    fn into_args(self) -> Option<FluentArgs<'a>> {
        let mut args = FluentArgs::with_capacity(N);
        for (k, v) in self {
            args.set(k, fluent_value(v.into()));
        }
        Some(args)
    }
}

/// A [`Message`] argument as a Fluent value.
pub(crate) fn fluent_value(a: Arg) -> FluentValue<'static> {
    match a {
        Arg::Number(n) => FluentValue::from(n),
        Arg::Str(s) => FluentValue::from(s.into_owned()),
        #[allow(unreachable_patterns)]
        _ => FluentValue::None,
    }
}

/// A message's arguments as Fluent takes them.
pub(crate) fn message_args(m: &Message) -> Option<FluentArgs<'static>> {
    let mut args = FluentArgs::new();
    let mut any = false;
    for (k, v) in m.args() {
        args.set(k.to_owned(), fluent_value(v.clone()));
        any = true;
    }
    any.then_some(args)
}

/// A locale and the catalogs: translate with [`Lang::t`]. Take it as an extractor in a
/// handler (the request's negotiated locale), or get one for any locale with
/// [`I18n::for_locale`](crate::I18n::for_locale) in commands, workers and mail.
///
/// A response whose handler took `Lang` carries `Content-Language`, and `Vary` names the
/// headers negotiation read (`Accept-Language`, `Cookie`).
///
/// ```
/// use flagon_i18n::Lang;
///
/// async fn welcome(lang: Lang) -> String {
///     lang.t("welcome", [("name", "Ada")])
/// }
/// ```
#[derive(Clone)]
pub struct Lang {
    pub(crate) shared: Arc<Shared>,
    pub(crate) locale: Locale,
    /// The timezone dates are shown in, when not `i18n.default_timezone`.
    #[cfg(feature = "icu")]
    pub(crate) tz: Option<crate::timezone::Zone>,
}

impl std::fmt::Debug for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lang")
            .field("locale", &self.locale)
            .finish()
    }
}

impl Lang {
    pub(crate) fn new(shared: Arc<Shared>, locale: Locale) -> Lang {
        Lang {
            shared,
            locale,
            #[cfg(feature = "icu")]
            tz: None,
        }
    }

    /// The locale.
    pub fn locale(&self) -> &Locale {
        &self.locale
    }

    /// Message `id` (or `id.attribute`) with `args`, in this locale or the first locale of
    /// its fallback chain that has it; the id itself when none has it. A missing message or
    /// argument is logged once per (locale, id), never an error.
    pub fn t<'a>(&self, id: &str, args: impl IntoArgs<'a>) -> String {
        let args = args.into_args();
        self.try_t(id, args.as_ref())
            .unwrap_or_else(|| id.to_owned())
    }

    /// Like [`Lang::t`], `None` when no catalog has the message.
    pub fn try_t(&self, id: &str, args: Option<&FluentArgs<'_>>) -> Option<String> {
        let b = self.shared.bundles();
        let idx = b.index_of(&self.locale).unwrap_or(b.default);
        match crate::timezone::formatting_at(self, || b.format(idx, id, args)) {
            Ok(f) => {
                if f.locale != idx {
                    self.shared.missing.note(
                        self.locale.as_str(),
                        id,
                        &format!(
                            "message missing or broken in this locale; shown in `{}`",
                            b.available[f.locale]
                        ),
                    );
                }
                if !f.errors.is_empty() {
                    let what: Vec<String> = f.errors.iter().map(|e| e.to_string()).collect();
                    self.shared.missing.note(
                        self.locale.as_str(),
                        id,
                        &format!("message formatted with errors: {}", what.join("; ")),
                    );
                }
                Some(f.text.into_owned())
            }
            Err(()) => {
                self.shared.missing.note(
                    self.locale.as_str(),
                    id,
                    "no catalog has this message; its id is shown",
                );
                None
            }
        }
    }

    /// A [`Message`] (id, arguments, fallback) in this locale; its fallback (or id) when no
    /// catalog has it.
    pub fn message(&self, m: &Message) -> String {
        self.try_t(m.id(), message_args(m).as_ref())
            .unwrap_or_else(|| m.fallback_text().to_owned())
    }

    /// Stores the user's choice `tag` in the session under `i18n.session_key`, for the
    /// `session` source (checked like [`Lang::set_locale`]; an unknown tag is a 400).
    pub fn set_session_locale(
        &self,
        session: &flagon::session::Session,
        tag: &str,
    ) -> Result<Locale, HttpError> {
        let locale = crate::checked_locale(&self.shared, tag)?;
        session
            .insert(&self.shared.cfg.session_key, locale.as_str())
            .map_err(HttpError::internal)?;
        Ok(locale)
    }

    /// The available locales, the default first.
    pub fn available(&self) -> Vec<Locale> {
        self.shared.bundles().available.clone()
    }

    /// Remembers the user's choice `tag` in the locale cookie on `res` (Flask-Babel apps
    /// store it themselves; this is the cookie the negotiation reads). `tag` is checked
    /// against the available locales first: an unknown one is a 400 that does not repeat
    /// it. Returns the locale stored (`zh` for `zh-CN` when only `zh` exists).
    pub fn set_locale(&self, res: &mut Response, tag: &str) -> Result<Locale, HttpError> {
        crate::set_locale(&self.shared, res, tag)
    }
}

pub(crate) fn set_cookie(shared: &Shared, res: &mut Response, locale: &Locale) {
    let v = format!(
        "{}={}; Path=/; Max-Age={}; SameSite=Lax",
        shared.cfg.cookie_name, locale, shared.cfg.cookie_max_age
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        res.headers_mut().append(SET_COOKIE, v);
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppHandle::from_request_parts(parts, state).await?;
        let shared = app.state::<Shared>().ok_or_else(|| {
            HttpError::internal("`Lang` needs the i18n extension: register flagon_i18n::I18n")
        })?;
        let locale = match Locale::of_parts(parts) {
            Some(l) => l.clone(),
            None => shared.default_locale(),
        };
        if let Some(used) = shared.used.get(parts) {
            let _ = used.locale.set(locale.clone());
        }
        let mut lang = Lang::new(shared, locale);
        crate::timezone::use_request_zone(&mut lang, parts);
        Ok(lang)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Lang {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let app = AppHandle::from_request_parts(parts, state).await?;
        if app.state::<Shared>().is_none() {
            return Ok(None);
        }
        <Lang as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}
