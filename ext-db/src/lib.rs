//! Flask-SQLAlchemy and Flask-Migrate for Flagon, on sqlx.
//!
//! Work in progress: this crate is being built up module by module.

// `migrations!` expands to paths through `::flagon_db`; this makes them resolve inside the
// crate too.
extern crate self as flagon_db;

mod backend;
pub mod migrate;

pub use backend::{Backend, redact_url};
pub use flagon_db_macros::migrations;
pub use migrate::{MigrateError, MigrationSet, Migrations, Migrator, Target};
pub use sqlx;
