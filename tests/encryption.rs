//! Encryption at rest (SPEC §15, issue #16) on both stores: what the
//! database holds (checked by SQL), round trips, conditional writes with
//! keyed tags, rows from before encryption, `reencrypt` under load and
//! `--decrypt`, ciphertext moved between rows, keys kept out of every output.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::metrics::scrape;
use common::process::{run_hulykvs, spawn_server_in, ServerProcess};
use common::server::{fresh_db, start_on, Kind, TestServer, SECRET};
use reqwest::{Method, StatusCode};

const WS: &str = "0e0e0e0e-2222-4333-8444-555566667777";
/// 32 bytes of 0x01 and of 0x02, base64.
const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

suite!(
    the_database_holds_neither_plaintext_nor_its_md5,
    conditional_writes_and_bulk_reads_use_the_keyed_tags,
    rows_from_before_encryption_read_and_reencrypt_seals_them,
    rotation_under_writers_then_the_old_key_removed,
    decrypt_then_a_release_without_keys_reads_everything,
    a_ciphertext_moved_to_another_row_is_undecryptable,
);

/// One row as the database holds it.
#[derive(Debug)]
struct Raw {
    key: String,
    value: Vec<u8>,
    md5: Vec<u8>,
    key_id: Option<String>,
}

/// Every row of `kvs`, by key, read by SQL.
async fn raw_rows(kind: Kind, url: &str) -> Vec<Raw> {
    let sql = "SELECT key, value, md5, key_id FROM {kvs} ORDER BY key";
    match kind {
        Kind::Postgres => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let rows = client
                .query(&sql.replace("{kvs}", "hulykvs.kvs"), &[])
                .await
                .unwrap();
            rows.iter()
                .map(|r| Raw {
                    key: r.get(0),
                    value: r.get(1),
                    md5: r.get(2),
                    key_id: r.get(3),
                })
                .collect()
        }
        Kind::Sqlite => {
            let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite:")).unwrap();
            let mut stmt = conn.prepare(&sql.replace("{kvs}", "kvs")).unwrap();
            let rows = stmt
                .query_map([], |r| {
                    Ok(Raw {
                        key: r.get(0)?,
                        value: r.get(1)?,
                        md5: r.get(2)?,
                        key_id: r.get(3)?,
                    })
                })
                .unwrap();
            rows.map(Result::unwrap).collect()
        }
    }
}

/// Runs one statement on the test database (to tamper with it).
async fn execute(kind: Kind, url: &str, sql: &str) {
    match kind {
        Kind::Postgres => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&sql.replace("{kvs}", "hulykvs.kvs"))
                .await
                .unwrap();
        }
        Kind::Sqlite => {
            let conn = rusqlite::Connection::open(url.trim_start_matches("sqlite:")).unwrap();
            conn.execute_batch(&sql.replace("{kvs}", "kvs")).unwrap();
        }
    }
}

fn keys_flag(keys: &str) -> [&str; 2] {
    ["--encryption-keys", keys]
}

async fn put(s: &TestServer, key: &str, value: &[u8]) -> String {
    let resp = s
        .req(Method::PUT, &format!("/api2/{WS}/ns/{key}"))
        .body(value.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "PUT {key}: {}", resp.status());
    etag(&resp)
}

fn etag(resp: &reqwest::Response) -> String {
    resp.headers()["etag"].to_str().unwrap().to_owned()
}

async fn get(s: &TestServer, key: &str) -> (StatusCode, Vec<u8>, Option<String>) {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns/{key}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let tag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.bytes().await.unwrap().to_vec(), tag)
}

fn md5_tag(value: &[u8]) -> String {
    format!("\"{:x}\"", md5::compute(value))
}

