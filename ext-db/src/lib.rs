//! Flask-SQLAlchemy and Flask-Migrate for Flagon, on sqlx.
//!
//! Work in progress: this crate is being built up module by module.

mod backend;
mod config;
mod db;
mod error;
mod fetch;
mod health;
mod pool;
mod stats;
mod tx;

pub use backend::{Backend, redact_url};
pub use config::{BindConfig, DEFAULT_URL, DbConfig};
pub use db::{Db, DbExtension};
pub use error::{Error, RETRY_AFTER_SECS};
pub use fetch::{OrNotFound, first_or_404, get_or_404};
pub use sqlx;
pub use stats::{PoolStats, QueriesRecorded, RequestStats, TxOutcome};
pub use tx::{Tx, TxConn};
