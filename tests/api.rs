//! The HTTP contract (SPEC §2–§6), every row an assertion, run against every
//! store: each test is an `async fn(Kind)` and the `suite!` macro instantiates
//! it once for PostgreSQL and once for SQLite.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::raw;
use common::server::{
    start, start_with, system_token, token, token_with, Kind, TestServer, DEFAULT_WS, SECRET,
};
use hulykvs::auth::{now_secs, Claims, SYSTEM_ACCOUNT};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

suite!(
    health_routes,
    unknown_routes_and_methods,
    auth_is_required_and_checked,
    workspace_authorization,
    auth_comes_before_the_body,
    put_get_head_round_trip,
    content_type_is_stored,
    empty_and_binary_values,
    if_none_match_star_inserts_once,
    if_match_updates_only_matching,
    entity_tag_forms_and_errors,
    conditional_get_answers_304,
    delete_plain_and_conditional,
    keys_with_special_characters,
    invalid_names_are_rejected,
    unnormalized_paths_are_rejected,
    payload_limit_with_content_length,
    payload_limit_while_streaming,
    short_body_is_never_stored,
    listing_is_byte_ordered_with_literal_prefixes,
    listing_json_is_byte_for_byte_the_services_own,
    listing_pages_with_limit_and_cursor,
    unbounded_listing_streams_every_key,
    listing_parameters_are_validated,
    workspaces_are_isolated,
    legacy_api,
    racing_if_match_has_one_winner,
    racing_if_none_match_has_one_winner,
    http2_cleartext,
);

const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";
const EMPTY_MD5: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";
const HELLO_MD5: &str = "\"5d41402abc4b2a76b9719d911017c592\"";

fn etag_of(value: &[u8]) -> String {
    format!("\"{:x}\"", md5::compute(value))
}

async fn json(resp: reqwest::Response) -> Value {
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(ct.as_deref(), Some("application/json"), "JSON content type");
    resp.json().await.expect("JSON body")
}

/// Asserts a JSON error response with `status` and `code`.
async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    let body = json(resp).await;
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

async fn put(s: &TestServer, path: &str, value: &'static [u8]) -> reqwest::Response {
    s.req(Method::PUT, path).body(value).send().await.unwrap()
}

async fn get_value(s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let resp = s.req(Method::GET, path).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

fn k(ns: &str, key: &str) -> String {
    format!("/api2/{WS}/{ns}/{key}")
}

async fn health_routes(kind: Kind) {
    let s = start(kind).await;
    for path in ["/status", "/livez", "/readyz"] {
        let resp = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), "ok", "{path}");
    }
    let resp = s.client.post(s.url("/status")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

async fn unknown_routes_and_methods(kind: Kind) {
    let s = start(kind).await;
    for path in ["/", "/nope", "/api2", "/api2/", "/api"] {
        expect_error(
            s.req(Method::GET, path).send().await.unwrap(),
            404,
            "no_route",
        )
        .await;
    }
    let resp = s.req(Method::POST, &k("ns", "key")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD, PUT, DELETE");
    expect_error(resp, 405, "method_not_allowed").await;
    let resp = s.req(Method::PUT, "/api/ns/key").send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD, POST, DELETE");
    expect_error(resp, 405, "method_not_allowed").await;
    // The workspace itself takes transactions only (`POST …?txn`).
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    expect_error(resp, 405, "method_not_allowed").await;
    let resp = s
        .req(Method::DELETE, &format!("/api2/{WS}/ns"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    expect_error(resp, 405, "method_not_allowed").await;
}

async fn auth_is_required_and_checked(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "key");
    let expect_401 = |resp: reqwest::Response| async move {
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .as_deref(),
            Some("Bearer")
        );
        expect_error(resp, 401, "unauthorized").await;
    };
    expect_401(s.client.get(s.url(&path)).send().await.unwrap()).await;
    expect_401(s.client.get(s.url("/api/ns/key")).send().await.unwrap()).await;
    expect_401(
        s.client
            .get(s.url(&path))
            .header("authorization", "Basic dTpw")
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap(),
    )
    .await;

    let claims = Claims {
        account: SYSTEM_ACCOUNT,
        workspace: None,
        extra: BTreeMap::new(),
        exp: None,
        nbf: None,
    };
    let wrong_secret = hulykvs::auth::mint(&claims, "other-secret").unwrap();
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth(wrong_secret)
            .send()
            .await
            .unwrap(),
    )
    .await;

    let expired = token_with(Claims {
        exp: Some(now_secs() - 3600),
        ..claims.clone()
    });
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth(expired)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let future = token_with(Claims {
        nbf: Some(now_secs() + 3600),
        ..claims.clone()
    });
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth(future)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let valid_for_now = token_with(Claims {
        exp: Some(now_secs() + 3600),
        ..claims.clone()
    });
    let resp = s
        .client
        .get(s.url(&path))
        .bearer_auth(valid_for_now)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "a valid token with exp passes");

    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
    let body = b64(&format!("{{\"account\":\"{SYSTEM_ACCOUNT}\"}}"));
    let alg_none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), body);
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth(alg_none)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let hs512 = {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &claims,
            &key,
        )
        .unwrap()
    };
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth(hs512)
            .send()
            .await
            .unwrap(),
    )
    .await;
    // A claims object of the wrong shape, correctly signed.
    let odd = {
        let head = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{head}.{}", b64(r#"{"account":"not-a-uuid"}"#));
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        format!("{input}.{sig}")
    };
    expect_401(
        s.client
            .get(s.url(&path))
            .bearer_auth(odd)
            .send()
            .await
            .unwrap(),
    )
    .await;
}

