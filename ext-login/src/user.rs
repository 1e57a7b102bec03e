//! What login needs to know about the app's users, and how it loads them.

use std::future::Future;
use std::sync::Arc;

use flagon::{BoxError, BoxFuture};

use crate::permissions::Permissions;

/// The app's user, as login sees it (Flask-Login's `UserMixin`). The app keeps its own
/// model; this is the little login must know.
///
/// ```
/// use flagon_login::{Permissions, User};
///
/// #[derive(Clone)]
/// struct Account { id: i64, name: String, password_hash: String, active: bool }
///
/// impl User for Account {
///     fn id(&self) -> String { self.id.to_string() }
///     fn is_active(&self) -> bool { self.active }
///     // Changes whenever the password (or another security setting) changes, so that
///     // every other session and remember-me token of the account stops working.
///     fn auth_hash(&self) -> Vec<u8> { self.password_hash.as_bytes().to_vec() }
///     fn permissions(&self) -> Permissions { Permissions::READ | Permissions::CREATE }
///     fn display_name(&self) -> String { self.name.clone() }
/// }
/// ```
pub trait User: Send + Sync + 'static {
    /// The id the loader finds the user by (stored in the session and in tokens).
    fn id(&self) -> String;

    /// Whether the account may log in (an inactive user is refused by
    /// [`Auth::login_user`](crate::Auth::login_user) unless forced, and a session of a user
    /// who became inactive is logged out on its next request).
    fn is_active(&self) -> bool {
        true
    }

    /// Bytes that change when the password or another security setting changes (the
    /// password hash will do). Login keeps a keyed digest of them in the session and with
    /// each remember-me token, and compares in constant time on every request.
    fn auth_hash(&self) -> Vec<u8>;

    /// The user's permission bits (see [`Permissions`] and [`Role`](crate::Role)).
    fn permissions(&self) -> Permissions {
        Permissions::empty()
    }

    /// Whether the user holds the named permission `name` (for
    /// [`permission_required`](crate::permission_required) with names).
    fn has_named_permission(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// What templates show as `current_user.name`.
    fn display_name(&self) -> String {
        self.id()
    }
}

/// Loads a user by id (Flask-Login's `user_loader`), asynchronously. Any
/// `Fn(String) -> impl Future<Output = Result<Option<U>, E>>` closure is one.
///
/// ```
/// use flagon_login::UserLoader;
/// # #[derive(Clone)] struct Account;
/// # impl flagon_login::User for Account {
/// #     fn id(&self) -> String { "1".into() }
/// #     fn auth_hash(&self) -> Vec<u8> { vec![] }
/// # }
/// fn loader() -> impl UserLoader<Account> {
///     |id: String| async move {
///         Ok::<_, std::io::Error>((id == "1").then_some(Account))
///     }
/// }
/// ```
pub trait UserLoader<U>: Send + Sync + 'static {
    /// The user with `id`, `None` if there is none. An error is logged and the request is
    /// anonymous.
    fn load_user(&self, id: String) -> impl Future<Output = Result<Option<U>, BoxError>> + Send;
}

impl<U, F, Fut, E> UserLoader<U> for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, E>> + Send,
    E: Into<BoxError>,
{
    fn load_user(&self, id: String) -> impl Future<Output = Result<Option<U>, BoxError>> + Send {
        let fut = self(id);
        async move { fut.await.map_err(Into::into) }
    }
}

/// The loader, boxed once at registration.
pub(crate) type LoaderFn<U> =
    Arc<dyn Fn(String) -> BoxFuture<Result<Option<U>, BoxError>> + Send + Sync>;

pub(crate) fn boxed_loader<U: Send + 'static, L: UserLoader<U>>(loader: L) -> LoaderFn<U> {
    let loader = Arc::new(loader);
    Arc::new(move |id| {
        let loader = loader.clone();
        Box::pin(async move { loader.load_user(id).await })
    })
}
