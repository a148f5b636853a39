//! The change feed across processes (SPEC §12, issue #13): expiry events from
//! the sweeper, history pruned past its retention (`410`), and two `serve`
//! processes on one PostgreSQL database, where a watcher on one sees writes
//! through the other by LISTEN/NOTIFY, not by its (here: one-minute) poll.

mod common;

use std::time::Duration;

use common::metrics::{sample, scrape};
use common::pg;
use common::process::{spawn_server, spawn_sqlite_server, ServerProcess};
use common::sse::Events;
use hulykvs::auth::{mint, Claims};

const WS: &str = "0d0d0d0d-1111-4222-8333-444455556666";
const SECRET: &str = "feed-secret";

fn token() -> String {
    mint(
        &Claims::system("feed-test", Duration::from_secs(3600)),
        SECRET,
    )
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn put(server: &ServerProcess, key: &str, ttl: Option<&str>) -> u64 {
    let mut req = client()
        .put(server.url(&format!("/api2/{WS}/ns/{key}")))
        .bearer_auth(token())
        .body("v");
    if let Some(ttl) = ttl {
        req = req.header("Huly-TTL", ttl);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.headers()["huly-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn watch(server: &ServerProcess, query: &str) -> reqwest::Response {
    client()
        .get(server.url(&format!("/api2/{WS}/ns?watch{query}")))
        .bearer_auth(token())
        .send()
        .await
        .unwrap()
}

async fn expired_values_appear_as_expire_events(server: ServerProcess) {
    let mut events = Events::new(watch(&server, "").await);
    events.until_sync().await;
    assert_eq!(put(&server, "short", Some("1")).await, 1);
    let written = events.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!((written.event.as_str(), written.key()), ("put", "short"));
    assert!(written.data["expire_at"].as_i64().is_some());
    let expired = events.next_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        (expired.event.as_str(), expired.key(), expired.revision()),
        ("expire", "short", 2)
    );
    let metrics = scrape(&server.url("/metrics")).await;
    let value = |name: &str| sample(&metrics, name, &[]);
    assert_eq!(value("hulykvs_watch_streams"), Some(1.0), "{metrics}");
    assert_eq!(value("hulykvs_watch_events_total"), Some(2.0));
    assert!(
        metrics
            .contains("hulykvs_db_operation_duration_seconds_count{db_operation_name=\"changes\"}"),
        "the reader task's queries are timed"
    );
    drop(events);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = scrape(&server.url("/metrics")).await;
        let ended = &[("reason", "client_gone")];
        if sample(&metrics, "hulykvs_watch_stream_ends_total", ended) == Some(1.0)
            && sample(&metrics, "hulykvs_watch_streams", &[]) == Some(0.0)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What keeps a process server's database alive (held for its `Drop`).
#[allow(dead_code)]
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(pg::TestDb),
}

/// A `serve` process on a fresh SQLite file or PostgreSQL database, with `envs`.
async fn serve_on(postgres: bool, envs: &[(&str, &str)]) -> (ServerProcess, Db) {
    if postgres {
        let db = pg::fresh_database().await;
        let mut all = vec![
            ("HULY_DB_CONNECTION", db.url.as_str()),
            ("HULY_TOKEN_SECRET", SECRET),
        ];
        all.extend_from_slice(envs);
        let server = spawn_server(&all);
        (server, Db::Postgres(db))
    } else {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn_sqlite_server(dir.path(), SECRET, envs);
        (server, Db::Sqlite(dir))
    }
}

#[tokio::test]
async fn sqlite_expired_values_appear_as_expire_events() {
    let (server, _db) = serve_on(false, &[("HULY_EXPIRY_SWEEP", "200ms")]).await;
    expired_values_appear_as_expire_events(server).await;
}

#[tokio::test]
async fn postgres_expired_values_appear_as_expire_events() {
    let (server, _db) = serve_on(true, &[("HULY_EXPIRY_SWEEP", "200ms")]).await;
    expired_values_appear_as_expire_events(server).await;
}

async fn old_changes_are_compacted(server: ServerProcess) {
    for key in ["a", "b", "c"] {
        put(&server, key, None).await;
    }
    let status_of = |query: &'static str| {
        let server = &server;
        async move {
            let resp = client()
                .get(server.url(&format!("/api2/{WS}/ns{query}")))
                .bearer_auth(token())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(status_of("?changes&since=0").await.0, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let body = loop {
        // Pruning may run between the writes: wait until all three are gone.
        let (status, body) = status_of("?changes&since=0&wait=0s").await;
        if status == 410 && body["oldest"] == 4 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never compacted: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["code"], "revision_compacted");
    let watched = watch(&server, "&since=1").await;
    assert_eq!(watched.status(), 410);
    let (status, body) = status_of("?changes&since=3&wait=0s").await;
    assert_eq!((status, body["revision"].as_u64()), (200, Some(3)));
    assert_eq!(
        put(&server, "d", None).await,
        4,
        "revisions go on after pruning"
    );
    let (status, body) = status_of("?changes&since=3").await;
    assert_eq!(
        (status, body["changes"][0]["key"].as_str()),
        (200, Some("d"))
    );
}

#[tokio::test]
async fn sqlite_old_changes_are_compacted() {
    let (server, _db) = serve_on(false, &[("HULY_CHANGES_RETENTION", "1s")]).await;
    old_changes_are_compacted(server).await;
}

#[tokio::test]
async fn postgres_old_changes_are_compacted() {
    let (server, _db) = serve_on(true, &[("HULY_CHANGES_RETENTION", "1s")]).await;
    old_changes_are_compacted(server).await;
}

#[tokio::test]
async fn a_watcher_sees_writes_through_another_instance_by_notification() {
    let db = pg::fresh_database().await;
    let envs = [
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_WATCH_POLL", "60s"),
    ];
    let a = spawn_server(&envs);
    let b = spawn_server(&envs);
    // Both poll once a minute: only a notification delivers within seconds.
    let mut on_b = Events::new(watch(&b, "").await);
    on_b.until_sync().await;
    let mut on_a = Events::new(watch(&a, "").await);
    on_a.until_sync().await;
    let mut written = Vec::new();
    for i in 0..20 {
        let server = if i % 2 == 0 { &a } else { &b };
        written.push(put(server, &format!("k{i}"), None).await);
    }
    for events in [&mut on_a, &mut on_b] {
        let mut seen = Vec::new();
        while seen.len() < written.len() {
            let event = events.next_within(Duration::from_secs(5)).await.unwrap();
            seen.push(event.revision());
        }
        assert_eq!(seen, written, "every write, in order, on both instances");
    }
}

#[tokio::test]
async fn the_watch_command_resumes_after_the_service_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_sqlite_server(dir.path(), SECRET, &[]);
    let port = first.addr.port().to_string();
    let url = format!("http://{}", first.addr);
    let mut watcher = std::process::Command::new(env!("CARGO_BIN_EXE_hulykvs"))
        .args([
            "watch", "-w", WS, "ns", "--json", "--since", "0", "--url", &url,
        ])
        .env("HULY_TOKEN_SECRET", SECRET)
        .env_remove("HULY_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(serde_json::from_str(&line).expect("a JSON line"));
        }
    });
    let next = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no line for {what}"))
    };
    assert_eq!(next("sync")["op"], "sync");
    put(&first, "a", None).await;
    put(&first, "b", None).await;
    assert_eq!(next("a")["key"], "a");
    assert_eq!(next("b")["key"], "b");
    first.terminate();
    first
        .wait_for_exit(Duration::from_secs(10))
        .expect("first server stopped");
    // A write while no service runs the watcher can reach, then a new
    // service on the same port: the watcher reconnects from revision 2.
    let second = spawn_sqlite_server(dir.path(), SECRET, &[("HULY_BIND_PORT", &port)]);
    put(&second, "c", None).await;
    let mut after = Vec::new();
    loop {
        let line = next("c");
        if line["op"] != "sync" {
            after.push((
                line["revision"].as_u64().unwrap(),
                line["key"].as_str().unwrap().to_owned(),
            ));
        }
        if after.len() == 1 {
            break;
        }
    }
    assert_eq!(
        after,
        vec![(3, "c".to_owned())],
        "nothing lost, nothing repeated"
    );
    common::process::signal(watcher.id(), "INT");
    let status = watcher.wait().unwrap();
    assert!(status.success(), "Ctrl-C ends watch with 0: {status:?}");
}

#[tokio::test]
async fn watchers_poll_for_writes_no_notification_announces() {
    // Two processes on one SQLite file, as CockroachDB instances are to each
    // other: no notification, so only the poll brings the other's writes.
    let dir = tempfile::tempdir().unwrap();
    let envs = [("HULY_WATCH_POLL", "200ms")];
    let a = spawn_sqlite_server(dir.path(), SECRET, &envs);
    let b = spawn_sqlite_server(dir.path(), SECRET, &envs);
    let mut on_a = Events::new(watch(&a, "").await);
    on_a.until_sync().await;
    let written = put(&b, "from-b", None).await;
    let event = on_a.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!((event.revision(), event.key()), (written, "from-b"));
}
