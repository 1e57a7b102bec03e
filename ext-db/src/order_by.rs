//! A typed sort allowlist (see [`OrderBy`]).

use std::fmt;
use std::marker::PhantomData;

use flagon::HttpError;
use flagon::axum::extract::FromRequestParts;
use flagon::http::request::Parts;

/// The longest `sort` value read; a longer one is a 400 without being parsed.
const MAX_SORT_LEN: usize = 256;

/// A column a listing may be sorted by: implement it for an enum of the allowed columns.
pub trait SortColumn: Copy + Eq + Send + Sync + 'static {
    /// Every allowed column, the first being the default order's.
    const ALL: &'static [Self];

    /// The query parameter the order is read from.
    const PARAM: &'static str = "sort";

    /// The name clients write (`title`; `-title` sorts descending).
    fn name(self) -> &'static str;

    /// The SQL the column sorts by (`post.title`, `lower(name)`): written by you, never by a
    /// client.
    fn sql(self) -> &'static str;

    /// The order used when the request names none: the first of [`ALL`](SortColumn::ALL),
    /// ascending, unless overridden.
    fn default_order() -> Vec<Sort<Self>> {
        Self::ALL
            .first()
            .map(|&c| Sort::asc(c))
            .into_iter()
            .collect()
    }
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Smallest first (`title`).
    Asc,
    /// Largest first (`-title`).
    Desc,
}

impl Direction {
    /// `ASC` or `DESC`.
    pub fn sql(self) -> &'static str {
        match self {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Asc => Direction::Desc,
            Direction::Desc => Direction::Asc,
        }
    }
}

/// One column of an order, with its direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort<T> {
    /// The column.
    pub column: T,
    /// Its direction.
    pub direction: Direction,
}

impl<T> Sort<T> {
    /// `column` ascending.
    pub fn asc(column: T) -> Sort<T> {
        Sort {
            column,
            direction: Direction::Asc,
        }
    }

    /// `column` descending.
    pub fn desc(column: T) -> Sort<T> {
        Sort {
            column,
            direction: Direction::Desc,
        }
    }
}

/// The order a request asked for, from the allowlist `T`: an axum extractor reading
/// [`T::PARAM`](SortColumn::PARAM) (`sort`) from the query string.
///
/// The value is a comma-separated list of column names, each optionally prefixed with `-`
/// for descending (`-created,title`). An empty or absent parameter gives
/// [`T::default_order`](SortColumn::default_order). Anything else (an unknown name, SQL,
/// whitespace, a column named twice, the parameter given twice, a value over 256 bytes) is a
/// 400 [`HttpError`] listing the allowed names; the rejected text is not echoed. The
/// client's text never reaches the SQL, which is built only from the `&'static str`s the
/// enum maps to.
///
/// ```
/// use flagon_db::{OrderBy, SortColumn};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// enum PostSort {
///     Title,
///     Created,
/// }
///
/// impl SortColumn for PostSort {
///     const ALL: &'static [Self] = &[PostSort::Title, PostSort::Created];
///     fn name(self) -> &'static str {
///         match self {
///             PostSort::Title => "title",
///             PostSort::Created => "created",
///         }
///     }
///     fn sql(self) -> &'static str {
///         match self {
///             PostSort::Title => "post.title",
///             PostSort::Created => "post.created_at",
///         }
///     }
/// }
///
/// let order = OrderBy::<PostSort>::from_query("sort=-created,title").unwrap();
/// assert_eq!(order.clause(), "ORDER BY post.created_at DESC, post.title ASC");
/// assert_eq!(OrderBy::<PostSort>::from_query("sort=name;DROP TABLE x--").unwrap_err().status(), 400);
///
/// // As an axum extractor: `async fn posts(order: OrderBy<PostSort>) -> …`
/// let sql = format!("SELECT id, title FROM post {}", order.clause());
/// # let _ = sql;
/// ```
pub struct OrderBy<T> {
    sorts: Vec<Sort<T>>,
    _t: PhantomData<fn() -> T>,
}

impl<T: SortColumn> OrderBy<T> {
    /// An order from `sorts` (for code that picks one itself).
    pub fn new(sorts: Vec<Sort<T>>) -> OrderBy<T> {
        OrderBy {
            sorts,
            _t: PhantomData,
        }
    }

    /// Parses the parameter's value (`-created,title`).
    pub fn parse(value: &str) -> Result<OrderBy<T>, HttpError> {
        if value.is_empty() {
            return Ok(OrderBy::default());
        }
        if value.len() > MAX_SORT_LEN {
            return Err(Self::rejection());
        }
        let mut sorts: Vec<Sort<T>> = Vec::new();
        for item in value.split(',') {
            let (direction, name) = match item.strip_prefix('-') {
                Some(name) => (Direction::Desc, name),
                None => (Direction::Asc, item),
            };
            let column = T::ALL
                .iter()
                .copied()
                .find(|c| c.name() == name)
                .ok_or_else(Self::rejection)?;
            if sorts.iter().any(|s| s.column == column) {
                return Err(HttpError::bad_request(format!(
                    "`{}` names the column `{}` twice",
                    T::PARAM,
                    column.name()
                )));
            }
            sorts.push(Sort { column, direction });
        }
        Ok(OrderBy::new(sorts))
    }

