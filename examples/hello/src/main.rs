//! The smallest complete Flagon app: an extension with a route, hooks, a context processor,
//! a CLI command and a config section, plus a blueprint, a session visit counter, flashed
//! messages, templates, a CSRF-protected form and notes kept in SQLite (`flagon-db`). Run `cargo run -p example-hello` and open
//! http://127.0.0.1:5000/, or `cargo run -p example-hello -- routes`.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use axum::Form;
use axum::response::{Html, Redirect};
use flagon::clap::{Arg, Command};
use flagon::config::{Config, ConfigError};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{App, Blueprint, BuildError, Ext, Extension, HttpError, Route, Setup, SetupError};
use flagon_db::{Db, Tx};
use serde::{Deserialize, Serialize};

// --- login (flagon-login): the login page, `/private` and `/logout` live in `login.rs`. ---
mod login;

/// `[greeter]` in flagon.toml.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct GreeterConfig {
    greeting: Option<String>,
}

struct Greeting(String);

/// A small extension, as Flask-Greeter would be.
struct Greeter;

impl Extension for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let cfg: GreeterConfig = app.config("greeter")?;
        let greeting = cfg.greeting.unwrap_or_else(|| "Hello".into());
        app.provide(Greeting(greeting.clone()));
        // Every template sees `greeting` without handlers passing it.
        app.context_processor(move |_| context! { greeting => greeting.clone() });
        app.route(Route::get("/hello/{name}", hello));
        app.before_request(|mut req| async move {
            flagon::RequestExt::g(&mut req).insert(Instant::now());
            ControlFlow::Continue(req)
        });
        app.after_request(|ctx, mut res| async move {
            if let Some(t) = ctx.g().get::<Instant>() {
                let us = t.elapsed().as_micros().to_string();
                res.headers_mut()
                    .insert("x-elapsed-us", us.parse().unwrap());
            }
            res
        });
        app.command(
            Command::new("greet")
                .about("Print a greeting")
                .arg(Arg::new("name").required(true)),
            |ctx| async move {
                let greeting = ctx.app().state::<Greeting>().expect("provided above");
                let name: &String = ctx.matches().get_one("name").expect("required");
                writeln!(ctx.out(), "{}, {name}!", greeting.0)?;
                Ok(())
            },
        );
        Ok(())
    }
}

async fn hello(
    axum::extract::Path(name): axum::extract::Path<String>,
    greeting: Ext<Greeting>,
) -> String {
    format!("{}, {name}!", greeting.0)
}

/// `/`: a per-session visit counter, the latest notes and any flashed messages (shown by
/// `base.html`).
async fn index(session: Session, db: Db, tpl: Templates) -> Result<Html<String>, HttpError> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    let notes: Vec<String> = db
        .query_scalar("SELECT body FROM note ORDER BY id DESC LIMIT ?")
        .bind(5_i64)
        .fetch_all(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    tpl.render("index.html", context! { visits, notes }).await
}

/// `GET /form`: a form carrying the visitor's CSRF token.
async fn form(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("form.html", context! {}).await
}

#[derive(Deserialize)]
struct Note {
    value: String,
}

/// `POST /form`: reached only with a valid CSRF token; saves the note in the request's
/// transaction (committed with the redirect), flashes it and redirects.
async fn save_form(
    session: Session,
    mut tx: Tx,
    Form(note): Form<Note>,
) -> Result<Redirect, HttpError> {
    let value = note.value.trim();
    if value.is_empty() || value.chars().count() > 200 {
        return Err(HttpError::bad_request("A note is 1 to 200 characters."));
    }
    let insert = tx
        .query("INSERT INTO note (body) VALUES (?)")
        .bind(value.to_owned());
    insert
        .execute(&mut *tx)
        .await
        .map_err(flagon_db::Error::from)?;
    session.flash(format!("Saved: {value}"), "success")?;
    Ok(Redirect::to("/"))
}

// --- Translations (flagon-i18n) -------------------------------------------------------
// `/greet/{name}` answers in the visitor's language, chosen from `Accept-Language`
// (`?lang=zh` or the `lang` cookie win), from `locales/<locale>/hello.ftl`.

/// The i18n extension, reading this example's `locales/` wherever `cargo run` starts.
fn i18n() -> flagon_i18n::I18n {
    flagon_i18n::I18n::new().dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("locales"))
}

async fn greet(
    axum::extract::Path(name): axum::extract::Path<String>,
    lang: flagon_i18n::Lang,
) -> String {
    lang.t("greet", [("name", name)])
}

#[cfg(test)]
mod i18n_tests {
    use flagon::testing::TestClient;

