//! The server on PostgreSQL only: adopting the previous service's database,
//! a database that goes away and comes back, and requests batched under load.

mod common;

use std::time::{Duration, Instant};

use common::metrics::{sample, scrape};
use common::pg;
use common::proxy::{upstream_of, Mode, Proxy};
use common::server::{start_on, Kind, DEFAULT_WS};
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
