//! Catalogs reload in development without a restart; a broken edit keeps the old ones.

mod common;

use std::time::Duration;

use flagon_i18n::I18n;

fn t(app: &flagon::App) -> String {
    I18n::for_locale(app.handle(), "en").unwrap().t("hello", ())
}

fn wait_for(app: &flagon::App, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..40 {
        last = t(app);
        if last == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

#[test]
fn changed_files_reload_when_auto_reload_is_on() {
    let fx = common::Fixture::new(&[("locales/en/main.ftl", "hello = one\n")]);
    let app = fx
        .builder("auto_reload = true")
        .register(I18n::new())
        .build()
        .unwrap();
    assert_eq!(t(&app), "one");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(fx.path("locales/en/main.ftl"), "hello = two\n").unwrap();
    assert_eq!(wait_for(&app, "two"), "two");
    // A broken edit: the previous catalogs stay.
    std::fs::write(fx.path("locales/en/main.ftl"), "hello = { three\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(t(&app), "two");
    // A new locale directory appears.
    std::fs::create_dir_all(fx.path("locales/fr")).unwrap();
    std::fs::write(fx.path("locales/fr/main.ftl"), "hello = deux\n").unwrap();
    std::fs::write(fx.path("locales/en/main.ftl"), "hello = four\n").unwrap();
    assert_eq!(wait_for(&app, "four"), "four");
    let names: Vec<String> = I18n::locales(app.handle())
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(names, ["en", "fr"]);
}

#[test]
fn without_auto_reload_the_catalogs_stay() {
    let fx = common::Fixture::new(&[("locales/en/main.ftl", "hello = one\n")]);
    let app = fx.builder("").register(I18n::new()).build().unwrap();
    std::fs::write(fx.path("locales/en/main.ftl"), "hello = two\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(t(&app), "one");
}
