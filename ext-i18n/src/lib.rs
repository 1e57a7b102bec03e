//! Translations for Flagon apps (Flask-Babel's role) on Project Fluent: per-request locale
//! negotiation, catalogs from the app and from other extensions, `_()` in templates,
//! [`Lang::t`] in handlers, ICU4X formatting, and `i18n check`.
//!
//! ```
//! use flagon::{App, Route};
//! use flagon_i18n::{I18n, Lang};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let root = dir.path().join("locales");
//! # for (l, src) in [("en", "hello = Hello, { $name }!\n"), ("zh", "hello = 你好，{ $name }！\n")] {
//! #     std::fs::create_dir_all(root.join(l)).unwrap();
//! #     std::fs::write(root.join(l).join("main.ftl"), src).unwrap();
//! # }
//! # let toml = format!("[i18n]\ndirs = [{:?}]\n", root.display().to_string());
//! // locales/en/main.ftl: hello = Hello, { $name }!
//! // locales/zh/main.ftl: hello = 你好，{ $name }！
//! async fn hello(lang: Lang) -> String {
//!     lang.t("hello", [("name", "Ada")])
//! }
//!
//! # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = App::builder()
//! #   .settings(flagon::testing::testing_config_toml(&toml))
//!     .register(I18n::new())
//!     .route(Route::get("/hello", hello))
//!     .build()
//!     .unwrap();
//! let client = flagon::testing::TestClient::new(&app);
//! let res = client.get("/hello").header("accept-language", "zh-CN, en;q=0.5").send().await;
//! assert_eq!(res.text(), "你好，Ada！");
//! assert_eq!(res.header("content-language"), Some("zh"));
//! assert_eq!(res.header("vary"), Some("Accept-Language"));
//!
//! // Outside a request: commands, workers, mail.
//! let zh = I18n::for_locale(app.handle(), "zh-Hans-CN").unwrap();
//! assert_eq!(zh.t("hello", [("name", "Lin")]), "你好，Lin！");
//! # });
//! ```
//!
//! # Catalogs
//!
//! Fluent resources in `locales/<locale>/*.ftl` (directories set by `i18n.dirs`; the first
//! directory's message wins), and the catalogs other extensions contribute through core's
//! [`Catalogs`] registry (login's "please log in"): the app's
//! message of the same id wins over an extension's, as its template wins over an
//! extension's. Two app files, or two extensions, defining one id for one locale fail the
//! build, naming both. A parse error stops startup with the file, line, column and
//! message; placeables nested deeper than 32 are refused before parsing (fluent-syntax's
//! parser is recursive and would overflow the stack). One thread-safe bundle per locale is
//! built at startup. Each locale's fallback chain is RFC 4647 lookup: `zh-Hant-TW` →
//! `zh-Hant` → `zh` → the default locale. In development (`i18n.auto_reload`) a changed
//! file is picked up within 250 ms without a restart; a broken edit keeps the previous
//! catalogs and logs the error.
//!
//! # Locale selection
//!
//! i18n provides core's [`flagon::Locale`] fact ([`flagon::Setup::provide_fact`]): each
//! request's locale is negotiated on its first read (a [`Lang`], a `_()` in a template, a
//! cache keyed per locale, login's messages) and kept for the rest of the request, so
//! hooks, decorators, extractors, templates and other extensions read it without depending
//! on this crate, and a request that never reads it pays nothing. With
//! [selectors](I18n::selector), [async selectors](I18n::async_selector) or the `session`
//! source configured, a before hook negotiates for every request instead (a selector sees
//! the whole request; async selectors and the session load wait). A locale an app's hook or
//! decorator sets on the request wins. The chain: the app's [selectors](I18n::selector),
//! then its [async selectors](I18n::async_selector) (the logged-in user's stored
//! preference, which needs the user loaded), then `i18n.sources` in order (`?lang=`, the `lang` cookie,
//! `Accept-Language`), then the default. Every requested value is checked against the
//! available locales (well-formed, then RFC 4647 lookup) before anything else: raw input
//! never reaches a path or a bundle, and is never echoed. `Accept-Language` is parsed by
//! our own RFC 9110 parser ([`accept`]): q-weights honoured, `q=0` a refusal (never chosen,
//! not even through `*`), ties in header order, bad weights skipped, case ignored, `en_US`
//! read as `en-US`, at most `accept_language_max_len` bytes and `max_ranges` ranges, with
//! no allocation. A response that used the locale (a [`Lang`], a `_()` in its template, any
//! read of the negotiated fact) gets `Content-Language` and a `Vary` naming what
//! negotiation read (`Accept-Language` when the header was consulted, `Cookie` when the
//! cookie was).
//!
//! [`Lang::set_locale`] stores the user's choice in the cookie; `GET
//! /_i18n/set?lang=zh&next=/page` does it from a link and redirects to `next` when it is a
//! local path (anything else goes to `/`); an unknown locale is a 400.
//!
//! # Messages
//!
//! [`Lang::t`] in handlers; `_("id", name=value)` (and `t`) in templates, which also
//! reach attributes (`_("login-form.title")`) and plurals through Fluent selectors with
//! CLDR plural rules. Core's [`Message`] is the lazy message:
//! stored in the session or a flashed message, translated when shown
//! ([`Lang::message`], [`flagon::messages::translate`]). A missing message falls back
//! along the chain, then to the id; a missing argument or a formatting error in one locale
//! falls back to the next one. Each is logged once per (locale, id), remembering at most
//! `missing_log_capacity` pairs; never a 500.
//!
//! # Timezones
//!
//! With the `icu` feature, dates, times and `DATETIME()` are shown in a timezone: the
//! `Lang`'s own (`Lang::with_timezone`), else the request's, from the app's timezone
//! selectors (`I18n::timezone_selector`, Flask-Babel's `timezone_selector`: the user's
//! stored preference, a cookie), else `i18n.default_timezone`. A timezone is an
//! IANA name (`Europe/Paris`, `Asia/Shanghai`, `America/New_York`, `UTC`; case is
//! ignored) or a fixed UTC offset (`+08:00`, `-0530`). For an IANA zone the offset is the
//! one in force at the instant shown, daylight saving time included: noon UTC is 13:00 in
//! Paris in January and 14:00 in July. The rules come from the IANA time zone database
//! jiff bundles into the binary (the `icu` feature), so every machine agrees and no
//! system file is read.
//!
//! A `default_timezone` that is neither stops the build naming `i18n.default_timezone`.
//! A selector's answer that is not a timezone (unknown, malformed, hostile) is skipped:
//! the next selector, then the default, decides; it is logged once per name (at most 64
//! names, each cut to 64 characters), and never fails the request. Selectors run at most
//! once per request, and only for a request that needs its zone: a date filter or
//! `current_timezone()` in a template, a `_()` whose message calls `DATETIME()`, or a
//! handler taking [`Lang`] (found when it is extracted, since the handler may format a date
//! once the request is gone). A request that does none of these never asks them. Then the
//! zone costs the selector calls and one lookup in jiff's cache of parsed zones, once per
//! request; an app without selectors pays nothing per request.
//!
//! ```
//! # #[cfg(feature = "icu")] {
//! use flagon::{App, RequestHead, Route};
//! use flagon_i18n::{I18n, Lang};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let root = dir.path().join("locales");
//! # std::fs::create_dir_all(root.join("en")).unwrap();
//! # std::fs::write(root.join("en").join("main.ftl"), "x = x\n").unwrap();
//! # let toml = format!("[i18n]\ndirs = [{:?}]\ndefault_timezone = \"Europe/Paris\"\n", root.display().to_string());
//! // The user's timezone from a `tz` cookie (a stored preference works the same way).
//! fn tz_cookie(req: &RequestHead<'_>) -> Option<String> {
//!     let cookies = req.headers()?.get("cookie")?.to_str().ok()?;
//!     cookies.split(';').find_map(|c| c.trim().strip_prefix("tz=")).map(str::to_owned)
//! }
//!
//! async fn when(lang: Lang) -> String {
//!     // 2026-07-01T12:00:00Z
//!     lang.format_time(1_782_907_200).unwrap()
//! }
//!
//! # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = App::builder()
//! #   .settings(flagon::testing::testing_config_toml(&toml))
//!     .register(I18n::new().timezone_selector(tz_cookie))
//!     .route(Route::get("/when", when))
//!     .build()
//!     .unwrap();
//! let client = flagon::testing::TestClient::new(&app);
//! // The default, Europe/Paris, is on summer time in July.
//! assert_eq!(client.get("/when").send().await.text(), "2:00\u{202f}PM");
//! let res = client.get("/when").header("cookie", "tz=America/New_York").send().await;
//! assert_eq!(res.text(), "8:00\u{202f}AM");
//! // Not a timezone: the default.
//! let res = client.get("/when").header("cookie", "tz=Mars/Olympus").send().await;
//! assert_eq!(res.text(), "2:00\u{202f}PM");
//! # });
//! # }
//! ```
//!
//! # Configuration
//!
//! `[i18n]` in `flagon.toml` (or `FLAGON_I18N__…`); every key is optional.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `default_locale` | `"en"` | used when nothing else decides; last step of every chain |
//! | `dirs` | `["locales"]` | directories of `<locale>/*.ftl`; a missing one is skipped with a warning |
//! | `locales` | `[]` | only these locales (each needs a directory); empty: every directory found |
//! | `sources` | `["query", "cookie", "header"]` | negotiation steps after the selectors, in order; `"session"` adds the session's value (loading the session on every request) |
//! | `query_param` | `"lang"` | `?lang=zh` |
//! | `cookie_name` | `"lang"` | the cookie [`Lang::set_locale`] writes |
//! | `cookie_max_age` | `31536000` | its lifetime, seconds |
//! | `session_key` | `"locale"` | the session value the `session` source reads ([`Lang::set_session_locale`] writes it) |
//! | `use_isolating` | `false` | Unicode FSI/PDI marks around placeables |
//! | `accept_language_max_len` | `500` | bytes of `Accept-Language` read |
//! | `max_ranges` | `32` | ranges kept (1–32) |
//! | `auto_reload` | on in development | reload changed `.ftl` files |
//! | `missing_log_capacity` | `1024` | distinct (locale, id) misses logged one by one |
//! | `set_route` | `true` | register `GET /_i18n/set` |
//! | `default_timezone` | `"UTC"` | dates are shown in this timezone when no timezone selector decides: an IANA name (`"Europe/Paris"`) or a fixed offset (`"+08:00"`); see [Timezones](#timezones) |
//!
//! A bad value stops the build naming its key and source.
//!
//! # CLI
//!
//! `i18n check` compares every locale with the default: missing and extra ids, messages
//! whose variables differ, and `_("id")` calls in the app's templates that no catalog has;
//! it exits non-zero when it finds any (a parse error already stops the app with its file
//! and line). `i18n stats` prints each locale's completion; `i18n init LOCALE` writes a
//! new locale directory with the default's messages to translate.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `icu` | off | ICU4X formatting: `Lang::format_decimal` and friends, the template filters `decimalformat`, `percentformat`, `currencyformat`, `dateformat`, `datetimeformat`, `timeformat`, `timedeltaformat`, locale-aware Fluent `NUMBER()` display plus `CURRENCY()` and `DATETIME()`; and timezones: IANA names through jiff and its bundled time zone database, `I18n::timezone_selector`, `Lang::with_timezone`, `Lang::timezone`, `current_timezone()` in templates |
//!
//! `icu` is off by default because ICU4X's compiled data costs 1–2 minutes of cold
//! build on two cores and 0.1–0.5 MB per formatter in the binary; an app that only
//! translates text needs none of it. Timezones live behind it too, since only formatting
//! uses them: jiff and its copy of the IANA database (0.2 MB of data) stay out of the
//! default build. Without `icu`, `default_timezone` is checked only for its shape (an
//! offset, or letters, digits and `/_-+`).
//!
//! # Errors
//!
//! Startup: [`CatalogError`] (a parse error with file, line and column, a duplicate id, an
//! unreadable file, a badly named locale directory), reported as the build error of
//! `i18n.dirs` or the key concerned. Requests never fail because of a translation.
//!
//! # Cost
//!
//! A request that never reads its locale pays nothing: no hook runs. The first read pays
//! the negotiation once (a few hundred nanoseconds: the query and cookie scans, the header
//! parse on the stack, one `Arc` clone for the locale) and the request-scoped value that
//! keeps it; `Content-Language` and `Vary` are added by an after-response step only for
//! requests that used the locale. With selectors or the `session` source, every request
//! pays the negotiation hook. A simple
//! message lookup takes no lock. fluent-bundle's concurrent bundle keeps one memoizer
//! `Mutex` per locale, which it takes to select a plural category (one `PluralRules`
//! lookup); number display with the `icu` feature learns its locale from a thread-local
//! set around each format, not from that memoizer. The `session` source, when listed,
//! loads the session for every request that reaches it.
//!
//! # Why our own Accept-Language parser
//!
//! fluent-langneg 0.13's `accepted_languages::parse` ignores q-weights, keeps `q=0`
//! ranges, drops `*` and bounds nothing; Django's CVE-2023-23969 showed what unbounded
//! parsing costs.