async fn workspace_authorization(kind: Kind) {
    let s = start(kind).await;
    let ws: Uuid = WS.parse().unwrap();
    let account = Uuid::new_v4();
    let path = k("ns", "key");

    let own = token(account, Some(ws));
    let resp = s
        .client
        .put(s.url(&path))
        .bearer_auth(&own)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "a token for the workspace may write");
    // The same workspace written in another form still matches (compared as UUIDs).
    let upper = format!("/api2/{}/ns/key", WS.to_uppercase());
    let resp = s
        .client
        .get(s.url(&upper))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let other = token(account, Some(Uuid::new_v4()));
    let resp = s
        .client
        .get(s.url(&path))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;
    let none = token(account, None);
    let resp = s
        .client
        .put(s.url(&path))
        .bearer_auth(&none)
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;
    assert_eq!(
        get_value(&s, &path).await.1,
        b"v",
        "a refused write changed nothing"
    );

    // The legacy API accepts any validly signed token.
    let resp = s
        .client
        .get(s.url("/api/ns/key"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let resp = s
        .req(Method::GET, "/api2/not-a-uuid/ns/key")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_workspace").await;
    let resp = s
        .req(Method::GET, "/api2/not-a-uuid/ns")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_workspace").await;
}

async fn auth_comes_before_the_body(kind: Kind) {
    let s = start(kind).await;
    // Headers promise a body that never comes: a 401 must not wait for it.
    let request = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
        k("ns", "key")
    );
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        raw::send(s.addr, request.as_bytes()),
    )
    .await
    .expect("401 without reading the body");
    assert_eq!(resp.status, 401);
    let other = token(Uuid::new_v4(), Some(Uuid::new_v4()));
    let request = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {other}\r\nContent-Length: 1000000\r\n\r\n",
        k("ns", "key")
    );
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        raw::send(s.addr, request.as_bytes()),
    )
    .await
    .expect("403 without reading the body");
    assert_eq!(resp.status, 403);
    assert_eq!(get_value(&s, &k("ns", "key")).await.0, 404);
}

