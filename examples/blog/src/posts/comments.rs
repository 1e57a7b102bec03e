//! `POST /posts/{slug}/comments`: fields `body` and an optional `parent_id` (a comment of
//! the same post, for a reply). Login required; five a minute (flagon-limiter: a 429 with
//! `Retry-After` beyond). A refused comment shows the post again with the message, what
//! was typed and a 422.

use axum::response::{IntoResponse, Redirect, Response};
use flagon::extract::{Form, Path};
use flagon::http::StatusCode;
use flagon::messages::Message;
use flagon::session::Session;
use flagon::templates::Templates;
use flagon::{AppHandle, HttpError};
use flagon_db::Db;
use flagon_i18n::Lang;
use flagon_login::{CurrentUser, Permissions};
use serde::Deserialize;

use super::views::{self, ShowArgs};
use crate::content::{self, Post};
use crate::models::{Account, comment_status, now};

/// The longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 5000;

/// The comment form.
#[derive(Debug, Deserialize)]
pub struct CommentForm {
    /// The text.
    #[serde(default)]
    pub body: String,
    /// The comment answered, if any (empty for none).
    #[serde(default)]
    pub parent_id: Option<String>,
}

/// `POST /posts/{slug}/comments`.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    user: CurrentUser<Account>,
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    session: Session,
    Path(slug): Path<String>,
    Form(form): Form<CommentForm>,
) -> Result<Response, HttpError> {
    let locale = lang.locale().as_str().to_owned();
    let post = Post::by_slug(&db, &slug)
        .await?
        .filter(|p| views::may_see(Some(&user), p.author_id, &p.status))
        .ok_or_else(|| super::pages::not_found(&app, &locale))?;
    let parent_text = form.parent_id.as_deref().map(str::trim).unwrap_or("");
    let parent = if parent_text.is_empty() {
        None
    } else {
        Some(
            parent_text
                .parse::<i64>()
                .map_err(|_| HttpError::bad_request(lang.t("comment-error-parent", ())))?,
        )
    };
    let refuse = |id: &str, reply: Option<i64>| ShowArgs {
        reply,
        comment_error: Some(lang.t(id, ())),
        comment_body: form.body.clone(),
        status: Some(StatusCode::UNPROCESSABLE_ENTITY),
    };
    if !post.is_published() {
        let args = refuse("comment-error-draft", None);
        return views::render_show(&app, &db, &tpl, &lang, Some(&user), &slug, args).await;
    }
    let body = form.body.trim();
    if body.is_empty() || body.chars().count() > MAX_COMMENT_CHARS {
        let args = refuse("comment-error-body", parent);
        return views::render_show(&app, &db, &tpl, &lang, Some(&user), &slug, args).await;
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        let args = refuse("comment-error-body", parent);
        return views::render_show(&app, &db, &tpl, &lang, Some(&user), &slug, args).await;
    }
    if let Some(parent) = parent {
        // The parent must be a comment of this post that the writer can see.
        let moderator = user.can(Permissions::UPDATE);
        let found: Option<String> = db
            .query_scalar::<String>("SELECT status FROM comments WHERE id = ? AND post_id = ?")
            .bind(parent)
            .bind(post.id)
            .fetch_optional(&db)
            .await
            .map_err(flagon_db::Error::from)?;
        let usable = found.is_some_and(|s| moderator || s == comment_status::VISIBLE);
        if !usable {
            let args = refuse("comment-error-parent", None);
            return views::render_show(&app, &db, &tpl, &lang, Some(&user), &slug, args).await;
        }
    }
    let mut tx = db.begin().await?;
    let row = tx
        .query(
            "INSERT INTO comments (post_id, author_id, parent_id, body, status, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(post.id)
        .bind(user.id)
        .bind(parent)
        .bind(body.replace("\r\n", "\n"))
        .bind(comment_status::VISIBLE)
        .bind(now())
        .fetch_one(&mut tx)
        .await
        .map_err(flagon_db::Error::from)?;
    let id: i64 = flagon_db::sqlx::Row::try_get(&row, 0).map_err(flagon_db::Error::from)?;
    tx.commit().await?;
    content::comments_changed(&app).await;
    session.flash_message(
        Message::new("comment-saved").fallback("Your comment is posted."),
        "success",
    )?;
    let url = app
        .url_for("posts.show", [("slug", &post.slug)])
        .map_err(HttpError::internal)?;
    Ok(Redirect::to(&format!("{url}#comment-{id}")).into_response())
}
