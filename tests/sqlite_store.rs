//! The embedded store through its library API: conditions, listing, binary
//! values, races, durability, open errors and concurrent migrations.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hulykvs::config::{DbOptions, DbTarget};
use hulykvs::store::sqlite::{MAX_BATCH, MIGRATIONS};
use hulykvs::store::{
    DeleteCondition, DeleteOutcome, ItemRef, ListQuery, NewValue, PutCondition, PutOutcome,
    SqliteStore, Store, StoreError,
};
use tempfile::TempDir;
use uuid::Uuid;

const WS: Uuid = Uuid::from_u128(0x11111111_2222_3333_4444_555555555555);

fn options(path: &Path) -> DbOptions {
    DbOptions {
        target: DbTarget::Sqlite(path.to_owned()),
        schema: "hulykvs".to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        pool_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(10),
    }
}

/// A migrated store in a fresh folder; the folder lives as long as the `TempDir`.
async fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvs.db");
    let store = SqliteStore::open(&path, &options(&path)).unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

fn at<'a>(namespace: &'a str, key: &'a str) -> ItemRef<'a> {
    ItemRef {
        workspace: WS,
        namespace,
        key,
    }
}

fn value(bytes: &[u8]) -> NewValue {
    NewValue::new(Bytes::copy_from_slice(bytes), "text/plain".to_owned())
}

fn digest(bytes: &[u8]) -> [u8; 16] {
    md5::compute(bytes).0
}

async fn read(store: &SqliteStore, key: &str) -> Option<Vec<u8>> {
    store
        .get(at("ns", key))
        .await
        .unwrap()
        .map(|e| e.value.to_vec())
}

async fn keys(store: &SqliteStore, namespace: &str, prefix: &str) -> Vec<String> {
    store
        .list(ListQuery {
            workspace: WS,
            namespace,
            prefix,
            after: None,
            limit: 10_000,
        })
        .await
        .unwrap()
}

#[test]
fn store_is_shareable() {
    fn shareable<T: Store + Send + Sync + 'static>() {}
    shareable::<SqliteStore>();
}

#[tokio::test]
async fn backend_and_ping() {
    let (_dir, store) = fresh().await;
    assert_eq!(store.backend(), "sqlite");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn put_conditions() {
    let (_dir, store) = fresh().await;
    let put = |key: &'static str, bytes: &'static [u8], cond: PutCondition| {
        let store = &store;
        async move { store.put(at("ns", key), value(bytes), cond).await.unwrap() }
    };

    assert!(matches!(
        put("k", b"one", PutCondition::Always).await,
        PutOutcome::Stored(_)
    ));
    assert!(matches!(
        put("k", b"two", PutCondition::Always).await,
        PutOutcome::Stored(_)
    ));
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"two"[..]));

    assert_eq!(
        put("k", b"three", PutCondition::IfAbsent).await,
        PutOutcome::PreconditionFailed
    );
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"two"[..]));
    assert!(matches!(
        put("new", b"x", PutCondition::IfAbsent).await,
        PutOutcome::Created(_)
    ));
    assert_eq!(read(&store, "new").await.as_deref(), Some(&b"x"[..]));

    assert_eq!(
        put("absent", b"x", PutCondition::IfExists).await,
        PutOutcome::PreconditionFailed
    );
    assert_eq!(read(&store, "absent").await, None);
    assert!(matches!(
        put("k", b"four", PutCondition::IfExists).await,
        PutOutcome::Stored(_)
    ));
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"four"[..]));

    let stale = digest(b"two");
    let current = digest(b"four");
    assert_eq!(
        put("k", b"five", PutCondition::IfMatch(vec![stale])).await,
        PutOutcome::PreconditionFailed
    );
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"four"[..]));
    assert!(matches!(
        put("k", b"five", PutCondition::IfMatch(vec![stale, current])).await,
        PutOutcome::Stored(_)
    ));
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"five"[..]));
    assert_eq!(
        put("k", b"six", PutCondition::IfMatch(vec![])).await,
        PutOutcome::PreconditionFailed,
        "an empty list never matches"
    );
    assert_eq!(
        put("absent", b"x", PutCondition::IfMatch(vec![current])).await,
        PutOutcome::PreconditionFailed
    );
    assert_eq!(read(&store, "absent").await, None);

    // A long list (prepared uncached), with repeats, matching at the end.
    let mut long: Vec<[u8; 16]> = (0u8..20).map(|i| digest(&[i])).collect();
    long.extend([stale, stale, digest(b"five")]);
    assert!(matches!(
        put("k", b"seven", PutCondition::IfMatch(long)).await,
        PutOutcome::Stored(_)
    ));
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"seven"[..]));
}

