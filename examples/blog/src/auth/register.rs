//! `GET/POST /auth/register`, `GET /auth/verify/{token}`, and `GET/POST /auth/verify` (a
//! new verification link for an address whose link expired or went astray).

use std::collections::BTreeMap;

use flagon::axum::response::Response;
use flagon::extract::{Form, Path};
use flagon::http::StatusCode;
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, Ext, HttpError};
use flagon_db::{Db, Tx};
use flagon_i18n::Lang;
use flagon_login::{Login, MaybeUser};
use flagon_mail::Mail;
use serde::Deserialize;

use super::limits::{AccountLimits, Action};
use super::tokens::{self, LinkError, Purpose};
use super::validate::{self, FieldErrors};
use super::{NewAccount, absolute, insert_account, mail_locale, message_page, page, redirect_to};
use crate::models::{Account, now};

/// The registration form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RegisterForm {
    email: String,
    username: String,
    password: String,
}

async fn render(
    tpl: &Templates,
    lang: &Lang,
    status: StatusCode,
    form: &RegisterForm,
    errors: &FieldErrors,
) -> Result<Response, HttpError> {
    let errors: BTreeMap<&str, String> = errors.iter().map(|(k, v)| (*k, lang.t(v, ()))).collect();
    let ctx = context! { email => form.email.trim(), username => form.username.trim(), errors };
    page(tpl, status, "auth/register.html", ctx).await
}

/// `GET /auth/register`.
pub(crate) async fn form(tpl: Templates, lang: Lang) -> Result<Response, HttpError> {
    render(
        &tpl,
        &lang,
        StatusCode::OK,
        &RegisterForm::default(),
        &FieldErrors::new(),
    )
    .await
}

/// `POST /auth/register`: a valid form creates an unverified account and queues its
/// verification mail in the request's transaction (both or neither). An address that
/// already has an account gets a mail saying so, and the answer is the same as for a new
/// one: the form does not tell who has an account. A taken username is said (names are
/// public anyway).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn submit(
    _user: MaybeUser<Account>,
    app: AppHandle,
    mail: Mail,
    limits: Ext<AccountLimits>,
    tpl: Templates,
    lang: Lang,
    session: Session,
    mut tx: Tx,
    Form(form): Form<RegisterForm>,
) -> Result<Response, HttpError> {
    let passwords = Login::<Account>::passwords(&app)
        .ok_or_else(|| HttpError::internal("login is registered"))?;
    let mut errors = FieldErrors::new();
    let email = validate::email(&form.email)
        .map_err(|e| errors.insert("email", e))
        .ok();
    let username = validate::username(&form.username)
        .map_err(|e| errors.insert("username", e))
        .ok();
    if let Err(e) = validate::password(&passwords, &form.password) {
        errors.insert("password", e);
    }
    let (Some(email), Some(username)) = (email, username) else {
        return render(
            &tpl,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
        )
        .await;
    };
    if !errors.is_empty() {
        return render(
            &tpl,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
        )
        .await;
    }
    limits.check(Action::Register, &email).await?;

    let taken: Option<i64> = tx
        .query_scalar("SELECT id FROM users WHERE LOWER(username) = LOWER(?)")
        .bind(username.clone())
        .fetch_optional(&mut *tx)
        .await
        .map_err(flagon_db::Error::from)?;
    if taken.is_some() {
        errors.insert("username", "auth-error-username-taken");
        return render(
            &tpl,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
        )
        .await;
    }
    let existing = Account::by_email_in(&mut tx, &email).await?;
    // Hashed whether or not the address has an account, so the answer takes as long.
    let hash = passwords.hash(&form.password).await?;
    let msg = match existing {
        Some(account) => {
            // Someone (maybe the owner) registered an address that has an account: tell
            // the owner, not the form.
            let login = absolute_path(&app, "auth.login")?;
            let reset = absolute_path(&app, "auth.reset")?;
            let locale = super::mail_locale(&app, &account, &lang);
            mail.render_for(
                &locale,
                "already_registered",
                context! { username => account.username, login_url => login, reset_url => reset },
            )
            .await?
            .to((account.username.as_str(), account.email.as_str()))
            .build()?
        }
        None => {
            let id = insert_account(
                &mut tx,
                &NewAccount {
                    email: &email,
                    username: &username,
                    password_hash: &hash,
                    role: "author",
                    verified_at: None,
                },
            )
            .await?;
            let account = Account {
                id,
                email: email.clone(),
                username,
                password_hash: hash,
                role: "author".into(),
                verified_at: None,
                active: 1,
                locale: None,
                created_at: now(),
            };
            verify_mail(&app, &mail, &account, &lang).await?
        }
    };
    mail.enqueue_in(&mut tx, &msg).await?;
    session.flash(
        lang.t("auth-register-sent", [("email", email.as_str())]),
        "success",
    )?;
    redirect_to(&app, "auth.login")
}

