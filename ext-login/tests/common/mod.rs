//! Shared by the integration tests: an app with a login form, users in memory, and helpers.
#![allow(dead_code)]

use std::sync::Arc;

use flagon::axum::Form;
use flagon::axum::response::{IntoResponse, Response};
use flagon::csrf::CsrfToken;
use flagon::http::StatusCode;
use flagon::session::ManualClock;
use flagon::testing::{TestClient, TestResponse, testing_config_toml};
use flagon::{App, Blueprint, Ext, HttpError, Identity, Route};
use flagon_login::testing::{TestUser, Users};
use flagon_login::{
    Auth, CurrentUser, Login, LoginOptions, MaybeUser, Permissions, fresh_login_required,
    login_required, permission_required, token_required,
};
use serde::Deserialize;

/// Test Argon2 parameters: the minimum the config accepts, so tests stay quick.
pub const FAST_ARGON2: &str = "argon2_memory_kib = 8192\nargon2_iterations = 1\n";

#[derive(Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub remember: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
}

async fn token(t: CsrfToken) -> String {
    t.to_string()
}

async fn login(
    auth: Auth<TestUser>,
    users: Ext<Users>,
    Form(form): Form<LoginForm>,
) -> Result<Response, HttpError> {
    let user = users.by_name(&form.username);
    let verified = auth
        .authenticate(
            &form.username,
            &form.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    match user {
        Some(user) if verified.ok => {
            let opts = LoginOptions::remember(form.remember.is_some());
            if !auth.login_user(user, opts).await? {
                return Ok((StatusCode::OK, "account disabled").into_response());
            }
            Ok(auth.redirect_next(form.next.as_deref()).into_response())
        }
        _ => Ok((StatusCode::OK, "Invalid username or password.").into_response()),
    }
}

async fn logout(auth: Auth<TestUser>) -> Result<&'static str, HttpError> {
    auth.logout_user().await?;
    Ok("bye")
}

async fn private(user: CurrentUser<TestUser>) -> String {
    format!("hello {}", user.name)
}

async fn whoami(user: MaybeUser<TestUser>, id: Option<Identity>) -> String {
    format!(
        "{} {}",
        user.user()
            .map(|u| u.name.clone())
            .unwrap_or_else(|| "anonymous".into()),
        id.map(|i| i.to_string()).unwrap_or_else(|| "-".into())
    )
}

#[derive(Deserialize)]
struct NewPassword {
    password: String,
}

/// Changes the logged-in user's password, logs this session in again with the new
/// credentials and revokes every token.
async fn change_password(
    auth: Auth<TestUser>,
    user: CurrentUser<TestUser>,
    users: Ext<Users>,
    Form(form): Form<NewPassword>,
) -> Result<&'static str, HttpError> {
    let hash = auth.passwords().hash(&form.password).await?;
    users.update(&user.id, |u| u.password_hash = hash.clone());
    auth.revoke_tokens(&user.id).await?;
    let updated = users.get(&user.id).unwrap();
    auth.login_user(updated, LoginOptions::default()).await?;
    Ok("changed")
}

#[derive(Deserialize)]
struct Reauth {
    password: String,
}

async fn reauth(
    auth: Auth<TestUser>,
    user: CurrentUser<TestUser>,
    Form(form): Form<Reauth>,
) -> Result<&'static str, HttpError> {
    let ok = auth
        .passwords()
        .verify(&form.password, Some(&user.password_hash))
        .await?
        .ok;
    if ok {
        auth.confirm_login()?;
        Ok("confirmed")
    } else {
        Ok("wrong")
    }
}

async fn fresh() -> &'static str {
    "fresh page"
}

async fn admin() -> &'static str {
    "admin page"
}

async fn api_items(user: CurrentUser<TestUser>) -> String {
    format!("created by {}", user.name)
}

async fn flashes(session: flagon::session::Session) -> String {
    session
        .flashed_messages()
        .into_iter()
        .map(|m| format!("{}: {}", m.category, m.message))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn page(tpl: flagon::templates::Templates) -> Result<String, HttpError> {
    tpl.render_string("page.html", flagon::templates::context! {})
        .await
}

async fn bp_page() -> &'static str {
    "members only"
}

