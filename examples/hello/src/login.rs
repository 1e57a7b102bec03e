//! The login page (flagon-login), against an in-memory user list: `GET/POST /login`,
//! `GET /private` (login required), `POST /logout`. Demo credentials: alice / wonderland.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Form;
use axum::response::{Html, IntoResponse, Redirect, Response};
use flagon::http::request::Parts;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, Ext, HttpError, Route, Setup, SetupError};
use flagon_login::{Auth, CurrentUser, Login, LoginOptions, User, login_required, safe_next};
use serde::Deserialize;

/// A demo account.
#[derive(Clone, Debug)]
pub struct Account {
    id: String,
    name: String,
    password_hash: String,
}

impl User for Account {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn auth_hash(&self) -> Vec<u8> {
        self.password_hash.as_bytes().to_vec()
    }
    fn display_name(&self) -> String {
        self.name.clone()
    }
}

/// The in-memory user list (hashed at startup).
#[derive(Clone, Default)]
pub struct Accounts(Arc<RwLock<HashMap<String, Account>>>);

impl Accounts {
    fn by_name(&self, name: &str) -> Option<Account> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.values().find(|a| a.name == name).cloned()
    }

    fn by_id(&self, id: &str) -> Option<Account> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// The demo users: name and password.
const DEMO_USERS: &[(&str, &str, &str)] = &[("1", "alice", "wonderland")];

/// The login extension with its loader over `accounts`.
pub fn extension(accounts: &Accounts) -> Login<Account> {
    let accounts = accounts.clone();
    Login::new(move |id: String| {
        let found = accounts.by_id(&id);
        async move { Ok::<_, std::convert::Infallible>(found) }
    })
    .login_view("login")
}

/// Registers the routes and hashes the demo users' passwords when the app starts.
pub fn install(app: &mut Setup<'_>, accounts: Accounts) -> Result<(), SetupError> {
    app.provide(accounts.clone());
    app.on_startup(move |handle: AppHandle| {
        let accounts = accounts.clone();
        async move {
            let passwords =
                Login::<Account>::passwords(&handle).ok_or("login is not registered")?;
            for (id, name, password) in DEMO_USERS {
                let password_hash = passwords.hash(password).await?;
                let account = Account {
                    id: (*id).into(),
                    name: (*name).into(),
                    password_hash,
                };
                accounts
                    .0
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((*id).into(), account);
            }
            Ok(())
        }
    });
    app.route(
        Route::get("/login", login_form)
            .name("login")
            .and_post(login_submit),
    );
    app.route(Route::post("/logout", logout));
    app.route(Route::get("/private", private).with(login_required()));
    Ok(())
}

