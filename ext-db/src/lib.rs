//! Flask-SQLAlchemy and Flask-Migrate for Flagon, on sqlx.
//!
//! Work in progress: this crate is being built up module by module.

mod backend;
mod keyset;
mod order_by;
mod paginate;
mod session_store;

pub use backend::{Backend, redact_url};
pub use keyset::{CursorKey, Keyset, KeysetPage, KeysetRequest};
pub use order_by::{Direction, OrderBy, Sort, SortColumn};
pub use paginate::{
    DEFAULT_MAX_PER_PAGE, DEFAULT_PER_PAGE, IterPages, PageLink, PageLinks, PageRequest, Paginate,
    PaginateError, Pagination, Select, SqlValue, paginate,
};
pub use session_store::{SESSION_TABLE, SqlSessionStore, session_migration};
pub use sqlx;
