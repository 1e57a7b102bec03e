//! Extractors: `CurrentUser`, `MaybeUser` and `Auth` (login, logout, tokens).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use flagon::axum::extract::FromRequestParts;
use flagon::axum::response::{IntoResponse, Redirect, Response};
use flagon::http::StatusCode;
use flagon::http::request::Parts;
use flagon::session::Session;
use flagon::{AppHandle, ClientIp, HttpError, Identity, tracing};

use crate::login::Handle;
use crate::passwords::Passwords;
use crate::runtime::{
    self, AUTH, AuthMethod, CookieOp, Current, FINGERPRINT, FRESH, FRESH_AT, REMEMBER, Runtime,
    USER_ID,
};
use crate::shared::{Reason, Shared, refuse};
use crate::signals::{LoginConfirmed, UserLoggedIn, UserLoggedOut};
use crate::store::StoreError;
use crate::user::User;

/// Why login could not be used in a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The app has no `Login<U>` for this user type.
    #[error("no Login extension for this user type is registered")]
    NotSetUp,
    /// The session is unavailable (its store failed).
    #[error(transparent)]
    Session(#[from] flagon::session::SessionRejection),
    /// The remember-token store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session could not be written.
    #[error(transparent)]
    SessionWrite(#[from] flagon::session::SessionError),
}

impl IntoResponse for LoginError {
    fn into_response(self) -> Response {
        match self {
            LoginError::Session(r) => r.into_response(),
            e => HttpError::internal(e).into_response(),
        }
    }
}

impl From<LoginError> for HttpError {
    fn from(e: LoginError) -> HttpError {
        match e {
            LoginError::Session(_) => HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sessions are temporarily unavailable; try again shortly.",
            ),
            e => HttpError::internal(e),
        }
    }
}

/// Options of [`Auth::login_user`] (Flask-Login's `login_user(user, remember, duration,
/// force, fresh)`).
#[derive(Clone, Copy, Debug)]
pub struct LoginOptions {
    /// Issue a remember-me token (default `false`).
    pub remember: bool,
    /// Its lifetime (default `login.remember_duration`).
    pub duration: Option<Duration>,
    /// Mark the login fresh (default `true`).
    pub fresh: bool,
    /// Log in an inactive user too (default `false`).
    pub force: bool,
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions {
            remember: false,
            duration: None,
            fresh: true,
            force: false,
        }
    }
}

impl LoginOptions {
    /// Default options with `remember`.
    pub fn remember(remember: bool) -> LoginOptions {
        LoginOptions {
            remember,
            ..LoginOptions::default()
        }
    }
}

fn handle<U: User>(app: &AppHandle) -> Result<Arc<Handle<U>>, LoginError> {
    app.state::<Handle<U>>().ok_or(LoginError::NotSetUp)
}

/// The request's user for a before hook or a tower layer, loaded once per request
/// (whoever asks first: a decorator, a hook, an extractor, a template shares the value).
/// The future borrows nothing, so the hook can move its request afterwards.
pub fn current_user<U: User>(
    req: &flagon::axum::extract::Request,
) -> impl std::future::Future<Output = Option<Arc<U>>> + Send + 'static {
    use flagon::RequestExt as _;
    let loading = req
        .app()
        .and_then(|app| app.state::<Handle<U>>())
        .map(|h| h.key.load(req));
    async move { loading?.await?.user() }
}

/// The logged-in user, or the unauthorized answer (a redirect to the login view with a
/// flashed message, or a 401). Derefs to `U`.
///
/// ```
/// use flagon_login::CurrentUser;
/// # use flagon_login::testing::TestUser as Account;
/// async fn profile(user: CurrentUser<Account>) -> String {
///     format!("hello {}", user.name)
/// }
/// ```
pub struct CurrentUser<U>(pub Arc<U>);

impl<U> Deref for CurrentUser<U> {
    type Target = U;
    fn deref(&self) -> &U {
        &self.0
    }
}

impl<U> Clone for CurrentUser<U> {
    fn clone(&self) -> Self {
        CurrentUser(self.0.clone())
    }
}

