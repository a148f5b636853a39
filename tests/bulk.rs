//! Bulk work (SPEC §13, issue #14) on both stores: delete by prefix, in
//! batches, each key a `delete` change in the feed.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::server::{start, Kind, TestServer};
use common::sse::Events;
use reqwest::{Method, StatusCode};

const WS: &str = "0e0e0e0e-1111-4222-8333-444455556666";

suite!(
    delete_by_prefix_removes_every_key_of_the_prefix_in_batches,
    delete_by_prefix_needs_a_prefix_and_api_v2,
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
