//! `PgStore` against a real PostgreSQL, a fresh database per test: adopting
//! the previous service's database, every write and delete condition, byte
//! order, races between writers and between migrating instances, and a
//! database that cannot be reached.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pg;
use hulykvs::config::{DbOptions, DbTarget};
use hulykvs::store::postgres::POSTGRES_MIGRATIONS;
use hulykvs::store::{
    DeleteCondition, DeleteOutcome, Digest, ItemRef, ListQuery, NewValue, PgStore, PutCondition,
    PutOutcome, Store, StoreError,
};
use uuid::Uuid;

const LEGACY_WS: &str = "11111111-2222-3333-4444-555555555555";
const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

fn options(url: &str) -> DbOptions {
    DbOptions {
        target: DbTarget::Postgres(url.to_owned()),
        schema: "hulykvs".to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        pool_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(10),
    }
}

/// A migrated store on a fresh database.
async fn migrated_store(pool_size: usize) -> (pg::TestDb, PgStore) {
    let db = pg::fresh_database().await;
    let store = PgStore::open(
        &db.url,
        &DbOptions {
            pool_size,
            ..options(&db.url)
        },
    )
    .unwrap();
    store.migrate().await.unwrap();
    (db, store)
}

fn ws(text: &str) -> Uuid {
    text.parse().unwrap()
}

fn item<'a>(workspace: &str, namespace: &'a str, key: &'a str) -> ItemRef<'a> {
    ItemRef {
        workspace: ws(workspace),
        namespace,
        key,
    }
}

fn value(bytes: &[u8]) -> NewValue {
    NewValue::new(Bytes::copy_from_slice(bytes), "text/plain".to_owned())
}

fn md5(bytes: &[u8]) -> Digest {
    md5::compute(bytes).0
}

fn all_names() -> Vec<String> {
    POSTGRES_MIGRATIONS
        .iter()
        .map(|m| m.name.to_owned())
        .collect()
}

/// Rows as the previous service wrote them: (namespace, key, value).
fn legacy_rows() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "calendar",
            "sync/user@example.com",
            b"{\"cursor\":42}".to_vec(),
        ),
        ("mail", "all bytes", (0..=255u8).collect()),
        ("mail", "empty", Vec::new()),
        ("mail", "100% done_ok", b"percent and underscore".to_vec()),
        ("telegram", "сессия:1+2", "значение".as_bytes().to_vec()),
        ("telegram", "with space/and:colon", vec![0u8; 70_000]),
        ("telegram", "a\\b", b"backslash".to_vec()),
        ("emoji", "🔑", b"\xff\xfe\x00".to_vec()),
    ]
}

/// Prepares a database exactly as the previous service (v0.3.2, refinery
/// history in `migrations_pg`) leaves it.
async fn prepare_legacy_database(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE SCHEMA hulykvs;
             CREATE TABLE hulykvs.kvs (
                 workspace UUID NOT NULL,
                 namespace TEXT NOT NULL,
                 key TEXT NOT NULL,
                 md5 BYTEA NOT NULL,
                 value BYTEA NOT NULL,
                 PRIMARY KEY (workspace, namespace, key));
             CREATE TABLE hulykvs.migrations_pg (
                 version INT4 PRIMARY KEY,
                 name VARCHAR(255),
                 applied_on VARCHAR(255),
                 checksum VARCHAR(255));
             INSERT INTO hulykvs.migrations_pg VALUES
                 (1, 'initial', '2025-03-01T10:00:00Z', '1111'),
                 (2, 'workspace_uuid', '2025-04-01T10:00:00Z', '2222'),
                 (3, 'workspace_uuid', '2025-04-02T10:00:00Z', '3333'),
                 (4, 'workspace_uuid', '2025-04-03T10:00:00Z', '4444'),
                 (5, 'workspace_uuid', '2025-05-01T10:00:00Z', '5555');",
        )
        .await
        .unwrap();
    for (namespace, key, value) in legacy_rows() {
        client
            .execute(
                "INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&ws(LEGACY_WS), &namespace, &key, &&md5(&value)[..], &value],
            )
            .await
            .unwrap();
    }
}

