//! Timezones: `i18n.default_timezone` and the app's per-request timezone selectors
//! (Flask-Babel's `timezone_selector`), as IANA names (`Europe/Paris`) or fixed offsets
//! (`+08:00`), with the offset of each instant formatted (daylight saving time included).
//!
//! With the `icu` feature, names are looked up in the IANA time zone database that jiff
//! bundles into the binary (`tzdb-bundle-always`): the same answers on every machine, no
//! system files read. Without it nothing formats a date, and `default_timezone` is only
//! checked for its shape.
//!
//! The request's zone is a request-scoped value made on first use: the date filters and
//! `current_timezone()` make it when a template first shows a date, a `_()` whose message
//! calls `DATETIME()` when it does, the `Lang` extractor when a handler takes one. A
//! request that does none of these never asks the selectors.

use flagon::SetupError;

use crate::config::I18nConfig;

/// What `i18n.default_timezone` must be, for its startup error.
const EXPECTED: &str = "an IANA timezone name (`Europe/Paris`, `America/New_York`, `UTC`) or a fixed UTC offset (`+08:00`, `-05:30`)";

/// The longest zone name looked up (the longest IANA name is 32 bytes).
const MAX_NAME: usize = 64;

/// Whether `s` looks like an IANA zone name: ASCII letters, digits, `/`, `_`, `-`, `+`,
/// at most 64 bytes, no empty segment (so no `.`, no `//`, no leading `/`). Anything else
/// is refused before any lookup.
pub(crate) fn iana_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b))
        && s.split('/').all(|seg| !seg.is_empty())
}

/// `i18n.default_timezone`, checked at startup: the zone, or the build error naming the key.
pub(crate) fn default_zone(
    app: &flagon::Setup<'_>,
    cfg: &I18nConfig,
) -> Result<DefaultZone, SetupError> {
    let s = cfg.default_timezone.trim();
    parse_default(s).ok_or_else(|| {
        app.config_error(
            "i18n.default_timezone",
            format!("`{}` is not a timezone: {EXPECTED}", truncated(s)),
        )
    })
}

fn truncated(s: &str) -> String {
    s.chars().take(MAX_NAME).collect()
}

/// Runs `f` (a message format) with `lang`'s own timezone, when it has one, as the one
/// Fluent's `DATETIME()` uses.
pub(crate) fn formatting_at<R>(lang: &crate::Lang, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "icu")]
    if let Some(z) = &lang.tz {
        return with_ctx(Ctx::Zone(z.clone()), f).0;
    }
    let _ = lang;
    f()
}

/// Translates in a template: `DATETIME()` in the message gets the request's zone, made
/// only if the message formats a date (the message is formatted a second time then).
pub(crate) fn translate_in_render<R>(
    lang: &mut crate::Lang,
    req: &flagon::templates::RenderRequest,
    f: impl Fn(&crate::Lang) -> R,
) -> R {
    #[cfg(feature = "icu")]
    {
        let Some(key) = lang.shared.tz.key else {
            return f(lang);
        };
        if lang.tz.is_some() {
            return f(lang);
        }
        if let Some(z) = key.get_if_made(req) {
            lang.tz = Some(z.0.clone());
            return f(lang);
        }
        let (out, ctx) = with_ctx(Ctx::Lazy { hit: false }, || f(lang));
        if !matches!(ctx, Ctx::Lazy { hit: true }) {
            return out;
        }
        use_request_zone(lang, req);
    }
    let _ = req;
    f(lang)
}

/// Sets `lang`'s timezone to the request's (asking the selectors now if this request has
/// not yet), when the app has timezone selectors and `lang` has no zone of its own.
pub(crate) fn use_request_zone(lang: &mut crate::Lang, scope: &impl flagon::RequestScope) {
    #[cfg(feature = "icu")]
    if lang.tz.is_none()
        && let Some(key) = lang.shared.tz.key
        && let Some(z) = key.get(scope)
    {
        lang.tz = Some(z.0.clone());
    }
    let _ = (lang, scope);
}

#[cfg(not(feature = "icu"))]
pub(crate) mod imp {
    /// Without `icu` nothing formats a date: the default zone is only checked.
    pub(crate) struct DefaultZone;

    /// No selectors without `icu`.
    pub(crate) struct Parts;

