//! The shared part of the index and of a post page, rendered once per locale and kept in
//! flagon-cache.
//!
//! Why not the view cache or template fragments: every page shows the nav (the current
//! user, flashed messages, a CSRF token in the logout form), which reads the session, so
//! flagon-cache's view cache rightly refuses the whole page (`Vary: Cookie`); and a
//! `cache_fragment` block inside a template saves only the rendering, not the queries the
//! handler already ran to fill it. So the part every visitor shares is a memoized value
//! ([`CacheHandle::memoize`]): its loader runs the queries and renders the partial with
//! [`Templates::for_locale`], which sees no request and no session: nothing per-user can
//! reach the entry. The key is the locale and the page (and, for a post, whether the viewer
//! moderates: editors also see hidden comments). The page around it (nav, forms, buttons)
//! is rendered per request.
//!
//! Invalidation is one write ([`posts_changed`], [`crate::content::changed`]): the memo's namespace gets a fresh version, in
//! the cache itself. With Redis that version is read from Redis on every lookup, so a post
//! edited on one instance is fresh on all of them at once (no `sync_interval`, which only
//! fragment generations have). Call it after the transaction commits: an instance that
//! loads in between would otherwise cache the old rows under the new version.

use std::sync::Arc;
use std::time::Duration;

use flagon::http::StatusCode;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, HttpError, Locale, tracing};
use flagon_cache::{CacheHandle, Caches};
use flagon_db::{Db, IterPages, PageRequest, Paginate, Select, paginate};
use serde::{Deserialize, Serialize};

use super::dates::Date;
use crate::content::{POST_SELECT, Post, excerpt};
use crate::models::{comment_status, status};

/// How long a cached page part is kept when nothing changes.
pub const TTL: Duration = Duration::from_secs(300);
/// The memo of the index's post lists.
pub const INDEX_MEMO: &str = "blog.posts.index";
/// The memo of post pages' articles and comments.
pub const SHOW_MEMO: &str = "blog.posts.show";
/// Replies nest this deep at most; deeper ones are shown at this depth.
pub const MAX_DEPTH: usize = 6;

/// A post in a list (index, search).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostCard {
    /// Primary key.
    pub id: i64,
    /// URL slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// The author's username.
    pub author: String,
    /// The category's name.
    pub category: Option<String>,
    /// Tag names.
    pub tags: Vec<String>,
    /// The image's file name under `/uploads/`.
    pub image: Option<String>,
    /// Published (or, for a draft, created).
    pub date: Date,
    /// The first words of the body, as text.
    pub excerpt: String,
}

impl PostCard {
    /// The card of `post`, with its `tags`.
    pub fn new(post: Post, tags: Vec<String>) -> PostCard {
        PostCard {
            id: post.id,
            date: Date::from_unix(post.published_at.unwrap_or(post.created_at)),
            excerpt: excerpt(&post.body_md, 240),
            slug: post.slug,
            title: post.title,
            author: post.author,
            category: post.category,
            tags,
            image: post.image,
        }
    }
}

/// The cards of `posts`, each with its tags.
pub async fn cards(db: &Db, posts: Vec<Post>) -> Result<Vec<PostCard>, flagon_db::Error> {
    let mut out = Vec::with_capacity(posts.len());
    for post in posts {
        let tags = post.tags(db).await?;
        out.push(PostCard::new(post, tags));
    }
    Ok(out)
}

/// A post page's shared part, as cached.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShowPage {
    /// The post's id.
    pub id: i64,
    /// Its slug.
    pub slug: String,
    /// Its title (for `<title>`).
    pub title: String,
    /// Who wrote it (for the visibility and edit checks, made per request).
    pub author_id: i64,
    /// `draft` or `published`.
    pub status: String,
    /// The comments a reply may answer: id and author.
    pub comments: Vec<(i64, String)>,
    /// The rendered article and comment tree.
    pub html: String,
}

/// One comment with its replies, for the template.
#[derive(Clone, Debug, Serialize)]
pub struct CommentNode {
    /// Primary key (the anchor `#comment-ID`).
    pub id: i64,
    /// The author's username.
    pub author: String,
    /// The text (escaped by the template).
    pub body: String,
    /// When written.
    pub date: Date,
    /// Hidden by a moderator (shown to moderators only, marked).
    pub hidden: bool,
    /// Hidden, shown to others as a placeholder because it has visible replies.
    pub removed: bool,
    /// Replies, oldest first.
    pub children: Vec<CommentNode>,
}

