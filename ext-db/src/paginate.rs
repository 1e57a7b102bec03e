//! Flask-SQLAlchemy's `paginate` (see [`paginate()`] and [`Pagination`]).

mod select;
mod template;

use flagon::HttpError;
use flagon::axum::extract::FromRequestParts;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::request::Parts;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, FromRow};

pub(crate) use select::fetch_rows;
pub use select::{Select, SqlValue};

/// Default of [`Paginate::per_page`]: 20, as in Flask-SQLAlchemy.
pub const DEFAULT_PER_PAGE: u64 = 20;
/// Default of [`Paginate::max_per_page`]: 100.
pub const DEFAULT_MAX_PER_PAGE: u64 = 100;
/// Longest `page`/`per_page` value read from a query string.
const MAX_PARAM_LEN: usize = 20;

/// `page` and `per_page` from the query string (Flask: `request.args`): an axum extractor.
///
/// Absent values take the defaults (page 1, and [`Paginate::per_page`]). A value that is not
/// a whole number of at least 1 (`page=0`, `page=-1`, `page=two`, `page=`, a repeated
/// parameter) is a 400 [`HttpError`] naming the parameter. `max_per_page` is applied by
/// [`paginate`], so a handler can choose its own.
///
/// ```
/// use flagon_db::PageRequest;
/// let req = PageRequest::from_query("page=3&per_page=50&q=rust").unwrap();
/// assert_eq!((req.page, req.per_page), (3, Some(50)));
/// let err = PageRequest::from_query("page=0").unwrap_err();
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// The page asked for, from 1.
    pub page: u64,
    /// Items per page asked for; `None` takes [`Paginate::per_page`].
    pub per_page: Option<u64>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            per_page: None,
        }
    }
}

impl PageRequest {
    /// Page `page` with `per_page` items (for code outside requests: CLI commands, tests).
    /// Values below 1 are handled by [`paginate`] as Flask does: an error under `error_out`,
    /// otherwise page 1 and the default page size.
    pub fn new(page: u64, per_page: u64) -> PageRequest {
        PageRequest {
            page,
            per_page: Some(per_page),
        }
    }

    /// Reads `page` and `per_page` from a query string (without the `?`); other parameters
    /// are ignored. Errors are 400s naming the parameter.
    pub fn from_query(query: &str) -> Result<PageRequest, HttpError> {
        let mut page = None;
        let mut per_page = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*key {
                "page" => &mut page,
                "per_page" => &mut per_page,
                _ => continue,
            };
            if slot.is_some() {
                return Err(HttpError::bad_request(format!(
                    "the `{key}` query parameter is given more than once"
                )));
            }
            *slot = Some(parse_count(&key, &value)?);
        }
        Ok(PageRequest {
            page: page.unwrap_or(1),
            per_page,
        })
    }
}

/// A whole number of at least 1, or a 400 naming `key`.
pub(crate) fn parse_count(key: &str, value: &str) -> Result<u64, HttpError> {
    let bad = || {
        HttpError::bad_request(format!(
            "the `{key}` query parameter must be a whole number from 1 up"
        ))
    };
    if value.is_empty() || value.len() > MAX_PARAM_LEN || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(bad()),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        PageRequest::from_query(parts.uri.query().unwrap_or(""))
    }
}

/// How [`paginate`] pages: Flask-SQLAlchemy's `paginate` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paginate {
    /// Items per page when the request names none (default 20).
    pub per_page: u64,
    /// The largest `per_page` honoured; bigger requests are cut down to it (default 100;
    /// `None` for no limit, which lets a client ask for the whole table).
    pub max_per_page: Option<u64>,
    /// Answer a page past the end (and, for pages built with [`PageRequest::new`], a page or
    /// page size below 1) with an error instead of an empty page (default true).
    pub error_out: bool,
    /// Run the `COUNT` query (default true). Without it `total` is `None`, and `pages` is
    /// 0, so `has_next` is false: Flask's behaviour.
    pub count: bool,
}

impl Default for Paginate {
    fn default() -> Self {
        Paginate {
            per_page: DEFAULT_PER_PAGE,
            max_per_page: Some(DEFAULT_MAX_PER_PAGE),
            error_out: true,
            count: true,
        }
    }
}

impl Paginate {
    /// Sets [`per_page`](Paginate::per_page).
    pub fn per_page(mut self, per_page: u64) -> Self {
        self.per_page = per_page;
        self
    }

