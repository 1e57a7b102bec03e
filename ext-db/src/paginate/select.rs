//! What [`paginate`](super::paginate) and keyset pages run: a statement with `?`
//! placeholders and its bound values.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};

use crate::Backend;

/// A value bound to a `?` of a [`Select`], or kept in a keyset cursor: the types every
/// backend of sqlx's `Any` driver carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SqlValue {
    /// A boolean.
    Bool(bool),
    /// An integer (bound as `BIGINT`).
    Int(i64),
    /// A floating-point number (bound as `DOUBLE`).
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

macro_rules! sql_value_from {
    ($($t:ty => $variant:ident($conv:expr)),* $(,)?) => {
        $(impl From<$t> for SqlValue {
            fn from(v: $t) -> Self {
                SqlValue::$variant($conv(v))
            }
        })*
    };
}

sql_value_from! {
    bool => Bool(|v| v),
    i16 => Int(i64::from),
    i32 => Int(i64::from),
    i64 => Int(|v| v),
    u16 => Int(i64::from),
    u32 => Int(i64::from),
    f32 => Float(f64::from),
    f64 => Float(|v| v),
    String => Text(|v| v),
    &str => Text(str::to_owned),
    Vec<u8> => Bytes(|v| v),
    &[u8] => Bytes(<[u8]>::to_vec),
}

/// Binds `values` to `query`, in order.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    values: &'q [SqlValue],
) -> Query<'q, Any, AnyArguments> {
    for v in values {
        query = match v {
            SqlValue::Bool(b) => query.bind(*b),
            SqlValue::Int(i) => query.bind(*i),
            SqlValue::Float(f) => query.bind(*f),
            SqlValue::Text(s) => query.bind(s.as_str()),
            SqlValue::Bytes(b) => query.bind(b.as_slice()),
        };
    }
    query
}

/// The backend behind a connection of sqlx's `Any` driver.
pub(crate) fn backend_of(conn: &AnyConnection) -> Backend {
    match conn.backend_name() {
        "PostgreSQL" => Backend::Postgres,
        "MySQL" => Backend::MySql,
        _ => Backend::Sqlite,
    }
}

/// Runs `sql` (with `?` placeholders) with `binds` and returns the rows.
pub(crate) async fn fetch_rows(
    conn: &mut AnyConnection,
    sql: &str,
    binds: &[SqlValue],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let sql = backend_of(conn).sql(sql).into_owned();
    bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
        .fetch_all(&mut *conn)
        .await
}

/// A `SELECT` statement with `?` placeholders and the values bound to them, in order: what
/// [`paginate`](crate::paginate()) and [`Keyset::page`](crate::Keyset::page) run. Write `?` on every backend;
/// it becomes `$1, $2, …` on PostgreSQL ([`Backend::sql`]).
///
/// The text is SQL you write: never build it from request input (bind that instead, and
/// order by an [`OrderBy`](crate::OrderBy)).
///
/// ```
/// use flagon_db::Select;
/// let select = Select::new("SELECT id, title FROM post WHERE author = ? AND draft = ?")
///     .bind(7)
///     .bind(false);
/// assert_eq!(select.binds().len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    sql: Cow<'static, str>,
    binds: Vec<SqlValue>,
}

impl Select {
    /// A statement with nothing bound yet. A trailing `;` (and whitespace) is dropped, since
    /// the statement is extended and nested.
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Select {
        let mut sql = sql.into();
        let trimmed = sql
            .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
            .len();
        if trimmed < sql.len() {
            sql.to_mut().truncate(trimmed);
        }
        Select {
            sql,
            binds: Vec::new(),
        }
    }

    /// Binds the next `?`.
    pub fn bind(mut self, value: impl Into<SqlValue>) -> Select {
        self.binds.push(value.into());
        self
    }

    /// The statement's text, with `?` placeholders.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bound values, in order.
    pub fn binds(&self) -> &[SqlValue] {
        &self.binds
    }
}
