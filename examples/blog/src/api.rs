//! The JSON API: posts with bearer-token authentication. Blueprint `api`, under `/api/v1`.
//!
//! | route | endpoint | what |
//! |---|---|---|
//! | `POST /api/v1/auth/token` | `api.token` | `{"email","password"}` → `{"access_token","refresh_token","expires_in","token_type"}` |
//! | `POST /api/v1/auth/refresh` | `api.refresh` | `{"refresh_token"}` → a new pair; the old refresh token stops working |
//! | `GET /api/v1/posts` | `api.list_posts` | published posts, `?page=&per_page=`, with `links` and a `Link` header |
//! | `POST /api/v1/posts` | `api.create_post` | authors and up: 201 with `Location` |
//! | `GET /api/v1/posts/{id}` | `api.show_post` | a published post; a draft only to its author and editors |
//! | `PUT /api/v1/posts/{id}` | `api.update_post` | its author or an editor; 403 otherwise |
//! | `DELETE /api/v1/posts/{id}` | `api.delete_post` | its author or an editor: 204 |
//!
//! The token routes are exempt from CSRF checks: they authenticate by their body and set no
//! cookie. Access tokens are flagon-login's JWTs (`Authorization: Bearer …`), lasting
//! `api.access_token_ttl`; refresh tokens are its rotating series: each use hands out a new
//! one, and presenting a used one again revokes the whole series. A request whose bearer
//! token is expired, forged or unsigned is a 401, whatever the route. A session cookie works
//! too (a logged-in browser's script), and then core's CSRF check asks for the
//! `X-CSRF-Token` header; a bearer request without cookies is not asked.
//!
//! Every error is `application/problem+json` (RFC 9457) with a `code` and, for a refused
//! field, the `field`: 400 when the body is not a JSON object sent as JSON, 422 when a field
//! is missing, unknown, of the wrong type or refused by [`PostInput::check`](crate::content::PostInput::check).
//!
//! Rate limits (flagon-limiter, per client address; `RateLimit` and `RateLimit-Policy` on
//! every answer when `[limiter] headers_on_success` is on): `api.token_limit` on the token
//! route plus `api.account_limit` per account, `api.refresh_limit`, `api.read_limit` on
//! reads, `api.write_limit` on writes.
//!
//! # Configuration (`[api]`)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `access_token_ttl` | `"15m"` | lifetime of an access token (`expires_in`) |
//! | `token_limit` | `"10/minute"` | token requests per client address |
//! | `account_limit` | `"5/minute"` | token requests per account (email), from any address |
//! | `refresh_limit` | `"30/minute"` | refresh requests per client address |
//! | `read_limit` | `"120/minute"` | `GET` requests per client address, per route |
//! | `write_limit` | `"30/minute"` | `POST`/`PUT`/`DELETE` on posts per client address, per route |

mod body;
mod caller;
mod posts;
pub mod problem;
mod tokens;

use std::num::NonZeroUsize;
use std::time::Duration;

use flagon::{AppHandle, Blueprint, ErrorContext, Route, Setup, SetupError, tracing};
use flagon_limiter::{KeyedLimit, limit};
use serde::{Deserialize, Serialize};

pub use problem::{ApiError, Problem};

/// `[api]` in flagon.toml.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// How long an access token is valid.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Token requests per client address.
    pub token_limit: String,
    /// Token requests per account, whatever the address.
    pub account_limit: String,
    /// Refresh requests per client address.
    pub refresh_limit: String,
    /// Reads per client address, per route.
    pub read_limit: String,
    /// Writes per client address, per route.
    pub write_limit: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            access_token_ttl: Duration::from_secs(15 * 60),
            token_limit: "10/minute".into(),
            account_limit: "5/minute".into(),
            refresh_limit: "30/minute".into(),
            read_limit: "120/minute".into(),
            write_limit: "30/minute".into(),
        }
    }
}

/// What the API's handlers share: its settings and the per-account limit of the token route.
pub struct ApiState {
    /// The settings.
    pub config: ApiConfig,
    /// Token requests per account (keyed by the lower-cased email).
    pub accounts: KeyedLimit,
}

/// Reads `[api]`, provides [`ApiState`] and mounts the blueprint. A malformed limit fails
/// the build naming its key.
pub fn install(app: &mut Setup<'_>) -> Result<(), SetupError> {
    let config: ApiConfig = app.config("api")?;
    if config.access_token_ttl.is_zero() {
        return Err(app.config_error("api.access_token_ttl", "must be longer than 0s"));
    }
    for (key, value) in [
        ("api.token_limit", &config.token_limit),
        ("api.account_limit", &config.account_limit),
        ("api.refresh_limit", &config.refresh_limit),
        ("api.read_limit", &config.read_limit),
        ("api.write_limit", &config.write_limit),
    ] {
        flagon_limiter::parse_limits(value).map_err(|e| app.config_error(key, e.to_string()))?;
    }
    let max_keys = NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN);
    let accounts = KeyedLimit::new(&config.account_limit, max_keys)
        .map_err(|e| app.config_error("api.account_limit", e.to_string()))?;
    app.blueprint(blueprint(&config));
    // The token routes authenticate by what their body says and set no cookie: a forged
    // cross-site request gains nothing (the tokens are in an answer only the sender reads).
    app.csrf_exempt("api.token");
    app.csrf_exempt("api.refresh");
    app.provide(ApiState { config, accounts });
    Ok(())
}

/// The `api` blueprint with `config`'s limits.
pub fn blueprint(config: &ApiConfig) -> Blueprint {
    let read = || limit(config.read_limit.clone());
    let write = || limit(config.write_limit.clone());
    let mut bp = Blueprint::new("api")
        .url_prefix("/api/v1")
        .route(
            Route::post("/auth/token", tokens::token)
                .name("token")
                .with(limit(config.token_limit.clone())),
        )
        .route(
            Route::post("/auth/refresh", tokens::refresh)
                .name("refresh")
                .with(limit(config.refresh_limit.clone())),
        )
        .route(
            Route::get("/posts", posts::list)
                .name("list_posts")
                .with(read()),
        )
        .route(
            Route::post("/posts", posts::create)
                .name("create_post")
                .with(write()),
        )
        .route(
            Route::get("/posts/{id}", posts::show)
                .name("show_post")
                .with(read()),
        )
        .route(
            Route::put("/posts/{id}", posts::update)
                .name("update_post")
                .with(write()),
        )
        .route(
            Route::delete("/posts/{id}", posts::delete)
                .name("delete_post")
                .with(write()),
        );
    for status in problem::HANDLED {
        bp = bp.error_handler(status, |ctx: ErrorContext| async move {
            problem::for_error(&ctx)
        });
    }
    bp
}

/// Drops the cached pages a change to the post `slug` makes stale: every page of the index
/// and the post's own page (endpoints `posts.index` and `posts.show`, when the app has
/// them). Called after the change is committed; a cache that cannot be reached is logged,
/// and its entries expire with their TTL.
pub async fn invalidate(app: &AppHandle, slug: &str) {
    let Some(caches) = flagon_cache::Caches::of(app) else {
        return;
    };
    let cache = caches.default();
    if app.routes().get("posts.index").is_some()
        && let Err(e) = cache.purge_cached(app, "posts.index").await
    {
        tracing::warn!(error = %e, "could not drop the cached index pages");
    }
    if app.routes().get("posts.show").is_some()
        && let Err(e) = cache
            .delete_cached(app, "posts.show", [("slug", slug)])
            .await
    {
        tracing::warn!(error = %e, slug, "could not drop a post's cached page");
    }
}