impl<U: User, S: Send + Sync> FromRequestParts<S> for CurrentUser<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let app = AppHandle::from_request_parts(parts, &())
            .await
            .map_err(IntoResponse::into_response)?;
        let h = handle::<U>(&app).map_err(IntoResponse::into_response)?;
        let user = h.key.load(parts).await.and_then(|c| c.user());
        match user {
            Some(u) => {
                let _ = Identity::set_parts(parts, &*u);
                Ok(CurrentUser(u))
            }
            None => {
                let shared = Shared::of(&app)
                    .ok_or_else(|| HttpError::internal("login is not set up").into_response())?;
                Err(refuse(&shared, &app, parts, Reason::LoginRequired).await)
            }
        }
    }
}

/// Sets core's identity on request parts (for handlers; decorators set it on the request).
trait SetParts {
    fn set_parts(parts: &mut Parts, user: &dyn User) -> Result<(), Identity>;
}

impl SetParts for Identity {
    fn set_parts(parts: &mut Parts, user: &dyn User) -> Result<(), Identity> {
        if parts.extensions.get::<Identity>().is_some() {
            return Err(Identity::new(user.id()));
        }
        parts.extensions.insert(Identity::new(user.id()));
        Ok(())
    }
}

/// The user if someone is logged in; anonymous is a value too (`is_authenticated()` is
/// false). Never rejects.
pub struct MaybeUser<U>(pub Option<Arc<U>>);

impl<U> MaybeUser<U> {
    /// Whether someone is logged in.
    pub fn is_authenticated(&self) -> bool {
        self.0.is_some()
    }

    /// The user.
    pub fn user(&self) -> Option<&U> {
        self.0.as_deref()
    }
}

impl<U: User, S: Send + Sync> FromRequestParts<S> for MaybeUser<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let app = AppHandle::from_request_parts(parts, &())
            .await
            .map_err(IntoResponse::into_response)?;
        let h = handle::<U>(&app).map_err(IntoResponse::into_response)?;
        let user = h.key.load(parts).await.and_then(|c| c.user());
        if let Some(u) = &user {
            let _ = Identity::set_parts(parts, &**u);
        }
        Ok(MaybeUser(user))
    }
}

/// Logging in and out, in a handler (Flask-Login's `login_user`, `logout_user`,
/// `confirm_login`), with the request's user and the password hasher at hand.
///
/// ```
/// use flagon::axum::response::Redirect;
/// use flagon_login::{Auth, LoginOptions};
/// # use flagon_login::testing::TestUser as Account;
/// async fn login(auth: Auth<Account>) -> Result<Redirect, flagon::HttpError> {
///     let user = Account::new("1", "alice", "pw-hash");
///     auth.login_user(user, LoginOptions::remember(true)).await?;
///     Ok(auth.redirect_next(None))
/// }
/// ```
pub struct Auth<U> {
    rt: Arc<Runtime<U>>,
    current: Arc<Current<U>>,
    session: Session,
    app: AppHandle,
    fingerprint: runtime::Fingerprint,
    host: Option<String>,
    remember_cookie: Option<String>,
}

impl<U: User, S: Send + Sync> FromRequestParts<S> for Auth<U> {
    type Rejection = LoginError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, LoginError> {
        let app = AppHandle::from_request_parts(parts, &())
            .await
            .map_err(|_| LoginError::NotSetUp)?;
        let h = handle::<U>(&app)?;
        let current = h.key.load(parts).await.ok_or(LoginError::NotSetUp)?;
        let session = Session::load(parts).await.map_err(LoginError::Session)?;
        let fingerprint = runtime::fingerprint(ClientIp::from_parts(parts), Some(&parts.headers));
        let host = parts
            .headers
            .get(flagon::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let remember_cookie = h.rt.cookie.find(&parts.headers);
        Ok(Auth {
            rt: h.rt.clone(),
            current,
            session,
            app,
            fingerprint,
            host,
            remember_cookie,
        })
    }
}

impl<U: User> Auth<U> {
    /// The request's user.
    pub fn user(&self) -> Option<Arc<U>> {
        self.current.user()
    }

    /// How the request's user was authenticated.
    pub fn method(&self) -> AuthMethod {
        self.current.lock().method
    }

    /// Whether the login is fresh (made in this session with a password, not restored from
    /// a remember-me cookie, not staled by session protection, within `login.fresh_max_age`).
    pub fn is_fresh(&self) -> bool {
        self.current.lock().fresh
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.rt.passwords
    }

