//! The crate's one error type.

/// What a cache call can fail with.
///
/// Backend outages are not errors for reads and writes: a read is a miss and a write does
/// nothing (with a rate-limited warning), since the app works without its cache. Only the
/// calls that must return something the cache alone knows (`incr`, `decr`) report them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The value's encoding is larger than `max_value_bytes`.
    #[error("the encoded value is {size} bytes, over the cache's `max_value_bytes` of {max}")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The configured cap.
        max: usize,
    },
    /// The value could not be serialised (e.g. a map with non-string keys in a format
    /// that needs them).
    #[error("the value could not be encoded")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `incr`/`decr` on a key holding something other than a counter (a value written by
    /// `set`, for instance).
    #[error("the key `{0}` does not hold a counter")]
    NotACounter(String),
    /// `incr`/`decr` would overflow an `i64`.
    #[error("the counter `{0}` would overflow")]
    Overflow(String),
    /// The backend could not answer (Redis down, timed out, circuit open, or the null
    /// backend, which stores nothing).
    #[error("the cache backend is unavailable: {0}")]
    Unavailable(&'static str),
    /// [`CacheHandle::delete_cached`](crate::CacheHandle::delete_cached) or
    /// [`purge_cached`](crate::CacheHandle::purge_cached) named an endpoint that does not
    /// exist, or left out a path parameter.
    #[error("no such page: {0}")]
    Url(#[from] flagon::UrlError),
}
