//! `GET /` and `GET /posts/{slug}`.

use axum::response::{IntoResponse, Response};
use flagon::extract::{Path, Query};
use flagon::http::StatusCode;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, Ext, HttpError};
use flagon_db::{Db, PageRequest};
use flagon_i18n::Lang;
use flagon_login::{MaybeUser, Permissions};
use serde::Deserialize;

use super::pages;
use crate::BlogConfig;
use crate::models::{Account, status};

/// `GET /`: published posts, newest first, `?page=` (a bad page is a 400, one past the end
/// a 404, each with a message).
pub async fn index(
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    blog: Ext<BlogConfig>,
    page: PageRequest,
) -> Result<Response, HttpError> {
    let list = pages::index_list(&app, &db, lang.locale().as_str(), page, blog.per_page).await?;
    Ok(tpl
        .render("index.html", context! { list_html => list })
        .await?
        .into_response())
}

/// `?reply=ID` on a post page: the comment form answers that comment.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    /// The comment to reply to.
    #[serde(default)]
    pub reply: Option<String>,
}

/// `GET /posts/{slug}`: a published post for everyone; a draft for its author and
/// editors (a 404 for anyone else, as for a post that does not exist).
pub async fn show(
    app: AppHandle,
    db: Db,
    tpl: Templates,
    lang: Lang,
    user: MaybeUser<Account>,
    Path(slug): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, HttpError> {
    let reply = q.reply.as_deref().and_then(|r| r.parse::<i64>().ok());
    let page = ShowArgs {
        reply,
        ..ShowArgs::default()
    };
    render_show(&app, &db, &tpl, &lang, user.user(), &slug, page).await
}

/// What a post page shows besides the post: the comment being answered, and a comment
/// refused with its error (shown again with the status it was refused with).
#[derive(Debug, Default)]
pub struct ShowArgs {
    /// `?reply=ID` or the refused comment's `parent_id`.
    pub reply: Option<i64>,
    /// Why the comment was refused.
    pub comment_error: Option<String>,
    /// What the refused comment said.
    pub comment_body: String,
    /// The status to answer with (200 unless a comment was refused).
    pub status: Option<StatusCode>,
}

/// Whether `viewer` may see a post by `author_id` in `status_`.
pub fn may_see(viewer: Option<&Account>, author_id: i64, status_: &str) -> bool {
    status_ == status::PUBLISHED || viewer.is_some_and(|u| u.may_edit(author_id))
}

/// Renders post `slug`'s page for `viewer`.
pub async fn render_show(
    app: &AppHandle,
    db: &Db,
    tpl: &Templates,
    lang: &Lang,
    viewer: Option<&Account>,
    slug: &str,
    args: ShowArgs,
) -> Result<Response, HttpError> {
    let locale = lang.locale().as_str();
    let moderator = viewer.is_some_and(|u| u.can(Permissions::UPDATE));
    let page = pages::show(app, db, locale, slug, moderator).await?;
    if !may_see(viewer, page.author_id, &page.status) {
        return Err(pages::not_found(app, locale));
    }
    let can_edit = viewer.is_some_and(|u| u.may_edit(page.author_id));
    let reply_to = args
        .reply
        .and_then(|id| page.comments.iter().find(|(c, _)| *c == id))
        .map(|(id, author)| context! { id, author });
    let html = tpl
        .render(
            "posts/show.html",
            context! {
                page => &page,
                can_edit,
                published => page.status == status::PUBLISHED,
                reply_to,
                comment_error => args.comment_error,
                comment_body => args.comment_body,
            },
        )
        .await?;
    Ok((args.status.unwrap_or(StatusCode::OK), html).into_response())
}
