//! Hostile input against the real server over raw TCP: oversized and malformed
//! requests, lying lengths, request smuggling shapes, and forged tokens. Each
//! attack must get a clear 4xx (never a 500, never a hang), the connection must
//! be closed where the request cannot be framed, and afterwards a listing must
//! show that nothing was stored.
//!
//! These attack the HTTP layer, which is the same for every store, so they run
//! on the embedded store only.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use common::server::{start, system_token, token_with, Kind, TestServer, SECRET};
use hulykvs::auth::{Claims, SYSTEM_ACCOUNT};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

/// One response read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `code` of a JSON error body, asserting the body is JSON.
    fn json_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "JSON error body expected: {self:?}"
        );
        let body: Value = serde_json::from_slice(&self.body).expect("JSON error body");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
        body["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// What came back for bytes written on one connection.
#[derive(Debug)]
struct Exchange {
    /// Every complete response, in order.
    responses: Vec<Resp>,
    /// The server closed (or reset) the connection within the wait.
    closed: bool,
}

impl Exchange {
    fn first(&self) -> &Resp {
        self.responses
            .first()
            .unwrap_or_else(|| panic!("no response at all: {self:?}"))
    }
}

/// Writes `request` on a fresh connection (in the background, so a server that
/// stops reading cannot block the test), and reads until the server closes or
/// `wait` passes.
async fn exchange(s: &TestServer, request: Vec<u8>, wait: Duration) -> Exchange {
    let stream = TcpStream::connect(s.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        // A server that refuses a request may close before reading it all.
        let _ = writer.write_all(&request).await;
        // Keep the write side open: closing it would look like a client that left.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(writer);
    });
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut closed = false;
    loop {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    write.abort();
    Exchange {
        responses: parse_all(&buf),
        closed,
    }
}

/// Splits `buf` into `Content-Length`-framed responses.
fn parse_all(mut buf: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let Some(status) = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
        else {
            break;
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let start = end + 4;
        let stop = (start + len).min(buf.len());
        out.push(Resp {
            status,
            headers,
            body: buf[start..stop].to_vec(),
        });
        buf = &buf[stop..];
    }
    out
}

fn key_path(ns: &str, key: &str) -> String {
    format!("/api2/{WS}/{ns}/{key}")
}

/// The head of an authorized request, without the blank line that ends it.
fn head(method: &str, path: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n",
        system_token()
    )
}