async fn put_get_head_round_trip(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "key");
    let resp = put(&s, &path, b"hello").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["etag"], HELLO_MD5);

    let resp = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], HELLO_MD5);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");

    let resp = s.req(Method::HEAD, &path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], HELLO_MD5);
    assert_eq!(resp.headers()["content-length"], "5");
    assert!(resp.bytes().await.unwrap().is_empty());

    let resp = put(&s, &path, b"world").await;
    assert_eq!(resp.status(), 204, "plain PUT over an existing value");
    assert_eq!(get_value(&s, &path).await, (200, b"world".to_vec()));

    let resp = s
        .req(Method::GET, &k("ns", "missing"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    let resp = s
        .req(Method::HEAD, &k("ns", "missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.bytes().await.unwrap().is_empty(),
        "HEAD errors carry no body"
    );
}

async fn content_type_is_stored(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "doc");
    let resp = s
        .req(Method::PUT, &path)
        .header("content-type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let resp = s.req(Method::PUT, &path).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/octet-stream",
        "a rewrite without a type resets it"
    );
}

async fn empty_and_binary_values(kind: Kind) {
    let s = start(kind).await;
    let resp = put(&s, &k("ns", "empty"), b"").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["etag"], EMPTY_MD5);
    let resp = s.req(Method::GET, &k("ns", "empty")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], EMPTY_MD5);
    assert!(resp.bytes().await.unwrap().is_empty());

    let all: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let resp = s
        .req(Method::PUT, &k("ns", "bin"))
        .body(all.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["etag"], etag_of(&all).as_str());
    assert_eq!(get_value(&s, &k("ns", "bin")).await, (200, all));
}

async fn if_none_match_star_inserts_once(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "once");
    let resp = s
        .req(Method::PUT, &path)
        .header("if-none-match", "*")
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["etag"], etag_of(b"first").as_str());
    let resp = s
        .req(Method::PUT, &path)
        .header("if-none-match", "*")
        .body("second")
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    assert_eq!(get_value(&s, &path).await.1, b"first");
}

async fn if_match_updates_only_matching(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "cas");
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", "*")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    assert_eq!(
        get_value(&s, &path).await.0,
        404,
        "If-Match: * on an absent key writes nothing"
    );
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", HELLO_MD5)
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;

    put(&s, &path, b"hello").await;
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", "*")
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let v2 = etag_of(b"v2");
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", HELLO_MD5)
        .body("v3")
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    assert_eq!(get_value(&s, &path).await.1, b"v2");
    let bare = v2.trim_matches('"').to_owned();
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", &bare)
        .body("v3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "a bare tag matches");
    let list = format!("{HELLO_MD5}, {}", etag_of(b"v3"));
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", list)
        .body("v4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "one match in a list is enough");
    assert_eq!(resp.headers()["etag"], etag_of(b"v4").as_str());
    let weak = format!("W/{}", etag_of(b"v4"));
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", weak)
        .body("v5")
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    assert_eq!(
        get_value(&s, &path).await.1,
        b"v4",
        "a weak tag never matches If-Match"
    );
}

async fn entity_tag_forms_and_errors(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "tags");
    put(&s, &path, b"hello").await;
    for bad in [
        "\"abc\"",
        "nothex",
        "\"5d41402abc4b2a76b9719d911017c59\"",
        "zz41402abc4b2a76b9719d911017c592",
        ",",
    ] {
        let resp = s
            .req(Method::PUT, &path)
            .header("if-match", bad)
            .body("x")
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_etag").await;
        let resp = s
            .req(Method::DELETE, &path)
            .header("if-match", bad)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_etag").await;
        let resp = s
            .req(Method::GET, &path)
            .header("if-none-match", bad)
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "invalid_etag").await;
    }
    let resp = s
        .req(Method::PUT, &path)
        .header("if-none-match", HELLO_MD5)
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_precondition").await;
    let resp = s
        .req(Method::PUT, &path)
        .header("if-match", "*")
        .header("if-none-match", "*")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "conflicting_preconditions").await;
    assert_eq!(
        get_value(&s, &path).await.1,
        b"hello",
        "no rejected request wrote"
    );
}

