//! `GET/POST /auth/login` and `POST /auth/logout`.

use std::collections::BTreeMap;

use flagon::axum::response::{IntoResponse, Response};
use flagon::extract::{Form, Query};
use flagon::http::StatusCode;
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{Ext, HttpError};
use flagon_db::Db;
use flagon_i18n::Lang;
use flagon_login::{Auth, LoginOptions};
use serde::Deserialize;

use super::limits::{AccountLimits, Action};
use super::page;
use crate::models::Account;

/// The login form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    email: String,
    password: String,
    remember: Option<String>,
    next: Option<String>,
}

/// `?next=` on the login page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

async fn render(
    tpl: &Templates,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<String>,
) -> Result<Response, HttpError> {
    let errors: BTreeMap<&str, String> = error.into_iter().map(|e| ("form", e)).collect();
    let ctx = context! { email => email.trim(), next => next.unwrap_or(""), errors };
    page(tpl, status, "auth/login.html", ctx).await
}

/// `GET /auth/login`.
pub(crate) async fn form(
    tpl: Templates,
    Query(q): Query<NextQuery>,
) -> Result<Response, HttpError> {
    render(&tpl, StatusCode::OK, "", q.next.as_deref(), None).await
}

/// `POST /auth/login`: the password checked by flagon-login (a dummy hash for unknown
/// addresses, failures throttled per account), then a session with a fresh id and a 303
/// to the safe `next`. A wrong password is a 401; an unverified or deactivated account a
/// 403 saying so (only once the password proved it is the owner asking).
pub(crate) async fn submit(
    auth: Auth<Account>,
    db: Db,
    limits: Ext<AccountLimits>,
    tpl: Templates,
    lang: Lang,
    Form(form): Form<LoginForm>,
) -> Result<Response, HttpError> {
    let email = form.email.trim().to_lowercase();
    let next = form.next.as_deref().filter(|n| !n.is_empty());
    if email.is_empty() || form.password.is_empty() {
        let e = lang.t("auth-error-login-missing", ());
        return render(
            &tpl,
            StatusCode::UNPROCESSABLE_ENTITY,
            &email,
            next,
            Some(e),
        )
        .await;
    }
    limits.check(Action::Login, &email).await?;
    // An address too odd to be stored is looked up as nobody.
    let account = match super::validate::email(&email) {
        Ok(e) => Account::by_email(&db, &e).await?,
        Err(_) => None,
    };
    let stored = account.as_ref().map(|a| a.password_hash.as_str());
    let verified = auth.authenticate(&email, &form.password, stored).await?;
    let Some(account) = account.filter(|_| verified.ok) else {
        let e = lang.t("auth-error-login-wrong", ());
        return render(&tpl, StatusCode::UNAUTHORIZED, &email, next, Some(e)).await;
    };
    if account.active != 1 {
        let e = lang.t("auth-error-login-inactive", ());
        return render(&tpl, StatusCode::FORBIDDEN, &email, next, Some(e)).await;
    }
    if account.verified_at.is_none() {
        let e = lang.t("auth-error-login-unverified", ());
        return render(&tpl, StatusCode::FORBIDDEN, &email, next, Some(e)).await;
    }
    let mut account = account;
    if verified.needs_rehash {
        let hash = auth.passwords().hash(&form.password).await?;
        db.query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash.clone())
            .bind(account.id)
            .execute(&db)
            .await
            .map_err(flagon_db::Error::from)?;
        account.password_hash = hash;
    }
    let remember = form
        .remember
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    auth.login_user(account, LoginOptions::remember(remember))
        .await?;
    auth.session()
        .flash(lang.t("auth-logged-in", ()), "success")?;
    Ok(auth.redirect_next(next).into_response())
}

/// `POST /auth/logout` (a form with the CSRF token, like every unsafe method): the session
/// and the remember-me token end.
pub(crate) async fn logout(auth: Auth<Account>, lang: Lang) -> Result<Response, HttpError> {
    auth.logout_user().await?;
    // A fresh session for the message: the old one is deleted.
    let _ = Session::flash(auth.session(), lang.t("auth-logged-out", ()), "success");
    Ok(flagon::axum::response::Redirect::to("/").into_response())
}
