//! Every header with its defaults and with overrides; the nonce in handlers, `g` and the
//! header.

use std::net::SocketAddr;

use flagon::testing::{TestClient, TestResponse, testing_config_toml};
use flagon::{App, Blueprint, G, Route};
use flagon_secure_headers::{CspNonce, PolicyOverride, SecureHeaders};

const PROXY: &str = "10.0.0.1:4000";

async fn page(nonce: CspNonce, g: G) -> String {
    // What a template's `csp_nonce()` returns, next to what the handler extracted.
    format!("{nonce}|{}", CspNonce::template_value(&g))
}

async fn api() -> &'static str {
    "{}"
}

async fn widget() -> &'static str {
    "widget"
}

async fn maybe_nonce(nonce: Option<CspNonce>) -> String {
    nonce
        .map(|n| n.to_string())
        .unwrap_or_else(|| "none".into())
}

async fn own_frame_options() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("x-frame-options", "DENY")], "mine")
}

fn app(ext: SecureHeaders, toml: &str) -> App {
    let toml = format!("[server]\ntrusted_proxies = [\"10.0.0.1\"]\n{toml}");
    let api_bp = Blueprint::new("api")
        .url_prefix("/api")
        .route(Route::get("/items", api))
        .blueprint(
            Blueprint::new("v2")
                .url_prefix("/v2")
                .route(Route::get("/items", maybe_nonce).name("items")),
        );
    App::builder()
        .settings(testing_config_toml(&toml))
        .register(ext)
        .route(Route::get("/", page))
        .route(Route::get("/widget", widget))
        .route(Route::get("/own", own_frame_options))
        .blueprint(api_bp)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn get_https(app: &App, path: &str) -> TestResponse {
    TestClient::new(app)
        .get(path)
        .peer(PROXY.parse::<SocketAddr>().unwrap())
        .header("x-forwarded-proto", "https")
        .send()
        .await
}

fn nonce_of(csp: &str) -> &str {
    let start = csp.find("'nonce-").expect("a nonce in the policy") + "'nonce-".len();
    &csp[start..start + csp[start..].find('\'').unwrap()]
}

#[tokio::test]
async fn defaults_set_every_header() {
    let app = app(SecureHeaders::new(), "");
    let res = get_https(&app, "/").await;
    assert_eq!(res.status(), 200);
    let csp = res.header("content-security-policy").unwrap();
    let n = nonce_of(csp);
    assert_eq!(
        csp,
        format!(
            "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; \
             script-src 'self' 'nonce-{n}'; style-src 'self' 'nonce-{n}'"
        )
    );
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(res.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(
        res.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(res.header("permissions-policy"), Some("browsing-topics=()"));
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert!(res.header("content-security-policy-report-only").is_none());
}

#[tokio::test]
async fn hsts_is_never_sent_over_plain_http() {
    let app = app(SecureHeaders::new(), "");
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.status(), 200);
    assert!(res.header("strict-transport-security").is_none());
    assert!(res.header("content-security-policy").is_some());
}

#[tokio::test]
async fn the_nonce_reaches_handler_template_value_and_header_and_changes_per_request() {
    let app = app(SecureHeaders::new(), "");
    let client = TestClient::new(&app);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let res = client.get("/").send().await;
        let csp = res.header("content-security-policy").unwrap().to_owned();
        let header_nonce = nonce_of(&csp).to_owned();
        let body = res.text();
        let (extracted, template) = body.split_once('|').unwrap();
        assert_eq!(extracted, header_nonce);
        assert_eq!(template, header_nonce);
        assert_eq!(header_nonce.len(), 24);
        assert!(!seen.contains(&header_nonce), "nonces repeat");
        seen.push(header_nonce);
    }
}

#[tokio::test]
async fn errors_and_404s_get_the_headers_too() {
    let app = app(SecureHeaders::new(), "");
    let res = TestClient::new(&app).get("/missing").send().await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert!(res.header("content-security-policy").is_some());
}

#[tokio::test]
async fn app_wide_settings_change_or_drop_headers() {
    let app = app(
        SecureHeaders::new(),
        r#"
[secure_headers]
content_security_policy = "default-src 'none'; img-src 'self'"
content_security_policy_report_only = true
csp_nonce_in = ["script-src"]
frame_options = "deny"
hsts_max_age = 60
hsts_include_subdomains = false
hsts_preload = true
referrer_policy = "no-referrer"
permissions_policy = ""
content_type_nosniff = false
"#,
    );
    let res = get_https(&app, "/").await;
    let csp = res.header("content-security-policy-report-only").unwrap();
    let n = nonce_of(csp);
    assert_eq!(
        csp,
        format!("default-src 'none'; img-src 'self'; script-src 'nonce-{n}'")
    );
    assert!(res.header("content-security-policy").is_none());
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=60; preload")
    );
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
    assert!(res.header("permissions-policy").is_none());
    assert!(res.header("x-content-type-options").is_none());
}

#[tokio::test]
async fn everything_can_be_turned_off() {
    let app = app(
        SecureHeaders::new(),
        r#"
[secure_headers]
content_security_policy = ""
frame_options = ""
strict_transport_security = false
referrer_policy = ""
permissions_policy = ""
content_type_nosniff = false
"#,
    );
    let res = get_https(&app, "/widget").await;
    for h in [
        "content-security-policy",
        "strict-transport-security",
        "x-frame-options",
        "referrer-policy",
        "permissions-policy",
        "x-content-type-options",
    ] {
        assert!(res.header(h).is_none(), "{h} was sent");
    }
    // No policy, no nonce: a handler asking for one gets a clear 500, `Option` gets None.
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.status(), 500);
    let res = TestClient::new(&app).get("/api/v2/items").send().await;
    assert_eq!(res.text(), "none");
}

