//! Login's signals (Flask-Login's blinker signals), emitted on the app's
//! [`Signals`](flagon::signals::Signals): subscribe with `app.subscribe(|e: &UserLoggedIn| ..)`.

/// A user logged in ([`Auth::login_user`](crate::Auth::login_user)).
#[derive(Clone, Debug)]
pub struct UserLoggedIn {
    /// The user's id.
    pub user_id: String,
    /// With a remember-me token.
    pub remember: bool,
}

/// A user logged out.
#[derive(Clone, Debug)]
pub struct UserLoggedOut {
    /// The user's id (`None` if nobody was logged in).
    pub user_id: Option<String>,
}

/// A user was logged in from a remember-me cookie.
#[derive(Clone, Debug)]
pub struct UserLoadedFromCookie {
    /// The user's id.
    pub user_id: String,
}

/// A user was authenticated by a bearer token or API key.
#[derive(Clone, Debug)]
pub struct UserLoadedFromRequest {
    /// The user's id.
    pub user_id: String,
}

/// A session was marked fresh again ([`Auth::confirm_login`](crate::Auth::confirm_login)).
#[derive(Clone, Debug)]
pub struct LoginConfirmed {
    /// The user's id.
    pub user_id: String,
}

/// A request was refused for want of a login.
#[derive(Clone, Debug)]
pub struct Unauthorized {
    /// The request path.
    pub path: String,
}

/// A request was refused for want of a fresh login.
#[derive(Clone, Debug)]
pub struct NeedsRefresh {
    /// The request path.
    pub path: String,
}

/// Session protection saw another client IP or User-Agent.
#[derive(Clone, Debug)]
pub struct SessionProtected {
    /// The user's id.
    pub user_id: String,
    /// Whether the session was deleted (`strong`) rather than made stale (`basic`).
    pub deleted: bool,
}

/// A replaced remember-me (or refresh) validator was presented again: the series was
/// revoked. Someone may hold a copy of the user's cookie.
#[derive(Clone, Debug)]
pub struct RememberTokenTheft {
    /// The user's id.
    pub user_id: String,
}