pub mod accept;
pub mod catalog;
mod cli;
mod config;
mod error;
#[cfg(feature = "icu")]
mod format;
mod lang;
mod negotiate;
mod state;
mod templates;
mod timezone;

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use flagon::axum::response::{IntoResponse, Redirect, Response};
use flagon::extract::Query;
use flagon::http::StatusCode;
use flagon::messages::{Catalogs, Message, Translator, Translators};
use flagon::serde::Deserialize;
use flagon::{AppHandle, Extension, HttpError, Locale, Route, Setup, SetupError};

pub use config::{I18nConfig, SourceKind};
pub use error::CatalogError;
pub use fluent_bundle::{FluentArgs, FluentValue};
#[cfg(feature = "icu")]
pub use format::{FormatError, Length};
pub use lang::{IntoArgs, Lang};
pub use negotiate::{AsyncLocaleSelector, LocaleSelector};
#[cfg(feature = "icu")]
pub use timezone::imp::TimezoneSelector;

use negotiate::Used;
use state::{Cell, Shared};

/// The i18n extension: reads `[i18n]`, loads the catalogs, negotiates each request's
/// locale and makes [`Lang`] an extractor.
#[derive(Default)]
pub struct I18n {
    selectors: Vec<Arc<dyn LocaleSelector>>,
    async_selectors: Vec<Arc<dyn AsyncLocaleSelector>>,
    dirs: Vec<std::path::PathBuf>,
    #[cfg(feature = "icu")]
    tz_selectors: Vec<Arc<dyn TimezoneSelector>>,
}

