//! Keyset pagination: pages after or before a signed cursor (see [`Keyset`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagon::HttpError;
use flagon::axum::extract::FromRequestParts;
use flagon::http::request::Parts;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{Any, AnyConnection, FromRow, Row, ValueRef as _};

use crate::order_by::Direction;
use crate::paginate::{DEFAULT_MAX_PER_PAGE, DEFAULT_PER_PAGE, PaginateError, Select, SqlValue};

type HmacSha256 = Hmac<Sha256>;

/// The longest cursor accepted; a longer one is refused unread.
const MAX_CURSOR_LEN: usize = 2048;
/// The cursor format's version, signed with it.
const CURSOR_VERSION: &[u8] = b"flagon-db keyset cursor v1";

/// The key cursors are signed with. Give it [`derive_key`](flagon::AppHandle::derive_key)`("flagon-db.cursor")`
/// (so it follows the app's secret key, and a rotation invalidates old cursors).
#[derive(Clone)]
pub struct CursorKey(HmacSha256);

impl CursorKey {
    /// A key from raw bytes (at least 32 of them should be random).
    pub fn new(bytes: &[u8]) -> CursorKey {
        CursorKey(HmacSha256::new_from_slice(bytes).expect("HMAC takes keys of any length"))
    }
}

impl From<&flagon::DerivedKey> for CursorKey {
    fn from(key: &flagon::DerivedKey) -> CursorKey {
        CursorKey::new(key.as_bytes())
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// A listing paged by keyset: its name and the columns it is ordered by, the last unique.
///
/// Keyset pagination serves large tables: pages come after or before an opaque, signed
/// cursor instead of an `OFFSET`, so a page costs the same deep in the table as at its
/// start, and rows inserted or deleted meanwhile never shift a page (no row is shown twice
/// or skipped).
///
/// A [`Keyset`] names the columns a listing is ordered by; the last must be unique (the
/// primary key), so the order is total. A cursor holds the key values of one row, signed
/// with a [`CursorKey`] (HMAC-SHA256) together with the listing's name and columns: a client
/// can pass it back but not forge, alter or reuse it on another listing.
///
/// ```no_run
/// use flagon::HttpError;
/// use flagon_db::sqlx::{AnyPool, FromRow};
/// use flagon_db::{CursorKey, Keyset, KeysetRequest, Select};
///
/// #[derive(FromRow, serde::Serialize)]
/// struct Post {
///     id: i64,
///     score: i64,
///     title: String,
/// }
///
/// // `GET /posts?after=…` (the cursor key comes from `derive_key("flagon-db.cursor")`)
/// async fn posts(pool: &AnyPool, key: &CursorKey, req: KeysetRequest) -> Result<String, HttpError> {
///     let listing = Keyset::new("posts").desc("score").asc("id");
///     let select = Select::new("SELECT id, score, title FROM post WHERE draft = ?").bind(false);
///     let page = listing.page::<Post, _>(pool, &select, &req, key).await?;
///     Ok(format!("{} posts; next: {:?}", page.items.len(), page.next))
/// }
/// ```
///
/// The statement runs wrapped: `SELECT * FROM (select) AS flagon_keyset WHERE … ORDER BY …
/// LIMIT per_page + 1`, with the position written out as `a > ? OR (a = ? AND b > ?)` (the
/// form every backend accepts, mixed directions included). So the key columns are named as
/// the statement's *output* columns (aliases), and the statement has no `ORDER BY` or
/// `LIMIT` of its own. Key columns must not be NULL. An index on the key columns makes each
/// page an index range scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyset {
    name: &'static str,
    columns: Vec<(&'static str, Direction)>,
    per_page: u64,
    max_per_page: u64,
}

impl Keyset {
    /// A listing named `name` (signed into its cursors, so a cursor of one listing is refused
    /// by another), with no columns yet, 20 items a page and at most 100.
    pub fn new(name: &'static str) -> Keyset {
        Keyset {
            name,
            columns: Vec::new(),
            per_page: DEFAULT_PER_PAGE,
            max_per_page: DEFAULT_MAX_PER_PAGE,
        }
    }

    /// Orders by `column` ascending next.
    ///
    /// # Panics
    ///
    /// If `column` is not a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`): it is an output
    /// column name of your statement, written by you.
    pub fn asc(self, column: &'static str) -> Keyset {
        self.column(column, Direction::Asc)
    }

    /// Orders by `column` descending next (see [`asc`](Keyset::asc)).
    pub fn desc(self, column: &'static str) -> Keyset {
        self.column(column, Direction::Desc)
    }

    /// Orders by `column` in `direction` next (see [`asc`](Keyset::asc)).
    pub fn column(mut self, column: &'static str, direction: Direction) -> Keyset {
        let ident = column.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && column
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        assert!(
            ident,
            "keyset column `{column}` is not a plain identifier: name an output column of the statement (alias it)"
        );
        self.columns.push((column, direction));
        self
    }

    /// Items on a page when the request names none (default 20).
    pub fn per_page(mut self, per_page: u64) -> Keyset {
        self.per_page = per_page.max(1);
        self
    }

    /// The most items on a page; bigger requests are cut down to it (default 100).
    pub fn max_per_page(mut self, max: u64) -> Keyset {
        self.max_per_page = max.max(1);
        self
    }

    /// The `ORDER BY` of the listing, reversed for pages before a cursor.
    fn order_sql(&self, reverse: bool) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|(c, d)| {
                let d = if reverse { d.reverse() } else { *d };
                format!("{c} {}", d.sql())
            })
            .collect();
        parts.join(", ")
    }

