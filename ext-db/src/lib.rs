//! Flask-SQLAlchemy and Flask-Migrate for Flagon, on sqlx.
//!
//! Work in progress: this crate is being built up module by module.

// `migrations!` expands to paths through `::flagon_db`; this makes them resolve inside the
// crate too.
extern crate self as flagon_db;

mod backend;
mod config;
mod db;
mod error;
mod fetch;
mod health;
mod keyset;
pub mod migrate;
mod order_by;
mod paginate;
mod pool;
mod session_store;
mod stats;
mod tx;

pub use backend::{Backend, redact_url};
pub use config::{BindConfig, DEFAULT_URL, DbConfig};
pub use db::{Db, DbExtension};
pub use error::{Error, RETRY_AFTER_SECS};
pub use fetch::{OrNotFound, first_or_404, get_or_404};
pub use flagon_db_macros::migrations;
pub use keyset::{CursorKey, Keyset, KeysetPage, KeysetRequest};
pub use migrate::{MigrateError, MigrationSet, Migrations, Migrator, Target};
pub use order_by::{Direction, OrderBy, Sort, SortColumn};
pub use paginate::{
    DEFAULT_MAX_PER_PAGE, DEFAULT_PER_PAGE, IterPages, PageLink, PageLinks, PageRequest, Paginate,
    PaginateError, Pagination, Select, SqlValue, paginate,
};
pub use session_store::{SESSION_TABLE, SqlSessionStore, session_migration};
pub use sqlx;
pub use stats::{PoolStats, QueriesRecorded, RequestStats, TxOutcome};
pub use tx::{Tx, TxConn};
