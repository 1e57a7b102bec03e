//! Hook order and short-circuiting with Flask's semantics, error handlers and panics.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use flagon::testing::{TestClient, testing_config};
use flagon::{App, AppBuilder, Blueprint, HttpError, Route};
use http::StatusCode;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, s: &str) {
    log.lock().unwrap().push(s.to_owned());
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// Adds a before, after and teardown hook named `name` to a blueprint.
fn bp_hooks(bp: Blueprint, log: &Log, name: &'static str) -> Blueprint {
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    bp.before_request(move |req| {
        let l = l1.clone();
        async move {
            push(&l, &format!("before {name}"));
            ControlFlow::Continue(req)
        }
    })
    .after_request(move |_, res| {
        let l = l2.clone();
        async move {
            push(&l, &format!("after {name}"));
            res
        }
    })
    .teardown_request(move |_, err| {
        let l = l3.clone();
        async move {
            push(
                &l,
                &format!(
                    "teardown {name} err={}",
                    err.map(|e| e.status().as_u16()).unwrap_or(0)
                ),
            );
            Ok(())
        }
    })
}

fn app_hooks(b: AppBuilder, log: &Log, name: &'static str) -> AppBuilder {
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    b.configure(move |s| {
        s.before_request(move |req| {
            let l = l1.clone();
            async move {
                push(&l, &format!("before {name}"));
                ControlFlow::Continue(req)
            }
        });
        s.after_request(move |_, res| {
            let l = l2.clone();
            async move {
                push(&l, &format!("after {name}"));
                res
            }
        });
        s.teardown_request(move |_, err| {
            let l = l3.clone();
            async move {
                push(
                    &l,
                    &format!(
                        "teardown {name} err={}",
                        err.map(|e| e.status().as_u16()).unwrap_or(0)
                    ),
                );
                Ok(())
            }
        });
        Ok(())
    })
}

fn build_nested(log: &Log) -> App {
    let view_log = log.clone();
    let inner = bp_hooks(Blueprint::new("inner").url_prefix("/inner"), log, "inner").route(
        Route::get("/x", move || {
            let l = view_log.clone();
            async move {
                push(&l, "view");
                "ok"
            }
        })
        .name("x"),
    );
    let outer =
        bp_hooks(Blueprint::new("outer").url_prefix("/outer"), log, "outer").blueprint(inner);
    let b = App::builder().settings(testing_config());
    let b = app_hooks(b, log, "app1");
    let b = app_hooks(b, log, "app2");
    b.blueprint(outer)
        .route(Route::get("/plain", || async { "plain" }).name("plain"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn hooks_run_in_flask_order_for_nested_blueprints() {
    let log: Log = Arc::default();
    let app = build_nested(&log);
    let res = TestClient::new(&app).get("/outer/inner/x").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        take(&log),
        [
            "before app1",
            "before app2",
            "before outer",
            "before inner",
            "view",
            "after inner",
            "after outer",
            "after app2",
            "after app1",
            "teardown inner err=0",
            "teardown outer err=0",
            "teardown app2 err=0",
            "teardown app1 err=0",
        ]
    );
}

#[tokio::test]
async fn blueprint_hooks_run_only_for_their_routes() {
    let log: Log = Arc::default();
    let app = build_nested(&log);
    TestClient::new(&app).get("/plain").send().await;
    assert_eq!(
        take(&log),
        [
            "before app1",
            "before app2",
            "after app2",
            "after app1",
            "teardown app2 err=0",
            "teardown app1 err=0"
        ]
    );
}

#[tokio::test]
async fn before_hooks_run_for_404s() {
    let log: Log = Arc::default();
    let app = build_nested(&log);
    let res = TestClient::new(&app).get("/nowhere").send().await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        take(&log),
        [
            "before app1",
            "before app2",
            "after app2",
            "after app1",
            "teardown app2 err=404",
            "teardown app1 err=404"
        ]
    );
}

#[tokio::test]
async fn a_before_hook_response_skips_later_before_hooks_and_the_view() {
    let log: Log = Arc::default();
    let view_log = log.clone();
    let l = log.clone();
    let b = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.before_request(move |_req| {
                let l = l.clone();
                async move {
                    push(&l, "before stop");
                    ControlFlow::Break((StatusCode::IM_A_TEAPOT, "stopped").into_response())
                }
            });
            Ok(())
        });
    let b = app_hooks(b, &log, "later");
    let app = b
        .route(
            Route::get("/", move || {
                let l = view_log.clone();
                async move {
                    push(&l, "view");
                    "view"
                }
            })
            .name("index"),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(res.text(), "stopped");
    assert_eq!(
        take(&log),
        ["before stop", "after later", "teardown later err=0"]
    );
}

#[tokio::test]
async fn after_hooks_can_replace_the_response() {
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.after_request(|_, _res| async { (StatusCode::ACCEPTED, "replaced").into_response() });
            Ok(())
        })
        .route(Route::get("/", || async { "original" }).name("index"))
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.text(), "replaced");
}