    pub(crate) fn parse_default(s: &str) -> Option<DefaultZone> {
        (crate::config::parse_offset(s).is_some() || super::iana_shaped(s)).then_some(DefaultZone)
    }

    /// Nothing to keep without `icu`.
    pub(crate) struct Timezones;

    impl Timezones {
        pub(crate) fn new(_default: DefaultZone, _parts: Parts) -> Timezones {
            Timezones
        }
    }

    pub(crate) fn declare(
        _app: &mut flagon::Setup<'_>,
        _cell: &crate::state::Cell,
        _i18n: &crate::I18n,
    ) -> Parts {
        Parts
    }

    pub(crate) fn register(_app: &mut flagon::Setup<'_>, _cell: &crate::state::Cell) {}
}

#[cfg(feature = "icu")]
pub(crate) mod imp {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use flagon::{RequestHead, RequestLocal, tracing};
    use jiff::tz::{Offset, TimeZone};

    use crate::format::FormatError;

    /// A timezone: its name (canonical IANA spelling, `UTC`, or `+08:00`) and its rules.
    #[derive(Clone, Debug)]
    pub(crate) struct Zone {
        name: Arc<str>,
        tz: TimeZone,
    }

    pub(crate) type DefaultZone = Zone;

    impl Zone {
        pub(crate) fn utc() -> Zone {
            Zone {
                name: Arc::from("UTC"),
                tz: TimeZone::UTC,
            }
        }

        /// `s` as a zone: `UTC`, a fixed offset (`+08:00`, `-0530`), or an IANA name
        /// (`Europe/Paris`, case-insensitive); `None` for anything else. A value that does
        /// not look like a name is refused before any lookup.
        pub(crate) fn parse(s: &str) -> Option<Zone> {
            let s = s.trim();
            if let Some(secs) = crate::config::parse_offset(s) {
                if secs == 0 {
                    return Some(Zone::utc());
                }
                let sign = if secs < 0 { '-' } else { '+' };
                let a = secs.unsigned_abs();
                return Some(Zone {
                    name: Arc::from(format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)),
                    tz: TimeZone::fixed(Offset::from_seconds(secs).ok()?),
                });
            }
            if !super::iana_shaped(s) {
                return None;
            }
            let tz = jiff::tz::db().get(s).ok()?;
            let name = Arc::from(tz.iana_name().unwrap_or(s));
            Some(Zone { name, tz })
        }

        /// The zone's name.
        pub(crate) fn name(&self) -> &str {
            &self.name
        }

        /// Seconds east of UTC at Unix time `unix` (the offset in force then, daylight
        /// saving time included).
        pub(crate) fn offset_at(&self, unix: i64) -> Result<i32, FormatError> {
            let ts = jiff::Timestamp::from_second(unix)
                .map_err(|_| FormatError::Date(unix.to_string()))?;
            Ok(self.tz.to_offset(ts).seconds())
        }
    }

    pub(crate) fn parse_default(s: &str) -> Option<Zone> {
        Zone::parse(s)
    }

    /// The app's timezone selector (Flask-Babel's `timezone_selector`): the timezone the
    /// app wants for a request (the user's stored preference, a cookie), or `None` to let
    /// the next selector, then `i18n.default_timezone`, decide. Asked at most once per
    /// request, and only when the request formats a date (see
    /// [`I18n::timezone_selector`](crate::I18n::timezone_selector)). A name that is not
    /// a timezone is logged (once per name, a bounded number of names) and skipped: it
    /// never fails the request.
    ///
    /// ```
    /// use flagon::RequestHead;
    /// let by_cookie = |req: &RequestHead<'_>| -> Option<String> {
    ///     let cookies = req.headers()?.get("cookie")?.to_str().ok()?;
    ///     cookies
    ///         .split(';')
    ///         .find_map(|c| c.trim().strip_prefix("tz="))
    ///         .map(str::to_owned)
    /// };
    /// let _i18n = flagon_i18n::I18n::new().timezone_selector(by_cookie);
    /// ```
    pub trait TimezoneSelector: Send + Sync + 'static {
        /// The timezone (`Europe/Paris`, `+08:00`) the app wants for `req`, if it knows.
        fn select(&self, req: &RequestHead<'_>) -> Option<String>;
    }

