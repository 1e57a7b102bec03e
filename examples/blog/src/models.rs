//! The blog's records and the queries every part of the app shares: accounts (the logged-in
//! [`Account`] is flagon-login's user), roles, and the post/comment status values.
//!
//! Rows come back through sqlx's `Any` driver, so columns are portable types: `i64` ids and
//! Unix-second timestamps, `String` text, and `i64` 0/1 flags.

use flagon_db::{Db, Error, Tx};
use flagon_login::{Permissions, Role, User};
use sqlx::FromRow;

/// A user account, as stored in `users` and loaded once per request by flagon-login.
#[derive(Clone, Debug, FromRow)]
pub struct Account {
    /// Primary key.
    pub id: i64,
    /// Login name and where mail goes (unique, lower-cased).
    pub email: String,
    /// Shown on posts and comments (unique).
    pub username: String,
    /// The Argon2 PHC string; empty for an account that cannot log in with a password.
    pub password_hash: String,
    /// `author`, `editor` or `admin` (see [`Account::role`]).
    pub role: String,
    /// When the email address was verified (Unix seconds); `None` until then.
    pub verified_at: Option<i64>,
    /// 1 while the account may log in; admins deactivate with 0.
    pub active: i64,
    /// The preferred locale (`en`, `zh`), if the user chose one.
    pub locale: Option<String>,
    /// Created (Unix seconds).
    pub created_at: i64,
}

/// The columns of [`Account`], in order, for `SELECT`s.
pub const ACCOUNT_COLUMNS: &str =
    "id, email, username, password_hash, role, verified_at, active, locale, created_at";

impl Account {
    /// The account's role; an unknown stored value is the least privileged, [`Role::Author`].
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Author)
    }

    /// Whether the account may do everything `needed` names.
    pub fn can(&self, needed: Permissions) -> bool {
        self.role().permissions().contains(needed)
    }

    /// Whether the account may edit a post written by `author_id`: its own as an author,
    /// anyone's as an editor or admin.
    pub fn may_edit(&self, author_id: i64) -> bool {
        self.can(Permissions::UPDATE) || (self.id == author_id && self.can(Permissions::CREATE))
    }

    /// The account with `id`.
    pub async fn by_id(db: &Db, id: i64) -> Result<Option<Account>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = ?");
        Ok(db
            .query_as::<Account>(&sql)
            .bind(id)
            .fetch_optional(db)
            .await?)
    }

    /// The account whose email is `email` (compared lower-cased).
    pub async fn by_email(db: &Db, email: &str) -> Result<Option<Account>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE email = ?");
        let email = email.trim().to_lowercase();
        Ok(db
            .query_as::<Account>(&sql)
            .bind(email)
            .fetch_optional(db)
            .await?)
    }

    /// The account whose email is `email` (compared lower-cased), read in the request's
    /// transaction: what the handler then writes is decided on the same snapshot.
    pub async fn by_email_in(tx: &mut Tx, email: &str) -> Result<Option<Account>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE email = ?");
        let email = email.trim().to_lowercase();
        Ok(tx
            .query_as::<Account>(&sql)
            .bind(email)
            .fetch_optional(&mut **tx)
            .await?)
    }
}

impl User for Account {
    fn id(&self) -> String {
        self.id.to_string()
    }

    /// Unverified and deactivated accounts cannot be logged in.
    fn is_active(&self) -> bool {
        self.active == 1 && self.verified_at.is_some()
    }

    /// The password hash: changing the password logs out every other session.
    fn auth_hash(&self) -> Vec<u8> {
        self.password_hash.as_bytes().to_vec()
    }

    fn permissions(&self) -> Permissions {
        self.role().permissions()
    }

    fn display_name(&self) -> String {
        self.username.clone()
    }
}

/// A post's `status`: only published posts are listed, searched and shown to guests.
pub mod status {
    /// Visible to its author and editors only.
    pub const DRAFT: &str = "draft";
    /// Visible to everyone.
    pub const PUBLISHED: &str = "published";
}

/// A comment's `status`: editors hide comments; hidden ones are shown only to editors.
pub mod comment_status {
    /// Shown.
    pub const VISIBLE: &str = "visible";
    /// Hidden by a moderator.
    pub const HIDDEN: &str = "hidden";
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `sqlx` for the handlers' own queries.
pub use flagon_db::sqlx::Row;
