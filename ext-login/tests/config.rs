//! Configuration and build errors name the key; messages are localized through core's
//! messages when a translator is registered.

mod common;

use std::sync::Arc;

use common::*;
use flagon::messages::{Catalogs, Message, Translator, Translators};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Locale, Route};
use flagon_login::testing::Users;
use flagon_login::{Login, login_required};

fn build_error(toml: &str) -> String {
    let users = Users::default();
    match App::builder()
        .settings(testing_config_toml(toml))
        .register(Login::new(users.loader()))
        .route(Route::get("/login", || async { "form" }).name("login"))
        .build()
    {
        Ok(_) => panic!("expected a build error for {toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_settings_fail_the_build_naming_the_key() {
    let cases = [
        ("[login]\nlogin_view = \"auth.login\"\n", "login.login_view"),
        ("[login]\nrefresh_view = \"nope\"\n", "login.refresh_view"),
        (
            "[login]\nremember_store = \"mongo\"\n",
            "login.remember_store",
        ),
        (
            "[login]\nsession_protection = \"paranoid\"\n",
            "session_protection",
        ),
        (
            "[login]\nremember_duration = \"0s\"\n",
            "login.remember_duration",
        ),
        (
            "[login]\npassword_max_bytes = 10\n",
            "login.password_max_bytes",
        ),
        (
            "[login]\nargon2_memory_kib = 19\n",
            "login.argon2_memory_kib",
        ),
        ("[login]\njwt_algorithm = \"none\"\n", "login.jwt_algorithm"),
        (
            "[login]\njwt_algorithm = \"RS256\"\n",
            "login.jwt_public_key_pem",
        ),
        ("[login]\njwt_secret = \"short\"\n", "login.jwt_secret"),
        (
            "[login]\nremember_cookie_name = \"a b\"\n",
            "login.remember_cookie_name",
        ),
        ("[login]\nlogn_view = \"login\"\n", "logn_view"),
        (
            "[login]\nblueprint_login_views = { admin = \"login\" }\n",
            "admin",
        ),
    ];
    for (toml, key) in cases {
        let err = build_error(toml);
        assert!(err.contains(key), "{toml}: {err}");
    }
}

#[test]
fn the_catalogs_are_contributed_in_english_and_chinese() {
    let users = Users::default();
    let app = App::builder()
        .settings(testing_config_toml(""))
        .register(Login::new(users.loader()))
        .build()
        .unwrap();
    let handle = app.handle();
    let catalogs = handle.registry::<Catalogs>();
    let locales: Vec<String> = catalogs
        .iter()
        .filter(|e| e.name() == "login.ftl")
        .map(|e| e.value().locale().to_string())
        .collect();
    assert_eq!(locales, ["en", "zh"]);
    assert!(
        catalogs
            .iter()
            .all(|e| e.value().source().contains("login-required"))
    );
}

/// A translator that knows login's Chinese catalog line.
struct Zh;
impl Translator for Zh {
    fn translate(&self, locale: Option<&Locale>, message: &Message) -> Option<String> {
        (locale.map(Locale::language) == Some("zh") && message.id() == "login-required")
            .then(|| "请登录后访问此页面。".to_owned())
    }
}

#[tokio::test]
async fn the_login_message_is_localized_when_the_app_translates() {
    let t = app_built("", "", |b| {
        b.configure(|s| {
            s.add_to::<Translators>(Translators::NAME, Arc::new(Zh));
            s.before_request(|mut req| async move {
                if req
                    .headers()
                    .get("accept-language")
                    .is_some_and(|v| v == "zh")
                {
                    let _ = Locale::set(&mut req, Locale::parse("zh").unwrap());
                }
                flagon::proceed(req)
            });
            Ok(())
        })
    })
    .await;
    let client = TestClient::new(&t.app);
    let res = client
        .get("/private")
        .header("accept-language", "zh")
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        client.get("/flashes").send().await.text(),
        "message: 请登录后访问此页面。"
    );
    client.get("/private").send().await;
    assert_eq!(
        client.get("/flashes").send().await.text(),
        "message: Please log in to access this page."
    );
}

#[tokio::test]
async fn a_custom_login_message_and_category_are_used_as_written() {
    let t = app_with(
        "login_message = \"Members only.\"\nlogin_message_category = \"info\"\n",
        "",
    )
    .await;
    let client = TestClient::new(&t.app);
    client.get("/private").send().await;
    assert_eq!(
        client.get("/flashes").send().await.text(),
        "info: Members only."
    );
}

#[tokio::test]
async fn blueprint_login_views_and_api_blueprints() {
    let t = app_built(
        "blueprint_login_views = { members = \"members.login\" }\napi_blueprints = [\"api\"]\n",
        "",
        |b| {
            b.blueprint(
                flagon::Blueprint::new("api")
                    .url_prefix("/v1")
                    .with(login_required())
                    .route(Route::get("/me", || async { "me" }).name("me")),
            )
            .route(Route::get("/members/login", || async { "members login" }).name("members.login"))
        },
    )
    .await;
    let client = TestClient::new(&t.app);
    let res = client.get("/members/page").send().await;
    assert_eq!(
        res.location(),
        Some("/members/login?next=%2Fmembers%2Fpage")
    );
    let res = client
        .get("/v1/me")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
}
