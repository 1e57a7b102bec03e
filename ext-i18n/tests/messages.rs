//! Messages: plurals (en, zh, ar, pl), attributes, fallbacks (E7), bombs (E6), an
//! extension's catalog under the app's, templates in and outside requests, and a lazy
//! message through a redirect.

mod common;

use axum::response::{Html, Redirect};
use flagon::messages::{Catalog, Catalogs, Message};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::testing::TestClient;
use flagon::{Extension, HttpError, Locale, Route, Setup, SetupError};
use flagon_i18n::I18n;

use flagon::axum;

fn build(fx: &common::Fixture) -> flagon::App {
    fx.builder("")
        .register(I18n::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn plurals_follow_cldr_rules() {
    let fx = common::standard();
    let app = build(&fx);
    let items = |l: &str, n: f64| {
        I18n::for_locale(app.handle(), l)
            .unwrap()
            .t("items", [("count", n)])
    };
    assert_eq!(items("en", 1.0), "one item");
    assert_eq!(items("en", 2.0), "2 items");
    assert_eq!(items("en", 0.0), "0 items");
    assert_eq!(items("zh", 1.0), "1 件");
    assert_eq!(items("zh", 5.0), "5 件");
    let ar: Vec<String> = [0.0, 1.0, 2.0, 3.0, 11.0, 100.0]
        .iter()
        .map(|n| items("ar", *n))
        .collect();
    assert_eq!(
        ar,
        [
            "لا عناصر",
            "عنصر واحد",
            "عنصران",
            "3 عناصر",
            "11 عنصرًا",
            "100 عنصر"
        ]
    );
    let pl: Vec<String> = [1.0, 2.0, 4.0, 5.0, 12.0, 22.0, 1.5]
        .iter()
        .map(|n| items("pl", *n))
        .collect();
    assert_eq!(
        pl,
        [
            "1 element",
            "2 elementy",
            "4 elementy",
            "5 elementów",
            "12 elementów",
            "22 elementy",
            "1,5 elementu"
        ]
    );
    // fr: 0 and 1 are `one`.
    assert_eq!(items("fr", 0.0), "0 article");
    assert_eq!(items("fr", 2.0), "2 articles");
}

#[test]
fn attributes_and_fallback_along_the_chain() {
    let fx = common::standard();
    let app = build(&fx);
    let zh = I18n::for_locale(app.handle(), "zh").unwrap();
    assert_eq!(zh.t("login-form.title", ()), "请登录");
    assert_eq!(zh.t("login-form", ()), "登录");
    // zh-Hant-TW → zh-Hant (has `hello`) → zh (has `items`) → en (has `only-en`).
    let tw = I18n::for_locale(app.handle(), "zh-Hant-TW").unwrap();
    assert_eq!(tw.locale().as_str(), "zh-Hant");
    assert_eq!(tw.t("hello", [("name", "A")]), "妳好，A！");
    assert_eq!(tw.t("items", [("count", 2)]), "2 件");
    assert_eq!(tw.t("only-en", ()), "Only in English");
    assert_eq!(tw.t("login-form.title", ()), "请登录");
}

#[test]
fn missing_message_argument_and_type_never_fail() {
    let fx = common::Fixture::new(&[
        (
            "locales/en/main.ftl",
            "hello = Hello, { $name }!\ncount = { $n ->\n    [one] one\n   *[other] many\n}\n",
        ),
        // A translator's typo: `$nom` for `$name`.
        (
            "locales/fr/main.ftl",
            "hello = Bonjour, { $nom } !\ncount = { $n ->\n    [one] un\n   *[other] beaucoup\n}\n",
        ),
    ]);
    let app = build(&fx);
    let fr = I18n::for_locale(app.handle(), "fr").unwrap();
    // Missing message: the id.
    assert_eq!(fr.t("nope", ()), "nope");
    assert_eq!(fr.t("nope.attr", ()), "nope.attr");
    assert_eq!(fr.t("hello.attr", ()), "hello.attr");
    // The typo in fr falls back to en, which has the right variable.
    assert_eq!(fr.t("hello", [("name", "Ada")]), "Hello, Ada!");
    // A missing argument everywhere: the first locale's output, marking the gap.
    assert_eq!(fr.t("hello", ()), "Bonjour, {$nom} !");
    // A wrong type (text where a number selects a plural): the default variant.
    assert_eq!(fr.t("count", [("n", "one?")]), "beaucoup");
    assert_eq!(fr.t("count", [("n", 1)]), "un");
    // Core's translate: the fallback when no catalog has the message.
    let m = Message::new("nope").fallback("Shown as written.");
    let fr_locale = Locale::parse("fr").unwrap();
    assert_eq!(
        flagon::messages::translate(app.handle(), Some(&fr_locale), &m),
        "Shown as written."
    );
    let m = Message::new("hello").arg("name", "Zoë");
    assert_eq!(
        flagon::messages::translate(app.handle(), Some(&fr_locale), &m),
        "Hello, Zoë!"
    );
    assert_eq!(
        flagon::messages::translate(app.handle(), None, &m),
        "Hello, Zoë!"
    );
}

#[test]
fn a_reference_bomb_is_cut_off() {
    let mut src = String::from("lol0 = LOL\n");
    for i in 1..=10 {
        let refs: Vec<String> = (0..10).map(|_| format!("{{ lol{} }}", i - 1)).collect();
        src.push_str(&format!("lol{i} = {}\n", refs.join(" ")));
    }
    let fx = common::Fixture::new(&[("locales/en/main.ftl", &src)]);
    let app = build(&fx);
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    let start = std::time::Instant::now();
    let out = en.t("lol10", ());
    assert!(
        start.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // 10^10 LOLs would be 40 GB; fluent-bundle stops at 100 placeables.
    assert!(out.len() < 100_000, "{} bytes", out.len());
}

#[test]
fn deep_nesting_at_load_is_a_build_error_even_on_a_small_stack() {
    let src = format!("bomb = {}\n", "{".repeat(500));
    let fx = common::Fixture::new(&[
        ("locales/en/main.ftl", "ok = fine\n"),
        ("locales/de/deep.ftl", &src),
    ]);
    let toml = fx.toml("");
    let err = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            flagon::App::builder()
                .settings(flagon::testing::testing_config_toml(&toml))
                .register(I18n::new())
                .build()
                .unwrap_err()
                .to_string()
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(err.contains("i18n.dirs"), "{err}");
    assert!(err.contains("deep.ftl:1:"), "{err}");
    assert!(err.contains("nested deeper than 32"), "{err}");
}

#[test]
fn a_parse_error_names_file_line_and_message() {
    let fx = common::Fixture::new(&[
        ("locales/en/main.ftl", "ok = fine\n"),
        (
            "locales/fr/main.ftl",
            "ok = bien\n\nbroken = { $x\nnext = fine\n",
        ),
    ]);
    let err = fx
        .builder("")
        .register(I18n::new())
        .build()
        .unwrap_err()
        .to_string();
    let file = fx.path("locales/fr/main.ftl").display().to_string();
    assert!(
        err.contains(&format!("{file}:4:1: Expected a token")),
        "{err}"
    );
    assert!(err.contains("Expected"), "{err}");
    // A duplicate id in two of the app's files.
    let fx = common::Fixture::new(&[
        ("locales/en/a.ftl", "x = 1\n"),
        ("locales/en/b.ftl", "x = 2\n"),
    ]);
    let err = fx
        .builder("")
        .register(I18n::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`x`") && err.contains("a.ftl") && err.contains("b.ftl"),
        "{err}"
    );
    // Configuration mistakes name the key.
    let fx = common::standard();
    for (line, key) in [
        ("default_locale = \"../x\"", "i18n.default_locale"),
        ("max_ranges = 0", "i18n.max_ranges"),
        (
            "default_timezone = \"Mars/Olympus\"",
            "i18n.default_timezone",
        ),
        ("locales = [\"tlh\"]", "i18n.locales"),
        ("cookie_name = \"a b\"", "i18n.cookie_name"),
    ] {
        let err = fx
            .builder(line)
            .register(I18n::new())
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{line}: {err}");
    }
    // A badly named locale directory.
    let fx = common::Fixture::new(&[
        ("locales/en/a.ftl", "x = 1\n"),
        ("locales/not a tag/a.ftl", "x = 1\n"),
    ]);
    let err = fx
        .builder("")
        .register(I18n::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a language tag"), "{err}");
}

/// An extension shipping its own messages.
struct Greeter;

impl Extension for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }
    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let en = Locale::parse("en").unwrap();
        let zh = Locale::parse("zh").unwrap();
        app.add_to::<Catalogs>(
            "greeter.ftl",
            Catalog::new(
                en,
                "greeter-hi = Hi from the extension\ngreeter-bye = Bye from the extension\n",
            ),
        );
        app.add_to::<Catalogs>("greeter.ftl", Catalog::new(zh, "greeter-hi = 扩展问好\n"));
        Ok(())
    }
}

#[test]
fn the_apps_message_wins_over_an_extensions() {
    let fx = common::Fixture::new(&[
        (
            "locales/en/main.ftl",
            "greeter-bye = Goodbye from the app\n",
        ),
        ("locales/zh/main.ftl", "other = 其他\n"),
    ]);
    let app = fx
        .builder("")
        .register(Greeter)
        .register(I18n::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    assert_eq!(en.t("greeter-hi", ()), "Hi from the extension");
    assert_eq!(en.t("greeter-bye", ()), "Goodbye from the app");
    let zh = I18n::for_locale(app.handle(), "zh").unwrap();
    assert_eq!(zh.t("greeter-hi", ()), "扩展问好");
    assert_eq!(zh.t("greeter-bye", ()), "Goodbye from the app");

    // Two extensions defining one id is a build error naming both.
    struct Other;
    impl Extension for Other {
        fn name(&self) -> &'static str {
            "other"
        }
        fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
            app.add_to::<Catalogs>(
                "other.ftl",
                Catalog::new(Locale::parse("en").unwrap(), "greeter-hi = Clash\n"),
            );
            Ok(())
        }
    }
    let err = fx
        .builder("")
        .register(Greeter)
        .register(Other)
        .register(I18n::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("greeter: greeter.ftl") && err.contains("other: other.ftl"),
        "{err}"
    );
}

