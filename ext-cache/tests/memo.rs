//! Memoize: results by arguments, invalidation per function and per arguments, on memory
//! and on Redis.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flagon_cache::{CacheHandle, Ttl};

async fn suite(c: &CacheHandle) {
    let calls = Arc::new(AtomicUsize::new(0));
    let square = c.memoize("square", Ttl::Default);
    let cube = c.memoize("cube", Ttl::Default);
    let run = |m: &flagon_cache::Memo, n: u64, p: u32| {
        let (m, calls) = (m.clone(), calls.clone());
        async move {
            m.call(&n, move |n| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(n.pow(p))
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(run(&square, 3, 2).await, 9);
    assert_eq!(run(&square, 3, 2).await, 9);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a second call with the same args is cached"
    );
    assert_eq!(run(&square, 4, 2).await, 16);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "other args, another entry");
    assert_eq!(
        run(&cube, 3, 3).await,
        27,
        "functions have their own namespace"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Per arguments: only that result is recomputed.
    assert!(square.forget(&3u64).await.unwrap());
    assert!(!square.forget(&3u64).await.unwrap());
    run(&square, 3, 2).await;
    run(&square, 4, 2).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "3 recomputed, 4 still cached"
    );

    // Per function: every result of square is recomputed, cube's are kept.
    square.forget_all().await.unwrap();
    run(&square, 3, 2).await;
    run(&square, 4, 2).await;
    run(&cube, 3, 3).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        6,
        "square's two recomputed, cube's kept"
    );

    // The same by name, as Flask-Caching's `delete_memoized(f[, args])`.
    assert!(c.delete_memoized_args("cube", &3u64).await.unwrap());
    run(&cube, 3, 3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 7, "that result recomputed");
    c.delete_memoized("square").await.unwrap();
    run(&square, 3, 2).await;
    run(&cube, 3, 3).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        8,
        "square's recomputed, cube's kept"
    );

    // Errors are not cached.
    let failing = c.memoize("failing", Ttl::Default);
    for _ in 0..2 {
        let calls = calls.clone();
        let r = failing
            .call(&1u8, move |_| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<u8, _>("no")
            })
            .await;
        assert!(r.is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn memory() {
    let app = common::app("");
    suite(&common::default_cache(&app)).await;
}

#[tokio::test]
async fn redis() {
    if !common::redis_up("memo redis") {
        return;
    }
    let prefix = common::unique_prefix("memo");
    let app = common::app(&common::redis_toml(&prefix, ""));
    let c = common::default_cache(&app);
    suite(&c).await;
    c.clear().await.unwrap();
}
