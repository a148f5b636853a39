//! Slow, idle and greedy clients, and a database that runs out of connections:
//! each test holds the real server to one of its limits (`HULY_HEADER_TIMEOUT`,
//! `HULY_BODY_TIMEOUT`, `HULY_IDLE_TIMEOUT`, `HULY_MAX_CONNECTIONS`,
//! `HULY_DB_POOL_TIMEOUT`, `HULY_DB_STATEMENT_TIMEOUT`) and checks that other
//! clients are served meanwhile and that nothing half-sent is stored.
//!
//! Time bounds are generous (a 1 s limit is asserted as "under 5 s") so the
//! tests hold on a loaded two-core machine; what they catch is a limit that
//! does not apply at all.

mod common;

use std::time::{Duration, Instant};

use common::pg;
use common::process::spawn_server;
use common::raw;
use common::server::{start_with, system_token, Kind, TestServer};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

fn key_path(ns: &str, key: &str) -> String {
    format!("/api2/{WS}/{ns}/{key}")
}

async fn status_of(s: &TestServer, method: Method, path: &str) -> u16 {
    s.req(method, path).send().await.unwrap().status().as_u16()
}

/// Reads until the server closes the connection; returns what it sent and
/// when it closed, or `None` for the time if it was still open at `limit`.
async fn read_until_closed(
    mut reader: impl AsyncReadExt + Unpin,
    limit: Duration,
) -> (Vec<u8>, Option<Instant>) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (buf, Some(Instant::now())),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (buf, None),
        }
    }
}