    /// Reads [`T::PARAM`](SortColumn::PARAM) from a query string (without the `?`).
    pub fn from_query(query: &str) -> Result<OrderBy<T>, HttpError> {
        let mut found = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key != T::PARAM {
                continue;
            }
            if found.is_some() {
                return Err(HttpError::bad_request(format!(
                    "the `{}` query parameter is given more than once",
                    T::PARAM
                )));
            }
            found = Some(value);
        }
        match found {
            Some(value) => OrderBy::parse(&value),
            None => Ok(OrderBy::default()),
        }
    }

    /// The 400 for a value that is not a list of allowed names.
    fn rejection() -> HttpError {
        let names: Vec<&str> = T::ALL.iter().map(|c| c.name()).collect();
        HttpError::bad_request(format!(
            "`{}` must be a comma-separated list of {} (each optionally prefixed with `-` \
             for descending order)",
            T::PARAM,
            names.join(", ")
        ))
    }

    /// The columns in order.
    pub fn sorts(&self) -> &[Sort<T>] {
        &self.sorts
    }

    /// The order as SQL, without the keyword: `post.created_at DESC, post.title ASC`. Built
    /// from [`SortColumn::sql`] only. Empty when the order is empty.
    pub fn sql(&self) -> String {
        let parts: Vec<String> = self
            .sorts
            .iter()
            .map(|s| format!("{} {}", s.column.sql(), s.direction.sql()))
            .collect();
        parts.join(", ")
    }

    /// `ORDER BY …`, or an empty string for an empty order.
    pub fn clause(&self) -> String {
        if self.sorts.is_empty() {
            String::new()
        } else {
            format!("ORDER BY {}", self.sql())
        }
    }

    /// `ORDER BY …` followed by `tiebreak` (usually the primary key) when the order does not
    /// already end with it, so rows that tie keep a stable order across pages.
    pub fn clause_with_tiebreak(&self, tiebreak: Sort<T>) -> String {
        let mut sorts = self.sorts.clone();
        if sorts.last().map(|s| s.column) != Some(tiebreak.column) {
            sorts.retain(|s| s.column != tiebreak.column);
            sorts.push(tiebreak);
        }
        OrderBy::new(sorts).clause()
    }

    /// The parameter's value for this order (`-created,title`), for page and column-header
    /// links.
    pub fn to_param(&self) -> String {
        let parts: Vec<String> = self
            .sorts
            .iter()
            .map(|s| match s.direction {
                Direction::Asc => s.column.name().to_owned(),
                Direction::Desc => format!("-{}", s.column.name()),
            })
            .collect();
        parts.join(",")
    }
}

impl<T: SortColumn> Default for OrderBy<T> {
    fn default() -> Self {
        OrderBy::new(T::default_order())
    }
}

impl<T: SortColumn> Clone for OrderBy<T> {
    fn clone(&self) -> Self {
        OrderBy::new(self.sorts.clone())
    }
}

impl<T: SortColumn + fmt::Debug> fmt::Debug for OrderBy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OrderBy").field(&self.sorts).finish()
    }
}

impl<T: SortColumn> PartialEq for OrderBy<T> {
    fn eq(&self, other: &Self) -> bool {
        self.sorts == other.sorts
    }
}

impl<T: SortColumn, S: Send + Sync> FromRequestParts<S> for OrderBy<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        OrderBy::from_query(parts.uri.query().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Col {
        Name,
        Id,
    }

    impl SortColumn for Col {
        const ALL: &'static [Self] = &[Col::Name, Col::Id];
        fn name(self) -> &'static str {
            match self {
                Col::Name => "name",
                Col::Id => "id",
            }
        }
        fn sql(self) -> &'static str {
            match self {
                Col::Name => "t.name",
                Col::Id => "t.id",
            }
        }
    }

    #[test]
    fn names_and_directions() {
        let o = OrderBy::<Col>::from_query("q=x&sort=-name,id").unwrap();
        assert_eq!(o.sorts(), [Sort::desc(Col::Name), Sort::asc(Col::Id)]);
        assert_eq!(o.sql(), "t.name DESC, t.id ASC");
        assert_eq!(o.to_param(), "-name,id");
        assert_eq!(
            OrderBy::<Col>::from_query("").unwrap().clause(),
            "ORDER BY t.name ASC"
        );
        assert_eq!(OrderBy::<Col>::parse("").unwrap(), OrderBy::default());
    }

    #[test]
    fn a_tiebreak_is_appended_once() {
        let o = OrderBy::<Col>::parse("-name").unwrap();
        assert_eq!(
            o.clause_with_tiebreak(Sort::asc(Col::Id)),
            "ORDER BY t.name DESC, t.id ASC"
        );
        let o = OrderBy::<Col>::parse("-id").unwrap();
        assert_eq!(
            o.clause_with_tiebreak(Sort::asc(Col::Id)),
            "ORDER BY t.id DESC"
        );
    }

    #[test]
    fn anything_else_is_a_400() {
        for bad in [
            "sort=nam",
            "sort=name,",
            "sort=name,name",
            "sort=--name",
            "sort=%20name",
            "sort=NAME",
            "sort=name&sort=id",
        ] {
            let err = OrderBy::<Col>::from_query(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
    }
}
