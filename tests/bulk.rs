//! Bulk work (SPEC §13, issue #14) on both stores: delete by prefix, in
//! batches, each key a `delete` change in the feed; listings with values,
//! paged like key listings, ending at 8 MiB, in bounded memory.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::pg;
use common::process::{spawn_server, ServerProcess};
use common::server::{start, Kind, TestServer};
use common::sse::Events;
use reqwest::{Method, StatusCode};

const WS: &str = "0e0e0e0e-1111-4222-8333-444455556666";

suite!(
    delete_by_prefix_removes_every_key_of_the_prefix_in_batches,
    delete_by_prefix_needs_a_prefix_and_api_v2,
    a_listing_with_values_pages_as_a_key_listing_does,
    a_page_of_values_ends_after_8_mib_with_a_cursor,
);

async fn put(s: &TestServer, key: &str, headers: &[(&str, &str)]) {
    let mut req = s
        .req(Method::PUT, &format!("/api2/{WS}/ns/{key}"))
        .body("v");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    assert!(req.send().await.unwrap().status().is_success());
}

async fn keys(s: &TestServer) -> Vec<String> {
    s.keys(&format!("/api2/{WS}/ns")).await
}

async fn delete_prefix(s: &TestServer, prefix: &str) -> (StatusCode, serde_json::Value, u64) {
    let resp = s
        .req(Method::DELETE, &format!("/api2/{WS}/ns?prefix={prefix}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let revision = resp
        .headers()
        .get("huly-revision")
        .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    (status, resp.json().await.unwrap(), revision)
}

async fn delete_by_prefix_removes_every_key_of_the_prefix_in_batches(kind: Kind) {
    let s = Arc::new(start(kind).await);
    // 2,500 keys: three batches of the server's 1,000.
    let mut writers = Vec::new();
    for w in 0..10 {
        let s = Arc::clone(&s);
        writers.push(tokio::spawn(async move {
            for i in (w..2500).step_by(10) {
                put(&s, &format!("p/{i:04}"), &[]).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for key in ["p", "q/1", "p0"] {
        put(&s, key, &[]).await;
    }
    put(&s, "p/short", &[("Huly-TTL", "1")]).await;
    let mut events = Events::new(
        s.req(Method::GET, &format!("/api2/{WS}/ns?watch"))
            .send()
            .await
            .unwrap(),
    );
    let (_, from) = events.until_sync().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (status, body, revision) = delete_prefix(&s, "p/").await;
    assert_eq!(status, 200);
    assert_eq!(body["deleted"], 2500, "the expired key is not counted");
    assert_eq!(body["revision"], revision);
    assert_eq!(revision, from + 2500);
    assert_eq!(keys(&s).await, ["p", "p0", "q/1"]);
    let mut deleted = Vec::new();
    while deleted.len() < 2500 {
        let event = events.next_within(Duration::from_secs(10)).await.unwrap();
        assert_eq!(event.event, "delete");
        deleted.push(event.key().to_owned());
    }
    let expected: Vec<String> = (0..2500).map(|i| format!("p/{i:04}")).collect();
    assert_eq!(deleted, expected, "one delete change a key, in key order");

    let (status, body, _) = delete_prefix(&s, "nothing/").await;
    assert_eq!(
        (status, body["deleted"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    assert_eq!(
        body["revision"], revision,
        "nothing deleted: the current revision"
    );
    // An empty prefix is the whole namespace.
    let (status, body, _) = delete_prefix(&s, "").await;
    assert_eq!(
        (status, body["deleted"].as_u64()),
        (StatusCode::OK, Some(3))
    );
    assert!(keys(&s).await.is_empty());
}

async fn delete_by_prefix_needs_a_prefix_and_api_v2(kind: Kind) {
    let s = start(kind).await;
    put(&s, "a", &[]).await;
    let without = s
        .req(Method::DELETE, &format!("/api2/{WS}/ns"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        without.status(),
        405,
        "the namespace route stays GET and HEAD"
    );
    assert_eq!(without.headers()["allow"], "GET, HEAD");
    let legacy = s
        .req(Method::DELETE, "/api/ns?prefix=a")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 405);
    let empty_key = s
        .req(Method::DELETE, &format!("/api2/{WS}/ns/?prefix=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        empty_key.status(),
        400,
        "a trailing slash still names an empty key"
    );
    let unauthenticated = s
        .client
        .delete(s.url(&format!("/api2/{WS}/ns?prefix=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        keys(&s).await,
        ["a"],
        "nothing was deleted by refused requests"
    );
}

async fn values_page(s: &TestServer, query: &str) -> (serde_json::Value, String) {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns?values{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let revision = resp.headers()["huly-revision"].to_str().unwrap().to_owned();
    (resp.json().await.unwrap(), revision)
}

fn item_keys(page: &serde_json::Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect()
}

async fn a_listing_with_values_pages_as_a_key_listing_does(kind: Kind) {
    use base64::Engine;
    let s = start(kind).await;
    let b64 = base64::engine::general_purpose::STANDARD;
    for (key, value) in [("b", "x"), ("a/1", ""), ("é", "unicode"), ("Z", "upper")] {
        let resp = s
            .req(
                Method::PUT,
                &format!("/api2/{WS}/ns/{}", hulykvs::wire::percent_encode(key)),
            )
            .header("content-type", "text/plain")
            .body(value)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    let binary: Vec<u8> = (0..=255).collect();
    let resp = s
        .req(Method::PUT, &format!("/api2/{WS}/ns/bin"))
        .header("huly-ttl", "600")
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    put(&s, "gone", &[("Huly-TTL", "1")]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (all, revision) = values_page(&s, "").await;
    assert_eq!(revision, "6");
    assert_eq!(all["workspace"], WS);
    assert_eq!(all["namespace"], "ns");
    assert_eq!(
        item_keys(&all),
        ["Z", "a/1", "b", "bin", "é"],
        "byte order, expired left out"
    );
    assert_eq!(all["count"], 5);
    assert!(all.get("cursor").is_none());
    let bin = &all["items"][3];
    assert_eq!(b64.decode(bin["value"].as_str().unwrap()).unwrap(), binary);
    assert_eq!(bin["etag"], format!("{:x}", md5::compute(&binary)));
    assert_eq!(bin["content_type"], "application/octet-stream");
    assert!(bin["expire_at"].as_i64().unwrap() > 0);
    let a1 = &all["items"][1];
    assert_eq!(a1["value"], "");
    assert_eq!(a1["content_type"], "text/plain");
    assert_eq!(a1["expire_at"], serde_json::Value::Null);

    // Pages of two, continued by cursor, give the same items.
    let (mut cursor, mut paged) = (None::<String>, Vec::new());
    loop {
        let query = match &cursor {
            None => "&limit=2".to_owned(),
            Some(c) => format!("&limit=2&cursor={c}"),
        };
        let (page, _) = values_page(&s, &query).await;
        assert!(page["count"].as_u64().unwrap() <= 2);
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page.get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(serde_json::Value::Array(paged), all["items"]);
    let (last, _) = values_page(&s, "&limit=5").await;
    assert!(
        last.get("cursor").is_none(),
        "no cursor when nothing follows"
    );
    let (prefixed, _) = values_page(&s, "&prefix=b").await;
    assert_eq!(item_keys(&prefixed), ["b", "bin"]);

    let head = s
        .req(Method::HEAD, &format!("/api2/{WS}/ns?values"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());
    let legacy: serde_json::Value = s
        .req(Method::GET, "/api/ns?values")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(legacy.get("workspace").is_none());
    assert_eq!(legacy["count"], 0, "the legacy API lists its own workspace");
    let bad = s
        .req(Method::GET, &format!("/api2/{WS}/ns?values&limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

async fn a_page_of_values_ends_after_8_mib_with_a_cursor(kind: Kind) {
    let s = start(kind).await;
    // Six values of 2 MB: five reach 8 MiB, the sixth is on the next page.
    for i in 0..6u8 {
        let resp = s
            .req(Method::PUT, &format!("/api2/{WS}/ns/big{i}"))
            .body(vec![i; 2_000_000])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    let (first, _) = values_page(&s, "").await;
    assert_eq!(item_keys(&first), ["big0", "big1", "big2", "big3", "big4"]);
    let cursor = first["cursor"].as_str().expect("a cursor: more remain");
    let (second, _) = values_page(&s, &format!("&cursor={cursor}")).await;
    assert_eq!(item_keys(&second), ["big5"]);
    assert!(second.get("cursor").is_none());
    let (limited, _) = values_page(&s, "&limit=2").await;
    assert_eq!(item_keys(&limited), ["big0", "big1"]);
    assert!(limited.get("cursor").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_20_values_of_1_5_mb_in_bounded_memory() {
    let db = pg::fresh_database().await;
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", MEMORY_SECRET),
        POOL,
    ]);
    lists_values_in_bounded_memory("postgres", &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lists_20_values_of_1_5_mb_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::process::spawn_sqlite_server(dir.path(), MEMORY_SECRET, &[POOL]);
    lists_values_in_bounded_memory("sqlite", &server).await;
}

const MEMORY_SECRET: &str = "memory-secret";
/// Two connections: each keeps a buffer (PostgreSQL) or a page cache
/// (SQLite) as large as what it last read, which is bounded but is not the
/// listing's doing; with two, what the listing itself holds shows.
const POOL: (&str, &str) = ("HULY_DB_POOL_SIZE", "2");

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Writes 20 values of 1.5 MB (30 MB), then lists them with values, page
/// after page, and checks how far the server's resident memory peaked above
/// where it was (Linux `clear_refs` resets the peak, as `scripts/memory`
/// does). A listing that held its page would grow by over 20 MiB (8 MiB of
/// values and their base64); one that held everything, by over 70.
async fn lists_values_in_bounded_memory(store: &str, server: &ServerProcess) {
    let claims = hulykvs::auth::Claims::system("test", Duration::from_secs(600));
    let token = hulykvs::auth::mint(&claims, MEMORY_SECRET).unwrap();
    let client = reqwest::Client::new();
    let ns = server.url(&format!("/api2/{WS}/big"));
    for i in 0..20u8 {
        let resp = client
            .put(format!("{ns}/v{i:02}"))
            .bearer_auth(&token)
            .body(vec![i; 1_500_000])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    let pid = server.child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kib(pid, "VmRSS");
    let (mut cursor, mut listed, mut pages) = (None::<String>, 0, 0);
    loop {
        let mut url = format!("{ns}?values");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let mut resp = client.get(url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        // Read slowly, so the server has to hold back rather than buffer.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        listed += page["count"].as_u64().unwrap();
        pages += 1;
        match page.get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    let peak = status_kib(pid, "VmHWM");
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "{store}: listing 20 x 1.5 MB values in {pages} pages: RSS {:.1} MiB before, \
         peak {:.1} MiB, growth {growth_mib:.1} MiB",
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert_eq!(listed, 20);
    assert!(pages >= 4, "8 MiB pages: {pages}");
    assert!(
        growth_mib < 16.0,
        "{store}: the server's memory grew by {growth_mib:.1} MiB while listing"
    );
}
