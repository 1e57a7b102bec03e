//! `POST /auth/token` and `POST /auth/refresh`: access and refresh tokens.

use std::num::NonZeroU32;

use flagon::Ext;
use flagon::axum::Json;
use flagon::axum::body::Body;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::header::CACHE_CONTROL;
use flagon::http::{HeaderMap, HeaderValue, StatusCode};
use flagon_db::Db;
use flagon_i18n::Lang;
use flagon_login::{Auth, TokenError, User};
use serde::Serialize;

use super::ApiState;
use super::body::read_object;
use super::problem::{ApiError, Problem};
use crate::models::Account;

/// What both routes answer.
#[derive(Debug, Serialize)]
struct TokenPair {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

fn answer(api: &ApiState, access_token: String, refresh_token: String) -> Response {
    let pair = TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: api.config.access_token_ttl.as_secs(),
    };
    let mut res = (StatusCode::OK, Json(pair)).into_response();
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `POST /api/v1/auth/token`: `{"email","password"}` for a token pair. An unknown email and
/// a wrong password get the same 401 (the unknown one is checked against a dummy hash, so
/// it takes as long); an unverified or deactivated account with the right password a 403.
/// Attempts are limited per address (the route's limit), per account (`api.account_limit`)
/// and, for failures, by flagon-login's per-account throttle.
pub(super) async fn token(
    auth: Auth<Account>,
    db: Db,
    api: Ext<ApiState>,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let fields = read_object(&headers, body, &["email", "password"], &lang).await?;
    let email = fields.required_str("email")?.trim().to_lowercase();
    let password = fields.required_str("password")?;
    if let Err(wait) = api.accounts.check_key(&email, NonZeroU32::MIN) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let detail = lang.t("api-account-throttled", [("seconds", secs.max(1))]);
        return Err(Problem::too_many(detail, secs).into());
    }
    let account = Account::by_email(&db, &email).await?;
    let stored = account.as_ref().map(|a| a.password_hash.as_str());
    let verified = auth.authenticate(&email, &password, stored).await?;
    let Some(account) = account.filter(|_| verified.ok) else {
        return Err(Problem::unauthorized(
            "invalid-credentials",
            lang.t("api-invalid-credentials", ()),
        )
        .into());
    };
    if !account.is_active() {
        return Err(
            Problem::forbidden("account-inactive", lang.t("api-account-inactive", ())).into(),
        );
    }
    let access = auth.issue_token(&account, api.config.access_token_ttl)?;
    let refresh = auth.issue_refresh_token(&account).await?;
    Ok(answer(&api, access, refresh))
}

/// `POST /api/v1/auth/refresh`: `{"refresh_token"}` for a new pair. The presented token
/// stops working; presenting it again revokes the series (the newest token too), as does a
/// password change or a deactivation.
pub(super) async fn refresh(
    auth: Auth<Account>,
    api: Ext<ApiState>,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let fields = read_object(&headers, body, &["refresh_token"], &lang).await?;
    let presented = fields.required_str("refresh_token")?;
    match auth.refresh(&presented, api.config.access_token_ttl).await {
        Ok((access, refresh)) => Ok(answer(&api, access, refresh)),
        Err(TokenError::InvalidRefresh) => Err(Problem::unauthorized(
            "invalid-refresh-token",
            lang.t("api-invalid-refresh-token", ()),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}
