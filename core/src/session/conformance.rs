//! A conformance suite every [`SessionStore`] should pass: the memory store runs it, and so
//! should the SQL and Redis stores extensions add.
//!
//! The suite reads no clock of the store's: every record it writes lives an hour from the
//! system time, or expired a minute before it, so a store that expires records on its
//! server's time (Redis `EXPIREAT`, SQL `now()`) runs it as is. The atomicity checks run
//! many updates truly in parallel, so call it on a multi-thread runtime.
//!
//! ```
//! use flagon::session::{conformance, MemoryStore};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! conformance::run(MemoryStore::new(100)).await;
//! # });
//! ```
//!
//! A store that keeps records encoded (JSON in Redis or SQL) also runs
//! [`undecodable_records`], giving it raw access to its backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Barrier;

use super::clock::unix_secs;
use super::store::{Changes, Id, Record, SessionStore, SharedRecord, StoreFuture, Updated};

/// Tasks updating one record at once in the atomicity checks.
const TASKS: usize = 16;
/// Updates each of those tasks makes.
const ROUNDS: usize = 8;

fn now() -> u64 {
    unix_secs(SystemTime::now())
}

fn record(key: &str, value: i64) -> Record {
    let now = now();
    let mut data = BTreeMap::new();
    data.insert(key.to_owned(), serde_json::json!(value));
    Record {
        id: Id::random(),
        data,
        created_at: now,
        expires_at: now + 3600,
    }
}

fn set(key: &str, value: serde_json::Value) -> Changes {
    let mut changes = Changes {
        expires_at: now() + 3600,
        ..Changes::default()
    };
    changes.keys.insert(key.to_owned(), Some(value));
    changes
}

/// Runs every check against `store`. Panics with a message naming the failed property.
/// Must run on a multi-thread Tokio runtime (`#[tokio::test(flavor = "multi_thread")]`).
pub async fn run(store: impl SessionStore) {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread,
        "run the session store conformance suite on a multi-thread runtime, so that its \
         concurrent updates truly run in parallel"
    );
    let store: Arc<dyn SessionStore> = Arc::new(store);
    basics(&*store).await;
    updates(&*store).await;
    expired(&*store).await;
    concurrent_updates_keep_every_key(&store).await;
    a_delete_racing_updates_stays_deleted(&store).await;
}

async fn basics(store: &dyn SessionStore) {
    // create then load returns the same record
    let mut a = record("n", 1);
    store.create(&mut a).await.expect("create");
    let loaded = store.load(&a.id).await.expect("load");
    assert_eq!(
        loaded.as_ref(),
        Some(&a),
        "a created record loads unchanged"
    );
    let shared = store.load_shared(&a.id).await.expect("load_shared");
    assert_eq!(
        shared,
        Some(SharedRecord::from(a.clone())),
        "load_shared reads what load reads"
    );

    // create never overwrites another record: a colliding id is replaced
    let mut clash = record("n", 99);
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
        serde_json::json!(1),
        "create does not overwrite"
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
}

async fn updates(store: &dyn SessionStore) {
    let mut a = record("keep", 1);
    a.data.insert("drop".into(), serde_json::json!(2));
    store.create(&mut a).await.expect("create");

    // an update sets and removes only its keys, and moves the expiry
    let mut changes = set("new", serde_json::json!("x"));
    changes.keys.insert("drop".into(), None);
    changes.expires_at = a.expires_at + 60;
    assert_eq!(
        store.update(&a.id, &changes).await.expect("update"),
        Updated::Applied,
        "an update of a live record applies"
    );
    let loaded = store.load(&a.id).await.expect("load").expect("present");
    let expected: BTreeMap<String, serde_json::Value> = [
        ("keep".to_owned(), serde_json::json!(1)),
        ("new".to_owned(), serde_json::json!("x")),
    ]
    .into();
    assert_eq!(loaded.data, expected, "an update changes only its keys");
    assert_eq!(
        loaded.expires_at,
        a.expires_at + 60,
        "an update sets expires_at"
    );
    assert_eq!(
        loaded.created_at, a.created_at,
        "an update keeps created_at"
    );

    // a touch moves only the expiry
    let touch = Changes {
        expires_at: a.expires_at + 120,
        ..Changes::default()
    };
    assert_eq!(
        store.update(&a.id, &touch).await.expect("touch"),
        Updated::Applied
    );
    let loaded = store.load(&a.id).await.expect("load").expect("present");
    assert_eq!(loaded.data, expected, "a touch keeps the data");
    assert_eq!(
        loaded.expires_at,
        a.expires_at + 120,
        "a touch sets expires_at"
    );

    // a replacing update drops the keys it does not set
    let mut replace = set("only", serde_json::json!(true));
    replace.replace = true;
    store.update(&a.id, &replace).await.expect("replace");
    let loaded = store.load(&a.id).await.expect("load").expect("present");
    assert_eq!(
        loaded.data.keys().collect::<Vec<_>>(),
        ["only"],
        "a replacing update replaces the data"
    );

    // an update never recreates a deleted record (a logout racing a refresh stays a logout)
    store.delete(&a.id).await.expect("delete");
    assert_eq!(
        store
            .update(&a.id, &set("n", serde_json::json!(5)))
            .await
            .expect("update after delete"),
        Updated::Gone,
        "an update of a deleted record reports it gone"
    );
    assert_eq!(
        store.load(&a.id).await.expect("load"),
        None,
        "an update does not bring a deleted record back"
    );
    assert_eq!(
        store
            .update(&Id::random(), &touch)
            .await
            .expect("update unknown"),
        Updated::Gone,
        "an update of an unknown id reports it gone"
    );
}

