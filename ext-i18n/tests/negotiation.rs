//! Locale negotiation through the app: the chain, Accept-Language (E2–E4), hostile input
//! (E1, E5), and the response headers.

mod common;

use flagon::testing::TestClient;
use flagon::{Locale, Route};
use flagon_i18n::{I18n, Lang};

async fn locale(loc: Option<Locale>) -> String {
    loc.map(|l| l.to_string()).unwrap_or_else(|| "none".into())
}

async fn greet(lang: Lang) -> String {
    lang.t("hello", [("name", "Ada")])
}

fn app_with(fx: &common::Fixture, extra: &str, i18n: I18n) -> flagon::App {
    fx.builder(extra)
        .register(i18n)
        .route(Route::get("/loc", locale))
        .route(Route::get("/greet", greet))
        .route(Route::get("/plain", || async { "plain" }).name("plain"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn pick(client: &TestClient, header: &str) -> String {
    client
        .get("/loc")
        .header("accept-language", header)
        .send()
        .await
        .text()
}

#[tokio::test]
async fn accept_language_table() {
    let fx = common::standard();
    let app = app_with(&fx, "", I18n::new());
    let client = TestClient::new(&app);
    let table = [
        // E2: q=0 is a refusal, even through `*`.
        ("fr;q=0, en;q=0.5, *;q=0.1", "en"),
        ("fr;q=0, de;q=0.1", "de"),
        ("fr-CA;q=0, fr;q=0.5", "fr"),
        // q-weights decide, not order.
        ("de;q=0.5, fr", "fr"),
        // Ties keep header order.
        ("de;q=0.5, fr;q=0.5", "de"),
        ("fr;q=0.5, de;q=0.5", "fr"),
        // E3: bad weights skip the item only.
        ("de;q=1.0001, fr;q=0.5", "fr"),
        ("de;q=-1, fr;q=0.5", "fr"),
        ("de;q=abc, fr;q=0.5", "fr"),
        ("de;q=.5, fr;q=0.4", "fr"),
        ("de;q=0.5000, fr;q=0.4", "fr"),
        ("de;q=, fr;q=0.4", "fr"),
        ("de ; q=0.9, fr;q=0.4", "de"),
        ("de;q = 0.9, fr;q=0.4", "fr"),
        // E4: case, script and region fallback, en_US, odd tags.
        ("EN-us", "en"),
        ("ZH-hant", "zh-Hant"),
        ("zh-Hant-TW", "zh-Hant"),
        ("zh-Hans-CN", "zh"),
        ("zh-TW", "zh"),
        ("es-419", "es"),
        ("en_US", "en"),
        ("pl_PL, en;q=0.1", "pl"),
        ("i-klingon", "en"),
        ("x-foo", "en"),
        ("abcdefghi, de;q=0.1", "de"),
        ("*", "en"),
        ("", "en"),
        ("tlh, *;q=0.5", "en"),
    ];
    for (header, want) in table {
        assert_eq!(
            pick(&client, header).await,
            want,
            "Accept-Language: {header}"
        );
    }
    // No header at all.
    assert_eq!(client.get("/loc").send().await.text(), "en");
}

#[tokio::test]
async fn star_never_picks_a_refused_locale() {
    let fx = common::standard();
    let app = app_with(&fx, "default_locale = \"fr\"", I18n::new());
    let client = TestClient::new(&app);
    // The default comes first for `*`; refused, the next available one is taken.
    assert_eq!(pick(&client, "fr;q=0, *").await, "ar");
    assert_eq!(pick(&client, "*").await, "fr");
}

#[tokio::test]
async fn the_chain_selector_query_cookie_header_default() {
    let fx = common::standard();
    let i18n = I18n::new().selector(|req: &flagon::axum::extract::Request| {
        req.headers()
            .get("x-user-locale")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let app = app_with(&fx, "", i18n);
    let client = TestClient::new(&app);
    let get = |path: &'static str| client.get(path).header("accept-language", "de");
    assert_eq!(get("/loc").send().await.text(), "de");
    client.set_cookie("lang", "pl");
    assert_eq!(get("/loc").send().await.text(), "pl");
    assert_eq!(get("/loc?lang=fr").send().await.text(), "fr");
    assert_eq!(get("/loc?lang=zh-Hant-TW").send().await.text(), "zh-Hant");
    assert_eq!(
        get("/loc?lang=fr")
            .header("x-user-locale", "ar")
            .send()
            .await
            .text(),
        "ar"
    );
    // A selector naming an unavailable locale lets the chain go on.
    assert_eq!(
        get("/loc?lang=fr")
            .header("x-user-locale", "tlh")
            .send()
            .await
            .text(),
        "fr"
    );
}

#[tokio::test]
async fn sources_are_configurable() {
    let fx = common::standard();
    let app = app_with(&fx, "sources = [\"header\", \"query\"]", I18n::new());
    let client = TestClient::new(&app);
    client.set_cookie("lang", "pl");
    let r = client
        .get("/loc?lang=fr")
        .header("accept-language", "de")
        .send()
        .await;
    assert_eq!(r.text(), "de");
    assert_eq!(client.get("/loc?lang=fr").send().await.text(), "fr");
    assert_eq!(client.get("/loc").send().await.text(), "en");
}

#[tokio::test]
async fn headers_on_responses_that_used_the_locale() {
    let fx = common::standard();
    let app = app_with(&fx, "", I18n::new());
    let client = TestClient::new(&app);
    let r = client
        .get("/greet")
        .header("accept-language", "zh")
        .send()
        .await;
    assert_eq!(r.text(), "你好，Ada！");
    assert_eq!(r.header("content-language"), Some("zh"));
    let vary: Vec<&str> = r
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, ["Accept-Language", "Cookie"]);
    // Decided by the query: the header was not read.
    let r = client
        .get("/greet?lang=fr")
        .header("accept-language", "zh")
        .send()
        .await;
    assert_eq!(r.text(), "Bonjour, Ada !");
    assert_eq!(r.header("content-language"), Some("fr"));
    assert!(r.header("vary").is_none());
    // A route that never used the locale gets neither header.
    let r = client
        .get("/plain")
        .header("accept-language", "zh")
        .send()
        .await;
    assert!(r.header("content-language").is_none());
    assert!(r.header("vary").is_none());
}

#[tokio::test]
async fn hostile_values_are_never_selected_nor_reflected() {
    let fx = common::standard();
    let app = app_with(&fx, "", I18n::new());
    let client = TestClient::new(&app);
    for q in [
        "../../../etc/passwd",
        "en%00",
        "%3Cscript%3E",
        "zh%2F..%2F..",
        "*",
    ] {
        let r = client
            .get(&format!("/greet?lang={q}"))
            .header("accept-language", "de")
            .send()
            .await;
        assert_eq!(r.text(), "Hallo, Ada!", "?lang={q}");
        assert_eq!(r.header("content-language"), Some("de"));
    }
    client.set_cookie("lang", "<script>");
    let r = client.get("/loc").send().await;
    assert_eq!(r.text(), "en");
    client.clear_cookies();
    // The switch route refuses without echoing.
    for q in [
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "..%2F..%2Fetc%2Fpasswd",
        "tlh",
    ] {
        let r = client.get(&format!("/_i18n/set?lang={q}")).send().await;
        assert_eq!(r.status(), 400, "{q}");
        let body = r.text();
        assert!(
            !body.contains("script") && !body.contains("passwd") && !body.contains("tlh"),
            "{body}"
        );
        assert!(r.header("set-cookie").is_none());
    }
}

#[tokio::test]
async fn huge_accept_language_is_bounded() {
    let fx = common::standard();
    let app = app_with(&fx, "", I18n::new());
    let client = TestClient::new(&app);
    // 100 KB of 10,000 ranges, the wanted one at the start, then unique junk.
    let mut header = String::from("de;q=0.9,");
    let mut i = 0u32;
    while header.len() < 100_000 {
        header.push_str(&format!("x{:07};q=0.5,", i % 10_000_000));
        i += 1;
    }
    header.push_str("fr");
    let start = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(pick(&client, &header).await, "de");
    }
    let per = start.elapsed() / 100;
    // fr (q=1) sits past the byte cap, so it was never read.
    assert!(
        per < std::time::Duration::from_millis(20),
        "{per:?} per request"
    );
    // Direct parse: the cap holds however long the header.
    let ranges = flagon_i18n::accept::parse(&header, 500, 32);
    assert!(ranges.len() <= 32);
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(flagon_i18n::accept::parse(&header, 500, 32));
    }
    assert!(
        t.elapsed() < std::time::Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn set_route_stores_the_choice_and_redirects_safely() {
    let fx = common::standard();
    let app = app_with(&fx, "", I18n::new());
    let client = TestClient::new(&app).follow_redirects(false);
    let r = client.get("/_i18n/set?lang=zh-CN&next=/greet").send().await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.location(), Some("/greet"));
    assert!(r.header("set-cookie").unwrap().starts_with("lang=zh;"));
    assert_eq!(
        client
            .get("/greet")
            .header("accept-language", "de")
            .send()
            .await
            .text(),
        "你好，Ada！"
    );
    for bad in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
    ] {
        let r = client
            .get(&format!("/_i18n/set?lang=fr&next={bad}"))
            .send()
            .await;
        assert_eq!(r.location(), Some("/"), "next={bad}");
    }
    let r = client.get("/_i18n/set").send().await;
    assert_eq!(r.status(), 400);
}

async fn choose(
    lang: Lang,
    session: flagon::session::Session,
    flagon::extract::Path(tag): flagon::extract::Path<String>,
) -> Result<String, flagon::HttpError> {
    Ok(lang.set_session_locale(&session, &tag)?.to_string())
}

#[tokio::test]
async fn the_session_source_reads_the_users_stored_choice() {
    let fx = common::standard();
    let app = fx
        .builder("sources = [\"query\", \"session\", \"header\"]")
        .register(I18n::new())
        .route(Route::get("/loc", locale))
        .route(Route::get("/choose/{tag}", choose))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    assert_eq!(pick(&client, "de").await, "de");
    assert_eq!(client.get("/choose/pl_PL").send().await.text(), "pl");
    assert_eq!(pick(&client, "de").await, "pl");
    assert_eq!(client.get("/loc?lang=fr").send().await.text(), "fr");
    let r = client.get("/choose/%3Cscript%3E").send().await;
    assert_eq!(r.status(), 400);
    assert!(!r.text().contains("script"));
    assert_eq!(pick(&client, "de").await, "pl");
    // Another browser has its own session.
    assert_eq!(pick(&TestClient::new(&app), "de").await, "de");
}

#[tokio::test]
async fn async_selectors_come_after_the_plain_ones_and_before_the_sources() {
    let fx = common::standard();
    let i18n = I18n::new()
        .selector(|req: &flagon::axum::extract::Request| {
            req.headers()
                .get("x-forced")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .async_selector(|req: &flagon::axum::extract::Request| {
            let stored = req
                .headers()
                .get("x-stored")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            async move {
                // A lookup that has to wait (a database, the session).
                flagon::tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                stored
            }
        });
    let app = app_with(&fx, "", i18n);
    let client = TestClient::new(&app);
    let get = |path: &'static str| client.get(path).header("accept-language", "de");
    assert_eq!(get("/loc").send().await.text(), "de", "no selector answers");
    assert_eq!(
        get("/loc?lang=fr")
            .header("x-stored", "pl")
            .send()
            .await
            .text(),
        "pl",
        "the async selector comes before the query"
    );
    assert_eq!(
        get("/loc")
            .header("x-stored", "pl")
            .header("x-forced", "ar")
            .send()
            .await
            .text(),
        "ar",
        "a plain selector comes first"
    );
    assert_eq!(
        get("/loc?lang=fr")
            .header("x-stored", "tlh")
            .send()
            .await
            .text(),
        "fr",
        "an unavailable answer lets the chain go on"
    );
    let r = get("/greet").header("x-stored", "zh").send().await;
    assert_eq!(r.text(), "你好，Ada！");
    let vary: Vec<&str> = r
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(vary.iter().any(|v| v.contains("Cookie")), "{vary:?}");
}
