//! flagon::extract: bad input through axum's extractors becomes an HttpError, so error
//! handlers and Accept negotiation apply.

use flagon::extract::{Form, Json, Path, Query};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Route};
use http::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
struct Item {
    name: String,
}

#[derive(Deserialize)]
struct Page {
    page: u32,
}

async fn create(Path(list): Path<u32>, Json(item): Json<Item>) -> String {
    format!("{} in {list}", item.name)
}

async fn search(Query(p): Query<Page>) -> String {
    format!("page {}", p.page)
}

fn app() -> App {
    App::builder()
        .settings(testing_config_toml("[csrf]\nenabled = false\n"))
        .route(Route::post("/lists/{list}", create))
        .route(Route::get("/search", search))
        .configure(|s| {
            s.error_handler(StatusCode::UNPROCESSABLE_ENTITY, |ctx| async move {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("handled: {}", ctx.error.message()),
                )
            });
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn good_input_reaches_the_handler() {
    let res = TestClient::new(&app())
        .post("/lists/3")
        .json(&serde_json::json!({"name": "milk"}))
        .send()
        .await;
    assert_eq!(res.text(), "milk in 3");
}

#[tokio::test]
async fn malformed_json_is_a_json_error_page_for_a_json_client() {
    let res = TestClient::new(&app())
        .post("/lists/3")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body("{not json")
        .send()
        .await;
    assert_eq!(res.status(), 400);
    let v: serde_json::Value = res.json();
    assert_eq!(v["error"]["status"], 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("JSON"),
        "{v}"
    );
}

#[tokio::test]
async fn a_rejection_reaches_the_apps_error_handler() {
    let res = TestClient::new(&app())
        .post("/lists/3")
        .json(&serde_json::json!({"title": "no name"}))
        .send()
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().starts_with("handled: "), "{}", res.text());
    assert!(res.text().contains("name"), "{}", res.text());
}

#[tokio::test]
async fn bad_path_and_query_are_400s_with_a_message() {
    let client = TestClient::new(&app());
    let res = client
        .post("/lists/abc")
        .header("accept", "application/json")
        .json(&serde_json::json!({"name": "milk"}))
        .send()
        .await;
    assert_eq!(res.status(), 400);
    let res = client
        .get("/search?page=minus-one")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 400);
    let v: serde_json::Value = res.json();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("page"),
        "{v}"
    );
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

/// Posts a 64-byte form to `/note`, as one buffer with `Content-Length` or as a chunked stream.
async fn post_big_form(app: &App, chunked: bool) -> (StatusCode, String) {
    let form = format!("text={}", "x".repeat(59));
    let body = if chunked {
        let chunks = form
            .into_bytes()
            .chunks(8)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>();
        flagon::axum::body::Body::from_stream(futures_util::stream::iter(chunks))
    } else {
        flagon::axum::body::Body::from(form)
    };
    let req = http::Request::post("/note")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .unwrap();
    let res = tower::ServiceExt::oneshot(app.service(), req)
        .await
        .unwrap();
    let status = res.status();
    let body = flagon::axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn form_bodies_over_the_limit_get_413_with_or_without_csrf() {
    for csrf in [false, true] {
        let app = App::builder()
            .settings(testing_config_toml(&format!(
                "[server]\nbody_limit = 16\n[csrf]\nenabled = {csrf}\n"
            )))
            .route(Route::post("/note", |Form(n): Form<Note>| async move { n.text }).name("note"))
            .build()
            .unwrap();
        for chunked in [false, true] {
            let (status, body) = post_big_form(&app, chunked).await;
            assert_eq!(status, 413, "csrf {csrf}, chunked {chunked}: {body}");
        }
    }
}

#[tokio::test]
async fn the_axum_rejection_is_kept_as_the_cause() {
    use flagon::axum::extract::rejection::{JsonRejection, PathRejection};
    let app = App::builder()
        .settings(testing_config_toml("[csrf]\nenabled = false\n"))
        .route(Route::post("/lists/{list}", create))
        .configure(|s| {
            for status in [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY] {
                s.error_handler(status, |ctx| async move {
                    let kind = if ctx.error.find_cause::<JsonRejection>().is_some() {
                        "json"
                    } else if ctx.error.find_cause::<PathRejection>().is_some() {
                        "path"
                    } else {
                        "other"
                    };
                    (ctx.status(), kind)
                });
            }
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let bad_json = client
        .post("/lists/3")
        .json(&serde_json::json!({"title": "no name"}))
        .send()
        .await;
    assert_eq!(
        (bad_json.status().as_u16(), bad_json.text().as_str()),
        (422, "json")
    );
    let bad_path = client
        .post("/lists/abc")
        .json(&serde_json::json!({"name": "milk"}))
        .send()
        .await;
    assert_eq!(
        (bad_path.status().as_u16(), bad_path.text().as_str()),
        (400, "path")
    );
}