async fn expired(store: &dyn SessionStore) {
    // a record whose expiry has passed is not returned, and an update does not revive it
    let mut past = record("n", 3);
    past.expires_at = now() - 60;
    store
        .create(&mut past)
        .await
        .expect("create an expired record");
    assert_eq!(
        store.load(&past.id).await.expect("load expired"),
        None,
        "a record past expires_at is not returned"
    );
    let mut past = record("n", 4);
    past.expires_at = now() - 60;
    store
        .create(&mut past)
        .await
        .expect("create an expired record");
    assert_eq!(
        store
            .update(&past.id, &set("n", serde_json::json!(5)))
            .await
            .expect("update expired"),
        Updated::Gone,
        "an update of a record past expires_at reports it gone"
    );
    assert_eq!(
        store.load(&past.id).await.expect("load expired"),
        None,
        "an update does not revive an expired record"
    );
}

/// Joins a task of the suite, passing its panic on.
async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn concurrent_updates_keep_every_key(store: &Arc<dyn SessionStore>) {
    let mut r = record("base", 0);
    store.create(&mut r).await.expect("create");
    let id = r.id;
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                for round in 0..ROUNDS {
                    let changes = set(&format!("task{t}"), serde_json::json!(round));
                    let done = store
                        .update(&id, &changes)
                        .await
                        .expect("concurrent update");
                    assert_eq!(done, Updated::Applied, "a live record updates");
                }
            })
        })
        .collect();
    for task in tasks {
        join(task).await;
    }
    let loaded = store.load(&id).await.expect("load").expect("present");
    for t in 0..TASKS {
        assert_eq!(
            loaded.data.get(&format!("task{t}")),
            Some(&serde_json::json!(ROUNDS - 1)),
            "updates are atomic: {TASKS} tasks each updating its own key at once keep every \
             key (a read-modify-write update loses some); found {:?}",
            loaded.data.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        loaded.data["base"],
        serde_json::json!(0),
        "no update drops another key"
    );
    store.delete(&id).await.expect("delete");
}

async fn a_delete_racing_updates_stays_deleted(store: &Arc<dyn SessionStore>) {
    for _ in 0..4 {
        let mut r = record("base", 0);
        store.create(&mut r).await.expect("create");
        let id = r.id;
        let start = Arc::new(Barrier::new(TASKS + 1));
        let mut tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    for round in 0..ROUNDS {
                        let changes = set(&format!("task{t}"), serde_json::json!(round));
                        store
                            .update(&id, &changes)
                            .await
                            .expect("update racing a delete");
                    }
                })
            })
            .collect();
        tasks.push({
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                tokio::task::yield_now().await;
                store.delete(&id).await.expect("delete racing updates");
            })
        });
        for task in tasks {
            join(task).await;
        }
        assert_eq!(
            store.load(&id).await.expect("load"),
            None,
            "a delete racing updates stays deleted: no update recreates the record"
        );
    }
}

/// Raw access to a store's backend, for [`undecodable_records`]: what a store's own tests
/// can do that its public calls cannot.
pub trait RawRecords: Send + Sync {
    /// Writes, under `id`'s key, bytes that the store cannot decode as a record (`"{"`, or a
    /// record of an unknown version), live for an hour.
    fn plant_undecodable<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()>;

    /// Whether the backend holds anything under `id`'s key.
    fn holds<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, bool>;
}

