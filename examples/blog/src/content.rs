//! Posts as the web pages and the API both write them: Markdown rendered to sanitised HTML,
//! slugs, and the insert/update/delete queries, so both paths keep the same rules.

use std::collections::HashSet;

use flagon_db::{Db, Error, TxConn};
use sqlx::FromRow;

use crate::models::{now, status};

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest body, in bytes of Markdown.
pub const MAX_BODY_BYTES: usize = 100 * 1024;

/// Markdown to HTML that is safe to show: pulldown-cmark renders (tables, strikethrough,
/// footnotes), then ammonia keeps only harmless tags and attributes. Raw HTML in the source
/// is sanitised too, so `<script>`, `on*=` handlers and `javascript:` links never survive;
/// links get `rel="noopener noreferrer nofollow"`.
///
/// ```
/// let html = example_blog::content::render_markdown("**hi** <script>alert(1)</script>");
/// assert_eq!(html.trim(), "<p><strong>hi</strong> </p>");
/// ```
pub fn render_markdown(md: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_FOOTNOTES);
    let mut raw = String::with_capacity(md.len() * 3 / 2);
    html::push_html(&mut raw, Parser::new_ext(md, opts));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .clean(&raw)
        .to_string()
}

/// The first `max` characters of `md`'s text (Markdown and raw HTML left out, whitespace
/// collapsed), with `…` when cut: a post's summary in lists.
///
/// ```
/// let md = "# Hello\n\nSome *bold* <b>raw</b> text and `code`.";
/// assert_eq!(example_blog::content::excerpt(md, 100), "Hello Some bold raw text and code.");
/// assert_eq!(example_blog::content::excerpt("one two three", 7), "one two…");
/// ```
pub fn excerpt(md: &str, max: usize) -> String {
    use pulldown_cmark::{Event, Parser};
    let mut text = String::new();
    for event in Parser::new(md) {
        match event {
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak | Event::End(_) => text.push(' '),
            _ => {}
        }
        if text.len() > max * 4 + 16 {
            break;
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::new();
    for word in words {
        let sep = usize::from(!out.is_empty());
        if out.chars().count() + sep + word.chars().count() > max {
            if out.is_empty() {
                out.extend(word.chars().take(max));
            }
            out.push('…');
            return out;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Call after a transaction that created, changed or deleted a post (or its image) has
/// committed: the cached index lists and post pages are forgotten on every instance at
/// once (see [`crate::posts::pages`]). Before the commit is too early: another instance
/// could cache the old rows again.
pub async fn changed(app: &flagon::AppHandle) {
    crate::posts::pages::posts_changed(app).await;
}

/// Call after a transaction that added, hid or removed a comment has committed: the
/// cached post pages are forgotten on every instance at once.
pub async fn comments_changed(app: &flagon::AppHandle) {
    crate::posts::pages::comments_changed(app).await;
}

/// A URL slug for `title`: lower-case letters and digits (any script) joined by `-`, at
/// most 80 characters; `post` when nothing is left.
///
/// ```
/// assert_eq!(example_blog::content::slugify("Hello, World! 2026"), "hello-world-2026");
/// assert_eq!(example_blog::content::slugify("你好 世界"), "你好-世界");
/// assert_eq!(example_blog::content::slugify("../../etc"), "etc");
/// ```
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for word in title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if slug.chars().count() + word.chars().count() > 80 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.extend(word.chars().flat_map(char::to_lowercase));
    }
    if slug.is_empty() { "post".into() } else { slug }
}

/// A post as pages and the API show it.
#[derive(Clone, Debug, FromRow, serde::Serialize)]
pub struct Post {
    /// Primary key.
    pub id: i64,
    /// The author's account id.
    pub author_id: i64,
    /// The author's username.
    pub author: String,
    /// Title, plain text.
    pub title: String,
    /// Unique, from the title.
    pub slug: String,
    /// The Markdown source.
    pub body_md: String,
    /// The sanitised HTML rendered from it.
    pub body_html: String,
    /// [`status::DRAFT`] or [`status::PUBLISHED`].
    pub status: String,
    /// The category's name, if any.
    pub category: Option<String>,
    /// The image's stored file name, if any.
    pub image: Option<String>,
    /// When first published (Unix seconds).
    pub published_at: Option<i64>,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Last changed (Unix seconds).
    pub updated_at: i64,
}

/// `SELECT` of [`Post`]'s columns; add `WHERE …`.
pub const POST_SELECT: &str = "SELECT p.id, p.author_id, u.username AS author, p.title, p.slug, \
     p.body_md, p.body_html, p.status, c.name AS category, i.file_name AS image, \
     p.published_at, p.created_at, p.updated_at \
     FROM posts p JOIN users u ON u.id = p.author_id \
     LEFT JOIN categories c ON c.id = p.category_id \
     LEFT JOIN images i ON i.id = p.image_id";

impl Post {
    /// The post whose slug is `slug`, published or not.
    pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<Post>, Error> {
        let sql = format!("{POST_SELECT} WHERE p.slug = ?");
        Ok(db
            .query_as::<Post>(&sql)
            .bind(slug.to_owned())
            .fetch_optional(db)
            .await?)
    }

    /// The post with `id`, published or not.
    pub async fn by_id(db: &Db, id: i64) -> Result<Option<Post>, Error> {
        let sql = format!("{POST_SELECT} WHERE p.id = ?");
        Ok(db
            .query_as::<Post>(&sql)
            .bind(id)
            .fetch_optional(db)
            .await?)
    }

    /// Whether guests may see it.
    pub fn is_published(&self) -> bool {
        self.status == status::PUBLISHED
    }

    /// The tag names of the post, sorted.
    pub async fn tags(&self, db: &Db) -> Result<Vec<String>, Error> {
        Ok(db
            .query_scalar::<String>(
                "SELECT t.name FROM tags t JOIN post_tags pt ON pt.tag_id = t.id \
                 WHERE pt.post_id = ? ORDER BY t.name",
            )
            .bind(self.id)
            .fetch_all(db)
            .await?)
    }
}

/// What a writer sends for a new or changed post, already checked by [`PostInput::check`].
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct PostInput {
    /// Title, 1 to [`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// Markdown, at most [`MAX_BODY_BYTES`].
    pub body: String,
    /// Publish now (`true`) or keep as a draft.
    #[serde(default)]
    pub published: bool,
    /// A category name; created on first use.
    #[serde(default)]
    pub category: Option<String>,
    /// Tag names, comma-separated in forms; each 1 to 64 characters, at most 10.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Why a [`PostInput`] was refused: the field and the message, for a 400/422.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it (English; the web pages translate by `field`).
    pub message: String,
}

impl PostInput {
    /// Trims and checks every field; the first problem found is returned.
    pub fn check(mut self) -> Result<PostInput, InputError> {
        let bad = |field, message: &str| InputError {
            field,
            message: message.into(),
        };
        self.title = self.title.trim().to_owned();
        if self.title.is_empty() || self.title.chars().count() > MAX_TITLE_CHARS {
            return Err(bad("title", "a title is 1 to 200 characters"));
        }
        if self.title.chars().any(char::is_control) {
            return Err(bad("title", "a title has no control characters"));
        }
        if self.body.trim().is_empty() || self.body.len() > MAX_BODY_BYTES {
            return Err(bad("body", "a body is 1 byte to 100 KiB of Markdown"));
        }
        self.category = self
            .category
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if self
            .category
            .as_ref()
            .is_some_and(|c| c.chars().count() > 100 || c.chars().any(char::is_control))
        {
            return Err(bad("category", "a category is at most 100 characters"));
        }
        let mut tags: Vec<String> = Vec::new();
        for t in &self.tags {
            let t = t.trim().to_lowercase();
            if t.is_empty() {
                continue;
            }
            if t.chars().count() > 64 || t.chars().any(char::is_control) {
                return Err(bad("tags", "a tag is at most 64 characters"));
            }
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        if tags.len() > 10 {
            return Err(bad("tags", "a post has at most 10 tags"));
        }
        self.tags = tags;
        Ok(self)
    }
}

/// Writes a new post by `author_id` in `tx` and returns its id and slug. The slug is the
/// title's, with `-2`, `-3`… added while taken.
pub async fn insert_post(
    tx: &mut TxConn,
    author_id: i64,
    input: &PostInput,
    image_id: Option<i64>,
) -> Result<(i64, String), Error> {
    let slug = free_slug(tx, &slugify(&input.title), None).await?;
    let category_id = category_id(tx, input.category.as_deref()).await?;
    let t = now();
    let (st, published_at) = publish_state(input.published, None, t);
    let q = tx
        .query(
            "INSERT INTO posts (author_id, title, slug, body_md, body_html, status, category_id, \
             image_id, published_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(author_id)
        .bind(input.title.clone())
        .bind(slug.clone())
        .bind(input.body.clone())
        .bind(render_markdown(&input.body))
        .bind(st)
        .bind(category_id)
        .bind(image_id)
        .bind(published_at)
        .bind(t)
        .bind(t);
    let row = q.fetch_one(&mut *tx).await?;
    let id: i64 = sqlx::Row::try_get(&row, 0)?;
    set_tags(tx, id, &input.tags).await?;
    Ok((id, slug))
}

/// Changes post `id` in `tx`; the slug stays (links keep working); publishing a draft sets
/// its `published_at` once. `image_id` `None` keeps the current image.
pub async fn update_post(
    tx: &mut TxConn,
    id: i64,
    input: &PostInput,
    image_id: Option<i64>,
) -> Result<(), Error> {
    let category_id = category_id(tx, input.category.as_deref()).await?;
    let t = now();
    let was: Option<i64> = tx
        .query_scalar::<Option<i64>>("SELECT published_at FROM posts WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let (st, published_at) = publish_state(input.published, was, t);
    let q = tx
        .query(
            "UPDATE posts SET title = ?, body_md = ?, body_html = ?, status = ?, category_id = ?, \
             image_id = COALESCE(?, image_id), published_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(input.title.clone())
        .bind(input.body.clone())
        .bind(render_markdown(&input.body))
        .bind(st)
        .bind(category_id)
        .bind(image_id)
        .bind(published_at)
        .bind(t)
        .bind(id);
    q.execute(&mut *tx).await?;
    tx.query("DELETE FROM post_tags WHERE post_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    set_tags(tx, id, &input.tags).await
}

/// Deletes post `id` (its comments and tags go with it).
pub async fn delete_post(tx: &mut TxConn, id: i64) -> Result<(), Error> {
    for sql in [
        "DELETE FROM comments WHERE post_id = ?",
        "DELETE FROM post_tags WHERE post_id = ?",
        "DELETE FROM posts WHERE id = ?",
    ] {
        tx.query(sql).bind(id).execute(&mut *tx).await?;
    }
    Ok(())
}

fn publish_state(published: bool, was: Option<i64>, now: i64) -> (&'static str, Option<i64>) {
    if published {
        (status::PUBLISHED, Some(was.unwrap_or(now)))
    } else {
        (status::DRAFT, was)
    }
}

async fn free_slug(tx: &mut TxConn, base: &str, except: Option<i64>) -> Result<String, Error> {
    let mut slug = base.to_owned();
    for n in 2.. {
        let taken: Option<i64> = tx
            .query_scalar::<i64>("SELECT id FROM posts WHERE slug = ?")
            .bind(slug.clone())
            .fetch_optional(&mut *tx)
            .await?;
        match taken {
            Some(id) if Some(id) != except => slug = format!("{base}-{n}"),
            _ => break,
        }
    }
    Ok(slug)
}

async fn category_id(tx: &mut TxConn, name: Option<&str>) -> Result<Option<i64>, Error> {
    let Some(name) = name else { return Ok(None) };
    let found: Option<i64> = tx
        .query_scalar::<i64>("SELECT id FROM categories WHERE name = ?")
        .bind(name.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(id) = found {
        return Ok(Some(id));
    }
    let slug = slugify(name);
    let row = tx
        .query("INSERT INTO categories (name, slug) VALUES (?, ?) RETURNING id")
        .bind(name.to_owned())
        .bind(slug)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(sqlx::Row::try_get(&row, 0)?))
}

async fn set_tags(tx: &mut TxConn, post_id: i64, tags: &[String]) -> Result<(), Error> {
    for tag in tags {
        let found: Option<i64> = tx
            .query_scalar::<i64>("SELECT id FROM tags WHERE name = ?")
            .bind(tag.clone())
            .fetch_optional(&mut *tx)
            .await?;
        let tag_id = match found {
            Some(id) => id,
            None => {
                let row = tx
                    .query("INSERT INTO tags (name) VALUES (?) RETURNING id")
                    .bind(tag.clone())
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::Row::try_get(&row, 0)?
            }
        };
        tx.query("INSERT INTO post_tags (post_id, tag_id) VALUES (?, ?)")
            .bind(post_id)
            .bind(tag_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
