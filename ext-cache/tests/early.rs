//! Early refresh: a hot key about to expire is loaded again once, in the background, while
//! every reader keeps getting the old value at once; on memory and on Redis.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flagon_cache::{CacheHandle, EarlyRefresh};
use tokio::task::JoinSet;

/// A loader that takes 150 ms and returns how many times it ran.
fn counting(
    runs: &Arc<AtomicUsize>,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send>>
+ Send
+ 'static
+ use<> {
    slow(runs, Duration::from_millis(150))
}

/// A loader that takes `delay` and returns how many times it ran.
fn slow(
    runs: &Arc<AtomicUsize>,
    delay: Duration,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<usize, String>> + Send>>
+ Send
+ 'static
+ use<> {
    let runs = runs.clone();
    move || {
        Box::pin(async move {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(delay).await;
            Ok(n)
        })
    }
}

async fn refresh_ahead(c: &CacheHandle) {
    let runs = Arc::new(AtomicUsize::new(0));
    let ttl = Duration::from_secs(3);
    let early = EarlyRefresh::Ahead(Duration::from_millis(2500));
    let second = Duration::from_secs(1);
    let get = || c.get_or_set_early("hot", ttl, early, slow(&runs, second));
    assert_eq!(get().await.unwrap(), 1, "a miss loads and waits");
    assert_eq!(get().await.unwrap(), 1, "outside the window: no refresh");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_millis(700)).await; // 2.3 s left: inside the window
    let mut set = JoinSet::new();
    let started = Instant::now();
    for _ in 0..200 {
        let (c, l) = (c.clone(), slow(&runs, second));
        set.spawn(async move { c.get_or_set_early("hot", ttl, early, l).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(
            r.unwrap().unwrap(),
            1,
            "readers get the old value meanwhile"
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(800),
        "nobody waited for the 1 s refresh ({took:?})"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "200 readers in the window, one refresh"
    );
    assert_eq!(
        c.get::<usize>("hot").await,
        Some(2),
        "the refresh was stored"
    );
    assert_eq!(
        c.get_or_set_early("hot", ttl, early, slow(&runs, second))
            .await
            .unwrap(),
        2,
        "with a new expiry: outside the window again"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(c.loads_in_flight(), 0);
}

async fn probabilistic(c: &CacheHandle) {
    let runs = Arc::new(AtomicUsize::new(0));
    let ttl = Duration::from_secs(60);
    // 150 ms loads with a huge beta: every read of a minute-long value refreshes.
    let eager = EarlyRefresh::Probabilistic { beta: 1e6 };
    assert_eq!(
        c.get_or_set_early("px", ttl, eager, counting(&runs))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.get_or_set_early("px", ttl, eager, counting(&runs))
            .await
            .unwrap(),
        1,
        "the old value, at once"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "refreshed in the background"
    );
    // beta = 1 with a minute left and a 150 ms load: about e^-400, never.
    let calm = EarlyRefresh::Probabilistic { beta: 1.0 };
    for _ in 0..50 {
        assert_eq!(
            c.get_or_set_early("px", ttl, calm, counting(&runs))
                .await
                .unwrap(),
            2
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "far from expiry: no refresh"
    );
}

async fn a_failed_refresh_keeps_the_old_value(c: &CacheHandle) {
    let ttl = Duration::from_secs(60);
    let always = EarlyRefresh::Ahead(Duration::from_secs(120));
    let v = c
        .get_or_set_early("keep", ttl, always, || async { Ok::<_, String>(7u32) })
        .await;
    assert_eq!(v.unwrap(), 7);
    let tried = Arc::new(AtomicUsize::new(0));
    let t = tried.clone();
    let v = c
        .get_or_set_early("keep", ttl, always, move || async move {
            t.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>("database down".to_owned())
        })
        .await;
    assert_eq!(v.unwrap(), 7);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tried.load(Ordering::SeqCst), 1, "the refresh ran");
    assert_eq!(
        c.get::<u32>("keep").await,
        Some(7),
        "and failing kept the value"
    );
}

async fn all(c: &CacheHandle) {
    refresh_ahead(c).await;
    probabilistic(c).await;
    a_failed_refresh_keeps_the_old_value(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let app = common::app("");
    all(&common::default_cache(&app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    if !common::redis_up("early refresh redis") {
        return;
    }
    let prefix = common::unique_prefix("early");
    let app = common::app(&format!(
        "{}command_timeout = \"5s\"\n",
        common::redis_toml(&prefix, "")
    ));
    let c = common::default_cache(&app);
    all(&c).await;
    c.clear().await.unwrap();
}