    /// Sets [`max_per_page`](Paginate::max_per_page).
    pub fn max_per_page(mut self, max: Option<u64>) -> Self {
        self.max_per_page = max;
        self
    }

    /// Sets [`error_out`](Paginate::error_out).
    pub fn error_out(mut self, error_out: bool) -> Self {
        self.error_out = error_out;
        self
    }

    /// Sets [`count`](Paginate::count).
    pub fn count(mut self, count: bool) -> Self {
        self.count = count;
        self
    }

    /// The page and page size paginating `req` uses: Flask's `_prepare_page_args` on
    /// integers.
    fn prepare(&self, req: PageRequest) -> Result<(u64, u64), PaginateError> {
        let mut page = req.page;
        let mut per_page = req.per_page.unwrap_or(self.per_page);
        if let Some(max) = self.max_per_page {
            per_page = per_page.min(max);
        }
        if page < 1 {
            if self.error_out {
                return Err(PaginateError::InvalidPage { param: "page" });
            }
            page = 1;
        }
        if per_page < 1 {
            if self.error_out {
                return Err(PaginateError::InvalidPage { param: "per_page" });
            }
            per_page = DEFAULT_PER_PAGE;
        }
        Ok((page, per_page))
    }
}

/// Why [`paginate`] or [`Keyset::page`](crate::Keyset::page) gave no page. Converts into an
/// [`HttpError`] (and is a response itself), so handlers use `?`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaginateError {
    /// A page or page size below 1 under `error_out` (400).
    #[error("`{param}` must be a whole number from 1 up")]
    InvalidPage {
        /// `page` or `per_page`.
        param: &'static str,
    },
    /// The page is past the end under `error_out` (404).
    #[error("there is no page {page}")]
    OutOfRange {
        /// The page asked for.
        page: u64,
    },
    /// A keyset cursor that was not made by this listing with this key, or was altered (400).
    #[error("the page cursor is not valid for this listing")]
    BadCursor,
    /// A row's key column could not be read into a cursor (its type is not one a cursor
    /// keeps, or it is NULL): a mistake in the listing's definition (500).
    #[error("key column `{column}` of a keyset listing cannot go into a cursor: {reason}")]
    KeyColumn {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The database failed (500; the cause is logged, not shown).
    #[error("the page query failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<PaginateError> for HttpError {
    fn from(e: PaginateError) -> HttpError {
        match e {
            PaginateError::InvalidPage { .. } | PaginateError::BadCursor => {
                HttpError::bad_request(e.to_string())
            }
            PaginateError::OutOfRange { .. } => HttpError::not_found(e.to_string()),
            PaginateError::KeyColumn { .. } | PaginateError::Database(_) => HttpError::internal(e),
        }
    }
}

impl IntoResponse for PaginateError {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response()
    }
}

