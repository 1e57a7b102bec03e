//! Who is calling: the account of a valid bearer token or session, nobody, or — for a bearer
//! token that is expired, forged or unsigned — a 401 before the handler runs.

use std::sync::Arc;

use flagon::axum::extract::FromRequestParts;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::HeaderValue;
use flagon::http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderName};
use flagon::http::request::Parts;
use flagon_i18n::Lang;
use flagon_login::MaybeUser;

use super::problem::{ApiError, Problem};
use crate::models::Account;

/// The request's account, if any. A request that presents `Authorization: Bearer` with a
/// token that does not resolve to an active account is refused with a 401 problem
/// (`invalid-token`): it is never served as anonymous.
///
/// A caller logged in by its session cookie (a script on the site's own pages) needs a CSRF
/// token for its writes: every answer to it carries a fresh one in `X-CSRF-Token`
/// ([`Caller::hand_token`]), readable by same-origin scripts only.
pub struct Caller {
    account: Option<Arc<Account>>,
    csrf: Option<String>,
}

/// Where a cookie-authenticated caller finds its CSRF token (core's default header name).
const X_CSRF_TOKEN: HeaderName = HeaderName::from_static("x-csrf-token");

fn presents_bearer(parts: &Parts) -> bool {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let MaybeUser(user) = MaybeUser::<Account>::from_request_parts(parts, state).await?;
        if user.is_none() && presents_bearer(parts) {
            let lang = Lang::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
            return Err(
                Problem::unauthorized("invalid-token", lang.t("api-invalid-token", ()))
                    .into_response(),
            );
        }
        // Logged in without a bearer token: by the session or its remember-me cookie.
        let csrf = if user.is_some() && !presents_bearer(parts) {
            flagon::csrf::token(parts)
        } else {
            None
        };
        Ok(Caller {
            account: user,
            csrf,
        })
    }
}

impl Caller {
    /// The account, or the 401 asking for a token.
    pub fn require(&self, lang: &Lang) -> Result<&Account, ApiError> {
        self.account.as_deref().ok_or_else(|| {
            Problem::unauthorized("login-required", lang.t("api-login-required", ())).into()
        })
    }

    /// The account, if any.
    pub fn account(&self) -> Option<&Account> {
        self.account.as_deref()
    }

    /// Puts a fresh CSRF token in `X-CSRF-Token` for a caller logged in by cookie (the
    /// answer is then `Cache-Control: no-store`: the token is this browser's).
    pub fn hand_token(&self, res: &mut Response) {
        if let Some(v) = self
            .csrf
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            res.headers_mut().insert(X_CSRF_TOKEN, v);
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
}