async fn conditional_get_answers_304(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "cached");
    put(&s, &path, b"hello").await;
    for header in [
        HELLO_MD5.to_owned(),
        HELLO_MD5.trim_matches('"').to_owned(),
        format!("{EMPTY_MD5}, {HELLO_MD5}"),
        format!("W/{HELLO_MD5}"),
        "*".to_owned(),
    ] {
        let resp = s
            .req(Method::GET, &path)
            .header("if-none-match", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{header}");
        assert_eq!(resp.headers()["etag"], HELLO_MD5);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = s
        .req(Method::GET, &path)
        .header("if-none-match", EMPTY_MD5)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");
    let resp = s
        .req(Method::HEAD, &path)
        .header("if-none-match", HELLO_MD5)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
}

async fn delete_plain_and_conditional(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "del");
    put(&s, &path, b"hello").await;
    let resp = s
        .req(Method::DELETE, &path)
        .header("if-match", EMPTY_MD5)
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    assert_eq!(get_value(&s, &path).await.1, b"hello");
    let resp = s
        .req(Method::DELETE, &path)
        .header("if-match", format!("{EMPTY_MD5},{HELLO_MD5}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(get_value(&s, &path).await.0, 404);
    let resp = s
        .req(Method::DELETE, &path)
        .header("if-match", HELLO_MD5)
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    let resp = s
        .req(Method::DELETE, &path)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "precondition_failed").await;
    let resp = s.req(Method::DELETE, &path).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;

    put(&s, &path, b"again").await;
    let resp = s
        .req(Method::DELETE, &path)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    put(&s, &path, b"again").await;
    let resp = s.req(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(get_value(&s, &path).await.0, 404);
}

async fn keys_with_special_characters(kind: Kind) {
    let s = start(kind).await;
    // (raw path of the key, the key it names)
    let cases = [
        ("a/b/c", "a/b/c"),
        ("a%2Fb", "a/b"),
        ("x:y@z", "x:y@z"),
        ("1+1", "1+1"),
        ("with%20space", "with space"),
        ("%D0%BA%D0%BB%D1%8E%D1%87", "ключ"),
        ("%F0%9F%98%80", "\u{1F600}"),
        ("100%25", "100%"),
        ("q%3Fx%3D1%23f", "q?x=1#f"),
    ];
    for (i, (raw, _)) in cases.iter().enumerate() {
        let value = format!("value {i}");
        let resp = s
            .req(Method::PUT, &k("ns", raw))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{raw}");
    }
    for (i, (_, key)) in cases.iter().enumerate() {
        let encoded = hulykvs::wire::percent_encode(key);
        assert_eq!(
            get_value(&s, &k("ns", &encoded)).await,
            (200, format!("value {i}").into_bytes()),
            "{key}"
        );
    }
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/ns"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut want: Vec<&str> = cases.iter().map(|(_, key)| *key).collect();
    want.sort();
    let got: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    // Namespaces decode the same way.
    let resp = s
        .req(Method::PUT, &format!("/api2/{WS}/n%20s+1/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/n%20s+1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["namespace"], "n s+1");
    assert_eq!(list["keys"], serde_json::json!(["k"]));
}

async fn invalid_names_are_rejected(kind: Kind) {
    let s = start(kind).await;
    let long_key = "k".repeat(1025);
    let long_ns = "n".repeat(256);
    let cases = [
        (k("ns", "a%00b"), "invalid_key"),
        (k("ns", &long_key), "invalid_key"),
        (k("ns", "%zz"), "invalid_key"),
        (k("ns", "%FF%FE"), "invalid_key"),
        (k(&long_ns, "key"), "invalid_namespace"),
        (k("n%00s", "key"), "invalid_namespace"),
        (k("%C3", "key"), "invalid_namespace"),
        (format!("/api2/{WS}//key"), "invalid_namespace"),
    ];
    for (path, code) in &cases {
        let resp = s.req(Method::PUT, path).body("v").send().await.unwrap();
        expect_error(resp, 400, code).await;
    }
    let resp = s
        .req(Method::PUT, &k("ns", &"k".repeat(1024)))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "1024 bytes is allowed");
    let resp = s
        .req(Method::PUT, &k(&"n".repeat(255), "key"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "255 bytes is allowed");
    let multibyte = "é".repeat(513); // 1026 bytes
    let resp = s
        .req(
            Method::PUT,
            &k("ns", &hulykvs::wire::percent_encode(&multibyte)),
        )
        .body("v")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_key").await;
}

async fn unnormalized_paths_are_rejected(kind: Kind) {
    let s = start(kind).await;
    let auth = system_token();
    for path in [
        format!("/api2/{WS}/ns/a/../b"),
        format!("/api2/{WS}/ns/a//b"),
        format!("/api2/{WS}/ns/./a"),
        format!("/api2/{WS}/ns/a/"),
        "/api/ns/a/../b".to_owned(),
    ] {
        let request = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
        let request = request.replace("PUT /api/", "POST /api/");
        let resp = raw::send(s.addr, request.as_bytes()).await;
        assert_eq!(resp.status, 400, "{path}");
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["code"], "invalid_key", "{path}");
    }
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/ns"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["count"], 0, "nothing stored");
}

async fn payload_limit_with_content_length(kind: Kind) {
    let s = start_with(kind, &["--payload-size-limit", "1kib"]).await;
    let path = k("ns", "big");
    let resp = s
        .req(Method::PUT, &path)
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "exactly the limit is accepted");
    // Announce more than the limit and send nothing: 413 is decided from the header.
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1025\r\n\r\n",
        system_token()
    );
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        raw::send(s.addr, request.as_bytes()),
    )
    .await
    .expect("413 before the body is read");
    assert_eq!(resp.status, 413);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(get_value(&s, &path).await.1.len(), 1024, "nothing replaced");
}

