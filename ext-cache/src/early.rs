//! Early refresh: a hot key is loaded again shortly before it expires, by one caller in the
//! background while every reader keeps getting the old value, so its expiry never sends a
//! crowd to the loader at once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flagon::serde::Serialize;
use flagon::serde::de::DeserializeOwned;
use flagon::tracing;
use futures_util::FutureExt;

use crate::codec::{self, Fresh};
use crate::handle::Expire;
use crate::{CacheHandle, Ttl};

/// When [`CacheHandle::get_or_set_early`] loads a value again before it expires.
///
/// ```
/// use std::time::Duration;
/// use flagon_cache::EarlyRefresh;
///
/// let xfetch = EarlyRefresh::Probabilistic { beta: 1.0 };
/// let ahead = EarlyRefresh::Ahead(Duration::from_secs(10));
/// # let _ = (xfetch, ahead);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EarlyRefresh {
    /// Probabilistic early expiration (XFetch, Vattani et al., VLDB 2015): a read refreshes
    /// when `load_time × beta × −ln(random)` reaches the time left, so the chance grows as
    /// expiry nears and with how long the value took to load, and concurrent readers
    /// rarely refresh together, on one instance or many. `beta = 1.0` is the paper's
    /// choice; more refreshes earlier. A `beta` that is not a positive number never
    /// refreshes early.
    Probabilistic {
        /// How eagerly to refresh.
        beta: f64,
    },
    /// Refresh-ahead: the first read within this long of the expiry refreshes.
    Ahead(Duration),
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether a read at `now_ms` refreshes an entry with `fresh`; `u` is uniform in (0, 1].
pub(crate) fn should_refresh(policy: EarlyRefresh, fresh: Fresh, now_ms: u64, u: f64) -> bool {
    if fresh.expires_ms == 0 {
        return false;
    }
    let left_ms = fresh.expires_ms.saturating_sub(now_ms) as f64;
    match policy {
        EarlyRefresh::Ahead(window) => left_ms <= window.as_secs_f64() * 1000.0,
        EarlyRefresh::Probabilistic { beta } => {
            if !(beta > 0.0 && beta.is_finite()) {
                return false;
            }
            let load_ms = fresh.load_us as f64 / 1000.0;
            load_ms * beta * -u.ln() >= left_ms
        }
    }
}