#[tokio::test]
async fn delete_conditions() {
    let (_dir, store) = fresh().await;
    let del = |key: &'static str, cond: DeleteCondition| {
        let store = &store;
        async move { store.delete(at("ns", key), cond).await.unwrap() }
    };
    let put = |key: &'static str, bytes: &'static [u8]| {
        let store = &store;
        async move {
            store
                .put(at("ns", key), value(bytes), PutCondition::Always)
                .await
                .unwrap()
        }
    };

    assert_eq!(
        del("k", DeleteCondition::Always).await,
        DeleteOutcome::NotFound
    );
    put("k", b"v").await;
    assert!(matches!(
        del("k", DeleteCondition::Always).await,
        DeleteOutcome::Deleted(_)
    ));
    assert_eq!(read(&store, "k").await, None);

    assert_eq!(
        del("k", DeleteCondition::IfExists).await,
        DeleteOutcome::PreconditionFailed
    );
    put("k", b"v").await;
    assert!(matches!(
        del("k", DeleteCondition::IfExists).await,
        DeleteOutcome::Deleted(_)
    ));
    assert_eq!(read(&store, "k").await, None);

    assert_eq!(
        del("k", DeleteCondition::IfMatch(vec![digest(b"v")])).await,
        DeleteOutcome::PreconditionFailed,
        "absent under a condition"
    );
    put("k", b"v").await;
    assert_eq!(
        del("k", DeleteCondition::IfMatch(vec![digest(b"other")])).await,
        DeleteOutcome::PreconditionFailed
    );
    assert_eq!(
        del("k", DeleteCondition::IfMatch(vec![])).await,
        DeleteOutcome::PreconditionFailed
    );
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"v"[..]));
    assert!(matches!(
        del(
            "k",
            DeleteCondition::IfMatch(vec![digest(b"other"), digest(b"v")])
        )
        .await,
        DeleteOutcome::Deleted(_)
    ));
    assert_eq!(read(&store, "k").await, None);
}

#[tokio::test]
async fn entries_keep_digest_and_content_type() {
    let (_dir, store) = fresh().await;
    let new = NewValue::new(Bytes::from_static(b"{}"), "application/json".to_owned());
    store
        .put(at("ns", "k"), new, PutCondition::Always)
        .await
        .unwrap();
    let entry = store.get(at("ns", "k")).await.unwrap().unwrap();
    assert_eq!(entry.md5, digest(b"{}"));
    assert_eq!(entry.content_type.as_deref(), Some("application/json"));
    assert!(store.get(at("ns", "missing")).await.unwrap().is_none());
}

#[tokio::test]
async fn binary_values_round_trip() {
    let (_dir, store) = fresh().await;
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    store
        .put(at("ns", "all"), value(&all), PutCondition::Always)
        .await
        .unwrap();
    store
        .put(at("ns", "empty"), value(b""), PutCondition::Always)
        .await
        .unwrap();

    let entry = store.get(at("ns", "all")).await.unwrap().unwrap();
    assert_eq!(entry.value.as_ref(), &all[..]);
    assert_eq!(entry.md5, digest(&all));
    let entry = store.get(at("ns", "empty")).await.unwrap().unwrap();
    assert!(entry.value.is_empty());
    assert_eq!(entry.md5, digest(b""));
}

