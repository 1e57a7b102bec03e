//! [`KeyCheck`]: a limit the app checks itself, on a key only the handler knows (the account
//! a login form names), counted where the limiter keeps every other counter.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use flagon::http::Method;

use crate::error::{LimitParseError, retry_secs};
use crate::key::Who;
use crate::parse::parse_limits;
use crate::runtime::{Checked, LimitSet, Runtime, SetKind};

/// A limit checked by the app on a key of its own choosing, made by
/// [`LimiterState::key_check`](crate::LimiterState::key_check). A route decorator keys
/// requests by address or identity before the handler runs; an account named in a request
/// body (a login form, a token request) is known only inside the handler, which calls
/// [`KeyCheck::check`] with it.
///
/// The counters live where the limiter's do: in process, or with Redis storage in Redis,
/// so every instance sharing it admits exactly the quota between them (and `fail_mode`
/// decides when Redis cannot). `limiter status KEY` and `limiter reset KEY` show and forget
/// them under the scope `key SCOPE`; the sweeper forgets full buckets.
///
/// ```
/// use flagon::App;
/// use flagon::testing::testing_config;
/// use flagon_limiter::{KeyDecision, Limiter, LimiterState};
///
/// # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = App::builder().settings(testing_config()).register(Limiter::new()).build().unwrap();
/// let per_account = app.state::<LimiterState>().unwrap().key_check("login", "2/minute").unwrap();
/// assert!(per_account.check("ada@example.com").await.admitted());
/// assert!(per_account.check("ada@example.com").await.admitted());
/// let refused = per_account.check("ada@example.com").await;
/// assert_eq!(refused.retry_after_secs(), Some(30));
/// assert!(per_account.check("bob@example.com").await.admitted());
/// # });
/// ```
#[derive(Clone)]
pub struct KeyCheck {
    rt: Arc<Runtime>,
    set: Arc<LimitSet>,
    scope: Arc<str>,
}

impl std::fmt::Debug for KeyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCheck")
            .field("scope", &self.scope)
            .field("limits", &self.set.rates)
            .finish()
    }
}

/// What [`KeyCheck::check`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyDecision {
    /// Admitted; `remaining` more are admissible now under the tightest limit (`None` when
    /// nothing is known: the limiter is disabled, or Redis could not decide under
    /// `fail_mode = "open"`).
    Admitted {
        /// Requests left now.
        remaining: Option<u32>,
    },
    /// Refused by `limit`; the same request is admitted after `retry_after`.
    Refused {
        /// The refusing limit (`5/minute`).
        limit: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// Redis could not decide and `fail_mode = "closed"`: answer 503, retry after this.
    Unavailable {
        /// The breaker's cooldown.
        retry_after: Duration,
    },
}

impl KeyDecision {
    /// Whether the request may go on.
    pub fn admitted(&self) -> bool {
        matches!(self, KeyDecision::Admitted { .. })
    }

    /// For a refusal (or an unavailable Redis), the `Retry-After` value: whole seconds,
    /// rounded up, at least 1, as the limiter's own 429s say.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            KeyDecision::Admitted { .. } => None,
            KeyDecision::Refused { retry_after, .. } | KeyDecision::Unavailable { retry_after } => {
                Some(retry_secs(*retry_after))
            }
        }
    }
}

impl KeyCheck {
    pub(crate) fn new(
        rt: Arc<Runtime>,
        scope: &str,
        limits: &str,
    ) -> Result<KeyCheck, LimitParseError> {
        let rates = parse_limits(limits)?;
        let scope: Arc<str> = Arc::from(scope);
        let set = rt.set(rates, false, SetKind::Keyed(scope.clone()));
        Ok(KeyCheck { rt, set, scope })
    }

    /// The scope name given to [`LimiterState::key_check`](crate::LimiterState::key_check).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Counts one request for `key` and decides it. Every call counts (as a route limit
    /// counts every response); a refused one takes nothing.
    pub async fn check(&self, key: &str) -> KeyDecision {
        if !self.rt.enabled {
            return KeyDecision::Admitted { remaining: None };
        }
        let who = Who::Text(Arc::from(key));
        let checked = self
            .set
            .check(
                &self.rt,
                &Method::POST,
                0,
                &self.scope,
                who,
                NonZeroU32::MIN,
                true,
            )
            .await;
        match checked {
            Checked::Passed(p) => KeyDecision::Admitted {
                remaining: Some(p.remaining),
            },
            Checked::Open => KeyDecision::Admitted { remaining: None },
            Checked::Refused(r) => {
                flagon::tracing::info!(
                    target: "flagon_limiter",
                    scope = %self.scope,
                    limit = %r.rate,
                    "rate limit exceeded for a key"
                );
                KeyDecision::Refused {
                    limit: r.rate.to_string(),
                    retry_after: r.wait,
                }
            }
            Checked::Unavailable(wait) => KeyDecision::Unavailable { retry_after: wait },
        }
    }
}