/// Runs `select` for one page, Flask-SQLAlchemy's `db.paginate`: the items with
/// `LIMIT per_page OFFSET (page - 1) * per_page`, then (unless `opts.count` is off)
/// `SELECT COUNT(*) FROM (select) AS …` for the total.
///
/// `db` is anything that gives an `Any` connection: `&AnyPool`, `&mut AnyConnection`, a
/// `&mut Transaction<Any>`. Rows become `T` through [`sqlx::FromRow`].
///
/// Errors: [`PaginateError::OutOfRange`] (404) for an empty page other than page 1 under
/// `error_out`; [`PaginateError::InvalidPage`] (400) for a page or page size below 1 under
/// `error_out` (a [`PageRequest`] from a query string never has one);
/// [`PaginateError::Database`] (500).
///
/// ```no_run
/// use flagon::HttpError;
/// use flagon_db::sqlx::{AnyPool, FromRow};
/// use flagon_db::{PageRequest, Paginate, Select, paginate};
///
/// #[derive(FromRow, serde::Serialize)]
/// struct Post {
///     id: i64,
///     title: String,
/// }
///
/// // `GET /posts?page=3&per_page=10`
/// async fn posts(pool: &AnyPool, page: PageRequest) -> Result<String, HttpError> {
///     let select = Select::new("SELECT id, title FROM post WHERE author = ? ORDER BY id").bind(7);
///     let posts = paginate::<Post, _>(pool, &select, page, &Paginate::default()).await?;
///     Ok(format!("page {} of {}: {} posts", posts.page, posts.pages(), posts.items.len()))
/// }
/// ```
///
/// The semantics are Flask-SQLAlchemy 3.1's, with one deliberate difference: a `page` or
/// `per_page` in the query string that is not a whole number of at least 1 is a **400** naming
/// the parameter (Flask answers 404). A page past the end is a 404 when
/// [`Paginate::error_out`] is on (the default), as in Flask.
///
/// The statement is run twice: `… LIMIT ? OFFSET ?` for the items, and
/// `SELECT COUNT(*) FROM (…)` for the total (skipped with [`Paginate::count`]` = false`, for
/// big tables). Give it an `ORDER BY`, or pages are in no particular order.
pub async fn paginate<'c, T, A>(
    db: A,
    select: &Select,
    req: PageRequest,
    opts: &Paginate,
) -> Result<Pagination<T>, PaginateError>
where
    A: sqlx::Acquire<'c, Database = Any>,
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let (page, per_page) = opts.prepare(req)?;
    let mut conn = db.acquire().await?;
    let conn: &mut AnyConnection = &mut conn;
    // An offset past what the database takes finds nothing, as a very large offset would.
    let offset = (page - 1)
        .checked_mul(per_page)
        .and_then(|o| i64::try_from(o).ok());
    let limit = i64::try_from(per_page).unwrap_or(i64::MAX);
    let items = match offset {
        Some(offset) => {
            // On a line of its own, so a trailing `-- comment` in the statement cannot swallow it.
            let sql = format!("{}\nLIMIT ? OFFSET ?", select.sql());
            let mut binds = select.binds().to_vec();
            binds.extend([SqlValue::Int(limit), SqlValue::Int(offset)]);
            let rows = fetch_rows(conn, &sql, &binds).await?;
            rows.iter()
                .map(T::from_row)
                .collect::<Result<Vec<T>, _>>()?
        }
        None => Vec::new(),
    };
    if items.is_empty() && page != 1 && opts.error_out {
        return Err(PaginateError::OutOfRange { page });
    }
    let total = if opts.count {
        let sql = format!("SELECT COUNT(*) FROM ({}\n) flagon_page", select.sql());
        let rows = fetch_rows(conn, &sql, select.binds()).await?;
        let n: i64 = match rows.first() {
            Some(row) => sqlx::Row::try_get(row, 0)?,
            None => 0,
        };
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    Ok(Pagination {
        page,
        per_page,
        max_per_page: opts.max_per_page,
        total,
        items,
    })
}

/// The arguments of [`Pagination::iter_pages`], with Flask-SQLAlchemy's defaults
/// (`left_edge=2, left_current=2, right_current=4, right_edge=2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterPages {
    /// Pages shown from the first page.
    pub left_edge: u64,
    /// Pages shown left of the current page.
    pub left_current: u64,
    /// Pages shown right of the current page (inclusive of `page + right_current`).
    pub right_current: u64,
    /// Pages shown from the last page.
    pub right_edge: u64,
}

impl Default for IterPages {
    fn default() -> Self {
        IterPages {
            left_edge: 2,
            left_current: 2,
            right_current: 4,
            right_edge: 2,
        }
    }
}

/// One page of results and where it sits: Flask-SQLAlchemy's `Pagination`.
///
/// Serialises (for templates and JSON) with its fields and the computed values: `page`,
/// `per_page`, `max_per_page`, `total`, `items`, `first`, `last`, `pages`, `has_prev`,
/// `prev_num`, `has_next`, `next_num`, and `page_numbers` (the default
/// [`iter_pages`](Pagination::iter_pages), gaps as `null`).
///
/// ```
/// use flagon_db::{IterPages, Pagination};
/// let p = Pagination { page: 7, per_page: 10, max_per_page: None, total: Some(200), items: vec![0u8; 10] };
/// assert_eq!((p.pages(), p.prev_num(), p.next_num()), (20, Some(6), Some(8)));
/// assert_eq!((p.first(), p.last()), (61, 70));
/// let n = |v: u64| Some(v);
/// assert_eq!(
///     p.iter_pages(IterPages::default()),
///     [n(1), n(2), None, n(5), n(6), n(7), n(8), n(9), n(10), n(11), None, n(19), n(20)]
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Pagination<T> {
    /// The current page, from 1.
    pub page: u64,
    /// The most items on a page.
    pub per_page: u64,
    /// The cap `per_page` was cut to, if any.
    pub max_per_page: Option<u64>,
    /// The number of items on all pages; `None` when the count was skipped.
    pub total: Option<u64>,
    /// The items on this page.
    pub items: Vec<T>,
}