impl std::fmt::Debug for I18n {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I18n")
            .field("selectors", &self.selectors.len())
            .field("async_selectors", &self.async_selectors.len())
            .finish()
    }
}

impl I18n {
    /// The extension, configured from `[i18n]`.
    pub fn new() -> Self {
        I18n::default()
    }

    /// Adds a selector asked before the configured sources (Flask-Babel's
    /// `locale_selector`); selectors are asked in the order added.
    pub fn selector(mut self, selector: impl LocaleSelector) -> Self {
        self.selectors.push(Arc::new(selector));
        self
    }

    /// Adds a selector that waits for its answer (the logged-in user's stored preference),
    /// asked after the plain selectors and before the configured sources, in the order
    /// added; see [`AsyncLocaleSelector`]. Requests then negotiate in an async hook, and
    /// responses that used the locale vary on `Cookie`.
    pub fn async_selector(mut self, selector: impl AsyncLocaleSelector) -> Self {
        self.async_selectors.push(Arc::new(selector));
        self
    }

    /// Adds a catalog directory given in code (`concat!(env!("CARGO_MANIFEST_DIR"),
    /// "/locales")`), used when the settings do not set `i18n.dirs`; several may be added,
    /// the first winning.
    pub fn dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// A [`Lang`] for `tag` outside any request (commands, workers, mail): the available
    /// locale `tag` resolves to by RFC 4647 lookup, or the default locale.
    pub fn for_locale(app: &AppHandle, tag: &str) -> Result<Lang, CatalogError> {
        let shared = app.state::<Shared>().ok_or(CatalogError::NotRegistered)?;
        let b = shared.bundles();
        let i = Locale::parse(tag)
            .or_else(|| Locale::parse(&tag.replace('_', "-")))
            .and_then(|l| b.find(l.as_str()))
            .unwrap_or(b.default);
        let locale = b.available[i].clone();
        Ok(Lang::new(shared.clone(), locale))
    }

