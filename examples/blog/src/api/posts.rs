//! `/posts`: the list (published posts, paginated with links), one post, and writing,
//! changing and deleting posts.

use std::collections::HashMap;

use flagon::axum::Json;
use flagon::axum::body::Body;
use flagon::axum::extract::Path;
use flagon::axum::extract::rejection::PathRejection;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::header::{CACHE_CONTROL, LINK, LOCATION};
use flagon::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use flagon::{AppHandle, Ext, HttpError};
use flagon_db::{Db, PageRequest, Paginate, Pagination, Select, paginate};
use flagon_i18n::Lang;
use flagon_login::Permissions;
use serde::Serialize;

use super::body::read_object;
use super::caller::Caller;
use super::invalidate;
use super::problem::{ApiError, Problem};
use crate::BlogConfig;
use crate::content::{POST_SELECT, Post, PostInput, delete_post, insert_post, update_post};
use crate::models::{Account, status};

/// The largest `per_page` honoured.
const MAX_PER_PAGE: u64 = 100;

/// The fields a post's JSON body may have.
const POST_FIELDS: [&str; 5] = ["title", "body", "published", "category", "tags"];

/// A post as the API shows it.
#[derive(Debug, Serialize)]
struct PostOut {
    #[serde(flatten)]
    post: Post,
    tags: Vec<String>,
    /// This post in the API.
    url: String,
    /// Its page on the site, when the app has the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    html_url: Option<String>,
}

fn out(app: &AppHandle, post: Post, tags: Vec<String>) -> PostOut {
    let url = app
        .url_for("api.show_post", [("id", post.id)])
        .unwrap_or_else(|_| format!("/api/v1/posts/{}", post.id));
    let html_url = app.routes().get("posts.show").and_then(|_| {
        app.url_for("posts.show", [("slug", post.slug.as_str())])
            .ok()
    });
    PostOut {
        post,
        tags,
        url,
        html_url,
    }
}

