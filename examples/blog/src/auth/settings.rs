//! `GET/POST /auth/settings`: the account's preferred language, used for its pages (when
//! this browser has not picked one with the switcher) and its mails.

use flagon::axum::response::{IntoResponse, Redirect, Response};
use flagon::extract::Form;
use flagon::http::header::SET_COOKIE;
use flagon::http::{HeaderValue, StatusCode};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, HttpError};
use flagon_db::Db;
use flagon_i18n::{I18n, Lang};
use flagon_login::CurrentUser;
use serde::Deserialize;

use super::page;
use crate::models::Account;

/// The settings form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SettingsForm {
    locale: String,
}

fn choices(app: &AppHandle) -> Vec<String> {
    I18n::locales(app)
        .map(|l| l.iter().map(|l| l.to_string()).collect())
        .unwrap_or_default()
}

async fn render(
    app: &AppHandle,
    tpl: &Templates,
    status: StatusCode,
    current: &str,
    error: Option<String>,
) -> Result<Response, HttpError> {
    let ctx = context! { locales => choices(app), current => current, error };
    page(tpl, status, "auth/settings.html", ctx).await
}

/// `GET /auth/settings`.
pub(crate) async fn form(
    app: AppHandle,
    user: CurrentUser<Account>,
    tpl: Templates,
) -> Result<Response, HttpError> {
    let current = user.locale.clone().unwrap_or_default();
    render(&app, &tpl, StatusCode::OK, &current, None).await
}

/// `POST /auth/settings`: `locale` is one of the app's locales, or empty for "as the
/// browser says". The choice is stored on the account and in this browser's language
/// cookie (cleared for "automatic"), so the switcher and the preference agree here.
pub(crate) async fn submit(
    app: AppHandle,
    user: CurrentUser<Account>,
    db: Db,
    tpl: Templates,
    lang: Lang,
    session: Session,
    Form(form): Form<SettingsForm>,
) -> Result<Response, HttpError> {
    let chosen = form.locale.trim();
    if !chosen.is_empty() && !choices(&app).iter().any(|l| l == chosen) {
        let e = lang.t("auth-error-locale", ());
        let current = user.locale.clone().unwrap_or_default();
        return render(
            &app,
            &tpl,
            StatusCode::UNPROCESSABLE_ENTITY,
            &current,
            Some(e),
        )
        .await;
    }
    let stored = (!chosen.is_empty()).then(|| chosen.to_owned());
    db.query("UPDATE users SET locale = ? WHERE id = ?")
        .bind(stored.clone())
        .bind(user.id)
        .execute(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    let shown = match &stored {
        Some(tag) => I18n::for_locale(&app, tag)
            .map(|l| l.t("auth-settings-saved", ()))
            .unwrap_or_else(|_| lang.t("auth-settings-saved", ())),
        None => lang.t("auth-settings-saved", ()),
    };
    session.flash(shown, "success")?;
    let path = app
        .url_for("auth.settings", ())
        .map_err(HttpError::internal)?;
    let mut res = Redirect::to(&path).into_response();
    match &stored {
        Some(tag) => {
            lang.set_locale(&mut res, tag)?;
        }
        None => {
            let name = app
                .settings()
                .value::<String>("i18n.cookie_name")
                .ok()
                .flatten()
                .unwrap_or_else(|| "lang".into());
            let clear = format!("{name}=; Path=/; Max-Age=0; SameSite=Lax");
            if let Ok(v) = HeaderValue::from_str(&clear) {
                res.headers_mut().append(SET_COOKIE, v);
            }
        }
    }
    Ok(res)
}

/// Whether this browser chose a language itself: `?lang=` or the switcher's `lang` cookie.
fn chosen_here(req: &flagon::axum::extract::Request) -> bool {
    let in_query = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("lang=")));
    let in_cookie = req
        .headers()
        .get_all(flagon::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim_start().starts_with("lang="));
    in_query || in_cookie
}

/// The locale selector (flagon-i18n's async selector): the logged-in user's stored
/// preference, unless this browser chose a language with the switcher (which then wins
/// here); `None` for guests and users without one, so `Accept-Language` decides.
pub fn user_locale(req: &flagon::axum::extract::Request) -> flagon::BoxFuture<Option<String>> {
    if chosen_here(req) {
        return Box::pin(std::future::ready(None));
    }
    let user: flagon::BoxFuture<Option<std::sync::Arc<Account>>> =
        Box::pin(flagon_login::current_user::<Account>(req));
    Box::pin(async move { user.await?.locale.clone() })
}