async fn fails() -> Result<&'static str, HttpError> {
    Err(HttpError::internal("database exploded"))
}

async fn panics() -> &'static str {
    panic!("handler bug")
}

fn teardown_app(log: &Log) -> App {
    let b = App::builder().settings(testing_config());
    let l = log.clone();
    let b = b.configure(move |s| {
        s.teardown_request(move |_, _| {
            let l = l.clone();
            async move {
                push(&l, "first teardown fails");
                Err("teardown failure".into())
            }
        });
        Ok(())
    });
    app_hooks(b, log, "app")
        .route(Route::get("/fails", fails))
        .route(Route::get("/panics", panics))
        .route(Route::get("/ok", || async { "ok" }).name("ok"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn teardown_runs_after_a_handler_error_with_the_error() {
    let log: Log = Arc::default();
    let app = teardown_app(&log);
    let res = TestClient::new(&app).get("/fails").send().await;
    assert_eq!(res.status(), 500);
    assert!(
        !res.text().contains("database exploded"),
        "causes are not shown to clients"
    );
    let got = take(&log);
    assert!(got.contains(&"teardown app err=500".to_owned()), "{got:?}");
    assert!(
        got.contains(&"first teardown fails".to_owned()),
        "every teardown runs: {got:?}"
    );
}

#[tokio::test]
async fn teardown_runs_after_a_panic_and_the_next_request_is_fine() {
    let log: Log = Arc::default();
    let app = teardown_app(&log);
    let client = TestClient::new(&app);
    let res = client.get("/panics").send().await;
    assert_eq!(res.status(), 500);
    let got = take(&log);
    assert!(got.contains(&"teardown app err=500".to_owned()), "{got:?}");
    assert!(
        got.contains(&"after app".to_owned()),
        "after hooks see the 500: {got:?}"
    );
    let res = client.get("/ok").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "ok");
}

#[tokio::test]
async fn a_panic_without_hooks_is_a_500_for_that_request_only() {
    let app = App::builder()
        .settings(testing_config())
        .route(Route::get("/panics", panics))
        .route(Route::get("/ok", || async { "ok" }).name("ok"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let (a, b) = tokio::join!(client.get("/panics").send(), client.get("/ok").send());
    assert_eq!(a.status(), 500);
    assert_eq!(b.status(), 200);
    assert_eq!(client.get("/ok").send().await.text(), "ok");
}

fn error_app() -> App {
    let api = Blueprint::new("api")
        .url_prefix("/api")
        .route(
            Route::get("/missing", || async {
                HttpError::not_found("no such thing")
            })
            .name("missing"),
        )
        .error_handler(StatusCode::NOT_FOUND, |_| async {
            (StatusCode::NOT_FOUND, "blueprint 404")
        });
    App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.error_handler(StatusCode::NOT_FOUND, |ctx| async move {
                (
                    StatusCode::NOT_FOUND,
                    format!("app 404 for {}", ctx.request.path()),
                )
            });
            Ok(())
        })
        .blueprint(api)
        .route(
            Route::get("/teapot", || async {
                HttpError::abort(StatusCode::IM_A_TEAPOT)
            })
            .name("teapot"),
        )
        .route(
            Route::get("/raw", || async {
                HttpError::new(StatusCode::CONFLICT, "a <b>clash</b>")
            })
            .name("raw"),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn blueprint_error_handler_wins_for_its_routes() {
    let app = error_app();
    let res = TestClient::new(&app).get("/api/missing").send().await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.text(), "blueprint 404");
}

#[tokio::test]
async fn routing_404_goes_to_the_app_handler_even_under_a_blueprint_prefix() {
    let app = error_app();
    let res = TestClient::new(&app).get("/api/nope").send().await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.text(), "app 404 for /api/nope");
}

#[tokio::test]
async fn default_error_pages_follow_accept() {
    let app = error_app();
    let client = TestClient::new(&app);
    let html = client
        .get("/raw")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(html.status(), 409);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.text().contains("a &lt;b&gt;clash&lt;/b&gt;"),
        "{}",
        html.text()
    );
    let json = client
        .get("/raw")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(json.status(), 409);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let v: serde_json::Value = json.json();
    assert_eq!(v["error"]["status"], 409);
    assert_eq!(v["error"]["message"], "a <b>clash</b>");
}

#[tokio::test]
async fn method_not_allowed_is_a_405_with_allow() {
    let app = App::builder()
        .settings(testing_config())
        .route(Route::get("/only-get", || async { "x" }).name("only_get"))
        .build()
        .unwrap();
    let res = TestClient::new(&app)
        .post("/only-get")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 405);
    assert!(res.header("allow").unwrap().contains("GET"));
    let v: serde_json::Value = res.json();
    assert_eq!(v["error"]["status"], 405);
}

