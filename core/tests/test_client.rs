//! The test client itself: cookies and the redirect rules a browser follows.

use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Route};
use http::StatusCode;
use http::header::LOCATION;

async fn method(m: http::Method) -> String {
    m.to_string()
}

fn app() -> App {
    App::builder()
        .settings(testing_config_toml("[csrf]\nenabled = false\n"))
        .route(
            Route::get("/target", method)
                .and_post(method)
                .name("target"),
        )
        .route(
            Route::post("/see-other", || async {
                (StatusCode::SEE_OTHER, [(LOCATION, "/target")])
            })
            .name("see_other"),
        )
        .route(
            Route::post("/temporary", || async {
                (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, "/target")])
            })
            .name("temporary"),
        )
        .route(
            Route::post("/found", || async {
                (StatusCode::FOUND, [(LOCATION, "/target")])
            })
            .name("found"),
        )
        .route(
            Route::get("/loop", || async {
                (StatusCode::FOUND, [(LOCATION, "/loop")])
            })
            .name("looping"),
        )
        .route(
            Route::get("/set", || async {
                [(http::header::SET_COOKIE, "flavour=mint; Path=/")]
            })
            .name("set"),
        )
        .route(
            Route::get("/unset", || async {
                [(http::header::SET_COOKIE, "flavour=; Max-Age=0; Path=/")]
            })
            .name("unset"),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn redirects_are_followed_as_a_browser_would() {
    let client = TestClient::new(&app()).follow_redirects(true);
    assert_eq!(
        client.post("/see-other").send().await.text(),
        "GET",
        "303 becomes a GET"
    );
    assert_eq!(
        client.post("/found").send().await.text(),
        "GET",
        "302 after POST becomes a GET"
    );
    assert_eq!(
        client.post("/temporary").send().await.text(),
        "POST",
        "307 keeps the method"
    );
    let looping = client.get("/loop").send().await;
    assert_eq!(looping.status(), 302, "the client gives up after 10 hops");
}

#[tokio::test]
async fn redirects_are_not_followed_unless_asked() {
    let res = TestClient::new(&app()).post("/see-other").send().await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/target"));
}

#[tokio::test]
async fn the_cookie_jar_keeps_and_forgets_cookies() {
    let client = TestClient::new(&app());
    client.get("/set").send().await;
    assert_eq!(client.cookie("flavour").as_deref(), Some("mint"));
    client.get("/unset").send().await;
    assert_eq!(client.cookie("flavour"), None);
}

/// An extension whose state is only usable once its startup hook ran (a pool opened at
/// startup), counting its startup and shutdown runs.
struct Pooled;

#[derive(Default)]
struct Pool {
    open: std::sync::atomic::AtomicBool,
    startups: std::sync::atomic::AtomicUsize,
    shutdowns: std::sync::atomic::AtomicUsize,
}

impl flagon::Extension for Pooled {
    fn name(&self) -> &'static str {
        "pooled"
    }
    fn init_app(&self, app: &mut flagon::Setup<'_>) -> Result<(), flagon::SetupError> {
        use std::sync::atomic::Ordering::SeqCst;
        app.provide(Pool::default());
        app.on_startup(|app: flagon::AppHandle| async move {
            let pool = app.state::<Pool>().expect("provided");
            pool.startups.fetch_add(1, SeqCst);
            pool.open.store(true, SeqCst);
            Ok(())
        });
        app.on_shutdown(|app: flagon::AppHandle| async move {
            let pool = app.state::<Pool>().expect("provided");
            pool.shutdowns.fetch_add(1, SeqCst);
            pool.open.store(false, SeqCst);
        });
        app.route(
            Route::get("/pool", |pool: flagon::Ext<Pool>| async move {
                if pool.open.load(std::sync::atomic::Ordering::SeqCst) {
                    "open"
                } else {
                    "closed"
                }
            })
            .name("pool"),
        );
        Ok(())
    }
}

#[tokio::test]
async fn the_first_request_runs_the_startup_hooks_once_per_app() {
    use std::sync::atomic::Ordering::SeqCst;
    let app = flagon::testing::app_with(Pooled);
    let pool = app.state::<Pool>().unwrap();
    assert_eq!(
        pool.startups.load(SeqCst),
        0,
        "building does not start the app"
    );
    let client = TestClient::new(&app);
    assert_eq!(client.get("/pool").send().await.text(), "open");
    assert_eq!(client.get("/pool").send().await.text(), "open");
    // Another client of the same app does not start it again.
    assert_eq!(
        TestClient::new(&app).get("/pool").send().await.text(),
        "open"
    );
    client.start().await.unwrap();
    assert_eq!(pool.startups.load(SeqCst), 1);
}

