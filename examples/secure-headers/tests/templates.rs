//! `csp_nonce()` in templates renders the request's nonce, the one in its CSP header.

use std::path::Path;

use flagon::axum::response::Html;
use flagon::templates::Templates;
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, HttpError, Route, Setup, SetupError};
use flagon_secure_headers::SecureHeaders;

async fn page(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("page.html", ()).await
}

fn app(toml: &str) -> App {
    App::builder()
        .settings(testing_config_toml(toml))
        .register(SecureHeaders::new())
        .route(Route::get("/", page))
        .configure(|app: &mut Setup<'_>| -> Result<(), SetupError> {
            app.template_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates"));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn header_nonce(csp: &str) -> String {
    let start = csp.find("'nonce-").expect("a nonce") + "'nonce-".len();
    csp[start..start + csp[start..].find('\'').unwrap()].to_owned()
}

#[tokio::test]
async fn the_template_function_renders_the_headers_nonce_fresh_per_request() {
    let app = app("");
    let client = TestClient::new(&app);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let res = client.get("/").send().await;
        assert_eq!(res.status(), 200, "{}", res.text());
        let nonce = header_nonce(res.header("content-security-policy").unwrap());
        assert_eq!(
            res.text().trim(),
            format!("<script nonce=\"{nonce}\">start()</script>")
        );
        assert!(!seen.contains(&nonce));
        seen.push(nonce);
    }
}

#[tokio::test]
async fn without_a_nonce_the_function_renders_nothing() {
    let app = app("[secure_headers]\ncsp_nonce_in = []\n");
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.text().trim(), "<script nonce=\"\">start()</script>");
}

#[test]
fn another_csp_nonce_global_is_a_build_error_naming_both() {
    let err = App::builder()
        .settings(testing_config_toml(""))
        .register(SecureHeaders::new())
        .configure(|app: &mut Setup<'_>| -> Result<(), SetupError> {
            app.template_function("csp_nonce", || "mine".to_owned());
            Ok(())
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("template global `csp_nonce` is registered twice: by extension `secure-headers` and by the app"),
        "{err}"
    );
}
