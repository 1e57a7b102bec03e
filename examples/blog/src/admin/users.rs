//! `GET /admin/users` and `POST /admin/users/{id}`.

use flagon::axum::response::{IntoResponse, Response};
use flagon::extract::{Form, Path, Query};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, HttpError};
use flagon_db::Db;
use flagon_i18n::Lang;
use flagon_login::{CurrentUser, Login, Role};
use serde::Deserialize;

use super::{PER_PAGE, PageQuery, back, refused};
use crate::models::{ACCOUNT_COLUMNS, Account};

/// `GET /admin/users?page=`: newest first.
pub(crate) async fn list(
    db: Db,
    tpl: Templates,
    Query(q): Query<PageQuery>,
) -> Result<Response, HttpError> {
    let page = q.page()?;
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY id DESC LIMIT {} OFFSET {}",
        PER_PAGE + 1,
        (page - 1) * PER_PAGE
    );
    let mut rows: Vec<Account> = db
        .query_as(&sql)
        .fetch_all(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    let more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    let users: Vec<_> = rows
        .iter()
        .map(|a| {
            context! {
                id => a.id, email => a.email, username => a.username, role => a.role,
                verified => a.verified_at.is_some(), active => a.active == 1,
            }
        })
        .collect();
    let ctx = context! { users, page, more, roles => ["author", "editor", "admin"] };
    Ok(tpl.render("admin/users.html", ctx).await?.into_response())
}

/// The user form: a new role and whether the account may log in.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UserForm {
    role: String,
    active: Option<String>,
}

/// `POST /admin/users/{id}`: sets the role (`author`, `editor`, `admin`) and the active
/// flag. An admin cannot demote or deactivate themself (someone must stay admin). A
/// deactivated account's remember-me tokens are revoked; its sessions end on their next
/// request (flagon-login refuses inactive users).
pub(crate) async fn update(
    app: AppHandle,
    me: CurrentUser<Account>,
    db: Db,
    lang: Lang,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<UserForm>,
) -> Result<Response, HttpError> {
    let role = match Role::parse(&form.role) {
        Some(r @ (Role::Author | Role::Editor | Role::Admin)) => r,
        _ => return Err(refused(lang.t("admin-error-role", ()))),
    };
    let active = form
        .active
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "0");
    let Some(target) = Account::by_id(&db, id).await? else {
        return Err(HttpError::not_found(lang.t("admin-error-no-user", ())));
    };
    if target.id == me.id && (role != Role::Admin || !active) {
        return Err(refused(lang.t("admin-error-self", ())));
    }
    let name = match role {
        Role::Admin => "admin",
        Role::Editor => "editor",
        _ => "author",
    };
    db.query("UPDATE users SET role = ?, active = ? WHERE id = ?")
        .bind(name)
        .bind(i64::from(active))
        .bind(id)
        .execute(&db)
        .await
        .map_err(flagon_db::Error::from)?;
    if !active {
        Login::<Account>::revoke_tokens(&app, &id.to_string())
            .await
            .map_err(HttpError::internal)?;
    }
    let msg = lang.t("admin-user-saved", [("name", target.username.as_str())]);
    back(&app, &session, "admin.users", msg)
}