impl<T> Pagination<T> {
    /// The number of pages: `ceil(total / per_page)`, 0 when the total is 0 or unknown.
    pub fn pages(&self) -> u64 {
        match self.total {
            None | Some(0) => 0,
            Some(total) => total.div_ceil(self.per_page.max(1)),
        }
    }

    /// Whether there is a page before this one.
    pub fn has_prev(&self) -> bool {
        self.page > 1
    }

    /// The previous page's number, if any.
    pub fn prev_num(&self) -> Option<u64> {
        self.has_prev().then(|| self.page - 1)
    }

    /// Whether there is a page after this one (`page < pages`).
    pub fn has_next(&self) -> bool {
        self.page < self.pages()
    }

    /// The next page's number, if any.
    pub fn next_num(&self) -> Option<u64> {
        self.has_next().then(|| self.page + 1)
    }

    /// The number of the first item on the page, counting from 1; 0 for an empty page.
    pub fn first(&self) -> u64 {
        if self.items.is_empty() {
            0
        } else {
            (self.page - 1) * self.per_page + 1
        }
    }

    /// The number of the last item on the page (inclusive); 0 for an empty page.
    pub fn last(&self) -> u64 {
        let first = self.first();
        first.max((first + self.items.len() as u64).saturating_sub(1))
    }

    /// Page numbers for a pagination widget, with `None` where pages are skipped: exactly
    /// Flask-SQLAlchemy 3.1's `iter_pages`. Empty when there are no pages.
    pub fn iter_pages(&self, args: IterPages) -> Vec<Option<u64>> {
        iter_pages(self.page, self.pages(), args)
    }

    /// The page links of a pagination widget: [`iter_pages`](Pagination::iter_pages) with a
    /// URL for each page from `url` (a closure around `url_for`), and the previous and next
    /// pages' URLs.
    ///
    /// ```
    /// # use flagon::{App, Route};
    /// # use flagon::config::{Config, Profile};
    /// use flagon_db::{IterPages, Pagination};
    /// # async fn posts() -> &'static str { "" }
    /// # let app = App::builder()
    /// #     .settings(Config::builder().profile(Profile::Testing).build().unwrap())
    /// #     .route(Route::get("/posts", posts))
    /// #     .build()
    /// #     .unwrap();
    /// let p = Pagination { page: 2, per_page: 10, max_per_page: None, total: Some(30), items: vec![(); 10] };
    /// let links = p.links(IterPages::default(), |n| app.url_for("posts", [("page", n)]))?;
    /// assert_eq!(links.prev.as_deref(), Some("/posts?page=1"));
    /// assert_eq!(links.pages[1].url.as_deref(), Some("/posts?page=2"));
    /// assert!(links.pages[1].current);
    /// # Ok::<(), flagon::UrlError>(())
    /// ```
    pub fn links<F, E>(&self, args: IterPages, mut url: F) -> Result<PageLinks, E>
    where
        F: FnMut(u64) -> Result<String, E>,
    {
        let mut pages = Vec::new();
        for n in self.iter_pages(args) {
            pages.push(match n {
                Some(n) => PageLink {
                    page: Some(n),
                    url: Some(url(n)?),
                    current: n == self.page,
                },
                None => PageLink {
                    page: None,
                    url: None,
                    current: false,
                },
            });
        }
        Ok(PageLinks {
            prev: self.prev_num().map(&mut url).transpose()?,
            next: self.next_num().map(&mut url).transpose()?,
            pages,
        })
    }

    /// The page with its items changed by `f` (rows into view models).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Pagination<U> {
        Pagination {
            page: self.page,
            per_page: self.per_page,
            max_per_page: self.max_per_page,
            total: self.total,
            items: self.items.into_iter().map(f).collect(),
        }
    }

    /// The items, by reference.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }
}

