//! Route decorators: order against before hooks and each other, short-circuiting, changing
//! the response, blueprint decorators, the build error for a missing provider, and `routes`.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse;
use flagon::testing::{TestClient, run_cli, testing_config};
use flagon::{App, Blueprint, Decorator, Extension, Next, Route, Setup, SetupError};
use http::StatusCode;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, s: &str) {
    log.lock().unwrap().push(s.to_owned());
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// A decorator that logs around the rest of the route.
fn logging(provider: &'static str, name: &'static str, log: &Log) -> Decorator {
    let log = log.clone();
    Decorator::new(provider, format!("log {name}"), move |req, next: Next| {
        let log = log.clone();
        async move {
            push(&log, &format!("enter {name}"));
            let res = next.run(req).await;
            push(&log, &format!("leave {name} {}", res.status().as_u16()));
            res
        }
    })
}

/// Answers 401 unless the request has an `authorization` header; marks responses it let
/// through.
fn login_required() -> Decorator {
    Decorator::new("login", "login required", |req, next: Next| async move {
        if !req.headers().contains_key("authorization") {
            return (StatusCode::UNAUTHORIZED, "log in first").into_response();
        }
        let mut res = next.run(req).await;
        res.headers_mut()
            .insert("x-checked-by", "login".parse().unwrap());
        res
    })
}

/// Stands for the extension that provides `login_required`.
struct Login;

impl Extension for Login {
    fn name(&self) -> &'static str {
        "login"
    }

    fn init_app(&self, _app: &mut Setup<'_>) -> Result<(), SetupError> {
        Ok(())
    }
}

fn handler_logging(
    log: &Log,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = &'static str> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    let log = log.clone();
    move || {
        let log = log.clone();
        Box::pin(async move {
            push(&log, "handler");
            "secret"
        })
    }
}

#[tokio::test]
async fn decorators_run_after_before_hooks_outermost_first_around_the_handler() {
    let log: Log = Arc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let bp = Blueprint::new("admin")
        .url_prefix("/admin")
        .with(logging("app", "blueprint", &log))
        .before_request(move |req| {
            let l = l2.clone();
            async move {
                push(&l, "before blueprint");
                ControlFlow::Continue(req)
            }
        })
        .after_request(move |_, res| {
            let l = l3.clone();
            async move {
                push(&l, &format!("after blueprint {}", res.status().as_u16()));
                res
            }
        })
        .route(
            Route::get("/", handler_logging(&log))
                .name("index")
                .with(logging("app", "first", &log))
                .with(logging("app", "second", &log)),
        );
    let app = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.before_request(move |req| {
                let l = l1.clone();
                async move {
                    push(&l, "before app");
                    ControlFlow::Continue(req)
                }
            });
            Ok(())
        })
        .blueprint(bp)
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/admin/").send().await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        take(&log),
        [
            "before app",
            "before blueprint",
            "enter blueprint",
            "enter first",
            "enter second",
            "handler",
            "leave second 200",
            "leave first 200",
            "leave blueprint 200",
            "after blueprint 200",
        ]
    );
}

#[tokio::test]
async fn a_decorator_answers_without_the_handler_or_changes_its_response() {
    let log: Log = Arc::default();
    let app = App::builder()
        .settings(testing_config())
        .register(Login)
        .route(
            Route::get("/admin", handler_logging(&log))
                .name("admin")
                .with(login_required()),
        )
        .route(Route::get("/open", || async { "open" }).name("open"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);

    let res = client.get("/admin").send().await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text(), "log in first");
    assert!(take(&log).is_empty(), "the handler must not run");

    let res = client
        .get("/admin")
        .header("authorization", "x")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text(), "secret");
    assert_eq!(res.header("x-checked-by"), Some("login"));
    assert_eq!(take(&log), ["handler"]);

    // A route without decorators is untouched.
    let res = client.get("/open").send().await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.header("x-checked-by").is_none());
}

#[tokio::test]
async fn blueprint_decorators_apply_to_child_blueprints_and_only_to_them() {
    let app = App::builder()
        .settings(testing_config())
        .register(Login)
        .blueprint(
            Blueprint::new("admin")
                .url_prefix("/admin")
                .with(login_required())
                .blueprint(
                    Blueprint::new("users")
                        .url_prefix("/users")
                        .route(Route::get("/", || async { "users" }).name("list")),
                ),
        )
        .route(Route::get("/", || async { "home" }).name("home"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(
        client.get("/admin/users/").send().await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(client.get("/").send().await.status(), StatusCode::OK);
    let info = app.routes().get("admin.users.list").unwrap();
    assert_eq!(info.decorators.len(), 1);
    assert_eq!(info.decorators[0].provider(), "login");
    assert_eq!(info.decorators[0].description(), "login required");
    assert!(app.routes().get("home").unwrap().decorators.is_empty());
}

#[tokio::test]
async fn a_panicking_decorator_is_a_500_for_that_request() {
    let app = App::builder()
        .settings(testing_config())
        .route(
            Route::get("/boom", || async { "never" })
                .name("boom")
                .with(Decorator::new(
                    "app",
                    "explodes",
                    |_req, _next: Next| async move { panic!("decorator bug") },
                )),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/boom").send().await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn a_decorator_whose_extension_is_missing_fails_the_build_naming_route_and_extension() {
    let err = App::builder()
        .settings(testing_config())
        .route(
            Route::get("/admin", || async { "admin" })
                .name("admin")
                .with(login_required()),
        )
        .blueprint(
            Blueprint::new("api")
                .url_prefix("/api")
                .with(Decorator::new(
                    "limiter",
                    "limit 5/minute",
                    |req, next: Next| next.run(req),
                ))
                .route(Route::post("/items", || async { "" }).name("create")),
        )
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("route GET /admin (endpoint `admin`)")
            && text.contains("decorator `login required` is provided by extension `login`, which is not registered"),
        "{text}"
    );
    assert!(
        text.contains("route POST /api/items (endpoint `api.create`)")
            && text.contains("extension `limiter`"),
        "{text}"
    );
    assert_eq!(err.errors().len(), 2, "{text}");
}

#[tokio::test]
async fn routes_shows_each_routes_decorators() {
    let app = App::builder()
        .settings(testing_config())
        .register(Login)
        .route(
            Route::get("/admin", || async { "admin" })
                .name("admin")
                .with(login_required())
                .with(Decorator::new("app", "cached 60s", |req, next: Next| {
                    next.run(req)
                })),
        )
        .build()
        .unwrap();
    let out = run_cli(&app, ["routes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let admin = out.stdout.lines().find(|l| l.starts_with("admin")).unwrap();
    assert!(
        admin.contains("the app") && admin.ends_with("login required, cached 60s"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.lines().next().unwrap().ends_with("Decorators"));
    let healthz = out
        .stdout
        .lines()
        .find(|l| l.starts_with("healthz"))
        .unwrap();
    assert!(
        healthz.trim_end().ends_with("flagon core"),
        "{}",
        out.stdout
    );
}