impl CacheHandle {
    /// [`get_or_set_with`](Self::get_or_set_with) that also refreshes the value before it
    /// expires, as `early` says: the read that decides to refresh starts the loader in the
    /// background (through the same single flight, so one load per key per instance) and
    /// returns the old value at once, like every other reader. A refresh that fails leaves
    /// the old value in place (and is logged); the next read may try again.
    ///
    /// The entry carries its expiry and how long its load took (17 bytes), which plain
    /// [`get`](Self::get) skips. A value stored without them (by [`set`](Self::set)) is
    /// served until it expires. `Ttl::Forever` values are never refreshed.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let app = flagon::App::builder().settings(flagon::testing::testing_config())
    /// #     .register(flagon_cache::Cache::new()).build().unwrap();
    /// use std::time::Duration;
    /// use flagon_cache::EarlyRefresh;
    ///
    /// let cache = flagon_cache::Caches::of(app.handle()).unwrap().default().clone();
    /// let top = cache
    ///     .get_or_set_early("top", Duration::from_secs(60), EarlyRefresh::Probabilistic { beta: 1.0 }, || async {
    ///         Ok::<_, std::io::Error>(vec!["a", "b"].into_iter().map(String::from).collect::<Vec<_>>())
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(top, ["a", "b"]);
    /// # });
    /// ```
    pub async fn get_or_set_early<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        early: EarlyRefresh,
        loader: F,
    ) -> Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let ttl = ttl.into();
        if let Some((v, fresh)) = self.get_early::<T>(key).await {
            let u = 1.0 - rand::random::<f64>();
            if fresh.is_some_and(|f| should_refresh(early, f, unix_ms(SystemTime::now()), u)) {
                let this = self.clone();
                let owned = key.to_owned();
                flagon::tokio::spawn(async move {
                    let key = owned.clone();
                    let inner = this.clone();
                    let mut waiter = this.inner.flights.join_or_start(&key, move || {
                        async move { inner.load_and_store_early(&owned, ttl, loader).await }.boxed()
                    });
                    let out: Result<T, Arc<E>> = waiter.wait().await;
                    if out.is_err() {
                        tracing::warn!(
                            cache = %this.inner.name,
                            key = %key,
                            "early refresh failed; the current value is served until it expires"
                        );
                    }
                });
            }
            return Ok(v);
        }
        let this = self.clone();
        let owned = key.to_owned();
        let mut waiter = self.inner.flights.join_or_start(key, move || {
            async move {
                // A load that finished just before this one started may have stored it.
                match this.get_early::<T>(&owned).await {
                    Some((v, _)) => Ok(v),
                    None => this.load_and_store_early(&owned, ttl, loader).await,
                }
            }
            .boxed()
        });
        waiter.wait().await
    }

    /// The value and its refresh facts; an undecodable entry is a miss and is deleted.
    async fn get_early<T: DeserializeOwned>(&self, key: &str) -> Option<(T, Option<Fresh>)> {
        let bytes = self.get_raw(key).await?;
        match codec::decode_early(&bytes, self.inner.max_value_bytes) {
            Ok(v) => Some(v),
            Err(why) => {
                self.bad_entry(key, &why);
                self.delete(key).await;
                None
            }
        }
    }

    async fn load_and_store_early<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Ttl,
        load: F,
    ) -> Result<T, Arc<E>>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let v = load().await.map_err(Arc::new)?;
        let load_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Some(expire) = self.expire(ttl) else {
            self.delete(key).await;
            return Ok(v);
        };
        let expires_ms = match expire {
            Expire::Never => 0,
            Expire::After(d) => SystemTime::now()
                .checked_add(d)
                .map_or(0, |t| unix_ms(t).max(1)),
        };
        let fresh = Fresh {
            expires_ms,
            load_us,
        };
        match codec::encode_early(&v, fresh, self.inner.max_value_bytes) {
            Ok(bytes) => {
                if let Err(e) = self.set_raw(key, bytes, ttl).await {
                    tracing::warn!(cache = %self.inner.name, key, "loaded value not cached: {e}");
                }
            }
            Err(e) => tracing::warn!(cache = %self.inner.name, key, "loaded value not cached: {e}"),
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn fresh(left_ms: u64, load_ms: u64) -> Fresh {
        Fresh {
            expires_ms: NOW + left_ms,
            load_us: load_ms * 1000,
        }
    }

    #[test]
    fn ahead_refreshes_inside_the_window_only() {
        let p = EarlyRefresh::Ahead(Duration::from_secs(10));
        assert!(!should_refresh(p, fresh(10_001, 5), NOW, 0.5));
        assert!(should_refresh(p, fresh(10_000, 5), NOW, 0.5));
        assert!(should_refresh(p, fresh(0, 5), NOW, 0.5));
        assert!(
            !should_refresh(
                p,
                Fresh {
                    expires_ms: 0,
                    load_us: 5
                },
                NOW,
                0.5
            ),
            "no expiry, no refresh"
        );
    }

    #[test]
    fn xfetch_grows_with_load_time_and_nearness() {
        let p = EarlyRefresh::Probabilistic { beta: 1.0 };
        // −ln(u) for u = e^-1 is 1: refresh when load time reaches the time left.
        let u = (-1.0f64).exp();
        assert!(should_refresh(p, fresh(100, 100), NOW, u));
        assert!(!should_refresh(p, fresh(101, 100), NOW, u));
        // A luckier draw (small u) refreshes from further away.
        assert!(should_refresh(p, fresh(1_000, 100), NOW, 1e-5));
        // u = 1 never refreshes before expiry.
        assert!(!should_refresh(p, fresh(1, 100), NOW, 1.0));
        // Beta scales it; a bad beta never refreshes.
        assert!(should_refresh(
            EarlyRefresh::Probabilistic { beta: 10.0 },
            fresh(1_000, 100),
            NOW,
            u
        ));
        for beta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(!should_refresh(
                EarlyRefresh::Probabilistic { beta },
                fresh(1, 100),
                NOW,
                1e-9
            ));
        }
        // The share of reads that refresh: about e^(−left / (load × beta)).
        let n = 20_000;
        let hits = (0..n)
            .filter(|i| {
                should_refresh(
                    p,
                    fresh(200, 100),
                    NOW,
                    (f64::from(*i) + 0.5) / f64::from(n),
                )
            })
            .count();
        let share = hits as f64 / f64::from(n);
        assert!((share - (-2.0f64).exp()).abs() < 0.01, "{share}");
    }
}