#[tokio::test]
async fn listing_is_in_byte_order() {
    let (_dir, store) = fresh().await;
    for key in ["é", "b", "a", "B", "a/b", "ab", "Z", "\u{10FFFF}"] {
        store
            .put(at("ns", key), value(b"v"), PutCondition::Always)
            .await
            .unwrap();
    }
    assert_eq!(
        keys(&store, "ns", "").await,
        ["B", "Z", "a", "a/b", "ab", "b", "é", "\u{10FFFF}"]
    );
    assert_eq!(keys(&store, "ns", "a").await, ["a", "a/b", "ab"]);
    assert_eq!(keys(&store, "ns", "\u{10FFFF}").await, ["\u{10FFFF}"]);
    assert!(keys(&store, "ns", "c").await.is_empty());
}

#[tokio::test]
async fn prefixes_are_literal() {
    let (_dir, store) = fresh().await;
    for key in ["a%b", "axb", "a_b", "ayb", "a\\b", "a\\c", "abc", "a[b"] {
        store
            .put(at("ns", key), value(b"v"), PutCondition::Always)
            .await
            .unwrap();
    }
    assert_eq!(keys(&store, "ns", "a%").await, ["a%b"]);
    assert_eq!(keys(&store, "ns", "a_").await, ["a_b"]);
    assert_eq!(keys(&store, "ns", "a\\").await, ["a\\b", "a\\c"]);
    assert_eq!(keys(&store, "ns", "a[").await, ["a[b"]);
    assert_eq!(keys(&store, "ns", "A").await, Vec::<String>::new());
}

