//! The server on PostgreSQL only: adopting the previous service's database,
//! a database that goes away and comes back, requests batched under load
//! (and queued behind a batch that cannot finish), batches planned once a
//! connection, and identical listings sharing a statement.

mod common;

use std::time::{Duration, Instant};

use common::metrics::{sample, scrape};
use common::pg;
use common::proxy::{upstream_of, Mode, Proxy};
use common::server::{start_on, start_with, Kind, DEFAULT_WS};
use reqwest::Method;

/// A database as the previous service (v0.3.2) leaves it: schema `hulykvs`,
/// table `kvs` without a content type, its history `migrations_pg` at version 5.
async fn prepare_legacy_database(url: &str) -> Vec<(String, String, Vec<u8>)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE SCHEMA hulykvs;
             CREATE TABLE hulykvs.kvs (
                 workspace UUID NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL,
                 md5 BYTEA NOT NULL, value BYTEA NOT NULL,
                 PRIMARY KEY (workspace, namespace, key));
             CREATE TABLE hulykvs.migrations_pg (version INT PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now());
             INSERT INTO hulykvs.migrations_pg (version) VALUES (1), (2), (3), (4), (5);",
        )
        .await
        .unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let rows = vec![
        (
            "calendar".to_owned(),
            "sync/user@example.com".to_owned(),
            b"{\"cursor\":42}".to_vec(),
        ),
        ("mail".to_owned(), "100% done + more".to_owned(), all_bytes),
        ("telegram".to_owned(), "сессия:1".to_owned(), Vec::new()),
        (
            "telegram".to_owned(),
            "a_b\\c".to_owned(),
            vec![0u8; 10_000],
        ),
    ];
    let ws: uuid::Uuid = DEFAULT_WS.parse().unwrap();
    for (ns, key, value) in &rows {
        let md5 = md5::compute(value).0.to_vec();
        client
            .execute(
                "INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value) VALUES ($1, $2, $3, $4, $5)",
                &[&ws, ns, key, &md5, value],
            )
            .await
            .unwrap();
    }
    rows
}

