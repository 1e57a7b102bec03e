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

#[tokio::test]
async fn unless_skips_the_cache_both_ways() {
    let calls = Arc::new(AtomicUsize::new(0));
    let d = CachedView::new(TTL)
        .unless(|req| req.headers().contains_key("x-preview"))
        .into_decorator();
    let app = app_with(vec![view("/u", &calls, d)]);
    let client = TestClient::new(&app);
    let preview = client
        .get("/u")
        .header("x-preview", "1")
        .send()
        .await
        .text();
    assert_eq!(preview, "call 1 user= locale=");
    assert_eq!(
        client.get("/u").send().await.text(),
        "call 2 user= locale=",
        "a skipped request stored nothing"
    );
    assert_eq!(client.get("/u").send().await.text(), "call 2 user= locale=");
    assert_eq!(
        client
            .get("/u")
            .header("x-preview", "1")
            .send()
            .await
            .text(),
        "call 3 user= locale=",
        "a skipped request reads nothing either"
    );
}

#[tokio::test]
async fn response_filter_decides_what_is_stored_but_not_the_safety_rules() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let missing = Route::get("/gone", move || {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready((StatusCode::NOT_FOUND, format!("gone {n}")).into_response())
    })
    .name("gone")
    .with(
        CachedView::new(TTL)
            .response_filter(|res| res.status() == StatusCode::NOT_FOUND)
            .into_decorator(),
    );
    let c = calls.clone();
    let cookie = Route::get("/cookie404", move || {
        c.fetch_add(1, Ordering::SeqCst);
        std::future::ready(
            (
                StatusCode::NOT_FOUND,
                [("set-cookie", "a=b")],
                "with a cookie",
            )
                .into_response(),
        )
    })
    .name("cookie404")
    .with(
        CachedView::new(TTL)
            .response_filter(|_| true)
            .into_decorator(),
    );
    let ok_calls = Arc::new(AtomicUsize::new(0));
    let refused = view(
        "/refused",
        &ok_calls,
        CachedView::new(TTL)
            .response_filter(|res| res.status() != StatusCode::OK)
            .into_decorator(),
    );
    let app = app_with(vec![missing, cookie, refused]);
    let client = TestClient::new(&app);
    for _ in 0..3 {
        let res = client.get("/gone").send().await;
        assert_eq!(res.status(), 404);
        assert_eq!(res.text(), "gone 1", "a 404 the filter accepts is stored");
    }
    client.get("/cookie404").send().await;
    client.get("/cookie404").send().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a cookie response is never stored, whatever the filter says"
    );
    client.get("/refused").send().await;
    client.get("/refused").send().await;
    assert_eq!(
        ok_calls.load(Ordering::SeqCst),
        2,
        "a 200 the filter refuses is not stored"
    );
}

/// `delete_cached` removes one page (all its variants), `purge_cached` a whole route, and
/// nothing else; on memory and on a real Redis.
async fn purge_suite(app: &App, calls: &Arc<AtomicUsize>, others: &Arc<AtomicUsize>) {
    let client = TestClient::new(app);
    let cache = flagon_cache::Caches::of(app.handle())
        .unwrap()
        .default()
        .clone();
    let get = |path: &'static str, user: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut r = client.get(path);
            if let Some(u) = user {
                r = r.header("x-user", u);
            }
            r.send().await.text()
        }
    };
    for (p, u) in [
        ("/posts/1", None),
        ("/posts/1", Some("alice")),
        ("/posts/1?page=2", None),
        ("/posts/2", None),
    ] {
        get(p, u).await;
    }
    get("/about", None).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let first_post_2 = get("/posts/2", None).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4, "all stored");

    // Only `?page=2` of post 1.
    let n = cache
        .delete_cached(app.handle(), "blog.post", [("id", "1"), ("page", "2")])
        .await
        .unwrap();
    assert_eq!(n, 1);
    get("/posts/1?page=2", None).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "that page is rendered again"
    );
    get("/posts/1", Some("alice")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 5, "the other pages stay");

    // Every variant of post 1.
    let n = cache
        .delete_cached(app.handle(), "blog.post", [("id", 1)])
        .await
        .unwrap();
    assert_eq!(n, 3, "anonymous, alice's, and ?page=2");
    get("/posts/1", None).await;
    get("/posts/1", Some("alice")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 7);
    assert_eq!(get("/posts/2", None).await, first_post_2, "post 2 stays");
    assert_eq!(calls.load(Ordering::SeqCst), 7);

    // The whole route, and only it.
    let n = cache.purge_cached(app.handle(), "blog.post").await.unwrap();
    assert_eq!(n, 3, "post 1 twice and post 2");
    get("/posts/2", None).await;
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    get("/about", None).await;
    assert_eq!(
        others.load(Ordering::SeqCst),
        1,
        "another route's entry stays"
    );

    let err = cache
        .purge_cached(app.handle(), "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(
        cache
            .delete_cached(app.handle(), "blog.post", ())
            .await
            .is_err()
    );
}