#[tokio::test]
async fn pagination_continues_after_the_last_key() {
    let (_dir, store) = fresh().await;
    let mut expected: Vec<String> = (0..25).map(|i| format!("p/{i:02}")).collect();
    for key in expected.iter().map(String::as_str).chain(["o", "q", "p"]) {
        store
            .put(at("ns", key), value(b"v"), PutCondition::Always)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(ListQuery {
                workspace: WS,
                namespace: "ns",
                prefix: "p/",
                after: after.as_deref(),
                limit: 7,
            })
            .await
            .unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        seen.extend(page);
    }
    assert_eq!(seen, expected);

    // `after` below the prefix still honours the prefix.
    let page = store
        .list(ListQuery {
            workspace: WS,
            namespace: "ns",
            prefix: "p/",
            after: Some("a"),
            limit: 3,
        })
        .await
        .unwrap();
    expected.truncate(3);
    assert_eq!(page, expected);

    let all = store
        .list(ListQuery {
            workspace: WS,
            namespace: "ns",
            prefix: "",
            after: Some("p/24"),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(all, ["q"]);
}

#[tokio::test]
async fn workspaces_and_namespaces_are_isolated() {
    let (_dir, store) = fresh().await;
    let other = Uuid::from_u128(42);
    let mine = at("ns", "k");
    let theirs = ItemRef {
        workspace: other,
        ..mine
    };
    store
        .put(mine, value(b"mine"), PutCondition::Always)
        .await
        .unwrap();
    store
        .put(theirs, value(b"theirs"), PutCondition::Always)
        .await
        .unwrap();
    store
        .put(at("ns2", "k2"), value(b"v"), PutCondition::Always)
        .await
        .unwrap();

    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"mine"[..]));
    let entry = store.get(theirs).await.unwrap().unwrap();
    assert_eq!(entry.value.as_ref(), b"theirs");
    assert_eq!(keys(&store, "ns", "").await, ["k"]);
    assert_eq!(keys(&store, "ns2", "").await, ["k2"]);

    assert!(matches!(
        store.delete(theirs, DeleteCondition::Always).await.unwrap(),
        DeleteOutcome::Deleted(_)
    ));
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"mine"[..]));
    assert_eq!(
        store
            .put(theirs, value(b"x"), PutCondition::IfExists)
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_puts_have_one_winner() {
    let (_dir, store) = fresh().await;
    let store = Arc::new(store);
    store
        .put(at("ns", "m"), value(b"start"), PutCondition::Always)
        .await
        .unwrap();
    let current = digest(b"start");

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mine = format!("writer {i}");
                let outcome = store
                    .put(
                        at("ns", "m"),
                        value(mine.as_bytes()),
                        PutCondition::IfMatch(vec![current]),
                    )
                    .await
                    .unwrap();
                (outcome, mine)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (outcome, mine) = task.await.unwrap();
        match outcome {
            PutOutcome::Stored(_) => winners.push(mine),
            other => assert_eq!(other, PutOutcome::PreconditionFailed),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        read(&store, "m").await.as_deref(),
        Some(winners[0].as_bytes())
    );

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .put(
                        at("ns", "a"),
                        value(format!("{i}").as_bytes()),
                        PutCondition::IfAbsent,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            PutOutcome::Created(_) => created += 1,
            other => assert_eq!(other, PutOutcome::PreconditionFailed),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvs.db");
    let store = Arc::new(SqliteStore::open(&path, &options(&path)).unwrap());
    store.migrate().await.unwrap();

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = format!("k{i:03}");
                store
                    .put(
                        at("ns", &key),
                        value(format!("value {i}").as_bytes()),
                        PutCondition::Always,
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            PutOutcome::Stored(_)
        ));
    }
    drop(store);

    let store = SqliteStore::open(&path, &options(&path)).unwrap();
    assert!(store.migrate().await.unwrap().is_empty());
    for i in 0..200 {
        assert_eq!(
            read(&store, &format!("k{i:03}")).await,
            Some(format!("value {i}").into_bytes())
        );
    }
    assert_eq!(keys(&store, "ns", "k").await.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_lose_its_batch() {
    let (dir, store) = fresh().await;
    let store = Arc::new(store);
    // Reject one key from inside the database, as a constraint would.
    let raw = rusqlite::Connection::open(dir.path().join("kvs.db")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER reject BEFORE INSERT ON kvs WHEN NEW.key = 'bad' \
         BEGIN SELECT RAISE(ABORT, 'rejected by test trigger'); END;",
    )
    .unwrap();
    drop(raw);

    let tasks: Vec<_> = (0..2 * MAX_BATCH)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = if i % 50 == 25 {
                    "bad".to_owned()
                } else {
                    format!("good{i:03}")
                };
                let outcome = store
                    .put(at("ns", &key), value(b"v"), PutCondition::Always)
                    .await;
                (key, outcome)
            })
        })
        .collect();
    for task in tasks {
        let (key, outcome) = task.await.unwrap();
        if key == "bad" {
            let err = outcome.unwrap_err();
            assert!(matches!(err, StoreError::Internal(_)), "{err}");
            assert!(
                err.to_string().contains("rejected by test trigger"),
                "{err}"
            );
        } else {
            assert!(matches!(outcome.unwrap(), PutOutcome::Stored(_)), "{key}");
            assert!(read(&store, &key).await.is_some(), "{key} was acknowledged");
        }
    }
    assert_eq!(read(&store, "bad").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_batch_acknowledges_nothing() {
    let (dir, store) = fresh().await;
    let store = Arc::new(store);
    // RAISE(ROLLBACK) undoes the whole transaction, as a full disk would.
    let raw = rusqlite::Connection::open(dir.path().join("kvs.db")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER reject BEFORE INSERT ON kvs WHEN NEW.key = 'bad' \
         BEGIN SELECT RAISE(ROLLBACK, 'rolled back by test trigger'); END;",
    )
    .unwrap();
    drop(raw);

    let tasks: Vec<_> = (0..2 * MAX_BATCH)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = if i % 50 == 25 {
                    "bad".to_owned()
                } else {
                    format!("good{i:03}")
                };
                let outcome = store
                    .put(at("ns", &key), value(b"v"), PutCondition::Always)
                    .await;
                (key, outcome)
            })
        })
        .collect();
    for task in tasks {
        let (key, outcome) = task.await.unwrap();
        let stored = read(&store, &key).await.is_some();
        match outcome {
            Ok(outcome) => {
                assert!(matches!(outcome, PutOutcome::Stored(_)));
                assert!(stored, "{key} was acknowledged but is missing");
            }
            Err(_) => assert!(!stored, "{key} failed but was stored"),
        }
    }
    assert_eq!(read(&store, "bad").await, None);
}

