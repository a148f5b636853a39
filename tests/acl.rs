//! Access control by namespace (SPEC §14, issue #15): every route and
//! method of both APIs allowed and denied as the policy says, globs,
//! tokens without a service, a denied write answered before its body, and
//! the policy reloaded on change and on SIGHUP, keeping the last good one.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::process::{signal, spawn_sqlite_server};
use common::server::{start_with, token_with, Kind, TestServer, DEFAULT_WS};
use hulykvs::auth::{Claims, SYSTEM_ACCOUNT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const WS: &str = "acacacac-1111-4222-8333-444455556666";
const PERSON: &str = "0e0e0e0e-1111-4222-8333-444455556666";

const POLICY: &str = r#"
[[allow]]
service = "calendar"
namespaces = ["calendar", "calendar:*"]
access = "read-write"

[[allow]]
service = "reporting"
namespaces = ["*"]
access = "read"

[[allow]]
service = "gmail"
namespaces = ["mail*sync"]
access = "read-write"

[[allow]]
account = "0e0e0e0e-1111-4222-8333-444455556666"
namespaces = ["*:public"]
access = "read-write"
"#;

fn service_token(service: &str) -> String {
    token_with(Claims {
        account: SYSTEM_ACCOUNT,
        workspace: None,
        extra: BTreeMap::from([("service".to_owned(), service.to_owned())]),
        exp: None,
        nbf: None,
    })
}

fn person_token() -> String {
    token_with(Claims {
        account: Uuid::parse_str(PERSON).unwrap(),
        workspace: Some(Uuid::parse_str(WS).unwrap()),
        extra: BTreeMap::new(),
        exp: None,
        nbf: None,
    })
}

async fn with_policy(text: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl.toml");
    std::fs::write(&file, text).unwrap();
    let server = start_with(Kind::Sqlite, &["--acl-file", file.to_str().unwrap()]).await;
    (dir, server)
}

async fn send(s: &TestServer, token: &str, method: Method, path: &str) -> reqwest::Response {
    let mut req = s
        .client
        .request(method.clone(), s.url(path))
        .bearer_auth(token);
    if method == Method::PUT || method == Method::POST {
        req = req.body("v");
    }
    req.send().await.unwrap()
}

/// Asserts a `403 namespace_forbidden` naming the namespace and the access.
async fn forbidden(resp: reqwest::Response, namespace: &str, access: &str) {
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "namespace_forbidden", "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("{namespace:?}")) && message.contains(access),
        "{message}"
    );
    assert!(
        !message.contains("calendar:*"),
        "never the policy: {message}"
    );
}