#[tokio::test]
async fn endpoint_and_blueprint_overrides_from_config() {
    let app = app(
        SecureHeaders::new(),
        r#"
[secure_headers.endpoints.widget]
frame_options = ""
content_security_policy = "default-src 'self'; frame-ancestors *"
csp_nonce_in = []

[secure_headers.blueprints.api]
content_security_policy = "default-src 'none'"
csp_nonce_in = []
referrer_policy = "no-referrer"

[secure_headers.blueprints."api.v2"]
csp_nonce_in = ["script-src"]

[secure_headers.endpoints."api.v2.items"]
permissions_policy = "camera=()"
"#,
    );
    let widget = get_https(&app, "/widget").await;
    assert_eq!(
        widget.header("content-security-policy"),
        Some("default-src 'self'; frame-ancestors *")
    );
    assert!(widget.header("x-frame-options").is_none());
    assert_eq!(
        widget.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );

    let items = get_https(&app, "/api/items").await;
    assert_eq!(
        items.header("content-security-policy"),
        Some("default-src 'none'")
    );
    assert_eq!(items.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(items.header("x-frame-options"), Some("SAMEORIGIN"));

    // Nested: app, then `api`, then `api.v2`, then the endpoint.
    let v2 = get_https(&app, "/api/v2/items").await;
    let csp = v2.header("content-security-policy").unwrap();
    let n = nonce_of(csp);
    assert_eq!(csp, format!("default-src 'none'; script-src 'nonce-{n}'"));
    assert_eq!(v2.text(), n, "the handler saw the header's nonce");
    assert_eq!(v2.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(v2.header("permissions-policy"), Some("camera=()"));
    // HSTS and nosniff are app-wide.
    assert!(v2.header("strict-transport-security").is_some());
    assert_eq!(v2.header("x-content-type-options"), Some("nosniff"));

    // Routes without overrides keep the default.
    let home = get_https(&app, "/").await;
    assert!(
        home.header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'self'; object-src 'none'")
    );
}

#[tokio::test]
async fn programmatic_overrides_win_over_the_file() {
    let ext = SecureHeaders::new().endpoint(
        "widget",
        PolicyOverride {
            frame_options: Some("DENY".into()),
            ..PolicyOverride::default()
        },
    );
    let app = app(
        ext,
        "[secure_headers.endpoints.widget]\nframe_options = \"\"\nreferrer_policy = \"same-origin\"\n",
    );
    let res = get_https(&app, "/widget").await;
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(res.header("referrer-policy"), Some("same-origin"));
}

#[tokio::test]
async fn a_header_the_handler_set_is_kept() {
    let app = app(SecureHeaders::new(), "");
    let res = get_https(&app, "/own").await;
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(res.text(), "mine");
}

#[test]
fn bad_values_are_build_errors_naming_the_key() {
    let build = |toml: &str| {
        App::builder()
            .settings(testing_config_toml(toml))
            .register(SecureHeaders::new())
            .build()
            .unwrap_err()
            .to_string()
    };
    let err = build("[secure_headers]\nframe_options = \"ALLOW-FROM x\"\n");
    assert!(
        err.contains("config key `secure_headers.frame_options` (flagon.toml line 2)"),
        "{err}"
    );
    let err = build("[secure_headers.endpoints.widget]\ncsp_nonce_in = [\"Script Src\"]\n");
    assert!(
        err.contains("config key `secure_headers.endpoints.widget.csp_nonce_in`"),
        "{err}"
    );
    let err = build("[secure_headers]\nframe_option = \"DENY\"\n");
    assert!(
        err.contains("`secure_headers.frame_option`") && err.contains("unknown key"),
        "{err}"
    );
}

#[test]
fn overrides_for_missing_routes_fail_the_build_naming_each_key() {
    let ext = SecureHeaders::new().blueprint("ap", PolicyOverride::default());
    let toml =
        "[server]\ntrusted_proxies = []\n[secure_headers.endpoints.widgte]\nframe_options = \"\"\n";
    let err = App::builder()
        .settings(testing_config_toml(toml))
        .register(ext)
        .route(Route::get("/widget", widget))
        .blueprint(Blueprint::new("api").route(Route::get("/items", api)))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config key `secure_headers.endpoints.widgte` (flagon.toml line 3)")
            && err.contains("no route has this endpoint name"),
        "{err}"
    );
    assert!(
        err.contains("config key `secure_headers.blueprints.ap`")
            && err.contains("no route has this blueprint"),
        "{err}"
    );
    // The routes that exist are fine.
    let ok = App::builder()
        .settings(testing_config_toml(
            "[secure_headers.endpoints.widget]\nframe_options = \"\"\n",
        ))
        .register(SecureHeaders::new().blueprint("api", PolicyOverride::default()))
        .route(Route::get("/widget", widget))
        .blueprint(Blueprint::new("api").route(Route::get("/items", api)))
        .build();
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
}

#[test]
fn the_extension_reports_what_it_registered() {
    let app = flagon::testing::app_with(SecureHeaders::new());
    assert_eq!(
        app.registrations("secure-headers").unwrap(),
        [
            "config section [secure_headers]",
            "command `secure-headers`",
            "tower layers: 1",
            "finish steps: 1",
            "template global `csp_nonce`",
        ]
    );
}