async fn history(url: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query("SELECT version::text || ' ' || applied::text FROM hulykvs.migrations_pg ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_the_previous_services_database() {
    let db = pg::fresh_database().await;
    let rows = prepare_legacy_database(&db.url).await;
    let before = history(&db.url).await;
    let s = start_on(Kind::Postgres, &db.url, &[]).await;
    for (ns, key, value) in &rows {
        let path = format!(
            "/api/{}/{}",
            hulykvs::wire::percent_encode(ns),
            hulykvs::wire::percent_encode(key)
        );
        let resp = s.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{ns}/{key}");
        assert_eq!(
            resp.headers()["etag"],
            format!("\"{:x}\"", md5::compute(value)).as_str()
        );
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            value.as_slice(),
            "{ns}/{key} byte for byte"
        );
    }
    let list: serde_json::Value = s
        .req(Method::GET, "/api/telegram")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list,
        serde_json::json!({"namespace": "telegram", "count": 2, "keys": ["a_b\\c", "сессия:1"]})
    );
    assert_eq!(
        history(&db.url).await,
        before,
        "the old history table is untouched"
    );
    // A second start finds nothing to do and still serves the data.
    drop(s);
    let s = start_on(Kind::Postgres, &db.url, &[]).await;
    let resp = s
        .req(Method::GET, "/api/calendar/sync%2Fuser%40example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"{\"cursor\":42}");
    assert_eq!(history(&db.url).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_recovers() {
    let db = pg::fresh_database().await;
    let proxy = Proxy::start(upstream_of(&db.url)).await;
    let flags = [
        "--db-connect-timeout",
        "1s",
        "--db-pool-timeout",
        "1s",
        "--db-statement-timeout",
        "2s",
    ];
    let s = start_on(Kind::Postgres, &proxy.url_for(&db.url), &flags).await;
    let path = "/api2/0b0b0b0b-1111-4222-8333-444444444444/ns/key";
    let resp = s
        .req(Method::PUT, path)
        .body("before")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        s.client
            .get(s.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    for mode in [Mode::Refuse, Mode::Blackhole] {
        proxy.set(mode);
        for method in [Method::GET, Method::PUT] {
            let started = Instant::now();
            let resp = s
                .req(method.clone(), path)
                .body("during")
                .send()
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(resp.status(), 503, "{mode:?} {method}");
            assert_eq!(resp.headers()["content-type"], "application/json");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "unavailable");
            assert!(
                took < Duration::from_secs(8),
                "{mode:?} {method}: answered in {took:?}"
            );
        }
        let resp = s.client.get(s.url("/readyz")).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{mode:?}: not ready");
        let resp = s.client.get(s.url("/livez")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{mode:?}: still alive");
    }

    proxy.set(Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = s
            .client
            .get(s.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if ready == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 20 s after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = s.req(Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        b"before",
        "the acknowledged write survived"
    );
    let resp = s.req(Method::PUT, path).body("after").send().await.unwrap();
    assert_eq!(resp.status(), 204);
}

/// The `sum` and `count` of the batch-size histogram of `operation`.
fn batch_sizes(metrics: &str, operation: &str) -> (f64, f64) {
    let value = |series: &str| {
        let name = format!("hulykvs_db_batch_size_{series}");
        sample(metrics, &name, &[("db_operation_name", operation)]).unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

/// Batches follow each other without a gap: the next batch's statement goes
/// out before the answers of the last reach their requests, and the pool
/// hands the busiest connection out first. Under a load that keeps the
/// lanes busy, every GET and PUT still gets its own answer: a read right
/// after a write sees that write, an `ETag` is its value's, and the
/// revisions of one client's writes only grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_back_to_back_answer_each_request_its_own() {
    let db = pg::fresh_database().await;
    let server = common::process::spawn_server(&[
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", common::server::SECRET),
    ]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let token = common::server::system_token();
    let base = server.url(&format!("/api2/{DEFAULT_WS}/busy/"));
    let mut clients = Vec::new();
    for c in 0..48 {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let mut last_revision = 0u64;
            for round in 0..30 {
                let key = format!("c{c}-k{}", round % 3);
                let value = format!("{c}/{round}/{}", "x".repeat(round));
                let put = client
                    .put(format!("{base}{key}"))
                    .bearer_auth(&token)
                    .body(value.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(put.status().is_success(), "PUT {key}: {}", put.status());
                let etag = format!("\"{:x}\"", md5::compute(&value));
                assert_eq!(put.headers()["etag"], etag.as_str(), "PUT {key}");
                let revision: u64 = put.headers()["huly-revision"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(revision > last_revision, "client {c}: revisions only grow");
                last_revision = revision;
                let get = client
                    .get(format!("{base}{key}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(get.status(), 200, "GET {key}");
                assert_eq!(get.headers()["etag"], etag.as_str(), "GET {key}");
                assert_eq!(get.text().await.unwrap(), value, "GET {key}");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let metrics = scrape(&server.url("/metrics")).await;
    // The load made batches of more than one request, back to back.
    for operation in ["get", "put"] {
        let (sum, count) = batch_sizes(&metrics, operation);
        assert!(
            count > 0.0 && sum > count,
            "{operation}: batches of {sum} requests in {count} statements"
        );
    }
}

/// Writes queued behind a batch that cannot finish answer `503` once they
/// have waited the pool timeout, as a request waiting for a pooled
/// connection would, and none of them is written later. Here the batch is a
/// plain PUT waiting on a row lock (its lane's one slot), the statement
/// timeout is 30 s, and the queued writes, of the same namespace and so the
/// same lane, must give up after the pool timeout of 1 s, not the statement's
/// 30.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_stuck_batch_answer_503_after_the_pool_timeout() {
    let s = start_with(
        Kind::Postgres,
        &[
            "--db-pool-size",
            "2",
            "--db-pool-timeout",
            "1s",
            "--db-statement-timeout",
            "30s",
        ],
    )
    .await;
    let key = |k: &str| format!("/api2/{DEFAULT_WS}/queued/{k}");
    let put = |k: &str, body: &str| s.req(Method::PUT, &key(k)).body(body.to_owned()).send();
    assert_eq!(put("locked", "original").await.unwrap().status(), 204);
    let locker = pg::side_connection(&s.db_url).await;
    pg::lock_row(&locker, "queued", "locked").await;

    let blocked = tokio::spawn(put("locked", "blocked"));
    // Asked outside a transaction, where the PUT's session shows even if the
    // pool opened it after the first look (see `pg::lock_waiters`).
    let watcher = pg::side_connection(&s.db_url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg::lock_waiters(&watcher).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the first write never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let queued: Vec<_> = (0..3)
        .map(|i| tokio::spawn(put(&format!("q{i}"), "queued")))
        .collect();
    for write in queued {
        let resp = write.await.unwrap().unwrap();
        assert_eq!(
            resp.status(),
            503,
            "a queued write after {:?}",
            started.elapsed()
        );
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "unavailable");
    }
    // Each waited the pool timeout from when it was queued, after `started`.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "the queued writes gave up after {took:?}"
    );
    assert!(
        !blocked.is_finished(),
        "the first write still waits on the lock"
    );

    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap().status(), 204);
    let got = s.req(Method::GET, &key("locked")).send().await.unwrap();
    assert_eq!(got.text().await.unwrap(), "blocked");
    for i in 0..3 {
        let got = s
            .req(Method::GET, &key(&format!("q{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 404, "q{i} was answered 503 and never written");
    }
    // The lane serves again.
    assert_eq!(put("after", "x").await.unwrap().status(), 204);
}

/// How many times PostgreSQL planned the statement `sql`, prepared on
/// `client`, for its values (custom plans) and once for all (the generic
/// plan): `pg_prepared_statements` counts both from PostgreSQL 14.
async fn plans(client: &tokio_postgres::Client, sql: &str) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&sql],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_prepared_statements (PostgreSQL 14 or later): {e}"));
    (row.get(0), row.get(1))
}

/// A batch's plan never depends on what it binds, so every connection
/// should plan it once: after PostgreSQL's five custom plans, the generic
/// plan, even when every batch is small. With the arrays' lengths in sight
/// of the planner, a batch of two keys looked cheaper planned for its
/// values than the generic plan's guess of ten rows, and a connection
/// planned every batch afresh (twice the database's CPU a GET, issue #29).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_planned_once_a_connection_however_small() {
    let s = start_with(Kind::Postgres, &[]).await;
    let [read, upsert] = hulykvs::store::postgres::batch_statements("hulykvs");
    let client = pg::side_connection(&s.db_url).await;
    let ws: uuid::Uuid = DEFAULT_WS.parse().unwrap();
    let workspaces = vec![ws; 2];
    let namespaces = vec!["plans"; 2];
    let (read_sql, upsert_sql) = (
        client.prepare(&read).await.unwrap(),
        client.prepare(&upsert).await.unwrap(),
    );
    let md5s = vec![vec![0u8; 16]; 2];
    let values = vec![b"v".to_vec(); 2];
    let types = vec!["text/plain"; 2];
    let none: Vec<Option<i64>> = vec![None; 2];
    let key_ids: Vec<Option<&str>> = vec![None; 2];
    for round in 0..12 {
        let keys = vec![format!("a{round}"), format!("b{round}")];
        let written = client
            .query(
                &upsert_sql,
                &[
                    &workspaces,
                    &namespaces,
                    &keys,
                    &md5s,
                    &values,
                    &types,
                    &none,
                    &none,
                    &key_ids,
                ],
            )
            .await
            .unwrap();
        assert_eq!(written.len(), 2, "round {round}");
        let read = client
            .query(&read_sql, &[&workspaces, &namespaces, &keys])
            .await
            .unwrap();
        assert_eq!(read.len(), 2, "round {round}");
    }
    let version = pg::server_version(&client).await;
    // PostgreSQL 13 does not count plans; the estimate below is checked on every version.
    if version >= 140000 {
        for (name, sql) in [("read", &read), ("upsert", &upsert)] {
            assert_eq!(
                plans(&client, sql).await,
                (5, 7),
                "the batched {name}'s (custom, generic) plans in 12 batches of 2"
            );
        }
    }
    // The plan the next batch of two keys gets guesses ten rows, as the
    // generic plan does; a custom plan that saw the arrays guessed two.
    let name: String = client
        .query_one(
            "SELECT name FROM pg_prepared_statements WHERE statement = $1",
            &[&read],
        )
        .await
        .unwrap()
        .get(0);
    let plan = pg::plan(
        &client,
        &format!("EXPLAIN EXECUTE {name}('{{{ws},{ws}}}', '{{plans,plans}}', '{{a0,b0}}')"),
    )
    .await;
    let unnest = plan
        .lines()
        .find(|line| line.contains("Function Scan"))
        .unwrap_or_else(|| panic!("no unnest in the plan:\n{plan}"));
    assert!(unnest.contains(" rows=10 "), "{plan}");
}

/// Key `k` of 900 bytes, which sorts before `k0000`.
fn long_key(k: usize) -> String {
    format!("a{k:04}{}", "p".repeat(895))
}

/// Identical listings waiting for a connection share one statement, and
/// each still sees every write acknowledged before it was sent: the shared
/// statement goes out only after every listing it answers arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_listings_share_a_statement_and_see_every_acknowledged_write() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const KEYS: usize = 60;
    const FILL: usize = 800;
    let db = pg::fresh_database().await;
    // Two connections: the listings queue for them, and a write commits
    // while a listing runs.
    let server = common::process::spawn_server(&[
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", common::server::SECRET),
        ("HULY_DB_POOL_SIZE", "2"),
    ]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let token = common::server::system_token();
    let base = server.url(&format!("/api2/{DEFAULT_WS}/shared"));
    // Long keys before the written ones make each listing's statement long
    // enough for writes to commit while it runs.
    let mut fill = Vec::new();
    for part in 0..FILL / 100 {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        fill.push(tokio::spawn(async move {
            for k in part * 100..(part + 1) * 100 {
                let put = client
                    .put(format!("{base}/{}", long_key(k)))
                    .bearer_auth(&token)
                    .body("v")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(put.status(), 204, "PUT a{k:04}…");
            }
        }));
    }
    for part in fill {
        part.await.unwrap();
    }
    let filled: Vec<String> = (0..FILL).map(long_key).collect();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, token, base, acknowledged) = (
            client.clone(),
            token.clone(),
            base.clone(),
            Arc::clone(&acknowledged),
        );
        tokio::spawn(async move {
            for k in 0..KEYS {
                let put = client
                    .put(format!("{base}/k{k:04}"))
                    .bearer_auth(&token)
                    .body("v")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(put.status(), 204, "PUT k{k:04}");
                acknowledged.store(k + 1, Ordering::SeqCst);
            }
        })
    };
    let mut listers = Vec::new();
    for l in 0..24 {
        let (client, token, base, acknowledged, filled) = (
            client.clone(),
            token.clone(),
            base.clone(),
            Arc::clone(&acknowledged),
            filled.clone(),
        );
        listers.push(tokio::spawn(async move {
            let mut last = 0;
            while last < KEYS {
                let before = acknowledged.load(Ordering::SeqCst);
                let resp = client
                    .get(format!("{base}?limit=1000"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "lister {l}");
                let mut keys = common::server::keys_in(&resp.json().await.unwrap());
                let written = keys.split_off(FILL.min(keys.len()));
                assert_eq!(keys, filled, "lister {l}: the keys filled first");
                let keys = written;
                let want: Vec<String> = (0..keys.len()).map(|k| format!("k{k:04}")).collect();
                assert_eq!(keys, want, "lister {l}: the keys written, in order");
                assert!(
                    keys.len() >= before,
                    "lister {l}: {} keys listed, {before} acknowledged before the listing was sent",
                    keys.len()
                );
                assert!(keys.len() >= last, "lister {l}: a later listing lost keys");
                last = keys.len();
            }
        }));
    }
    writer.await.unwrap();
    for lister in listers {
        lister.await.unwrap();
    }
    let metrics = scrape(&server.url("/metrics")).await;
    let (sum, count) = batch_sizes(&metrics, "list");
    assert!(
        count > 0.0 && sum > 2.0 * count,
        "listings shared statements: {sum} listings in {count} shared statements"
    );
}
