//! A conformance suite every [`SessionStore`] should pass: the memory store runs it, and so
//! should the SQL and Redis stores extensions add.
//!
//! ```
//! use std::sync::Arc;
//! use flagon::session::{conformance, ManualClock, MemoryStore};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let clock = ManualClock::new();
//! let store = MemoryStore::with_clock(100, Arc::new(clock.clone()));
//! conformance::run(&store, &clock).await;
//! # });
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use super::clock::{Clock, ManualClock};
use super::store::{Id, Record, SessionStore};

fn record(clock: &ManualClock, key: &str, value: i64) -> Record {
    let now = clock.unix_now();
    let mut data = BTreeMap::new();
    data.insert(key.to_owned(), serde_json::json!(value));
    Record {
        id: Id::random(),
        data,
        created_at: now,
        expires_at: now + 3600,
    }
}

/// Runs every check against `store`, whose expiry must follow `clock` (build the store
/// with it). Panics with a message naming the failed property.
pub async fn run(store: &dyn SessionStore, clock: &ManualClock) {
    // create then load returns the same record
    let mut a = record(clock, "n", 1);
    store.create(&mut a).await.expect("create");
    let loaded = store.load(&a.id).await.expect("load");
    assert_eq!(
        loaded.as_ref(),
        Some(&a),
        "a created record loads unchanged"
    );

    // save replaces
    a.data.insert("n".into(), serde_json::json!(2));
    store.save(&a).await.expect("save");
    let loaded = store.load(&a.id).await.expect("load").expect("present");
    assert_eq!(
        loaded.data["n"],
        serde_json::json!(2),
        "save replaces the data"
    );

    // create never overwrites another record: a colliding id is replaced
    let mut clash = record(clock, "n", 99);
    clash.id = a.id;
    store
        .create(&mut clash)
        .await
        .expect("create with a taken id");
    assert_ne!(
        clash.id, a.id,
        "create picks a fresh id when the id is taken"
    );
    let still = store.load(&a.id).await.expect("load").expect("present");
    assert_eq!(
        still.data["n"],
        serde_json::json!(2),
        "create does not overwrite"
    );

    // save never recreates a deleted record (a logout racing a refresh stays a logout)
    let mut gone = record(clock, "n", 5);
    store.create(&mut gone).await.expect("create");
    store.delete(&gone.id).await.expect("delete");
    store.save(&gone).await.expect("save after delete");
    assert_eq!(
        store.load(&gone.id).await.expect("load"),
        None,
        "save does not bring a deleted record back"
    );

    // unknown ids load as None
    assert_eq!(store.load(&Id::random()).await.expect("load unknown"), None);

    // delete removes; deleting again or an unknown id is fine
    store.delete(&a.id).await.expect("delete");
    assert_eq!(
        store.load(&a.id).await.expect("load"),
        None,
        "deleted records are gone"
    );
    store.delete(&a.id).await.expect("delete twice");
    store.delete(&Id::random()).await.expect("delete unknown");

    // expired records are not returned
    let mut short = record(clock, "n", 3);
    short.expires_at = clock.unix_now() + 10;
    store.create(&mut short).await.expect("create");
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        store.load(&short.id).await.expect("load expired"),
        None,
        "a record past expires_at is not returned"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::session::MemoryStore;

    #[tokio::test]
    async fn the_memory_store_conforms() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(100, Arc::new(clock.clone()));
        run(&store, &clock).await;
    }
}
