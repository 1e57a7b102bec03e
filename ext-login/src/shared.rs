//! What decorators and the unauthorized answer need, without the user type: the app's
//! state `Shared`, and the facts of the request's user.

use std::sync::Arc;

use flagon::axum::response::{IntoResponse, Response};
use flagon::http::request::Parts;
use flagon::http::{HeaderValue, StatusCode, header};
use flagon::session::Session;
use flagon::{AppHandle, BoxFuture, tracing};

use crate::config::LoginConfig;
use crate::next::encode_component;
use crate::runtime::AuthMethod;
use crate::signals::{NeedsRefresh, Unauthorized};
use crate::user::User;

/// The request's user, as decorators see it.
#[derive(Clone)]
pub(crate) struct Facts {
    pub user: Option<Arc<dyn User>>,
    pub method: AuthMethod,
    pub fresh: bool,
}

pub(crate) type FactsFn = Arc<dyn Fn(&Parts) -> BoxFuture<Facts> + Send + Sync>;

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Nobody is logged in (or not by the accepted means).
    LoginRequired,
    /// Logged in, but not freshly enough (`fresh_login_required`).
    NeedsRefresh,
}

/// What an [`unauthorized_handler`](crate::Login::unauthorized_handler) is told.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// The request path and query (`/private?tab=1`), the `next` of the login redirect.
    pub next: String,
    /// The client asked for JSON (or the route is in an API blueprint).
    pub wants_json: bool,
    /// The login (or refresh) page URL with `next`, when a view is configured.
    pub login_url: Option<String>,
}

/// Replaces the default unauthorized answer.
pub(crate) type HandlerFn = Arc<dyn Fn(Refusal) -> BoxFuture<Response> + Send + Sync>;

/// App state: set by `Login::init_app`.
pub(crate) struct Shared {
    pub cfg: LoginConfig,
    pub facts: FactsFn,
    pub handler: Option<HandlerFn>,
}

impl Shared {
    pub fn of(app: &AppHandle) -> Option<Arc<Shared>> {
        app.state::<Shared>()
    }
}

/// The blueprint of the route a request matched (from the route table).
fn blueprint_of(app: &AppHandle, parts: &Parts) -> Option<String> {
    let matched = parts
        .extensions
        .get::<flagon::axum::extract::MatchedPath>()?
        .as_str()
        .to_owned();
    app.routes()
        .iter()
        .find(|r| r.path == matched)
        .and_then(|r| r.blueprint.as_deref().map(str::to_owned))
}

fn in_blueprint(bp: &str, name: &str) -> bool {
    bp == name
        || bp
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// A 401 problem (RFC 9457) for API clients.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let body = flagon::serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut res = (status, body.to_string()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::VARY, HeaderValue::from_static("accept"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// The default answer to a refused request (or the app's handler's): a redirect to the login
/// view with `next` and a flashed message, or a 401 (JSON problem or HTML).
pub(crate) async fn refuse(
    shared: &Shared,
    app: &AppHandle,
    parts: &Parts,
    reason: Reason,
) -> Response {
    let next = match parts.uri.query() {
        Some(q) => format!("{}?{q}", parts.uri.path()),
        None => parts.uri.path().to_owned(),
    };
    match reason {
        Reason::LoginRequired => app.signals().emit(Unauthorized {
            path: parts.uri.path().to_owned(),
        }),
        Reason::NeedsRefresh => app.signals().emit(NeedsRefresh {
            path: parts.uri.path().to_owned(),
        }),
    }
    let cfg = &shared.cfg;
    let blueprint = blueprint_of(app, parts);
    let api = blueprint
        .as_deref()
        .is_some_and(|bp| cfg.api_blueprints.iter().any(|b| in_blueprint(bp, b)));
    let wants_json = api || flagon::wants_json(parts.headers.get(header::ACCEPT));
    let view = {
        let per_bp = blueprint.as_deref().and_then(|bp| {
            cfg.blueprint_login_views
                .iter()
                .filter(|(name, _)| in_blueprint(bp, name))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, v)| v.clone())
        });
        let login = per_bp.or_else(|| cfg.login_view.clone());
        match reason {
            Reason::LoginRequired => login,
            Reason::NeedsRefresh => cfg.refresh_view.clone().or(login),
        }
    };
    let login_url = view.as_deref().and_then(|v| match app.url_for(v, ()) {
        Ok(url) => Some(format!(
            "{url}{}next={}",
            if url.contains('?') { '&' } else { '?' },
            encode_component(&next)
        )),
        Err(e) => {
            tracing::error!(target: "flagon_login", error = %e, view = v, "the login view has no URL");
            None
        }
    });
    if let Some(handler) = &shared.handler {
        return handler(Refusal {
            reason,
            next,
            wants_json,
            login_url,
        })
        .await;
    }
    let defaults = LoginConfig::default();
    let (id, fallback, default, category) = match reason {
        Reason::LoginRequired => (
            "login-required",
            &cfg.login_message,
            defaults.login_message,
            &cfg.login_message_category,
        ),
        Reason::NeedsRefresh => (
            "login-needs-refresh",
            &cfg.needs_refresh_message,
            defaults.needs_refresh_message,
            &cfg.needs_refresh_message_category,
        ),
    };
    let message = crate::messages::localize(app, parts, id, fallback, &default);
    if wants_json {
        return problem(StatusCode::UNAUTHORIZED, &message);
    }
    let Some(url) = login_url else {
        return flagon::HttpError::new(StatusCode::UNAUTHORIZED, message).into_response();
    };
    if !fallback.is_empty()
        && let Ok(session) = Session::load(parts).await
        && let Err(e) = session.flash(message, category.clone())
    {
        tracing::warn!(target: "flagon_login", error = %e, "could not flash the login message");
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
