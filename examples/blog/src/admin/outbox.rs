//! `GET /admin/outbox` and retrying failed messages (flagon-mail's [`Queue`]).

use flagon::axum::response::{IntoResponse, Response};
use flagon::extract::{Path, Query};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{AppHandle, HttpError};
use flagon_i18n::Lang;
use flagon_mail::{Mail, RetryWhich, Status};

use super::{PageQuery, back, refused};

/// Messages listed at most.
const LISTED: usize = 200;

/// `GET /admin/outbox?status=`: the newest messages, of one status or all.
pub(crate) async fn list(
    mail: Mail,
    tpl: Templates,
    lang: Lang,
    Query(q): Query<PageQuery>,
) -> Result<Response, HttpError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => match Status::parse(s) {
            Some(st) => Some(st),
            None => return Err(refused(lang.t("admin-error-status", ()))),
        },
    };
    let queue = mail.queue();
    let entries = queue.list(status, LISTED).await?;
    let messages: Vec<_> = entries
        .iter()
        .map(|e| {
            context! {
                id => e.id,
                message_id => e.message_id,
                status => e.status.as_str(),
                attempts => e.attempts,
                recipients => e.recipients.join(", "),
                last_error => e.last_error,
                created_at => e.created_at / 1000,
                retryable => matches!(e.status, Status::Failed | Status::Dead),
            }
        })
        .collect();
    let ctx = context! {
        messages,
        status => status.map(|s| s.as_str()).unwrap_or(""),
        durable => queue.is_durable(),
        statuses => ["pending", "sent", "failed", "dead"],
    };
    Ok(tpl.render("admin/outbox.html", ctx).await?.into_response())
}

/// `POST /admin/outbox/{id}/retry`: a failed or dead message goes back to pending, due now.
pub(crate) async fn retry(
    app: AppHandle,
    mail: Mail,
    lang: Lang,
    session: Session,
    Path(id): Path<i64>,
) -> Result<Response, HttpError> {
    let n = mail.queue().retry(RetryWhich::Id(id)).await?;
    if n == 0 {
        return Err(refused(lang.t("admin-error-not-retryable", ())));
    }
    back(
        &app,
        &session,
        "admin.outbox",
        lang.t("admin-outbox-retried", [("count", n)]),
    )
}

/// `POST /admin/outbox/retry`: every failed and dead message.
pub(crate) async fn retry_all(
    app: AppHandle,
    mail: Mail,
    lang: Lang,
    session: Session,
) -> Result<Response, HttpError> {
    let n = mail.queue().retry(RetryWhich::AllFailed).await?;
    back(
        &app,
        &session,
        "admin.outbox",
        lang.t("admin-outbox-retried", [("count", n)]),
    )
}
