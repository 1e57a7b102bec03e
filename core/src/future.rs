//! The boxed future that callbacks return: hooks, signals, commands, workers and health
//! checks all hand one back, so it lives in a leaf that every layer can name.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A value that is usually ready at once and sometimes has to be awaited: what a
/// request-scoped value's init ([`Setup::request_local_maybe_async`](crate::Setup::request_local_maybe_async))
/// or an after-response step ([`Setup::after_response_maybe_async`](crate::Setup::after_response_maybe_async))
/// hands back. `Now` costs no allocation and no poll; `Later` is boxed and awaited. A
/// session read from memory, or one that has nothing to save, is `Now`; a Redis round trip
/// is `Later`.
///
/// ```
/// use flagon::Eventually;
///
/// fn cached_or_fetched(hit: Option<u32>) -> Eventually<u32> {
///     match hit {
///         Some(v) => Eventually::Now(v),
///         None => Eventually::later(async { 42 }),
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(cached_or_fetched(Some(1)).await, 1);
/// assert_eq!(cached_or_fetched(None).await, 42);
/// # });
/// ```
pub enum Eventually<T> {
    /// Ready now.
    Now(T),
    /// To be awaited.
    Later(BoxFuture<T>),
}

impl<T> Eventually<T> {
    /// `Later`, boxing `fut`.
    pub fn later(fut: impl Future<Output = T> + Send + 'static) -> Self {
        Eventually::Later(Box::pin(fut))
    }

    /// The value if it is ready now, else the future to await.
    pub fn now(self) -> Result<T, BoxFuture<T>> {
        match self {
            Eventually::Now(v) => Ok(v),
            Eventually::Later(f) => Err(f),
        }
    }
}

impl<T: Send + 'static> Eventually<T> {
    /// Maps the value, now or once it arrives.
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Eventually<U> {
        match self {
            Eventually::Now(v) => Eventually::Now(f(v)),
            Eventually::Later(fut) => Eventually::later(async move { f(fut.await) }),
        }
    }
}

impl<T> std::fmt::Debug for Eventually<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Eventually::Now(_) => "Eventually::Now(..)",
            Eventually::Later(_) => "Eventually::Later(..)",
        })
    }
}

impl<T> std::future::IntoFuture for Eventually<T> {
    type Output = T;
    type IntoFuture = futures_util::future::Either<std::future::Ready<T>, BoxFuture<T>>;

    fn into_future(self) -> Self::IntoFuture {
        match self {
            Eventually::Now(v) => futures_util::future::Either::Left(std::future::ready(v)),
            Eventually::Later(f) => futures_util::future::Either::Right(f),
        }
    }
}
