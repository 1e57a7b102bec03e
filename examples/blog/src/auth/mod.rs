//! Accounts: register with a verified email, log in and out, remember me, reset and change
//! the password, the stored language preference. Blueprint `auth`, under `/auth`.
//!
//! | route | what |
//! |---|---|
//! | `GET/POST /auth/register` | the form; an unverified account and its verification mail, in one transaction |
//! | `GET /auth/verify/{token}` | a signed, expiring link: marks the address verified |
//! | `GET/POST /auth/login` | email and password, remember me, a safe `next` |
//! | `POST /auth/logout` | ends the session and its remember-me token |
//! | `GET/POST /auth/reset` | asks for a reset link by mail |
//! | `GET/POST /auth/reset/{token}` | sets a new password; the link then stops working |
//! | `GET/POST /auth/password` | changes the password (the current one required); other devices are logged out |
//! | `GET/POST /auth/settings` | the preferred language |
//!
//! Registration, login and reset are limited per client address (the limiter's decorator)
//! and per account ([`limits::AccountLimits`]); failed logins are also throttled per
//! account by flagon-login.

pub mod limits;
mod login;
mod password;
mod register;
mod settings;
pub mod tokens;
pub mod validate;

pub use settings::user_locale;

use flagon::axum::response::{IntoResponse, Response};
use flagon::http::StatusCode;
use flagon::templates::{Templates, Value, context};
use flagon::{AppHandle, Blueprint, HttpError, Route, Setup};
use flagon_i18n::Lang;
use flagon_limiter::limit;
use flagon_login::login_required;

/// Registration attempts per client address.
pub const REGISTER_PER_IP: &str = "10/minute";
/// Login attempts per client address.
pub const LOGIN_PER_IP: &str = "20/minute";
/// Reset requests (and new passwords through a link) per client address.
pub const RESET_PER_IP: &str = "10/minute";

/// The `auth` blueprint.
pub fn blueprint() -> Blueprint {
    Blueprint::new("auth")
        .url_prefix("/auth")
        .route(Route::get("/register", register::form).name("register"))
        .route(
            Route::post("/register", register::submit)
                .name("register")
                .with(limit(REGISTER_PER_IP)),
        )
        .route(Route::get("/verify/{token}", register::verify).name("verify"))
        .route(Route::get("/verify", register::resend_form).name("verify_request"))
        .route(
            Route::post("/verify", register::resend_submit)
                .name("verify_request")
                .with(limit(REGISTER_PER_IP)),
        )
        .route(Route::get("/login", login::form).name("login"))
        .route(
            Route::post("/login", login::submit)
                .name("login")
                .with(limit(LOGIN_PER_IP)),
        )
        .route(Route::post("/logout", login::logout).name("logout"))
        .route(Route::get("/reset", password::request_form).name("reset"))
        .route(
            Route::post("/reset", password::request_submit)
                .name("reset")
                .with(limit(RESET_PER_IP)),
        )
        .route(Route::get("/reset/{token}", password::reset_form).name("reset_token"))
        .route(
            Route::post("/reset/{token}", password::reset_submit)
                .name("reset_token")
                .with(limit(RESET_PER_IP)),
        )
        .route(
            Route::get("/password", password::change_form)
                .name("password")
                .with(login_required()),
        )
        .route(
            Route::post("/password", password::change_submit)
                .name("password")
                .with(login_required()),
        )
        .route(
            Route::get("/settings", settings::form)
                .name("settings")
                .with(login_required()),
        )
        .route(
            Route::post("/settings", settings::submit)
                .name("settings")
                .with(login_required()),
        )
}

/// What the accounts part needs besides its blueprint: the per-account limits, in the
/// limiter's storage.
pub fn install(app: &mut Setup<'_>) -> Result<(), flagon::SetupError> {
    let limiter = app
        .state::<flagon_limiter::LimiterState>()
        .ok_or_else(|| flagon::SetupError::init("blog", "the limiter extension is registered"))?;
    let limits = limits::AccountLimits::new(&limiter)
        .map_err(|e| flagon::SetupError::init("blog", e.to_string()))?;
    app.provide(limits);
    Ok(())
}

