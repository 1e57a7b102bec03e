//! [`Tx`]: one transaction per request, and [`TxConn`], a transaction's connection.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use flagon::axum::extract::FromRequestParts;
use flagon::http::request::Parts;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::AnyConnection;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, Either, Execute, Executor, SqlStr};

use crate::backend::Backend;
use crate::db::{Db, PoolInner, RequestDb, replay};
use crate::error::Error;
use crate::stats::{Probe, TimedStream, TxOutcome};

/// How long a rollback of an abandoned transaction may take before its connection is given up.
const ROLLBACK_BOUND: Duration = Duration::from_secs(10);

/// `sql` with `?` placeholders rewritten for `backend`, as sqlx's query text.
pub(crate) fn to_sql(backend: Backend, sql: &str) -> SqlStr {
    sqlx::AssertSqlSafe(backend.sql(sql).into_owned()).into_sql_str()
}

use sqlx::SqlSafeStr as _;

/// A request's transaction, as the request holds it.
pub(crate) enum Slot {
    /// No transaction yet (or it was committed or rolled back by the handler).
    Empty,
    /// Begun, and no [`Tx`] holds it now.
    Idle(TxConn),
    /// A [`Tx`] holds it.
    InUse,
    /// The response is out: the transaction was settled.
    Finished,
}

/// What a request's slot held when its response was ready.
pub(crate) enum Settled {
    /// No open transaction.
    Nothing,
    /// An open transaction, to commit or roll back.
    Open(TxConn),
    /// A [`Tx`] was still alive: the handler panicked holding it (core keeps the panicked
    /// future until the response is sent) or moved it into a task. It rolls back when dropped.
    StillHeld,
}

impl Slot {
    /// Marks the request finished and hands out what it held.
    pub(crate) fn finish(&mut self) -> Settled {
        match std::mem::replace(self, Slot::Finished) {
            Slot::Idle(conn) => Settled::Open(conn),
            Slot::InUse => Settled::StillHeld,
            Slot::Empty | Slot::Finished => Settled::Nothing,
        }
    }
}

/// An open transaction on a pooled connection: what [`Tx`] derefs to and what
/// [`Db::begin`] returns. `&mut TxConn` is an [`Executor`]: run statements on `&mut *tx`.
///
/// Dropped without [`commit`](TxConn::commit), it is rolled back at once on a background
/// task, and its connection goes back to the pool.
pub struct TxConn {
    tx: Option<sqlx::Transaction<'static, Any>>,
    probe: Probe,
}

impl std::fmt::Debug for TxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxConn")
            .field("bind", &self.probe.pool.label())
            .finish()
    }
}

/// Begins a transaction on `pool` (`BEGIN IMMEDIATE` on SQLite), counted for `request`.
pub(crate) async fn begin(
    pool: &Arc<PoolInner>,
    request: Option<Arc<RequestDb>>,
) -> Result<TxConn, Error> {
    let begun = match crate::pool::begin_statement(pool.settings.backend) {
        Some(statement) => pool.pool().begin_with(statement).await,
        None => pool.pool().begin().await,
    };
    if let Some(r) = &request {
        r.counters.connection();
    }
    match begun {
        Ok(tx) => Ok(TxConn {
            tx: Some(tx),
            probe: Probe {
                pool: pool.clone(),
                request: request.as_ref().map(Arc::downgrade),
            },
        }),
        Err(e) => {
            if matches!(e, sqlx::Error::PoolTimedOut) {
                pool.counters.busy();
                if let Some(r) = &request {
                    r.counters
                        .busy
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e.into())
        }
    }
}

impl TxConn {
    /// The connection itself, for APIs that take `&mut AnyConnection` (statements run on it
    /// directly are not counted).
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.tx
            .as_deref_mut()
            .expect("a TxConn holds its transaction until consumed")
    }

    /// The backend of the transaction's database.
    pub fn backend(&self) -> Backend {
        self.probe.pool.settings.backend
    }

    /// `sql` with `?` placeholders rewritten for this backend.
    pub fn sql(&self, sql: &str) -> SqlStr {
        to_sql(self.backend(), sql)
    }

    /// `sqlx::query` on [`TxConn::sql`]`(sql)`.
    pub fn query(&self, sql: &str) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        sqlx::query(self.sql(sql))
    }

    /// `sqlx::query_as::<_, T>` on [`TxConn::sql`]`(sql)`.
    pub fn query_as<T>(
        &self,
        sql: &str,
    ) -> sqlx::query::QueryAs<'static, Any, T, sqlx::any::AnyArguments>
    where
        T: for<'r> sqlx::FromRow<'r, AnyRow>,
    {
        sqlx::query_as(self.sql(sql))
    }

    /// `sqlx::query_scalar::<_, T>` on [`TxConn::sql`]`(sql)`.
    pub fn query_scalar<T>(
        &self,
        sql: &str,
    ) -> sqlx::query::QueryScalar<'static, Any, T, sqlx::any::AnyArguments>
    where
        (T,): for<'r> sqlx::FromRow<'r, AnyRow>,
    {
        sqlx::query_scalar(self.sql(sql))
    }

    /// Commits.
    pub async fn commit(mut self) -> Result<(), Error> {
        match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(Error::from),
            None => Ok(()),
        }
    }

    /// Rolls back.
    pub async fn rollback(mut self) -> Result<(), Error> {
        match self.tx.take() {
            Some(tx) => tx.rollback().await.map_err(Error::from),
            None => Ok(()),
        }
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        // sqlx would queue the ROLLBACK until the connection's next use; send it now, so no
        // session stays `idle in transaction` holding its locks.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let bind = self.probe.pool.label().to_owned();
        rt.spawn(async move {
            match tokio::time::timeout(ROLLBACK_BOUND, tx.rollback()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(target: "flagon_db", bind, error = %e, "rollback of an abandoned transaction failed")
                }
                Err(_) => {
                    tracing::warn!(target: "flagon_db", bind, bound = ?ROLLBACK_BOUND, "rollback of an abandoned transaction timed out")
                }
            }
        });
    }
}