/// A stored comment.
#[derive(Clone, Debug, flagon_db::sqlx::FromRow)]
pub struct CommentRow {
    /// Primary key.
    pub id: i64,
    /// The comment answered, if any.
    pub parent_id: Option<i64>,
    /// The author's username.
    pub author: String,
    /// The text.
    pub body: String,
    /// `visible` or `hidden`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The comments of `post_id`, oldest first.
pub async fn comment_rows(db: &Db, post_id: i64) -> Result<Vec<CommentRow>, flagon_db::Error> {
    Ok(db
        .query_as::<CommentRow>(
            "SELECT c.id, c.parent_id, u.username AS author, c.body, c.status, c.created_at \
             FROM comments c JOIN users u ON u.id = c.author_id \
             WHERE c.post_id = ? ORDER BY c.id",
        )
        .bind(post_id)
        .fetch_all(db)
        .await?)
}

/// The comment tree of `rows` (ordered by id, so parents come first). Replies deeper than
/// [`MAX_DEPTH`] join their parent's level; a reply whose parent is unknown is top-level.
/// Hidden comments are kept (marked) for moderators; for others one without visible
/// replies goes, one with replies stays as a placeholder without its text.
pub fn comment_tree(rows: &[CommentRow], moderator: bool) -> Vec<CommentNode> {
    use std::collections::HashMap;
    // For each comment: its depth and the id it is shown under.
    let mut placed: HashMap<i64, (usize, Option<i64>)> = HashMap::new();
    let mut children: HashMap<Option<i64>, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (depth, under) = match row.parent_id.and_then(|p| placed.get(&p).map(|d| (p, *d))) {
            None => (0, None),
            Some((p, (d, _))) if d + 1 < MAX_DEPTH => (d + 1, Some(p)),
            Some((_, (d, under))) => (d, under),
        };
        placed.insert(row.id, (depth, under));
        children.entry(under).or_default().push(i);
    }
    fn build(
        under: Option<i64>,
        rows: &[CommentRow],
        children: &HashMap<Option<i64>, Vec<usize>>,
        moderator: bool,
    ) -> Vec<CommentNode> {
        let mut out = Vec::new();
        for &i in children.get(&under).map(Vec::as_slice).unwrap_or(&[]) {
            let row = &rows[i];
            let kids = build(Some(row.id), rows, children, moderator);
            let hidden = row.status == comment_status::HIDDEN;
            if hidden && !moderator && kids.is_empty() {
                continue;
            }
            let removed = hidden && !moderator;
            out.push(CommentNode {
                id: row.id,
                author: if removed {
                    String::new()
                } else {
                    row.author.clone()
                },
                body: if removed {
                    String::new()
                } else {
                    row.body.clone()
                },
                date: Date::from_unix(row.created_at),
                hidden,
                removed,
                children: kids,
            });
        }
        out
    }
    build(None, rows, &children, moderator)
}

/// Why a cached part could not be made: a status and message, kept to rebuild the
/// [`HttpError`] (errors are never cached).
#[derive(Debug)]
struct Failure(StatusCode, String);

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Failure {
        if e.status().is_server_error() {
            tracing::error!("blog page part: {e}");
        }
        Failure(e.status(), e.message().to_owned())
    }
}

fn rebuild(f: Arc<Failure>) -> HttpError {
    HttpError::new(f.0, f.1.clone())
}

/// The app's default cache, when flagon-cache is registered.
pub fn default_cache(app: &AppHandle) -> Option<CacheHandle> {
    Caches::of(app).map(|c| c.default().clone())
}

fn templates(app: &AppHandle, locale: &str) -> Result<Templates, HttpError> {
    let locale = Locale::parse(locale).ok_or_else(|| HttpError::internal("a bad locale"))?;
    Templates::for_locale(app, locale).ok_or_else(|| HttpError::internal("no templates"))
}

/// The post list of index page `page` in `locale`, rendered (`posts/_list.html`).
pub async fn index_list(
    app: &AppHandle,
    db: &Db,
    locale: &str,
    page: PageRequest,
    per_page: u64,
) -> Result<String, HttpError> {
    let args = (locale.to_owned(), page.page, page.per_page, per_page);
    let (app2, db2) = (app.clone(), db.clone());
    let load = move |(locale, p, pp, per): (String, u64, Option<u64>, u64)| async move {
        let req = PageRequest {
            page: p,
            per_page: pp,
        };
        render_index(&app2, &db2, &locale, req, per)
            .await
            .map_err(Failure::from)
    };
    match default_cache(app) {
        Some(cache) => cache
            .memoize(INDEX_MEMO, TTL)
            .call(&args, load)
            .await
            .map_err(rebuild),
        None => load(args).await.map_err(|f| rebuild(Arc::new(f))),
    }
}

