//! Keyset pages on SQLite, PostgreSQL and MariaDB: a walk through a listing with many ties
//! (`score DESC, id ASC`) while a concurrent writer inserts rows all over it, and more are
//! inserted between pages, shows every original row exactly once, in order (where `OFFSET`
//! pages show a row twice); walking back with the
//! `prev` cursors gives the same pages; cursors are tamper-evident.

mod paginate_common;

use std::collections::BTreeSet;

use flagon_db::sqlx::{AssertSqlSafe, Executor, FromRow};
use flagon_db::{
    CursorKey, Keyset, KeysetRequest, PageRequest, Paginate, PaginateError, Select, paginate,
};
use paginate_common::TestDb;

#[derive(FromRow, Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    score: i64,
    title: String,
}

const ROWS: i64 = 95;
const PER_PAGE: u64 = 10;

fn key() -> CursorKey {
    CursorKey::new(b"a test key of thirty-two bytes!!")
}

fn listing() -> Keyset {
    Keyset::new("scores").desc("score").asc("id")
}

fn select() -> Select {
    Select::new("SELECT id, score, title FROM entry WHERE visible = ?").bind(true)
}

async fn setup(db: &TestDb) {
    let text = if db.backend == flagon_db::Backend::MySql {
        "VARCHAR(100)"
    } else {
        "TEXT"
    };
    db.run_sql(&format!(
        "CREATE TABLE entry (id BIGINT PRIMARY KEY, score BIGINT NOT NULL, \
         title {text} NOT NULL, visible BOOLEAN NOT NULL)"
    ))
    .await;
    db.run_sql("CREATE INDEX entry_score_id ON entry (score, id)")
        .await;
    // Scores 0..=9 repeat, so most rows tie on score and the id decides.
    for id in 1..=ROWS {
        insert(db, id, id % 10).await;
    }
    // An invisible row the statement's own WHERE leaves out.
    db.pool
        .execute(AssertSqlSafe(
            "INSERT INTO entry (id, score, title, visible) VALUES (1000, 5, 'hidden', false)"
                .to_owned(),
        ))
        .await
        .unwrap();
}

async fn insert(db: &TestDb, id: i64, score: i64) {
    let sql = format!(
        "INSERT INTO entry (id, score, title, visible) VALUES ({id}, {score}, 'entry {id}', true)"
    );
    db.pool.execute(AssertSqlSafe(sql)).await.unwrap();
}

fn sorted(rows: &[Row]) -> bool {
    rows.windows(2)
        .all(|w| (-w[0].score, w[0].id) < (-w[1].score, w[1].id))
}

async fn walk_with_inserts(db: &TestDb) {
    // A writer inserting rows all over the listing for as long as the walk runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (db.pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = 10_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = format!(
                    "INSERT INTO entry (id, score, title, visible) \
                     VALUES ({id}, {}, 'concurrent {id}', true)",
                    id % 10
                );
                pool.execute(AssertSqlSafe(sql)).await.unwrap();
                id += 1;
                tokio::task::yield_now().await;
            }
            id - 10_000
        })
    };
    let mut seen: Vec<Row> = Vec::new();
    let mut req = KeysetRequest {
        per_page: Some(PER_PAGE),
        ..KeysetRequest::default()
    };
    let mut next_id = 2000;
    let mut pages = 0;
    loop {
        let page = listing()
            .page::<Row, _>(&db.pool, &select(), &req, &key())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() as u64 <= PER_PAGE);
        assert_eq!(
            page.has_prev(),
            pages > 1,
            "{}: page {pages} prev",
            db.backend
        );
        seen.extend(page.items.iter().cloned());
        // Inserts land before, at and after the position the walk has reached.
        for score in [9, 5, 0] {
            insert(db, next_id, score).await;
            next_id += 1;
        }
        match page.next {
            Some(cursor) => req.after = Some(cursor),
            None => break,
        }
        assert!(pages < 1000, "the walk ends");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let concurrent = writer.await.unwrap();
    assert!(
        concurrent > 0,
        "{}: rows went in during the walk",
        db.backend
    );
    assert!(
        sorted(&seen),
        "{}: the walk is in listing order",
        db.backend
    );
    let ids: Vec<i64> = seen.iter().map(|r| r.id).collect();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{}: no row twice", db.backend);
    for id in 1..=ROWS {
        assert!(
            unique.contains(&id),
            "{}: original row {id} shown",
            db.backend
        );
    }
    assert!(
        !unique.contains(&1000),
        "{}: the statement's WHERE holds",
        db.backend
    );
}