async fn payload_limit_while_streaming(kind: Kind) {
    let s = start_with(kind, &["--payload-size-limit", "1kb"]).await;
    let path = k("ns", "chunked");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'y'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = s.req(Method::PUT, &path).body(body).send().await.unwrap();
    expect_error(resp, 413, "payload_too_large").await;
    assert_eq!(get_value(&s, &path).await.0, 404, "nothing stored");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..2).map(|_| Ok(vec![b'y'; 500])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = s.req(Method::PUT, &path).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 204, "a chunked body within the limit");
    assert_eq!(get_value(&s, &path).await.1.len(), 1000);
}

async fn short_body_is_never_stored(kind: Kind) {
    let s = start(kind).await;
    let path = k("ns", "short");
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\nonly-some-bytes",
        system_token()
    );
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap(); // half-close: the body ends early
    let _ = raw::read_response(&mut stream).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get_value(&s, &path).await.0,
        404,
        "a truncated body is not stored"
    );
}

async fn listing_is_byte_ordered_with_literal_prefixes(kind: Kind) {
    let s = start(kind).await;
    let keys = [
        "a", "B", "é", "a%b", "a_b", "a\\b", "ab", "a%", "a_", "Z", "a b", "zz",
    ];
    for key in keys {
        let resp = s
            .req(Method::PUT, &k("ns", &hulykvs::wire::percent_encode(key)))
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/ns"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(list["keys"], serde_json::json!(want));
    assert_eq!(list["count"], keys.len());
    assert_eq!(list["workspace"], WS);
    assert_eq!(list["namespace"], "ns");
    assert!(list.get("cursor").is_none());

    for (prefix, want) in [
        ("a%25", vec!["a%", "a%b"]),
        ("a_", vec!["a_", "a_b"]),
        ("a%5C", vec!["a\\b"]),
        ("a+", vec!["a b"]),
        ("a%2B", vec![]),
        ("%C3%A9", vec!["é"]),
        ("zzz", vec![]),
    ] {
        let list = json(
            s.req(Method::GET, &format!("/api2/{WS}/ns?prefix={prefix}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list["keys"], serde_json::json!(want), "prefix {prefix}");
        assert_eq!(list["count"], want.len());
    }
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/ns/?prefix=z"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        list["keys"],
        serde_json::json!(["zz"]),
        "trailing slash lists too"
    );
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/empty-ns"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["count"], 0);
    assert_eq!(list["keys"], serde_json::json!([]));
}

/// On PostgreSQL a listing's keys arrive joined by `","` into one text,
/// copied whole when no key needs an escape and escaped key by key when one
/// does, or as a binary array when a key holds a quote; on every way the
/// body is byte for byte what serde_json writes, with escapes, control
/// characters and non-ASCII keys, on a page with a cursor and on the last
/// page.
async fn listing_json_is_byte_for_byte_the_services_own(kind: Kind) {
    let s = start(kind).await;
    let plain = ["a", "b c", "d/e", "é✓🦀", "k1", "k2", "k3", "</script>"];
    let escaped = [
        "back\\slash",
        "tab\tx",
        "line\nx",
        "ctl\u{1}x",
        "\u{1f}",
        "us\u{1f}x",
        "del\u{7f}x",
        "é✓🦀",
        "</script>",
        "slash/es",
        "\u{2028}sep",
    ];
    // A quote alone, first, last, as the joining `","` and inside a key, on
    // the first page and past it.
    let quoted = [
        "\"", "\"a", "b\"", "\",\"", "q\",\"x", "quote\"d", "k1", "k2", "k3", "k4",
    ];
    for (namespace, keys) in [
        ("plain", &plain[..]),
        ("esc", &escaped[..]),
        ("quote", &quoted[..]),
    ] {
        for key in keys {
            let resp = s
                .req(
                    Method::PUT,
                    &k(namespace, &hulykvs::wire::percent_encode(key)),
                )
                .body("v")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204, "{key:?}");
        }
        let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let expect = |page: &[String], cursor: Option<String>| {
            serde_json::to_vec(&hulykvs::wire::KeyList {
                workspace: Some(WS.to_owned()),
                namespace: namespace.to_owned(),
                count: page.len(),
                keys: page.to_vec(),
                cursor,
            })
            .unwrap()
        };
        let body = |path: String| {
            let s = &s;
            async move {
                let resp = s.req(Method::GET, &path).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap().to_vec()
            }
        };
        let whole = body(format!("/api2/{WS}/{namespace}")).await;
        assert_eq!(
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&expect(&keys, None))
        );
        let cursor = hulykvs::wire::encode_cursor(&keys[3]);
        let first = body(format!("/api2/{WS}/{namespace}?limit=4")).await;
        assert_eq!(
            first,
            expect(&keys[..4], Some(cursor.clone())),
            "{namespace}"
        );
        let rest = body(format!("/api2/{WS}/{namespace}?limit=100&cursor={cursor}")).await;
        assert_eq!(rest, expect(&keys[4..], None), "{namespace}");
    }
}

async fn listing_pages_with_limit_and_cursor(kind: Kind) {
    let s = start(kind).await;
    for i in 0..25 {
        put(&s, &k("pages", &format!("key{i:02}")), b"v").await;
    }
    put(&s, &k("pages", "other"), b"v").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("/api2/{WS}/pages?prefix=key&limit=10");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let list = json(s.req(Method::GET, &url).send().await.unwrap()).await;
        pages += 1;
        let keys = list["keys"].as_array().unwrap();
        assert_eq!(list["count"], keys.len());
        seen.extend(keys.iter().map(|k| k.as_str().unwrap().to_owned()));
        match list.get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..25).map(|i| format!("key{i:02}")).collect();
    assert_eq!(seen, want);
    // Exactly a page's worth: the cursor is given, and the next page is empty and final.
    let list = json(
        s.req(
            Method::GET,
            &format!("/api2/{WS}/pages?prefix=key0&limit=10"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(list["count"], 10);
    assert!(
        list.get("cursor").is_none(),
        "no cursor when nothing remains"
    );
}

async fn unbounded_listing_streams_every_key(kind: Kind) {
    let s = start(kind).await;
    let total = 2_345;
    let ns = "many";
    let mut tasks = Vec::new();
    for batch in 0..8 {
        let client = s.client.clone();
        let base = s.url(&format!("/api2/{WS}/{ns}/"));
        tasks.push(tokio::spawn(async move {
            for i in (batch..total).step_by(8) {
                let resp = client
                    .put(format!("{base}k{i:05}"))
                    .bearer_auth(system_token())
                    .body("v")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 204);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/{ns}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let keys: Vec<String> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (0..total).map(|i| format!("k{i:05}")).collect();
    assert_eq!(keys, want);
    assert_eq!(list["count"], total);
    assert_eq!(list["workspace"], WS);
    assert!(list.get("cursor").is_none());
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/{ns}?prefix=k01"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["count"], 1000);
    // HEAD of a streamed listing: headers only.
    let resp = s
        .req(Method::HEAD, &format!("/api2/{WS}/{ns}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().is_empty());
}

async fn listing_parameters_are_validated(kind: Kind) {
    let s = start(kind).await;
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=10001", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("cursor=%21%21", "invalid_cursor"),
        ("prefix=%00", "invalid_prefix"),
        ("prefix=%zz", "invalid_query"),
    ] {
        let resp = s
            .req(Method::GET, &format!("/api2/{WS}/ns?{query}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, code).await;
    }
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns?limit=10000&unknown=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn workspaces_are_isolated(kind: Kind) {
    let s = start(kind).await;
    let other = "22222222-3333-4444-5555-666666666666";
    put(&s, &k("ns", "mine"), b"a").await;
    put(&s, &format!("/api2/{other}/ns/theirs"), b"b").await;
    let list = json(
        s.req(Method::GET, &format!("/api2/{WS}/ns"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["keys"], serde_json::json!(["mine"]));
    let list = json(
        s.req(Method::GET, &format!("/api2/{other}/ns"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["keys"], serde_json::json!(["theirs"]));
    assert_eq!(
        get_value(&s, &format!("/api2/{other}/ns/mine")).await.0,
        404
    );
    let resp = s
        .req(Method::DELETE, &format!("/api2/{other}/ns/mine"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(get_value(&s, &k("ns", "mine")).await.1, b"a");
}

async fn legacy_api(kind: Kind) {
    let s = start(kind).await;
    let resp = s
        .req(Method::POST, "/api/cal/user%2F1")
        .body("state")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s
        .req(Method::GET, "/api/cal/user%2F1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], etag_of(b"state").as_str());
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"state");
    // The legacy API is the default workspace of API v2.
    assert_eq!(
        get_value(&s, &format!("/api2/{DEFAULT_WS}/cal/user%2F1"))
            .await
            .1,
        b"state"
    );
    s.req(Method::POST, "/api/cal/user/2")
        .body("x")
        .send()
        .await
        .unwrap();
    s.req(Method::POST, "/api/cal/other")
        .body("x")
        .send()
        .await
        .unwrap();

    let resp = s
        .req(Method::GET, "/api/cal?prefix=user")
        .send()
        .await
        .unwrap();
    let list = json(resp).await;
    assert_eq!(
        list,
        serde_json::json!({"namespace": "cal", "count": 2, "keys": ["user/1", "user/2"]})
    );
    let list = json(s.req(Method::GET, "/api/cal").send().await.unwrap()).await;
    assert_eq!(list["count"], 3);
    assert!(list.get("workspace").is_none());

    let resp = s
        .req(Method::DELETE, "/api/cal/user%2F1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s
        .req(Method::DELETE, "/api/cal/user%2F1")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    let resp = s
        .req(Method::GET, "/api/cal/user%2F1")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    // Legacy writes are plain upserts; precondition headers are not part of that API.
    let resp = s
        .req(Method::POST, "/api/cal/other")
        .header("if-none-match", "*")
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

/// Sends 16 concurrent PUTs of distinct values to `path` with `header: value`;
/// exactly one must answer `winner` and the other 15 `412`.
async fn race_16_writers(
    s: &TestServer,
    path: &str,
    header: &'static str,
    value: &str,
    winner: StatusCode,
) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let req = s
            .req(Method::PUT, path)
            .header(header, value)
            .body(format!("writer {i}"));
        tasks.push(tokio::spawn(
            async move { req.send().await.unwrap().status() },
        ));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let count = |want: StatusCode| statuses.iter().filter(|s| **s == want).count();
    assert_eq!(
        (count(winner), count(StatusCode::PRECONDITION_FAILED)),
        (1, 15),
        "{statuses:?}"
    );
}

async fn racing_if_match_has_one_winner(kind: Kind) {
    let s = start(kind).await;
    let path = k("race", "cas");
    put(&s, &path, b"start").await;
    race_16_writers(
        &s,
        &path,
        "if-match",
        &etag_of(b"start"),
        StatusCode::NO_CONTENT,
    )
    .await;
}

async fn racing_if_none_match_has_one_winner(kind: Kind) {
    let s = start(kind).await;
    race_16_writers(
        &s,
        &k("race", "create"),
        "if-none-match",
        "*",
        StatusCode::CREATED,
    )
    .await;
}

async fn http2_cleartext(kind: Kind) {
    let s = start(kind).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .put(s.url(&k("ns", "h2")))
        .bearer_auth(system_token())
        .body("over h2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let resp = h2
        .get(s.url(&k("ns", "h2")))
        .bearer_auth(system_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"over h2");
}
