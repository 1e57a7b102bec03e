//! Administration: users, posts, comments and the mail outbox. Blueprint `admin`, under
//! `/admin`: admins only (`permission_required(Permissions::ADMIN)`), except comment
//! moderation, which editors may do too (`Permissions::UPDATE`).
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /admin/` | admin | counts, links |
//! | `GET /admin/users`, `POST /admin/users/{id}` | admin | the accounts; change a role, (de)activate |
//! | `GET /admin/posts` | admin | every post, drafts too, with links |
//! | `GET /admin/comments`, `POST /admin/comments/{id}/hide` and `/show` | editor, admin | moderation |
//! | `GET /admin/outbox`, `POST /admin/outbox/{id}/retry`, `POST /admin/outbox/retry` | admin | the mail outbox; failed and dead messages retried |

mod content;
mod outbox;
mod users;

use flagon::axum::response::{IntoResponse, Redirect, Response};
use flagon::http::StatusCode;
use flagon::templates::{Templates, context};
use flagon::{Blueprint, HttpError, Route};
use flagon_db::Db;
use flagon_login::{Permissions, login_required, permission_required};
use flagon_mail::{Mail, Status};

/// Rows per admin page.
pub const PER_PAGE: i64 = 50;

/// The `admin` blueprint.
pub fn blueprint() -> Blueprint {
    let admin = || permission_required(Permissions::ADMIN);
    let moderator = || permission_required(Permissions::UPDATE);
    Blueprint::new("admin")
        .url_prefix("/admin")
        .with(login_required())
        .route(Route::get("/", index).name("index").with(admin()))
        .route(
            Route::get("/users", users::list)
                .name("users")
                .with(admin()),
        )
        .route(
            Route::post("/users/{id}", users::update)
                .name("user_update")
                .with(admin()),
        )
        .route(
            Route::get("/posts", content::posts)
                .name("posts")
                .with(admin()),
        )
        .route(
            Route::get("/comments", content::comments)
                .name("comments")
                .with(moderator()),
        )
        .route(
            Route::post("/comments/{id}/hide", content::hide)
                .name("comment_hide")
                .with(moderator()),
        )
        .route(
            Route::post("/comments/{id}/show", content::show)
                .name("comment_show")
                .with(moderator()),
        )
        .route(
            Route::get("/outbox", outbox::list)
                .name("outbox")
                .with(admin()),
        )
        .route(
            Route::post("/outbox/{id}/retry", outbox::retry)
                .name("outbox_retry")
                .with(admin()),
        )
        .route(
            Route::post("/outbox/retry", outbox::retry_all)
                .name("outbox_retry_all")
                .with(admin()),
        )
}

async fn count(db: &Db, sql: &str) -> Result<i64, HttpError> {
    Ok(db
        .query_scalar::<i64>(sql)
        .fetch_one(db)
        .await
        .map_err(flagon_db::Error::from)?)
}

/// `GET /admin/`.
async fn index(db: Db, mail: Mail, tpl: Templates) -> Result<Response, HttpError> {
    let queue = mail.queue();
    let ctx = context! {
        users => count(&db, "SELECT COUNT(*) FROM users").await?,
        posts => count(&db, "SELECT COUNT(*) FROM posts").await?,
        comments => count(&db, "SELECT COUNT(*) FROM comments").await?,
        hidden => count(&db, "SELECT COUNT(*) FROM comments WHERE status = 'hidden'").await?,
        pending => queue.count(Status::Pending).await?,
        failed => queue.count(Status::Failed).await? + queue.count(Status::Dead).await?,
    };
    Ok(tpl.render("admin/index.html", ctx).await?.into_response())
}

/// `?page=` on the lists.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct PageQuery {
    page: Option<i64>,
    status: Option<String>,
}

impl PageQuery {
    /// The 1-based page, or a 400 for nonsense.
    fn page(&self) -> Result<i64, HttpError> {
        match self.page {
            None => Ok(1),
            Some(p) if (1..=100_000).contains(&p) => Ok(p),
            Some(_) => Err(HttpError::bad_request("`page` is a number from 1.")),
        }
    }
}

/// A 303 back to the list `endpoint`, with a flashed message.
fn back(
    app: &flagon::AppHandle,
    session: &flagon::session::Session,
    endpoint: &str,
    message: String,
) -> Result<Response, HttpError> {
    session.flash(message, "success")?;
    let path = app.url_for(endpoint, ()).map_err(HttpError::internal)?;
    Ok(Redirect::to(&path).into_response())
}

/// A 400 with a message, for a refused admin action.
fn refused(message: String) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, message)
}
