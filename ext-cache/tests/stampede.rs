//! F3 and F4: single flight on a cold key, the error variant and the dropped-leader
//! variant, on memory and on Redis.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flagon_cache::{CacheHandle, Ttl};
use tokio::task::JoinSet;

async fn thousand_callers_one_loader(c: &CacheHandle) {
    let runs = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    let start = Instant::now();
    for _ in 0..1000 {
        let (c, runs, entered) = (c.clone(), runs.clone(), entered.clone());
        set.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            let all_in = entered.clone();
            c.get_or_set_with("cold", Ttl::Default, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // The 200 ms load overlaps every caller, however slowly they start.
                while all_in.load(Ordering::SeqCst) < 1000 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, String>(vec![1u32, 2, 3])
            })
            .await
        });
    }
    let mut got = 0;
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), vec![1, 2, 3]);
        got += 1;
    }
    let took = start.elapsed();
    assert_eq!(got, 1000);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the loader ran once for 1000 callers"
    );
    assert!(took < Duration::from_secs(5), "all answered in {took:?}");
    assert_eq!(c.loads_in_flight(), 0, "nothing left in the flight map");
    assert_eq!(
        c.get::<Vec<u32>>("cold").await,
        Some(vec![1, 2, 3]),
        "the value was stored"
    );
    println!(
        "{:?}: 1000 callers on a cold key, 1 load, {took:?}",
        c.backend()
    );
}

async fn an_error_reaches_every_waiter_and_is_not_cached(c: &CacheHandle) {
    let runs = Arc::new(AtomicUsize::new(0));
    // An error is not cached, so a caller arriving after the load ended loads again: the
    // load lasts until every caller has started, and then long enough for their first
    // (cache) lookup, so that all 1000 overlap it even on a loaded machine.
    let entered = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..1000 {
        let (c, runs, entered) = (c.clone(), runs.clone(), entered.clone());
        set.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            let all_in = entered.clone();
            c.get_or_set_with("failing", Ttl::Default, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                while all_in.load(Ordering::SeqCst) < 1000 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err::<u32, _>(std::io::Error::other("database down"))
            })
            .await
        });
    }
    while let Some(r) = set.join_next().await {
        let e = r.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "database down");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one load, its error shared");
    assert!(!c.has("failing").await, "the error is not cached");
    // The next call loads again.
    let v = c
        .get_or_set_with("failing", Ttl::Default, || async {
            Ok::<_, std::io::Error>(9u32)
        })
        .await;
    assert_eq!(v.unwrap(), 9);
    assert_eq!(c.loads_in_flight(), 0);
}

async fn a_dropped_leader_strands_nobody(c: &CacheHandle) {
    use std::sync::atomic::AtomicBool;
    let runs = Arc::new(AtomicUsize::new(0));
    // The load runs until the test releases it, after the leader is gone.
    let release = Arc::new(AtomicBool::new(false));
    let load = |runs: Arc<AtomicUsize>, release: Arc<AtomicBool>| {
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            while !release.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, String>("loaded".to_owned())
        }
    };
    let leader = {
        let (c, l) = (c.clone(), load(runs.clone(), release.clone()));
        tokio::spawn(async move { c.get_or_set_with("lead", Ttl::Default, l).await })
    };
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await; // the leader's load is running
    }
    let entered = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let (c, l, entered) = (
            c.clone(),
            load(runs.clone(), release.clone()),
            entered.clone(),
        );
        set.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            c.get_or_set_with("lead", Ttl::Default, l).await
        });
    }
    while entered.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // past their cache lookups
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    release.store(true, Ordering::SeqCst);
    let all = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().unwrap(), "loaded");
        }
    })
    .await;
    assert!(all.is_ok(), "waiters hung after the leader was dropped");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the waiters carried the leader's load on"
    );
    assert_eq!(c.loads_in_flight(), 0);

    let load = |runs: Arc<AtomicUsize>| {
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, String>("loaded".to_owned())
        }
    };
    // Every caller dropped mid-load: the map does not keep the load, and the next caller
    // is answered.
    let (c2, l) = (c.clone(), load(runs.clone()));
    let only = tokio::spawn(async move { c2.get_or_set_with("abandoned", Ttl::Default, l).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    only.abort();
    let _ = only.await;
    assert_eq!(c.loads_in_flight(), 0, "an abandoned load is not kept");
    let v = tokio::time::timeout(
        Duration::from_secs(5),
        c.get_or_set_with("abandoned", Ttl::Default, load(runs.clone())),
    )
    .await
    .expect("answered");
    assert_eq!(v.unwrap(), "loaded");
}

async fn all(c: &CacheHandle) {
    thousand_callers_one_loader(c).await;
    an_error_reaches_every_waiter_and_is_not_cached(c).await;
    a_dropped_leader_strands_nobody(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let app = common::app("");
    all(&common::default_cache(&app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    if !common::redis_up("stampede redis") {
        return;
    }
    let prefix = common::unique_prefix("stampede");
    // A generous command timeout: this test is about single flight, and 1000 commands at
    // once on a loaded machine can outlast the 100 ms default (a timeout is a miss, and a
    // miss loads again: right for the app, noise for this count). The outage test covers
    // timeouts.
    let app = common::app(&format!(
        "{}command_timeout = \"5s\"\n",
        common::redis_toml(&prefix, "")
    ));
    let c = common::default_cache(&app);
    all(&c).await;
    c.clear().await.unwrap();
}