impl<'c> Executor<'c> for &'c mut TxConn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let replay = match replay(query) {
            Ok(r) => r,
            Err(e) => return futures_util::stream::once(async { Err(e) }).boxed(),
        };
        let timing = self.probe.start(&replay.sql);
        TimedStream {
            inner: self.conn().fetch_many(replay),
            timing,
        }
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let replay = match replay(query) {
            Ok(r) => r,
            Err(e) => return futures_util::future::ready(Err(e)).boxed(),
        };
        let mut timing = self.probe.start(&replay.sql);
        let conn = self.conn();
        async move {
            let out = conn.fetch_optional(replay).await;
            if let Err(e) = &out {
                timing.failed(e);
            }
            drop(timing);
            out
        }
        .boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.conn().prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.conn().describe(sql)
    }
}

/// The request's transaction on the main database, begun on first extraction (`BEGIN
/// IMMEDIATE` on SQLite) and settled after the response: **committed** when the response is
/// 2xx or 3xx, **rolled back** on any other status, an error, a panic, a timeout or a request
/// dropped because the client went away.
///
/// Run statements on `&mut *tx` (it derefs to [`TxConn`], whose `&mut` is an executor):
///
/// ```
/// use flagon::HttpError;
/// use flagon_db::Tx;
///
/// async fn rename(mut tx: Tx) -> Result<&'static str, HttpError> {
///     tx.query("UPDATE item SET name = ? WHERE id = ?")
///         .bind("new name")
///         .bind(1_i64)
///         .execute(&mut *tx)
///         .await
///         .map_err(flagon_db::Error::from)?;
///     Ok("renamed") // 200: committed after the response is ready
/// }
/// ```
///
/// Extracting `Tx` again later in the same request (in a decorator, then the handler) hands
/// out the same transaction; two at the same time are a 500 ([`Error::TxInUse`]).
/// [`Tx::commit`] / [`Tx::rollback`] end it early; a later `Tx` in the request begins a new
/// one. A failing `BEGIN` rejects the request with [`Error`]'s status (503 + `Retry-After`
/// when the pool is exhausted).
pub struct Tx {
    conn: Option<TxConn>,
    request: Arc<RequestDb>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tx {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db = Db::from_request_parts(parts, state).await?;
        let Some(request) = db.request().cloned() else {
            return Err(Error::Http(flagon::HttpError::internal(
                "Tx extracted outside a Flagon request",
            )));
        };
        {
            let mut slot = request.slot.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *slot, Slot::InUse) {
                Slot::Idle(conn) => {
                    drop(slot);
                    return Ok(Tx {
                        conn: Some(conn),
                        request,
                    });
                }
                Slot::Empty => {}
                other => {
                    *slot = other;
                    return Err(Error::TxInUse);
                }
            }
        }
        match begin(db.pool_inner(), Some(request.clone())).await {
            Ok(conn) => Ok(Tx {
                conn: Some(conn),
                request,
            }),
            Err(e) => {
                *request.slot.lock().unwrap_or_else(|e| e.into_inner()) = Slot::Empty;
                Err(e)
            }
        }
    }
}

impl Tx {
    fn take(&mut self) -> Option<TxConn> {
        let conn = self.conn.take();
        let mut slot = self.request.slot.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*slot, Slot::InUse) {
            *slot = Slot::Empty;
        }
        conn
    }

    /// Commits now (before the response); a later [`Tx`] in this request begins a new
    /// transaction.
    pub async fn commit(mut self) -> Result<(), Error> {
        let Some(conn) = self.take() else {
            return Ok(());
        };
        let out = conn.commit().await;
        let outcome = match out {
            Ok(()) => TxOutcome::Committed,
            Err(_) => TxOutcome::CommitFailed,
        };
        *self
            .request
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        out
    }

    /// Rolls back now (before the response).
    pub async fn rollback(mut self) -> Result<(), Error> {
        let Some(conn) = self.take() else {
            return Ok(());
        };
        *self
            .request
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(TxOutcome::RolledBack);
        conn.rollback().await
    }
}

impl Deref for Tx {
    type Target = TxConn;

    fn deref(&self) -> &TxConn {
        self.conn
            .as_ref()
            .expect("a Tx holds its transaction until dropped")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut TxConn {
        self.conn
            .as_mut()
            .expect("a Tx holds its transaction until dropped")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut slot = self.request.slot.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*slot, Slot::InUse) {
            *slot = Slot::Idle(conn);
        } else {
            // The request was settled without it (see `Settled::StillHeld`): roll back.
            drop(slot);
            drop(conn);
        }
    }
}