async fn page(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("page.html", context! { user => "<Ada>", n => 3 })
        .await
}

fn template_fixture() -> common::Fixture {
    common::Fixture::new(&[
        (
            "locales/en/main.ftl",
            "hello = Hello, { $name }!\nitems = { $count ->\n    [one] one item\n   *[other] { $count } items\n}\nform = Form\n    .title = Please log in\nsaved = Saved { $n } items.\n",
        ),
        (
            "locales/zh/main.ftl",
            "hello = 你好，{ $name }！\nitems = { $count } 件\nform = 表单\n    .title = 请登录\nsaved = 已保存 { $n } 项。\n",
        ),
        (
            "templates/page.html",
            "{{ _('hello', name=user) }} | {{ t('items', count=n) }} | {{ _('form.title') }} | {{ _('missing-id') }} | {{ current_locale() }}",
        ),
        (
            "templates/flashes.html",
            "{% for m in get_flashed_messages() %}[{{ m }}]{% endfor %}",
        ),
    ])
}

#[tokio::test]
async fn templates_translate_in_the_requests_locale_and_outside_requests() {
    let fx = template_fixture();
    let app = fx
        .builder("")
        .register(I18n::new())
        .route(Route::get("/page", page))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    let r = client
        .get("/page")
        .header("accept-language", "zh-CN")
        .send()
        .await;
    // Arguments are escaped in HTML like any other output.
    assert_eq!(
        r.text(),
        "你好，&lt;Ada&gt;！ | 3 件 | 请登录 | missing-id | zh"
    );
    assert_eq!(r.header("content-language"), Some("zh"));
    let r = client.get("/page").send().await;
    assert_eq!(
        r.text(),
        "Hello, &lt;Ada&gt;! | 3 items | Please log in | missing-id | en"
    );

    // Outside a request: mail, commands.
    let zh = Locale::parse("zh").unwrap();
    let tpl = Templates::for_locale(app.handle(), zh).unwrap();
    let out = tpl
        .render_string("page.html", context! { user => "Lin", n => 1 })
        .await
        .unwrap();
    assert_eq!(out, "你好，Lin！ | 1 件 | 请登录 | missing-id | zh");
    let tpl = Templates::for_app(app.handle()).unwrap();
    let out = tpl
        .render_string("page.html", context! { user => "Lin", n => 1 })
        .await
        .unwrap();
    assert_eq!(
        out,
        "Hello, Lin! | one item | Please log in | missing-id | en"
    );
}