/// The tags of every post in `ids`, in one query.
async fn tags_of(db: &Db, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, ApiError> {
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(tags);
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let sql = format!(
        "SELECT pt.post_id, t.name FROM post_tags pt JOIN tags t ON t.id = pt.tag_id \
         WHERE pt.post_id IN ({marks}) ORDER BY t.name"
    );
    let mut q = db.query_as::<(i64, String)>(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    for (post_id, name) in q.fetch_all(db).await? {
        tags.entry(post_id).or_default().push(name);
    }
    Ok(tags)
}

/// `self`, `first`, `last`, `prev` and `next` of a listing page.
#[derive(Debug, Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
    first: String,
    last: String,
    prev: Option<String>,
    next: Option<String>,
}

impl Links {
    fn of<T>(base: &str, page: &Pagination<T>) -> Links {
        let at = |n: u64| format!("{base}?page={n}&per_page={}", page.per_page);
        Links {
            this: at(page.page),
            first: at(1),
            last: at(page.pages().max(1)),
            prev: page.prev_num().map(at),
            next: page.next_num().map(at),
        }
    }

    /// The RFC 8288 `Link` header.
    fn header(&self) -> String {
        let mut parts = vec![
            format!("<{}>; rel=\"first\"", self.first),
            format!("<{}>; rel=\"last\"", self.last),
        ];
        if let Some(p) = &self.prev {
            parts.push(format!("<{p}>; rel=\"prev\""));
        }
        if let Some(n) = &self.next {
            parts.push(format!("<{n}>; rel=\"next\""));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Serialize)]
struct Meta {
    page: u64,
    per_page: u64,
    total: u64,
    pages: u64,
}

#[derive(Debug, Serialize)]
struct Listing {
    items: Vec<PostOut>,
    meta: Meta,
    links: Links,
}

/// `GET /api/v1/posts?page=&per_page=`: published posts, newest first; `per_page` defaults
/// to `[blog] per_page` and is capped at 100. A bad `page`/`per_page` is a 400, a page past
/// the end a 404.
pub(super) async fn list(
    _caller: Caller,
    db: Db,
    app: AppHandle,
    blog: Ext<BlogConfig>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let req = PageRequest::from_query(uri.query().unwrap_or(""))?;
    let opts = Paginate::default()
        .per_page(blog.per_page.clamp(1, MAX_PER_PAGE))
        .max_per_page(Some(MAX_PER_PAGE));
    let select = Select::new(format!(
        "{POST_SELECT} WHERE p.status = ? ORDER BY p.published_at DESC, p.id DESC"
    ))
    .bind(status::PUBLISHED);
    let page = paginate::<Post, _>(db.pool(), &select, req, &opts).await?;
    let base = app
        .url_for("api.list_posts", ())
        .unwrap_or_else(|_| "/api/v1/posts".into());
    let links = Links::of(&base, &page);
    let ids: Vec<i64> = page.items.iter().map(|p| p.id).collect();
    let mut tags = tags_of(&db, &ids).await?;
    let meta = Meta {
        page: page.page,
        per_page: page.per_page,
        total: page.total.unwrap_or(0),
        pages: page.pages(),
    };
    let items = page
        .items
        .into_iter()
        .map(|p| {
            let t = tags.remove(&p.id).unwrap_or_default();
            out(&app, p, t)
        })
        .collect();
    let link = links.header();
    let mut res = Json(Listing { items, meta, links }).into_response();
    if let Ok(v) = HeaderValue::from_str(&link) {
        res.headers_mut().insert(LINK, v);
    }
    Ok(res)
}

/// The post `raw` names, if `caller` may see it: a published post, or a draft its author or
/// an editor asks for. Anything else (not a number, no such post, someone else's draft) is
/// the same 404, so drafts are not revealed.
async fn visible(
    db: &Db,
    raw: Result<Path<String>, PathRejection>,
    caller: &Caller,
    lang: &Lang,
) -> Result<Post, ApiError> {
    let not_found = || Problem::not_found(lang.t("api-no-post", ()));
    let id = match raw {
        Ok(Path(s)) => s.parse::<i64>().ok().filter(|id| *id > 0),
        Err(_) => None,
    }
    .ok_or_else(not_found)?;
    let post = Post::by_id(db, id).await?.ok_or_else(not_found)?;
    let may_see =
        post.is_published() || caller.account().is_some_and(|a| a.may_edit(post.author_id));
    if may_see {
        Ok(post)
    } else {
        Err(not_found().into())
    }
}

/// A post with its tags, as JSON; `private` when the answer depends on who asked.
async fn post_response(
    db: &Db,
    app: &AppHandle,
    post: Post,
    status: StatusCode,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let tags = post.tags(db).await?;
    let body = out(app, post, tags);
    let mut res = (status, Json(body)).into_response();
    if caller.account().is_some() {
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
    Ok(res)
}

/// `GET /api/v1/posts/{id}`.
pub(super) async fn show(
    caller: Caller,
    db: Db,
    app: AppHandle,
    lang: Lang,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let post = visible(&db, id, &caller, &lang).await?;
    post_response(&db, &app, post, StatusCode::OK, &caller).await
}

/// The checked post input of a JSON body: 400 for a body that is not a JSON object, 422
/// naming the field otherwise.
async fn read_input(headers: &HeaderMap, body: Body, lang: &Lang) -> Result<PostInput, ApiError> {
    let f = read_object(headers, body, &POST_FIELDS, lang).await?;
    let input = PostInput {
        title: f.required_str("title")?,
        body: f.required_str("body")?,
        published: f.flag("published")?,
        category: f.optional_str("category")?,
        tags: f.strings("tags")?,
    };
    input.check().map_err(|e| {
        let detail = lang
            .try_t(&format!("api-invalid-{}", e.field), None)
            .unwrap_or(e.message);
        Problem::invalid_field(e.field, detail).into()
    })
}

fn require_writer<'a>(caller: &'a Caller, lang: &Lang) -> Result<&'a Account, ApiError> {
    let account = caller.require(lang)?;
    if account.can(Permissions::CREATE) {
        Ok(account)
    } else {
        Err(Problem::forbidden("forbidden", lang.t("api-may-not-write", ())).into())
    }
}

/// `POST /api/v1/posts`: authors, editors and admins; 201 with `Location`.
pub(super) async fn create(
    caller: Caller,
    db: Db,
    app: AppHandle,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let account = require_writer(&caller, &lang)?;
    let input = read_input(&headers, body, &lang).await?;
    let mut tx = db.begin().await?;
    let (id, slug) = insert_post(&mut tx, account.id, &input, None).await?;
    tx.commit().await?;
    invalidate(&app, &slug).await;
    let post = Post::by_id(&db, id)
        .await?
        .ok_or_else(|| HttpError::internal("a post just written is gone"))?;
    let mut res = post_response(&db, &app, post, StatusCode::CREATED, &caller).await?;
    let location = app
        .url_for("api.show_post", [("id", id)])
        .unwrap_or_else(|_| format!("/api/v1/posts/{id}"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(LOCATION, v);
    }
    Ok(res)
}

/// The post a write names, if `caller` may change it: 401 without an account, 404 when it
/// cannot see the post, 403 when it can but the post is someone else's (for an author).
async fn editable(
    db: &Db,
    id: Result<Path<String>, PathRejection>,
    caller: &Caller,
    lang: &Lang,
) -> Result<Post, ApiError> {
    let account = caller.require(lang)?;
    let post = visible(db, id, caller, lang).await?;
    if account.may_edit(post.author_id) {
        Ok(post)
    } else {
        Err(Problem::forbidden("not-owner", lang.t("api-not-owner", ())).into())
    }
}

/// `PUT /api/v1/posts/{id}`: the whole post again (title, body, and optionally published,
/// category, tags); its author or an editor. The slug stays.
pub(super) async fn update(
    caller: Caller,
    db: Db,
    app: AppHandle,
    lang: Lang,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let post = editable(&db, id, &caller, &lang).await?;
    let input = read_input(&headers, body, &lang).await?;
    let mut tx = db.begin().await?;
    update_post(&mut tx, post.id, &input, None).await?;
    tx.commit().await?;
    invalidate(&app, &post.slug).await;
    let post = Post::by_id(&db, post.id)
        .await?
        .ok_or_else(|| HttpError::internal("a post just changed is gone"))?;
    post_response(&db, &app, post, StatusCode::OK, &caller).await
}

/// `DELETE /api/v1/posts/{id}`: its author or an editor; 204.
pub(super) async fn delete(
    caller: Caller,
    db: Db,
    app: AppHandle,
    lang: Lang,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let post = editable(&db, id, &caller, &lang).await?;
    let mut tx = db.begin().await?;
    delete_post(&mut tx, post.id).await?;
    tx.commit().await?;
    invalidate(&app, &post.slug).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