/// `GET /login`: the form, carrying a safe `next` from the query string.
async fn login_form(parts: Parts, tpl: Templates) -> Result<Html<String>, HttpError> {
    let next = safe_next(&parts);
    tpl.render("login.html", context! { next, error => None::<String> })
        .await
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    remember: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: 303 to the safe `next` (or `/`), or the form again with an error.
async fn login_submit(
    auth: Auth<Account>,
    accounts: Ext<Accounts>,
    tpl: Templates,
    Form(form): Form<LoginForm>,
) -> Result<Response, HttpError> {
    let account = accounts.by_name(&form.username);
    // An unknown user is checked against a dummy hash: same answer, same time.
    let stored = account.as_ref().map(|a| a.password_hash.as_str());
    // Failures are counted per account: past 100 an hour it is a 429 (slowed, not locked).
    let verified = auth
        .authenticate(&form.username, &form.password, stored)
        .await?;
    if let (Some(account), true) = (account, verified.ok) {
        auth.login_user(account, LoginOptions::remember(form.remember.is_some()))
            .await?;
        return Ok(auth.redirect_next(form.next.as_deref()).into_response());
    }
    let next = form
        .next
        .as_deref()
        .and_then(|n| flagon_login::safe_next_value(n, None))
        .unwrap_or_else(|| "/".into());
    let error = "Invalid username or password.";
    Ok(tpl
        .render("login.html", context! { next, error })
        .await?
        .into_response())
}

/// `POST /logout` (CSRF-protected like every form post).
async fn logout(auth: Auth<Account>) -> Result<Redirect, HttpError> {
    auth.logout_user().await?;
    Ok(Redirect::to("/"))
}

/// `GET /private`: only for logged-in users.
async fn private(user: CurrentUser<Account>) -> String {
    format!("Hello, {}! This page is private.\n", user.name)
}

/// The login page's surface (kept stable: other tests rely on it).
#[cfg(test)]
mod tests {
    use flagon::testing::{TestClient, testing_config_toml};

    fn app() -> flagon::App {
        let config = testing_config_toml("[db]\nurl = \"sqlite::memory:\"\nauto_upgrade = true\n");
        crate::build(config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn field<'a>(html: &'a str, name: &str) -> Option<&'a str> {
        let at = html.find(&format!("name=\"{name}\""))?;
        let tag_start = html[..at].rfind('<')?;
        let tag = &html[tag_start..at + html[at..].find('>')?];
        let v = tag.find("value=\"")? + 7;
        Some(&tag[v..v + tag[v..].find('"')?])
    }

    async fn form(client: &TestClient, path: &str) -> String {
        let res = client.get(path).send().await;
        assert_eq!(res.status(), 200);
        res.text()
    }

    #[tokio::test]
    async fn the_login_page_logs_alice_in_and_out() {
        let app = app();
        let client = TestClient::new(&app);
        // Anonymous: /private redirects to the login page with `next`, or 401 JSON.
        let res = client.get("/private").send().await;
        assert_eq!(res.status(), 303);
        assert_eq!(res.location(), Some("/login?next=%2Fprivate"));
        let res = client
            .get("/private")
            .header("accept", "application/json")
            .send()
            .await;
        assert_eq!(res.status(), 401);
        assert_eq!(res.header("content-type"), Some("application/problem+json"));

        let html = form(&client, "/login?next=%2Fprivate").await;
        for name in ["username", "password", "remember", "next", "csrf_token"] {
            assert!(
                html.contains(&format!("name=\"{name}\"")),
                "field {name}: {html}"
            );
        }
        assert!(html.contains("type=\"checkbox\""));
        assert_eq!(field(&html, "next"), Some("/private"));
        let token = field(&html, "csrf_token").unwrap().to_owned();

        // A wrong password: the form again, 200, with an error.
        let res = client
            .post("/login")
            .form(&[
                ("username", "alice"),
                ("password", "nope"),
                ("next", "/private"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        assert_eq!(res.status(), 200);
        assert!(res.text().contains("Invalid username or password."));

        // alice / wonderland: 303 to the safe `next`.
        let html = form(&client, "/login?next=%2Fprivate").await;
        let token = field(&html, "csrf_token").unwrap().to_owned();
        let res = client
            .post("/login")
            .form(&[
                ("username", "alice"),
                ("password", "wonderland"),
                ("remember", "on"),
                ("next", "/private"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        assert_eq!(res.status(), 303);
        assert_eq!(res.location(), Some("/private"));
        let res = client.get("/private").send().await;
        assert_eq!(res.status(), 200);
        assert!(res.text().contains("alice"));

        // Logout needs the CSRF token.
        assert_eq!(client.post("/logout").send().await.status(), 403);
        let html = form(&client, "/login").await;
        let token = field(&html, "csrf_token").unwrap().to_owned();
        let res = client
            .post("/logout")
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await;
        assert_eq!(res.status(), 303);
        assert_eq!(client.get("/private").send().await.status(), 303);
    }

    #[tokio::test]
    async fn a_hostile_next_goes_home() {
        let app = app();
        let client = TestClient::new(&app);
        let html = form(&client, "/login?next=%2F%2Fevil.com").await;
        assert_eq!(field(&html, "next"), Some("/"));
        let token = field(&html, "csrf_token").unwrap().to_owned();
        let res = client
            .post("/login")
            .form(&[
                ("username", "alice"),
                ("password", "wonderland"),
                ("next", "//evil.com"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        assert_eq!(res.location(), Some("/"));
    }
}
