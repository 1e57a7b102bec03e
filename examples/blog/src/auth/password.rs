//! Password reset by email (`/auth/reset`, `/auth/reset/{token}`) and change
//! (`/auth/password`).

use std::collections::BTreeMap;

use flagon::axum::response::Response;
use flagon::extract::{Form, Path};
use flagon::http::StatusCode;
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, Ext, HttpError};
use flagon_db::{Db, Tx};
use flagon_i18n::Lang;
use flagon_login::{Auth, CurrentUser, Login, LoginOptions, MaybeUser};
use flagon_mail::Mail;
use serde::Deserialize;

use super::limits::{AccountLimits, Action};
use super::tokens::{self, LinkError, Purpose};
use super::validate::{self, FieldErrors};
use super::{absolute, mail_locale, message_page, page, redirect_to};
use crate::models::{Account, now};

fn translated(lang: &Lang, errors: &FieldErrors) -> BTreeMap<&'static str, String> {
    errors.iter().map(|(k, v)| (*k, lang.t(v, ()))).collect()
}

/// The reset request form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResetRequest {
    email: String,
}

/// A new password (through a link, or changed).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NewPassword {
    current_password: String,
    password: String,
}

/// `GET /auth/reset`.
pub(crate) async fn request_form(tpl: Templates) -> Result<Response, HttpError> {
    let ctx = context! { email => "", errors => FieldErrors::new() };
    page(&tpl, StatusCode::OK, "auth/reset_request.html", ctx).await
}

/// `POST /auth/reset`: the same answer whether the address has an account or not; if it
/// has an active one, a reset link is queued in the request's transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn request_submit(
    _user: MaybeUser<Account>,
    app: AppHandle,
    mail: Mail,
    limits: Ext<AccountLimits>,
    tpl: Templates,
    lang: Lang,
    session: Session,
    mut tx: Tx,
    Form(form): Form<ResetRequest>,
) -> Result<Response, HttpError> {
    let email = match validate::email(&form.email) {
        Ok(e) => e,
        Err(e) => {
            let errors = translated(&lang, &FieldErrors::from([("email", e)]));
            let ctx = context! { email => form.email.trim(), errors };
            return page(
                &tpl,
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/reset_request.html",
                ctx,
            )
            .await;
        }
    };
    limits.check(Action::Reset, &email).await?;
    let account = Account::by_email_in(&mut tx, &email).await?;
    if let Some(account) = account.filter(|a| a.active == 1) {
        let token = tokens::issue(&app, Purpose::Reset, &account);
        let link = absolute(&app, "auth.reset_token", &token)?;
        let locale = mail_locale(&app, &account, &lang);
        let msg = mail
            .render_for(
                &locale,
                "reset",
                context! { username => account.username, link => link, minutes => Purpose::Reset.lifetime() / 60 },
            )
            .await?
            .to((account.username.as_str(), account.email.as_str()))
            .build()?;
        mail.enqueue_in(&mut tx, &msg).await?;
    }
    session.flash(
        lang.t("auth-reset-sent", [("email", email.as_str())]),
        "success",
    )?;
    redirect_to(&app, "auth.login")
}

/// The account a reset link names, or the 400 page saying why not.
async fn account_for(
    app: &AppHandle,
    db: &Db,
    tpl: &Templates,
    lang: &Lang,
    token: &str,
) -> Result<Result<Account, Response>, HttpError> {
    let checked = match tokens::claimed_id(token) {
        Ok(id) => match Account::by_id(db, id).await? {
            Some(a) if a.active == 1 => {
                tokens::check(app, Purpose::Reset, token, &a, now()).map(|()| a)
            }
            _ => Err(LinkError::Invalid),
        },
        Err(e) => Err(e),
    };
    let why = match checked {
        Ok(a) => return Ok(Ok(a)),
        Err(LinkError::Expired) => "auth-link-expired",
        Err(LinkError::Invalid) => "auth-link-invalid",
    };
    let res = message_page(tpl, lang, StatusCode::BAD_REQUEST, "auth-reset-title", why).await?;
    Ok(Err(res))
}

