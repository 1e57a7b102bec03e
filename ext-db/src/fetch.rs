//! `get_or_404` / `first_or_404`: a missing row is core's 404.

use flagon::HttpError;
use futures_util::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::QueryAs;
use sqlx::{Any, Executor, FromRow};

use crate::error::Error;

/// The row a lookup by key finds, or a 404 (Flask-SQLAlchemy's `get_or_404` / `one_or_404`):
/// no row and more than one row are both 404. The 404 is core's
/// [`HttpError`], so the app's error handlers and the `Accept` header decide its page.
///
/// ```
/// # async fn f(db: flagon_db::Db) -> Result<(), flagon_db::Error> {
/// #[derive(sqlx::FromRow)]
/// struct Post { id: i64, title: String }
///
/// let post: Post = flagon_db::get_or_404(
///     db.query_as("SELECT id, title FROM post WHERE id = ?").bind(7_i64),
///     &db,
/// )
/// .await?;
/// # let _ = (post.id, post.title); Ok(()) }
/// ```
pub async fn get_or_404<'e, T, X>(
    query: QueryAs<'e, Any, T, AnyArguments>,
    executor: X,
) -> Result<T, Error>
where
    X: Executor<'e, Database = Any> + 'e,
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin + 'e,
{
    let mut rows = query.fetch(executor);
    let Some(first) = rows.try_next().await? else {
        return Err(not_found());
    };
    if rows.try_next().await?.is_some() {
        return Err(not_found());
    }
    Ok(first)
}

/// The first row a query returns, or a 404 (Flask-SQLAlchemy's `first_or_404`).
pub async fn first_or_404<'e, T, X>(
    query: QueryAs<'e, Any, T, AnyArguments>,
    executor: X,
) -> Result<T, Error>
where
    X: Executor<'e, Database = Any> + 'e,
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin + 'e,
{
    query.fetch_optional(executor).await?.ok_or_else(not_found)
}

/// `.or_404()` on what `fetch_optional` returns, for any query.
pub trait OrNotFound<T> {
    /// The value, a 404 when there is none, or the database error.
    fn or_404(self) -> Result<T, Error>;
}

impl<T> OrNotFound<T> for Result<Option<T>, sqlx::Error> {
    fn or_404(self) -> Result<T, Error> {
        self?.ok_or_else(not_found)
    }
}

fn not_found() -> Error {
    Error::Http(HttpError::abort(flagon::http::StatusCode::NOT_FOUND))
}