    impl<F> TimezoneSelector for F
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        fn select(&self, req: &RequestHead<'_>) -> Option<String> {
            self(req)
        }
    }

    /// A request's zone, made on its first use.
    pub(crate) struct RequestZone(pub(crate) Zone);

    /// The default zone, the selectors, the request-scoped zone (declared only when there
    /// are selectors), and the log of refused names.
    pub(crate) struct Timezones {
        pub(crate) default: Zone,
        selectors: Vec<Arc<dyn TimezoneSelector>>,
        pub(crate) key: Option<RequestLocal<RequestZone>>,
        rejected: RejectLog,
    }

    impl Timezones {
        pub(crate) fn new(
            default: Zone,
            (selectors, key): (
                Vec<Arc<dyn TimezoneSelector>>,
                Option<RequestLocal<RequestZone>>,
            ),
        ) -> Timezones {
            Timezones {
                default,
                selectors,
                key,
                rejected: RejectLog::new(REJECT_LOG_CAPACITY),
            }
        }

        /// The zone for a request: the first selector's answer that is a timezone, else the
        /// default.
        pub(crate) fn select(&self, head: &RequestHead<'_>) -> Zone {
            for s in &self.selectors {
                let Some(name) = s.select(head) else {
                    continue;
                };
                match Zone::parse(&name) {
                    Some(z) => return z,
                    None => self.rejected.note(&name),
                }
            }
            self.default.clone()
        }
    }

    /// How many distinct refused names are logged one by one.
    const REJECT_LOG_CAPACITY: usize = 64;

    /// Logs a refused zone name once, remembering at most `capacity` names (each cut to 64
    /// characters); past that, one line says further ones are not logged.
    struct RejectLog {
        capacity: usize,
        seen: Mutex<HashSet<Box<str>>>,
        full: AtomicBool,
    }

    impl RejectLog {
        fn new(capacity: usize) -> RejectLog {
            RejectLog {
                capacity,
                seen: Mutex::new(HashSet::new()),
                full: AtomicBool::new(false),
            }
        }

        fn note(&self, name: &str) {
            if self.full.load(Ordering::Relaxed) {
                return;
            }
            let name: Box<str> = super::truncated(name).into();
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.contains(&name) {
                return;
            }
            if seen.len() >= self.capacity {
                self.full.store(true, Ordering::Relaxed);
                tracing::warn!(target: "flagon_i18n", capacity = self.capacity, "more unknown timezone names than logged one by one; further ones are not logged");
                return;
            }
            // Debug formatting escapes control characters: the name came from a request.
            tracing::warn!(target: "flagon_i18n", name = ?name, "a timezone selector gave an unknown timezone; `i18n.default_timezone` is used");
            seen.insert(name);
        }
    }

    /// The zone Fluent's `DATETIME()` formats in, on this thread.
    pub(crate) enum Ctx {
        /// No zone given: the bundle's default.
        Unset,
        /// The formatting `Lang`'s zone.
        Zone(Zone),
        /// The request's zone is not made yet: the default is used and `hit` records that a
        /// date was formatted (so the caller formats again in the request's zone).
        Lazy { hit: bool },
    }

    thread_local! {
        static CTX: std::cell::RefCell<Ctx> = const { std::cell::RefCell::new(Ctx::Unset) };
    }

    /// Runs `f` with `ctx` as this thread's `DATETIME()` zone; returns what `f` returned and
    /// the context as `f` left it.
    pub(crate) fn with_ctx<R>(ctx: Ctx, f: impl FnOnce() -> R) -> (R, Ctx) {
        let prev = CTX.with(|c| c.replace(ctx));
        let out = f();
        let after = CTX.with(|c| c.replace(prev));
        (out, after)
    }

    /// The zone `DATETIME()` formats in now: the formatting `Lang`'s, else `default`.
    pub(crate) fn datetime_zone(default: &Zone) -> Zone {
        CTX.with(|c| match &mut *c.borrow_mut() {
            Ctx::Zone(z) => z.clone(),
            Ctx::Lazy { hit } => {
                *hit = true;
                default.clone()
            }
            Ctx::Unset => default.clone(),
        })
    }

    impl crate::I18n {
        /// Adds a timezone selector (Flask-Babel's `timezone_selector`), asked for a
        /// request's timezone before `i18n.default_timezone`; selectors are asked in the
        /// order added, and the first answer that is a timezone wins. The answer is an IANA
        /// name (`Europe/Paris`) or a fixed offset (`+08:00`); anything else is logged once
        /// and skipped, never an error for the request.
        ///
        /// Selectors run at most once per request, when it first needs its zone: a date
        /// filter or `current_timezone()` in a template, a `DATETIME()` in a `_()` message,
        /// or a handler taking [`Lang`](crate::Lang) (which may format a date at any time, so
        /// its zone is found when it is extracted). Other requests never ask them. A selector
        /// sees the request's head (method, URI, headers: a cookie) and reaches request-scoped
        /// values through it.
        pub fn timezone_selector(mut self, selector: impl TimezoneSelector) -> Self {
            self.tz_selectors.push(Arc::new(selector));
            self
        }
    }

    impl crate::Lang {
        /// This `Lang` showing dates in `tz` instead of the request's timezone or
        /// `i18n.default_timezone`: an IANA name (`Europe/Paris`, with its daylight saving
        /// time) or a fixed offset (`UTC`, `+08:00`).
        pub fn with_timezone(&self, tz: &str) -> Result<crate::Lang, FormatError> {
            let zone = Zone::parse(tz)
                .ok_or_else(|| FormatError::Timezone(super::truncated(tz.trim())))?;
            let mut lang = self.clone();
            lang.tz = Some(zone);
            Ok(lang)
        }

        /// The timezone dates are shown in: its own ([`Lang::with_timezone`](crate::Lang::with_timezone)),
        /// the request's (from the [timezone selectors](crate::I18n::timezone_selector)), or
        /// `i18n.default_timezone`. IANA names are spelled canonically (`Europe/Paris`),
        /// offsets as `+08:00`, zero as `UTC`.
        pub fn timezone(&self) -> &str {
            self.zone().name()
        }

        pub(crate) fn zone(&self) -> &Zone {
            self.tz.as_ref().unwrap_or(&self.shared.tz.default)
        }
    }

    /// Declares the request's zone (only when the app has selectors); its init asks them.
    pub(crate) fn declare(
        app: &mut flagon::Setup<'_>,
        cell: &crate::state::Cell,
        i18n: &crate::I18n,
    ) -> (
        Vec<Arc<dyn TimezoneSelector>>,
        Option<RequestLocal<RequestZone>>,
    ) {
        let selectors = &i18n.tz_selectors;
        if selectors.is_empty() {
            return (Vec::new(), None);
        }
        let c = cell.clone();
        let key = app.request_local(move |head| {
            RequestZone(match c.get() {
                Some(s) => s.tz.select(head),
                None => Zone::utc(),
            })
        });
        (selectors.clone(), Some(key))
    }

    /// `current_timezone()` in templates: the render's timezone name.
    pub(crate) fn register(app: &mut flagon::Setup<'_>, cell: &crate::state::Cell) {
        let c = cell.clone();
        app.template_request_function("current_timezone", move |req, _args| {
            let mut lang = crate::templates::lang_for(crate::templates::shared(&c)?, req);
            super::use_request_zone(&mut lang, req);
            Ok(lang.timezone().to_owned())
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn zones_parse_and_are_named_canonically() {
            assert_eq!(Zone::parse("europe/paris").unwrap().name(), "Europe/Paris");
            assert_eq!(Zone::parse(" UTC ").unwrap().name(), "UTC");
            assert_eq!(Zone::parse("+00:00").unwrap().name(), "UTC");
            assert_eq!(Zone::parse("+0545").unwrap().name(), "+05:45");
            assert_eq!(Zone::parse("-03:30").unwrap().name(), "-03:30");
            for bad in [
                "Europe/../Paris",
                "Europe/",
                "a b",
                "Mars/Olympus",
                "+15:00",
            ] {
                assert!(Zone::parse(bad).is_none(), "{bad}");
            }
        }

        #[test]
        fn refused_names_are_logged_once_and_bounded() {
            let log = RejectLog::new(3);
            for i in 0..1_000 {
                log.note(&format!("Bad/{i}{}", "x".repeat(500)));
                log.note("Mars/Olympus");
            }
            let seen = log.seen.lock().unwrap();
            assert_eq!(seen.len(), 3);
            assert!(seen.iter().all(|n| n.chars().count() <= 64));
            assert!(log.full.load(Ordering::Relaxed));
        }
    }
}

pub(crate) use imp::*;
