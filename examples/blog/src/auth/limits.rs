//! Per-account limits: the limiter's decorators count per client address; these count per
//! email address, whichever address the attempts come from, so spreading attempts over
//! many clients does not help. They are flagon-limiter keyed limits
//! ([`LimiterState::key_check`]): in the limiter's storage, so with Redis every instance
//! shares them exactly.

use flagon::HttpError;
use flagon::http::header::RETRY_AFTER;
use flagon::http::{HeaderValue, StatusCode};
use flagon_limiter::{KeyCheck, KeyDecision, LimitParseError, LimiterState};

/// Login attempts per account.
pub const LOGIN_PER_ACCOUNT: &str = "10/minute";
/// Registrations naming one address.
pub const REGISTER_PER_ACCOUNT: &str = "3/hour";
/// Reset links asked for one address.
pub const RESET_PER_ACCOUNT: &str = "3/hour";
/// New verification links asked for one address.
pub const VERIFY_PER_ACCOUNT: &str = "3/hour";

/// Which per-account limit.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/reset`.
    Reset,
    /// `POST /auth/verify` (a new verification link).
    Verify,
}

/// The per-account limits of one app.
#[derive(Debug)]
pub struct AccountLimits {
    login: KeyCheck,
    register: KeyCheck,
    reset: KeyCheck,
    verify: KeyCheck,
}

impl AccountLimits {
    /// The limits above, in `limiter`'s storage.
    pub fn new(limiter: &LimiterState) -> Result<AccountLimits, LimitParseError> {
        Ok(AccountLimits {
            login: limiter.key_check("blog.login.account", LOGIN_PER_ACCOUNT)?,
            register: limiter.key_check("blog.register.account", REGISTER_PER_ACCOUNT)?,
            reset: limiter.key_check("blog.reset.account", RESET_PER_ACCOUNT)?,
            verify: limiter.key_check("blog.verify.account", VERIFY_PER_ACCOUNT)?,
        })
    }

    /// Admits one `action` for `account` (a normalised email address), or a 429 with
    /// `Retry-After` (a 503 when the limiter's storage cannot decide and fails closed).
    pub async fn check(&self, action: Action, account: &str) -> Result<(), HttpError> {
        let limit = match action {
            Action::Login => &self.login,
            Action::Register => &self.register,
            Action::Reset => &self.reset,
            Action::Verify => &self.verify,
        };
        let decision = limit.check(account).await;
        let Some(retry_after) = decision.retry_after_secs() else {
            return Ok(());
        };
        let err = match decision {
            KeyDecision::Unavailable { .. } => HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The rate limits cannot be checked now; try again shortly.",
            ),
            _ => HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts for this account; try again later.",
            ),
        };
        Err(err.with_header(RETRY_AFTER, HeaderValue::from(retry_after)))
    }
}