/// Every route and method of both APIs: what the calendar service may and
/// may not do, and what the read-only reporting job may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_method_follows_the_policy() {
    let (_dir, s) = with_policy(POLICY).await;
    let calendar = service_token("calendar");
    let reporting = service_token("reporting");
    let v2 = |ns: &str, rest: &str| format!("/api2/{WS}/{ns}{rest}");
    // (method, path, read?)
    let routes = |ns: &str| {
        vec![
            (Method::PUT, v2(ns, "/k"), false),
            (Method::GET, v2(ns, "/k"), true),
            (Method::HEAD, v2(ns, "/k"), true),
            (Method::GET, v2(ns, ""), true),
            (Method::HEAD, v2(ns, ""), true),
            (Method::GET, v2(ns, "/"), true),
            (Method::GET, v2(ns, "?values"), true),
            (Method::HEAD, v2(ns, "?values"), true),
            (Method::GET, v2(ns, "?changes&since=0&wait=0s"), true),
            (Method::DELETE, v2(ns, "?prefix=zzz"), false),
            (Method::DELETE, v2(ns, "/k"), false),
            (Method::POST, format!("/api/{ns}/k"), false),
            (Method::GET, format!("/api/{ns}/k"), true),
            (Method::HEAD, format!("/api/{ns}/k"), true),
            (Method::GET, format!("/api/{ns}"), true),
            (Method::HEAD, format!("/api/{ns}"), true),
            (Method::GET, format!("/api/{ns}?values"), true),
            (
                Method::GET,
                format!("/api/{ns}?changes&since=0&wait=0s"),
                true,
            ),
            (Method::DELETE, format!("/api/{ns}/k"), false),
        ]
    };
    for ns in ["calendar", "calendar:events"] {
        for (method, path, _) in routes(ns) {
            let resp = send(&s, &calendar, method.clone(), &path).await;
            assert!(
                resp.status().is_success(),
                "calendar {method} {path}: {}",
                resp.status()
            );
            if method == Method::PUT || method == Method::POST {
                // Reporting reads what calendar wrote, and writes nothing.
                let read = send(&s, &reporting, Method::GET, &path).await;
                assert_eq!(read.status(), 200, "reporting GET {path}");
            }
        }
    }
    for (method, path, read) in routes("gmail:threads") {
        let resp = send(&s, &calendar, method.clone(), &path).await;
        let access = if read { "read" } else { "write" };
        if method == Method::HEAD {
            assert_eq!(resp.status(), 403, "HEAD {path}");
        } else {
            forbidden(resp, "gmail:threads", access).await;
        }
        let resp = send(&s, &reporting, method.clone(), &path).await;
        if read {
            assert_ne!(resp.status(), 403, "reporting {method} {path}");
        } else {
            forbidden(resp, "gmail:threads", "write").await;
        }
    }
    // Watch streams, both APIs.
    for path in [v2("calendar", "?watch"), "/api/calendar?watch".to_owned()] {
        let resp = send(&s, &calendar, Method::GET, &path).await;
        assert_eq!(resp.status(), 200, "{path}");
        drop(resp);
        forbidden(
            send(
                &s,
                &calendar,
                Method::GET,
                &path.replace("calendar", "gmail"),
            )
            .await,
            "gmail",
            "read",
        )
        .await;
    }
    // The legacy API's workspace is the default one.
    assert_eq!(DEFAULT_WS.len(), 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_op_of_a_transaction_is_checked() {
    let (_dir, s) = with_policy(POLICY).await;
    let calendar = service_token("calendar");
    let txn = |ops: Value| {
        s.client
            .post(s.url(&format!("/api2/{WS}?txn")))
            .bearer_auth(&calendar)
            .json(&json!({ "ops": ops }))
            .send()
    };
    let allowed = json!([
        {"op": "put", "namespace": "calendar", "key": "k", "value": "dg=="},
        {"op": "get", "namespace": "calendar:x", "key": "k"},
    ]);
    assert_eq!(txn(allowed).await.unwrap().status(), 200);
    let denied = json!([
        {"op": "put", "namespace": "calendar", "key": "k2", "value": "dg=="},
        {"op": "check", "namespace": "gmail", "key": "k", "if_match": "*"},
    ]);
    let resp = txn(denied).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "namespace_forbidden");
    assert!(
        body["error"].as_str().unwrap().starts_with("op 1: "),
        "{body}"
    );
    let k2 = send(
        &s,
        &calendar,
        Method::GET,
        &format!("/api2/{WS}/calendar/k2"),
    )
    .await;
    assert_eq!(
        k2.status(),
        404,
        "nothing of a refused transaction is written"
    );
    let reporting = service_token("reporting");
    let resp = s
        .client
        .post(s.url(&format!("/api2/{WS}?txn")))
        .bearer_auth(&reporting)
        .json(&json!({"ops": [{"op": "get", "namespace": "calendar", "key": "k"}, {"op": "delete", "namespace": "calendar", "key": "k"}]}))
        .send()
        .await
        .unwrap();
    forbidden(resp, "calendar", "write").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globs_and_tokens_without_a_service() {
    let (_dir, s) = with_policy(POLICY).await;
    let gmail = service_token("gmail");
    for (ns, allowed) in [
        ("mailsync", true),
        ("mail-thread-sync", true),
        ("mail-sync-x", false),
        ("gmail", false),
    ] {
        let resp = send(&s, &gmail, Method::PUT, &format!("/api2/{WS}/{ns}/k")).await;
        assert_eq!(
            resp.status().is_success(),
            allowed,
            "{ns}: {}",
            resp.status()
        );
    }
    // A person's token has no service: only rules naming its account apply.
    let person = person_token();
    let ok = send(
        &s,
        &person,
        Method::PUT,
        &format!("/api2/{WS}/notes:public/k"),
    )
    .await;
    assert_eq!(ok.status(), 204);
    forbidden(
        send(&s, &person, Method::GET, &format!("/api2/{WS}/calendar/k")).await,
        "calendar",
        "read",
    )
    .await;
    // A service no rule names: denied everywhere.
    let other = service_token("telegram");
    forbidden(
        send(&s, &other, Method::GET, &format!("/api2/{WS}/notes:public")).await,
        "notes:public",
        "read",
    )
    .await;
    // The workspace check of §2 still comes first.
    let elsewhere = token_with(Claims {
        account: Uuid::parse_str(PERSON).unwrap(),
        workspace: Some(Uuid::new_v4()),
        extra: BTreeMap::new(),
        exp: None,
        nbf: None,
    });
    let resp = send(
        &s,
        &elsewhere,
        Method::GET,
        &format!("/api2/{WS}/x:public/k"),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_put_is_answered_before_its_body() {
    let (_dir, s) = with_policy(POLICY).await;
    let calendar = service_token("calendar");
    refused_before_body(&s, &format!("PUT /api2/{WS}/gmail/k"), &calendar).await;
    refused_before_body(&s, "POST /api/gmail/k", &calendar).await;
    // A transaction names its namespaces in its body; a token that no rule
    // is for is refused before that body is read.
    let stranger = service_token("telegram");
    refused_before_body(&s, &format!("POST /api2/{WS}?txn"), &stranger).await;
}

/// Sends `request_line` with a 100 MB `Content-Length` and no body, and
/// asserts a `403 namespace_forbidden` at once.
async fn refused_before_body(s: &TestServer, request_line: &str, token: &str) {
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 100000000\r\n\r\n"
    );
    let started = std::time::Instant::now();
    let resp = common::raw::send(s.addr, request.as_bytes()).await;
    assert_eq!(resp.status, 403, "{request_line}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting for 100 MB: {:?}",
        started.elapsed()
    );
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["code"], "namespace_forbidden");
}

async fn status_of(s: &TestServer, token: &str, ns: &str) -> StatusCode {
    send(s, token, Method::GET, &format!("/api2/{WS}/{ns}"))
        .await
        .status()
}

/// Waits until `check` holds, for at most 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_last_good_policy() {
    let (dir, s) = with_policy(POLICY).await;
    let file = dir.path().join("acl.toml");
    let telegram = service_token("telegram");
    assert_eq!(status_of(&s, &telegram, "telegram").await, 403);
    let more = format!(
        "{POLICY}\n[[allow]]\nservice = \"telegram\"\nnamespaces = [\"telegram\"]\naccess = \"read\"\n"
    );
    std::fs::write(&file, &more).unwrap();
    eventually("the new rule", || async {
        status_of(&s, &telegram, "telegram").await == 200
    })
    .await;
    // A broken file: the last good policy stays in force.
    std::fs::write(&file, "[[allow]]\nservice = \"telegram\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(status_of(&s, &telegram, "telegram").await, 200);
    assert_eq!(status_of(&s, &service_token("reporting"), "x").await, 200);
    // Fixed again, without the telegram rule.
    std::fs::write(&file, POLICY).unwrap();
    eventually("the rule's removal", || async {
        status_of(&s, &telegram, "telegram").await == 403
    })
    .await;
}

fn write_policy(dir: &Path, text: &str) -> String {
    let file = dir.join("acl.toml");
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_broken_file_is_logged_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), POLICY);
    let server = spawn_sqlite_server(dir.path(), "acl-secret", &[("HULY_ACL_FILE", &file)]);
    let token = hulykvs::auth::mint(
        &Claims {
            account: SYSTEM_ACCOUNT,
            workspace: None,
            extra: BTreeMap::from([("service".to_owned(), "telegram".to_owned())]),
            exp: None,
            nbf: None,
        },
        "acl-secret",
    )
    .unwrap();
    let client = reqwest::Client::new();
    let get = || async {
        client
            .get(server.url(&format!("/api2/{WS}/telegram")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get().await, 403);
    // Same size and (at one-second resolution, maybe) the same time: only
    // SIGHUP is sure to notice.
    let granted = POLICY.replacen(
        "\"calendar\", \"calendar:*\"",
        "\"telegram\", \"calendar:*\"",
        1,
    );
    let granted = granted.replacen("service = \"calendar\"", "service = \"telegram\"", 1);
    write_policy(dir.path(), &granted);
    signal(server.child.id(), "HUP");
    eventually("the reload on SIGHUP", || async { get().await == 200 }).await;
    write_policy(
        dir.path(),
        "\n\n[[allow]]\nservice = \"x\"\nnamespaces = [\"a\"]\naccess = \"all\"\n",
    );
    signal(server.child.id(), "HUP");
    eventually("the failed reload's log line", || async {
        server.stderr_text().contains("ACL policy reload failed")
    })
    .await;
    let log = server.stderr_text();
    assert!(log.contains("line 3"), "{log}");
    assert_eq!(get().await, 200, "the last good policy stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_at_start_stops_serve_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(
        dir.path(),
        "[[allow]]\nservice = \"x\"\nnamespaces = [\"a\"]\n",
    );
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let out = common::process::run_hulykvs(
        &[
            ("HULY_DB_CONNECTION", &db),
            ("HULY_TOKEN_SECRET", "s"),
            ("HULY_ACL_FILE", &file),
            ("HULY_BIND_PORT", "0"),
        ],
        &["serve"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&file) && last.contains("line 1"), "{err}");
    assert!(last.contains("access"), "names what is missing: {err}");
}
