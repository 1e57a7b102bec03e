//! The request-timeout 503 carries the security headers, like every other page.

use std::time::Duration;

use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Route};
use flagon_secure_headers::SecureHeaders;

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

#[tokio::test]
async fn the_timeout_page_has_the_security_headers() {
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nrequest_timeout = \"200ms\"\n",
        ))
        .register(SecureHeaders::new())
        .route(Route::get("/slow", slow))
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/slow").send().await;
    assert_eq!(res.status(), 503);
    assert!(res.header("content-security-policy").is_some());
    assert!(res.header("x-frame-options").is_some());
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
}
