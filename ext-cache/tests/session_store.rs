//! The Redis session store passes core's session conformance suite, including the
//! undecodable-record rule, on the shared Redis under a unique prefix.

mod common;

use flagon::session::conformance::{self, RawRecords};
use flagon::session::{Id, SessionStore, StoreFuture};

fn flagon_cache_store(prefix: &str) -> flagon_cache::RedisSessionStore {
    flagon_cache::RedisSessionStore::connect(&format!("redis://{}", common::REDIS), prefix).unwrap()
}

struct Raw {
    store: flagon_cache::RedisSessionStore,
}

impl RawRecords for Raw {
    fn plant_undecodable<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut raw = common::raw_redis();
            let key = self.store.key_of(id);
            redis::cmd("HSET")
                .arg(&key)
                .arg("v")
                .arg("99")
                .arg("d:x")
                .arg("{")
                .exec(&mut raw)
                .unwrap();
            redis::cmd("EXPIRE")
                .arg(&key)
                .arg(3600)
                .exec(&mut raw)
                .unwrap();
            Ok(())
        })
    }

    fn holds<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut raw = common::raw_redis();
            let n: i64 = redis::cmd("EXISTS")
                .arg(self.store.key_of(id))
                .query(&mut raw)
                .unwrap();
            Ok(n == 1)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    if !common::redis_up("session conformance_suite") {
        return;
    }
    let prefix = common::unique_prefix("session");
    conformance::run(flagon_cache_store(&prefix)).await;
    let s = flagon_cache_store(&prefix);
    conformance::undecodable_records(
        &s,
        &Raw {
            store: flagon_cache_store(&prefix),
        },
    )
    .await;

    // A key of another Redis type under a session's key is a miss, and deleted.
    let id = Id::random();
    let mut raw = common::raw_redis();
    redis::cmd("SET")
        .arg(s.key_of(&id))
        .arg("{")
        .exec(&mut raw)
        .unwrap();
    assert_eq!(s.load(&id).await.unwrap(), None);
    assert!(
        !Raw {
            store: flagon_cache_store(&prefix)
        }
        .holds(&id)
        .await
        .unwrap()
    );
}

#[test]
fn apps_choose_it_with_session_store_redis() {
    let app = common::app(&format!(
        "[cache.redis]\nurl = \"redis://{}\"\n[session]\nstore = \"redis\"\n",
        common::REDIS
    ));
    drop(app);
}

#[test]
fn the_session_prefix_may_not_overlap_the_cache_prefix() {
    let e = common::build_error("[cache]\nbackend = \"redis\"\nsession_key_prefix = \"flagon:\"\n");
    assert!(e.contains("cache.session_key_prefix"), "{e}");
}
