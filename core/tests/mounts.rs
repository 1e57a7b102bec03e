//! Mounted routers and services: reachable under their prefix, attributed, listed by
//! `routes`, outside the hooks, and clash-checked.

use std::convert::Infallible;
use std::ops::ControlFlow;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flagon::testing::{TestClient, run_cli, testing_config};
use flagon::{App, Extension, Route, Setup, SetupError};
use http::StatusCode;

/// A third-party admin: an ordinary axum router.
fn admin() -> Router {
    Router::new()
        .route("/", get(|| async { "admin home" }))
        .route("/users/{id}", get(|axum::extract::Path(id): axum::extract::Path<u32>| async move {
            format!("user {id}")
        }))
}

type Exported = std::future::Ready<Result<Response, Infallible>>;

/// A health exporter as a bare tower service.
fn exporter() -> tower::util::ServiceFn<fn(Request) -> Exported> {
    fn export(req: Request) -> Exported {
        let body = format!("metrics at {}", req.uri().path());
        std::future::ready(Ok(body.into_response()))
    }
    tower::service_fn(export as fn(Request) -> Exported)
}

struct Metrics;

impl Extension for Metrics {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.mount("/metrics", "prometheus exporter", exporter());
        Ok(())
    }
}

fn app() -> App {
    App::builder()
        .settings(testing_config())
        .register(Metrics)
        .configure(|s| {
            s.mount("/admin", "third-party admin", admin());
            s.before_request(|req| async move {
                match req.headers().contains_key("x-block") {
                    true => flagon::respond(StatusCode::FORBIDDEN),
                    false => ControlFlow::Continue(req),
                }
            });
            Ok(())
        })
        .route(Route::get("/", || async { "home" }).name("home"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn mounted_routers_and_services_are_reachable_under_their_prefix() {
    let app = app();
    let client = TestClient::new(&app);
    assert_eq!(client.get("/admin/").send().await.text(), "admin home");
    assert_eq!(client.get("/admin/users/7").send().await.text(), "user 7");
    // The prefix is stripped before the service sees the path.
    assert_eq!(
        client.get("/metrics/scrape").send().await.text(),
        "metrics at /scrape"
    );
    assert_eq!(client.get("/").send().await.text(), "home");
    let res = client.get("/admin/users/7").send().await;
    assert!(
        res.header("x-request-id").is_some(),
        "core's layer still applies"
    );
    // Flagon's hooks do not run for a mount (as Flask's DispatcherMiddleware bypasses Flask).
    let res = client.get("/admin/").header("x-block", "1").send().await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = client.get("/").header("x-block", "1").send().await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn mounts_are_attributed_and_listed_by_routes() {
    let app = app();
    let mounts: Vec<(String, String, &str)> = app
        .routes()
        .mounts()
        .map(|m| (m.prefix.clone(), m.description.clone(), m.origin.owner))
        .collect();
    assert_eq!(
        mounts,
        [
            ("/metrics".into(), "prometheus exporter".into(), "metrics"),
            ("/admin".into(), "third-party admin".into(), "app"),
        ]
    );
    assert!(
        app.registrations("metrics")
            .unwrap()
            .contains(&"mount /metrics (prometheus exporter)".to_owned())
    );
    let out = run_cli(&app, ["routes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("prometheus exporter"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.contains("(mount)")
            && line.contains("/metrics/*")
            && line.contains("extension `metrics`"),
        "{line}"
    );
}

#[test]
fn a_mount_over_a_route_or_another_mount_fails_the_build_naming_both() {
    let err = App::builder()
        .settings(testing_config())
        .register(Metrics)
        .configure(|s| {
            s.mount("/metrics/extra", "second exporter", exporter());
            Ok(())
        })
        .route(Route::get("/metrics/x", || async { "" }).name("x"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/metrics (mounted: prometheus exporter) (by extension `metrics`) conflicts with /metrics/x (by the app)"),
        "{err}"
    );
    assert!(
        err.contains("/metrics/extra (mounted: second exporter) (by the app) conflicts with /metrics (mounted: prometheus exporter) (by extension `metrics`)"),
        "{err}"
    );
}

#[test]
fn a_bad_mount_prefix_is_a_build_error_not_a_panic() {
    for (prefix, reason) in [
        ("/", "a mount needs a prefix other than `/`"),
        ("static", "must start with `/`"),
        ("/static/", "must not end with `/`"),
        ("/files/{id}", "must not have parameters"),
    ] {
        let err = App::builder()
            .settings(testing_config())
            .configure(move |s| {
                s.mount(prefix, "files", admin());
                Ok(())
            })
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "mount at {prefix} registered by the app is invalid"
            )) && err.contains(reason),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_mount_beside_catch_all_and_parameter_routes_takes_its_own_prefix() {
    for route in ["/{*rest}", "/{page}"] {
        let app = App::builder()
            .settings(testing_config())
            .configure(|s| {
                s.mount("/static", "files", admin());
                Ok(())
            })
            .route(Route::get(route, || async { "page" }).name("page"))
            .build()
            .unwrap_or_else(|e| panic!("{route}: {e}"));
        let client = TestClient::new(&app);
        assert_eq!(
            client.get("/static/").send().await.text(),
            "admin home",
            "{route}"
        );
        assert_eq!(client.get("/other").send().await.text(), "page", "{route}");
    }
}
