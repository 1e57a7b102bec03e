//! Memoize: an async function's results cached by its arguments, in a versioned namespace
//! per function, so that forgetting all its results is one write and scans no keys.

use std::sync::Arc;

use flagon::serde::Serialize;
use flagon::serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{CacheError, CacheHandle, Ttl};

/// A function's memo (Flask-Caching's `@cache.memoize`), from [`CacheHandle::memoize`].
///
/// Results are keyed by the function's name, the namespace's current version and a
/// SHA-256 digest of the arguments' encoding; [`forget_all`](Self::forget_all) moves the
/// namespace to a fresh version, so the old results are never read again (they expire
/// or are evicted), and [`forget`](Self::forget) deletes one result. Loads go through
/// [`CacheHandle::get_or_set_with`], so concurrent calls with the same arguments run the
/// function once.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let app = flagon::App::builder().settings(flagon::testing::testing_config())
/// #     .register(flagon_cache::Cache::new()).build().unwrap();
/// let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
/// let price = cache.memoize("price", flagon_cache::Ttl::Default);
/// let p = price.call(&("EUR", 3u32), |(cur, n)| async move {
///     Ok::<_, std::io::Error>(format!("{} {cur}", n * 2))
/// }).await;
/// assert_eq!(p.unwrap(), "6 EUR");
/// price.forget(&("EUR", 3u32)).await.unwrap();
/// price.forget_all().await.unwrap();
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Memo {
    cache: CacheHandle,
    name: Arc<str>,
    ttl: Ttl,
}

impl CacheHandle {
    /// The memo of the function called `name` (unique per function: it is the namespace),
    /// its results kept for `ttl`.
    pub fn memoize(&self, name: &str, ttl: impl Into<Ttl>) -> Memo {
        Memo {
            cache: self.clone(),
            name: name.into(),
            ttl: ttl.into(),
        }
    }
}

impl CacheHandle {
    /// Forgets every result of the memoized function `name` (Flask-Caching's
    /// `delete_memoized(f)`): [`Memo::forget_all`] by name.
    pub async fn delete_memoized(&self, name: &str) -> Result<(), CacheError> {
        self.memoize(name, Ttl::Default).forget_all().await
    }

    /// Forgets the result of the memoized function `name` for `args`
    /// (`delete_memoized(f, *args)`): [`Memo::forget`] by name. `true` if there was one.
    pub async fn delete_memoized_args<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
    ) -> Result<bool, CacheError> {
        self.memoize(name, Ttl::Default).forget(args).await
    }
}

impl Memo {
    fn version_key(&self) -> String {
        format!("memo:{}:version", self.name)
    }

    /// The namespace's version, created if it has none (a random one, so a namespace whose
    /// version key was evicted starts afresh instead of reviving old results).
    async fn version(&self) -> u64 {
        let key = self.version_key();
        if let Some(v) = self.cache.get::<u64>(&key).await {
            return v;
        }
        let fresh: u64 = rand_u64();
        match self.cache.add(&key, &fresh, Ttl::Forever).await {
            Ok(true) => fresh,
            _ => self.cache.get::<u64>(&key).await.unwrap_or(fresh),
        }
    }

    fn key<A: Serialize + ?Sized>(&self, version: u64, args: &A) -> Result<String, CacheError> {
        let encoded = rmp_serde::to_vec(args).map_err(|e| CacheError::Encode(Box::new(e)))?;
        let digest = Sha256::digest(&encoded);
        let mut key = format!("memo:{}:{version:x}:", self.name);
        for b in &digest[..16] {
            key.push_str(&format!("{b:02x}"));
        }
        Ok(key)
    }

    /// `f(args)`, or its result cached for these arguments. Arguments that cannot be
    /// encoded make the call run `f` uncached.
    pub async fn call<A, T, E, F, Fut>(&self, args: &A, f: F) -> Result<T, Arc<E>>
    where
        A: Serialize + Clone + Send + 'static,
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce(A) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let version = self.version().await;
        let owned = args.clone();
        match self.key(version, args) {
            Ok(key) => {
                self.cache
                    .get_or_set_with(&key, self.ttl, move || f(owned))
                    .await
            }
            Err(_) => f(owned).await.map_err(Arc::new),
        }
    }

    /// Forgets the result for `args`; `true` if there was one.
    pub async fn forget<A: Serialize + ?Sized>(&self, args: &A) -> Result<bool, CacheError> {
        let key = self.key(self.version().await, args)?;
        Ok(self.cache.delete(&key).await)
    }

    /// Forgets every result of this function: one write, no scan.
    pub async fn forget_all(&self) -> Result<(), CacheError> {
        self.cache
            .set(&self.version_key(), &rand_u64(), Ttl::Forever)
            .await
    }
}

fn rand_u64() -> u64 {
    rand::random()
}