    /// `a > ? OR (a = ? AND b > ?) …` for rows after `values` (before them if `reverse`),
    /// with its binds.
    fn position_sql(&self, values: &[SqlValue], reverse: bool) -> (String, Vec<SqlValue>) {
        let mut ors = Vec::with_capacity(self.columns.len());
        let mut binds = Vec::new();
        for (i, (column, direction)) in self.columns.iter().enumerate() {
            let mut ands: Vec<String> = Vec::with_capacity(i + 1);
            for (j, (earlier, _)) in self.columns[..i].iter().enumerate() {
                ands.push(format!("{earlier} = ?"));
                binds.push(values[j].clone());
            }
            let ascending = (*direction == Direction::Asc) != reverse;
            ands.push(format!("{column} {} ?", if ascending { ">" } else { "<" }));
            binds.push(values[i].clone());
            ors.push(format!("({})", ands.join(" AND ")));
        }
        (ors.join(" OR "), binds)
    }

    /// The MAC of a cursor's payload for this listing.
    fn mac(&self, key: &CursorKey, payload: &[u8]) -> HmacSha256 {
        let mut mac = key.0.clone();
        let mut part = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u32).to_be_bytes());
            mac.update(bytes);
        };
        part(CURSOR_VERSION);
        part(self.name.as_bytes());
        for (column, direction) in &self.columns {
            part(column.as_bytes());
            part(direction.sql().as_bytes());
        }
        part(payload);
        mac
    }

    /// The signed cursor for a row with key `values`.
    fn encode(&self, key: &CursorKey, values: &[SqlValue]) -> String {
        // A `Vec<SqlValue>` always serialises (a non-finite float is refused earlier).
        let payload = serde_json::to_vec(values).unwrap_or_default();
        let tag = self.mac(key, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The key values in `cursor`, if it is one of this listing's, signed with `key`.
    fn decode(&self, key: &CursorKey, cursor: &str) -> Result<Vec<SqlValue>, PaginateError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(PaginateError::BadCursor);
        }
        let (payload, tag) = cursor.split_once('.').ok_or(PaginateError::BadCursor)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| PaginateError::BadCursor)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| PaginateError::BadCursor)?;
        self.mac(key, &payload)
            .verify_slice(&tag)
            .map_err(|_| PaginateError::BadCursor)?;
        let values: Vec<SqlValue> =
            serde_json::from_slice(&payload).map_err(|_| PaginateError::BadCursor)?;
        if values.len() != self.columns.len() {
            return Err(PaginateError::BadCursor);
        }
        Ok(values)
    }

    /// The key values of `row`.
    fn key_of(&self, row: &AnyRow) -> Result<Vec<SqlValue>, PaginateError> {
        self.columns
            .iter()
            .map(|&(column, _)| key_value(row, column))
            .collect()
    }

    /// One page of `select` after or before the request's cursor (the first page without
    /// one). `db` is `&AnyPool`, `&mut AnyConnection` or a `&mut Transaction<Any>`.
    ///
    /// Errors: [`PaginateError::BadCursor`] (400) for a cursor that is not this listing's
    /// under `key`; [`PaginateError::KeyColumn`] (500) for a key column that is NULL or of a
    /// type a cursor does not keep; [`PaginateError::Database`] (500).
    ///
    /// # Panics
    ///
    /// If the listing has no columns.
    pub async fn page<'c, T, A>(
        &self,
        db: A,
        select: &Select,
        req: &KeysetRequest,
        key: &CursorKey,
    ) -> Result<KeysetPage<T>, PaginateError>
    where
        A: sqlx::Acquire<'c, Database = Any>,
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        assert!(
            !self.columns.is_empty(),
            "keyset listing `{}` has no columns",
            self.name
        );
        let per_page = req
            .per_page
            .unwrap_or(self.per_page)
            .clamp(1, self.max_per_page);
        let (cursor, before) = match (&req.after, &req.before) {
            (Some(c), None) => (Some(self.decode(key, c)?), false),
            (None, Some(c)) => (Some(self.decode(key, c)?), true),
            (None, None) => (None, false),
            (Some(_), Some(_)) => return Err(PaginateError::BadCursor),
        };
        let mut sql = format!("SELECT * FROM ({}\n) flagon_keyset", select.sql());
        let mut binds = select.binds().to_vec();
        if let Some(values) = &cursor {
            let (position, more) = self.position_sql(values, before);
            sql.push_str(" WHERE ");
            sql.push_str(&position);
            binds.extend(more);
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(&self.order_sql(before));
        sql.push_str(" LIMIT ?");
        binds.push(SqlValue::Int(
            i64::try_from(per_page + 1).unwrap_or(i64::MAX),
        ));

        let mut conn = db.acquire().await?;
        let conn: &mut AnyConnection = &mut conn;
        let mut rows = crate::paginate::fetch_rows(conn, &sql, &binds).await?;
        let more = rows.len() as u64 > per_page;
        rows.truncate(per_page as usize);
        if before {
            rows.reverse();
        }
        let items = rows
            .iter()
            .map(T::from_row)
            .collect::<Result<Vec<T>, _>>()?;
        let first = rows.first().map(|r| self.key_of(r)).transpose()?;
        let last = rows.last().map(|r| self.key_of(r)).transpose()?;
        // Going forward, rows lie before the cursor; going back, after it.
        let (has_prev, has_next) = match (&cursor, before) {
            (None, _) => (false, more),
            (Some(_), false) => (true, more),
            (Some(_), true) => (more, true),
        };
        Ok(KeysetPage {
            items,
            prev: first.filter(|_| has_prev).map(|v| self.encode(key, &v)),
            next: last.filter(|_| has_next).map(|v| self.encode(key, &v)),
        })
    }
}