async fn render_index(
    app: &AppHandle,
    db: &Db,
    locale: &str,
    page: PageRequest,
    per_page: u64,
) -> Result<String, HttpError> {
    let select = Select::new(format!(
        "{POST_SELECT} WHERE p.status = ? ORDER BY p.published_at DESC, p.id DESC"
    ))
    .bind(status::PUBLISHED);
    let opts = Paginate::default()
        .per_page(per_page)
        .max_per_page(Some(50));
    let found = paginate::<Post, _>(db.pool(), &select, page, &opts).await?;
    let links = found
        .links(IterPages::default(), |n| {
            app.url_for("posts.index", [("page", n)])
        })
        .map_err(HttpError::internal)?;
    let total = found.total.unwrap_or(0);
    let posts = cards(db, found.items).await?;
    templates(app, locale)?
        .render_string("posts/_list.html", context! { posts, links, total })
        .await
}

/// The shared part of post `slug`'s page in `locale` (`posts/_post.html`); a 404 when there
/// is no such post. Drafts are included: the caller decides who may see them.
pub async fn show(
    app: &AppHandle,
    db: &Db,
    locale: &str,
    slug: &str,
    moderator: bool,
) -> Result<ShowPage, HttpError> {
    let args = (locale.to_owned(), slug.to_owned(), moderator);
    let (app2, db2) = (app.clone(), db.clone());
    let load = move |(locale, slug, moderator): (String, String, bool)| async move {
        render_show(&app2, &db2, &locale, &slug, moderator)
            .await
            .map_err(Failure::from)
    };
    match default_cache(app) {
        Some(cache) => cache
            .memoize(SHOW_MEMO, TTL)
            .call(&args, load)
            .await
            .map_err(rebuild),
        None => load(args).await.map_err(|f| rebuild(Arc::new(f))),
    }
}

/// The 404 of a post that does not exist (or may not be seen).
pub fn not_found(app: &AppHandle, locale: &str) -> HttpError {
    let text = flagon_i18n::I18n::for_locale(app, locale)
        .map(|l| l.t("post-not-found", ()))
        .unwrap_or_else(|_| "There is no such post.".into());
    HttpError::not_found(text)
}

async fn render_show(
    app: &AppHandle,
    db: &Db,
    locale: &str,
    slug: &str,
    moderator: bool,
) -> Result<ShowPage, HttpError> {
    let post = Post::by_slug(db, slug)
        .await?
        .ok_or_else(|| not_found(app, locale))?;
    let tags = post.tags(db).await?;
    let rows = comment_rows(db, post.id).await?;
    let tree = comment_tree(&rows, moderator);
    let count = rows
        .iter()
        .filter(|r| r.status == comment_status::VISIBLE)
        .count();
    let comments = rows
        .iter()
        .filter(|r| moderator || r.status == comment_status::VISIBLE)
        .map(|r| (r.id, r.author.clone()))
        .collect();
    let date = Date::from_unix(post.published_at.unwrap_or(post.created_at));
    let html = templates(app, locale)?
        .render_string(
            "posts/_post.html",
            context! { post => &post, tags, date, comments => tree, count },
        )
        .await?;
    Ok(ShowPage {
        id: post.id,
        slug: post.slug,
        title: post.title,
        author_id: post.author_id,
        status: post.status,
        comments,
        html,
    })
}

/// Forgets every cached page part (index lists and post pages) on every instance.
pub async fn posts_changed(app: &AppHandle) {
    forget(app, &[INDEX_MEMO, SHOW_MEMO]).await;
}

/// Forgets the cached post pages (a comment changed; the lists do not show comments).
pub async fn comments_changed(app: &AppHandle) {
    forget(app, &[SHOW_MEMO]).await;
}

async fn forget(app: &AppHandle, memos: &[&str]) {
    let Some(cache) = default_cache(app) else {
        return;
    };
    for memo in memos {
        if let Err(e) = cache.delete_memoized(memo).await {
            tracing::warn!("blog: the cached pages of {memo} could not be forgotten: {e}");
        }
    }
}