/// Checks the rule of [`SessionStore`] for records that cannot be decoded: `load` returns
/// `Ok(None)` (a miss, not an error) and deletes the record.
pub async fn undecodable_records(store: &dyn SessionStore, raw: &dyn RawRecords) {
    let id = Id::random();
    raw.plant_undecodable(&id)
        .await
        .expect("plant an undecodable record");
    assert!(
        raw.holds(&id).await.expect("look up the planted record"),
        "the planted record is there"
    );
    assert_eq!(
        store
            .load(&id)
            .await
            .expect("an undecodable record is a miss, not an error"),
        None,
        "an undecodable record loads as None"
    );
    assert!(
        !raw.holds(&id).await.expect("look up the planted record"),
        "loading an undecodable record deletes it"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::session::{MemoryStore, StoreError};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_store_conforms() {
        run(MemoryStore::new(100)).await;
    }

    /// A store keeping records as JSON text, as Redis and SQL stores do; `lenient` skips
    /// deleting undecodable records.
    #[derive(Default)]
    struct JsonStore {
        rows: Mutex<HashMap<Id, String>>,
        lenient: bool,
    }

    impl JsonStore {
        fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<Id, String>> {
            self.rows.lock().unwrap()
        }

        /// The live record under `id`; drops an undecodable one unless lenient.
        fn live(&self, rows: &mut HashMap<Id, String>, id: &Id) -> Option<Record> {
            let text = rows.get(id)?;
            match serde_json::from_str::<Record>(text) {
                Ok(r) if r.expires_at > now() => Some(r),
                Ok(_) => {
                    rows.remove(id);
                    None
                }
                Err(_) if self.lenient => None,
                Err(_) => {
                    rows.remove(id);
                    None
                }
            }
        }
    }

    fn encode(r: &Record) -> Result<String, StoreError> {
        serde_json::to_string(r).map_err(|e| StoreError::Encoding(e.into()))
    }

    impl SessionStore for JsonStore {
        fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                let mut rows = self.rows();
                while rows.contains_key(&record.id) {
                    record.id = Id::random();
                }
                rows.insert(record.id, encode(record)?);
                Ok(())
            })
        }
        fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
            Box::pin(async move { Ok(self.live(&mut self.rows(), id)) })
        }
        fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
            Box::pin(async move {
                let mut rows = self.rows();
                let Some(mut r) = self.live(&mut rows, id) else {
                    return Ok(Updated::Gone);
                };
                changes.apply_to(&mut r.data);
                r.expires_at = changes.expires_at;
                rows.insert(*id, encode(&r)?);
                Ok(Updated::Applied)
            })
        }
        fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                self.rows().remove(id);
                Ok(())
            })
        }
    }

    impl RawRecords for JsonStore {
        fn plant_undecodable<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                self.rows().insert(*id, "{\"version\": 99".into());
                Ok(())
            })
        }
        fn holds<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, bool> {
            Box::pin(async move { Ok(self.rows().contains_key(id)) })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_encoding_store_conforms_and_deletes_undecodable_records() {
        let store = Arc::new(JsonStore::default());
        run(store.clone()).await;
        undecodable_records(&*store, &*store).await;
    }

    /// Runs `check` in a task and returns its panic message, if it panicked.
    async fn panic_of(check: impl std::future::Future<Output = ()> + Send + 'static) -> String {
        let err = tokio::spawn(check).await.expect_err("the check fails");
        let panic = err.into_panic();
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_keeping_undecodable_records_fails_the_check() {
        let msg = panic_of(async {
            let store = JsonStore {
                lenient: true,
                ..JsonStore::default()
            };
            undecodable_records(&store, &store).await;
        })
        .await;
        assert!(msg.contains("deletes it"), "{msg}");
    }

    /// Updates by reading the record, yielding, and writing the whole of it back.
    struct ReadModifyWrite(MemoryStore);

    impl SessionStore for ReadModifyWrite {
        fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
            self.0.create(record)
        }
        fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
            self.0.load(id)
        }
        fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
            Box::pin(async move {
                let Some(mut r) = self.0.load(id).await? else {
                    return Ok(Updated::Gone);
                };
                tokio::task::yield_now().await;
                changes.apply_to(&mut r.data);
                let whole = Changes {
                    keys: r.data.into_iter().map(|(k, v)| (k, Some(v))).collect(),
                    replace: true,
                    expires_at: changes.expires_at,
                };
                self.0.update(id, &whole).await
            })
        }
        fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
            self.0.delete(id)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_modify_write_update_fails_the_suite() {
        let msg = panic_of(run(ReadModifyWrite(MemoryStore::new(100)))).await;
        assert!(msg.contains("updates are atomic"), "{msg}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_suite_refuses_a_single_thread_runtime() {
        let msg = panic_of(run(MemoryStore::new(100))).await;
        assert!(msg.contains("multi-thread runtime"), "{msg}");
    }
}