impl<T> IntoIterator for Pagination<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Pagination<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<T: Serialize> Serialize for Pagination<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Pagination", 13)?;
        st.serialize_field("page", &self.page)?;
        st.serialize_field("per_page", &self.per_page)?;
        st.serialize_field("max_per_page", &self.max_per_page)?;
        st.serialize_field("total", &self.total)?;
        st.serialize_field("items", &self.items)?;
        st.serialize_field("first", &self.first())?;
        st.serialize_field("last", &self.last())?;
        st.serialize_field("pages", &self.pages())?;
        st.serialize_field("has_prev", &self.has_prev())?;
        st.serialize_field("prev_num", &self.prev_num())?;
        st.serialize_field("has_next", &self.has_next())?;
        st.serialize_field("next_num", &self.next_num())?;
        st.serialize_field("page_numbers", &self.iter_pages(IterPages::default()))?;
        st.end()
    }
}

/// Flask-SQLAlchemy 3.1's `iter_pages`, on `page` of `pages`.
fn iter_pages(page: u64, pages: u64, args: IterPages) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    let pages_end = pages.saturating_add(1);
    if pages_end == 1 {
        return out;
    }
    let left_end = args.left_edge.saturating_add(1).min(pages_end);
    out.extend((1..left_end).map(Some));
    if left_end == pages_end {
        return out;
    }
    let mid_start = left_end.max(page.saturating_sub(args.left_current));
    let mid_end = page
        .saturating_add(args.right_current)
        .saturating_add(1)
        .min(pages_end);
    if mid_start > left_end {
        out.push(None);
    }
    out.extend((mid_start..mid_end).map(Some));
    if mid_end == pages_end {
        return out;
    }
    let right_start = mid_end.max(pages_end.saturating_sub(args.right_edge));
    if right_start > mid_end {
        out.push(None);
    }
    out.extend((right_start..pages_end).map(Some));
    out
}

/// The links [`Pagination::links`] builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageLinks {
    /// The previous page's URL, if there is one.
    pub prev: Option<String>,
    /// The next page's URL, if there is one.
    pub next: Option<String>,
    /// The numbered pages and gaps.
    pub pages: Vec<PageLink>,
}

/// One entry of a pagination widget: a page with its URL, or a gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageLink {
    /// The page number; `None` for a gap (render "…").
    pub page: Option<u64>,
    /// The page's URL; `None` for a gap.
    pub url: Option<String>,
    /// Whether this is the current page.
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(page: u64, per_page: u64, total: u64) -> Pagination<()> {
        let on_page = total.saturating_sub((page - 1) * per_page).min(per_page) as usize;
        Pagination {
            page,
            per_page,
            max_per_page: None,
            total: Some(total),
            items: vec![(); on_page],
        }
    }

    #[test]
    fn iter_pages_matches_flasks_documented_example() {
        let got = p(7, 1, 20).iter_pages(IterPages::default());
        let want: Vec<Option<u64>> = [1, 2, 0, 5, 6, 7, 8, 9, 10, 11, 0, 19, 20]
            .iter()
            .map(|&n| (n != 0).then_some(n))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_pages_no_numbers() {
        let empty = Pagination::<()> {
            page: 1,
            per_page: 20,
            max_per_page: None,
            total: Some(0),
            items: vec![],
        };
        assert!(empty.iter_pages(IterPages::default()).is_empty());
        assert_eq!((empty.first(), empty.last(), empty.pages()), (0, 0, 0));
    }

    #[test]
    fn query_parameters_are_whole_numbers_from_one() {
        for bad in [
            "page=0",
            "page=-1",
            "page=two",
            "page=",
            "page=1.5",
            "page=+3",
            "per_page=0",
            "page=99999999999999999999999",
            "page=1&page=2",
        ] {
            let err = PageRequest::from_query(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
        assert_eq!(PageRequest::from_query("").unwrap(), PageRequest::default());
        assert_eq!(
            PageRequest::from_query("per_page=5").unwrap(),
            PageRequest {
                page: 1,
                per_page: Some(5)
            }
        );
    }

    #[test]
    fn max_per_page_cuts_the_page_size() {
        let opts = Paginate::default().max_per_page(Some(30));
        assert_eq!(opts.prepare(PageRequest::new(2, 500)).unwrap(), (2, 30));
        let lenient = Paginate::default().error_out(false);
        assert_eq!(lenient.prepare(PageRequest::new(0, 0)).unwrap(), (1, 20));
        assert!(matches!(
            Paginate::default().prepare(PageRequest::new(0, 5)),
            Err(PaginateError::InvalidPage { param: "page" })
        ));
    }
}