async fn save(session: Session) -> Result<Redirect, HttpError> {
    session.flash_message(
        Message::new("saved").arg("n", 3).fallback("Saved."),
        "success",
    )?;
    Ok(Redirect::to("/shown"))
}

async fn shown(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("flashes.html", ()).await
}

#[tokio::test]
async fn a_lazy_message_survives_a_redirect_in_a_flash() {
    let fx = template_fixture();
    let app = fx
        .builder("")
        .register(I18n::new())
        .route(Route::get("/save", save))
        .route(Route::get("/shown", shown))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app).follow_redirects(false);
    let r = client
        .get("/save")
        .header("accept-language", "en")
        .send()
        .await;
    assert_eq!(r.location(), Some("/shown"));
    // Flashed in English, shown in the locale of the page after the redirect.
    let r = client
        .get("/shown")
        .header("accept-language", "zh")
        .send()
        .await;
    assert_eq!(r.text(), "[已保存 3 项。]");
    assert_eq!(client.get("/shown").send().await.text(), "");
}

#[test]
fn isolation_marks_are_off_by_default_and_configurable() {
    let fx = common::standard();
    let app = build(&fx);
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    assert_eq!(en.t("hello", [("name", "Ada")]), "Hello, Ada!");
    let app = fx
        .builder("use_isolating = true")
        .register(I18n::new())
        .build()
        .unwrap();
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    assert_eq!(
        en.t("hello", [("name", "Ada")]),
        "Hello, \u{2068}Ada\u{2069}!"
    );
}

#[test]
fn lang_is_send_and_sync_and_shared_across_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<flagon_i18n::Lang>();
    let fx = common::standard();
    let app = build(&fx);
    let zh = I18n::for_locale(app.handle(), "zh").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let zh = zh.clone();
            std::thread::spawn(move || zh.t("items", [("count", i)]))
        })
        .collect();
    let out: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(out, ["0 件", "1 件", "2 件", "3 件"]);
}
