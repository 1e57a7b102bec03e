//! `url_for` builds paths from endpoint names.

use flagon::testing::testing_config;
use flagon::{App, AppHandle, Blueprint, Route, UrlError};

async fn show_user() -> &'static str {
    ""
}

async fn static_file() -> &'static str {
    ""
}

async fn link(app: AppHandle) -> String {
    app.url_for("show_user", [("id", "42")]).unwrap()
}

fn app() -> App {
    App::builder()
        .settings(testing_config())
        .route(Route::get("/users/{id}", show_user))
        .route(Route::get("/static/{*path}", static_file))
        .route(Route::get("/link", link))
        .blueprint(
            Blueprint::new("admin")
                .url_prefix("/admin")
                .route(Route::get("/users/{id}", show_user)),
        )
        .build()
        .unwrap()
}

#[test]
fn fills_path_parameters_and_puts_the_rest_in_the_query() {
    let app = app();
    assert_eq!(app.url_for("show_user", [("id", "7")]).unwrap(), "/users/7");
    assert_eq!(
        app.url_for("show_user", [("id", "a b/c"), ("tab", "x&y")])
            .unwrap(),
        "/users/a%20b%2Fc?tab=x%26y"
    );
    assert_eq!(
        app.url_for("static_file", [("path", "css/site main.css")])
            .unwrap(),
        "/static/css/site%20main.css"
    );
    assert_eq!(
        app.url_for("admin.show_user", [("id", 3)]).unwrap(),
        "/admin/users/3"
    );
}

#[test]
fn unknown_endpoint_is_a_clear_error() {
    let err = app().url_for("show_usr", [("id", "7")]).unwrap_err();
    assert!(matches!(err, UrlError::UnknownEndpoint { .. }));
    assert_eq!(err.to_string(), "url_for: no endpoint named `show_usr`");
    let err = app().url_for("users.show_user", ()).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `show_user`?"),
        "{err}"
    );
}

#[test]
fn missing_parameter_is_a_clear_error() {
    let err = app().url_for("show_user", ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "url_for(`show_user`): missing path parameter `id` for /users/{id}"
    );
}

#[tokio::test]
async fn handlers_reach_url_for_through_the_app_handle() {
    let app = app();
    let res = flagon::testing::TestClient::new(&app)
        .get("/link")
        .send()
        .await;
    assert_eq!(res.text(), "/users/42");
}
