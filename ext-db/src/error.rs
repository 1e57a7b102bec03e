//! One error type for the crate, and what each kind answers over HTTP.

use flagon::HttpError;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::{HeaderValue, StatusCode, header::RETRY_AFTER};

/// What a database call in a handler can fail with.
///
/// Return it from a handler (`Result<_, flagon_db::Error>`) or convert it to core's
/// [`HttpError`] with `?`: either way the client sees a generic page (no SQL, no URL), the
/// details go to the log, and the status tells what happened:
///
/// | variant | status |
/// |---|---|
/// | [`Error::Busy`] (no connection within `acquire_timeout`) | 503 with `Retry-After` |
/// | [`Error::Closed`] (the app is stopping) | 503 with `Retry-After` |
/// | [`Error::Database`] (anything else sqlx reports) | 500 |
/// | [`Error::Http`] (a 404 from [`get_or_404`](crate::get_or_404), an `abort`) | its own |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection became free within the pool's `acquire_timeout` (sqlx's
    /// `PoolTimedOut`): the database is saturated or unreachable.
    #[error("the database is busy; try again shortly")]
    Busy {
        /// The sqlx error, kept for the log.
        #[source]
        source: sqlx::Error,
    },
    /// The pool was closed: the app is shutting down.
    #[error("the database is not available; try again shortly")]
    Closed {
        /// The sqlx error, kept for the log.
        #[source]
        source: sqlx::Error,
    },
    /// Any other database error: a 500 whose details are logged, never shown.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// [`Db::bind`](crate::Db::bind) named a bind that `[db.binds]` does not configure: a
    /// bug in the app, a 500.
    #[error("no database bind `{0}` is configured under [db.binds]")]
    UnknownBind(String),
    /// A [`Tx`](crate::Tx) was extracted while another one of the same request was alive
    /// (or after the response): a bug in the app, a 500.
    #[error("the request's transaction is already in use (one Tx at a time per request)")]
    TxInUse,
    /// An HTTP error raised on purpose (a missing row's 404).
    #[error(transparent)]
    Http(HttpError),
}

/// The `Retry-After` sent with a 503 for a busy or closed pool, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

impl Error {
    /// The HTTP status this error answers.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Busy { .. } | Error::Closed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::UnknownBind(_) | Error::TxInUse => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Http(e) => e.status(),
        }
    }

    /// The sqlx error underneath, if any.
    pub fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Error::Busy { source } | Error::Closed { source } | Error::Database(source) => {
                Some(source)
            }
            Error::UnknownBind(_) | Error::TxInUse | Error::Http(_) => None,
        }
    }

    /// Whether this is pool exhaustion ([`Error::Busy`]).
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy { .. })
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => Error::Busy { source: e },
            sqlx::Error::PoolClosed => Error::Closed { source: e },
            e => Error::Database(e),
        }
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        Error::Http(e)
    }
}

/// `?` from a database call in a handler that returns `Result<_, HttpError>`. The 503 of a busy
/// pool gets its `Retry-After` from the request's database state when the handler used
/// [`Db`](crate::Db) or [`Tx`](crate::Tx) (core's `HttpError` carries no headers).
impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        match e {
            Error::Http(e) => e,
            // Logged with its details by core when the response is made; never shown.
            Error::Database(source) => HttpError::internal(source),
            e @ (Error::UnknownBind(_) | Error::TxInUse) => HttpError::internal(e),
            e @ (Error::Busy { .. } | Error::Closed { .. }) => {
                tracing::warn!(target: "flagon_db", error = %e, cause = ?e.sqlx(), "database unavailable");
                HttpError::with_cause(StatusCode::SERVICE_UNAVAILABLE, e)
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let busy = matches!(self, Error::Busy { .. } | Error::Closed { .. });
        let mut res = HttpError::from(self).into_response();
        if busy {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        res
    }
}

/// Adds `Retry-After` to a 503 that lacks one.
pub(crate) fn add_retry_after(res: &mut Response) {
    if res.status() == StatusCode::SERVICE_UNAVAILABLE && !res.headers().contains_key(RETRY_AFTER) {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_a_503_with_retry_after_and_no_details() {
        let res = Error::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        let e = HttpError::from(Error::from(sqlx::Error::Protocol(
            "SELECT secret FROM t".into(),
        )));
        assert_eq!(e.status(), 500);
        assert!(!e.message().contains("SELECT"));
    }
}