pub struct TestApp {
    pub app: App,
    pub users: Users,
    pub clock: ManualClock,
    pub alice: TestUser,
    pub bob: TestUser,
}

/// The password of every test user.
pub const PASSWORD: &str = "wonderland";

/// An app with `[login]` settings `login_toml` (plus fast Argon2) and extra config `extra`.
pub async fn app_with(login_toml: &str, extra: &str) -> TestApp {
    app_built(login_toml, extra, |b| b).await
}

pub async fn app_built(
    login_toml: &str,
    extra: &str,
    more: impl FnOnce(flagon::AppBuilder) -> flagon::AppBuilder,
) -> TestApp {
    let users = Users::default();
    let clock = ManualClock::new();
    let fast = if login_toml.contains("argon2_") {
        ""
    } else {
        FAST_ARGON2
    };
    let toml = format!(
        "[login]\nlogin_view = \"login_page\"\nrefresh_view = \"reauth_page\"\n{fast}{login_toml}\n{extra}"
    );
    let members = Blueprint::new("members")
        .url_prefix("/members")
        .with(login_required())
        .route(Route::get("/page", bp_page).name("page"));
    let builder = App::builder()
        .settings(testing_config_toml(&toml))
        .register(Login::new(users.loader()).clock(clock.clone()))
        .configure({
            let users = users.clone();
            move |app| {
                app.provide(users);
                app.template_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/templates"));
                Ok(())
            }
        })
        .route(Route::get("/token", token))
        .route(
            Route::get("/login", token)
                .name("login_page")
                .and_post(login),
        )
        .route(Route::post("/logout", logout))
        .route(Route::get("/private", private).with(login_required()))
        .route(Route::get("/whoami", whoami))
        .route(Route::get("/flashes", flashes))
        .route(Route::get("/page", page))
        .route(
            Route::get("/whoami-identified", whoami)
                .name("whoami_identified")
                .with(flagon_login::identify()),
        )
        .route(Route::post("/password", change_password))
        .route(
            Route::get("/reauth", token)
                .name("reauth_page")
                .and_post(reauth),
        )
        .route(Route::get("/fresh", fresh).with(fresh_login_required()))
        .route(Route::get("/admin", admin).with(permission_required(Permissions::ADMIN)))
        .route(Route::post("/api/items", api_items).with(token_required()))
        .blueprint(members);
    let app = more(builder).build().unwrap_or_else(|e| panic!("{e}"));
    let pw = Login::<TestUser>::passwords(app.handle()).unwrap();
    let hash = pw.hash(PASSWORD).await.unwrap();
    let alice = users.add(TestUser::new("1", "alice", &hash));
    let bob = users.add(TestUser::new("2", "bob", &hash).with_permissions(Permissions::all()));
    TestApp {
        app,
        users,
        clock,
        alice,
        bob,
    }
}

/// A fresh CSRF token for `client`.
pub async fn csrf(client: &TestClient) -> String {
    client.get("/token").send().await.text()
}

/// Posts the login form.
pub async fn post_login(
    client: &TestClient,
    user: &str,
    password: &str,
    remember: bool,
    next: Option<&str>,
) -> TestResponse {
    let token = csrf(client).await;
    let mut form = vec![
        ("username", user.to_owned()),
        ("password", password.to_owned()),
        ("csrf_token", token),
    ];
    if remember {
        form.push(("remember", "on".into()));
    }
    if let Some(n) = next {
        form.push(("next", n.into()));
    }
    client.post("/login").form(&form).send().await
}

/// Logs in and checks it worked.
pub async fn log_in(client: &TestClient, user: &str, remember: bool) {
    let res = post_login(client, user, PASSWORD, remember, None).await;
    assert_eq!(res.status(), 303, "login failed: {}", res.text());
}

/// Posts the logout form.
pub async fn log_out(client: &TestClient) -> TestResponse {
    let token = csrf(client).await;
    client
        .post("/logout")
        .form(&[("csrf_token", token)])
        .send()
        .await
}

/// The remember cookie's name in tests (Secure, `__Host-`).
pub const REMEMBER: &str = "__Host-remember_token";
/// The session cookie's name.
pub const SESSION: &str = "__Host-session";

pub fn shared<T>(v: T) -> Arc<T> {
    Arc::new(v)
}