#[tokio::test]
async fn the_first_request_also_runs_the_before_serving_hooks() {
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = ran.clone();
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(move |s| {
            let seen = seen.clone();
            s.before_serving(move |_| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Ok(()) }
            });
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    client.get("/").send().await;
    client.get("/").send().await;
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_runs_the_shutdown_hooks_once_after_startup() {
    use std::sync::atomic::Ordering::SeqCst;
    let app = flagon::testing::app_with(Pooled);
    let pool = app.state::<Pool>().unwrap();
    let client = TestClient::new(&app);
    client.shutdown().await;
    assert_eq!(
        pool.shutdowns.load(SeqCst),
        0,
        "never started, nothing to stop"
    );
    client.start().await.unwrap();
    client.shutdown().await;
    TestClient::new(&app).shutdown().await;
    assert_eq!(pool.shutdowns.load(SeqCst), 1);
    assert_eq!(client.get("/pool").send().await.text(), "closed");
}

fn failing_startup() -> App {
    App::builder()
        .settings(flagon::testing::testing_config())
        .configure(|s| {
            s.on_startup(|_| async { Err("migrations are pending".into()) });
            Ok(())
        })
        .route(Route::get("/", || async { "hi" }).name("index"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_failing_startup_hook_is_returned_by_start() {
    let err = TestClient::new(&failing_startup())
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "startup hook of the app failed: migrations are pending"
    );
}

#[tokio::test]
#[should_panic(expected = "startup hook of the app failed: migrations are pending")]
async fn a_failing_startup_hook_fails_the_first_request() {
    TestClient::new(&failing_startup()).get("/").send().await;
}

async fn echo_cookies(headers: http::HeaderMap) -> String {
    headers
        .get(http::header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn cookie_app(development_plain_http: bool) -> App {
    let config = if development_plain_http {
        flagon::config::Config::builder()
            .profile(flagon::config::Profile::Development)
            .toml(
                "[csrf]\nenabled = false\n[session]\ninsecure_plain_http = true\n\
                 [templates]\nauto_reload = false\n",
            )
            .build()
            .unwrap()
    } else {
        testing_config_toml("[csrf]\nenabled = false\n")
    };
    App::builder()
        .settings(config)
        .route(
            Route::get("/admin/set", || async {
                [(http::header::SET_COOKIE, "scoped=1; Path=/admin")]
            })
            .name("scoped"),
        )
        .route(Route::get("/admin/echo", echo_cookies).name("admin_echo"))
        .route(Route::get("/echo", echo_cookies).name("echo"))
        .route(
            Route::get("/count", |s: flagon::session::Session| async move {
                let n: u32 = s.get("n").unwrap_or(None).unwrap_or(0) + 1;
                s.insert("n", n).unwrap();
                n.to_string()
            })
            .name("count"),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_cookie_is_sent_only_under_its_path() {
    let client = TestClient::new(&cookie_app(false));
    client.get("/admin/set").send().await;
    assert_eq!(client.get("/admin/echo").send().await.text(), "scoped=1");
    assert_eq!(client.get("/echo").send().await.text(), "");
}

#[tokio::test]
async fn secure_cookies_do_not_travel_over_plain_http() {
    // Session cookies are `Secure` by default: a plain-http browser does not keep them.
    let plain = TestClient::new(&cookie_app(false)).plain_http();
    assert_eq!(plain.get("/count").send().await.text(), "1");
    assert_eq!(
        plain.get("/count").send().await.text(),
        "1",
        "no session kept"
    );
    let https = TestClient::new(&cookie_app(false));
    https.get("/count").send().await;
    assert_eq!(https.get("/count").send().await.text(), "2");
    // The development switch drops `Secure`, and the plain-http client keeps the session.
    let dev = cookie_app(true);
    let plain = TestClient::new(&dev).plain_http();
    plain.get("/count").send().await;
    assert_eq!(plain.get("/count").send().await.text(), "2");
}

#[tokio::test]
async fn patch_and_head_shortcuts_send_their_methods() {
    let app = App::builder()
        .settings(testing_config_toml("[csrf]\nenabled = false\n"))
        .route(Route::patch("/m", method).and_get(method).name("m"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    assert_eq!(client.patch("/m").send().await.text(), "PATCH");
    let head = client.head("/m").send().await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.text(), "", "a HEAD response has no body");
}
