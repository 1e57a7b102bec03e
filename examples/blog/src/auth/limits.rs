//! Per-account limits: the limiter's decorators count per client address; these count per
//! email address, whichever address the attempts come from, so spreading attempts over
//! many clients does not help. Decided in process by flagon-limiter's [`KeyedLimit`] (GCRA,
//! bounded key count).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use flagon::HttpError;
use flagon::http::header::RETRY_AFTER;
use flagon::http::{HeaderValue, StatusCode};
use flagon_limiter::KeyedLimit;

/// Login attempts per account.
pub const LOGIN_PER_ACCOUNT: &str = "10/minute";
/// Registrations naming one address.
pub const REGISTER_PER_ACCOUNT: &str = "3/hour";
/// Reset links asked for one address.
pub const RESET_PER_ACCOUNT: &str = "3/hour";

/// Accounts remembered at most, per limit.
const MAX_KEYS: usize = 100_000;

/// Which per-account limit.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/reset`.
    Reset,
}

/// The per-account limits of one app.
#[derive(Debug)]
pub struct AccountLimits {
    login: KeyedLimit,
    register: KeyedLimit,
    reset: KeyedLimit,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits::new()
    }
}

impl AccountLimits {
    /// The limits above.
    pub fn new() -> AccountLimits {
        let keys = NonZeroUsize::new(MAX_KEYS).unwrap_or(NonZeroUsize::MIN);
        let make = |s: &str| KeyedLimit::new(s, keys).expect("the limit strings are valid");
        AccountLimits {
            login: make(LOGIN_PER_ACCOUNT),
            register: make(REGISTER_PER_ACCOUNT),
            reset: make(RESET_PER_ACCOUNT),
        }
    }

    /// Admits one `action` for `account` (a normalised email address), or a 429 with
    /// `Retry-After`.
    pub fn check(&self, action: Action, account: &str) -> Result<(), HttpError> {
        let limit = match action {
            Action::Login => &self.login,
            Action::Register => &self.register,
            Action::Reset => &self.reset,
        };
        limit
            .check_key(account, NonZeroU32::MIN)
            .map(|_| ())
            .map_err(too_many)
    }
}

/// A 429 whose `Retry-After` is `wait` rounded up to whole seconds.
pub fn too_many(wait: Duration) -> HttpError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HttpError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts for this account; try again later.",
    )
    .with_header(RETRY_AFTER, HeaderValue::from(secs.max(1)))
}