fn purge_app(settings: flagon::config::Config) -> (App, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let per_user = CachedView::new(TTL).vary_on_identity().into_decorator();
    let app = App::builder()
        .settings(settings)
        .register(Cache::new())
        .configure(|app| {
            app.before_request(|mut req| async move {
                if let Some(u) = req.headers().get("x-user").and_then(|v| v.to_str().ok()) {
                    let u = u.to_owned();
                    let _ = Identity::set(&mut req, Identity::new(u));
                }
                proceed(req)
            });
            Ok(())
        })
        .blueprint(
            flagon::Blueprint::new("blog")
                .url_prefix("/posts")
                .route(view("/{id}", &calls, per_user).name("post")),
        )
        .route(view("/about", &others, cached(TTL)))
        .build()
        .unwrap();
    (app, calls, others)
}

#[tokio::test]
async fn delete_cached_and_purge_on_memory() {
    let (app, calls, others) = purge_app(testing_config());
    purge_suite(&app, &calls, &others).await;
}

#[tokio::test]
async fn delete_cached_and_purge_on_redis() {
    if !common::redis_up("delete_cached_and_purge_on_redis") {
        return;
    }
    let prefix = common::unique_prefix("view_purge");
    // A generous command timeout: purging SCANs the shared server's whole keyspace, which
    // other tests fill; the outage test covers timeouts.
    let (app, calls, others) = purge_app(flagon::testing::testing_config_toml(&format!(
        "{}command_timeout = \"5s\"\n",
        common::redis_toml(&prefix, "")
    )));
    purge_suite(&app, &calls, &others).await;
    let cache = flagon_cache::Caches::of(app.handle())
        .unwrap()
        .default()
        .clone();
    cache.clear().await.unwrap();
}

#[tokio::test]
async fn hits_on_redis_keep_status_headers_and_body() {
    if !common::redis_up("hits_on_redis_keep_status_headers_and_body") {
        return;
    }
    let prefix = common::unique_prefix("view_redis");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = App::builder()
        .settings(flagon::testing::testing_config_toml(&format!(
            "{}command_timeout = \"5s\"\n",
            common::redis_toml(&prefix, "")
        )))
        .register(Cache::new())
        .route(
            Route::get("/r", move || {
                c.fetch_add(1, Ordering::SeqCst);
                std::future::ready(
                    ([("content-type", "text/x-test"), ("x-a", "1")], "body").into_response(),
                )
            })
            .name("r")
            .with(cached(TTL)),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    for _ in 0..3 {
        let res = client.get("/r").send().await;
        assert_eq!(res.header("content-type"), Some("text/x-test"));
        assert_eq!(res.header("x-a"), Some("1"));
        assert_eq!(res.text(), "body");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A corrupt stored response is a miss, deleted, and the handler answers.
    let mut raw = common::raw_redis();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}view:*"))
        .query(&mut raw)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let cache = flagon_cache::Caches::of(app.handle())
        .unwrap()
        .default()
        .clone();
    let shown = cache
        .inspect(keys[0].strip_prefix(&prefix).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        shown["response"]["status"], 200,
        "`cache get` shows {shown}"
    );
    assert_eq!(shown["response"]["body_bytes"], 4);
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(b"\xC3\x00".as_slice())
        .query(&mut raw)
        .unwrap();
    assert_eq!(client.get("/r").send().await.text(), "body");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(client.get("/r").send().await.text(), "body");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "stored again");
    cache.clear().await.unwrap();
}
