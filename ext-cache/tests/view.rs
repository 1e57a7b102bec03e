//! The view cache (F2): a hit calls no handler; keys are distinct where the response
//! differs (GET vs POST, query, user, locale, headers) and canonical where it does not;
//! personal and uncacheable responses are never stored.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flagon::axum::response::IntoResponse;
use flagon::http::{HeaderName, StatusCode};
use flagon::testing::{TestClient, testing_config};
use flagon::{App, Decorator, Identity, Locale, Route, proceed};
use flagon_cache::{Cache, CachedView, cached};

const TTL: Duration = Duration::from_secs(60);

/// A handler that counts its calls and answers with the count, the user and the locale.
fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Fn(flagon::axum::extract::Request) -> std::future::Ready<String> + Clone + use<> {
    let calls = calls.clone();
    move |req| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let who = Identity::of(&req)
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default();
        let loc = Locale::of(&req)
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default();
        std::future::ready(format!("call {n} user={who} locale={loc}"))
    }
}

/// An app whose before hook sets the identity from `x-user` and the locale from
/// `accept-language`, as login and i18n would.
fn app_with(routes: Vec<Route>) -> App {
    let mut b = App::builder()
        .settings(testing_config())
        .register(Cache::new())
        .configure(|app| {
            app.before_request(|mut req| async move {
                if let Some(u) = req
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                {
                    let _ = Identity::set(&mut req, Identity::new(u));
                }
                let tag = req
                    .headers()
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .and_then(Locale::parse);
                if let Some(l) = tag {
                    let _ = Locale::set(&mut req, l);
                }
                proceed(req)
            });
            Ok(())
        });
    for r in routes {
        b = b.route(r);
    }
    b.build().unwrap()
}

fn view(path: &str, calls: &Arc<AtomicUsize>, d: Decorator) -> Route {
    Route::get(path, counting(calls))
        .name(path.trim_start_matches('/').replace('/', "_"))
        .with(d)
}

#[tokio::test]
async fn a_hit_calls_no_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app_with(vec![view("/page", &calls, cached(TTL))]);
    let client = TestClient::new(&app);
    let first = client.get("/page").send().await;
    assert_eq!(first.status(), 200);
    let ct = first.header("content-type").map(str::to_owned);
    assert_eq!(first.text(), "call 1 user= locale=");
    for _ in 0..5 {
        let hit = client.get("/page").send().await;
        assert_eq!(hit.status(), 200);
        assert_eq!(
            hit.header("content-type").map(str::to_owned),
            ct,
            "headers are stored"
        );
        assert_eq!(hit.text(), "call 1 user= locale=");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "hits did not call the handler"
    );
    assert!(client.head("/page").send().await.status().is_success());
}

#[tokio::test]
async fn query_strings_are_canonical_and_distinct() {
    let calls = Arc::new(AtomicUsize::new(0));
    let ignore = Arc::new(AtomicUsize::new(0));
    let app = app_with(vec![
        view("/q", &calls, cached(TTL)),
        view(
            "/search",
            &ignore,
            CachedView::new(TTL).ignore_query_string().into_decorator(),
        ),
    ]);
    let client = TestClient::new(&app);
    client.get("/q?a=1&b=2").send().await;
    client.get("/q?b=2&a=1").send().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "parameter order does not matter"
    );
    client.get("/q?a=2&b=2").send().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "another value is another entry"
    );
    client.get("/q").send().await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    client.get("/search?q=a").send().await;
    client.get("/search?q=b").send().await;
    assert_eq!(
        ignore.load(Ordering::SeqCst),
        1,
        "ignore_query_string shares the entry"
    );
}

