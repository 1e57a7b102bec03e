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
