//! Timezones: IANA zones with daylight saving time, fixed offsets, the per-request
//! timezone selector (in handlers, template filters, `DATETIME()` in `_()`,
//! `current_timezone()`), asked only by requests that show a date, and hostile or unknown
//! names falling back to the default.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::Html;
use flagon::templates::{Templates, context};
use flagon::testing::TestClient;
use flagon::{HttpError, RequestHead, Route};
use flagon_i18n::{I18n, Lang, Length};

use flagon::axum;

/// 2026-01-15T12:00:00Z
const JAN: i64 = 1_768_478_400;
/// 2026-07-01T12:00:00Z
const JUL: i64 = 1_782_907_200;
/// 2026-03-29T00:30:00Z and 01:30Z: either side of Paris's switch to summer time (01:00Z).
const SPRING: [i64; 2] = [1_774_744_200, 1_774_747_800];
/// 2026-10-25T00:30:00Z and 01:30Z: either side of the switch back (01:00Z).
const AUTUMN: [i64; 2] = [1_792_888_200, 1_792_891_800];

fn fixture() -> common::Fixture {
    common::Fixture::new(&[
        (
            "locales/en/main.ftl",
            "hello = Hello!\nposted = Posted { DATETIME($t, dateStyle: \"short\", timeStyle: \"short\") }\n",
        ),
        (
            "locales/fr/main.ftl",
            "hello = Bonjour !\nposted = Publié { DATETIME($t, dateStyle: \"short\", timeStyle: \"short\") }\n",
        ),
        (
            "templates/dates.txt",
            "{{ t|datetimeformat(format='short') }} | {{ t|timeformat }} | {{ t|dateformat }} | {{ current_timezone() }}",
        ),
        ("templates/posted.txt", "{{ _('posted', t=t) }}"),
        (
            "templates/plain.txt",
            "{{ _('hello') }} {{ current_locale() }} {{ 1234.5|decimalformat }}",
        ),
    ])
}

fn lang_in(app: &flagon::App, tz: &str) -> Lang {
    I18n::for_locale(app.handle(), "en")
        .unwrap()
        .with_timezone(tz)
        .unwrap_or_else(|e| panic!("{tz}: {e}"))
}