    /// The available locales, the default first.
    pub fn locales(app: &AppHandle) -> Result<Vec<Locale>, CatalogError> {
        let shared = app.state::<Shared>().ok_or(CatalogError::NotRegistered)?;
        Ok(shared.bundles().available.clone())
    }
}

/// Stores the user's choice `tag` in the locale cookie on `res`; see [`Lang::set_locale`].
pub(crate) fn set_locale(
    shared: &Shared,
    res: &mut Response,
    tag: &str,
) -> Result<Locale, HttpError> {
    let locale = checked_locale(shared, tag)?;
    lang::set_cookie(shared, res, &locale);
    Ok(locale)
}

/// The available locale `tag` resolves to, or a 400 that does not repeat it.
pub(crate) fn checked_locale(shared: &Shared, tag: &str) -> Result<Locale, HttpError> {
    let b = shared.bundles();
    let i = Locale::parse(&tag.replace('_', "-"))
        .and_then(|l| b.find(l.as_str()))
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "Unknown or unavailable locale."))?;
    Ok(b.available[i].clone())
}

/// A local path to redirect to: `/…` but not `//…` or `/\…`, no backslash, no control
/// character; anything else is `/`.
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.bytes().any(|b| b.is_ascii_control() || b == b' ') =>
        {
            n
        }
        _ => "/",
    }
}