/// `hulykvs reencrypt` on `url` with `keys` and `args`; its stdout, checked to succeed.
fn reencrypt(url: &str, keys: &str, args: &[&str]) -> String {
    let mut argv = vec!["reencrypt"];
    argv.extend_from_slice(args);
    if !args.contains(&"--batch") {
        argv.extend(["--batch", "7"]);
    }
    let out = run_hulykvs(
        &[("HULY_DB_CONNECTION", url), ("HULY_ENCRYPTION_KEYS", keys)],
        &argv,
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reencrypt failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

async fn the_database_holds_neither_plaintext_nor_its_md5(kind: Kind) {
    let (url, _db) = fresh_db(kind).await;
    let s = start_on(kind, &url, &keys_flag(K1)).await;
    let marker = b"calendar-refresh-token-0123456789".to_vec();
    let big: Vec<u8> = marker.iter().cycle().take(2_000_000).copied().collect();
    let values: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("one", b"x".to_vec()),
        ("marker", marker.clone()),
        ("big", big),
    ];
    for (key, value) in &values {
        let tag = put(&s, key, value).await;
        assert_eq!(tag.len(), 34, "32 hex digits, quoted: {tag}");
        assert_ne!(tag, md5_tag(value), "{key}: the tag is keyed, not the MD5");
        let (status, body, got_tag) = get(&s, key).await;
        assert_eq!(status, 200);
        assert!(body == *value, "{key} reads back");
        assert_eq!(got_tag.as_deref(), Some(tag.as_str()));
    }
    let rows = raw_rows(kind, &url).await;
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let (_, plaintext) = values.iter().find(|(k, _)| *k == row.key).unwrap();
        assert_eq!(row.key_id.as_deref(), Some("k1"), "{}", row.key);
        assert_eq!(row.value.len(), plaintext.len() + 28, "nonce and tag");
        assert_ne!(row.md5, md5::compute(plaintext).0.to_vec(), "{}", row.key);
        assert_eq!(row.md5.len(), 16);
        assert!(
            !row.value.windows(8).any(|w| w == &marker[..8]),
            "{}: plaintext in the stored bytes",
            row.key
        );
    }
}

