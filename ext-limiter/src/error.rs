//! The crate's errors.

use std::time::Duration;

/// A limit string that does not follow the grammar (see [`parse_limits`](crate::parse_limits)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid limit `{input}`: {reason}")]
pub struct LimitParseError {
    pub(crate) input: String,
    pub(crate) reason: String,
}

impl LimitParseError {
    /// The offending text (cut at 120 characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The limiter's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// A limit string is malformed; `source` names where it came from (a config key or an
    /// endpoint).
    #[error("{source_name}: {error}")]
    Parse {
        /// Where the string came from: `limiter.default`, `limiter.routes."auth.login"`,
        /// or `endpoint `auth.login``.
        source_name: String,
        /// What is wrong.
        #[source]
        error: LimitParseError,
    },
    /// The limit's storage (Redis) could not decide and `fail_mode = "closed"`: answered
    /// with 503 and `Retry-After`, not 429 (the client did nothing wrong).
    #[error("the rate limit storage is unavailable; retry in {retry_after_secs} s")]
    Unavailable {
        /// Whole seconds until the storage is probed again (at least 1).
        retry_after_secs: u64,
    },
    /// Reading or resetting counters failed (Redis did not answer).
    #[error("limiter storage: {0}")]
    Storage(String),
    /// The request was refused: a limit is exhausted. Answered with 429.
    #[error("rate limit exceeded ({limit}); retry in {retry_after_secs} s")]
    Exceeded {
        /// The limit that refused the request (`5/minute`).
        limit: String,
        /// Whole seconds until the request would be admitted (at least 1).
        retry_after_secs: u64,
    },
}

/// Whole seconds to wait, rounded up, at least 1 (RFC 9110 `delay-seconds`; a refused request
/// never says 0).
pub(crate) fn retry_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}
