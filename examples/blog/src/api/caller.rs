//! Who is calling: the account of a valid bearer token or session, nobody, or — for a bearer
//! token that is expired, forged or unsigned — a 401 before the handler runs.

use std::sync::Arc;

use flagon::axum::extract::FromRequestParts;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::header::AUTHORIZATION;
use flagon::http::request::Parts;
use flagon_i18n::Lang;
use flagon_login::MaybeUser;

use super::problem::{ApiError, Problem};
use crate::models::Account;

/// The request's account, if any. A request that presents `Authorization: Bearer` with a
/// token that does not resolve to an active account is refused with a 401 problem
/// (`invalid-token`): it is never served as anonymous.
pub struct Caller(pub Option<Arc<Account>>);

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
        Ok(Caller(user))
    }
}

impl Caller {
    /// The account, or the 401 asking for a token.
    pub fn require(&self, lang: &Lang) -> Result<&Account, ApiError> {
        self.0.as_deref().ok_or_else(|| {
            Problem::unauthorized("login-required", lang.t("api-login-required", ())).into()
        })
    }

    /// The account, if any.
    pub fn account(&self) -> Option<&Account> {
        self.0.as_deref()
    }
}
