//! ICU4X formatting in en, zh, de, fr and ar: numbers, percentages, currencies, dates,
//! times and relative times, through `Lang`, template filters and Fluent functions.

mod common;

use flagon::templates::Templates;
use flagon_i18n::{I18n, Length};

const LOCALES: [&str; 5] = ["en", "zh", "de", "fr", "ar"];
/// 2026-12-01T16:09:00Z
const T: i64 = 1_796_141_340;
/// 2026-07-01T12:00:00Z: summer time in Europe/Paris (+2; winter, as at `T`, is +1).
const JUL: i64 = 1_782_907_200;

fn app(tz: &str) -> (common::Fixture, flagon::App) {
    let mut files = vec![];
    for l in LOCALES {
        files.push((
            format!("locales/{l}/main.ftl"),
            "total = { NUMBER($n) } · { NUMBER($p, style: \"percent\") } · { CURRENCY($n, currency: \"EUR\") } · { DATETIME($t, dateStyle: \"long\") }\n".to_owned(),
        ));
    }
    files.push((
        "templates/f.txt".to_owned(),
        "{{ 1234567.891|decimalformat }} | {{ 0.256|percentformat }} | {{ 1234.5|currencyformat('USD') }} | {{ '2026-12-01T16:09:00Z'|dateformat(format='long') }} | {{ t|datetimeformat }} | {{ t|timeformat }} | {{ -259200|timedeltaformat }}".to_owned(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let fx = common::Fixture::new(&refs);
    let app = fx
        .builder(&format!("default_timezone = \"{tz}\""))
        .register(I18n::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    (fx, app)
}

#[test]
fn lang_methods_per_locale() {
    let (_fx, app) = app("UTC");
    let mut out = String::new();
    for l in LOCALES {
        let lang = I18n::for_locale(app.handle(), l).unwrap();
        let paris = lang.with_timezone("Europe/Paris").unwrap();
        out.push_str(&format!(
            "{l}\n  decimal   {}\n  negative  {}\n  percent   {}\n  USD       {}\n  EUR       {}\n  JPY       {}\n  date s/m/l {} | {} | {}\n  datetime  {}\n  time      {}\n  in 3 days {}\n  5 min ago {}\n  Paris     {} | {}\n  Shanghai  {}\n",
            lang.format_decimal(1234567.891).unwrap(),
            lang.format_decimal(-0.5).unwrap(),
            lang.format_percent(0.256).unwrap(),
            lang.format_currency(1234567.891, "USD").unwrap(),
            lang.format_currency(1234.5, "EUR").unwrap(),
            lang.format_currency(1234.5, "JPY").unwrap(),
            lang.format_date(T, Length::Short).unwrap(),
            lang.format_date(T, Length::Medium).unwrap(),
            lang.format_date(T, Length::Long).unwrap(),
            lang.format_datetime(T, Length::Medium).unwrap(),
            lang.format_time(T).unwrap(),
            lang.format_timedelta(3 * 86_400).unwrap(),
            lang.format_timedelta(-300).unwrap(),
            paris.format_datetime(T, Length::Medium).unwrap(),
            paris.format_datetime(JUL, Length::Medium).unwrap(),
            lang.with_timezone("Asia/Shanghai")
                .unwrap()
                .format_datetime(T, Length::Long)
                .unwrap(),
        ));
    }
    insta::assert_snapshot!(out);
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    assert!(en.format_currency(1.0, "EURO").is_err());
    assert!(en.format_decimal(f64::NAN).is_err());
}

#[test]
fn default_timezone_shifts_dates() {
    let (_fx, app) = app("+08:00");
    let en = I18n::for_locale(app.handle(), "en").unwrap();
    // 16:09 UTC is past midnight at +08:00.
    assert_eq!(en.format_date(T, Length::Long).unwrap(), "December 2, 2026");
    assert!(en.format_time(T).unwrap().starts_with("12:09"));
    // A user's own timezone wins over the default.
    let ny = en.with_timezone("-05:00").unwrap();
    assert_eq!(
        ny.format_datetime(T, Length::Short).unwrap(),
        "12/1/26, 11:09\u{202f}AM"
    );
    // IANA names too (tests/timezone.rs has their daylight saving time).
    assert_eq!(
        en.with_timezone("Europe/Paris").unwrap().timezone(),
        "Europe/Paris"
    );
    assert!(en.with_timezone("Mars/Olympus").is_err());
}

#[tokio::test]
async fn template_filters_and_fluent_functions() {
    let (_fx, app) = app("UTC");
    let mut out = String::new();
    for l in LOCALES {
        let locale = flagon::Locale::parse(l).unwrap();
        let tpl = Templates::for_locale(app.handle(), locale).unwrap();
        let filters = tpl
            .render_string("f.txt", flagon::templates::context! { t => T })
            .await
            .unwrap();
        let lang = I18n::for_locale(app.handle(), l).unwrap();
        let fluent = lang.t(
            "total",
            [
                ("n", flagon::messages::Arg::from(1234.5)),
                ("p", 0.5.into()),
                ("t", (T as f64).into()),
            ],
        );
        out.push_str(&format!("{l}\n  filters {filters}\n  fluent  {fluent}\n"));
    }
    insta::assert_snapshot!(out);
}
