//! Route decorators: `login_required`, `fresh_login_required`, `permission_required`, the
//! token-only and session-only variants, and `identify`.

use std::sync::Arc;

use flagon::axum::extract::Request;
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::{Method, StatusCode};
use flagon::{Decorator, Identity, Next, RequestExt};

use crate::permissions::Permissions;
use crate::runtime::AuthMethod;
use crate::shared::{Facts, Reason, Shared, problem, refuse};

/// The provider the decorators name: the extension.
const PROVIDER: &str = "login";

#[derive(Clone)]
enum Need {
    Any,
    Fresh,
    Token,
    Session,
    Bits(Permissions),
    Named(Arc<[String]>),
    Nothing,
}

async fn run(need: Need, req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let Some(app) = req.app().cloned() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(shared) = Shared::of(&app) else {
        return flagon::HttpError::internal("login is not set up").into_response();
    };
    let (mut parts, body) = req.into_parts();
    let facts: Facts = (shared.facts)(&parts).await;
    if let Some(user) = &facts.user {
        let _ = parts.extensions.get::<Identity>().is_none().then(|| {
            parts.extensions.insert(Identity::new(user.id()));
        });
    }
    let authenticated = match (&need, facts.method) {
        (Need::Nothing, _) => true,
        (_, AuthMethod::Anonymous) => false,
        (Need::Token, m) => m.is_bearer(),
        (Need::Session | Need::Fresh, m) => m.is_session(),
        _ => facts.user.is_some(),
    };
    if !authenticated {
        return refuse(&shared, &app, &parts, Reason::LoginRequired).await;
    }
    let allowed = match (&need, &facts.user) {
        (Need::Fresh, _) if !facts.fresh => {
            return refuse(&shared, &app, &parts, Reason::NeedsRefresh).await;
        }
        (Need::Bits(p), Some(u)) => u.permissions().contains(*p),
        (Need::Named(names), Some(u)) => names.iter().all(|n| u.has_named_permission(n)),
        _ => true,
    };
    if !allowed {
        let json = flagon::wants_json(parts.headers.get(flagon::http::header::ACCEPT));
        return if json {
            problem(
                StatusCode::FORBIDDEN,
                "You do not have permission to do this.",
            )
        } else {
            flagon::HttpError::forbidden("You do not have permission to do this.").into_response()
        };
    }
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if facts.user.is_some() {
        // A page for one user must not be stored by shared caches.
        let h = res.headers_mut();
        if !h.contains_key(flagon::http::header::CACHE_CONTROL) {
            h.insert(
                flagon::http::header::CACHE_CONTROL,
                flagon::http::HeaderValue::from_static("private"),
            );
        }
    }
    res
}

fn decorator(description: &str, need: Need) -> Decorator {
    Decorator::new(PROVIDER, description, move |req: Request, next: Next| {
        run(need.clone(), req, next)
    })
}

/// `@login_required`: the route needs a logged-in user (by session, remember-me cookie,
/// bearer JWT or API key). Otherwise the unauthorized answer: a redirect to `login_view`
/// with `next` and the flashed `login_message`, or a 401 (JSON problem for API clients).
/// `OPTIONS` requests pass. Sets core's [`Identity`], so a cache or limiter after it varies
/// on the user. Put it on a route (`Route::with`) or a blueprint (`Blueprint::with`).
///
/// ```
/// use flagon::Route;
/// async fn private() -> &'static str { "secret" }
/// let route = Route::get("/private", private).with(flagon_login::login_required());
/// ```
pub fn login_required() -> Decorator {
    decorator("login required", Need::Any)
}

/// `@fresh_login_required`: as [`login_required`] by session only, and the login must be
/// fresh (entered with a password in this session, not restored from a remember-me cookie,
/// within `login.fresh_max_age`); a stale one gets the `needs_refresh` answer (redirect to
/// `refresh_view` or `login_view`, or 401).
pub fn fresh_login_required() -> Decorator {
    decorator("fresh login required", Need::Fresh)
}

/// Only bearer credentials (JWT or API key) are accepted: an API route. Such requests carry
/// no cookie, so core's CSRF check does not ask them for a token.
pub fn token_required() -> Decorator {
    decorator("bearer token required", Need::Token)
}

/// Only a session (or remember-me cookie) login is accepted: a browser route.
pub fn session_required() -> Decorator {
    decorator("session login required", Need::Session)
}

/// The user must hold every bit of `permissions` (else 403; anonymous gets the
/// unauthorized answer).
///
/// ```
/// use flagon::Route;
/// use flagon_login::{Permissions, permission_required};
/// async fn delete_post() -> &'static str { "deleted" }
/// let route = Route::post("/posts/{id}/delete", delete_post)
///     .with(permission_required(Permissions::DELETE));
/// ```
pub fn permission_required(permissions: Permissions) -> Decorator {
    decorator(
        &format!("permission {permissions}"),
        Need::Bits(permissions),
    )
}

/// The user must hold every named permission (see
/// [`User::has_named_permission`](crate::User::has_named_permission)).
pub fn named_permission_required<I, S>(names: I) -> Decorator
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let names: Arc<[String]> = names.into_iter().map(Into::into).collect();
    decorator(
        &format!("permission {}", names.join(", ")),
        Need::Named(names),
    )
}

/// Loads the request's user (if any) and sets core's [`Identity`] without requiring a
/// login: put it before a cache or limiter decorator that should vary on the user.
pub fn identify() -> Decorator {
    decorator("identify user", Need::Nothing)
}
