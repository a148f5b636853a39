//! `hulykvs serve` as a process: its start line, its settings, signals, a
//! crash in the middle of writes, and a database that is away at start.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{self, OnFailure};
use common::pg;
use common::process::{hulykvs, spawn_server, spawn_server_in};
use common::proxy::{upstream_of, Mode, Proxy};
use hulykvs::auth::{mint, Claims, SYSTEM_ACCOUNT};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "process-secret";
const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

fn token() -> String {
    let claims = Claims {
        account: SYSTEM_ACCOUNT,
        workspace: None,
        extra: BTreeMap::new(),
        exp: None,
        nbf: None,
    };
    mint(&claims, SECRET).unwrap()
}

#[tokio::test]
async fn start_line_names_version_address_and_backend_but_no_password() {
    let db = pg::fresh_database().await;
    // Trust authentication ignores the password, so it can be any string.
    let with_password = db
        .url
        .replacen("://postgres@", "://postgres:hunter2-secret@", 1);
    assert_ne!(with_password, db.url, "test URL has the expected user");
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &with_password),
        ("HULY_TOKEN_SECRET", SECRET),
    ]);
    let resp = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let log = server.stderr_text();
    let start = log.lines().find(|l| l.contains("listening")).unwrap();
    assert!(start.contains(env!("CARGO_PKG_VERSION")), "{start}");
    assert!(start.contains(&server.addr.to_string()), "{start}");
    assert!(start.contains("backend=postgres"), "{start}");
    assert!(
        !log.contains("hunter2-secret"),
        "the password leaked: {log}"
    );
}

#[tokio::test]
async fn default_store_is_sqlite_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_in(Some(dir.path()), &[("HULY_TOKEN_SECRET", SECRET)]);
    let start = server.stderr_text();
    assert!(start.contains("sqlite:hulykvs.db"), "{start}");
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api2/{WS}/ns/key"));
    let resp = client
        .put(&url)
        .bearer_auth(token())
        .body("value")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = client.get(&url).bearer_auth(token()).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"value");
    assert!(dir.path().join("hulykvs.db").exists());
}

#[tokio::test]
async fn the_default_secret_is_warned_about_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_in(Some(dir.path()), &[]);
    let log = server.stderr_text();
    assert!(
        log.contains("WARN") && log.contains("HULY_TOKEN_SECRET"),
        "{log}"
    );
    drop(server);

    let out = hulykvs()
        .arg("serve")
        .current_dir(dir.path())
        .env("HULY_REQUIRE_SECRET", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HULY_TOKEN_SECRET"), "{stderr}");
}

#[test]
fn bad_settings_stop_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("HULY_PAYLOAD_SIZE_LIMIT", "lots"),
        ("HULY_DEFAULT_WORKSPACE_UUID", "not-a-uuid"),
        ("HULY_DB_CONNECTION", "mysql://localhost/x"),
        ("HULY_DB_SCHEME", "bad-name; drop"),
        ("HULY_BIND_HOST", "example.com"),
        ("HULY_DB_STATEMENT_TIMEOUT", "soon"),
        ("HULY_DB_POOL_SIZE", "0"),
    ] {
        let out = hulykvs()
            .arg("serve")
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{var}={value}: {stderr}"
        );
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
        assert!(stderr.starts_with("hulykvs: "), "{stderr}");
    }
    let out = hulykvs()
        .arg("serve")
        .current_dir(dir.path())
        .env("HULY_BIND_PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses a non-numeric port"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HULY_BIND_PORT")
            || String::from_utf8_lossy(&out.stderr).contains("--bind-port")
    );
}

#[test]
fn an_unwritable_sqlite_path_stops_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let target = format!("sqlite:{}/kvs.db", file.display());
    let out = hulykvs()
        .arg("serve")
        .env("HULY_DB_CONNECTION", &target)
        .env("HULY_BIND_PORT", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("hulykvs: ") && last.contains("a-file"),
        "{stderr}"
    );
}

#[tokio::test]
async fn missing_parent_folders_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/kvs.db");
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &format!("sqlite:{}", path.display())),
        ("HULY_TOKEN_SECRET", SECRET),
    ]);
    assert_eq!(
        reqwest::get(server.url("/readyz")).await.unwrap().status(),
        200
    );
    assert!(path.exists());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let mut server = spawn_server(&[
        ("HULY_DB_CONNECTION", &db),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_SHUTDOWN_TIMEOUT", "10s"),
    ]);
    // A request in flight: headers and half of the body sent.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /api2/{WS}/ns/inflight HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 10\r\n\r\nhello",
        token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // New connections are refused once shutdown has begun.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    stream.write_all(b"world").await.unwrap();
    let resp = common::raw::read_response(&mut stream).await;
    assert_eq!(resp.status, 204, "the in-flight request completed");
    let status = server
        .wait_for_exit(Duration::from_secs(10))
        .expect("exited within the drain limit");
    assert_eq!(status.code(), Some(0));

    // The write is there after a restart.
    let server = spawn_server(&[("HULY_DB_CONNECTION", &db), ("HULY_TOKEN_SECRET", SECRET)]);
    let resp = reqwest::Client::new()
        .get(server.url(&format!("/api2/{WS}/ns/inflight")))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"helloworld");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let mut server = spawn_server(&[("HULY_DB_CONNECTION", &db), ("HULY_TOKEN_SECRET", SECRET)]);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn(load::write_until(
        server.url(&format!("/api2/{WS}/crash")),
        token(),
        8,
        Arc::clone(&stop),
        OnFailure::Stop,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill(); // SIGKILL, mid-stream
    stop.store(true, Ordering::SeqCst);
    let writes = writers.await.unwrap();
    let acked = writes.iter().filter(|w| w.acknowledged()).count();
    assert!(acked > 50, "only {acked} writes before the kill");

    let server = spawn_server(&[("HULY_DB_CONNECTION", &db), ("HULY_TOKEN_SECRET", SECRET)]);
    load::assert_writes_durable(&server.url(&format!("/api2/{WS}/crash")), &token(), &writes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_unready_while_the_database_is_away_then_recovers() {
    let db = pg::fresh_database().await;
    let proxy = Proxy::start(upstream_of(&db.url)).await;
    proxy.set(Mode::Refuse);
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &proxy.url_for(&db.url)),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_DB_CONNECT_TIMEOUT", "1s"),
        ("HULY_DB_POOL_TIMEOUT", "1s"),
    ]);
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        client
            .get(server.url("/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let url = server.url(&format!("/api2/{WS}/ns/key"));
    let started = Instant::now();
    let resp = client
        .put(&url)
        .bearer_auth(token())
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5));

    proxy.set(Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after the database came back:\n{}",
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = client
        .put(&url)
        .bearer_auth(token())
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

/// The allocator's options are compiled into the binary (`src/main.rs`):
/// asked to confirm its configuration, jemalloc names the string it read
/// there and sets it. Without it the server peaked at 66-99 MiB under 256
/// connections of mixed load instead of 44 (docs/PERFORMANCE.md).
#[cfg(not(target_env = "msvc"))]
#[test]
fn the_allocator_returns_freed_pages_within_a_second() {
    let output = hulykvs()
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "confirm_conf:true")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("global variable malloc_conf): \"dirty_decay_ms:1000\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("Set conf value: dirty_decay_ms:1000"),
        "{stderr}"
    );
}