#[tokio::test]
async fn g_is_shared_between_hooks_and_the_handler() {
    #[derive(Clone)]
    struct User(&'static str);
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.before_request(|mut req| async move {
                flagon::RequestExt::g(&mut req).insert(User("ada"));
                ControlFlow::Continue(req)
            });
            s.after_request(|ctx, mut res: Response| async move {
                let who = ctx.g().get::<User>().map(|u| u.0).unwrap_or("nobody");
                res.headers_mut().insert("x-user", who.parse().unwrap());
                res
            });
            Ok(())
        })
        .route(
            Route::get(
                "/",
                |g: flagon::G| async move { g.get::<User>().unwrap().0 },
            )
            .name("index"),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.text(), "ada");
    assert_eq!(res.header("x-user"), Some("ada"));
}

#[tokio::test]
async fn an_error_handler_answering_with_an_error_gets_a_rendered_page() {
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.error_handler(StatusCode::NOT_FOUND, |_| async {
                HttpError::new(StatusCode::GONE, "moved away for good")
            });
            Ok(())
        })
        .route(Route::get("/", || async { "x" }).name("index"))
        .build()
        .unwrap();
    let res = TestClient::new(&app)
        .get("/old")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 410);
    let v: serde_json::Value = res.json();
    assert_eq!(v["error"]["message"], "moved away for good");
}

#[tokio::test]
async fn a_panicking_after_hook_goes_to_the_500_handler() {
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.after_request(|_, _res| async { panic!("after hook bug") });
            s.error_handler(StatusCode::INTERNAL_SERVER_ERROR, |_| async {
                (StatusCode::INTERNAL_SERVER_ERROR, "custom 500 page")
            });
            Ok(())
        })
        .route(Route::get("/", || async { "x" }).name("index"))
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.text(), "custom 500 page");
}

#[tokio::test]
async fn teardown_runs_for_a_request_cut_off_by_the_timeout() {
    let log: Log = Arc::default();
    let b = App::builder().settings(flagon::testing::testing_config_toml(
        "[server]\nrequest_timeout = \"100ms\"\n",
    ));
    let app = app_hooks(b, &log, "app")
        .route(
            Route::get("/slow", || async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "late"
            })
            .name("slow"),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/slow").send().await;
    assert_eq!(res.status(), 503);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let got = take(&log);
    assert!(got.contains(&"teardown app err=503".to_owned()), "{got:?}");
}

