//! The request-timeout 503 passes through the after-steps (after hooks, error handlers and
//! tower layers) like every other response.

use std::time::{Duration, Instant};

use flagon::axum::response::Response;
use flagon::http::{HeaderValue, StatusCode};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Route};

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

async fn quick() -> &'static str {
    "quick"
}

fn app(with_hooks: bool) -> App {
    App::builder()
        .settings(testing_config_toml(
            "[server]\nrequest_timeout = \"200ms\"\n",
        ))
        .route(Route::get("/slow", slow))
        .route(Route::get("/quick", quick))
        .configure(move |s| {
            s.layer(tower::util::MapResponseLayer::new(|mut res: Response| {
                res.headers_mut()
                    .insert("x-from-layer", HeaderValue::from_static("yes"));
                res
            }));
            if with_hooks {
                s.after_request(|_, mut res| async move {
                    res.headers_mut()
                        .insert("x-from-after", HeaderValue::from_static("yes"));
                    res
                });
                s.error_handler(StatusCode::SERVICE_UNAVAILABLE, |_| async {
                    (StatusCode::SERVICE_UNAVAILABLE, "busy, try again")
                });
            }
            Ok(())
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_timeout_503_gets_the_layers_headers() {
    let app = app(false);
    let started = Instant::now();
    let res = TestClient::new(&app).get("/slow").send().await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.header("x-from-layer"), Some("yes"));
    assert!(
        res.text().contains("The request took too long."),
        "{}",
        res.text()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let ok = TestClient::new(&app).get("/quick").send().await;
    assert_eq!(ok.header("x-from-layer"), Some("yes"));
}

#[tokio::test]
async fn the_timeout_503_passes_after_hooks_and_error_handlers() {
    let app = app(true);
    let res = TestClient::new(&app).get("/slow").send().await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.header("x-from-after"), Some("yes"));
    assert_eq!(res.header("x-from-layer"), Some("yes"));
    assert_eq!(res.text(), "busy, try again");
}

#[tokio::test]
async fn a_request_whose_after_steps_hang_too_is_still_answered() {
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nrequest_timeout = \"200ms\"\n",
        ))
        .route(Route::get("/slow", slow))
        .configure(|s| {
            s.after_request(|_, res| async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                res
            });
            Ok(())
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let res = TestClient::new(&app).get("/slow").send().await;
    assert_eq!(res.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
