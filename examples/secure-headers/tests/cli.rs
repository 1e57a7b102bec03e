//! `secure-headers show` prints every route's effective policy.

use flagon::testing::{run_cli, testing_config_toml};
use flagon::{App, Blueprint, Route};
use flagon_secure_headers::{PolicyOverride, SecureHeaders};

async fn index() -> &'static str {
    "home"
}

async fn widget() -> &'static str {
    "widget"
}

async fn items() -> &'static str {
    "[]"
}

#[tokio::test]
async fn show_prints_the_effective_policy_per_route() {
    let toml = r#"
[secure_headers]
force_https = true

[secure_headers.endpoints.widget]
frame_options = ""
content_security_policy = "default-src 'self'; frame-ancestors *"
csp_nonce_in = []

[secure_headers.blueprints.api]
content_security_policy = "default-src 'none'"
csp_nonce_in = []
"#;
    let ext = SecureHeaders::new().endpoint(
        "healthz",
        PolicyOverride {
            force_https: Some(false),
            ..PolicyOverride::default()
        },
    );
    let app = App::builder()
        .settings(testing_config_toml(toml))
        .register(ext)
        .route(Route::get("/", index))
        .route(Route::get("/widget", widget))
        .blueprint(
            Blueprint::new("api")
                .url_prefix("/api")
                .route(Route::get("/items", items)),
        )
        .build()
        .unwrap();
    let out = run_cli(&app, ["secure-headers", "show"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[tokio::test]
async fn the_group_needs_a_subcommand() {
    let app = flagon::testing::app_with(SecureHeaders::new());
    let out = run_cli(&app, ["secure-headers"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("show"), "{}", out.stderr);
}

#[test]
fn an_override_for_no_route_fails_before_any_command_runs() {
    let err = App::builder()
        .settings(testing_config_toml(
            "[secure_headers.blueprints.admn]\nframe_options = \"DENY\"\n",
        ))
        .register(SecureHeaders::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`secure_headers.blueprints.admn`")
            && err.contains("no route has this blueprint"),
        "{err}"
    );
}
