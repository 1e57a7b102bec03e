//! Flask-Login for Flagon, made revocable: user loading, login and logout with session-id
//! rotation, remember-me tokens that are really revoked, `login_required`, fresh logins,
//! bearer JWTs and API keys, permissions, and Argon2id passwords.
//!
//! ```
//! use flagon::axum::Form;
//! use flagon::axum::response::{IntoResponse, Response};
//! use flagon::testing::{TestClient, testing_config_toml};
//! use flagon::{App, HttpError, Route};
//! use flagon_login::testing::{TestUser, Users};
//! use flagon_login::{Auth, CurrentUser, Login, LoginOptions, login_required};
//!
//! #[derive(serde::Deserialize)]
//! struct Credentials { username: String, password: String }
//!
//! async fn login(
//!     auth: Auth<TestUser>,
//!     users: flagon::Ext<Users>,
//!     Form(form): Form<Credentials>,
//! ) -> Result<Response, HttpError> {
//!     let user = users.by_name(&form.username);
//!     // Unknown users are checked against a dummy hash: same time, same answer; failures
//!     // are throttled per account.
//!     let stored = user.as_ref().map(|u| u.password_hash.as_str());
//!     let verified = auth.authenticate(&form.username, &form.password, stored).await?;
//!     match user {
//!         Some(user) if verified.ok => {
//!             auth.login_user(user, LoginOptions::default()).await?;
//!             Ok(auth.redirect_next(None).into_response())
//!         }
//!         _ => Ok((flagon::http::StatusCode::OK, "wrong username or password").into_response()),
//!     }
//! }
//!
//! async fn private(user: CurrentUser<TestUser>) -> String {
//!     format!("hello {}", user.name)
//! }
//!
//! # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = Users::default();
//! let provided = users.clone();
//! let app = App::builder()
//!     .settings(testing_config_toml("[login]\nlogin_view = \"login\"\n"))
//!     .register(Login::new(users.loader()))
//!     .configure(move |app| {
//!         app.provide(provided);
//!         app.csrf_exempt("login"); // the example posts without a form page
//!         Ok(())
//!     })
//!     .route(Route::post("/login", login))
//!     .route(Route::get("/private", private).with(login_required()))
//!     .build()
//!     .unwrap();
//! let pw = flagon_login::Login::<TestUser>::passwords(app.handle()).unwrap();
//! users.add(TestUser::new("1", "alice", &pw.hash("wonderland").await.unwrap()));
//!
//! let client = TestClient::new(&app);
//! let res = client.get("/private").send().await;
//! assert_eq!(res.status(), 303);
//! assert_eq!(res.location(), Some("/login?next=%2Fprivate"));
//! let res = client.post("/login").form(&[("username", "alice"), ("password", "wonderland")]).send().await;
//! assert_eq!(res.status(), 303);
//! assert_eq!(client.get("/private").send().await.text(), "hello alice");
//! # });
//! ```
//!
//! # Flask-Login, in Flagon
//!
//! | Flask-Login | flagon-login |
//! |---|---|
//! | `LoginManager(app)`, `user_loader` | [`Login::new(loader)`](Login::new): an async [`UserLoader`] (closures work) |
//! | `UserMixin` | [`User`]: `id`, `is_active`, `auth_hash`, `permissions` |
//! | `current_user` | [`CurrentUser<U>`] (rejects), [`MaybeUser<U>`], [`current_user`] in hooks, `current_user` in templates (`is_authenticated`, `name`, `id`) |
//! | `login_user(user, remember, duration, force, fresh)` | [`Auth::login_user`] with [`LoginOptions`] |
//! | `logout_user()`, `confirm_login()` | [`Auth::logout_user`], [`Auth::confirm_login`] |
//! | `@login_required`, `@fresh_login_required` | [`login_required`], [`fresh_login_required`] on a route or blueprint |
//! | `login_view`, `blueprint_login_views`, `login_message` | `[login]` keys (below) |
//! | `unauthorized_handler` | [`Login::unauthorized_handler`] |
//! | `request_loader` | bearer JWTs and API keys ([`Login::api_keys`]) |
//! | `session_protection` | `[login] session_protection` |
//! | signals | [`signals`] |
//! | `FlaskLoginClient` | [`testing::login_as`] |
//!
//! What Flask-Login never gave:
//!
//! * **Sessions are revoked, not forgotten.** Every login rotates the session id (the old
//!   record is deleted) and the CSRF secret; logout deletes the record. A keyed digest of the
//!   user's [`User::auth_hash`] is kept in the session and compared in constant time on each
//!   request: a password change on one device logs out every other session.
//! * **Remember-me tokens are revocable**: a random selector and validator, only a SHA-256 of
//!   the validator stored (with the expiry and the auth digest), checked in constant time,
//!   replaced on every use; a replayed old validator revokes the whole series and is logged
//!   at WARN ([`signals::RememberTokenTheft`]). Logout, a password change and
//!   `login remember revoke --user ID` revoke them. Stores: memory, SQL through `flagon-db`
//!   (feature `db`, its own migration), Redis (feature `redis`); see [`store`].
//! * **A safe `next`** ([`safe_next`], [`Auth::redirect_next`]): only relative same-site paths.
//! * **API authentication**: `Authorization: Bearer` JWTs (one configured algorithm of
//!   HS256, RS256 or EdDSA; `exp`, `nbf`, `iss`, `aud` checked, `alg=none` and algorithm
//!   confusion refused) and opaque API keys (stored hashed, found by prefix), resolving to
//!   the same [`CurrentUser`]; [`token_required`] / [`session_required`] choose; access and
//!   refresh tokens with [`Auth::issue_token`] and [`Auth::refresh`]. A bearer request
//!   carries no cookie, and core's CSRF check does not ask a request authenticated only by
//!   `Authorization: Bearer` for a token.
//! * **Passwords** ([`Passwords`]): Argon2id (m=19 MiB, t=2, p=1) in `spawn_blocking`
//!   behind a concurrency cap, length-capped, a dummy verify for unknown users, rehash when
//!   parameters are below target, hostile stored parameters refused.
//! * **Permissions**: [`Permissions`] bit flags, [`Role`]s, [`permission_required`],
//!   [`ensure_owner`].
//!
//! The user is loaded at most once per request (a request-scoped value), by whoever asks
//! first; a route that never asks pays nothing. The decorators set core's
//! [`Identity`](flagon::Identity), so a cache or limiter after them varies on the user
//! ([`identify`] does it without requiring a login).
//!
//! # Configuration
//!
//! `[login]` in `flagon.toml` (or `FLAGON_LOGIN__KEY`); every key is listed on
//! [`LoginConfig`]. The most used:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `login_view` | none | endpoint of the login page; none answers 401 |
//! | `login_message` | `"Please log in to access this page."` | flashed on the redirect |
//! | `session_protection` | `"basic"` | `off`, `basic` (stale), `strong` (logged out) on a new client IP or User-Agent |
//! | `fresh_max_age` | `"0s"` | freshness lifetime (`0s`: the session's) |
//! | `remember_cookie_name` | `"remember_token"` | `__Host-` prefixed unless `session.insecure_plain_http` |
//! | `remember_duration` | `"30d"` | remember-me token lifetime |
//! | `remember_store` | `"memory"` | `memory`, `db`, `redis` |
//! | `password_max_bytes` | `4096` | longer passwords are refused before hashing |
//! | `max_failures_per_hour` | `100` | failed logins per account before [`Auth::authenticate`] answers 429 (refills at that rate) |
//! | `hash_concurrency` | cores | Argon2 computations at once; `hash_queue_timeout` (2s) then 503 |
//! | `jwt_algorithm` | `"HS256"` | the one accepted; HS256's key is derived from the app's secret unless `jwt_secret` |
//!
//! A `login_view`, `refresh_view` or blueprint view that names no endpoint, and an unknown
//! `remember_store`, fail the build naming the key.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `jwt` | on | bearer JWTs on jsonwebtoken's pure-Rust backend |
//! | `db` | off | the SQL remember-token store on `flagon-db` |
//! | `redis` | off | the Redis remember-token store |
//!
//! # Errors
//!
//! | error | answer |
//! |---|---|
//! | not logged in ([`login_required`], [`CurrentUser`]) | 303 to `login_view?next=…` with a flash, or 401 (`application/problem+json` when the client prefers JSON or the blueprint is in `api_blueprints`; HTML otherwise) |
//! | stale login ([`fresh_login_required`]) | the same, to `refresh_view`, message `needs_refresh_message` |
//! | missing permission | 403 |
//! | [`PasswordError::TooLong`] | 400, before any hashing |
//! | [`PasswordError::Busy`] | 503 after `hash_queue_timeout` |
//! | [`PasswordError::Throttled`] | 429 from [`Auth::authenticate`] past `max_failures_per_hour` for the account |
//! | [`LoginError`] | 500 (store failure) or the session's 503 |
//! | [`TokenError`] | 401 for a bad refresh token, else 500 |

mod apikey;
mod auth;
mod config;
mod decorators;
#[cfg(feature = "jwt")]
mod jwt;
mod login;
mod messages;
mod next;
mod passwords;
mod permissions;
mod runtime;
mod shared;
pub mod signals;
pub mod store;
pub mod testing;
mod throttle;
mod tokens;
mod user;

pub use apikey::{NewApiKey, StoredApiKey, generate_api_key};
pub use auth::{Auth, CurrentUser, LoginError, LoginOptions, MaybeUser, current_user};
pub use config::{LoginConfig, SessionProtection};
pub use decorators::{
    fresh_login_required, identify, login_required, named_permission_required, permission_required,
    session_required, token_required,
};
#[cfg(feature = "jwt")]
pub use jwt::{Claims, TokenError};
pub use login::Login;
pub use next::{safe_next, safe_next_value};
pub use passwords::{HashStats, PasswordError, Passwords, PolicyError, Verified};
pub use permissions::{PermissionError, Permissions, Role, ensure_owner};
pub use runtime::AuthMethod;
pub use shared::{Reason, Refusal};
pub use user::{User, UserLoader};
