//! The Flagon blog: a blog platform on all six extensions — accounts with verified email
//! (flagon-login, flagon-mail), posts in Markdown with comments and search (flagon-db),
//! English and Chinese (flagon-i18n), cached pages (flagon-cache), rate limits
//! (flagon-limiter), core's sessions, CSRF and templates, and flagon-secure-headers' CSP.
//!
//! [`build`] is the app factory, as Flask's `create_app`: `main.rs` calls it with the loaded
//! settings, tests with their own. The parts, one module each:
//!
//! | module | what | URL prefix |
//! |---|---|---|
//! | [`auth`] | register, verify, log in and out, reset and change password | `/auth` |
//! | [`posts`] | the index, posts, comments, search, image uploads | `/` |
//! | [`admin`] | users, posts, comments and the mail outbox | `/admin` |
//! | [`api`] | the JSON API with bearer tokens | `/api/v1` |
//! | [`cli`] | `create-admin`, `seed` | |
//! | [`models`] | accounts, roles, shared queries | |

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use flagon::config::{Config, ConfigError};
use flagon::templates::context;
use flagon::{App, BuildError, Route, SetupError};
use flagon_db::Db;
use flagon_login::Login;
use serde::{Deserialize, Serialize};

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod content;
pub mod models;
pub mod posts;
pub mod seed;

use models::Account;

/// `[blog]` in flagon.toml.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlogConfig {
    /// The site's name, in the page header and in mails.
    pub title: String,
    /// Where uploaded images are kept.
    pub upload_dir: PathBuf,
    /// The largest image upload, in bytes.
    pub max_upload_bytes: usize,
    /// Posts per page on the index, in search and in the API.
    pub per_page: u64,
    /// The blog's address as readers reach it (`https://blog.example.com`): links in mails
    /// start with it, never with the request's `Host`, which a client chooses.
    pub public_url: String,
}

impl Default for BlogConfig {
    fn default() -> Self {
        BlogConfig {
            title: "Flagon Blog".into(),
            upload_dir: PathBuf::from("instance/uploads"),
            max_upload_bytes: 2 * 1024 * 1024,
            per_page: 10,
            public_url: "http://127.0.0.1:5000".into(),
        }
    }
}

/// Where this crate's templates, catalogs and static files are, wherever `cargo run` starts.
pub fn asset_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The blog on `config`: every extension registered, every blueprint mounted.
pub fn build(config: Config) -> Result<App, BuildError> {
    flagon_secure_headers::link(); // keeps the discovered crate in the binary
    // The user loader reads the pool `db` provides; it is set when the app is built and used
    // only by requests.
    let pool: Arc<OnceLock<Arc<Db>>> = Arc::default();
    let loader_pool = pool.clone();
    let login = Login::new(move |id: String| {
        let pool = loader_pool.clone();
        async move {
            let (Some(db), Ok(id)) = (pool.get(), id.parse::<i64>()) else {
                return Ok(None);
            };
            Account::by_id(db, id).await
        }
    })
    // `login_required` sends guests to the login form, with `next`.
    .login_view("auth.login");
    App::builder()
        .settings(config)
        .discover()
        .register(Db::extension())
        .register(flagon_mail::Mail::extension())
        .register(
            flagon_i18n::I18n::new()
                .dir(asset_dir("locales"))
                // The logged-in user's stored language (see `auth::user_locale`).
                .async_selector(|req: &axum::extract::Request| auth::user_locale(req)),
        )
        .register(flagon_cache::Cache::new())
        .register(flagon_limiter::Limiter::new())
        .register(login)
        .configure(move |app| {
            let blog: BlogConfig = app.config("blog")?;
            let title = blog.title.clone();
            app.context_processor(move |_| context! { blog_title => title.clone() });
            app.provide(blog);
            app.route(Route::get("/static/style.css", style_css).name("static_css"));
            let db = app
                .state::<Db>()
                .ok_or_else(|| SetupError::init("blog", "the db extension provides the pool"))?;
            let _ = pool.set(db);
            app.template_dir(asset_dir("templates"));
            app.add_to::<flagon_db::Migrations>("app", flagon_db::migrations!("migrations"));
            auth::install(app)?;
            app.blueprint(auth::blueprint());
            app.blueprint(posts::blueprint());
            app.blueprint(admin::blueprint());
            api::install(app)?;
            cli::install(app);
            seed::install(app);
            Ok(())
        })
        .build()
}

/// `GET /static/style.css`: the one stylesheet, embedded in the binary.
async fn style_css() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
}

/// The usual settings, falling back to the blog's own `flagon.toml` when the working
/// directory has none and `FLAGON_CONFIG` is unset.
pub fn load_config() -> Result<Config, ConfigError> {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    let chosen = vars.iter().any(|(k, _)| k == "FLAGON_CONFIG");
    if !chosen && !Path::new("flagon.toml").is_file() {
        let own = asset_dir("flagon.toml");
        vars.push(("FLAGON_CONFIG".into(), own.display().to_string()));
    }
    Config::load_from(vars, Path::new("."))
}
