//! Faults under load, with `hulykvs serve` as a process over PostgreSQL: the
//! database restarting, the service killed with SIGKILL, and the service
//! stopped with SIGTERM. What each must not do: lose an acknowledged write,
//! answer 500 or hang, tear a value, or cut a response short.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{self, OnFailure, Write};
use common::pg::{self, ClusterSetup, OwnCluster};
use common::process::spawn_server;
use common::server::{system_token, SECRET};
use tokio::io::AsyncWriteExt;

const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";
/// Clients sending at once.
const CLIENTS: usize = 8;
/// Bound on one request while the database is away: the pool wait, a
/// connection attempt and a statement (1 s + 1 s + 2 s), with room to spare.
const OUTAGE_REQUEST_LIMIT: Duration = Duration::from_secs(8);

/// Waits (at most `limit`) until `/readyz` answers 200.
async fn wait_ready(client: &reqwest::Client, url: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(resp) = client.get(url).send().await {
            if resp.status() == 200 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn describe(write: &Write) -> String {
    format!("{} after {:?}: {:?}", write.key, write.took, write.outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_answers_503_then_recovers_losing_nothing() {
    // A server of this test's own: the shared one must never restart.
    let cluster = tokio::task::spawn_blocking(|| OwnCluster::start(ClusterSetup::default()))
        .await
        .expect("start a cluster");
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &cluster.admin_url()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_DB_CONNECT_TIMEOUT", "1s"),
        ("HULY_DB_POOL_TIMEOUT", "1s"),
        ("HULY_DB_STATEMENT_TIMEOUT", "2s"),
    ]);
    let probe = reqwest::Client::new();
    assert!(wait_ready(&probe, &server.url("/readyz"), Duration::from_secs(10)).await);

    let base = server.url(&format!("/api2/{WS}/restart"));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load::write_until(
        base.clone(),
        system_token(),
        CLIENTS,
        Arc::clone(&stop),
        OnFailure::KeepGoing,
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let down_at = Instant::now();
    let (cluster, up_at) = tokio::task::spawn_blocking(move || {
        cluster.stop();
        std::thread::sleep(Duration::from_secs(2));
        let up_at = Instant::now();
        cluster.start_again();
        (cluster, up_at)
    })
    .await
    .expect("restart the cluster");
    let recovered = wait_ready(&probe, &server.url("/readyz"), Duration::from_secs(20)).await;
    // Writes go on for a while after recovery, so there are some to check.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let writes = load.await.expect("the writers");
    assert!(
        recovered,
        "not ready 20 s after the database came back:\n{}",
        server.stderr_text()
    );

    for write in &writes {
        assert!(
            matches!(write.status(), Some(200..=299 | 503)),
            "only 2xx or 503 while the database restarts: {}",
            describe(write)
        );
        assert!(
            write.took < OUTAGE_REQUEST_LIMIT,
            "a request hung: {}",
            describe(write)
        );
    }
    let acked_before = writes
        .iter()
        .filter(|w| w.acknowledged() && w.sent < down_at)
        .count();
    assert!(
        acked_before > 20,
        "only {acked_before} writes before the restart"
    );
    let unavailable = writes.iter().filter(|w| w.status() == Some(503)).count();
    assert!(unavailable > 0, "no 503 seen: the outage was not noticed");
    let first_ack_after = writes
        .iter()
        .filter(|w| w.acknowledged() && w.sent >= up_at)
        .map(|w| w.sent)
        .min()
        .expect("no write acknowledged after the database came back");
    assert!(
        first_ack_after - up_at < Duration::from_secs(20),
        "writes succeeded again only after {:?}",
        first_ack_after - up_at
    );

    let slowest = writes.iter().map(|w| w.took).max().unwrap_or_default();
    eprintln!(
        "{} writes, {unavailable} answered 503, slowest {slowest:?}, writing again {:?} after the restart",
        writes.len(),
        first_ack_after - up_at
    );
    load::assert_writes_durable(&base, &system_token(), &writes).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_write_on_postgres() {
    let db = pg::fresh_database().await;
    let envs = [
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
    ];
    let mut server = spawn_server(&envs);
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load::write_until(
        server.url(&format!("/api2/{WS}/crash")),
        system_token(),
        CLIENTS,
        Arc::clone(&stop),
        OnFailure::Stop,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill(); // SIGKILL, mid-stream
    stop.store(true, Ordering::SeqCst);
    let writes = load.await.expect("the writers");
    let acked = writes.iter().filter(|w| w.acknowledged()).count();
    assert!(acked > 50, "only {acked} writes before the kill");
    eprintln!("{acked} writes acknowledged, {} not", writes.len() - acked);
    assert!(
        writes.len() > acked,
        "the kill cut no write short: every writer stops at its first failure"
    );

    let server = spawn_server(&envs);
    let base = server.url(&format!("/api2/{WS}/crash"));
    let stored = load::assert_writes_durable(&base, &system_token(), &writes).await;
    eprintln!("{stored} unacknowledged writes were stored whole");

    // Every row, whoever wrote it, has the digest of its value.
    let rows = db
        .connect()
        .await
        .query("SELECT key, md5, value FROM hulykvs.kvs", &[])
        .await
        .expect("read the table");
    assert!(
        rows.len() >= acked,
        "{} rows, {acked} acknowledged",
        rows.len()
    );
    for row in rows {
        let (key, digest, value): (String, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            digest,
            md5::compute(&value).0,
            "{key}: md5 column and value agree"
        );
    }
}

/// What a client saw of one request while the service was being stopped.
#[derive(Debug)]
enum Seen {
    /// A whole, correct answer.
    Answered,
    /// No answer at all: refused, or closed before a response began.
    NoAnswer(String),
    /// An answer that is wrong: a bad status, wrong bytes, or a body cut short.
    Wrong(String),
}

/// PUTs a key, then GETs it back, until `stop`; every request's fate and
/// when it was known.
async fn put_and_get(base: String, client: usize, stop: Arc<AtomicBool>) -> Vec<(Instant, Seen)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let token = system_token();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    for i in 0..20_000 {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let url = format!("{base}/c{client}-{i:05}");
        let value = format!("value {client}/{i} ").repeat(1 + i % 200);
        let put = match http
            .put(&url)
            .bearer_auth(&token)
            .body(value.clone())
            .send()
            .await
        {
            Err(e) => Seen::NoAnswer(format!("PUT {url}: {e:?}")),
            Ok(r) if r.status() == 204 => Seen::Answered,
            Ok(r) => Seen::Wrong(format!("PUT {url}: {}", r.status())),
        };
        let answered = matches!(put, Seen::Answered);
        seen.push((Instant::now(), put));
        if !answered {
            continue;
        }
        let get = match http.get(&url).bearer_auth(&token).send().await {
            Err(e) => Seen::NoAnswer(format!("GET {url}: {e:?}")),
            Ok(r) if r.status() != 200 => Seen::Wrong(format!("GET {url}: {}", r.status())),
            Ok(r) => match r.bytes().await {
                Ok(body) if body == value.as_bytes() => Seen::Answered,
                Ok(body) => Seen::Wrong(format!(
                    "GET {url}: {} bytes, not {}",
                    body.len(),
                    value.len()
                )),
                Err(e) => Seen::Wrong(format!("GET {url}: body cut short: {e:?}")),
            },
        };
        seen.push((Instant::now(), get));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_in_full_refuses_new_connections_and_exits_0() {
    let db = pg::fresh_database().await;
    let shutdown_timeout = Duration::from_secs(5);
    let mut server = spawn_server(&[
        ("HULY_DB_CONNECTION", db.url.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_SHUTDOWN_TIMEOUT", "5s"),
    ]);
    let base = server.url(&format!("/api2/{WS}/stop"));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(put_and_get(base.clone(), c, Arc::clone(&stop))))
        .collect();

    // A request in flight when the signal comes: headers and half the body.
    let mut slow = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "PUT /api2/{WS}/stop/inflight HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 10\r\n\r\nhello",
        system_token()
    );
    slow.write_all(head.as_bytes())
        .await
        .expect("send half a request");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let signalled = Instant::now();
    server.terminate();

    // New connections are refused while the process still drains.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut refused = false;
    while !refused && Instant::now() < deadline {
        refused = tokio::net::TcpStream::connect(server.addr).await.is_err();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "still accepting connections 3 s after SIGTERM");
    assert!(
        server.child.try_wait().expect("child status").is_none(),
        "exited before the in-flight request was done"
    );
    slow.write_all(b"world").await.expect("send the rest");
    let resp = common::raw::read_response(&mut slow).await;
    assert_eq!(
        resp.status, 204,
        "the request in flight at SIGTERM completed"
    );

    let status = server
        .wait_for_exit(shutdown_timeout + Duration::from_secs(5))
        .expect("did not exit within the drain limit");
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    let took = signalled.elapsed();
    stop.store(true, Ordering::SeqCst);

    let (mut answered, mut unanswered) = (0, 0);
    for client in clients {
        for (at, seen) in client.await.expect("a client") {
            match seen {
                Seen::Answered => answered += 1,
                Seen::Wrong(why) => panic!("a wrong answer while stopping: {why}"),
                Seen::NoAnswer(why) => {
                    assert!(at >= signalled, "no answer before SIGTERM: {why}");
                    unanswered += 1;
                }
            }
        }
    }
    eprintln!("{answered} answered, {unanswered} refused or closed, exit {took:?} after SIGTERM");
    assert!(answered > 50, "only {answered} requests answered");
    assert!(
        took < shutdown_timeout + Duration::from_secs(5),
        "exited {took:?} after SIGTERM"
    );

    let stored: Vec<u8> = db
        .connect()
        .await
        .query_one("SELECT value FROM hulykvs.kvs WHERE key = 'inflight'", &[])
        .await
        .expect("the in-flight write")
        .get(0);
    assert_eq!(stored, b"helloworld");
}