async fn conditional_writes_and_bulk_reads_use_the_keyed_tags(kind: Kind) {
    let (url, _db) = fresh_db(kind).await;
    let s = start_on(kind, &url, &keys_flag(K1)).await;
    let tag = put(&s, "a", b"one").await;
    let put_if = |value: &'static str, header: &'static str, tag: String| {
        s.req(Method::PUT, &format!("/api2/{WS}/ns/a"))
            .header(header, tag)
            .body(value)
            .send()
    };
    let refused = put_if("x", "If-Match", md5_tag(b"one")).await.unwrap();
    assert_eq!(refused.status(), 412, "the MD5 is not the tag");
    let stale = put_if("x", "If-None-Match", "*".into()).await.unwrap();
    assert_eq!(stale.status(), 412);
    let ok = put_if("two", "If-Match", tag.clone()).await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    let tag2 = etag(&ok);
    assert_ne!(tag, tag2);
    // A transaction's check and get, the previous value, a listing with values.
    let txn = s
        .req(Method::POST, &format!("/api2/{WS}?txn"))
        .json(&serde_json::json!({"ops": [
            {"op": "check", "namespace": "ns", "key": "a", "if_match": tag2},
            {"op": "get", "namespace": "ns", "key": "a"},
            {"op": "put", "namespace": "ns", "key": "b", "value": "YmVl"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(txn.status(), 200);
    let results: serde_json::Value = txn.json().await.unwrap();
    assert_eq!(results["results"][1]["value"], "dHdv", "{results}");
    let b_tag = results["results"][2]["etag"].as_str().unwrap().to_owned();
    let (_, b, got) = get(&s, "b").await;
    assert_eq!(
        (b.as_slice(), got.unwrap()),
        (&b"bee"[..], format!("\"{b_tag}\""))
    );
    let replaced = s
        .req(Method::PUT, &format!("/api2/{WS}/ns/a"))
        .header("Huly-Return", "previous")
        .body("three")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    assert_eq!(replaced.bytes().await.unwrap(), "two");
    let listing: serde_json::Value = s
        .req(Method::GET, &format!("/api2/{WS}/ns?values"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["items"][0]["value"], "dGhyZWU=", "{listing}");
    assert_eq!(listing["items"][1]["value"], "YmVl");
    let deleted = s
        .req(Method::DELETE, &format!("/api2/{WS}/ns/b"))
        .header("If-Match", format!("\"{b_tag}\""))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
}

async fn rows_from_before_encryption_read_and_reencrypt_seals_them(kind: Kind) {
    let (url, _db) = fresh_db(kind).await;
    let plain = start_on(kind, &url, &[]).await;
    for i in 0..20 {
        put(&plain, &format!("old{i:02}"), format!("v{i}").as_bytes()).await;
    }
    plain.stop().await;
    let s = start_on(kind, &url, &keys_flag(K1)).await;
    let (status, body, tag) = get(&s, "old03").await;
    assert_eq!((status.as_u16(), body.as_slice()), (200, &b"v3"[..]));
    assert_eq!(tag.unwrap(), md5_tag(b"v3"), "an old row keeps its MD5 tag");
    put(&s, "new", b"n").await;
    let out = reencrypt(&url, K1, &[]);
    assert!(
        out.contains("20 rows rewritten (sealed by key k1), 0 written meanwhile"),
        "{out}"
    );
    for row in raw_rows(kind, &url).await {
        assert_eq!(row.key_id.as_deref(), Some("k1"), "{}", row.key);
    }
    let (status, body, tag) = get(&s, "old03").await;
    assert_eq!((status.as_u16(), body.as_slice()), (200, &b"v3"[..]));
    assert_ne!(tag.unwrap(), md5_tag(b"v3"));
    // Nothing left to do: a second run rewrites nothing.
    assert!(reencrypt(&url, K1, &[]).contains("0 rows rewritten"));
}

/// Rows of the rotation test.
const ROTATED: usize = 800;

async fn rotation_under_writers_then_the_old_key_removed(kind: Kind) {
    let (url, _db) = fresh_db(kind).await;
    let first = start_on(kind, &url, &keys_flag(K1)).await;
    for i in 0..ROTATED {
        put(&first, &format!("r{i:03}"), format!("first {i}").as_bytes()).await;
    }
    first.stop().await;
    let both = format!("{K2},{K1}");
    let s = Arc::new(start_on(kind, &url, &keys_flag(&both)).await);
    // Writers rewrite some keys while the pass runs; each remembers what it
    // last had acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let last: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; ROTATED]));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, stop, last) = (Arc::clone(&s), Arc::clone(&stop), Arc::clone(&last));
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // Each writer its own keys: the last acknowledged is the last written.
                let i = w + 4 * ((n * 7) % (ROTATED / 4));
                let value = format!("writer {w} round {n}");
                put(&s, &format!("r{i:03}"), value.as_bytes()).await;
                last.lock().unwrap()[i] = Some(value);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let url2 = url.clone();
    // One batch: every row is read before the first is rewritten, so the
    // writers change rows between the read and the rewrite.
    let out = tokio::task::spawn_blocking(move || reencrypt(&url2, &both, &["--batch", "1000"]))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(out.contains("0 undecryptable"), "{out}");
    for row in raw_rows(kind, &url).await {
        assert_eq!(row.key_id.as_deref(), Some("k2"), "{}", row.key);
    }
    Arc::try_unwrap(s).ok().unwrap().stop().await;
    let only_k2 = start_on(kind, &url, &keys_flag(K2)).await;
    let last = last.lock().unwrap().clone();
    for (i, written) in last.iter().enumerate() {
        let (status, body, _) = get(&only_k2, &format!("r{i:03}")).await;
        assert_eq!(status, 200, "r{i:03}");
        let expected = written.clone().unwrap_or_else(|| format!("first {i}"));
        assert_eq!(String::from_utf8(body).unwrap(), expected, "r{i:03}");
    }
}

async fn decrypt_then_a_release_without_keys_reads_everything(kind: Kind) {
    let (url, _db) = fresh_db(kind).await;
    let s = start_on(kind, &url, &keys_flag(K1)).await;
    for i in 0..30 {
        put(&s, &format!("d{i:02}"), format!("value {i}").as_bytes()).await;
    }
    s.stop().await;
    // Without the keys, sealed rows refuse to be served as ciphertext.
    let without = start_on(kind, &url, &[]).await;
    let resp = without
        .req(Method::GET, &format!("/api2/{WS}/ns/d01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "undecryptable");
    let out = reencrypt(&url, K1, &["--decrypt"]);
    assert!(out.contains("30 rows rewritten (plaintext)"), "{out}");
    for row in raw_rows(kind, &url).await {
        assert_eq!(row.key_id, None);
        assert_eq!(row.md5, md5::compute(&row.value).0.to_vec(), "{}", row.key);
    }
    for i in 0..30 {
        let (status, body, tag) = get(&without, &format!("d{i:02}")).await;
        assert_eq!(status, 200);
        assert_eq!(body, format!("value {i}").into_bytes());
        assert_eq!(tag.unwrap(), md5_tag(&body));
    }
}

async fn a_ciphertext_moved_to_another_row_is_undecryptable(kind: Kind) {
    let (url, _db) = fresh_db(kind).await;
    let s = start_on(kind, &url, &keys_flag(K1)).await;
    put(&s, "victim", b"the victim's own value").await;
    put(&s, "secret", b"someone else's secret").await;
    execute(
        kind,
        &url,
        "UPDATE {kvs} SET value = (SELECT value FROM {kvs} WHERE key = 'secret'), \
         md5 = (SELECT md5 FROM {kvs} WHERE key = 'secret') WHERE key = 'victim'",
    )
    .await;
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns/victim"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"undecryptable\""), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let (status, body, _) = get(&s, "secret").await;
    assert_eq!(
        (status.as_u16(), body.as_slice()),
        (200, &b"someone else's secret"[..])
    );
    // Transactions and previous values refuse it too.
    let txn = s
        .req(Method::POST, &format!("/api2/{WS}?txn"))
        .json(&serde_json::json!({"ops": [{"op": "get", "namespace": "ns", "key": "victim"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(txn.status(), 500);
    let previous = s
        .req(Method::PUT, &format!("/api2/{WS}/ns/victim"))
        .header("Huly-Return", "previous")
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(previous.status(), 500, "refused before writing");
    let (status, _, _) = get(&s, "victim").await;
    assert_eq!(status, 500, "nothing was written over it");
    // The previous release writes only md5 and value, leaving key_id: such
    // a row reads as the plaintext it holds.
    put(&s, "overwritten", b"sealed first").await;
    let hex = format!("{:x}", md5::compute(b"old release"));
    let literal = match kind {
        Kind::Postgres => format!("'\\x{hex}'::bytea"),
        Kind::Sqlite => format!("X'{hex}'"),
    };
    execute(
        kind,
        &url,
        &format!(
            "UPDATE {{kvs}} SET value = CAST('old release' AS {}), md5 = {literal} \
             WHERE key = 'overwritten'",
            match kind {
                Kind::Postgres => "BYTEA",
                Kind::Sqlite => "BLOB",
            }
        ),
    )
    .await;
    let (status, body, tag) = get(&s, "overwritten").await;
    assert_eq!(
        (status.as_u16(), body.as_slice()),
        (200, &b"old release"[..])
    );
    assert_eq!(tag.unwrap(), md5_tag(b"old release"));
}

/// A process started with keys: a malformed setting stops it with one line
/// naming the variable, and no key reaches its logs, errors or `/metrics`.
#[test]
fn keys_stay_out_of_logs_errors_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let secret_part = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
    let bad = format!("k1:{secret_part}=,k2:c2hvcnQ=");
    let out = run_hulykvs(
        &[
            ("HULY_DB_CONNECTION", db.as_str()),
            ("HULY_TOKEN_SECRET", SECRET),
            ("HULY_ENCRYPTION_KEYS", bad.as_str()),
        ],
        &["serve"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HULY_ENCRYPTION_KEYS"), "{stderr}");
    assert!(stderr.contains("entry 2"), "{stderr}");
    assert!(
        !stderr.contains(secret_part) && !stderr.contains("c2hvcnQ"),
        "{stderr}"
    );

    let envs = [
        ("HULY_DB_CONNECTION", db.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_ENCRYPTION_KEYS", K1),
        ("RUST_LOG", "debug"),
    ];
    let mut server: ServerProcess = spawn_server_in(None, &envs);
    let token = common::server::system_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let metrics = rt.block_on(async {
        let client = reqwest::Client::new();
        let url = server.url(&format!("/api2/{WS}/ns/k"));
        let put = client
            .put(&url)
            .bearer_auth(&token)
            .body("plaintext-value-xyz");
        assert!(put.send().await.unwrap().status().is_success());
        let got = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(got.text().await.unwrap(), "plaintext-value-xyz");
        scrape(&server.url("/metrics")).await
    });
    server.terminate();
    server.wait_for_exit(Duration::from_secs(10));
    let logs = server.stderr_text();
    assert!(logs.contains("new values are encrypted"), "{logs}");
    for text in [&logs, &metrics] {
        assert!(!text.contains(secret_part), "a key in the output");
        assert!(
            !text.contains("plaintext-value-xyz"),
            "a value in the output"
        );
    }
}

/// A start without the key that sealed stored rows says so in the log,
/// and the service stays ready.
#[test]
fn an_unknown_key_id_at_start_is_logged_and_readiness_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let token = common::server::system_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let with_k1 = [
        ("HULY_DB_CONNECTION", db.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_ENCRYPTION_KEYS", K1),
    ];
    let mut first = spawn_server_in(None, &with_k1);
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .put(first.url(&format!("/api2/{WS}/ns/k")))
            .bearer_auth(&token)
            .body("v")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    });
    first.terminate();
    first.wait_for_exit(Duration::from_secs(10));
    let with_k2 = [
        ("HULY_DB_CONNECTION", db.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_ENCRYPTION_KEYS", K2),
    ];
    let second = spawn_server_in(None, &with_k2);
    let ready = rt.block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..50 {
            if second
                .stderr_text()
                .contains("which HULY_ENCRYPTION_KEYS does not hold")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client
            .get(second.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(ready, 200);
    let logs = second.stderr_text();
    assert!(
        logs.contains("key_id=k1") && logs.contains("does not hold"),
        "{logs}"
    );
}
