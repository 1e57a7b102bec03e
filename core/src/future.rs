//! The boxed future that callbacks return: hooks, signals, commands, workers and health
//! checks all hand one back, so it lives in a leaf that every layer can name.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
