//! `GET /admin/posts`, `GET /admin/comments` and comment moderation.

use flagon::axum::response::{IntoResponse, Response};
use flagon::extract::{Path, Query};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, HttpError};
use flagon_db::Db;
use flagon_db::sqlx::Row as _;
use flagon_i18n::Lang;

use super::{PER_PAGE, PageQuery, back, refused};
use crate::models::comment_status;

fn offset(page: i64) -> i64 {
    (page - 1) * PER_PAGE
}

/// `GET /admin/posts?page=`: every post, drafts too, newest first, with links to the post
/// and its edit form.
pub(crate) async fn posts(
    db: Db,
    tpl: Templates,
    Query(q): Query<PageQuery>,
) -> Result<Response, HttpError> {
    let page = q.page()?;
    let sql = format!(
        "SELECT p.id, p.title, p.slug, p.status, p.created_at, u.username FROM posts p \
         JOIN users u ON u.id = p.author_id ORDER BY p.id DESC LIMIT {} OFFSET {}",
        PER_PAGE + 1,
        offset(page)
    );
    let rows = db
        .query(&sql)
        .fetch_all(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    let more = rows.len() as i64 > PER_PAGE;
    let mut posts = Vec::new();
    for r in rows.iter().take(PER_PAGE as usize) {
        posts.push(context! {
            id => r.try_get::<i64, _>(0).map_err(flagon_db::Error::from)?,
            title => r.try_get::<String, _>(1).map_err(flagon_db::Error::from)?,
            slug => r.try_get::<String, _>(2).map_err(flagon_db::Error::from)?,
            status => r.try_get::<String, _>(3).map_err(flagon_db::Error::from)?,
            created_at => r.try_get::<i64, _>(4).map_err(flagon_db::Error::from)?,
            author => r.try_get::<String, _>(5).map_err(flagon_db::Error::from)?,
        });
    }
    let ctx = context! { posts, page, more };
    Ok(tpl.render("admin/posts.html", ctx).await?.into_response())
}

/// `GET /admin/comments?page=&status=`: newest first; `status` is `visible` or `hidden`.
pub(crate) async fn comments(
    db: Db,
    tpl: Templates,
    lang: Lang,
    Query(q): Query<PageQuery>,
) -> Result<Response, HttpError> {
    let page = q.page()?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s @ (comment_status::VISIBLE | comment_status::HIDDEN)) => Some(s.to_owned()),
        Some(_) => return Err(refused(lang.t("admin-error-status", ()))),
    };
    let filter = if status.is_some() {
        "WHERE c.status = ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT c.id, c.body, c.status, c.created_at, u.username, p.title, p.slug FROM comments c \
         JOIN users u ON u.id = c.author_id JOIN posts p ON p.id = c.post_id {filter} \
         ORDER BY c.id DESC LIMIT {} OFFSET {}",
        PER_PAGE + 1,
        offset(page)
    );
    let mut query = db.query(&sql);
    if let Some(s) = &status {
        query = query.bind(s.clone());
    }
    let rows = query.fetch_all(&db).await.map_err(flagon_db::Error::from)?;
    let more = rows.len() as i64 > PER_PAGE;
    let mut comments = Vec::new();
    for r in rows.iter().take(PER_PAGE as usize) {
        comments.push(context! {
            id => r.try_get::<i64, _>(0).map_err(flagon_db::Error::from)?,
            body => r.try_get::<String, _>(1).map_err(flagon_db::Error::from)?,
            status => r.try_get::<String, _>(2).map_err(flagon_db::Error::from)?,
            created_at => r.try_get::<i64, _>(3).map_err(flagon_db::Error::from)?,
            author => r.try_get::<String, _>(4).map_err(flagon_db::Error::from)?,
            post_title => r.try_get::<String, _>(5).map_err(flagon_db::Error::from)?,
            post_slug => r.try_get::<String, _>(6).map_err(flagon_db::Error::from)?,
        });
    }
    let ctx = context! { comments, page, more, status => status.unwrap_or_default() };
    Ok(tpl
        .render("admin/comments.html", ctx)
        .await?
        .into_response())
}

async fn set_status(
    app: &AppHandle,
    db: &Db,
    lang: &Lang,
    session: &Session,
    id: i64,
    status: &str,
) -> Result<Response, HttpError> {
    let done = db
        .query("UPDATE comments SET status = ? WHERE id = ?")
        .bind(status.to_owned())
        .bind(id)
        .execute(db)
        .await
        .map_err(flagon_db::Error::from)?;
    if done.rows_affected() == 0 {
        return Err(HttpError::not_found(lang.t("admin-error-no-comment", ())));
    }
    let msg = match status {
        comment_status::HIDDEN => lang.t("admin-comment-hidden", ()),
        _ => lang.t("admin-comment-shown", ()),
    };
    back(app, session, "admin.comments", msg)
}

/// `POST /admin/comments/{id}/hide`.
pub(crate) async fn hide(
    app: AppHandle,
    db: Db,
    lang: Lang,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Response, HttpError> {
    set_status(&app, &db, &lang, &session, id, comment_status::HIDDEN).await
}

/// `POST /admin/comments/{id}/show`.
pub(crate) async fn show(
    app: AppHandle,
    db: Db,
    lang: Lang,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Response, HttpError> {
    set_status(&app, &db, &lang, &session, id, comment_status::VISIBLE).await
}
