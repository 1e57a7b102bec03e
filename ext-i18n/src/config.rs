//! The `[i18n]` config section.

use std::path::PathBuf;

use flagon::serde::{Deserialize, Serialize};

/// A step of the locale negotiation chain, in the order `[i18n] sources` lists them (the
/// app's own selectors always come first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", rename_all = "snake_case")]
pub enum SourceKind {
    /// The `?lang=` query parameter (`query_param`).
    Query,
    /// The locale cookie (`cookie_name`), written by [`Lang::set_locale`](crate::Lang::set_locale).
    Cookie,
    /// The `Accept-Language` header.
    Header,
    /// A value in the session (`session_key`), written by
    /// [`Lang::set_session_locale`](crate::Lang::set_session_locale). Listing it loads the
    /// session on every request that gets this far in the chain.
    Session,
}

/// `[i18n]` in `flagon.toml`. Every key is optional; the crate docs have the table.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct I18nConfig {
    /// The locale used when nothing else decides, and the last step of every fallback
    /// chain. It must have a catalog directory.
    pub default_locale: String,
    /// Directories holding one sub-directory of `.ftl` files per locale
    /// (`locales/zh-Hant/main.ftl`). Relative paths are read from the working directory.
    /// An earlier directory's message wins over a later one's of the same id.
    pub dirs: Vec<PathBuf>,
    /// Only these locales, when not empty (each needs a catalog directory); otherwise every
    /// locale directory found.
    pub locales: Vec<String>,
    /// The negotiation steps after the app's selectors, in order.
    pub sources: Vec<SourceKind>,
    /// The query parameter that picks a locale (`?lang=zh`).
    pub query_param: String,
    /// The cookie holding the user's choice.
    pub cookie_name: String,
    /// The session key holding the user's choice, for the `session` source.
    pub session_key: String,
    /// The locale cookie's lifetime in seconds.
    pub cookie_max_age: u64,
    /// Unicode isolation marks (FSI/PDI) around placeables. Off: they surprise people in
    /// HTML, URLs and mail headers.
    pub use_isolating: bool,
    /// The most bytes of `Accept-Language` read.
    pub accept_language_max_len: usize,
    /// The most ranges of `Accept-Language` kept (at most 32).
    pub max_ranges: usize,
    /// Reload changed `.ftl` files without a restart; on in development when unset.
    pub auto_reload: Option<bool>,
    /// How many distinct (locale, id) misses are logged one by one; after that, one line says
    /// further misses go unlogged.
    pub missing_log_capacity: usize,
    /// Register `GET /_i18n/set?lang=…&next=…`.
    pub set_route: bool,
    /// The timezone dates are shown in when no timezone selector decides: an IANA name
    /// (`Europe/Paris`, with its daylight saving time) or a fixed UTC offset (`+08:00`,
    /// `-05:30`, `UTC`).
    pub default_timezone: String,
}

impl Default for I18nConfig {
    fn default() -> Self {
        I18nConfig {
            default_locale: "en".to_owned(),
            dirs: vec![PathBuf::from("locales")],
            locales: Vec::new(),
            sources: vec![SourceKind::Query, SourceKind::Cookie, SourceKind::Header],
            query_param: "lang".to_owned(),
            cookie_name: "lang".to_owned(),
            session_key: "locale".to_owned(),
            cookie_max_age: 365 * 24 * 3600,
            use_isolating: false,
            accept_language_max_len: 500,
            max_ranges: 32,
            auto_reload: None,
            missing_log_capacity: 1024,
            set_route: true,
            default_timezone: "UTC".to_owned(),
        }
    }
}

/// `UTC`, `Z`, `+08:00`, `-0530` as seconds east of UTC.
pub(crate) fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}