#[derive(Deserialize)]
#[serde(crate = "flagon::serde")]
struct SetParams {
    lang: Option<String>,
    next: Option<String>,
}

async fn set_route(app: AppHandle, Query(q): Query<SetParams>) -> Result<Response, HttpError> {
    let shared = app
        .state::<Shared>()
        .ok_or_else(|| HttpError::internal("i18n is not set up"))?;
    let tag = q
        .lang
        .as_deref()
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "Missing `lang`."))?;
    let mut res = Redirect::to(safe_next(q.next.as_deref())).into_response();
    set_locale(&shared, &mut res, tag)?;
    Ok(res)
}

/// The app's translator for core's [`flagon::messages::translate`].
struct I18nTranslator(Cell);

impl Translator for I18nTranslator {
    fn translate(&self, locale: Option<&Locale>, message: &Message) -> Option<String> {
        let shared = self.0.get()?;
        let b = shared.bundles();
        let i = locale.and_then(|l| b.find(l.as_str())).unwrap_or(b.default);
        let lang = Lang::new(shared.clone(), b.available[i].clone());
        lang.try_t(message.id(), lang::message_args(message).as_ref())
    }
}

fn validate(app: &Setup<'_>, cfg: &I18nConfig) -> Result<timezone::DefaultZone, SetupError> {
    if catalog::canonical(&cfg.default_locale).is_none() {
        return Err(app.config_error(
            "i18n.default_locale",
            format!("`{}` is not a language tag", cfg.default_locale),
        ));
    }
    if !(1..=accept::MAX_RANGES).contains(&cfg.max_ranges) {
        return Err(app.config_error("i18n.max_ranges", "must be between 1 and 32"));
    }
    if cfg.accept_language_max_len == 0 {
        return Err(app.config_error("i18n.accept_language_max_len", "must be more than 0"));
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !token(&cfg.cookie_name) {
        return Err(app.config_error("i18n.cookie_name", "letters, digits, `-`, `_` and `.` only"));
    }
    if !token(&cfg.query_param) {
        return Err(app.config_error("i18n.query_param", "letters, digits, `-`, `_` and `.` only"));
    }
    if cfg.dirs.is_empty() {
        return Err(app.config_error("i18n.dirs", "name at least one directory"));
    }
    timezone::default_zone(app, cfg)
}

impl Extension for I18n {
    fn name(&self) -> &'static str {
        "i18n"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let mut cfg: I18nConfig = app.config("i18n")?;
        let dirs_set = matches!(
            app.settings().value::<Vec<std::path::PathBuf>>("i18n.dirs"),
            Ok(Some(_))
        );
        if !dirs_set && !self.dirs.is_empty() {
            cfg.dirs = self.dirs.clone();
        }
        let default_zone = validate(app, &cfg)?;
        let reload = cfg
            .auto_reload
            .unwrap_or(app.profile() == flagon::config::Profile::Development);
        let cell: Cell = Arc::new(OnceLock::new());

        // Negotiation that needs only the request's head is core's `Locale` fact provider:
        // it runs on the first read of the locale, so a request that never reads it pays
        // nothing. Selectors (which see the whole request) and the session source (an
        // async load) need a before hook that sets the fact on every request.
        let waits = !self.async_selectors.is_empty();
        let session_source = cfg.sources.contains(&SourceKind::Session);
        let lazy = self.selectors.is_empty() && !waits && !session_source;
        let c = cell.clone();
        let used = app.request_local(move |head| {
            let mut used = Used::new(c.get().map(|s| &**s), head, lazy);
            // An async selector reads what the session cookie finds.
            used.consulted.cookie |= waits;
            used
        });
        // Requests that used their locale: the after step adds the headers.
        app.after_response_maybe_async(used, |u: Arc<Used>, res, _| {
            flagon::Eventually::Now(negotiate::finish_response(&u, res))
        });

        let c = cell.clone();
        if lazy {
            app.provide_fact(used, |u: &Used| u.negotiated.as_ref());
        } else if session_source || waits {
            // Waits: for async selectors, for the session (loaded lazily, once, for every
            // request).
            let asyncs: Arc<[Arc<dyn AsyncLocaleSelector>]> = self.async_selectors.clone().into();
            app.before_request(move |mut req| {
                let c = c.clone();
                let asyncs = asyncs.clone();
                async move {
                    if let Some(s) = c.get()
                        && Locale::of(&req).is_none()
                    {
                        let mut chosen = s.select_sync(&req);
                        for a in asyncs.iter() {
                            if chosen.is_some() {
                                break;
                            }
                            chosen = a.select(&req).await.and_then(|v| s.resolve_value(&v));
                        }
                        let locale = match chosen {
                            Some(l) => l,
                            None => {
                                let value = match session_source {
                                    true => match flagon::session::Session::load(&req).await {
                                        Ok(session) => session.get::<String>(&s.cfg.session_key),
                                        Err(_) => None,
                                    },
                                    false => None,
                                };
                                s.negotiate_sources(&req, value.as_deref())
                            }
                        };
                        let _ = Locale::set(&mut req, locale);
                    }
                    ControlFlow::Continue(req)
                }
            });
        } else {
            app.before_request(move |mut req| {
                if let Some(s) = c.get()
                    && Locale::of(&req).is_none()
                {
                    let locale = s.negotiate(&req, None);
                    let _ = Locale::set(&mut req, locale);
                }
                std::future::ready(ControlFlow::Continue(req))
            });
        }

        app.add_to::<Translators>(Translators::NAME, Arc::new(I18nTranslator(cell.clone())));
        templates::register(app, &cell);
        timezone::register(app, &cell);
        let tz = timezone::Timezones::new(default_zone, timezone::declare(app, &cell, self));
        if cfg.set_route {
            app.route(Route::get("/_i18n/set", set_route).name("i18n.set"));
        }
        cli::register(app);

        let selectors = self.selectors.clone();
        app.on_finish(move |fin| {
            let contributed: Vec<(String, String, String, String)> = fin
                .registry::<Catalogs>()
                .iter()
                .map(|e| {
                    (
                        e.origin().owner.to_owned(),
                        e.name().to_owned(),
                        e.value().locale().to_string(),
                        e.value().source().to_owned(),
                    )
                })
                .collect();
            let shared = Shared::new(cfg, reload, selectors, used, tz, contributed).map_err(
                |e| match &e {
                    CatalogError::Config { key, message } => fin.config_error(key, message.clone()),
                    _ => fin.config_error("i18n.dirs", e.to_string()),
                },
            )?;
            let shared = fin.provide(shared);
            let _ = cell.set(shared);
            Ok(())
        });
        Ok(())
    }
}