/// The value of key column `column` of `row`, as a cursor keeps it.
fn key_value(row: &AnyRow, column: &'static str) -> Result<SqlValue, PaginateError> {
    let bad = |reason: String| PaginateError::KeyColumn { column, reason };
    let raw = row.try_get_raw(column)?;
    if raw.is_null() {
        return Err(bad("it is NULL in a row".into()));
    }
    let kind = raw.type_info().kind();
    let value = match kind {
        AnyTypeInfoKind::Bool => SqlValue::Bool(row.try_get(column)?),
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
            SqlValue::Int(row.try_get(column)?)
        }
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
            let f: f64 = row.try_get(column)?;
            if !f.is_finite() {
                return Err(bad(format!("{f} cannot go into a cursor")));
            }
            SqlValue::Float(f)
        }
        AnyTypeInfoKind::Text => SqlValue::Text(row.try_get(column)?),
        AnyTypeInfoKind::Blob => SqlValue::Bytes(row.try_get(column)?),
        AnyTypeInfoKind::Null => return Err(bad("it is NULL in a row".into())),
    };
    Ok(value)
}

/// `after`, `before` and `per_page` from the query string: an axum extractor. A cursor is
/// checked when the page is fetched; this only refuses a request naming both, a repeated
/// parameter, or a `per_page` that is not a whole number from 1 (400s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeysetRequest {
    /// The cursor of the row the page starts after.
    pub after: Option<String>,
    /// The cursor of the row the page ends before.
    pub before: Option<String>,
    /// Items per page asked for; `None` takes the listing's default.
    pub per_page: Option<u64>,
}