#[tokio::test]
async fn post_is_never_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = counting(&calls);
    let app = App::builder()
        .settings(testing_config())
        .register(Cache::new())
        .configure(move |app| {
            app.route(Route::post("/form", handler).name("form").with(cached(TTL)));
            app.csrf_exempt("form");
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    for i in 1..=3 {
        assert_eq!(
            client.post("/form").send().await.text(),
            format!("call {i} user= locale=")
        );
    }
    let caches = flagon_cache::Caches::of(app.handle()).unwrap();
    caches.default().run_pending_tasks().await;
    assert_eq!(
        caches.default().memory_usage().unwrap().entries,
        0,
        "nothing stored for POST"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "every POST reached the handler"
    );
}

#[tokio::test]
async fn users_and_locales_get_their_own_pages() {
    let calls = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(AtomicUsize::new(0));
    let app = app_with(vec![
        view(
            "/me",
            &calls,
            CachedView::new(TTL)
                .vary_on_identity()
                .vary_on_locale()
                .into_decorator(),
        ),
        view("/shared", &shared, cached(TTL)),
    ]);
    let client = TestClient::new(&app);
    let a = client
        .get("/me")
        .header("x-user", "alice")
        .send()
        .await
        .text();
    let b = client
        .get("/me")
        .header("x-user", "bob")
        .send()
        .await
        .text();
    assert_eq!(a, "call 1 user=alice locale=");
    assert_eq!(
        b, "call 2 user=bob locale=",
        "bob does not get alice's page"
    );
    assert_eq!(
        client
            .get("/me")
            .header("x-user", "alice")
            .send()
            .await
            .text(),
        a,
        "alice's hit"
    );
    let anon = client.get("/me").send().await.text();
    assert_eq!(anon, "call 3 user= locale=", "anonymous is its own entry");
    let de = client
        .get("/me")
        .header("x-user", "alice")
        .header("accept-language", "de")
        .send()
        .await
        .text();
    let fr = client
        .get("/me")
        .header("x-user", "alice")
        .header("accept-language", "fr")
        .send()
        .await
        .text();
    assert_eq!(de, "call 4 user=alice locale=de");
    assert_eq!(fr, "call 5 user=alice locale=fr");
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // A view that does not vary on the user is bypassed for authenticated requests.
    client.get("/shared").send().await;
    client.get("/shared").send().await;
    assert_eq!(shared.load(Ordering::SeqCst), 1);
    let mine = client
        .get("/shared")
        .header("x-user", "alice")
        .send()
        .await
        .text();
    assert_eq!(
        mine, "call 2 user=alice locale=",
        "an authenticated request is not served the shared page"
    );
    client.get("/shared").header("x-user", "alice").send().await;
    assert_eq!(shared.load(Ordering::SeqCst), 3, "nor is its page stored");
    assert_eq!(
        client.get("/shared").send().await.text(),
        "call 1 user= locale="
    );
}

#[tokio::test]
async fn named_request_headers_vary_the_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let d = CachedView::new(TTL)
        .vary_on_header(HeaderName::from_static("x-theme"))
        .into_decorator();
    let app = app_with(vec![view("/themed", &calls, d)]);
    let client = TestClient::new(&app);
    client.get("/themed").header("x-theme", "dark").send().await;
    client.get("/themed").header("x-theme", "dark").send().await;
    client
        .get("/themed")
        .header("x-theme", "light")
        .send()
        .await;
    client.get("/themed").send().await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn uncacheable_responses_are_never_stored() {
    type Make = fn() -> flagon::axum::response::Response;
    let cases: [(&str, Make); 6] = [
        ("/cookie", || {
            ([("set-cookie", "sid=secret; HttpOnly")], "with cookie").into_response()
        }),
        ("/private", || {
            ([("cache-control", "private, max-age=60")], "private").into_response()
        }),
        ("/nostore", || {
            ([("cache-control", "no-store")], "no-store").into_response()
        }),
        ("/session", || {
            ([("vary", "Cookie")], "read the session").into_response()
        }),
        ("/star", || {
            ([("vary", "*")], "varies on everything").into_response()
        }),
        ("/missing", || {
            (StatusCode::NOT_FOUND, "not here").into_response()
        }),
    ];
    let calls = Arc::new(AtomicUsize::new(0));
    let mut routes = Vec::new();
    for (path, make) in cases {
        let calls = calls.clone();
        routes.push(
            Route::get(path, move || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(make())
            })
            .name(path.trim_start_matches('/'))
            .with(cached(TTL)),
        );
    }
    let app = app_with(routes);
    let client = TestClient::new(&app);
    for (path, _) in cases {
        let before = calls.load(Ordering::SeqCst);
        let first = client.get(path).send().await;
        if path == "/cookie" {
            assert!(first.header("set-cookie").is_some());
        }
        client.get(path).send().await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before + 2,
            "{path} was served from the cache"
        );
    }
}

#[tokio::test]
async fn x_cache_shows_hits_in_development() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = App::builder()
        .settings(
            flagon::config::Config::builder()
                .profile(flagon::config::Profile::Development)
                .build()
                .unwrap(),
        )
        .register(Cache::new())
        .route(view("/dev", &calls, cached(TTL)))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(
        client.get("/dev").send().await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        client.get("/dev").send().await.header("x-cache"),
        Some("HIT")
    );
}
