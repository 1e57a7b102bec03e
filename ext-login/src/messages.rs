//! Login's flashed messages, localized through core's [`flagon::messages`] when the app has
//! a translator (an i18n extension), without depending on one.

use flagon::http::request::Parts;
use flagon::messages::{Catalog, Catalogs, Message};
use flagon::{AppHandle, Locale};

/// Login's messages in English.
pub(crate) const EN: &str = include_str!("../locales/en.ftl");
/// Login's messages in Chinese.
pub(crate) const ZH: &str = include_str!("../locales/zh.ftl");

/// The message `id` in the request's locale. `configured` is the `[login]` text: when it is
/// the default it is only the fallback (a translator's text wins); an app's own wording is
/// shown as written.
pub(crate) fn localize(
    app: &AppHandle,
    parts: &Parts,
    id: &'static str,
    configured: &str,
    default: &str,
) -> String {
    if configured != default {
        return configured.to_owned();
    }
    let message = Message::new(id).fallback(configured.to_owned());
    flagon::messages::translate(app, Locale::of_parts(parts), &message)
}

/// Contributes login's catalogs (English and Chinese) to core's messages.
pub(crate) fn register(app: &mut flagon::Setup<'_>) {
    for (tag, source) in [("en", EN), ("zh", ZH)] {
        if let Some(locale) = Locale::parse(tag) {
            app.add_to::<Catalogs>("login.ftl", Catalog::new(locale, source));
        }
    }
}
