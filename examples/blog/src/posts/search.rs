//! `GET /search?q=` (`&page=`, `&sort=published|-published|title|-title`): full-text search
//! over published posts, paginated. SQLite: the FTS5 table `posts_fts`, the query's words
//! each quoted so that FTS syntax in them is plain text; PostgreSQL: the `search` tsvector
//! column against `websearch_to_tsquery('simple', …)`; MySQL/MariaDB: the FULLTEXT index in
//! natural language mode. The order comes from flagon-db's [`OrderBy`]: anything but the
//! listed names is a 400.

use axum::response::{IntoResponse, Response};
use flagon::extract::Query;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, Ext, HttpError};
use flagon_db::{
    Backend, Db, IterPages, OrderBy, PageRequest, Paginate, Select, SortColumn, paginate,
};
use flagon_i18n::Lang;
use serde::Deserialize;

use super::pages;
use crate::BlogConfig;
use crate::content::{POST_SELECT, Post};
use crate::models::status;

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// The most words of a query searched for.
pub const MAX_TERMS: usize = 16;

/// What search results may be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchSort {
    /// Publication time.
    Published,
    /// Title.
    Title,
}

impl SortColumn for SearchSort {
    const ALL: &'static [Self] = &[SearchSort::Published, SearchSort::Title];

    fn name(self) -> &'static str {
        match self {
            SearchSort::Published => "published",
            SearchSort::Title => "title",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            SearchSort::Published => "p.published_at",
            SearchSort::Title => "p.title",
        }
    }

    fn default_order() -> Vec<flagon_db::Sort<Self>> {
        vec![flagon_db::Sort::desc(SearchSort::Published)]
    }
}

/// The FTS5 `MATCH` text for a user's query: each word (at most 16, those with
/// a letter or digit) as a quoted string, `"` doubled, so operators, columns, `*`, `NEAR`
/// and unbalanced quotes are all plain text; `None` when no word is left.
///
/// ```
/// use example_blog::posts::fts5_query;
/// assert_eq!(fts5_query("rust async").as_deref(), Some("\"rust\" \"async\""));
/// assert_eq!(fts5_query("title:x OR \"y").as_deref(), Some("\"title:x\" \"OR\" \"\"\"y\""));
/// assert_eq!(fts5_query(" * - ( "), None);
/// ```
pub fn fts5_query(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split_whitespace()
        .filter(|t| t.chars().any(char::is_alphanumeric))
        .take(MAX_TERMS)
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// `q` with everything but letters and digits as spaces: MariaDB's full-text parser
/// refuses some punctuation (a lone `*`) even in natural language mode, where it only
/// separates words anyway.
fn words_only(q: &str) -> String {
    let spaced: String = q
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The statement finding published posts that match `q` on `backend`, in `order`; `None`
/// when `q` has nothing to search for.
pub fn search_select(backend: Backend, q: &str, order: &OrderBy<SearchSort>) -> Option<Select> {
    let (filter, value) = match backend {
        Backend::Sqlite => (
            "p.id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?)",
            fts5_query(q)?,
        ),
        Backend::Postgres => (
            "p.search @@ websearch_to_tsquery('simple', ?)",
            q.trim().to_owned(),
        ),
        Backend::MySql => (
            "MATCH (p.title, p.body_md) AGAINST (? IN NATURAL LANGUAGE MODE)",
            words_only(q),
        ),
    };
    if value.is_empty() {
        return None;
    }
    let sql = format!(
        "{POST_SELECT} WHERE p.status = ? AND {filter} {}, p.id DESC",
        order.clause()
    );
    Some(Select::new(sql).bind(status::PUBLISHED).bind(value))
}

/// `?q=`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    /// The words to find.
    #[serde(default)]
    pub q: Option<String>,
}

/// `GET /search`.
#[allow(clippy::too_many_arguments)]
pub async fn search(
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    blog: Ext<BlogConfig>,
    page: PageRequest,
    order: OrderBy<SearchSort>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, HttpError> {
    // Control characters (a NUL byte PostgreSQL would refuse) are spaces.
    let q: String = query
        .q
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(HttpError::bad_request(
            lang.t("search-too-long", [("max", MAX_QUERY_CHARS.to_string())]),
        ));
    }
    let sort = order.to_param();
    let mut results = None;
    if let Some(select) = search_select(db.backend(), &q, &order) {
        let opts = Paginate::default()
            .per_page(blog.per_page)
            .max_per_page(Some(50));
        let found = paginate::<Post, _>(db.pool(), &select, page, &opts).await?;
        let links = found
            .links(IterPages::default(), |n| {
                app.url_for(
                    "posts.search",
                    [
                        ("q", q.as_str()),
                        ("sort", sort.as_str()),
                        ("page", &n.to_string()),
                    ],
                )
            })
            .map_err(HttpError::internal)?;
        let total = found.total.unwrap_or(0);
        let posts = pages::cards(&db, found.items).await?;
        results = Some(context! { posts, links, total });
    }
    let html = tpl
        .render(
            "posts/search.html",
            context! { q, sort, results, searched => !q.trim().is_empty() },
        )
        .await?;
    Ok(html.into_response())
}