async fn offset_pages_repeat_rows_under_the_same_inserts(db: &TestDb) {
    // The same walk by OFFSET: rows inserted ahead of the position push rows seen already
    // onto the next page. (This is why the keyset walk above exists.)
    db.run_sql("DELETE FROM entry WHERE id >= 2000").await;
    let mut ids = Vec::new();
    for page in 1..=3 {
        let p = paginate::<Row, _>(
            &db.pool,
            &Select::new(
                "SELECT id, score, title FROM entry WHERE visible = ? ORDER BY score DESC, id ASC",
            )
            .bind(true),
            PageRequest::new(page, PER_PAGE),
            &Paginate::default(),
        )
        .await
        .unwrap();
        ids.extend(p.items.iter().map(|r| r.id));
        insert(db, 3000 + page as i64, 9).await;
    }
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert!(
        unique.len() < ids.len(),
        "{}: OFFSET repeats rows",
        db.backend
    );
}

async fn walk_back(db: &TestDb) {
    // Forward, recording pages; then back from the last page with `prev`.
    let mut forward: Vec<Vec<Row>> = Vec::new();
    let mut req = KeysetRequest {
        per_page: Some(PER_PAGE),
        ..KeysetRequest::default()
    };
    let mut last_prev: Option<String>;
    loop {
        let page = listing()
            .page::<Row, _>(&db.pool, &select(), &req, &key())
            .await
            .unwrap();
        forward.push(page.items.clone());
        last_prev = page.prev.clone();
        match page.next {
            Some(c) => req.after = Some(c),
            None => break,
        }
    }
    let mut backward: Vec<Vec<Row>> = vec![forward.last().unwrap().clone()];
    let mut cursor = last_prev;
    while let Some(c) = cursor {
        let req = KeysetRequest {
            before: Some(c),
            per_page: Some(PER_PAGE),
            after: None,
        };
        let page = listing()
            .page::<Row, _>(&db.pool, &select(), &req, &key())
            .await
            .unwrap();
        assert!(page.has_next(), "{}: a page before has a next", db.backend);
        backward.push(page.items.clone());
        cursor = page.prev;
    }
    backward.reverse();
    // Pages going back are full pages ending where the next one starts: the same rows.
    let f: Vec<Row> = forward.concat();
    let b: Vec<Row> = backward.concat();
    assert_eq!(b, f, "{}: walking back shows the same rows", db.backend);
    assert!(backward.iter().skip(1).all(|p| !p.is_empty()));
}

async fn tampered_cursors_are_400s(db: &TestDb) {
    let first = listing()
        .page::<Row, _>(&db.pool, &select(), &KeysetRequest::default(), &key())
        .await
        .unwrap();
    let cursor = first.next.expect("a second page");
    let (payload, tag) = cursor.split_once('.').unwrap();
    let mut flipped = payload.as_bytes().to_vec();
    flipped[2] = if flipped[2] == b'A' { b'B' } else { b'A' };
    let altered = format!("{}.{tag}", String::from_utf8(flipped).unwrap());
    for (what, bad, listing) in [
        ("altered", altered, self::listing()),
        ("garbage", "not-a-cursor".into(), self::listing()),
        (
            "other listing",
            cursor.clone(),
            Keyset::new("other").desc("score").asc("id"),
        ),
    ] {
        let req = KeysetRequest {
            after: Some(bad),
            ..KeysetRequest::default()
        };
        let err = listing
            .page::<Row, _>(&db.pool, &select(), &req, &key())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PaginateError::BadCursor),
            "{}: {what}: {err}",
            db.backend
        );
        assert_eq!(flagon::HttpError::from(err).status(), 400);
    }
    let req = KeysetRequest {
        after: Some(cursor),
        ..KeysetRequest::default()
    };
    let other_key = CursorKey::new(b"another key, thirty-two bytes!!!");
    assert!(matches!(
        listing()
            .page::<Row, _>(&db.pool, &select(), &req, &other_key)
            .await,
        Err(PaginateError::BadCursor)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_pages_are_stable_under_inserts_on_every_backend() {
    for db in TestDb::all("keyset_pages_are_stable_under_inserts_on_every_backend").await {
        setup(&db).await;
        walk_with_inserts(&db).await;
        offset_pages_repeat_rows_under_the_same_inserts(&db).await;
        walk_back(&db).await;
        tampered_cursors_are_400s(&db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_made_with_the_apps_derived_key_is_refused_by_another_app() {
    let app = |secret: &str| {
        flagon::App::builder()
            .settings(flagon::testing::testing_config_toml(&format!(
                "secret_key = \"{secret}\""
            )))
            .build()
            .unwrap()
    };
    let a = CursorKey::from(&app("first secret").derive_key("flagon-db.cursor"));
    let b = CursorKey::from(&app("second secret").derive_key("flagon-db.cursor"));
    let db = TestDb::sqlite().await;
    setup(&db).await;
    let first = listing()
        .page::<Row, _>(&db.pool, &select(), &KeysetRequest::default(), &a)
        .await
        .unwrap();
    let req = KeysetRequest {
        after: first.next.clone(),
        ..KeysetRequest::default()
    };
    let second = listing()
        .page::<Row, _>(&db.pool, &select(), &req, &a)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 20);
    assert!(matches!(
        listing()
            .page::<Row, _>(&db.pool, &select(), &req, &b)
            .await,
        Err(PaginateError::BadCursor)
    ));
}
