//! Which database server a URL names, and the few places where their SQL differs.
//!
//! Flagon's queries run on sqlx's `Any` driver, so one binary talks to SQLite, PostgreSQL or
//! MySQL/MariaDB depending on `[db] url` alone. The drivers disagree on placeholders:
//! PostgreSQL wants `$1, $2, …`, the others `?`. Write `?` everywhere and pass the text through
//! [`Backend::sql`]; it is rewritten for PostgreSQL and borrowed unchanged for the others.

use std::borrow::Cow;
use std::fmt;

/// The database server behind a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite: a file (or memory) opened in-process.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The backend a database URL names by its scheme, or `None` for an unknown scheme.
    ///
    /// ```
    /// use flagon_db::Backend;
    /// assert_eq!(Backend::from_url("sqlite://instance/app.db"), Some(Backend::Sqlite));
    /// assert_eq!(Backend::from_url("postgresql://db/app"), Some(Backend::Postgres));
    /// assert_eq!(Backend::from_url("mariadb://db/app"), Some(Backend::MySql));
    /// assert_eq!(Backend::from_url("oracle://db/app"), None);
    /// ```
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            _ => None,
        }
    }

    /// The name used in logs, config errors and the `db status` output.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    /// Whether this build has the cargo feature for the backend.
    pub fn is_compiled_in(self) -> bool {
        match self {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::MySql => cfg!(feature = "mysql"),
        }
    }

    /// The cargo feature of `flagon-db` that compiles the backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    /// `sql` with its `?` placeholders written the way this backend wants them.
    ///
    /// A `?` inside a string literal (`'…'`), a quoted identifier (`"…"`, `` `…` ``) or a
    /// comment is left alone, and so is PostgreSQL's `??`-free operator syntax: only a lone `?`
    /// is a placeholder.
    ///
    /// ```
    /// use flagon_db::Backend;
    /// let sql = "SELECT id FROM post WHERE author = ? AND title <> '?' LIMIT ?";
    /// assert_eq!(Backend::Sqlite.sql(sql), sql);
    /// assert_eq!(
    ///     Backend::Postgres.sql(sql),
    ///     "SELECT id FROM post WHERE author = $1 AND title <> '?' LIMIT $2"
    /// );
    /// ```
    pub fn sql(self, sql: &str) -> Cow<'_, str> {
        if self != Backend::Postgres || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        Cow::Owned(numbered_placeholders(sql))
    }

    /// The placeholder for the `n`th bound value (counting from 1).
    ///
    /// ```
    /// use flagon_db::Backend;
    /// assert_eq!(Backend::Postgres.placeholder(3), "$3");
    /// assert_eq!(Backend::MySql.placeholder(3), "?");
    /// ```
    pub fn placeholder(self, n: usize) -> Cow<'static, str> {
        match self {
            Backend::Postgres => Cow::Owned(format!("${n}")),
            Backend::Sqlite | Backend::MySql => Cow::Borrowed("?"),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rewrites each lone `?` outside quotes and comments as `$1`, `$2`, ….
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0usize;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                out.push(c);
                // Copy up to and including the closing quote; a doubled quote is an escape and
                // is copied as two characters, which keeps us inside the literal.
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if matches!(chars.peek(), Some((_, '-'))) => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if matches!(chars.peek(), Some((_, '*'))) => {
                out.push(c);
                let mut prev = '\0';
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '?' if matches!(chars.peek(), Some((_, '?' | '|' | '&'))) => {
                // `??`, `?|` and `?&` are PostgreSQL operators (jsonb), not placeholders.
                out.push(c);
                if let Some((_, d)) = chars.next() {
                    out.push(d);
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// `url` with any password replaced by `***`, for logs and error messages.
///
/// ```
/// use flagon_db::redact_url;
/// assert_eq!(redact_url("postgres://app:hunter2@db:5432/app"), "postgres://app:***@db:5432/app");
/// assert_eq!(redact_url("sqlite://instance/app.db"), "sqlite://instance/app.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let host = &authority[at + 1..];
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    if user.len() == userinfo.len() {
        return url.to_owned();
    }
    format!("{scheme}://{user}:***@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "INSERT INTO t (a, b) VALUES (?, ?)";
        assert_eq!(
            Backend::Postgres.sql(sql),
            "INSERT INTO t (a, b) VALUES ($1, $2)"
        );
        assert!(matches!(Backend::MySql.sql(sql), Cow::Borrowed(_)));
        assert!(matches!(Backend::Sqlite.sql(sql), Cow::Borrowed(_)));
    }

    #[test]
    fn quoted_text_and_comments_keep_their_question_marks() {
        let sql =
            "SELECT '?', \"a?\", `b?` -- why?\n, x /* and? */ FROM t WHERE y = ? AND z = 'it''s ?'";
        assert_eq!(
            Backend::Postgres.sql(sql),
            "SELECT '?', \"a?\", `b?` -- why?\n, x /* and? */ FROM t WHERE y = $1 AND z = 'it''s ?'"
        );
    }

    #[test]
    fn jsonb_operators_are_not_placeholders() {
        assert_eq!(
            Backend::Postgres.sql("SELECT doc ?| ? FROM t WHERE doc ?? 'k' AND id = ?"),
            "SELECT doc ?| $1 FROM t WHERE doc ?? 'k' AND id = $2"
        );
    }

    #[test]
    fn schemes() {
        assert_eq!(Backend::from_url("SQLite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("mysql://root@localhost/test"),
            Some(Backend::MySql)
        );
        assert_eq!(Backend::from_url("no-scheme"), None);
    }

    #[test]
    fn redaction_keeps_user_and_host_and_drops_the_password() {
        assert_eq!(
            redact_url("mysql://root:@localhost/test"),
            "mysql://root:***@localhost/test"
        );
        assert_eq!(
            redact_url("mysql://root@localhost/test"),
            "mysql://root@localhost/test"
        );
        assert_eq!(
            redact_url("postgres://u:p%40ss@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u:pa@ss@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
