//! Property tests over everything that parses bytes a client (or an operator)
//! controls: percent-decoding, entity tags, cursors, sizes, durations, tokens,
//! and the router end to end over HTTP. None may panic; each must round-trip
//! what the service itself writes; a token is accepted only when validly signed;
//! and no request makes the server answer 500 or drop the connection.
//!
//! Each property runs 300 cases by default (about ten seconds in all), so CI
//! stays fast. To search longer:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --test fuzz
//! ```
//!
//! A failing case is saved in `tests/fuzz.proptest-regressions` and replayed
//! first on every later run: commit that file with the fix.

mod common;

use std::time::Duration;

use base64::Engine;
use common::server::{start, system_token, Kind, SECRET};
use hulykvs::auth::{Claims, Verifier, SYSTEM_ACCOUNT};
use hulykvs::config::{parse_duration, parse_size};
use hulykvs::wire::{decode_cursor, encode_cursor, percent_decode, percent_encode, TagCondition};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        // Shrinking a failure is bounded too, so a failing run still ends.
        max_shrink_time: 60_000,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Text made mostly of the characters percent-decoding cares about.
fn percentish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("%".to_owned()),
            "%[0-9a-fA-F]{2}",
            "%[0-9a-zA-Z]{0,2}",
            "[a-z+/ ]",
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn percent_decode_never_panics(raw in prop_oneof![any::<String>(), percentish()]) {
        if let Ok(decoded) = percent_decode(&raw) {
            // Without escapes the text is returned as it is.
            if !raw.contains('%') {
                prop_assert_eq!(decoded, raw);
            }
        }
    }

    #[test]
    fn percent_encoding_round_trips(part in any::<String>()) {
        let encoded = percent_encode(&part);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)));
        prop_assert_eq!(percent_decode(&encoded).unwrap(), part);
    }

    #[test]
    fn tag_conditions_never_panic(header in prop_oneof![any::<String>(), "[ ,W/\"*0-9a-fA-Fg]{0,80}"]) {
        if let Ok(TagCondition::List(tags)) = TagCondition::parse(&header) {
            prop_assert!(!tags.is_empty());
        }
    }

    #[test]
    fn tag_lists_round_trip(tags in prop::collection::vec((any::<[u8; 16]>(), any::<bool>(), any::<bool>(), any::<bool>()), 1..6)) {
        let header = tags
            .iter()
            .map(|(digest, weak, quoted, upper)| {
                let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                if *upper {
                    hex = hex.to_uppercase();
                }
                let tag = if *quoted { format!("\"{hex}\"") } else { hex };
                if *weak { format!("W/{tag}") } else { tag }
            })
            .collect::<Vec<_>>()
            .join(" , ");
        let TagCondition::List(parsed) = TagCondition::parse(&header).unwrap() else {
            panic!("{header:?} parsed as *");
        };
        prop_assert_eq!(parsed.len(), tags.len());
        for (got, (digest, weak, _, _)) in parsed.iter().zip(&tags) {
            prop_assert_eq!(&got.tag.0, digest);
            prop_assert_eq!(got.weak, *weak);
        }
    }

    #[test]
    fn cursors_never_panic_and_round_trip(raw in any::<String>(), key in ".{1,64}") {
        let _ = decode_cursor(&raw);
        prop_assert_eq!(decode_cursor(&encode_cursor(&key)), Some(key));
    }

    #[test]
    fn sizes_never_panic(text in prop_oneof![any::<String>(), "[0-9. ]{0,30}[kmgib ]{0,4}"]) {
        let _ = parse_size(&text);
    }

    #[test]
    fn sizes_are_exact(n in 0u64..(1 << 20), unit in prop::sample::select(vec![
        ("", 1u64), ("b", 1), ("kb", 1_000), ("KB", 1_000), ("mb", 1_000_000), ("gb", 1_000_000_000),
        ("kib", 1 << 10), ("MiB", 1 << 20), ("gib", 1 << 30),
    ]), space in any::<bool>()) {
        let text = format!("{n}{}{}", if space { " " } else { "" }, unit.0);
        prop_assert_eq!(parse_size(&text), Ok(n * unit.1));
    }

    #[test]
    fn durations_never_panic(text in prop_oneof![any::<String>(), "[0-9]{0,25}(ms|s|m|h|d|w|sec|min|x)?([0-9]{0,25}(ms|s|m|h|d|w)?){0,3}"]) {
        let _ = parse_duration(&text);
    }

    #[test]
    fn durations_add_up(d in 0u64..1000, h in 0u64..1000, m in 0u64..1000, s in 0u64..100_000, ms in 0u64..100_000) {
        let text = format!("{d}d{h}h{m}m{s}s{ms}ms");
        let want = Duration::from_secs(d * 86_400 + h * 3600 + m * 60 + s) + Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&text), Ok(want));
        prop_assert_eq!(parse_duration(&s.to_string()), Ok(Duration::from_secs(s)));
    }

    #[test]
    fn arbitrary_authorization_headers_are_refused(header in prop::collection::vec(any::<u8>(), 0..300), text in any::<String>()) {
        let verifier = Verifier::new(SECRET);
        prop_assert!(verifier.verify_header(Some(&header)).is_err());
        prop_assert!(verifier.verify(&text).is_err());
        let bearer = format!("Bearer {text}");
        prop_assert!(verifier.verify_header(Some(bearer.as_bytes())).is_err());
    }

    #[test]
    fn forged_three_segment_tokens_are_refused(
        header in prop_oneof![
            Just(r#"{"alg":"HS256","typ":"JWT"}"#.as_bytes().to_vec()),
            "\\{\"alg\":\"[A-Za-z0-9]{0,6}\"\\}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        claims in prop_oneof![
            Just(format!("{{\"account\":\"{SYSTEM_ACCOUNT}\"}}").into_bytes()),
            prop::collection::vec(any::<u8>(), 0..80),
        ],
        signature in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let token = format!("{}.{}.{}", b64(&header), b64(&claims), b64(&signature));
        prop_assert!(Verifier::new(SECRET).verify(&token).is_err(), "{token}");
    }

    #[test]
    fn signed_tokens_are_read_exactly_as_their_claims(
        account in prop_oneof![Just(SYSTEM_ACCOUNT.to_string()), "[0-9a-f-]{0,40}"].prop_map(serde_json::Value::String),
        workspace in prop::option::of(prop_oneof![
            any::<u128>().prop_map(|n| serde_json::json!(uuid::Uuid::from_u128(n).to_string())),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            ".{0,10}".prop_map(|s| serde_json::json!(s)),
        ]),
        extra in prop::option::of(prop::collection::btree_map("[a-z]{1,5}", prop_oneof![
            ".{0,8}".prop_map(serde_json::Value::String),
            any::<i32>().prop_map(|n| serde_json::json!(n)),
            Just(serde_json::Value::Null),
        ], 0..4)),
        alg in prop::sample::select(vec!["HS256", "HS384", "RS256", "ES256", "none", "hs256"]),
    ) {
        let mut object = serde_json::Map::new();
        object.insert("account".into(), account);
        if let Some(ws) = workspace {
            object.insert("workspace".into(), ws);
        }
        if let Some(extra) = extra {
            object.insert("extra".into(), serde_json::Value::Object(extra.into_iter().collect()));
        }
        let claims = serde_json::Value::Object(object).to_string();
        let head = format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}");
        let input = format!("{}.{}", b64(head.as_bytes()), b64(claims.as_bytes()));
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
        let token = format!("{input}.{sig}");
        let verified = Verifier::new(SECRET).verify(&token);
        let readable = serde_json::from_str::<Claims>(&claims);
        match (&verified, &readable) {
            (Ok(got), Ok(want)) => {
                prop_assert_eq!(alg, "HS256");
                prop_assert_eq!(got, want);
            }
            (Err(_), _) => prop_assert!(alg != "HS256" || readable.is_err(), "{claims} refused"),
            (Ok(got), Err(_)) => prop_assert!(false, "accepted unreadable claims {claims} as {got:?}"),
        }
        // The same token checked against another secret is always refused.
        prop_assert!(Verifier::new("another-secret").verify(&token).is_err());
    }
}

