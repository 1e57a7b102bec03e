//! A missing message is logged once per (locale, id), and memory for that stays bounded.

mod common;

use flagon::testing::LogCapture;
use flagon_i18n::I18n;

#[test]
fn missing_messages_are_logged_once_per_locale_and_id_with_a_bound() {
    let fx = common::standard();
    let app = fx
        .builder("missing_log_capacity = 3")
        .register(I18n::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = LogCapture::start(flagon::tracing::Level::WARN);
    let fr = I18n::for_locale(app.handle(), "fr").unwrap();
    let de = I18n::for_locale(app.handle(), "de").unwrap();
    for _ in 0..5 {
        assert_eq!(fr.t("nope", ()), "nope");
        assert_eq!(de.t("nope", ()), "nope");
        // In en only: shown in English, logged as missing in fr.
        assert_eq!(fr.t("only-en", ()), "Only in English");
    }
    let text = logs.text();
    assert_eq!(
        text.matches("no catalog has this message").count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("shown in `en`").count(), 1, "{text}");
    // The fourth distinct pair is past the capacity: one line says so, then silence.
    for i in 0..100 {
        assert_eq!(de.t(&format!("gone-{i}"), ()), format!("gone-{i}"));
    }
    let text = logs.text();
    assert_eq!(text.matches("missing_log_capacity").count(), 1, "{text}");
    assert!(!text.contains("gone-"), "{text}");
}
