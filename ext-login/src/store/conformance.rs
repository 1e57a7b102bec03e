//! The contract every [`RememberStore`] must keep, as a test suite: run
//! [`conformance::run`](run) against your backend (on a multi-thread runtime).

use std::sync::Arc;

use super::{RememberStore, TokenRecord};

fn record(user: &str, expires_at: u64) -> TokenRecord {
    let selector = super::hex(&rand::random::<[u8; 16]>());
    TokenRecord {
        selector,
        user_id: user.to_owned(),
        validator_hash: super::sha256_hex(&rand::random::<[u8; 32]>()),
        previous_hash: None,
        rotated_at: 1_000,
        expires_at,
        auth_digest: "ab".repeat(16),
    }
}

/// Runs every check against `store`, panicking on the first broken rule. User ids are
/// random per run, so runs on a shared server do not see each other's series.
pub async fn run<S: RememberStore>(store: S) {
    let store = Arc::new(store);
    let user = format!("u{}", rand::random::<u32>());
    let far = flagon::session::unix_secs(std::time::SystemTime::now()) + 3600;

    // Insert and get round-trip every field.
    let a = record(&user, far);
    store.insert(&a).await.expect("insert");
    assert_eq!(store.get(&a.selector).await.expect("get"), Some(a.clone()));
    assert_eq!(store.get("0".repeat(32).as_str()).await.expect("get"), None);

    // Rotation is a compare-and-set on the current hash.
    let next = super::sha256_hex(b"next");
    assert!(
        !store
            .rotate(&a.selector, &next, &next, 2_000)
            .await
            .unwrap(),
        "wrong current must not rotate"
    );
    assert!(
        store
            .rotate(&a.selector, &a.validator_hash, &next, 2_000)
            .await
            .unwrap()
    );
    let rotated = store.get(&a.selector).await.unwrap().expect("still there");
    assert_eq!(rotated.validator_hash, next);
    assert_eq!(
        rotated.previous_hash.as_deref(),
        Some(a.validator_hash.as_str())
    );
    assert_eq!(rotated.rotated_at, 2_000);
    assert_eq!(
        rotated.expires_at, a.expires_at,
        "rotation keeps the expiry"
    );
    assert!(
        !store
            .rotate(&a.selector, &a.validator_hash, &next, 3_000)
            .await
            .unwrap(),
        "an old hash must not rotate again"
    );
    assert!(
        !store
            .rotate("f".repeat(32).as_str(), &next, &next, 3_000)
            .await
            .unwrap()
    );

    // Concurrent rotations of one validator: exactly one wins.
    let b = record(&user, far);
    store.insert(&b).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let (store, sel, cur) = (store.clone(), b.selector.clone(), b.validator_hash.clone());
        tasks.push(tokio::spawn(async move {
            let next = super::sha256_hex(&[i]);
            store.rotate(&sel, &cur, &next, 5_000).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one concurrent rotation must apply");

    // Delete one; delete a user's; purge expired.
    store.delete(&a.selector).await.unwrap();
    assert_eq!(store.get(&a.selector).await.unwrap(), None);
    store
        .delete(&a.selector)
        .await
        .expect("deleting twice is fine");
    let c = record(&user, far);
    store.insert(&c).await.unwrap();
    let other = record(&format!("{user}-other"), far);
    store.insert(&other).await.unwrap();
    assert_eq!(store.delete_user(&user).await.unwrap(), 2, "b and c");
    assert_eq!(store.get(&b.selector).await.unwrap(), None);
    assert_eq!(store.get(&c.selector).await.unwrap(), None);
    assert!(
        store.get(&other.selector).await.unwrap().is_some(),
        "another user's series stays"
    );
    let old = record(&user, 10);
    store.insert(&old).await.unwrap();
    store.purge_expired(100).await.expect("purge");
    assert_eq!(store.get(&old.selector).await.unwrap(), None);
    assert!(
        store.get(&other.selector).await.unwrap().is_some(),
        "unexpired series stay"
    );
    store.delete_user(&format!("{user}-other")).await.unwrap();
}
