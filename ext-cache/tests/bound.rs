//! F6: a million distinct keys stay within the configured weight and entry bounds.

mod common;

use flagon_cache::Ttl;

#[tokio::test]
async fn a_million_keys_stay_within_the_bounds() {
    let max_bytes: u64 = 4 << 20;
    let max_entries: u64 = 20_000;
    let app = common::app(&format!(
        "[cache]\nmax_value_bytes = 4096\n[cache.memory]\nmax_bytes = {max_bytes}\nmax_entries = {max_entries}\n"
    ));
    let c = common::default_cache(&app);
    let value = "v".repeat(100);
    let mut peak = (0, 0);
    for i in 0..1_000_000u32 {
        c.set(&format!("key:{i}"), &value, Ttl::Forever)
            .await
            .unwrap();
        if i % 100_000 == 99_999 {
            c.run_pending_tasks().await;
            let u = c.memory_usage().unwrap();
            assert!(u.bytes <= max_bytes, "after {i} keys: {u:?}");
            assert!(u.entries <= max_entries, "after {i} keys: {u:?}");
            peak = (peak.0.max(u.entries), peak.1.max(u.bytes));
        }
    }
    c.run_pending_tasks().await;
    let u = c.memory_usage().unwrap();
    assert!(u.bytes <= max_bytes && u.entries <= max_entries, "{u:?}");
    assert!(u.entries > 0, "the cache still holds entries");
    println!(
        "1M keys: peak {} entries / {} bytes (bounds {max_entries} / {max_bytes})",
        peak.0, peak.1
    );

    // The entry bound alone, with small values.
    let app = common::app("[cache.memory]\nmax_entries = 1000\n");
    let c = common::default_cache(&app);
    for i in 0..50_000u32 {
        c.set(&i.to_string(), &i, Ttl::Forever).await.unwrap();
    }
    c.run_pending_tasks().await;
    let u = c.memory_usage().unwrap();
    assert!(u.entries <= 1000, "{u:?}");
}