#[tokio::test]
async fn a_held_write_lock_is_unavailable_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvs.db");
    let mut opts = options(&path);
    opts.statement_timeout = Duration::from_millis(300);
    let store = SqliteStore::open(&path, &opts).unwrap();
    store.migrate().await.unwrap();
    store
        .put(at("ns", "k"), value(b"before"), PutCondition::Always)
        .await
        .unwrap();

    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .put(at("ns", "k"), value(b"during"), PutCondition::Always)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    // Readers do not wait for the writer in WAL mode.
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"before"[..]));

    other.execute_batch("ROLLBACK").unwrap();
    store
        .put(at("ns", "k"), value(b"after"), PutCondition::Always)
        .await
        .unwrap();
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"after"[..]));
}

#[test]
fn open_under_a_regular_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a folder").unwrap();
    let path = file.join("x.db");
    let err = SqliteStore::open(&path, &options(&path)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("is not a folder"), "{text}");
}

#[test]
fn open_a_file_that_is_not_a_database_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&path, &options(&path)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not a database"), "{text}");
}

#[tokio::test]
async fn open_creates_missing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/kvs.db");
    let store = SqliteStore::open(&path, &options(&path)).unwrap();
    assert!(path.is_file());
    store.migrate().await.unwrap();
    store
        .put(at("ns", "k"), value(b"v"), PutCondition::Always)
        .await
        .unwrap();
    assert_eq!(read(&store, "k").await.as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn migration_status_and_idempotence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvs.db");
    let store = SqliteStore::open(&path, &options(&path)).unwrap();

    let status = store.migration_status().await.unwrap();
    assert_eq!(status.len(), MIGRATIONS.len());
    assert!(status.iter().all(|s| s.applied_at.is_none()), "{status:?}");
    assert!(
        store.get(at("ns", "k")).await.is_err(),
        "open does not migrate"
    );

    let applied = store.migrate().await.unwrap();
    let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(applied, names);
    assert!(store.migrate().await.unwrap().is_empty());

    let status = store.migration_status().await.unwrap();
    let versions: Vec<i64> = status.iter().map(|s| s.version).collect();
    let expected: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, expected);
    assert!(status.iter().all(|s| s.applied_at.is_some()), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvs.db");
    // Four instances opening one new file at once, as replicas starting together.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || SqliteStore::open(&path, &options(&path)))
        })
        .collect();
    let stores: Vec<Arc<SqliteStore>> = opens
        .into_iter()
        .map(|t| Arc::new(t.join().unwrap().unwrap()))
        .collect();

    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.unwrap().unwrap());
    }
    applied.sort();
    let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(applied, names, "each migration applied exactly once");

    let raw = rusqlite::Connection::open(&path).unwrap();
    let recorded: i64 = raw
        .query_row("SELECT count(*) FROM hulykvs_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, MIGRATIONS.len() as i64);
    for store in &stores {
        store
            .put(at("ns", "k"), value(b"v"), PutCondition::Always)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_finish_while_the_writer_is_busy() {
    let (_dir, store) = fresh().await;
    let store = Arc::new(store);
    store
        .put(at("ns", "r"), value(b"read me"), PutCondition::Always)
        .await
        .unwrap();
    let big = vec![7u8; 256 * 1024];
    let writers: Vec<_> = (0..64)
        .map(|i| {
            let store = Arc::clone(&store);
            let big = big.clone();
            tokio::spawn(async move {
                store
                    .put(
                        at("ns", &format!("w{i}")),
                        value(&big),
                        PutCondition::Always,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let readers: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..20 {
                    if i % 2 == 0 {
                        let entry = store.get(at("ns", "r")).await.unwrap().unwrap();
                        assert_eq!(entry.value.as_ref(), b"read me");
                    } else {
                        let listed = keys(&store, "ns", "r").await;
                        assert_eq!(listed, ["r"]);
                    }
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    for writer in writers {
        assert!(matches!(writer.await.unwrap(), PutOutcome::Stored(_)));
    }
    assert_eq!(keys(&store, "ns", "w").await.len(), 64);
}