    /// Checks a login attempt for `account` (the name typed in the form) against its
    /// stored hash (`None` or `""` for an unknown account or one without a password: a
    /// dummy hash is verified, so the answer and its time are the same). Failures are
    /// counted per account name: past `login.max_failures_per_hour` the attempt is refused
    /// before hashing with [`PasswordError::Throttled`](crate::PasswordError::Throttled) (a 429 through `?`), whatever the
    /// client's address; the bucket refills at that rate, so the owner is slowed, never
    /// locked out for good. A success forgets the account's failures.
    pub async fn authenticate(
        &self,
        account: &str,
        password: &str,
        stored: Option<&str>,
    ) -> Result<crate::passwords::Verified, crate::passwords::PasswordError> {
        let now = self.rt.now();
        if let Err(retry_after) = self.rt.throttle.check(account, now) {
            tracing::warn!(target: "flagon_login", "login attempts for an account are throttled");
            return Err(crate::passwords::PasswordError::Throttled { retry_after });
        }
        let verified = self.rt.passwords.verify(password, stored).await?;
        if verified.ok {
            self.rt.throttle.succeeded(account);
        } else {
            self.rt.throttle.failed(account, now);
        }
        Ok(verified)
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Logs `user` in: refused (`Ok(false)`) for an inactive user unless `force`. The
    /// session moves to a fresh id (the old record is deleted, so a fixated or stolen
    /// pre-login id is worthless), the CSRF secret is renewed, a keyed digest of the user's
    /// auth hash is stored, and with `remember` a remember-me token is issued.
    pub async fn login_user(&self, user: U, opts: LoginOptions) -> Result<bool, LoginError> {
        if !user.is_active() && !opts.force {
            return Ok(false);
        }
        // A previous login's remember token on this browser ends with it.
        self.revoke_own_series().await?;
        self.session.rotate_id();
        flagon::csrf::rotate_token(&self.session);
        runtime::forget(&self.session);
        let digest = self.rt.auth_digest(&user);
        let now = self.rt.now();
        self.session.insert(USER_ID, user.id())?;
        self.session.insert(AUTH, &digest)?;
        self.session.insert(FRESH, opts.fresh)?;
        self.session.insert(FRESH_AT, now)?;
        self.session
            .insert(FINGERPRINT, self.fingerprint.as_str())?;
        let mut cookie = CookieOp::Clear;
        if opts.remember {
            let store = self.rt.store().ok_or(LoginError::NotSetUp)?;
            let ttl = opts.duration.unwrap_or(self.rt.cfg.remember_duration);
            let (token, record) =
                crate::tokens::issue(store, &user.id(), &digest, now, ttl).await?;
            self.session.insert(REMEMBER, &record.selector)?;
            cookie = CookieOp::Set(token, ttl.as_secs());
        } else if self.remember_cookie.is_none() {
            cookie = CookieOp::Keep;
        }
        let id = user.id();
        {
            let mut st = self.current.lock();
            st.user = Some(Arc::new(user));
            st.method = AuthMethod::Session;
            st.fresh = opts.fresh;
            st.cookie = cookie;
        }
        self.app.signals().emit(UserLoggedIn {
            user_id: id,
            remember: opts.remember,
        });
        Ok(true)
    }

    async fn revoke_own_series(&self) -> Result<(), LoginError> {
        let Some(store) = self.rt.store() else {
            return Ok(());
        };
        if let Some(sel) = self.session.get::<String>(REMEMBER) {
            store.delete(&sel).await?;
        }
        if let Some(p) = self
            .remember_cookie
            .as_deref()
            .and_then(crate::tokens::Presented::parse)
        {
            store.delete(&p.selector).await?;
        }
        Ok(())
    }

    /// Logs out: the session record is deleted (its cookie expired), the remember-me token
    /// revoked and its cookie expired.
    pub async fn logout_user(&self) -> Result<(), LoginError> {
        let who = self.user().map(|u| u.id());
        if let Err(e) = self.revoke_own_series().await {
            tracing::error!(target: "flagon_login", error = %e, "could not revoke the remember-me token on logout");
        }
        self.session.delete();
        {
            let mut st = self.current.lock();
            st.user = None;
            st.method = AuthMethod::Anonymous;
            st.fresh = false;
            st.cookie = CookieOp::Clear;
        }
        self.app.signals().emit(UserLoggedOut { user_id: who });
        Ok(())
    }

    /// Marks the session fresh again (after the user re-entered their password).
    pub fn confirm_login(&self) -> Result<(), LoginError> {
        let Some(user) = self.user() else {
            return Ok(());
        };
        self.session.insert(FRESH, true)?;
        self.session.insert(FRESH_AT, self.rt.now())?;
        self.session
            .insert(FINGERPRINT, self.fingerprint.as_str())?;
        self.current.lock().fresh = true;
        self.app
            .signals()
            .emit(LoginConfirmed { user_id: user.id() });
        Ok(())
    }

    /// Revokes every remember-me and refresh token of `user_id` (call it with the new
    /// password: the user's other sessions end on their next request by the auth-hash
    /// check, and their tokens end now).
    pub async fn revoke_tokens(&self, user_id: &str) -> Result<u64, LoginError> {
        match self.rt.store() {
            Some(s) => Ok(s.delete_user(user_id).await?),
            None => Ok(0),
        }
    }

    /// A 303 to the safe `next` (see [`safe_next_value`](crate::safe_next_value)) or `/`.
    pub fn redirect_next(&self, next: Option<&str>) -> Redirect {
        let target = next
            .and_then(|n| crate::next::safe_next_value(n, self.host.as_deref()))
            .unwrap_or_else(|| "/".to_owned());
        Redirect::to(&target)
    }

    /// An access JWT for `user`, valid for `ttl` (feature `jwt`).
    #[cfg(feature = "jwt")]
    pub fn issue_token(&self, user: &U, ttl: Duration) -> Result<String, crate::jwt::TokenError> {
        let jwt = self
            .app
            .state::<crate::login::JwtState>()
            .and_then(|j| j.0.clone())
            .ok_or(crate::jwt::TokenError::NoSigningKey("JWT"))?;
        jwt.issue(&user.id(), ttl, self.rt.now())
    }

    /// A refresh token for `user` (a selector/validator series like remember-me, lasting
    /// `login.refresh_duration`), to trade for new tokens with [`Auth::refresh`].
    pub async fn issue_refresh_token(&self, user: &U) -> Result<String, LoginError> {
        let store = self.rt.store().ok_or(LoginError::NotSetUp)?;
        let digest = self.rt.auth_digest(user);
        let (token, _) = crate::tokens::issue(
            store,
            &user.id(),
            &digest,
            self.rt.now(),
            self.rt.cfg.refresh_duration,
        )
        .await?;
        Ok(format!("r.{token}"))
    }

    /// Trades a refresh token for `(access token, new refresh token)`: the old one stops
    /// working (rotation); presenting it again revokes the series (theft), as does a
    /// password change (auth-hash check).
    #[cfg(feature = "jwt")]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        ttl: Duration,
    ) -> Result<(String, String), crate::jwt::TokenError> {
        use crate::jwt::TokenError;
        let store = self.rt.store().ok_or(TokenError::InvalidRefresh)?;
        let raw = refresh_token
            .strip_prefix("r.")
            .ok_or(TokenError::InvalidRefresh)?;
        let checked =
            crate::tokens::check(store, raw, self.rt.now(), std::time::Duration::ZERO).await?;
        let (record, replacement) = match checked {
            crate::tokens::Checked::Valid {
                record,
                replacement: Some(r),
            } => (record, r),
            crate::tokens::Checked::Theft { user_id } => {
                self.app
                    .signals()
                    .emit(crate::signals::RememberTokenTheft { user_id });
                return Err(TokenError::InvalidRefresh);
            }
            _ => return Err(TokenError::InvalidRefresh),
        };
        let user = self.rt.load(record.user_id.clone()).await;
        let Some(user) = user
            .filter(|u| u.is_active() && self.rt.digest_matches(u, record.auth_digest.as_bytes()))
        else {
            store.delete(&record.selector).await?;
            return Err(TokenError::InvalidRefresh);
        };
        let access = self.issue_token(&user, ttl)?;
        Ok((access, format!("r.{replacement}")))
    }
}