/// `GET /auth/reset/{token}`: the new-password form, for a valid link.
pub(crate) async fn reset_form(
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    if let Err(res) = account_for(&app, &db, &tpl, &lang, &token).await? {
        return Ok(res);
    }
    let ctx = context! { token => token, errors => FieldErrors::new() };
    page(&tpl, StatusCode::OK, "auth/reset_form.html", ctx).await
}

/// `POST /auth/reset/{token}`: sets the password if the link is still valid. The link is
/// bound to the old password hash, so it works once; the update is conditional on that
/// hash, so two uses at once cannot both succeed. Every remember-me token of the account
/// is revoked and its sessions end (their auth hash changed). Using the link also proves
/// the address, so an unverified account becomes verified.
pub(crate) async fn reset_submit(
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    session: Session,
    Path(token): Path<String>,
    Form(form): Form<NewPassword>,
) -> Result<Response, HttpError> {
    let account = match account_for(&app, &db, &tpl, &lang, &token).await? {
        Ok(a) => a,
        Err(res) => return Ok(res),
    };
    let passwords = Login::<Account>::passwords(&app)
        .ok_or_else(|| HttpError::internal("login is registered"))?;
    if let Err(e) = validate::password(&passwords, &form.password) {
        let errors = translated(&lang, &FieldErrors::from([("password", e)]));
        let ctx = context! { token => token, errors };
        return page(
            &tpl,
            StatusCode::UNPROCESSABLE_ENTITY,
            "auth/reset_form.html",
            ctx,
        )
        .await;
    }
    let hash = passwords.hash(&form.password).await?;
    let done = db
        .query(
            "UPDATE users SET password_hash = ?, verified_at = COALESCE(verified_at, ?) \
             WHERE id = ? AND password_hash = ?",
        )
        .bind(hash)
        .bind(now())
        .bind(account.id)
        .bind(account.password_hash.clone())
        .execute(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    if done.rows_affected() != 1 {
        return message_page(
            &tpl,
            &lang,
            StatusCode::BAD_REQUEST,
            "auth-reset-title",
            "auth-link-invalid",
        )
        .await;
    }
    Login::<Account>::revoke_tokens(&app, &account.id.to_string())
        .await
        .map_err(HttpError::internal)?;
    session.flash(lang.t("auth-reset-done", ()), "success")?;
    redirect_to(&app, "auth.login")
}

/// `GET /auth/password`.
pub(crate) async fn change_form(
    _user: CurrentUser<Account>,
    tpl: Templates,
) -> Result<Response, HttpError> {
    let ctx = context! { errors => FieldErrors::new() };
    page(&tpl, StatusCode::OK, "auth/password.html", ctx).await
}

/// `POST /auth/password`: the current password is checked (failures count towards the
/// account's login throttle), the new one must pass the policy. Every remember-me token
/// is revoked; other sessions end on their next request (the auth hash changed), and this
/// one is logged in again with the new hash.
pub(crate) async fn change_submit(
    app: AppHandle,
    user: CurrentUser<Account>,
    auth: Auth<Account>,
    db: Db,
    tpl: Templates,
    lang: Lang,
    Form(form): Form<NewPassword>,
) -> Result<Response, HttpError> {
    let mut errors = FieldErrors::new();
    let verified = auth
        .authenticate(
            &user.email,
            &form.current_password,
            Some(&user.password_hash),
        )
        .await?;
    if !verified.ok {
        errors.insert("current_password", "auth-error-current-wrong");
    } else if let Err(e) = validate::password(auth.passwords(), &form.password) {
        errors.insert("password", e);
    }
    if !errors.is_empty() {
        let status = if verified.ok {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::FORBIDDEN
        };
        let ctx = context! { errors => translated(&lang, &errors) };
        return page(&tpl, status, "auth/password.html", ctx).await;
    }
    let hash = auth.passwords().hash(&form.password).await?;
    db.query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash.clone())
        .bind(user.id)
        .execute(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    auth.revoke_tokens(&user.id.to_string()).await?;
    let mut updated = (*user.0).clone();
    updated.password_hash = hash;
    auth.login_user(updated, LoginOptions::default()).await?;
    auth.session()
        .flash(lang.t("auth-password-changed", ()), "success")?;
    redirect_to(&app, "auth.settings")
}
