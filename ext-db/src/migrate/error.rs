//! What can go wrong declaring and running migrations.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::Backend;

/// A problem in a migration set's files, naming the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclarationError {
    /// The file (or directory) at fault, as `migrations/postgres/0002_add_posts.up.sql`.
    pub file: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for DeclarationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.problem)
    }
}

impl std::error::Error for DeclarationError {}

/// Why a migration command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// One or more files of the set `owner` are malformed; every problem names its file.
    #[error("migrations of `{owner}`: {}", list(.problems))]
    Declaration {
        /// The set's owner (`app`, `login`, …).
        owner: String,
        /// Every problem found, each naming its file.
        problems: Vec<DeclarationError>,
    },
    /// A set requires an owner that declared no migrations.
    #[error(
        "migrations of `{owner}` require those of `{missing}`, which declared none \
         (add them with `app.add_to::<flagon_db::Migrations>(\"{missing}\", …)`)"
    )]
    MissingRequirement {
        /// The set that requires.
        owner: String,
        /// The owner it requires.
        missing: String,
    },
    /// The `requires` of some sets form a cycle.
    #[error("migration sets require each other in a cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The owners in the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A command's argument is not usable: an owner or version that does not exist, a target
    /// that is not `OWNER`, `OWNER:VERSION` or `VERSION`, a `db new` name with no letters.
    #[error("{0}")]
    Target(String),
    /// Another process held the migration lock past the deadline.
    #[error(
        "another process is running migrations on this {backend} database: the migration lock \
         was not free within {} s; try again once it finishes",
        .waited.as_secs_f64()
    )]
    LockTimeout {
        /// The backend.
        backend: Backend,
        /// How long we waited.
        waited: Duration,
    },
    /// A migration's SQL failed. It is not recorded as applied; on PostgreSQL and SQLite its
    /// transaction was rolled back, on MySQL/MariaDB the statements before the failing one
    /// stay applied (their DDL is not transactional).
    #[error("migration {owner} {name} failed ({file}): {source}")]
    Failed {
        /// The set's owner.
        owner: String,
        /// The migration (`0002_add_posts`).
        name: String,
        /// The file that failed.
        file: String,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// A downgrade would pass a migration that has no down file.
    #[error(
        "cannot downgrade {owner} {name}: it has no down file (add {file} to make it reversible)"
    )]
    Irreversible {
        /// The set's owner.
        owner: String,
        /// The migration.
        name: String,
        /// The down file it would need.
        file: String,
    },
    /// A downgrade would remove every migration of a set others require while theirs stay.
    #[error(
        "cannot downgrade every migration of `{owner}`: `{dependent}` requires it and has \
         migrations applied (downgrade `{dependent}:0` first)"
    )]
    Required {
        /// The set being downgraded.
        owner: String,
        /// A set requiring it.
        dependent: String,
    },
    /// `db check` found pending migrations or applied files that changed.
    #[error(
        "the database is not up to date: {pending} pending migration(s), {mismatched} applied \
         migration(s) whose file changed"
    )]
    CheckFailed {
        /// How many migrations are pending.
        pending: usize,
        /// How many applied migrations' files no longer match their checksum.
        mismatched: usize,
    },
    /// Reading or writing the tracking table, taking the lock or talking to the database
    /// otherwise failed.
    #[error("migrations: {context}: {source}")]
    Database {
        /// What we were doing.
        context: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// A file could not be read or written (`db new`, the SQLite lock file).
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl MigrateError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> MigrateError {
        move |source| MigrateError::Database { context, source }
    }
}

fn list(problems: &[DeclarationError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