// --- The router end to end: arbitrary requests to a real server.

const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

/// One request, as bytes that are valid on the wire (so hyper hands it to the router).
#[derive(Debug, Clone)]
struct Fuzzed {
    method: &'static str,
    target: String,
    if_match: Option<String>,
    if_none_match: Option<String>,
    authorized: bool,
    body: Vec<u8>,
}

/// A path segment: URI characters, escapes good and bad, dots, raw UTF-8.
fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            8 => "[a-zA-Z0-9._~!$&'()*+,;=:@-]{1,6}",
            2 => "%[0-9a-fA-F]{2}",
            1 => "%[0-9a-zA-Z%]{0,2}",
            1 => prop::sample::select(vec!["%00", "%2F", "%2f", ".", "..", "+", "%25"]).prop_map(str::to_owned),
            1 => "[é€ключ\u{1F600}]",
        ],
        1..4,
    )
    .prop_map(|parts| parts.concat())
}

fn target() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        4 => Just(format!("/api2/{WS}/")),
        2 => Just("/api/".to_owned()),
        1 => Just(format!("/api2/{}/", WS.to_uppercase())),
        1 => Just("/api2/".to_owned()),
        1 => Just("/".to_owned()),
        1 => segment().prop_map(|ws| format!("/api2/{ws}/")),
    ];
    let query = prop::option::of(prop::collection::vec(
        (
            prop::sample::select(vec!["prefix", "limit", "cursor", "x", ""]),
            prop_oneof![
                "[a-zA-Z0-9%+=._~-]{0,12}",
                (0usize..12_000).prop_map(|n| n.to_string()),
                ".{1,8}".prop_map(|k| encode_cursor(&k)),
            ],
        ),
        0..4,
    ));
    (
        prefix,
        prop::collection::vec(segment(), 0..4),
        any::<bool>(),
        query,
    )
        .prop_map(|(prefix, segments, trailing, query)| {
            let mut target = prefix + &segments.join("/");
            if trailing {
                target.push('/');
            }
            if let Some(pairs) = query {
                let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                target.push('?');
                target.push_str(&pairs.join("&"));
            }
            target
        })
}

