//! Issue #11, through the real binary and real tools: `/metrics` after known
//! traffic (counts, labels, nothing secret), checked by `promtool` and
//! scraped by a real Prometheus server; `HULY_METRICS=off`; JSON log lines.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::metrics::{samples, value};
use common::process::{hulykvs, spawn_sqlite_server, ServerProcess};
use common::prometheus::{tool, Prometheus};
use hulykvs::auth::{mint, Claims};

const SECRET: &str = "operations-secret";
const WS: &str = "0e0e0e0e-1111-4222-8333-444455556666";
const NAMESPACE: &str = "private-namespace";
const KEY: &str = "private-key-7f3a";

fn token() -> String {
    mint(
        &Claims::system("operations-test", Duration::from_secs(600)),
        SECRET,
    )
    .unwrap()
}

/// `hulykvs serve` on a new SQLite file, with `envs` on top.
fn sqlite_server(dir: &tempfile::TempDir, envs: &[(&str, &str)]) -> ServerProcess {
    spawn_sqlite_server(dir.path(), SECRET, envs)
}

#[tokio::test]
async fn metrics_count_known_traffic_and_never_name_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &[]);
    let client = reqwest::Client::new();
    let token = token();
    let item = server.url(&format!("/api2/{WS}/{NAMESPACE}/{KEY}"));
    let put = client
        .put(&item)
        .bearer_auth(&token)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    for _ in 0..2 {
        let get = client.get(&item).bearer_auth(&token).send().await.unwrap();
        assert_eq!(get.status(), 200);
    }
    let missing = server.url(&format!("/api2/{WS}/{NAMESPACE}/missing"));
    let get = client
        .get(&missing)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let list = server.url(&format!("/api2/{WS}/{NAMESPACE}"));
    assert_eq!(
        client
            .get(&list)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let resp = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "no token needed");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    for secret in [KEY, NAMESPACE, WS, &token, SECRET] {
        assert!(!text.contains(secret), "{secret:?} appears in /metrics");
    }
    let all = samples(&text);
    let duration = "http_server_request_duration_seconds_count";
    let key_route = "/api2/{workspace}/{namespace}/{key}";
    let by = |method, status, route| {
        value(
            &all,
            duration,
            &[
                ("http_request_method", method),
                ("http_response_status_code", status),
                ("http_route", route),
            ],
        )
    };
    assert_eq!(by("PUT", "204", key_route), Some(1.0), "{text}");
    assert_eq!(by("GET", "200", key_route), Some(2.0), "{text}");
    assert_eq!(by("GET", "404", key_route), Some(1.0), "{text}");
    assert_eq!(
        by("GET", "200", "/api2/{workspace}/{namespace}"),
        Some(1.0),
        "{text}"
    );
    let gets = value(
        &all,
        "hulykvs_db_operation_duration_seconds_count",
        &[("db_operation_name", "get")],
    );
    assert_eq!(gets, Some(3.0), "{text}");
    let bucket = value(
        &all,
        "http_server_request_duration_seconds_bucket",
        &[("http_route", key_route), ("le", "10")],
    );
    assert!(bucket.is_some(), "OpenTelemetry's advised buckets: {text}");
    assert_eq!(
        value(
            &all,
            "hulykvs_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(value(&all, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));
    assert!(value(&all, "process_open_fds", &[]).is_some_and(|v| v > 0.0));
    assert!(value(&all, "process_start_time_seconds", &[]).is_some_and(|v| v > 0.0));
    assert!(value(&all, "process_cpu_seconds_total", &[]).is_some());

    // Prometheus' own linter accepts the exposition.
    let mut check = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn metrics_off_removes_the_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &[("HULY_METRICS", "off")]);
    let resp = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &[]);
    let prometheus = Prometheus::scraping(server.addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let result = prometheus.query("hulykvs_build_info").await;
        if !result.is_empty() {
            break result;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped hulykvs_build_info from {}",
            server.addr
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(found[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(found[0]["metric"]["job"], "hulykvs");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let mut child = hulykvs()
        .arg("serve")
        .env("HULY_DB_CONNECTION", &db)
        .env("HULY_TOKEN_SECRET", SECRET)
        .env("HULY_BIND_HOST", "127.0.0.1")
        .env("HULY_BIND_PORT", "0")
        .env("HULY_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_secs(1));
    common::process::signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
    let lines = lines.join().unwrap();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"listening\"")),
        "{lines:?}"
    );
}