/// The mail with `account`'s verification link, in its language (the request's until it
/// stores one): sent on registration and again on `POST /auth/verify`.
async fn verify_mail(
    app: &AppHandle,
    mail: &Mail,
    account: &Account,
    lang: &Lang,
) -> Result<flagon_mail::Message, HttpError> {
    let token = tokens::issue(app, Purpose::Verify, account);
    let link = absolute(app, "auth.verify", &token)?;
    let locale = mail_locale(app, account, lang);
    Ok(mail
        .render_for(
            &locale,
            "verify",
            context! {
                username => account.username,
                link => link,
                hours => Purpose::Verify.lifetime() / 3600,
            },
        )
        .await?
        .to((account.username.as_str(), account.email.as_str()))
        .build()?)
}

/// The public URL of a page without parameters, for mails.
fn absolute_path(app: &AppHandle, endpoint: &str) -> Result<String, HttpError> {
    let blog = app
        .state::<crate::BlogConfig>()
        .ok_or_else(|| HttpError::internal("the blog settings are provided"))?;
    let path = app.url_for(endpoint, ()).map_err(HttpError::internal)?;
    Ok(format!("{}{}", blog.public_url.trim_end_matches('/'), path))
}

/// `GET /auth/verify/{token}`: a valid link marks the address verified; an expired or
/// forged one is a 400 page saying which.
pub(crate) async fn verify(
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response, HttpError> {
    let checked = match tokens::claimed_id(&token) {
        Ok(id) => match Account::by_id(&db, id).await? {
            Some(account) => {
                tokens::check(&app, Purpose::Verify, &token, &account, now()).map(|()| account)
            }
            None => Err(LinkError::Invalid),
        },
        Err(e) => Err(e),
    };
    let account = match checked {
        Ok(a) => a,
        Err(LinkError::Expired) => {
            return message_page(
                &tpl,
                &lang,
                StatusCode::BAD_REQUEST,
                "auth-verify-title",
                "auth-link-expired",
            )
            .await;
        }
        Err(LinkError::Invalid) => {
            return message_page(
                &tpl,
                &lang,
                StatusCode::BAD_REQUEST,
                "auth-verify-title",
                "auth-link-invalid",
            )
            .await;
        }
    };
    if account.verified_at.is_none() {
        db.query("UPDATE users SET verified_at = ? WHERE id = ? AND verified_at IS NULL")
            .bind(now())
            .bind(account.id)
            .execute(&db)
            .await
            .map_err(flagon_db::Error::from)?;
    }
    session.flash(lang.t("auth-verified", ()), "success")?;
    redirect_to(&app, "auth.login")
}

/// The form asking for a new verification link.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResendForm {
    email: String,
}

/// `GET /auth/verify`.
pub(crate) async fn resend_form(tpl: Templates) -> Result<Response, HttpError> {
    let ctx = context! { email => "", errors => FieldErrors::new() };
    page(&tpl, StatusCode::OK, "auth/verify_request.html", ctx).await
}

/// `POST /auth/verify`: the same answer whether the address has an account or not, and
/// whether it is verified or not; if it has an active, unverified one, a fresh link is
/// queued in the request's transaction. Limited per client address and per account, as
/// registration is.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn resend_submit(
    _user: MaybeUser<Account>,
    app: AppHandle,
    mail: Mail,
    limits: Ext<AccountLimits>,
    tpl: Templates,
    lang: Lang,
    session: Session,
    mut tx: Tx,
    Form(form): Form<ResendForm>,
) -> Result<Response, HttpError> {
    let email = match validate::email(&form.email) {
        Ok(e) => e,
        Err(e) => {
            let errors: BTreeMap<&str, String> = [("email", lang.t(e, ()))].into();
            let ctx = context! { email => form.email.trim(), errors };
            return page(
                &tpl,
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/verify_request.html",
                ctx,
            )
            .await;
        }
    };
    limits.check(Action::Verify, &email).await?;
    let account = Account::by_email_in(&mut tx, &email).await?;
    if let Some(account) = account.filter(|a| a.active == 1 && a.verified_at.is_none()) {
        let msg = verify_mail(&app, &mail, &account, &lang).await?;
        mail.enqueue_in(&mut tx, &msg).await?;
    }
    session.flash(
        lang.t("auth-verify-resent", [("email", email.as_str())]),
        "success",
    )?;
    redirect_to(&app, "auth.login")
}