#[tokio::test]
async fn options_is_answered_with_allow_as_in_flask() {
    let app = App::builder()
        .settings(testing_config())
        // A GET-only route without hooks: the router's direct path (no CSRF guard either).
        .route(Route::get("/bare", || async { "x" }).name("bare"))
        // Takes POST, so the CSRF guard runs on it: the per-method dispatcher.
        .route(
            Route::get("/plain", || async { "x" })
                .name("plain")
                .and_post(|| async { "y" }),
        )
        .blueprint(
            Blueprint::new("bp")
                .url_prefix("/bp")
                .route(Route::get("/x", || async { "x" }).name("x"))
                .before_request(|req| async move { ControlFlow::Continue(req) }),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    for path in ["/bare", "/plain", "/bp/x"] {
        let res = client.request(http::Method::OPTIONS, path).send().await;
        assert_eq!(res.status(), 200, "{path}");
        let allow = res.header("allow").unwrap_or_default().to_owned();
        assert!(allow.contains("GET"), "{path}: {allow}");
        assert!(allow.contains("HEAD"), "{path}: {allow}");
        assert_eq!(allow.contains("POST"), path == "/plain", "{path}: {allow}");
    }
    assert_eq!(
        client
            .request(http::Method::PUT, "/bare")
            .send()
            .await
            .status(),
        405
    );
    assert_eq!(
        client
            .request(http::Method::PUT, "/plain")
            .send()
            .await
            .status(),
        405
    );
}

#[tokio::test]
async fn a_missing_trailing_slash_redirects_as_in_flask() {
    let app = App::builder()
        .settings(testing_config())
        .blueprint(
            Blueprint::new("admin")
                .url_prefix("/admin")
                .route(Route::get("/", || async { "admin" }).name("index")),
        )
        .route(Route::get("/about", || async { "about" }).name("about"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let res = client.get("/admin?tab=2").send().await;
    assert_eq!(res.status(), 308);
    assert_eq!(res.location(), Some("/admin/?tab=2"));
    assert_eq!(
        client.get("/about/").send().await.status(),
        404,
        "no redirect the other way"
    );
    assert_eq!(client.get("/nowhere").send().await.status(), 404);
    let followed = TestClient::new(&app)
        .follow_redirects(true)
        .get("/admin")
        .send()
        .await;
    assert_eq!(followed.text(), "admin");
}

#[tokio::test]
async fn an_errors_headers_stay_on_the_page_an_error_handler_renders() {
    use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
    use http::{HeaderMap, HeaderValue};
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.error_handler(StatusCode::TOO_MANY_REQUESTS, |_| async {
                (StatusCode::TOO_MANY_REQUESTS, "slow down, friend")
            });
            // This handler sets its own `WWW-Authenticate`: the handler's value wins.
            s.error_handler(StatusCode::UNAUTHORIZED, |_| async {
                let mut h = HeaderMap::new();
                h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
                (StatusCode::UNAUTHORIZED, h, "who are you?")
            });
            Ok(())
        })
        .route(
            Route::get("/busy", || async {
                HttpError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests.")
                    .with_header(RETRY_AFTER, HeaderValue::from_static("7"))
            })
            .name("busy"),
        )
        .route(
            Route::get("/headers", || async {
                // Headers put on the error response itself, as an extension answering on its own does.
                let mut h = HeaderMap::new();
                h.insert("ratelimit", HeaderValue::from_static("\"default\";r=0;t=7"));
                (
                    h,
                    HttpError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests."),
                )
            })
            .name("headers"),
        )
        .route(
            Route::get("/auth", || async {
                HttpError::new(StatusCode::UNAUTHORIZED, "Log in first.")
                    .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
                    .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
            })
            .name("auth"),
        )
        .route(
            Route::get("/plain", || async {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "Down.")
                    .with_header(RETRY_AFTER, HeaderValue::from_static("120"))
            })
            .name("plain"),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);

    let res = client.get("/busy").send().await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.header("retry-after"), Some("7"));
    assert_eq!(res.text(), "slow down, friend");
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );

    let res = client.get("/headers").send().await;
    assert_eq!(res.header("ratelimit"), Some("\"default\";r=0;t=7"));
    assert_eq!(res.text(), "slow down, friend");

    let res = client.get("/auth").send().await;
    assert_eq!(res.header("www-authenticate"), Some("Basic"));
    assert_eq!(res.header("retry-after"), Some("1"));

    // Without a handler, the default page keeps them too.
    let res = client.get("/plain").send().await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.header("retry-after"), Some("120"));
    assert!(res.text().contains("Down."));
}