/// Everything in a table, as text, in a stable order.
async fn dump(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            &format!("SELECT t::TEXT FROM {table} t ORDER BY t::TEXT COLLATE \"C\""),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn columns(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::TEXT || ' ' || data_type::TEXT || ' ' || is_nullable::TEXT \
             FROM information_schema.columns \
             WHERE table_schema = 'hulykvs' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn recorded_versions(client: &tokio_postgres::Client) -> Vec<(i64, String)> {
    client
        .query(
            "SELECT version, name FROM hulykvs.hulykvs_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_adopts_the_old_database_in_place() {
    let db = pg::fresh_database().await;
    let client = db.connect().await;
    prepare_legacy_database(&client).await;
    let history_before = dump(&client, "hulykvs.migrations_pg").await;
    let history_columns = columns(&client, "migrations_pg").await;
    let kvs_before = dump(&client, "hulykvs.kvs").await;
    assert_eq!(history_before.len(), 5);

    let store = PgStore::open(&db.url, &options(&db.url)).unwrap();
    assert_eq!(store.migrate().await.unwrap(), all_names());
    assert_eq!(store.backend(), "postgres");

    for (namespace, key, value) in legacy_rows() {
        let entry = store
            .get(item(LEGACY_WS, namespace, key))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{namespace}/{key} is gone"));
        assert_eq!(
            entry.value.as_ref(),
            value.as_slice(),
            "{namespace}/{key} byte for byte"
        );
        assert_eq!(entry.md5, md5(&value), "{namespace}/{key}");
        assert_eq!(
            entry.content_type, None,
            "{namespace}/{key} has no stored type"
        );
    }
    // Old rows keep every column as it was; the new column reads NULL.
    let kvs_after: Vec<String> = client
        .query(
            "SELECT (workspace, namespace, key, md5, value)::TEXT FROM hulykvs.kvs \
             ORDER BY (workspace, namespace, key, md5, value)::TEXT COLLATE \"C\"",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kvs_after, kvs_before);
    let untyped: i64 = client
        .query_one(
            "SELECT count(*) FROM hulykvs.kvs WHERE content_type IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(untyped, legacy_rows().len() as i64);

    assert_eq!(dump(&client, "hulykvs.migrations_pg").await, history_before);
    assert_eq!(columns(&client, "migrations_pg").await, history_columns);
    let expected: Vec<(i64, String)> = POSTGRES_MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(recorded_versions(&client).await, expected);

    // Again, from the same and from a new instance: nothing left to apply,
    // and the new instance serves the data.
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    let again = PgStore::open(&db.url, &options(&db.url)).unwrap();
    assert_eq!(again.migrate().await.unwrap(), Vec::<String>::new());
    let keys = again
        .list(ListQuery {
            workspace: ws(LEGACY_WS),
            namespace: "telegram",
            prefix: "",
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(keys, ["a\\b", "with space/and:colon", "сессия:1+2"]);
    assert_eq!(dump(&client, "hulykvs.migrations_pg").await, history_before);
    assert_eq!(recorded_versions(&client).await, expected);
}

#[tokio::test]
async fn status_lists_pending_then_applied_and_creates_nothing() {
    let db = pg::fresh_database().await;
    let store = PgStore::open(&db.url, &options(&db.url)).unwrap();
    let before = store.migration_status().await.unwrap();
    assert_eq!(
        before
            .iter()
            .map(|s| (s.version, s.name.clone(), s.applied_at.is_some()))
            .collect::<Vec<_>>(),
        POSTGRES_MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name.to_owned(), false))
            .collect::<Vec<_>>()
    );
    let client = db.connect().await;
    let schemas: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'hulykvs'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0, "--status must not create the schema");

    store.migrate().await.unwrap();
    let after = store.migration_status().await.unwrap();
    assert_eq!(after.len(), POSTGRES_MIGRATIONS.len());
    for state in &after {
        assert!(state.applied_at.is_some(), "{state}");
        assert!(state.to_string().starts_with("applied"), "{state}");
    }
}

#[tokio::test]
async fn custom_schema_is_folded_as_unquoted_and_holds_everything() {
    let db = pg::fresh_database().await;
    let opts = DbOptions {
        schema: "Tenant_1".to_owned(),
        ..options(&db.url)
    };
    let store = PgStore::open(&db.url, &opts).unwrap();
    store.migrate().await.unwrap();
    let outcome = store
        .put(item(WS, "ns", "k"), value(b"v"), PutCondition::Always)
        .await
        .unwrap();
    assert!(matches!(outcome, PutOutcome::Stored(_)));
    let client = db.connect().await;
    let tables: Vec<String> = client
        .query(
            "SELECT schemaname::TEXT || '.' || tablename::TEXT FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "tenant_1.hulykvs_migration_lock",
            "tenant_1.hulykvs_migrations",
            "tenant_1.kvs",
            "tenant_1.kvs_change",
            "tenant_1.kvs_revision"
        ]
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM tenant_1.kvs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn data_operations_wait_for_migrations() {
    let db = pg::fresh_database().await;
    let store = PgStore::open(&db.url, &options(&db.url)).unwrap();
    let not_yet = |e: StoreError| matches!(e, StoreError::Unavailable(ref m) if m == "database not migrated yet");
    assert!(not_yet(store.get(item(WS, "ns", "k")).await.unwrap_err()));
    assert!(not_yet(
        store
            .put(item(WS, "ns", "k"), value(b"v"), PutCondition::Always)
            .await
            .unwrap_err()
    ));
    assert!(not_yet(
        store
            .delete(item(WS, "ns", "k"), DeleteCondition::Always)
            .await
            .unwrap_err()
    ));
    assert!(not_yet(
        store
            .list(ListQuery {
                workspace: ws(WS),
                namespace: "ns",
                prefix: "",
                after: None,
                limit: 10
            })
            .await
            .unwrap_err()
    ));
    assert!(
        not_yet(store.ping().await.unwrap_err()),
        "/readyz needs migrations"
    );
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert!(store.get(item(WS, "ns", "k")).await.unwrap().is_none());
}

#[tokio::test]
async fn put_conditions() {
    let (_db, store) = migrated_store(4).await;
    let at = item(WS, "ns", "key");
    let stored = |expected: &[u8]| {
        let store = &store;
        let expected = expected.to_vec();
        async move {
            let entry = store.get(at).await.unwrap().expect("stored");
            assert_eq!(entry.value.as_ref(), expected.as_slice());
            assert_eq!(entry.md5, md5(&expected));
            entry
        }
    };

    // IfExists and IfMatch never create.
    let put = |bytes: &'static [u8], cond: PutCondition| store.put(at, value(bytes), cond);
    assert_eq!(
        put(b"x", PutCondition::IfExists).await.unwrap(),
        PutOutcome::PreconditionFailed
    );
    assert_eq!(
        put(b"x", PutCondition::IfMatch(vec![md5(b"x")]))
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    assert!(store.get(at).await.unwrap().is_none());

    assert!(matches!(
        put(b"one", PutCondition::IfAbsent).await.unwrap(),
        PutOutcome::Created(_)
    ));
    assert_eq!(
        put(b"two", PutCondition::IfAbsent).await.unwrap(),
        PutOutcome::PreconditionFailed
    );
    let entry = stored(b"one").await;
    assert_eq!(entry.content_type.as_deref(), Some("text/plain"));

    assert!(matches!(
        put(b"two", PutCondition::IfExists).await.unwrap(),
        PutOutcome::Stored(_)
    ));
    stored(b"two").await;

    assert_eq!(
        put(b"3", PutCondition::IfMatch(vec![])).await.unwrap(),
        PutOutcome::PreconditionFailed
    );
    assert_eq!(
        put(b"3", PutCondition::IfMatch(vec![md5(b"one")]))
            .await
            .unwrap(),
        PutOutcome::PreconditionFailed
    );
    stored(b"two").await;
    assert!(matches!(
        put(b"3", PutCondition::IfMatch(vec![md5(b"one"), md5(b"two")]))
            .await
            .unwrap(),
        PutOutcome::Stored(_)
    ));
    stored(b"3").await;

    let typed = NewValue::new(Bytes::new(), "application/json; charset=utf-8".to_owned());
    assert!(matches!(
        store.put(at, typed, PutCondition::Always).await.unwrap(),
        PutOutcome::Stored(_)
    ));
    let entry = stored(b"").await;
    assert_eq!(
        entry.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );

    // Always creates too, and every byte value survives.
    let all: Vec<u8> = (0..=255u8).rev().collect();
    let other = item(WS, "ns", "other");
    assert!(matches!(
        store
            .put(other, value(&all), PutCondition::Always)
            .await
            .unwrap(),
        PutOutcome::Stored(_)
    ));
    assert_eq!(
        store.get(other).await.unwrap().unwrap().value.as_ref(),
        all.as_slice()
    );
}

#[tokio::test]
async fn delete_conditions() {
    let (_db, store) = migrated_store(4).await;
    let at = item(WS, "ns", "key");
    let delete = |cond: DeleteCondition| store.delete(at, cond);
    let put = || store.put(at, value(b"v"), PutCondition::Always);

    assert_eq!(
        delete(DeleteCondition::Always).await.unwrap(),
        DeleteOutcome::NotFound
    );
    assert_eq!(
        delete(DeleteCondition::IfExists).await.unwrap(),
        DeleteOutcome::PreconditionFailed
    );
    assert_eq!(
        delete(DeleteCondition::IfMatch(vec![md5(b"v")]))
            .await
            .unwrap(),
        DeleteOutcome::PreconditionFailed
    );

    put().await.unwrap();
    assert!(matches!(
        delete(DeleteCondition::Always).await.unwrap(),
        DeleteOutcome::Deleted(_)
    ));
    assert!(store.get(at).await.unwrap().is_none());

    put().await.unwrap();
    assert!(matches!(
        delete(DeleteCondition::IfExists).await.unwrap(),
        DeleteOutcome::Deleted(_)
    ));
    assert!(store.get(at).await.unwrap().is_none());

    put().await.unwrap();
    assert_eq!(
        delete(DeleteCondition::IfMatch(vec![])).await.unwrap(),
        DeleteOutcome::PreconditionFailed
    );
    assert_eq!(
        delete(DeleteCondition::IfMatch(vec![md5(b"w")]))
            .await
            .unwrap(),
        DeleteOutcome::PreconditionFailed
    );
    assert!(
        store.get(at).await.unwrap().is_some(),
        "a failed condition deletes nothing"
    );
    assert!(matches!(
        delete(DeleteCondition::IfMatch(vec![md5(b"w"), md5(b"v")]))
            .await
            .unwrap(),
        DeleteOutcome::Deleted(_)
    ));
    assert!(store.get(at).await.unwrap().is_none());
}

async fn list(
    store: &PgStore,
    workspace: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    store
        .list(ListQuery {
            workspace: ws(workspace),
            namespace: "ns",
            prefix,
            after,
            limit,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn listing_is_in_byte_order_with_literal_prefixes() {
    let (db, store) = migrated_store(4).await;
    let client = db.connect().await;
    let version = pg::server_version(&client).await;
    if version >= 150000 {
        // The test database sorts linguistically, so byte order is the store's doing.
        let natural: Vec<String> = client
            .query_one(
                "SELECT array_agg(k ORDER BY k) FROM unnest(ARRAY['B', 'a']) k",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(natural, ["a", "B"]);
    }

    let keys = [
        "B",
        "a",
        "é",
        "z",
        "a%",
        "a%b",
        "a_",
        "a_b",
        "a\\",
        "a\\b",
        "aXb",
        "ab",
        "a b",
        "\u{10FFFF}x",
        "\u{10FFFF}",
    ];
    for key in keys {
        store
            .put(
                item(WS, "ns", key),
                value(key.as_bytes()),
                PutCondition::Always,
            )
            .await
            .unwrap();
    }
    // Same keys elsewhere must never show up.
    store
        .put(
            item(LEGACY_WS, "ns", "a"),
            value(b"x"),
            PutCondition::Always,
        )
        .await
        .unwrap();
    store
        .put(item(WS, "other", "a"), value(b"x"), PutCondition::Always)
        .await
        .unwrap();

    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(list(&store, WS, "", None, 100).await, sorted);
    assert_eq!(sorted[..3], ["B", "a", "a b"]);

    assert_eq!(list(&store, WS, "a%", None, 100).await, ["a%", "a%b"]);
    assert_eq!(list(&store, WS, "a_", None, 100).await, ["a_", "a_b"]);
    assert_eq!(list(&store, WS, "a\\", None, 100).await, ["a\\", "a\\b"]);
    assert_eq!(list(&store, WS, "é", None, 100).await, ["é"]);
    assert_eq!(
        list(&store, WS, "\u{10FFFF}", None, 100).await,
        ["\u{10FFFF}", "\u{10FFFF}x"]
    );
    assert_eq!(
        list(&store, WS, "nothing", None, 100).await,
        Vec::<String>::new()
    );
    assert_eq!(list(&store, WS, "", None, 0).await, Vec::<String>::new());
    assert_eq!(list(&store, LEGACY_WS, "", None, 100).await, ["a"]);

    // Pages of 4 after the last key returned add up to the whole listing.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list(&store, WS, "", after.as_deref(), 4).await;
        assert!(page.len() <= 4);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, sorted);
    assert_eq!(
        list(&store, WS, "a", Some("a\\"), 100).await,
        ["a\\b", "a_", "a_b", "ab"]
    );
    assert_eq!(list(&store, WS, "a", Some("a\\"), 2).await, ["a\\b", "a_"]);
}

#[tokio::test]
async fn listing_reads_keys_and_expiry_from_the_bytewise_index() {
    let (db, _store) = migrated_store(1).await;
    let client = db.connect().await;
    for index in ["kvs_key_bytewise", "kvs_key_live"] {
        let valid: bool = client
            .query_one(
                &format!("SELECT indisvalid FROM pg_index WHERE indexrelid = 'hulykvs.{index}'::regclass"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(valid, "{index}");
    }
    client
        .batch_execute(
            "INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value) \
             SELECT '0b0b0b0b-1111-4222-8333-444444444444', 'ns', 'a' || i, '\\x00', '\\x00' \
             FROM generate_series(1, 2000) AS i",
        )
        .await
        .unwrap();
    // Separate statements: VACUUM refuses to run inside a batch.
    for statement in ["VACUUM ANALYZE hulykvs.kvs", "SET enable_seqscan = off"] {
        client.batch_execute(statement).await.unwrap();
    }
    // A listing's statement: live keys only, in byte order.
    let plan = pg::plan(
        &client,
        "EXPLAIN SELECT key FROM hulykvs.kvs WHERE workspace = '0b0b0b0b-1111-4222-8333-444444444444' \
         AND namespace = 'ns' AND key COLLATE \"C\" >= 'a' AND key COLLATE \"C\" < 'b' \
         AND (expire_at IS NULL OR expire_at > now()) ORDER BY key COLLATE \"C\" LIMIT 10",
    )
    .await;
    assert!(
        plan.contains("Index Only Scan using kvs_key_live"),
        "{plan}"
    );
    assert!(!plan.contains("Sort"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_conditional_writes_have_one_winner() {
    let (_db, store) = migrated_store(16).await;
    let store = Arc::new(store);
    let at = || item(WS, "race", "key");
    store
        .put(at(), value(b"start"), PutCondition::Always)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mine = format!("writer {i}");
            let outcome = store
                .put(
                    at(),
                    value(mine.as_bytes()),
                    PutCondition::IfMatch(vec![md5(b"start")]),
                )
                .await
                .unwrap();
            (outcome, mine)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (outcome, mine) = task.await.unwrap();
        match outcome {
            PutOutcome::Stored(_) => winners.push(mine),
            PutOutcome::PreconditionFailed => {}
            PutOutcome::Created(_) => panic!("IfMatch never creates"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let entry = store.get(at()).await.unwrap().unwrap();
    assert_eq!(entry.value.as_ref(), winners[0].as_bytes());

    let fresh = || item(WS, "race", "fresh");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .put(
                    fresh(),
                    value(format!("creator {i}").as_bytes()),
                    PutCondition::IfAbsent,
                )
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            PutOutcome::Created(_) => created += 1,
            PutOutcome::PreconditionFailed => {}
            PutOutcome::Stored(_) => panic!("IfAbsent reports Created"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_run_each_migration_once() {
    // Several rounds: a race that goes well by luck once rarely does thrice.
    for _ in 0..3 {
        let db = pg::fresh_database().await;
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let store = PgStore::open(&db.url, &options(&db.url)).unwrap();
            tasks.push(tokio::spawn(async move { store.migrate().await }));
        }
        let mut applied = Vec::new();
        for task in tasks {
            applied.extend(task.await.unwrap().unwrap());
        }
        applied.sort();
        assert_eq!(
            applied,
            all_names(),
            "each migration applied by exactly one instance"
        );
        let client = db.connect().await;
        let expected: Vec<(i64, String)> = POSTGRES_MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name.to_owned()))
            .collect();
        assert_eq!(recorded_versions(&client).await, expected);
        let leases: i64 = client
            .query_one("SELECT count(*) FROM hulykvs.hulykvs_migration_lock", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(leases, 0, "every lease released");
    }
}

#[test]
fn concurrent_migrate_processes_run_each_migration_once() {
    let db = pg::fresh_database_blocking();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_hulykvs"))
                .arg("migrate")
                .env("HULY_DB_CONNECTION", &db.url)
                .env_remove("HULY_DB_SCHEME")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "hulykvs migrate: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let recorded = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let client = db.connect().await;
                recorded_versions(&client).await
            })
    })
    .join()
    .unwrap();
    let expected: Vec<(i64, String)> = POSTGRES_MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(recorded, expected);
}

fn unreachable_options(url: &str) -> DbOptions {
    DbOptions {
        connect_timeout: Duration::from_secs(1),
        pool_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
        ..options(url)
    }
}

/// Asserts `work` fails with `Unavailable` within the connect timeout plus a margin.
async fn unavailable_in_time<T: std::fmt::Debug>(
    what: &str,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let outcome = work.await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{what}: {outcome:?}"
    );
    assert!(took < Duration::from_millis(2500), "{what} took {took:?}");
}

#[tokio::test]
async fn closed_port_is_unavailable() {
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    let store = PgStore::open(url, &unreachable_options(url)).expect("open does not connect");
    unavailable_in_time("migrate", store.migrate()).await;
    unavailable_in_time("migration_status", store.migration_status()).await;
    unavailable_in_time("ping", store.ping()).await;
    unavailable_in_time("get", store.get(item(WS, "ns", "k"))).await;
}

#[tokio::test]
async fn silent_server_is_unavailable_after_the_connect_timeout() {
    // Accepts connections and never answers, like a database host that hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let store = PgStore::open(&url, &unreachable_options(&url)).unwrap();
    unavailable_in_time("migrate", store.migrate()).await;
    unavailable_in_time("ping", store.ping()).await;
    holder.abort();
}