#[test]
fn iana_zones_use_the_offset_in_force_at_each_instant() {
    let fx = fixture();
    let app = fx
        .builder("default_timezone = \"Europe/Paris\"")
        .register(I18n::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    assert_eq!(en.timezone(), "Europe/Paris");
    // Noon UTC: 13:00 in Paris in winter (CET, +1), 14:00 in summer (CEST, +2).
    assert_eq!(en.format_time(JAN).unwrap(), "1:00\u{202f}PM");
    assert_eq!(en.format_time(JUL).unwrap(), "2:00\u{202f}PM");
    // Either side of each transition.
    assert_eq!(en.format_time(SPRING[0]).unwrap(), "1:30\u{202f}AM");
    assert_eq!(en.format_time(SPRING[1]).unwrap(), "3:30\u{202f}AM");
    assert_eq!(en.format_time(AUTUMN[0]).unwrap(), "2:30\u{202f}AM");
    assert_eq!(en.format_time(AUTUMN[1]).unwrap(), "2:30\u{202f}AM");
    // The offset can move the date: 23:30Z on Dec 31 is New Year's Day in Paris.
    assert_eq!(
        en.format_date(1_798_759_800, Length::Long).unwrap(),
        "January 1, 2027"
    );

    // Other zones, and names in any case (shown in their canonical spelling).
    let ny = lang_in(&app, "america/new_york");
    assert_eq!(ny.timezone(), "America/New_York");
    assert_eq!(ny.format_time(JAN).unwrap(), "7:00\u{202f}AM"); // EST, -5
    assert_eq!(ny.format_time(JUL).unwrap(), "8:00\u{202f}AM"); // EDT, -4
    let sh = lang_in(&app, "Asia/Shanghai");
    assert_eq!(sh.format_time(JAN).unwrap(), "8:00\u{202f}PM");
    assert_eq!(sh.format_time(JUL).unwrap(), "8:00\u{202f}PM"); // no DST
    assert_eq!(
        lang_in(&app, "UTC").format_time(JUL).unwrap(),
        "12:00\u{202f}PM"
    );

    // Fixed offsets still work, the same all year.
    let plus8 = lang_in(&app, "+08:00");
    assert_eq!(plus8.timezone(), "+08:00");
    assert_eq!(plus8.format_time(JAN).unwrap(), "8:00\u{202f}PM");
    assert_eq!(lang_in(&app, "-0530").timezone(), "-05:30");
    assert_eq!(
        lang_in(&app, "-05:30")
            .format_datetime(JUL, Length::Short)
            .unwrap(),
        "7/1/26, 6:30\u{202f}AM"
    );

    // Fluent's DATETIME() follows the Lang's zone too.
    assert_eq!(
        ny.t("posted", [("t", flagon::messages::Arg::from(JUL as f64))]),
        "Posted 7/1/26, 8:00\u{202f}AM"
    );
    assert_eq!(
        en.t("posted", [("t", flagon::messages::Arg::from(JUL as f64))]),
        "Posted 7/1/26, 2:00\u{202f}PM"
    );

    // Not timezones: an error, nothing looked up.
    for bad in [
        "Mars/Olympus",
        "../../etc/passwd",
        "/etc/localtime",
        "Europe//Paris",
        "<script>",
        "",
        "+25:00",
        &"A".repeat(10_000),
    ] {
        assert!(en.with_timezone(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_bad_default_timezone_stops_the_build_naming_the_key() {
    let fx = fixture();
    for bad in [
        "Mars/Olympus",
        "Europe/Pariss",
        "+99:00",
        "../../etc/passwd",
        "",
    ] {
        let err = fx
            .builder(&format!("default_timezone = {bad:?}"))
            .register(I18n::new())
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("i18n.default_timezone") && err.contains("IANA"),
            "{bad}: {err}"
        );
    }
    for good in [
        "UTC",
        "Asia/Shanghai",
        "+05:45",
        "America/Argentina/Buenos_Aires",
    ] {
        fx.builder(&format!("default_timezone = {good:?}"))
            .register(I18n::new())
            .build()
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

async fn handler_time(lang: Lang) -> String {
    format!(
        "{} {}",
        lang.format_datetime(JUL, Length::Short).unwrap(),
        lang.timezone()
    )
}

async fn dates(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("dates.txt", context! { t => JUL }).await
}

async fn posted(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("posted.txt", context! { t => JUL }).await
}

async fn plain(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("plain.txt", context! {}).await
}

async fn nothing() -> &'static str {
    "ok"
}

/// An app whose timezone selector reads the `tz` cookie, counting its calls.
fn app_with_selector(fx: &common::Fixture) -> (flagon::App, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let selector = move |req: &RequestHead<'_>| -> Option<String> {
        c.fetch_add(1, Ordering::SeqCst);
        let cookies = req.headers()?.get("cookie")?.to_str().ok()?;
        cookies
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tz="))
            .map(str::to_owned)
    };
    let app = fx
        .builder("default_timezone = \"Europe/Paris\"")
        .register(I18n::new().timezone_selector(selector))
        .route(Route::get("/handler", handler_time))
        .route(Route::get("/dates", dates))
        .route(Route::get("/posted", posted))
        .route(Route::get("/plain", plain))
        .route(Route::get("/nothing", nothing))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    (app, calls)
}

#[tokio::test]
async fn the_selectors_zone_is_used_in_handlers_and_templates() {
    let fx = fixture();
    let (app, calls) = app_with_selector(&fx);
    let client = TestClient::new(&app);
    let get = |path: &'static str, tz: Option<&'static str>| {
        let mut r = client.get(path);
        if let Some(tz) = tz {
            r = r.header("cookie", &format!("a=1; tz={tz}"));
        }
        async move {
            let res = r.send().await;
            assert_eq!(res.status(), 200, "{path}");
            res.text()
        }
    };

    // In a handler, through `Lang`.
    assert_eq!(
        get("/handler", Some("Asia/Shanghai")).await,
        "7/1/26, 8:00\u{202f}PM Asia/Shanghai"
    );
    // No cookie: the default, Europe/Paris, on summer time.
    assert_eq!(
        get("/handler", None).await,
        "7/1/26, 2:00\u{202f}PM Europe/Paris"
    );

    // In template filters and `current_timezone()`; the selector runs once for the
    // request however many dates it shows.
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        get("/dates", Some("America/New_York")).await,
        "7/1/26, 8:00\u{202f}AM | 8:00\u{202f}AM | Jul 1, 2026 | America/New_York"
    );
    assert_eq!(calls.load(Ordering::SeqCst) - before, 1);
    assert_eq!(
        get("/dates", Some("+08:00")).await,
        "7/1/26, 8:00\u{202f}PM | 8:00\u{202f}PM | Jul 1, 2026 | +08:00"
    );

    // `DATETIME()` in a message translated by `_()` in a template.
    assert_eq!(
        get("/posted", Some("America/New_York")).await,
        "Posted 7/1/26, 8:00\u{202f}AM"
    );
    assert_eq!(get("/posted", None).await, "Posted 7/1/26, 2:00\u{202f}PM");
}

#[tokio::test]
async fn routes_that_show_no_date_never_ask_the_selector() {
    let fx = fixture();
    let (app, calls) = app_with_selector(&fx);
    let client = TestClient::new(&app);
    for path in ["/plain", "/nothing"] {
        let res = client
            .get(path)
            .header("cookie", "tz=Asia/Shanghai")
            .send()
            .await;
        assert_eq!(res.status(), 200);
    }
    let res = client.get("/plain").send().await;
    assert_eq!(res.text(), "Hello! en 1,234.5");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // …and one that does, asks it.
    client.get("/dates").send().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_or_hostile_zones_from_the_selector_fall_back_to_the_default() {
    let fx = fixture();
    let (app, _calls) = app_with_selector(&fx);
    let client = TestClient::new(&app);
    let long = format!("tz={}", "Europe/".repeat(2_000));
    for cookie in [
        "tz=Mars/Olympus",
        "tz=../../etc/passwd",
        "tz=%2e%2e%2fetc%2fpasswd",
        "tz=<script>alert(1)</script>",
        "tz=Europe/Paris\u{00e9}",
        "tz=",
        "tz=+99:99",
        long.as_str(),
    ] {
        for path in ["/handler", "/dates", "/posted"] {
            let res = client.get(path).header("cookie", cookie).send().await;
            assert_eq!(res.status(), 200, "{path} {cookie}");
            let text = res.text();
            assert!(
                text.contains("2:00\u{202f}PM")
                    && !text.contains("script")
                    && !text.contains("etc"),
                "{path} {cookie}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn outside_requests_templates_show_the_default_zone() {
    let fx = fixture();
    let (app, calls) = app_with_selector(&fx);
    let fr = flagon::Locale::parse("fr").unwrap();
    let tpl = Templates::for_locale(app.handle(), fr).unwrap();
    let dates = tpl
        .render_string("dates.txt", context! { t => JAN })
        .await
        .unwrap();
    assert_eq!(
        dates,
        "15/01/2026 13:00 | 13:00 | 15 janv. 2026 | Europe/Paris"
    );
    let posted = tpl
        .render_string("posted.txt", context! { t => JAN })
        .await
        .unwrap();
    assert_eq!(posted, "Publié 15/01/2026 13:00");
    // No request, no selector.
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
