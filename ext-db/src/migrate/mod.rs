//! Migrations: Flask-Migrate's workflow on plain SQL files, without Alembic.
//!
//! Every extension that keeps tables ships its own migrations, and so does the app (owner
//! `app`); one table, `flagon_migrations`, records which of them this database has: owner,
//! version, name, SHA-256 of the up file, when it was applied and how long it took.
//!
//! # The files
//!
//! A migration is a pair of files named `VERSION_NAME.up.sql` and `VERSION_NAME.down.sql`
//! (`0001_create_users.up.sql`): the version is a positive number, the name letters, digits,
//! `_` and `-`. The down file is optional; a downgrade past a migration without one refuses,
//! naming the file it would need. Where the SQL differs between backends, a directory per
//! backend holds that backend's version of the file, and the files beside them are shared:
//!
//! ```text
//! migrations/
//!   0001_create_users.up.sql        shared: used by every backend without its own 0001
//!   0001_create_users.down.sql
//!   0002_add_search.up.sql          shared: SQLite and MySQL use it
//!   0002_add_search.down.sql
//!   postgres/
//!     0002_add_search.up.sql        PostgreSQL's own 0002 (with its own down file, or none)
//!     0002_add_search.down.sql
//! ```
//!
//! For each version a backend runs its own directory's files (`sqlite/`, `postgres/`,
//! `mysql/`) when that directory has the version's up file, and the shared ones otherwise; a
//! backend directory's up file never borrows the shared down file. A version needs a file
//! for the backend in use, so an app on one database writes only that database's files.
//! Anything else is an error naming the file: a name not of that form, two files for one
//! version, a version whose name differs between directories, a down file without its up
//! file, a directory other than the three (`postgresql/`), version 0 (it means "nothing
//! applied"). Files not ending in `.sql` (a README) are ignored.
//!
//! A file whose first line is `-- no-transaction` runs outside a transaction (PostgreSQL's
//! `CREATE INDEX CONCURRENTLY` needs that). A file of only comments runs nothing but is
//! recorded.
//!
//! # Declaring them
//!
//! [`migrations!`](crate::migrations) embeds a directory (relative to the declaring crate's
//! `Cargo.toml`) when that crate compiles: no `build.rs`, no dependency besides `flagon-db`.
//! Cargo rebuilds the crate when an embedded file changes; a file *added* to the directory is
//! picked up by the next build that recompiles the crate (`db new` touches an embedded file
//! so that it does). The expansion names the crate `flagon_db`, so depend on it under that
//! name. Add the set to the [`Migrations`] registry in `init_app`, under your
//! extension's name, with the owners it needs applied first:
//!
//! ```
//! # use flagon::{Setup, SetupError};
//! # fn init_app(app: &mut Setup<'_>) -> Result<(), SetupError> {
//! app.add_to::<flagon_db::Migrations>(
//!     "login",
//!     flagon_db::migrations!("tests/fixtures/migrate/login").requires(["app"]),
//! );
//! # Ok(()) }
//! ```
//!
//! Problems in a set's files are reported, each naming its file, when the app is built (the
//! `Db` extension resolves every registered set for its backend) and by every `db` command.
//! An extension can catch them in its own tests before anyone builds an app:
//!
//! ```
//! // In a `#[test]` of the extension's crate:
//! let set = flagon_db::migrations!("tests/fixtures/migrate/login");
//! set.check("login").unwrap();
//! // And complete for each backend the extension supports:
//! for backend in [flagon_db::Backend::Sqlite, flagon_db::Backend::Postgres] {
//!     flagon_db::Migrator::new([("login", &set)], backend).unwrap();
//! }
//! ```
//!
//! # Running them
//!
//! [`Migrator`] resolves every set for the backend in use and orders them: owners after the
//! owners they require (a missing one or a cycle is an error naming them), then versions
//! ascending. Requirements are between whole sets: every pending migration of a required
//! set runs before any of the set requiring it. The `db` commands ([`commands`],
//! [`run_cli`]) drive it:
//!
//! | command | does |
//! |---|---|
//! | `db upgrade [TARGET]` | applies pending migrations: all, or those [`Target`] selects |
//! | `db downgrade [TARGET]` | reverts with down files; by default the last migration applied (Flask-Migrate's `-1`) |
//! | `db status` | each owner's applied and pending migrations, and applied files that changed |
//! | `db history` | the applied migrations in the order applied |
//! | `db new NAME` | writes the app's next numbered up/down pair into each backend directory that exists (and the shared directory unless all three do) |
//! | `db check` | exit status 1 when a migration is pending or an applied file changed (for CI) |
//!
//! **Transactions.** On PostgreSQL and SQLite each migration runs in its own transaction
//! together with its `flagon_migrations` row (SQLite's begun with `BEGIN IMMEDIATE`): a
//! failure rolls both back. MySQL and MariaDB commit DDL implicitly, so there the file runs
//! without a transaction and its row is written only after it succeeded: a failed migration
//! is never recorded, but the statements before the failing one stay applied. Keep one DDL
//! statement per migration file on MySQL.
//!
//! **Order.** A pending version below an applied one (two branches merged) is applied too,
//! in version order, and `status` shows it pending until then.
//!
//! **A failure** stops the run. The error names the owner, the migration, the file and the
//! database's message; the migrations before it stay applied.
//!
//! **Checksums.** `status` and `check` compare each applied migration's recorded checksum
//! with its file's (line ends normalised, so a CRLF checkout matches). `upgrade` warns about a
//! changed file and does not run it again.
//!
//! **Concurrency.** `upgrade` and `downgrade` hold a lock for the whole run, so of two
//! instances started at once exactly one applies; the other waits, then finds nothing to
//! do. PostgreSQL: an advisory lock; MySQL/MariaDB: `GET_LOCK`; SQLite: a lock on the file
//! `<database>.migrate-lock` beside the database. Each is polled until
//! [`Migrator::lock_timeout`] (default one minute), then the command fails with
//! [`MigrateError::LockTimeout`]. A server's lock is taken on a connection that is closed
//! afterwards rather than returned to the pool, so a session lock never goes back to it. (PostgreSQL's advisory
//! lock belongs to the session: behind PgBouncer in transaction mode, migrate through a
//! direct connection.)
//!
//! **At startup.** [`auto_upgrade`] applies every pending migration and logs each one: what
//! `[db] auto_upgrade = true` runs before the app serves. Several instances starting at once
//! take turns on the lock like `db upgrade` does.

mod cli;
mod engine;
mod error;
mod lock;
mod plan;
mod set;
mod startup;
mod status;

pub use cli::{commands, run_cli};
pub use engine::{Direction, Progress, Report, Step, TABLE};
pub use error::{DeclarationError, MigrateError};
pub use plan::{APP_OWNER, DEFAULT_LOCK_TIMEOUT, Migrator, Target};
pub use set::{MigrationSet, Migrations};
pub use startup::auto_upgrade;
pub use status::{AppliedRecord, MigrationState, MigrationStatus, OwnerStatus, Status};