/// An `If-Match`/`If-None-Match` value: tag-like text, or any visible ASCII.
fn precondition() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.25,
        prop_oneof![
            Just("*".to_owned()),
            "(W/)?\"?[0-9a-fA-F]{30,34}\"?( ?, ?(W/)?\"?[0-9a-f]{32}\"?){0,2}",
            "[!-~][ -~]{0,40}[!-~]",
        ],
    )
}

fn fuzzed() -> impl Strategy<Value = Fuzzed> {
    (
        prop_oneof![
            3 => Just("GET"),
            3 => Just("PUT"),
            2 => Just("DELETE"),
            1 => Just("HEAD"),
            1 => Just("POST"),
            1 => prop::sample::select(vec!["PATCH", "OPTIONS", "TRACE"]),
        ],
        target(),
        precondition(),
        precondition(),
        prop::bool::weighted(0.9),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(method, target, if_match, if_none_match, authorized, body)| Fuzzed {
                method,
                target,
                if_match,
                if_none_match,
                authorized,
                body,
            },
        )
}

impl Fuzzed {
    fn to_bytes(&self, token: &str) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: x\r\n", self.method, self.target);
        if self.authorized {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(v) = &self.if_match {
            head.push_str(&format!("If-Match: {v}\r\n"));
        }
        if let Some(v) = &self.if_none_match {
            head.push_str(&format!("If-None-Match: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Sends one request on its own connection and reads the whole answer.
async fn send(addr: std::net::SocketAddr, request: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| format!("read: {e} after {} bytes", answer.len()))?;
    Ok(answer)
}

/// Checks one raw answer: a status from 200 to 499, and a JSON error body on
/// every error the router makes (hyper's own refusals of unparsable requests
/// have none, and HEAD has none). Returns the status.
fn check_answer(answer: &[u8]) -> Result<u16, TestCaseError> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| TestCaseError::fail(format!("no complete answer: {text:?}")))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("no status line: {head:?}")))?;
    prop_assert!((200..500).contains(&status), "status {status}: {head}");
    if status >= 400 && !body.is_empty() {
        let json: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| TestCaseError::fail(format!("error body is not JSON ({e}): {body:?}")))?;
        prop_assert!(json["code"].is_string(), "{json}");
    }
    Ok(status)
}

/// The kept corpus, `tests/corpus/requests.txt`: requests that once broke a
/// router or sit on a parser's edge, replayed on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_answers_the_kept_corpus() {
    let corpus = include_str!("corpus/requests.txt");
    let server = start(Kind::Sqlite).await;
    let token = system_token();
    let blocks: Vec<&str> = corpus.split("\n=====\n").collect();
    assert!(blocks.len() > 20, "the corpus is there");
    for block in blocks {
        let block: String = block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let (head, body) = block.split_once("\n\n").unwrap_or((block.trim_end(), ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut request = format!("{request_line}\r\nHost: x\r\nConnection: close\r\n");
        for line in lines {
            request.push_str(&line.replace("{token}", &token));
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        // The body is verbatim but for CRLF line ends and the block's last newline.
        let body = body.strip_suffix('\n').unwrap_or(body);
        request.push_str(&body.replace('\n', "\r\n"));
        let answer = send(server.addr, request.clone().into_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}: {request:?}"));
        if let Err(e) = check_answer(&answer) {
            panic!("{e}: {request:?}");
        }
    }
}

#[test]
fn the_router_answers_every_request_without_a_500() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(start(Kind::Sqlite));
    let addr = server.addr;
    let token = system_token();
    let mut runner = TestRunner::new(config(300));
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let outcome = runner.run(&fuzzed(), |request| {
        let answer = runtime
            .block_on(send(addr, request.to_bytes(&token)))
            .map_err(|e| TestCaseError::fail(format!("connection failed: {e}")))?;
        let status = check_answer(&answer)?;
        *seen.lock().unwrap().entry(status).or_default() += 1;
        Ok(())
    });
    runtime.block_on(async move { drop(server) });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // The requests reach the handlers, not only the parsers in front of them.
    let seen = seen.into_inner().unwrap();
    eprintln!("statuses: {seen:?}");
    let success: usize = seen.range(200..300).map(|(_, n)| n).sum();
    assert!(success > 0, "no request succeeded: {seen:?}");
    for status in [400, 404] {
        assert!(seen.contains_key(&status), "no {status} among {seen:?}");
    }
}