    #[tokio::test]
    async fn greets_in_english_and_chinese_by_accept_language() {
        let config = flagon::testing::testing_config_toml(
            "[db]\nurl = \"sqlite::memory:\"\nauto_upgrade = true\n",
        );
        let app = super::build(config).unwrap_or_else(|e| panic!("{e}"));
        let client = TestClient::new(&app);
        let en = client
            .get("/greet/Ada")
            .header("accept-language", "en-GB")
            .send()
            .await;
        assert_eq!(en.text(), "Hello, Ada!");
        let zh = client
            .get("/greet/Ada")
            .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
            .send()
            .await;
        assert_eq!(zh.text(), "你好，Ada！");
        assert_eq!(zh.header("content-language"), Some("zh"));
    }
}
// --- end of translations ------------------------------------------------------------------

async fn admin_index() -> &'static str {
    "admin area\n"
}

/// The example's app, on `config`.
fn build(config: Config) -> Result<App, BuildError> {
    let admin = Blueprint::new("admin")
        .url_prefix("/admin")
        .route(Route::get("/", admin_index).name("index"));
    flagon_secure_headers::link(); // keeps the discovered crate in the binary
    let accounts = login::Accounts::default(); // login (flagon-login)
    App::builder()
        .settings(config)
        .discover()
        .register(Greeter)
        .register(Db::extension())
        // --- login (flagon-login) ---
        .register(login::extension(&accounts))
        .configure(move |app| login::install(app, accounts))
        // --- end login ---
        .register(i18n())
        .route(Route::get("/greet/{name}", greet))
        .route(Route::get("/", index))
        .route(Route::get("/form", form))
        .route(Route::post("/form", save_form))
        .blueprint(admin)
        .configure(|app| {
            // Found wherever `cargo run` is started from.
            app.template_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"));
            // `db upgrade` (or `auto_upgrade`) creates the `note` table from these files,
            // embedded in the binary.
            app.add_to::<flagon_db::Migrations>("app", flagon_db::migrations!("migrations"));
            Ok(())
        })
        .build()
}

/// The usual settings, falling back to the example's own `flagon.toml` when the working
/// directory has none and `FLAGON_CONFIG` is unset.
fn load_config() -> Result<Config, ConfigError> {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    let chosen = vars.iter().any(|(k, _)| k == "FLAGON_CONFIG");
    if !chosen && !Path::new("flagon.toml").is_file() {
        let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("flagon.toml");
        vars.push(("FLAGON_CONFIG".into(), own.display().to_string()));
    }
    Config::load_from(vars, Path::new("."))
}

#[tokio::main]
async fn main() -> ExitCode {
    let app = load_config()
        .map_err(|e| e.to_string())
        .and_then(|config| build(config).map_err(|e| e.to_string()));
    match app {
        Ok(app) => app.run().await,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use flagon::testing::{TestClient, testing_config_toml};

    use super::*;

    /// The example on a database of its own, migrated when the test client starts it.
    fn app() -> App {
        let config = testing_config_toml("[db]\nurl = \"sqlite::memory:\"\nauto_upgrade = true\n");
        build(config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn the_index_counts_visits_per_session() {
        let app = app();
        let client = TestClient::new(&app);
        assert!(
            client
                .get("/")
                .send()
                .await
                .text()
                .contains("visited this page 1 time in")
        );
        assert!(
            client
                .get("/")
                .send()
                .await
                .text()
                .contains("visited this page 2 times")
        );
        let other = TestClient::new(&app);
        assert!(
            other
                .get("/")
                .send()
                .await
                .text()
                .contains("visited this page 1 time in")
        );
    }

    #[tokio::test]
    async fn the_form_saves_flashes_and_redirects() {
        let app = app();
        let client = TestClient::new(&app).follow_redirects(true);
        let page = client.get("/form").send().await.text();
        let needle = "name=\"csrf_token\" value=\"";
        let start = page.find(needle).expect("token field") + needle.len();
        let token = &page[start..start + 96];
        let res = client
            .post("/form")
            .form(&[("csrf_token", token), ("value", "<hi>")])
            .send()
            .await;
        assert_eq!(res.status(), 200);
        let body = res.text();
        assert!(body.contains("Saved: &lt;hi&gt;"), "{body}");
        assert!(
            body.contains("<li>&lt;hi&gt;</li>"),
            "the note is listed: {body}"
        );
        assert!(
            !client.get("/").send().await.text().contains("Saved:"),
            "shown once"
        );
    }

    #[tokio::test]
    async fn the_form_refuses_a_post_without_a_token() {
        let app = app();
        let res = TestClient::new(&app)
            .post("/form")
            .form(&[("value", "x")])
            .send()
            .await;
        assert_eq!(res.status(), 403);
    }

    #[tokio::test]
    async fn the_hello_route_is_unchanged() {
        let app = app();
        let res = TestClient::new(&app).get("/hello/world").send().await;
        assert_eq!(res.text(), "Hello, world!");
        assert!(res.header("set-cookie").is_none());
    }
}
