//! Transactions and the previous value (SPEC §13, issue #14) on both
//! stores: results, conditions judged together, nothing written on a
//! failure, revisions and feed entries, races without lost updates, and
//! transactions that cannot deadlock.

#[macro_use]
mod common;

use std::sync::Arc;

use base64::Engine;
use common::server::{start, start_with, token, Kind, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const WS: &str = "7a7a7a7a-1111-4222-8333-444455556666";

suite!(
    a_transaction_answers_every_op_and_writes_with_revisions,
    a_failed_condition_names_every_failed_op_and_writes_nothing,
    malformed_transactions_are_400_naming_the_op,
    the_transaction_route_checks_method_query_size_and_token,
    racing_counter_transactions_lose_no_update,
    transactions_writing_keys_in_opposite_orders_never_deadlock,
    a_write_returns_the_value_it_replaced,
    racing_replacing_writes_each_replace_a_different_value,
    racing_puts_and_deletes_hand_on_each_value_once,
    the_gets_of_a_transaction_read_at_most_16_mib,
    a_previous_value_over_16_mib_is_returned,
    exactly_128_ops_are_taken,
);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a base64 string"))
        .expect("base64")
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", md5::compute(bytes))
}

async fn txn(s: &TestServer, body: Value) -> (StatusCode, Value) {
    let resp = s
        .req(Method::POST, &format!("/api2/{WS}?txn"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn put(s: &TestServer, ns: &str, key: &str, value: &str) {
    let resp = s
        .req(Method::PUT, &format!("/api2/{WS}/{ns}/{key}"))
        .header("content-type", "text/plain")
        .body(value.to_owned())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

async fn get(s: &TestServer, ns: &str, key: &str) -> Option<String> {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/{ns}/{key}"))
        .send()
        .await
        .unwrap();
    match resp.status() {
        StatusCode::NOT_FOUND => None,
        StatusCode::OK => Some(resp.text().await.unwrap()),
        other => panic!("GET {ns}/{key}: {other}"),
    }
}

async fn changes(s: &TestServer, ns: &str) -> Value {
    s.req(
        Method::GET,
        &format!("/api2/{WS}/{ns}?changes&since=0&wait=0s"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

async fn a_transaction_answers_every_op_and_writes_with_revisions(kind: Kind) {
    let s = start(kind).await;
    put(&s, "a", "x", "old").await;
    put(&s, "a", "gone", "bye").await;
    let (status, body) = txn(
        &s,
        json!({"ops": [
            {"op": "get", "namespace": "a", "key": "x"},
            {"op": "check", "namespace": "a", "key": "x", "if_match": md5_hex(b"old")},
            {"op": "put", "namespace": "a", "key": "x", "value": b64(b"new"), "content_type": "text/new"},
            {"op": "put", "namespace": "b", "key": "fresh", "value": b64(b""), "if_none_match": "*", "ttl": 600},
            {"op": "delete", "namespace": "a", "key": "gone"},
            {"op": "delete", "namespace": "a", "key": "never"},
            {"op": "get", "namespace": "b", "key": "missing"},
            {"op": "check", "namespace": "b", "key": "missing", "if_none_match": "*"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = &body["results"];
    assert_eq!(r.as_array().unwrap().len(), 8);
    assert_eq!(r[0]["found"], true);
    assert_eq!(unb64(&r[0]["value"]), b"old", "a get sees the state before");
    assert_eq!(r[0]["etag"], md5_hex(b"old"));
    assert_eq!(r[0]["content_type"], "text/plain");
    assert_eq!(r[1], json!({}));
    assert_eq!(r[2]["etag"], md5_hex(b"new"));
    assert_eq!(r[3]["etag"], md5_hex(b""));
    assert_eq!(r[4]["deleted"], true);
    assert_eq!(r[5], json!({"deleted": false, "revision": null}));
    assert_eq!(
        r[6],
        json!({"found": false, "value": null, "etag": null, "content_type": null, "expire_at": null})
    );
    assert_eq!(r[7], json!({}));
    // Namespace a had revisions 1 and 2; the transaction's puts come
    // first, then its deletes, each in key order; b starts at 1.
    assert_eq!(r[2]["revision"], 3);
    assert_eq!(r[4]["revision"], 4);
    assert_eq!(r[3]["revision"], 1);

    assert_eq!(get(&s, "a", "x").await.as_deref(), Some("new"));
    assert_eq!(get(&s, "a", "gone").await, None);
    let fresh = s
        .req(Method::GET, &format!("/api2/{WS}/b/fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    assert!(
        fresh.headers().contains_key("huly-expire-at"),
        "ttl is kept"
    );
    let x = s
        .req(Method::GET, &format!("/api2/{WS}/a/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(x.headers()["content-type"], "text/new");

    let feed = changes(&s, "a").await;
    let ops: Vec<(u64, &str, &str)> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["revision"].as_u64().unwrap(),
                c["op"].as_str().unwrap(),
                c["key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            (1, "put", "x"),
            (2, "put", "gone"),
            (3, "put", "x"),
            (4, "delete", "gone")
        ]
    );
    let feed = changes(&s, "b").await;
    assert_eq!(feed["changes"][0]["key"], "fresh");
    assert!(feed["changes"][0]["expire_at"].is_i64());

    // A transaction that only reads reads one snapshot and writes nothing.
    let (status, body) = txn(
        &s,
        json!({"ops": [{"op": "get", "namespace": "a", "key": "x"}, {"op": "check", "namespace": "a", "key": "x", "if_match": "*"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(unb64(&body["results"][0]["value"]), b"new");
    assert_eq!(changes(&s, "a").await["revision"], 4);
}

async fn a_failed_condition_names_every_failed_op_and_writes_nothing(kind: Kind) {
    let s = start(kind).await;
    put(&s, "ns", "taken", "v").await;
    put(&s, "ns", "keep", "v").await;
    let before = changes(&s, "ns").await["revision"].clone();
    let ops = json!({"ops": [
        {"op": "put", "namespace": "ns", "key": "a", "value": b64(b"1")},
        {"op": "delete", "namespace": "ns", "key": "keep"},
        {"op": "check", "namespace": "ns", "key": "taken", "if_match": md5_hex(b"v")},
        {"op": "put", "namespace": "other", "key": "b", "value": b64(b"2")},
        {"op": "put", "namespace": "ns", "key": "taken", "value": b64(b"3"), "if_none_match": "*"},
    ]});
    let (status, body) = txn(&s, ops).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["code"], "precondition_failed");
    assert_eq!(body["failed"], json!([4]), "only the last op failed");
    assert_eq!(get(&s, "ns", "a").await, None, "nothing was written");
    assert_eq!(get(&s, "other", "b").await, None);
    assert_eq!(get(&s, "ns", "keep").await.as_deref(), Some("v"));
    assert_eq!(
        changes(&s, "ns").await["revision"],
        before,
        "no change logged"
    );
    assert_eq!(changes(&s, "other").await["revision"], 0);

    // Every failed condition is named, of every kind.
    let ops = json!({"ops": [
        {"op": "check", "namespace": "ns", "key": "absent", "if_match": "*"},
        {"op": "check", "namespace": "ns", "key": "taken", "if_none_match": md5_hex(b"v")},
        {"op": "delete", "namespace": "ns", "key": "absent", "if_match": "*"},
        {"op": "put", "namespace": "ns", "key": "keep", "value": b64(b"x"), "if_match": md5_hex(b"other")},
        {"op": "check", "namespace": "ns", "key": "taken", "if_none_match": md5_hex(b"w")},
    ]});
    let (status, body) = txn(&s, ops).await;
    assert_eq!(status, 412);
    assert_eq!(body["failed"], json!([0, 1, 2, 3]));
    assert_eq!(get(&s, "ns", "keep").await.as_deref(), Some("v"));
    assert_eq!(
        get(&s, "ns", "absent").await,
        None,
        "no placeholder is left"
    );
    assert_eq!(s.keys(&format!("/api2/{WS}/ns")).await, ["keep", "taken"]);
}

async fn malformed_transactions_are_400_naming_the_op(kind: Kind) {
    let s = start(kind).await;
    let ok_get = json!({"op": "get", "namespace": "ns", "key": "k"});
    let cases = [
        (json!({"nope": []}), "invalid_txn", ""),
        (json!({"ops": []}), "invalid_op", "op 0"),
        (
            json!({"ops": [ok_get, {"op": "nope", "namespace": "ns", "key": "k"}]}),
            "invalid_op",
            "op 1",
        ),
        (
            json!({"ops": [{"op": "put", "namespace": "ns", "key": "k"}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": "***"}]}),
            "invalid_op",
            "base64",
        ),
        (
            json!({"ops": [ok_get, ok_get, {"op": "get", "namespace": "", "key": "k"}]}),
            "invalid_namespace",
            "op 2",
        ),
        (
            json!({"ops": [{"op": "get", "namespace": "ns", "key": "a\u{0}b"}]}),
            "invalid_key",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "get", "namespace": "ns", "key": "k", "extra": 1}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "check", "namespace": "ns", "key": "k"}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "get", "namespace": "ns", "key": "k", "if_match": "*"}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "check", "namespace": "ns", "key": "k", "if_match": "zz"}]}),
            "invalid_etag",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "check", "namespace": "ns", "key": "k", "if_match": "*", "if_none_match": "*"}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": "", "ttl": 0}]}),
            "invalid_expiry",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": "", "ttl": 5, "expire_at": 99999999999i64}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "delete", "namespace": "ns", "key": "k", "value": ""}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": "", "if_none_match": md5_hex(b"")}]}),
            "invalid_op",
            "op 0",
        ),
        (
            json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": ""}, {"op": "delete", "namespace": "ns", "key": "k"}]}),
            "invalid_op",
            "op 1",
        ),
    ];
    for (body, code, names) in cases {
        let (status, answer) = txn(&s, body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["code"], code, "{body} → {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(names),
            "{body} → {answer}"
        );
    }
    let many: Vec<Value> = (0..129)
        .map(|i| json!({"op": "get", "namespace": "ns", "key": i.to_string()}))
        .collect();
    let (status, answer) = txn(&s, json!({ "ops": many })).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("op 128"),
        "{answer}"
    );
    let not_json = s
        .req(Method::POST, &format!("/api2/{WS}?txn"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    // A value over the payload limit is refused before anything is written.
    let small = start_with(kind, &["--payload-size-limit", "4"]).await;
    let big =
        json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": b64(b"12345")}]});
    let (status, answer) = txn(&small, big).await;
    assert_eq!(status, 400);
    assert_eq!(answer["code"], "value_too_large");
    assert!(answer["error"].as_str().unwrap().starts_with("op 0:"));
}

async fn the_transaction_route_checks_method_query_size_and_token(kind: Kind) {
    let s = start(kind).await;
    let get = s
        .req(Method::GET, &format!("/api2/{WS}?txn"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let bare = s
        .req(Method::POST, &format!("/api2/{WS}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 400);
    assert_eq!(bare.json::<Value>().await.unwrap()["code"], "missing_txn");
    let ops = json!({"ops": [{"op": "put", "namespace": "ns", "key": "k", "value": ""}]});
    let anonymous = s
        .client
        .post(s.url(&format!("/api2/{WS}?txn")))
        .json(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let elsewhere = token(Uuid::new_v4(), Some(Uuid::new_v4()));
    let forbidden = s
        .client
        .post(s.url(&format!("/api2/{WS}?txn")))
        .bearer_auth(elsewhere)
        .json(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let bad_ws = s
        .req(Method::POST, "/api2/not-a-uuid?txn")
        .json(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_ws.status(), 400);
    // Over 16 MiB: refused from Content-Length, before reading a byte.
    let request = format!(
        "POST /api2/{WS}?txn HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\n\r\n",
        token(Uuid::new_v4(), Uuid::parse_str(WS).ok()),
        (16u64 << 20) + 1
    );
    let huge = common::raw::send(s.addr, request.as_bytes()).await;
    assert_eq!(
        huge.status,
        413,
        "{:?}",
        String::from_utf8_lossy(&huge.body)
    );
    assert_eq!(
        get_key(&s).await,
        StatusCode::NOT_FOUND,
        "nothing was written"
    );
}

async fn get_key(s: &TestServer) -> StatusCode {
    s.req(Method::GET, &format!("/api2/{WS}/ns/k"))
        .send()
        .await
        .unwrap()
        .status()
}

/// 20 clients each increment one counter 10 times by reading it and then
/// running check(if_match) + put; a lost update would leave the counter
/// below the number of transactions that succeeded.
async fn racing_counter_transactions_lose_no_update(kind: Kind) {
    let s = Arc::new(start(kind).await);
    let first = json!({"ops": [{"op": "put", "namespace": "c", "key": "n", "value": b64(b"0"), "if_none_match": "*"}]});
    assert_eq!(txn(&s, first.clone()).await.0, 200);
    assert_eq!(txn(&s, first).await.0, 412, "the counter exists now");
    let mut clients = Vec::new();
    for _ in 0..20 {
        let s = Arc::clone(&s);
        clients.push(tokio::spawn(async move {
            let (mut won, mut lost) = (0u64, 0u64);
            for _ in 0..10 {
                let read = json!({"ops": [{"op": "get", "namespace": "c", "key": "n"}]});
                let (status, body) = txn(&s, read).await;
                assert_eq!(status, 200, "{body}");
                let now = unb64(&body["results"][0]["value"]);
                let n: u64 = std::str::from_utf8(&now).unwrap().parse().unwrap();
                let next = (n + 1).to_string();
                let bump = json!({"ops": [
                    {"op": "check", "namespace": "c", "key": "n", "if_match": md5_hex(&now)},
                    {"op": "put", "namespace": "c", "key": "n", "value": b64(next.as_bytes())},
                    {"op": "put", "namespace": "c", "key": format!("by/{next}"), "value": b64(b""), "if_none_match": "*"},
                ]});
                match txn(&s, bump).await {
                    (StatusCode::OK, _) => won += 1,
                    (StatusCode::PRECONDITION_FAILED, body) => {
                        // A stale read: its number is claimed already, too.
                        let failed = body["failed"].as_array().unwrap();
                        assert_eq!(failed[0], 0, "{body}");
                        assert!(failed.iter().all(|i| i == 0 || i == 2), "{body}");
                        lost += 1;
                    }
                    (status, body) => panic!("{status}: {body}"),
                }
            }
            (won, lost)
        }));
    }
    let mut won = 0;
    for client in clients {
        won += client.await.unwrap().0;
    }
    assert!(won > 0);
    let final_count: u64 = get(&s, "c", "n").await.unwrap().parse().unwrap();
    assert_eq!(
        final_count, won,
        "every successful transaction counted once"
    );
    let marks = s.keys(&format!("/api2/{WS}/c?prefix=by/")).await;
    assert_eq!(marks.len() as u64, won, "each number was claimed once");
}

/// Two clients write the same two keys, in opposite orders, 1,000 times each.
async fn transactions_writing_keys_in_opposite_orders_never_deadlock(kind: Kind) {
    let s = Arc::new(start(kind).await);
    let mut clients = Vec::new();
    for (first, second) in [("k1", "k2"), ("k2", "k1")] {
        let s = Arc::clone(&s);
        clients.push(tokio::spawn(async move {
            for i in 0..1000 {
                let v = b64(format!("{first}{i}").as_bytes());
                let ops = json!({"ops": [
                    {"op": "put", "namespace": "d", "key": first, "value": v},
                    {"op": "put", "namespace": "e", "key": second, "value": v},
                    {"op": "put", "namespace": "d", "key": second, "value": v},
                    {"op": "put", "namespace": "e", "key": first, "value": v},
                ]});
                let (status, body) = txn(&s, ops).await;
                assert_eq!(status, 200, "round {i}: {body}");
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    // The four keys always hold one transaction's value: never a mix.
    let values = [
        get(&s, "d", "k1").await,
        get(&s, "d", "k2").await,
        get(&s, "e", "k1").await,
        get(&s, "e", "k2").await,
    ];
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
    let listing = s
        .req(Method::GET, &format!("/api2/{WS}/d"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        listing.headers()["huly-revision"],
        "4000",
        "a change a write"
    );
}

async fn replace(
    s: &TestServer,
    method: Method,
    key: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = s
        .req(method.clone(), &format!("/api2/{WS}/ns/{key}"))
        .header("huly-return", "previous");
    if method == Method::PUT {
        req = req.header("content-type", "text/next").body("next");
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

async fn a_write_returns_the_value_it_replaced(kind: Kind) {
    let s = start(kind).await;
    put(&s, "ns", "k", "first").await;
    let resp = replace(&s, Method::PUT, "k", &[]).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/plain", "the old value's type");
    assert_eq!(
        h["huly-previous-etag"],
        format!("\"{}\"", md5_hex(b"first"))
    );
    assert_eq!(h["etag"], format!("\"{}\"", md5_hex(b"next")));
    assert_eq!(h["huly-revision"], "2");
    assert_eq!(resp.text().await.unwrap(), "first");

    // Nothing replaced: the usual answers.
    let resp = replace(&s, Method::PUT, "new", &[]).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.headers().get("huly-previous-etag").is_none());
    let resp = replace(&s, Method::PUT, "newer", &[("if-none-match", "*")]).await;
    assert_eq!(resp.status(), 201);
    let resp = replace(&s, Method::PUT, "newer", &[("if-none-match", "*")]).await;
    assert_eq!(resp.status(), 412);
    let resp = replace(&s, Method::PUT, "k", &[("if-match", &md5_hex(b"first"))]).await;
    assert_eq!(resp.status(), 412, "the value is no longer the first");

    let resp = replace(&s, Method::DELETE, "k", &[("if-match", &md5_hex(b"next"))]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/next");
    assert!(resp.headers().get("etag").is_none());
    assert_eq!(resp.text().await.unwrap(), "next");
    assert_eq!(replace(&s, Method::DELETE, "k", &[]).await.status(), 404);
    assert_eq!(get(&s, "ns", "k").await, None);

    let bad = s
        .req(Method::PUT, &format!("/api2/{WS}/ns/k"))
        .header("huly-return", "everything")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        get(&s, "ns", "k").await,
        None,
        "a refused write writes nothing"
    );
    // The legacy API ignores the header.
    let legacy = s
        .req(Method::POST, "/api/ns/k")
        .header("huly-return", "previous")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 204);
    let feed = changes(&s, "ns").await;
    let ops: Vec<&str> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["put", "put", "put", "put", "delete"]);
}

/// 20 writers replace one key 10 times each: every value written is
/// returned as the previous value exactly once (by the write after it), so
/// no two writes ever saw the same value.
async fn racing_replacing_writes_each_replace_a_different_value(kind: Kind) {
    let s = Arc::new(start(kind).await);
    put(&s, "ns", "hot", "start").await;
    let mut writers = Vec::new();
    for w in 0..20 {
        let s = Arc::clone(&s);
        writers.push(tokio::spawn(async move {
            let mut replaced = Vec::new();
            for i in 0..10 {
                let resp = s
                    .req(Method::PUT, &format!("/api2/{WS}/ns/hot"))
                    .header("huly-return", "previous")
                    .body(format!("{w}-{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                replaced.push(resp.text().await.unwrap());
            }
            replaced
        }));
    }
    let mut replaced = Vec::new();
    for writer in writers {
        replaced.extend(writer.await.unwrap());
    }
    replaced.push(get(&s, "ns", "hot").await.unwrap());
    replaced.sort();
    let mut expected: Vec<String> = (0..20)
        .flat_map(|w| (0..10).map(move |i| format!("{w}-{i}")))
        .collect();
    expected.push("start".to_owned());
    expected.sort();
    assert_eq!(
        replaced, expected,
        "each value replaced once, the last one stays"
    );
}

/// Writers put unique values and deleters delete, all asking for the
/// previous value, on a key that starts absent: every value written is
/// handed on exactly once, to the write that replaced it, the delete that
/// removed it, or the final read.
async fn racing_puts_and_deletes_hand_on_each_value_once(kind: Kind) {
    let s = Arc::new(start(kind).await);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..12 {
                let req = if w % 2 == 0 {
                    s.req(Method::PUT, &format!("/api2/{WS}/ns/flip"))
                        .body(format!("{w}-{i}"))
                } else {
                    s.req(Method::DELETE, &format!("/api2/{WS}/ns/flip"))
                };
                let resp = req.header("huly-return", "previous").send().await.unwrap();
                match resp.status() {
                    StatusCode::OK => seen.push(resp.text().await.unwrap()),
                    StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => {}
                    other => panic!("{other}: {}", resp.text().await.unwrap()),
                }
            }
            seen
        }));
    }
    let mut handed_on = Vec::new();
    for task in tasks {
        handed_on.extend(task.await.unwrap());
    }
    handed_on.extend(get(&s, "ns", "flip").await);
    handed_on.sort();
    let mut written: Vec<String> = (0..16)
        .filter(|w| w % 2 == 0)
        .flat_map(|w| (0..12).map(move |i| format!("{w}-{i}")))
        .collect();
    written.sort();
    assert_eq!(handed_on, written, "each value handed on exactly once");
}

async fn the_gets_of_a_transaction_read_at_most_16_mib(kind: Kind) {
    let s = start(kind).await;
    for i in 0..9 {
        let resp = s
            .req(Method::PUT, &format!("/api2/{WS}/big/v{i}"))
            .body(vec![b'x'; 2_000_000])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    let gets = |n: usize| {
        let ops: Vec<Value> = (0..n)
            .map(|i| json!({"op": "get", "namespace": "big", "key": format!("v{i}")}))
            .collect();
        json!({ "ops": ops })
    };
    let (status, body) = txn(&s, gets(8)).await;
    assert_eq!(status, 200, "16 MB of values is within the limit");
    assert_eq!(body["results"][7]["found"], true);
    let (status, body) = txn(&s, gets(9)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "read_too_large");
    // With a write beside, nothing is written either.
    let mut ops = gets(9);
    ops["ops"]
        .as_array_mut()
        .unwrap()
        .push(json!({"op": "put", "namespace": "big", "key": "w", "value": b64(b"w")}));
    assert_eq!(txn(&s, ops).await.0, 413);
    assert_eq!(get(&s, "big", "w").await, None);
}

/// A single PUT may store more than a transaction may read (the payload
/// limit goes up to 1 GB); the write that replaces it still answers it.
async fn a_previous_value_over_16_mib_is_returned(kind: Kind) {
    let s = start_with(kind, &["--payload-size-limit", "20mib"]).await;
    let big = vec![b'b'; (16 << 20) + 10];
    for (method, after) in [(Method::PUT, Some("next")), (Method::DELETE, None)] {
        let resp = s
            .req(Method::PUT, &format!("/api2/{WS}/ns/big"))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let resp = replace(&s, method.clone(), "big", &[]).await;
        assert_eq!(
            resp.status(),
            200,
            "{method}: the replaced value comes back"
        );
        assert_eq!(resp.bytes().await.unwrap().len(), big.len());
        assert_eq!(get(&s, "ns", "big").await.as_deref(), after);
    }
}

/// 128 ops is the most a transaction takes, and it takes that many.
async fn exactly_128_ops_are_taken(kind: Kind) {
    let s = start(kind).await;
    let ops: Vec<Value> = (0..128)
        .map(
            |i| json!({"op": "put", "namespace": "many", "key": i.to_string(), "value": b64(b"v")}),
        )
        .collect();
    let (status, body) = txn(&s, json!({ "ops": ops })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(128));
    assert_eq!(s.keys(&format!("/api2/{WS}/many")).await.len(), 128);
}
