//! No log line ever holds a value (SPEC §5). The real binary runs with
//! `RUST_LOG=debug`, `trace` and the default level, on each store; a distinctive
//! value goes through every route and every error path (401, 403, 400s, 404,
//! 405, 408, 412, 413, 503), and then everything the process wrote to stdout
//! and stderr is searched for the value in every form a log could render it:
//! as text, as a Rust byte list, as hex, as base64. Keys may be logged, and
//! the test checks that they are, so it cannot pass on an empty log.

mod common;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::pg;
use common::process::{field, hulykvs, signal};
use common::proxy::{upstream_of, Mode, Proxy};
use hulykvs::auth::{mint, Claims, SYSTEM_ACCOUNT};
use reqwest::{Client, Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

const SECRET: &str = "logs-secret";
const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

/// `hulykvs serve` with both output streams captured whole.
struct Logged {
    child: Child,
    addr: std::net::SocketAddr,
    out: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Logged {
    fn start(envs: &[(&str, &str)], level: Option<&str>) -> Logged {
        let mut cmd = hulykvs();
        cmd.arg("serve")
            .env("HULY_BIND_HOST", "127.0.0.1")
            .env("HULY_BIND_PORT", "0")
            .env("HULY_TOKEN_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(level) = level {
            cmd.env("RUST_LOG", level);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hulykvs serve");
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for mut pipe in [
            Box::new(stdout) as Box<dyn Read + Send>,
            Box::new(stderr) as Box<dyn Read + Send>,
        ] {
            let out = Arc::clone(&out);
            readers.push(std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
            if let Some(addr) = text
                .lines()
                .find(|l| l.contains("listening"))
                .and_then(|l| field(l, "addr"))
            {
                break addr.parse().expect("addr");
            }
            assert!(Instant::now() < deadline, "serve did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        // `serve` listens before it migrates: wait for the migrations too.
        while !String::from_utf8_lossy(&out.lock().unwrap()).contains("migrations applied") {
            assert!(Instant::now() < deadline, "serve did not migrate");
            std::thread::sleep(Duration::from_millis(10));
        }
        Logged {
            child,
            addr,
            out,
            readers,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server with SIGTERM and returns all it wrote.
    fn finish(mut self) -> Vec<u8> {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let out = self.out.lock().unwrap().clone();
        out
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn system_token() -> String {
    mint(
        &Claims {
            account: SYSTEM_ACCOUNT,
            workspace: None,
            extra: Default::default(),
            exp: None,
            nbf: None,
        },
        SECRET,
    )
    .unwrap()
}

fn other_workspace_token() -> String {
    mint(
        &Claims {
            account: Uuid::new_v4(),
            workspace: Some(Uuid::new_v4()),
            extra: Default::default(),
            exp: None,
            nbf: None,
        },
        SECRET,
    )
    .unwrap()
}

/// The values that must never be logged: the canary as text, and a binary
/// value holding it between bytes that are not UTF-8.
struct Canary {
    text: String,
    binary: Vec<u8>,
}

impl Canary {
    fn new() -> Canary {
        let text = format!("VALUE-CANARY-{}", Uuid::new_v4().simple());
        let mut binary = vec![0x00, 0xff, 0xfe];
        binary.extend_from_slice(text.as_bytes());
        binary.extend_from_slice(&[0x80, 0x01]);
        Canary { text, binary }
    }

    /// Every form in which a log could carry the values.
    fn renderings(&self) -> Vec<String> {
        let mut forms = Vec::new();
        for value in [self.text.as_bytes(), &self.binary[..]] {
            let debug = format!("{value:?}");
            forms.push(debug.trim_matches(['[', ']']).to_owned());
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            forms.push(hex.to_uppercase());
            forms.push(hex);
            forms.push(base64::engine::general_purpose::STANDARD.encode(value));
            forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value));
        }
        // The canary's own bytes as a list, wherever it sits in a value.
        let inner = format!("{:?}", self.text.as_bytes());
        forms.push(inner.trim_matches(['[', ']']).to_owned());
        forms.push(self.text.clone());
        // Its random part alone, in case the prefix were escaped differently.
        forms.push(self.text["VALUE-CANARY-".len()..].to_owned());
        forms
    }
}

fn key(ns: &str, key: &str) -> String {
    format!("/api2/{WS}/{ns}/{key}")
}

async fn expect(resp: reqwest::Result<reqwest::Response>, status: u16, what: &str) {
    let resp = resp.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(resp.status().as_u16(), status, "{what}");
    let _ = resp.bytes().await;
}

/// Sends raw bytes and reads whatever comes back within `wait`.
async fn raw(addr: std::net::SocketAddr, request: &[u8], close: bool, wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if close {
        let _ = stream.shutdown().await;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Every route, with and without every precondition, and every error path the
/// store allows, each carrying the canary.
async fn exercise(server: &Logged, canary: &Canary) {
    let c = Client::new();
    let t = system_token();
    let text = canary.text.clone();
    let bin = canary.binary.clone();
    let put = |path: &str| c.put(server.url(path)).bearer_auth(&t);
    let etag = format!("\"{:x}\"", md5::compute(text.as_bytes()));

    // v2 PUT: no precondition, If-None-Match: *, If-Match: *, If-Match: tag.
    expect(
        put(&key("ns", "canary-key"))
            .body(text.clone())
            .send()
            .await,
        204,
        "put",
    )
    .await;
    expect(
        put(&key("ns", "canary-new"))
            .header("if-none-match", "*")
            .body(text.clone())
            .send()
            .await,
        201,
        "put if absent",
    )
    .await;
    expect(
        put(&key("ns", "canary-new"))
            .header("if-none-match", "*")
            .body(text.clone())
            .send()
            .await,
        412,
        "put if absent, present",
    )
    .await;
    expect(
        put(&key("ns", "canary-key"))
            .header("if-match", "*")
            .body(text.clone())
            .send()
            .await,
        204,
        "put if exists",
    )
    .await;
    expect(
        put(&key("ns", "canary-key"))
            .header("if-match", &etag)
            .body(text.clone())
            .send()
            .await,
        204,
        "put if match",
    )
    .await;
    expect(
        put(&key("ns", "canary-key"))
            .header("if-match", "\"00000000000000000000000000000000\"")
            .body(text.clone())
            .send()
            .await,
        412,
        "put if match, other tag",
    )
    .await;
    expect(
        put(&key("ns", "canary-absent"))
            .header("if-match", "*")
            .body(text.clone())
            .send()
            .await,
        412,
        "put if exists, absent",
    )
    .await;
    expect(
        put(&key("ns", "canary-bin"))
            .header("content-type", "application/x-canary")
            .body(bin.clone())
            .send()
            .await,
        204,
        "put binary",
    )
    .await;
    // The legacy API.
    expect(
        c.post(server.url("/api/legacy/canary-key"))
            .bearer_auth(&t)
            .body(text.clone())
            .send()
            .await,
        204,
        "legacy post",
    )
    .await;
    expect(
        c.post(server.url("/api/legacy/canary-bin"))
            .bearer_auth(&t)
            .body(bin.clone())
            .send()
            .await,
        204,
        "legacy post binary",
    )
    .await;
    // HTTP/2.
    let h2 = Client::builder().http2_prior_knowledge().build().unwrap();
    expect(
        h2.put(server.url(&key("ns", "canary-h2")))
            .bearer_auth(&t)
            .body(bin.clone())
            .send()
            .await,
        204,
        "put over h2",
    )
    .await;
    expect(
        h2.get(server.url(&key("ns", "canary-h2")))
            .bearer_auth(&t)
            .send()
            .await,
        200,
        "get over h2",
    )
    .await;

    // Reads.
    for path in [
        key("ns", "canary-key"),
        key("ns", "canary-bin"),
        "/api/legacy/canary-key".into(),
    ] {
        expect(
            c.get(server.url(&path)).bearer_auth(&t).send().await,
            200,
            "get",
        )
        .await;
        expect(
            c.head(server.url(&path)).bearer_auth(&t).send().await,
            200,
            "head",
        )
        .await;
    }
    expect(
        c.get(server.url(&key("ns", "canary-key")))
            .bearer_auth(&t)
            .header("if-none-match", &etag)
            .send()
            .await,
        304,
        "conditional get",
    )
    .await;
    for path in [
        format!("/api2/{WS}/ns"),
        format!("/api2/{WS}/ns?limit=1"),
        format!(
            "/api2/{WS}/ns?prefix=canary&limit=2&cursor={}",
            hulykvs::wire::encode_cursor("canary-bin")
        ),
        "/api/legacy?prefix=canary".into(),
    ] {
        expect(
            c.get(server.url(&path)).bearer_auth(&t).send().await,
            200,
            "list",
        )
        .await;
    }

    // Errors, each carrying the canary as its body.
    expect(
        c.put(server.url(&key("ns", "canary-401")))
            .body(text.clone())
            .send()
            .await,
        401,
        "no token",
    )
    .await;
    expect(
        c.put(server.url(&key("ns", "canary-401")))
            .bearer_auth("x.y.z")
            .body(bin.clone())
            .send()
            .await,
        401,
        "bad token",
    )
    .await;
    expect(
        c.put(server.url(&key("ns", "canary-403")))
            .bearer_auth(other_workspace_token())
            .body(text.clone())
            .send()
            .await,
        403,
        "other workspace",
    )
    .await;
    for (path, headers, what) in [
        (key("ns", "a%00b"), vec![], "invalid key"),
        (
            "/api2/not-a-uuid/ns/k".to_owned(),
            vec![],
            "invalid workspace",
        ),
        (
            key("ns", "k"),
            vec![("if-match", "nonsense")],
            "invalid etag",
        ),
        (
            key("ns", "k"),
            vec![("if-match", "*"), ("if-none-match", "*")],
            "conflicting preconditions",
        ),
        (
            key("ns", "k"),
            vec![("if-none-match", "\"00000000000000000000000000000000\"")],
            "invalid precondition",
        ),
        (
            key("ns", "k"),
            vec![("content-type", &*"x".repeat(300))],
            "long content type",
        ),
    ] {
        let mut request = put(&path).body(text.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        expect(request.send().await, 400, what).await;
    }
    expect(
        c.get(server.url(&format!("/api2/{WS}/ns?limit=0")))
            .bearer_auth(&t)
            .send()
            .await,
        400,
        "invalid limit",
    )
    .await;
    expect(
        put("/nope/canary").body(text.clone()).send().await,
        404,
        "no route",
    )
    .await;
    expect(
        c.get(server.url(&key("ns", "canary-none")))
            .bearer_auth(&t)
            .send()
            .await,
        404,
        "absent",
    )
    .await;
    expect(
        c.post(server.url(&key("ns", "canary-405")))
            .bearer_auth(&t)
            .body(text.clone())
            .send()
            .await,
        405,
        "wrong method",
    )
    .await;
    // Over the payload limit (1 kB here): from Content-Length, and streamed.
    let big = text.repeat(40);
    expect(
        put(&key("ns", "canary-413")).body(big.clone()).send().await,
        413,
        "too large",
    )
    .await;
    let chunks: Vec<Result<String, std::io::Error>> = (0..4).map(|_| Ok(big.clone())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    expect(
        put(&key("ns", "canary-413s")).body(body).send().await,
        413,
        "too large, streamed",
    )
    .await;
    // A body that stops half way: 408 after the body timeout, and a client that leaves: 400.
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 1000\r\n\r\n{text}",
        key("ns", "canary-408")
    );
    let answer = raw(server.addr, head.as_bytes(), false, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let answer = raw(server.addr, head.as_bytes(), true, Duration::from_secs(5)).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // Request smuggling shapes and unparsable requests, with the canary inside.
    let smuggle = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n{text}",
        key("ns", "canary-cl")
    );
    let answer = raw(
        server.addr,
        smuggle.as_bytes(),
        false,
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let garbage = format!("PU\x01T / HTTP/1.1\r\nContent-Length: 50\r\n\r\n{text}");
    let answer = raw(
        server.addr,
        garbage.as_bytes(),
        false,
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // Deletes: conditional, plain, legacy, absent.
    expect(
        c.delete(server.url(&key("ns", "canary-key")))
            .bearer_auth(&t)
            .header("if-match", "\"00000000000000000000000000000000\"")
            .send()
            .await,
        412,
        "delete if match, other tag",
    )
    .await;
    expect(
        c.delete(server.url(&key("ns", "canary-key")))
            .bearer_auth(&t)
            .header("if-match", &etag)
            .send()
            .await,
        204,
        "delete if match",
    )
    .await;
    expect(
        c.delete(server.url(&key("ns", "canary-bin")))
            .bearer_auth(&t)
            .send()
            .await,
        204,
        "delete",
    )
    .await;
    expect(
        c.delete(server.url("/api/legacy/canary-key"))
            .bearer_auth(&t)
            .send()
            .await,
        204,
        "legacy delete",
    )
    .await;
    expect(
        c.delete(server.url(&key("ns", "canary-bin")))
            .bearer_auth(&t)
            .send()
            .await,
        404,
        "delete absent",
    )
    .await;
}

/// The database is gone: every data route answers 503, with the canary in flight.
async fn exercise_unavailable(server: &Logged, canary: &Canary) {
    let c = Client::new();
    let t = system_token();
    for (method, path) in [
        (Method::PUT, key("ns", "canary-503")),
        (Method::GET, key("ns", "canary-key")),
        (Method::DELETE, key("ns", "canary-key")),
        (Method::GET, format!("/api2/{WS}/ns")),
        (Method::POST, "/api/legacy/canary-503".to_owned()),
    ] {
        let mut request = c
            .request(method.clone(), server.url(&path))
            .bearer_auth(&t)
            .body(canary.binary.clone());
        if method == Method::PUT {
            request = request.header("if-none-match", "*");
        }
        let resp = request.send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
    }
    let resp = c
        .put(server.url(&key("ns", "canary-503b")))
        .bearer_auth(&t)
        .body(canary.text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}

/// Asserts that `log` holds no rendering of the canary, but does hold the keys.
fn assert_clean(log: &[u8], canary: &Canary, what: &str) {
    let text = String::from_utf8_lossy(log);
    for form in canary.renderings() {
        assert!(
            !text.contains(&form),
            "{what}: the log holds a value ({form:?}):\n{}",
            text.lines()
                .filter(|l| l.contains(&form))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        !log.windows(canary.binary.len()).any(|w| w == canary.binary),
        "{what}: the binary value appears raw"
    );
    // The test is only worth something if the requests were logged.
    assert!(
        text.contains("canary-key"),
        "{what}: keys are logged:\n{text}"
    );
    assert!(
        text.contains("status=412"),
        "{what}: error answers are logged"
    );
}

const LEVELS: [Option<&str>; 3] = [Some("debug"), Some("trace"), None];

fn common_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HULY_PAYLOAD_SIZE_LIMIT", "1kb"),
        ("HULY_BODY_TIMEOUT", "1s"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_reaches_the_log_on_sqlite() {
    for level in LEVELS {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
        let mut env = common_env();
        env.push(("HULY_DB_CONNECTION", &db));
        let server = Logged::start(&env, level);
        let canary = Canary::new();
        exercise(&server, &canary).await;
        let log = server.finish();
        let what = format!("sqlite, RUST_LOG={level:?}");
        if level == Some("debug") {
            let text = String::from_utf8_lossy(&log);
            assert!(text.contains("DEBUG"), "{what}: debug lines are on");
        }
        assert_clean(&log, &canary, &what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_reaches_the_log_on_postgres_even_when_it_fails() {
    for level in LEVELS {
        let db = pg::fresh_database().await;
        let proxy = Proxy::start(upstream_of(&db.url)).await;
        let url = proxy.url_for(&db.url);
        let mut env = common_env();
        env.extend([
            ("HULY_DB_CONNECTION", url.as_str()),
            ("HULY_DB_CONNECT_TIMEOUT", "1s"),
            ("HULY_DB_POOL_TIMEOUT", "1s"),
            ("HULY_DB_STATEMENT_TIMEOUT", "2s"),
        ]);
        let server = Logged::start(&env, level);
        let canary = Canary::new();
        exercise(&server, &canary).await;
        proxy.set(Mode::Refuse);
        exercise_unavailable(&server, &canary).await;
        proxy.set(Mode::Blackhole);
        exercise_unavailable(&server, &canary).await;
        let log = server.finish();
        let what = format!("postgres, RUST_LOG={level:?}");
        let text = String::from_utf8_lossy(&log);
        assert!(text.contains("status=503"), "{what}: the outage was logged");
        if level == Some("debug") {
            assert!(text.contains("DEBUG"), "{what}: debug lines are on");
        }
        assert_clean(&log, &canary, &what);
    }
}
