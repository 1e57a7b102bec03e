//! Flask-SQLAlchemy and Flask-Migrate for Flagon, on sqlx.
//!
//! Work in progress: this crate is being built up module by module.

mod backend;

pub use backend::{Backend, redact_url};
pub use sqlx;
