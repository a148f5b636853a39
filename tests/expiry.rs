//! Expiry (SPEC §11, issue #12) on both stores: values written with
//! `Huly-TTL` or `Huly-Expire-At` are gone for every reader and condition
//! from their instant; the headers are checked; conditional writes racing an
//! expiry stay atomic; and the sweeper removes what expired, once, also with
//! two instances sweeping one PostgreSQL database.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::metrics::{sample, scrape};
use common::pg;
use common::process::{run_hulykvs, spawn_server, spawn_sqlite_server, ServerProcess};
use common::server::{keys_in, start, start_with, Kind, TestServer};
use hulykvs::auth::now_secs;
use reqwest::{Method, StatusCode};

const WS: &str = "0a0a0a0a-1111-4222-8333-444455556666";
const SECRET: &str = "expiry-secret";

suite!(
    an_expired_value_is_gone_for_every_reader_and_condition,
    a_write_without_expiry_clears_it,
    expiry_headers_are_checked,
    racing_inserts_over_an_expired_value_make_one_winner,
);

fn k(key: &str) -> String {
    format!("/api2/{WS}/ns/{key}")
}

async fn put(s: &TestServer, key: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = s.req(Method::PUT, &k(key)).body("v");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<i64> {
    resp.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn keys(s: &TestServer, query: &str) -> Vec<String> {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    keys_in(&body)
}

async fn an_expired_value_is_gone_for_every_reader_and_condition(kind: Kind) {
    let s = start(kind).await;
    assert_eq!(put(&s, "stays", &[]).await.status(), 204);
    let written = put(&s, "short", &[("Huly-TTL", "1")]).await;
    assert_eq!(written.status(), 204);
    let etag = written.headers()["etag"].to_str().unwrap().to_owned();
    let resp = s.req(Method::GET, &k("short")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "huly-ttl"), Some(1));
    let at = header(&resp, "huly-expire-at").expect("Huly-Expire-At");
    let now = now_secs() as i64;
    assert!((now..=now + 2).contains(&at), "{at} vs {now}");
    let head = s.req(Method::HEAD, &k("short")).send().await.unwrap();
    assert_eq!(header(&head, "huly-expire-at"), Some(at));
    assert_eq!(keys(&s, "").await, ["short", "stays"]);
    // A key after "stays" that expires with "short": a full page then ends
    // the listing, with no cursor to a key nobody can read.
    assert_eq!(put(&s, "tail", &[("Huly-TTL", "1")]).await.status(), 204);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        s.req(Method::GET, &k("short"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        s.req(Method::HEAD, &k("short"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(keys(&s, "").await, ["stays"]);
    assert_eq!(keys(&s, "?limit=1").await, ["stays"]);
    let page: serde_json::Value = s
        .req(Method::GET, &format!("/api2/{WS}/ns?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page.get("cursor").is_none(), "{page}");
    let cursor = hulykvs::wire::encode_cursor("a");
    assert_eq!(
        keys(&s, &format!("?limit=1&cursor={cursor}")).await,
        ["stays"]
    );
    for (name, value) in [("If-Match", etag.as_str()), ("If-Match", "*")] {
        let resp = put(&s, "short", &[(name, value)]).await;
        assert_eq!(resp.status(), 412, "{name}: {value}");
    }
    let delete = s.req(Method::DELETE, &k("short")).send().await.unwrap();
    assert_eq!(delete.status(), 404);
    let again = put(&s, "short", &[("If-None-Match", "*")]).await;
    assert_eq!(again.status(), 201, "an expired value is absent");
    let resp = s.req(Method::GET, &k("short")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("huly-ttl").is_none(),
        "written without expiry"
    );

    // The legacy API takes the headers too.
    let at = now_secs() + 100;
    let legacy = s
        .req(Method::POST, "/api/ns/legacy")
        .header("Huly-Expire-At", at.to_string())
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 204);
    let resp = s.req(Method::GET, "/api/ns/legacy").send().await.unwrap();
    assert_eq!(header(&resp, "huly-expire-at"), Some(at as i64));
}

async fn a_write_without_expiry_clears_it(kind: Kind) {
    let s = start(kind).await;
    assert_eq!(put(&s, "k", &[("Huly-TTL", "1")]).await.status(), 204);
    assert_eq!(put(&s, "k", &[]).await.status(), 204);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let resp = s.req(Method::GET, &k("k")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("huly-expire-at").is_none());
    // And a conditional write with a TTL sets one.
    let resp = put(&s, "k", &[("If-Match", "*"), ("Huly-TTL", "30")]).await;
    assert_eq!(resp.status(), 204);
    let resp = s.req(Method::GET, &k("k")).send().await.unwrap();
    assert!(header(&resp, "huly-ttl").is_some_and(|t| (29..=30).contains(&t)));
}

async fn expiry_headers_are_checked(kind: Kind) {
    let s = start_with(kind, &["--max-ttl", "1h"]).await;
    let now = now_secs();
    let past = (now - 10).to_string();
    let beyond = (now + 7200).to_string();
    for headers in [
        vec![("Huly-TTL", "0")],
        vec![("Huly-TTL", "-1")],
        vec![("Huly-TTL", "1.5")],
        vec![("Huly-TTL", "3601")],
        vec![("Huly-TTL", "99999999999999999999")],
        vec![("Huly-Expire-At", past.as_str())],
        vec![("Huly-Expire-At", beyond.as_str())],
        vec![("Huly-Expire-At", "tomorrow")],
        vec![("Huly-TTL", "5"), ("Huly-Expire-At", beyond.as_str())],
    ] {
        let resp = put(&s, "k", &headers).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_expiry", "{headers:?}");
        let named = body["error"].as_str().unwrap();
        assert!(
            named.contains(headers.last().unwrap().0),
            "{headers:?}: {named}"
        );
    }
    assert_eq!(put(&s, "k", &[("Huly-TTL", "3600")]).await.status(), 204);
}

async fn racing_inserts_over_an_expired_value_make_one_winner(kind: Kind) {
    let s = start(kind).await;
    assert_eq!(put(&s, "race", &[("Huly-TTL", "1")]).await.status(), 204);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let racers = (0..8).map(|_| put(&s, "race", &[("If-None-Match", "*")]));
    let answers = futures_util::future::join_all(racers).await;
    let created = answers.iter().filter(|r| r.status() == 201).count();
    let refused = answers.iter().filter(|r| r.status() == 412).count();
    assert_eq!(
        (created, refused),
        (1, 7),
        "one writer wins the expired key"
    );
}

/// Waits until `done` holds, at most `limit`.
async fn eventually(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn expired_removed(server: &ServerProcess) -> f64 {
    let metrics = scrape(&server.url("/metrics")).await;
    sample(&metrics, "hulykvs_expired_total", &[]).unwrap_or(0.0)
}

#[tokio::test]
async fn two_instances_sweep_one_database_without_removing_a_row_twice() {
    let db = pg::fresh_database().await;
    let envs = [
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_EXPIRY_SWEEP", "100ms"),
    ];
    let first = spawn_server(&envs);
    let sql = db.connect().await;
    sql.batch_execute(&format!(
        "INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value, expire_at)
           SELECT '{WS}', 'sweep', 'expired-' || i, decode(md5('v'), 'hex'), 'v', now() - INTERVAL '1 second'
           FROM generate_series(1, 3000) AS i;
         INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value, expire_at)
           SELECT '{WS}', 'sweep', 'later-' || i, decode(md5('v'), 'hex'), 'v', now() + INTERVAL '1 hour'
           FROM generate_series(1, 500) AS i;
         INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value)
           SELECT '{WS}', 'sweep', 'never-' || i, decode(md5('v'), 'hex'), 'v'
           FROM generate_series(1, 500) AS i;"
    ))
    .await
    .unwrap();
    let second = spawn_server(&envs);
    let count = |pattern: &'static str| {
        let sql = &sql;
        async move {
            let row = sql
                .query_one(
                    "SELECT count(*) FROM hulykvs.kvs WHERE key LIKE $1",
                    &[&pattern],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    eventually(
        Duration::from_secs(30),
        "expired rows never all swept",
        async || count("expired-%").await == 0,
    )
    .await;
    assert_eq!(count("later-%").await, 500, "nothing unexpired is swept");
    assert_eq!(count("never-%").await, 500);
    let removed = expired_removed(&first).await + expired_removed(&second).await;
    assert_eq!(
        removed, 3000.0,
        "each expired row removed once, by one instance"
    );
    let log = sql
        .query_one(
            "SELECT count(*), min(revision), max(revision), count(DISTINCT revision)
               FROM hulykvs.kvs_change WHERE namespace = 'sweep' AND op = 'expire'",
            &[],
        )
        .await
        .unwrap();
    let log: (i64, i64, i64, i64) = (log.get(0), log.get(1), log.get(2), log.get(3));
    assert_eq!(
        log,
        (3000, 1, 3000, 3000),
        "one expire change a row, revisions without gaps, from both sweepers"
    );
}

#[tokio::test]
async fn the_embedded_store_sweeps_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_sqlite_server(dir.path(), SECRET, &[("HULY_EXPIRY_SWEEP", "100ms")]);
    let client = reqwest::Client::new();
    let claims = hulykvs::auth::Claims::system("expiry-test", Duration::from_secs(600));
    let token = hulykvs::auth::mint(&claims, SECRET).unwrap();
    for i in 0..50 {
        let ttl = if i % 2 == 0 { "1" } else { "3600" };
        let resp = client
            .put(server.url(&k(&format!("k{i}"))))
            .bearer_auth(&token)
            .header("Huly-TTL", ttl)
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    }
    let path = dir.path().join("kvs.db");
    let rows = || {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.query_row("SELECT count(*) FROM kvs", [], |row| row.get::<_, i64>(0))
            .unwrap()
    };
    eventually(
        Duration::from_secs(30),
        "expired rows never swept",
        async || rows() == 25,
    )
    .await;
    assert_eq!(expired_removed(&server).await, 25.0);
}

#[tokio::test]
async fn the_command_line_writes_and_shows_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_sqlite_server(dir.path(), SECRET, &[]);
    let url = server.url("");
    let envs = [
        ("HULY_KVS_URL", url.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
    ];
    let put = run_hulykvs(
        &envs,
        &["put", "-w", WS, "ns", "k", "v", "--ttl", "1h"],
        None,
    );
    assert_eq!(
        put.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = run_hulykvs(&envs, &["get", "-w", WS, "ns", "k", "--meta"], None);
    assert_eq!(get.status.code(), Some(0));
    assert_eq!(get.stdout, b"v");
    let meta = String::from_utf8_lossy(&get.stderr);
    assert!(meta.contains("etag: \""), "{meta}");
    assert!(
        meta.contains("ttl: 3600") || meta.contains("ttl: 3599"),
        "{meta}"
    );
    let at: u64 = meta
        .lines()
        .find_map(|l| l.strip_prefix("expire-at: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no expire-at: {meta}"));
    let now = now_secs();
    assert!(
        (now + 3598..=now + 3601).contains(&at),
        "{at} vs {now}: {meta}"
    );
    let soon = (now_secs() + 100).to_string();
    let at = run_hulykvs(
        &envs,
        &["put", "-w", WS, "ns", "k", "w", "--expire-at", &soon],
        None,
    );
    assert_eq!(at.status.code(), Some(0));
    for bad in [
        &["put", "-w", WS, "ns", "k", "v", "--ttl", "0s"][..],
        &[
            "put",
            "-w",
            WS,
            "ns",
            "k",
            "v",
            "--ttl",
            "1h",
            "--expire-at",
            &soon,
        ][..],
        &["put", "-w", WS, "ns", "k", "v", "--expire-at", "soon"][..],
    ] {
        let out = run_hulykvs(&envs, bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let past = run_hulykvs(
        &envs,
        &["put", "-w", WS, "ns", "k", "v", "--expire-at", "1"],
        None,
    );
    assert_eq!(
        past.status.code(),
        Some(1),
        "the service refuses a past instant"
    );
    assert!(String::from_utf8_lossy(&past.stderr).contains("Huly-Expire-At"));
}

/// On PostgreSQL a page tests expiry only when a key of its namespace has
/// expired (migration 0009, docs/PERFORMANCE.md).
#[tokio::test]
async fn a_page_tests_expiry_only_where_a_key_has_expired() {
    // The in-process server sweeps nothing: an expired row stays.
    let s = start(Kind::Postgres).await;
    let (client, connection) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // "plain": no key with an expiry; "ahead": one that expires in an hour;
    // "past": one that expired an hour ago.
    client
        .batch_execute(&format!(
            "INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value, expire_at) VALUES \
             ('{WS}', 'plain', 'a', '\\x00', '\\x00', NULL), \
             ('{WS}', 'plain', 'b', '\\x00', '\\x00', NULL), \
             ('{WS}', 'ahead', 'a', '\\x00', '\\x00', NULL), \
             ('{WS}', 'ahead', 'b', '\\x00', '\\x00', now() + interval '1 hour'), \
             ('{WS}', 'past', 'a', '\\x00', '\\x00', NULL), \
             ('{WS}', 'past', 'b', '\\x00', '\\x00', now() - interval '1 hour'), \
             ('{WS}', 'past', 'c', '\\x00', '\\x00', now() + interval '1 hour')"
        ))
        .await
        .unwrap();
    for (namespace, live) in [
        ("plain", ["a", "b"]),
        ("ahead", ["a", "b"]),
        ("past", ["a", "c"]),
    ] {
        let resp = s
            .req(Method::GET, &format!("/api2/{WS}/{namespace}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(keys_in(&resp.json().await.unwrap()), live, "{namespace}");
    }

    // The plan of the page statement (the keys joined, as PostgreSQL lists
    // them), generic as a prepared statement's becomes: the namespace's
    // earliest expiry read from its index, then one of the two key scans;
    // never a scan of the table, though nearly every row of it (namespace
    // "bulk") has an expiry, the case where a scan stopping at the first such
    // row could look cheap.
    for statement in [
        &format!(
            "INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value, expire_at) \
             SELECT '{WS}', 'bulk', 'k' || i, '\\x00', '\\x00', now() + interval '1 hour' \
             FROM generate_series(1, 5000) AS i"
        ),
        "VACUUM ANALYZE hulykvs.kvs",
        "SET plan_cache_mode = force_generic_plan",
        "PREPARE page(UUID, TEXT) AS SELECT CASE WHEN coalesce((SELECT min(expire_at) \
         FROM hulykvs.kvs WHERE workspace = $1 AND namespace = $2 AND expire_at IS NOT NULL) \
         > now(), true) THEN (SELECT count(*)::TEXT || '\"' || \
         coalesce(string_agg(key, '\",\"'), '') FROM (SELECT key FROM hulykvs.kvs WHERE \
         workspace = $1 AND namespace = $2 ORDER BY key COLLATE \"C\" LIMIT 10) AS page) \
         ELSE (SELECT count(*)::TEXT || '\"' || coalesce(string_agg(key, '\",\"'), '') \
         FROM (SELECT key FROM hulykvs.kvs WHERE workspace = $1 AND namespace = $2 AND \
         (expire_at IS NULL OR expire_at > now()) \
         ORDER BY key COLLATE \"C\" LIMIT 10) AS page) END",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    for (namespace, tested) in [("plain", false), ("ahead", false), ("past", true)] {
        let plan = pg::plan(
            &client,
            &format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE page('{WS}', '{namespace}')"
            ),
        )
        .await;
        assert!(
            plan.contains("Index Only Scan using kvs_expiry_by_namespace"),
            "{namespace}: {plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{namespace}: {plan}");
        // Which of the two key scans ran, the one without the test first:
        // the one with it runs only for "past".
        let ran = plan
            .lines()
            .filter(|line| line.contains("Index Only Scan using") && !line.contains("expiry"))
            .map(|line| !line.contains("never executed"))
            .collect::<Vec<_>>();
        assert_eq!(ran.len(), 2, "{plan}");
        assert_eq!(ran, [!tested, tested], "{namespace}: {plan}");
    }
}