/// A page rendered with `status`.
pub(crate) async fn page(
    tpl: &Templates,
    status: StatusCode,
    name: &str,
    ctx: Value,
) -> Result<Response, HttpError> {
    Ok((status, tpl.render(name, ctx).await?).into_response())
}

/// The message page (a bad link, a refused action): `title` and `message` are catalog ids.
pub(crate) async fn message_page(
    tpl: &Templates,
    lang: &Lang,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Result<Response, HttpError> {
    let ctx = context! { title => lang.t(title, ()), message => lang.t(message, ()) };
    page(tpl, status, "auth/message.html", ctx).await
}

/// `path` (from `url_for`) as an absolute link on the blog's public address, for mails.
pub(crate) fn absolute(app: &AppHandle, endpoint: &str, token: &str) -> Result<String, HttpError> {
    let blog = app
        .state::<crate::BlogConfig>()
        .ok_or_else(|| HttpError::internal("the blog settings are provided"))?;
    let path = app
        .url_for(endpoint, [("token", token)])
        .map_err(HttpError::internal)?;
    Ok(format!("{}{}", blog.public_url.trim_end_matches('/'), path))
}

/// A 303 to `endpoint`.
pub(crate) fn redirect_to(app: &AppHandle, endpoint: &str) -> Result<Response, HttpError> {
    let path = app.url_for(endpoint, ()).map_err(HttpError::internal)?;
    Ok(flagon::axum::response::Redirect::to(&path).into_response())
}

/// A new account, as registration and `create-admin` make it.
pub struct NewAccount<'a> {
    /// Lower-cased address.
    pub email: &'a str,
    /// Checked name.
    pub username: &'a str,
    /// Argon2 PHC string.
    pub password_hash: &'a str,
    /// `author`, `editor` or `admin`.
    pub role: &'a str,
    /// When verified; `None` until the link is used.
    pub verified_at: Option<i64>,
}

/// Inserts `account` in `tx`; returns its id.
pub async fn insert_account(
    tx: &mut flagon_db::TxConn,
    account: &NewAccount<'_>,
) -> Result<i64, flagon_db::Error> {
    use flagon_db::sqlx::Row as _;
    const INSERT: &str = "INSERT INTO users (email, username, password_hash, role, verified_at, active, created_at) \
                          VALUES (?, ?, ?, ?, ?, 1, ?)";
    let now = crate::models::now();
    if tx.backend() == flagon_db::Backend::MySql {
        let q = tx
            .query(INSERT)
            .bind(account.email.to_owned())
            .bind(account.username.to_owned())
            .bind(account.password_hash.to_owned())
            .bind(account.role.to_owned())
            .bind(account.verified_at)
            .bind(now);
        let r = q.execute(&mut *tx).await?;
        return r
            .last_insert_id()
            .ok_or_else(|| flagon_db::Error::from(flagon_db::sqlx::Error::RowNotFound));
    }
    let q = tx
        .query(&format!("{INSERT} RETURNING id"))
        .bind(account.email.to_owned())
        .bind(account.username.to_owned())
        .bind(account.password_hash.to_owned())
        .bind(account.role.to_owned())
        .bind(account.verified_at)
        .bind(now);
    let row = q.fetch_one(&mut *tx).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// The locale a mail to `account` is written in: its stored preference when it has one
/// the app offers, else the locale of the request that sends it.
pub(crate) fn mail_locale(
    app: &AppHandle,
    account: &crate::models::Account,
    lang: &Lang,
) -> flagon::Locale {
    account
        .locale
        .as_deref()
        .and_then(|tag| flagon_i18n::I18n::for_locale(app, tag).ok())
        .map(|l| l.locale().clone())
        .unwrap_or_else(|| lang.locale().clone())
}