impl KeysetRequest {
    /// Reads the parameters from a query string (without the `?`).
    pub fn from_query(query: &str) -> Result<KeysetRequest, HttpError> {
        let mut req = KeysetRequest::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let twice = || {
                HttpError::bad_request(format!(
                    "the `{key}` query parameter is given more than once"
                ))
            };
            match &*key {
                "after" | "before" => {
                    let slot = if key == "after" {
                        &mut req.after
                    } else {
                        &mut req.before
                    };
                    if slot.is_some() {
                        return Err(twice());
                    }
                    *slot = Some(value.into_owned());
                }
                "per_page" => {
                    if req.per_page.is_some() {
                        return Err(twice());
                    }
                    req.per_page = Some(crate::paginate::parse_count(&key, &value)?);
                }
                _ => {}
            }
        }
        if req.after.is_some() && req.before.is_some() {
            return Err(HttpError::bad_request("give `after` or `before`, not both"));
        }
        Ok(req)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for KeysetRequest {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        KeysetRequest::from_query(parts.uri.query().unwrap_or(""))
    }
}

/// One page of a keyset listing. Serialisable for templates and JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeysetPage<T> {
    /// The rows, in the listing's order.
    pub items: Vec<T>,
    /// The cursor for the next page (`?after=…`), if there are rows after this page.
    pub next: Option<String>,
    /// The cursor for the previous page (`?before=…`), if there are rows before this page
    /// (an empty page past a cursor has none).
    pub prev: Option<String>,
}

impl<T> KeysetPage<T> {
    /// Whether there are rows after this page.
    pub fn has_next(&self) -> bool {
        self.next.is_some()
    }

    /// Whether there are rows before this page.
    pub fn has_prev(&self) -> bool {
        self.prev.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_is_written_out_per_column() {
        let k = Keyset::new("t").desc("score").asc("id");
        let v = [SqlValue::Int(5), SqlValue::Int(9)];
        let (sql, binds) = k.position_sql(&v, false);
        assert_eq!(sql, "(score < ?) OR (score = ? AND id > ?)");
        assert_eq!(binds, [v[0].clone(), v[0].clone(), v[1].clone()]);
        let (sql, _) = k.position_sql(&v, true);
        assert_eq!(sql, "(score > ?) OR (score = ? AND id < ?)");
        assert_eq!(k.order_sql(false), "score DESC, id ASC");
        assert_eq!(k.order_sql(true), "score ASC, id DESC");
    }

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let key = CursorKey::new(&[7; 32]);
        let k = Keyset::new("posts").asc("id");
        let c = k.encode(&key, &[SqlValue::Int(42)]);
        assert_eq!(k.decode(&key, &c).unwrap(), [SqlValue::Int(42)]);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(b"[{\"Int\":43}]"),
            c.split_once('.').unwrap().1
        );
        for bad in [
            forged.as_str(),
            "",
            ".",
            "abc",
            &c[1..],
            &"x".repeat(MAX_CURSOR_LEN + 1),
        ] {
            assert!(
                matches!(k.decode(&key, bad), Err(PaginateError::BadCursor)),
                "{bad}"
            );
        }
        let other_key = CursorKey::new(&[8; 32]);
        assert!(k.decode(&other_key, &c).is_err(), "another key");
        let other_listing = Keyset::new("users").asc("id");
        assert!(other_listing.decode(&key, &c).is_err(), "another listing");
        let other_order = Keyset::new("posts").desc("id");
        assert!(other_order.decode(&key, &c).is_err(), "another order");
    }

    #[test]
    fn requests_name_one_cursor() {
        assert!(KeysetRequest::from_query("after=a&before=b").is_err());
        assert!(KeysetRequest::from_query("after=a&after=b").is_err());
        assert_eq!(
            KeysetRequest::from_query("per_page=0")
                .unwrap_err()
                .status(),
            400
        );
        let r = KeysetRequest::from_query("after=abc.def&per_page=5").unwrap();
        assert_eq!((r.after.as_deref(), r.per_page), (Some("abc.def"), Some(5)));
    }
}