/// The keys stored in `ns` of the test workspace, through the API.
async fn stored(s: &TestServer, ns: &str) -> Vec<String> {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/{ns}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = resp.json().await.unwrap();
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// The server still answers a plain request after an attack.
async fn still_serves(s: &TestServer) {
    let resp = s.client.get(s.url("/livez")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the server survived");
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_header_is_431_and_the_connection_closed() {
    let s = start(Kind::Sqlite).await;
    let mut request = head("PUT", &key_path("ns", "big-header"));
    request.push_str("X-Big: ");
    request.push_str(&"a".repeat(1 << 20));
    request.push_str("\r\nContent-Length: 1\r\n\r\nv");
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 431, "{ex:?}");
    assert!(ex.closed, "the connection is closed after 431");
    // A header just under the buffer limit is still read: the limit is not absurdly low.
    let mut request = head("PUT", &key_path("ns2", "fits"));
    request.push_str("X-Big: ");
    request.push_str(&"a".repeat(32 * 1024));
    request.push_str("\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 204, "a 32 KiB header is accepted");
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_headers_are_refused_and_the_connection_closed() {
    let s = start(Kind::Sqlite).await;
    let mut request = head("PUT", &key_path("ns", "many-headers"));
    for i in 0..10_000 {
        request.push_str(&format!("X-{i}: v\r\n"));
    }
    request.push_str("Content-Length: 1\r\n\r\nv");
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    let status = ex.first().status;
    assert!(status == 431 || status == 400, "{ex:?}");
    assert!(ex.closed, "the connection is closed");
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_of_100_kib_is_refused_and_the_connection_closed() {
    let s = start(Kind::Sqlite).await;
    let path = key_path("ns", &"k".repeat(100 * 1024));
    let mut request = head("PUT", &path);
    request.push_str("Content-Length: 1\r\n\r\nv");
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    let status = ex.first().status;
    assert!(status == 414 || status == 431, "{ex:?}");
    assert!(ex.closed, "the connection is closed");
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_is_not_stored_when_the_client_vanishes() {
    // tests/api.rs covers a half-closed connection; here the client resets it,
    // on both APIs, with and without a precondition.
    let s = start(Kind::Sqlite).await;
    let requests = [
        head("PUT", &key_path("ns", "plain")),
        head("PUT", &key_path("ns", "absent")) + "If-None-Match: *\r\n",
        head("POST", "/api/ns/legacy"),
    ];
    for request in requests {
        let request = format!("{request}Content-Length: 1000\r\n\r\nonly-ten-b");
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A zero linger makes the close a reset, as a crashed client's would be.
        stream.set_zero_linger().unwrap();
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
    let resp = s.req(Method::GET, "/api/ns/legacy").send().await.unwrap();
    assert_eq!(resp.status(), 404, "nothing stored through the legacy API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_its_length_is_cut_and_the_rest_parsed_as_a_request() {
    let s = start(Kind::Sqlite).await;
    // The declared 5 bytes are the value; what follows is the next request.
    let smuggled = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
        key_path("ns", "smuggled")
    );
    let request = format!(
        "{}Content-Length: 5\r\n\r\nhello{smuggled}",
        head("PUT", &key_path("ns", "declared"))
    );
    let ex = exchange(&s, request.into_bytes(), Duration::from_secs(2)).await;
    let statuses: Vec<u16> = ex.responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [204, 401],
        "the rest is a request of its own, without the first one's token: {ex:?}"
    );
    assert_eq!(ex.responses[1].json_code(), "unauthorized");

    // Garbage after the declared body: a 400 for it, and the connection closed.
    let request = format!(
        "{}Content-Length: 5\r\n\r\nworld\x01\x02 not http at all\r\n\r\n",
        head("PUT", &key_path("ns", "declared2"))
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    let statuses: Vec<u16> = ex.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 400], "{ex:?}");
    assert!(ex.closed, "closed after the unparsable request");

    assert_eq!(stored(&s, "ns").await, ["declared", "declared2"]);
    let resp = s
        .req(Method::GET, &key_path("ns", "declared"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_or_malformed_content_lengths_are_400_and_closed() {
    let s = start(Kind::Sqlite).await;
    for length in [
        "5\r\nContent-Length: 6",
        "5, 6",
        "-1",
        "0x5",
        "5 5",
        "99999999999999999999999",
    ] {
        let request = format!(
            "{}Content-Length: {length}\r\n\r\nhello!",
            head("PUT", &key_path("ns", "cl"))
        );
        let ex = exchange(&s, request.into_bytes(), WAIT).await;
        assert_eq!(ex.first().status, 400, "{length:?}: {ex:?}");
        assert!(ex.closed, "{length:?}: the connection is closed");
    }
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_wins_over_content_length_and_closes() {
    // The classic CL.TE smuggling shape: a front end that trusts Content-Length
    // and a back end that trusts chunked disagree about where a request ends.
    // Here chunked wins, and the connection is closed after the response, so
    // nothing that follows can be read as a request.
    let s = start(Kind::Sqlite).await;
    let smuggled = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\n\r\nx",
        key_path("ns", "smuggled"),
        system_token()
    );
    let request = format!(
        "{}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n{smuggled}",
        head("PUT", &key_path("ns", "te"))
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    let statuses: Vec<u16> = ex.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204], "{ex:?}");
    assert!(ex.closed, "closed after a request with both framings");
    assert_eq!(stored(&s, "ns").await, ["te"], "nothing smuggled");
    let resp = s
        .req(Method::GET, &key_path("ns", "te"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");

    // A transfer coding other than chunked cannot be framed: 400.
    let request = format!(
        "{}Transfer-Encoding: gzip\r\n\r\nhello",
        head("PUT", &key_path("ns", "gzip"))
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 400, "{ex:?}");
    assert!(ex.closed);
    assert_eq!(stored(&s, "ns").await, ["te"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_in_the_path() {
    let s = start(Kind::Sqlite).await;
    // Not UTF-8: the request target cannot be a path at all. hyper refuses it
    // before the router runs (a 400 with no body), and closes.
    for bad in [&b"\xff"[..], b"a\xc3", b"\xed\xa0\x80"] {
        let mut request = format!("PUT /api2/{WS}/ns/").into_bytes();
        request.extend_from_slice(bad);
        request.extend_from_slice(
            format!(
                " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\n\r\nv",
                system_token()
            )
            .as_bytes(),
        );
        let ex = exchange(&s, request, WAIT).await;
        assert_eq!(ex.first().status, 400, "{bad:?}: {ex:?}");
        assert!(ex.closed, "{bad:?}: closed");
    }
    // Percent-encoded, the same bytes reach the router: 400 with JSON.
    let request = format!(
        "{}Content-Length: 1\r\nConnection: close\r\n\r\nv",
        head("PUT", &key_path("ns", "%FF"))
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 400);
    assert_eq!(ex.first().json_code(), "invalid_key");
    // Control characters and spaces cannot appear raw in a request target.
    for bad in ["a\x01b", "a\x7fb", "a b"] {
        let request = format!(
            "{}Content-Length: 1\r\n\r\nv",
            head("PUT", &key_path("ns", bad))
        );
        let ex = exchange(&s, request.into_bytes(), WAIT).await;
        assert_eq!(ex.first().status, 400, "{bad:?}: {ex:?}");
        assert!(ex.closed, "{bad:?}: closed");
    }
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");

    // Raw UTF-8 is a valid request target (hyper accepts it) and names the
    // same key as its percent-encoded form.
    let mut request = format!("PUT /api2/{WS}/utf8/").into_bytes();
    request.extend_from_slice("ключ".as_bytes());
    request.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv",
            system_token()
        )
        .as_bytes(),
    );
    let ex = exchange(&s, request, WAIT).await;
    assert_eq!(ex.first().status, 204, "{ex:?}");
    assert_eq!(stored(&s, "utf8").await, ["ключ"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_unknown_methods() {
    let s = start(Kind::Sqlite).await;
    // Not a token at all: hyper answers 400 and closes.
    for method in ["PU(T", "P\"UT", "PUT{}", "\x01PUT"] {
        let request = format!(
            "{}Content-Length: 1\r\n\r\nv",
            head(method, &key_path("ns", "m"))
        );
        let ex = exchange(&s, request.into_bytes(), WAIT).await;
        assert_eq!(ex.first().status, 400, "{method:?}: {ex:?}");
        assert!(ex.closed, "{method:?}: closed");
    }
    // A well-formed method the route does not have: 405 with Allow and JSON.
    for method in ["PATCH", "FOO", "put", "CONNECT"] {
        let request = format!(
            "{}Content-Length: 1\r\nConnection: close\r\n\r\nv",
            head(method, &key_path("ns", "m"))
        );
        let ex = exchange(&s, request.into_bytes(), WAIT).await;
        let resp = ex.first();
        assert!(
            resp.status == 405 || resp.status == 400,
            "{method:?}: {ex:?}"
        );
        if resp.status == 405 {
            assert_eq!(resp.header("allow"), Some("GET, HEAD, PUT, DELETE"));
            assert_eq!(resp.json_code(), "method_not_allowed");
        }
    }
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_without_host_is_served_and_closed() {
    let s = start(Kind::Sqlite).await;
    let ex = exchange(&s, b"GET /status HTTP/1.0\r\n\r\n".to_vec(), WAIT).await;
    assert_eq!(ex.first().status, 200, "{ex:?}");
    assert_eq!(ex.first().body, b"ok");
    assert!(
        ex.closed,
        "HTTP/1.0 without keep-alive is closed after the response"
    );
    // Without a token it is refused like any other request.
    let request = format!(
        "PUT {} HTTP/1.0\r\nContent-Length: 1\r\n\r\nv",
        key_path("ns", "old")
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 401);
    assert_eq!(ex.first().json_code(), "unauthorized");
    assert!(ex.closed);
    // HTTP/1.0 cannot carry a chunked body: 400 and closed.
    let request = format!(
        "PUT {} HTTP/1.0\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nv\r\n0\r\n\r\n",
        key_path("ns", "old"),
        system_token()
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 400, "{ex:?}");
    assert!(ex.closed);
    assert!(stored(&s, "ns").await.is_empty(), "nothing stored");
    // With a token, an HTTP/1.0 client can still write.
    let request = format!(
        "PUT {} HTTP/1.0\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\n\r\nv",
        key_path("ns10", "old"),
        system_token()
    );
    let ex = exchange(&s, request.into_bytes(), WAIT).await;
    assert_eq!(ex.first().status, 204, "{ex:?}");
    assert!(ex.closed);
    assert_eq!(stored(&s, "ns10").await, ["old"]);
}

// --- Tokens: what tests/api.rs `auth_is_required_and_checked` does not cover.

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header and claims JSON, signed with HMAC-SHA256 and the
/// server's secret, as an attacker who knows the format (not the secret) cannot,
/// but as a key-confusion attack presents it.
fn hmac_signed(header_json: &str, claims_json: &str) -> String {
    let input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(claims_json.as_bytes())
    );
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
        .expect("sign");
    format!("{input}.{sig}")
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn system_claims() -> String {
    format!("{{\"account\":\"{SYSTEM_ACCOUNT}\"}}")
}

/// Sends a PUT with `authorization` (raw header bytes) and returns the exchange.
async fn put_with_auth(s: &TestServer, authorization: &[u8]) -> Exchange {
    let mut request = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\nAuthorization: ",
        key_path("tok", "k")
    )
    .into_bytes();
    request.extend_from_slice(authorization);
    request.extend_from_slice(b"\r\n\r\nv");
    exchange(s, request, WAIT).await
}

async fn expect_refused(s: &TestServer, what: &str, token: &str) {
    let ex = put_with_auth(s, format!("Bearer {token}").as_bytes()).await;
    let resp = ex.first();
    assert_eq!(resp.status, 401, "{what}: {ex:?}");
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"), "{what}");
    assert_eq!(resp.json_code(), "unauthorized", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_algorithm_confusion_is_refused() {
    let s = start(Kind::Sqlite).await;
    // The control: the same construction with HS256 is accepted.
    let ok = hmac_signed(HS256, &system_claims());
    let ex = put_with_auth(&s, format!("Bearer {ok}").as_bytes()).await;
    assert_eq!(ex.first().status, 204, "control token accepted: {ex:?}");
    s.req(Method::DELETE, &key_path("tok", "k"))
        .send()
        .await
        .unwrap();

    // Key confusion: an RS256 header, "signed" with HMAC using the secret as
    // if it were the public key.
    for alg in [
        "RS256", "ES256", "PS256", "EdDSA", "HS384", "hs256", "none", "",
    ] {
        let header = format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}");
        expect_refused(&s, alg, &hmac_signed(&header, &system_claims())).await;
    }
    // An ES256-shaped token with a 64-byte signature.
    let es = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"ES256","typ":"JWT"}"#),
        b64(system_claims().as_bytes()),
        b64(&[7u8; 64])
    );
    expect_refused(&s, "ES256 signature", &es).await;
    // No header alg, a header that is not an object, a header with `jwk`/`kid`.
    for header in [
        r#"{"typ":"JWT"}"#,
        r#"["HS256"]"#,
        r#"{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}"#,
    ] {
        let token = hmac_signed(header, &system_claims());
        let ex = put_with_auth(&s, format!("Bearer {token}").as_bytes()).await;
        let status = ex.first().status;
        // An embedded key is ignored (the secret signed it), never trusted.
        assert!(status == 401 || status == 204, "{header}: {ex:?}");
    }
    assert!(stored(&s, "tok").await.len() <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tokens_are_401_never_500() {
    let s = start(Kind::Sqlite).await;
    let good = hmac_signed(HS256, &system_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{good}.{}", parts[2])),
        ("one segment", parts[0].to_owned()),
        ("empty segments", "..".to_owned()),
        ("base64 garbage", "!!!.@@@.###".to_owned()),
        (
            "valid base64, not JSON",
            format!("{}.{}.{}", b64(b"\xff\xfe"), b64(b"\x00"), parts[2]),
        ),
        (
            "padding",
            format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
        ),
        (
            "signature of another token",
            format!("{}.{}.{}", parts[0], b64(b"{}"), parts[2]),
        ),
    ];
    for (what, token) in &cases {
        expect_refused(&s, what, token).await;
    }
    // Claims of the wrong types, correctly signed.
    let claims = [
        (
            "exp as a string",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"exp\":\"99999999999\"}}"),
        ),
        (
            "exp negative",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"exp\":-1}}"),
        ),
        (
            "nbf as a string",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"nbf\":\"0\"}}"),
        ),
        (
            "workspace as a number",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"workspace\":42}}"),
        ),
        (
            "workspace not a UUID",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"workspace\":\"ws\"}}"),
        ),
        (
            "extra with a number",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"extra\":{{\"service\":1}}}}"),
        ),
        (
            "extra a string",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"extra\":\"x\"}}"),
        ),
        (
            "extra with null",
            format!("{{\"account\":\"{SYSTEM_ACCOUNT}\",\"extra\":{{\"a\":null}}}}"),
        ),
        ("no account", "{\"workspace\":null}".to_owned()),
        ("account null", "{\"account\":null}".to_owned()),
        ("claims an array", "[1,2]".to_owned()),
        ("claims a string", "\"x\"".to_owned()),
    ];
    for (what, json) in &claims {
        expect_refused(&s, what, &hmac_signed(HS256, json)).await;
    }
    // Not "Bearer", odd spacing, raw bytes that are not UTF-8.
    for header in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Token abc",
        b"Bearer\xff\xfe abc",
        b"Bearer a.b.c\xff",
    ] {
        let ex = put_with_auth(&s, header).await;
        assert_eq!(ex.first().status, 401, "{header:?}: {ex:?}");
    }
    // A huge token: refused by the header limit (431) or the verifier (401).
    for size in [20 * 1024, 100 * 1024] {
        let huge = format!("{}.{}.{}", parts[0], "A".repeat(size), parts[2]);
        let ex = put_with_auth(&s, format!("Bearer {huge}").as_bytes()).await;
        let status = ex.first().status;
        assert!(status == 401 || status == 431, "{size}: {ex:?}");
    }
    assert!(stored(&s, "tok").await.is_empty(), "nothing stored");

    // The control: a minted token with every claim works.
    let full = token_with(Claims {
        account: SYSTEM_ACCOUNT,
        workspace: Some(WS.parse().unwrap()),
        extra: BTreeMap::from([("service".to_owned(), "calendar".to_owned())]),
        exp: Some(hulykvs::auth::now_secs() + 60),
        nbf: Some(hulykvs::auth::now_secs() - 60),
    });
    let ex = put_with_auth(&s, format!("Bearer {full}").as_bytes()).await;
    assert_eq!(ex.first().status, 204, "{ex:?}");
}

#[test]
fn absurd_timeouts_stop_the_process_at_start() {
    // A timeout too long for any deadline used to make every connection panic.
    for var in [
        "HULY_HEADER_TIMEOUT",
        "HULY_BODY_TIMEOUT",
        "HULY_IDLE_TIMEOUT",
        "HULY_DB_STATEMENT_TIMEOUT",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = common::process::hulykvs()
            .arg("serve")
            .current_dir(dir.path())
            .env("HULY_BIND_HOST", "127.0.0.1")
            .env("HULY_BIND_PORT", "0")
            .env(var, "18446744073709551615")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}