/// Sends `bytes` one at a time, `every` apart, until the server closes the
/// connection or the bytes run out. Returns how many were written, how long
/// until the server closed (if it did within `limit`), and what it sent.
async fn trickle(
    s: &TestServer,
    bytes: &[u8],
    every: Duration,
    limit: Duration,
) -> (usize, Option<Duration>, Vec<u8>) {
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let read = tokio::spawn(read_until_closed(reader, limit));
    let mut sent = 0;
    for byte in bytes {
        if read.is_finished() || writer.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(every).await;
    }
    let (received, closed_at) = read.await.unwrap();
    drop(writer);
    (sent, closed_at.map(|t| t - started), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_are_cut_after_the_header_timeout() {
    // The idle timeout is long: only the header timeout can end this.
    let s = start_with(
        Kind::Sqlite,
        &["--header-timeout", "2s", "--idle-timeout", "60s"],
    )
    .await;
    let mut request = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Slow: ",
        key_path("ns", "slow"),
        system_token()
    )
    .into_bytes();
    request.extend_from_slice(&[b'a'; 200]);
    request.extend_from_slice(b"\r\nContent-Length: 1\r\n\r\nv");
    // A byte every 250 ms: the connection is never idle, just slow.
    let (sent, closed, received) = trickle(
        &s,
        &request,
        Duration::from_millis(250),
        Duration::from_secs(20),
    )
    .await;
    let closed = closed.expect("the server cut the trickling connection");
    assert!(
        closed >= Duration::from_millis(1500) && closed < Duration::from_secs(8),
        "cut after {closed:?} (header timeout 2 s), {sent} bytes sent"
    );
    assert!(sent >= 4, "the trickle was under way: {sent} bytes");
    assert!(sent < request.len(), "the request never completed");
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains(" 20"), "no success answer: {text:?}");
    assert_eq!(
        status_of(&s, Method::GET, &key_path("ns", "slow")).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_of_a_second_request_are_cut_too() {
    let s = start_with(
        Kind::Sqlite,
        &["--header-timeout", "2s", "--idle-timeout", "60s"],
    )
    .await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = raw::read_response(&mut stream).await;
    assert_eq!(first.status, 200);
    let started = Instant::now();
    let (reader, mut writer) = stream.into_split();
    let read = tokio::spawn(read_until_closed(reader, Duration::from_secs(20)));
    let request = format!(
        "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "b".repeat(100)
    );
    for byte in request.as_bytes() {
        if read.is_finished() || writer.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, closed_at) = read.await.unwrap();
    let closed = closed_at.expect("cut") - started;
    assert!(closed < Duration::from_secs(8), "cut after {closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_half_way_is_408_and_not_stored() {
    let s = start_with(Kind::Sqlite, &["--body-timeout", "1s"]).await;
    let token = system_token();
    let cases = [
        (
            "content-length, half sent",
            format!(
                "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{}",
                key_path("ns", "half"),
                "x".repeat(50)
            ),
        ),
        (
            "chunked, half a chunk",
            format!(
                "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n{}",
                key_path("ns", "chunked"),
                "x".repeat(25)
            ),
        ),
        (
            "legacy POST, half sent",
            format!(
                "POST /api/ns/legacy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{}",
                "x".repeat(50)
            ),
        ),
    ];
    for (what, request) in &cases {
        let started = Instant::now();
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        // The client stays connected and silent.
        let resp = raw::read_response(&mut stream).await;
        let took = started.elapsed();
        assert_eq!(resp.status, 408, "{what}");
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["code"], "body_timeout", "{what}");
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        assert!(took < Duration::from_secs(5), "{what}: 408 after {took:?}");
        let (_, closed) = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(
            closed.is_some(),
            "{what}: the connection is closed after 408"
        );
    }
    for path in [
        key_path("ns", "half"),
        key_path("ns", "chunked"),
        "/api/ns/legacy".to_owned(),
    ] {
        assert_eq!(
            status_of(&s, Method::GET, &path).await,
            404,
            "{path}: nothing stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_408_after_the_body_timeout_even_while_bytes_arrive() {
    let s = start_with(Kind::Sqlite, &["--body-timeout", "1s"]).await;
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 40\r\n\r\n",
        key_path("ns", "slow-body"),
        system_token()
    );
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let read = tokio::spawn(read_until_closed(reader, Duration::from_secs(20)));
    // 40 bytes, 200 ms apart: 8 s in all, a byte always arriving.
    for _ in 0..40 {
        if read.is_finished() || writer.write_all(b"y").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (received, closed) = read.await.unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    let closed = closed.expect("closed") - started;
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
    assert_eq!(
        status_of(&s, Method::GET, &key_path("ns", "slow-body")).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let s = start_with(
        Kind::Sqlite,
        &["--idle-timeout", "2s", "--header-timeout", "30s"],
    )
    .await;
    // One that served a request and was kept alive, one that never sent a byte.
    let mut used = TcpStream::connect(s.addr).await.unwrap();
    used.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw::read_response(&mut used).await.status, 200);
    let silent = TcpStream::connect(s.addr).await.unwrap();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        read_until_closed(used, Duration::from_secs(15)),
        read_until_closed(silent, Duration::from_secs(15)),
    );
    for (what, (bytes, closed)) in [("kept alive", a), ("silent", b)] {
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after 15 s")) - started;
        assert!(
            closed >= Duration::from_millis(1500) && closed < Duration::from_secs(8),
            "{what}: closed after {closed:?} (idle timeout 2 s)"
        );
        assert!(bytes.is_empty(), "{what}: nothing more was sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_lives_for_the_idle_timeout_not_the_header_timeout() {
    // The header timeout bounds a request being sent; a connection with no
    // request under way is idle, and lives until the idle timeout.
    let s = start_with(
        Kind::Sqlite,
        &["--idle-timeout", "4s", "--header-timeout", "1s"],
    )
    .await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw::read_response(&mut stream).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Well past the header timeout, the connection still serves.
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), raw::read_response(&mut stream))
        .await
        .expect("an answer on the kept-alive connection");
    assert_eq!(again.status, 200, "{again:?}");
    let started = Instant::now();
    let (_, closed) = read_until_closed(stream, Duration::from_secs(15)).await;
    let closed = closed.expect("closed by the idle timeout") - started;
    assert!(
        closed >= Duration::from_secs(2) && closed < Duration::from_secs(10),
        "closed after {closed:?} (idle timeout 4 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_the_next_client_until_one_leaves() {
    let s = start_with(
        Kind::Sqlite,
        &[
            "--max-connections",
            "4",
            "--idle-timeout",
            "60s",
            "--header-timeout",
            "60s",
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(raw::read_response(&mut stream).await.status, 200);
        held.push(stream);
    }
    // The fifth connects (the kernel's backlog takes it) but is not served.
    let mut fifth = TcpStream::connect(s.addr).await.unwrap();
    fifth
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(1500), fifth.peek(&mut byte)).await;
    assert!(
        early.is_err(),
        "the fifth connection was served over the cap"
    );
    // The four still are.
    for stream in &mut held {
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(raw::read_response(stream).await.status, 200);
    }
    // One leaves: the fifth is served.
    drop(held.pop());
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(5), raw::read_response(&mut fifth))
        .await
        .expect("the fifth is served once a slot frees");
    assert_eq!(resp.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Raises this process's open-file limit (inherited by the servers it starts)
/// to `want` if the hard limit allows; returns the limit now in force.
fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

const SECRET: &str = "slow-clients-secret";

fn process_token() -> String {
    let claims = hulykvs::auth::Claims {
        account: hulykvs::auth::SYSTEM_ACCOUNT,
        workspace: None,
        extra: Default::default(),
        exp: None,
        nbf: None,
    };
    hulykvs::auth::mint(&claims, SECRET).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_cost_little_and_are_closed_while_others_are_served() {
    const IDLE: u64 = 1000;
    // Each connection is a descriptor here and one in the server.
    let limit = raise_fd_limit(4 * IDLE + 256);
    assert!(
        limit >= 2 * IDLE + 128,
        "open-file limit {limit} is too low for {IDLE} connections; raise `ulimit -n`"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &db),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_IDLE_TIMEOUT", "3s"),
    ]);
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let url = server.url(&key_path("ns", "busy"));
    let resp = client
        .put(&url)
        .bearer_auth(process_token())
        .body("warm")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let baseline = rss_kib(pid);

    // A thousand clients, each served once and then idle on a kept-alive connection.
    let addr = server.addr;
    let opened = futures_util::future::join_all((0..IDLE).map(|_| async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let resp = raw::read_response(&mut stream).await;
        assert_eq!(resp.status, 200);
        (stream, Instant::now())
    }))
    .await;
    let with_idle = rss_kib(pid);

    // Meanwhile, other clients are served promptly.
    for i in 0..20 {
        let started = Instant::now();
        let resp = client
            .put(&url)
            .bearer_auth(process_token())
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let resp = client
            .get(&url)
            .bearer_auth(process_token())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), format!("v{i}"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request took {:?} beside {IDLE} idle connections",
            started.elapsed()
        );
    }
    assert!(
        with_idle < 64 * 1024,
        "RSS {with_idle} KiB with {IDLE} idle connections (baseline {baseline} KiB)"
    );

    // Every idle connection is closed after the idle timeout.
    let closed =
        futures_util::future::join_all(opened.into_iter().map(|(stream, served)| async move {
            let (bytes, at) = read_until_closed(stream, Duration::from_secs(30)).await;
            (bytes.is_empty(), at.map(|at| at - served))
        }))
        .await;
    for (quiet, after) in &closed {
        let after = after.expect("an idle connection was still open after 30 s");
        assert!(*quiet, "nothing sent on an idle connection");
        assert!(
            after >= Duration::from_secs(2) && after < Duration::from_secs(20),
            "closed {after:?} after its last answer (idle timeout 3 s)"
        );
    }
    let after = rss_kib(pid);
    eprintln!(
        "RSS: {baseline} KiB at rest, {with_idle} KiB with {IDLE} idle connections, {after} KiB after they closed"
    );
    let resp = client
        .get(&url)
        .bearer_auth(process_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "still serving");
}

// --- The PostgreSQL pool: a row lock holds the connections, the rest wait, then 503.

/// Starts `n` concurrent PUTs of `path`; each reports (body, status, time taken).
/// They are conditional (`If-Match: *`), so each takes a pooled connection of
/// its own: plain PUTs of one namespace would share one batched statement.
fn fire_puts(
    s: &TestServer,
    path: &str,
    n: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, u16, Duration)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..n {
        let request = s
            .req(Method::PUT, path)
            .header("If-Match", "*")
            .body(format!("writer-{i}"));
        let tx = tx.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            if status == 503 {
                assert_eq!(resp.headers()["retry-after"], "1");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["code"], "unavailable");
            }
            let _ = tx.send((format!("writer-{i}"), status, started.elapsed()));
        });
    }
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_in_time_and_recovers() {
    let s = start_with(
        Kind::Postgres,
        &[
            "--db-pool-size",
            "2",
            "--db-pool-timeout",
            "1s",
            "--db-statement-timeout",
            "30s",
        ],
    )
    .await;
    let path = key_path("ns", "locked");
    assert_eq!(
        s.req(Method::PUT, &path)
            .body("original")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let locker = pg::side_connection(&s.db_url).await;
    pg::lock_row(&locker, "ns", "locked").await;

    let mut results = fire_puts(&s, &path, 6);
    // Two PUTs hold the pool's two connections, blocked on the lock; four wait
    // for a connection and give up after the pool timeout.
    for _ in 0..4 {
        let (who, status, took) = tokio::time::timeout(Duration::from_secs(10), results.recv())
            .await
            .expect("an answer while the pool is exhausted")
            .unwrap();
        assert_eq!(status, 503, "{who}");
        assert!(took < Duration::from_secs(5), "{who}: 503 after {took:?}");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), results.recv())
            .await
            .is_err(),
        "the two holding connections are still blocked on the lock"
    );
    // Health needs no pooled connection beyond its own turn: /livez answers.
    let live = s.client.get(s.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    locker.batch_execute("COMMIT").await.unwrap();
    let mut winners = Vec::new();
    for _ in 0..2 {
        let (who, status, _) = tokio::time::timeout(Duration::from_secs(10), results.recv())
            .await
            .expect("the blocked writes finish once the lock is released")
            .unwrap();
        assert_eq!(status, 204, "{who}");
        winners.push(who);
    }
    // Nothing is stuck: reads, writes and readiness work again.
    let resp = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let value = resp.text().await.unwrap();
    assert!(winners.contains(&value), "{value} is one of {winners:?}");
    for i in 0..5 {
        let resp = s
            .req(Method::PUT, &key_path("ns", &format!("after-{i}")))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    assert_eq!(
        s.client
            .get(s.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_bounds_writes_blocked_on_a_lock() {
    let s = start_with(
        Kind::Postgres,
        &[
            "--db-pool-size",
            "2",
            "--db-pool-timeout",
            "1s",
            "--db-statement-timeout",
            "2s",
        ],
    )
    .await;
    let path = key_path("ns", "locked");
    assert_eq!(
        s.req(Method::PUT, &path)
            .body("original")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let locker = pg::side_connection(&s.db_url).await;
    pg::lock_row(&locker, "ns", "locked").await;

    let started = Instant::now();
    let mut results = fire_puts(&s, &path, 6);
    for _ in 0..6 {
        let (who, status, took) = tokio::time::timeout(Duration::from_secs(15), results.recv())
            .await
            .expect("every write answers while the lock is held")
            .unwrap();
        assert_eq!(status, 503, "{who}");
        assert!(took < Duration::from_secs(8), "{who}: 503 after {took:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));

    // The timed-out statements were cancelled in the database, not left to
    // write once the lock goes: nothing waits on the lock any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = pg::lock_waiters(&locker).await;
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} statements still wait on the lock after their 503"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    locker.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        "original",
        "no write that was answered 503 landed later"
    );
    // The pool replaced the connections it dropped.
    for i in 0..5 {
        let resp = s
            .req(Method::PUT, &key_path("ns", &format!("after-{i}")))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let resp = s.req(Method::PUT, &path).body("new").send().await.unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn a_client_sending_the_http2_preface_in_pieces_is_served_http2() {
    // The server tells HTTP/2 from HTTP/1.1 by a peek at the first bytes
    // (http::protocol); a preface that arrives a piece at a time is left to
    // hyper-util to finish reading, and still speaks HTTP/2.
    let s = start_with(Kind::Sqlite, &[]).await;
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.write_all(b"\r\nSM\r\n\r\n").await.unwrap();
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut head))
        .await
        .expect("the server answered within 5 s")
        .unwrap();
    assert_eq!(
        head[3], 4,
        "the server's first frame is its SETTINGS: {head:?}"
    );
    // And a client that starts like the preface but is HTTP/1.1 is answered as one.
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(b"P").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(b"UT /api2/00000000-0000-4000-8000-000000000001/ns/k HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw::read_response(&mut conn).await.status, 401);
}
