//! High availability (SPEC §18, issue #18) on real clusters: a primary and
//! a streaming standby made with `initdb` and `pg_basebackup -R`, hulykvs
//! on a two-host URL with `target_session_attrs=read-write`, eight writers
//! recording every acknowledged key. Each scenario fails the primary one
//! way, promotes the standby, and checks that no request hung past the
//! timeouts, that service resumed without a restart, and that every
//! acknowledged key is on the new primary; it prints a report line
//! (`ha report: …`) that docs/RELIABILITY.md quotes.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{assert_writes_durable, write_until, OnFailure, Write};
use common::pg::{ClusterSetup, OwnCluster};
use common::process::spawn_server;
use common::proxy::{Mode, Proxy};
use common::server::{system_token, SECRET};

const WS: &str = "0e0e0e0e-4444-4555-8666-777788889999";
/// Issue #27's bar at the default settings: no request over 5 s...
const REQUEST_BOUND: Duration = Duration::from_secs(5);
/// ...and writes acknowledged again within 3 s of the promotion.
const RESUME_BOUND: Duration = Duration::from_secs(3);

/// How the primary fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `pg_ctl stop -m immediate`: its sockets close.
    Stopped,
    /// A proxy in front of it stops forwarding, closing nothing.
    Partitioned,
    /// It stays up but takes no more writes (`default_transaction_read_only`).
    Demoted,
    /// Replication to the standby stalls silently, then the primary stops:
    /// with asynchronous replication, what it acknowledged meanwhile is lost.
    StoppedLagging,
}

/// What one scenario measured.
#[derive(Debug)]
struct Report {
    acknowledged: usize,
    /// Answers 5xx other than 503: a failover must never show as one.
    server_errors: usize,
    lost: usize,
    unavailable: Duration,
    /// From the promotion to the first acknowledgement after it.
    resumed_after: Duration,
    slowest: Duration,
}

/// The status of `/readyz`, asked with a bound longer than any timeout.
async fn readyz(url: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn sql(port: u16, statement: &str) -> Vec<tokio_postgres::Row> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
    tokio::spawn(conn);
    client
        .query(statement, &[])
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
}

/// The longest stretch without an acknowledgement, from the last one
/// before the first failure to the first one after it.
fn unavailable(writes: &[Write]) -> Duration {
    let mut acked: Vec<Instant> = writes
        .iter()
        .filter(|w| w.acknowledged())
        .map(|w| w.sent + w.took)
        .collect();
    acked.sort();
    acked
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default()
}

async fn failover(fault: Fault, synchronous: bool) -> Report {
    let conf = match synchronous {
        true => vec!["synchronous_standby_names = '*'".to_owned()],
        false => Vec::new(),
    };
    let primary = blocking(|| {
        OwnCluster::start(ClusterSetup {
            conf,
            ..ClusterSetup::default()
        })
    });
    let upstream = format!("127.0.0.1:{}", primary.port).parse().unwrap();
    // The standby replicates through a proxy when the scenario stalls it.
    let replication = Proxy::start(upstream).await;
    let from = match fault {
        Fault::StoppedLagging => replication.addr.port(),
        _ => primary.port,
    };
    let standby = blocking(|| OwnCluster::standby_of(&primary, from));
    // hulykvs reaches the primary through a proxy when the scenario cuts it.
    let front = Proxy::start(upstream).await;
    let first = match fault {
        Fault::Partitioned => front.addr.port(),
        _ => primary.port,
    };
    let url = format!(
        "postgresql://postgres@127.0.0.1:{first},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        standby.port
    );
    // Every timeout at its default: the bar is for those.
    let envs = [
        ("HULY_DB_CONNECTION", url.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
    ];
    let server = blocking(|| spawn_server(&envs));
    let base = server.url(&format!("/api2/{WS}/ha"));
    let token = system_token();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn(write_until(
        base.clone(),
        token.clone(),
        8,
        Arc::clone(&stop),
        OnFailure::KeepGoing,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    match fault {
        Fault::Stopped => blocking(|| primary.stop_immediate()),
        Fault::Partitioned => front.set(Mode::Partition),
        Fault::Demoted => {
            sql(
                primary.port,
                "ALTER SYSTEM SET default_transaction_read_only = on",
            )
            .await;
            sql(primary.port, "SELECT pg_reload_conf()").await;
        }
        Fault::StoppedLagging => {
            replication.set(Mode::Partition);
            tokio::time::sleep(Duration::from_secs(2)).await;
            blocking(|| primary.stop_immediate());
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    if matches!(fault, Fault::Stopped | Fault::Demoted) {
        // Neither host takes writes now: not ready.
        assert_eq!(
            readyz(&server.url("/readyz")).await,
            503,
            "{fault:?}: /readyz before the promotion"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    blocking(|| standby.promote());
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        readyz(&server.url("/readyz")).await,
        200,
        "{fault:?}: /readyz after the promotion"
    );
    stop.store(true, Ordering::SeqCst);
    let writes = writers.await.expect("writers");
    let slowest = writes.iter().map(|w| w.took).max().unwrap_or_default();
    let resumed_after = writes
        .iter()
        .filter(|w| w.acknowledged() && w.sent + w.took > promoted)
        .map(|w| w.sent + w.took - promoted)
        .min()
        .unwrap_or_else(|| panic!("{fault:?}: no write was acknowledged after the promotion"));
    // Every acknowledged key, read by SQL from the new primary.
    let stored: HashSet<String> = sql(
        standby.port,
        "SELECT key FROM hulykvs.kvs WHERE namespace = 'ha'",
    )
    .await
    .iter()
    .map(|row| row.get(0))
    .collect();
    let acknowledged: Vec<&Write> = writes.iter().filter(|w| w.acknowledged()).collect();
    let lost = acknowledged
        .iter()
        .filter(|w| !stored.contains(&w.key))
        .count();
    let report = Report {
        acknowledged: acknowledged.len(),
        server_errors: writes
            .iter()
            .filter(|w| w.status().is_some_and(|s| s >= 500 && s != 503))
            .count(),
        lost,
        unavailable: unavailable(&writes),
        resumed_after,
        slowest,
    };
    eprintln!(
        "ha report: fault={fault:?} synchronous={synchronous} acknowledged={} lost={} unavailable={:.1}s resumed={:.2}s after the promotion slowest={:.2}s requests={}",
        report.acknowledged,
        report.lost,
        report.unavailable.as_secs_f64(),
        report.resumed_after.as_secs_f64(),
        report.slowest.as_secs_f64(),
        writes.len(),
    );
    if lost == 0 {
        // Through the service: each value whole, with the tag acknowledged.
        assert_writes_durable(&base, &token, &writes).await;
    }
    report
}

fn check(fault: Fault, report: &Report) {
    assert!(
        report.slowest < REQUEST_BOUND,
        "{fault:?}: a request took {:?}",
        report.slowest
    );
    assert!(
        report.resumed_after <= RESUME_BOUND,
        "{fault:?}: writes resumed {:?} after the promotion",
        report.resumed_after
    );
    assert_eq!(report.lost, 0, "{fault:?}: acknowledged writes were lost");
    assert_eq!(
        report.server_errors, 0,
        "{fault:?}: answers other than 2xx and 503"
    );
    assert!(report.acknowledged > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_primary_fails_over_to_the_promoted_standby() {
    let report = failover(Fault::Stopped, true).await;
    check(Fault::Stopped, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_primary_is_abandoned_for_the_promoted_standby() {
    let report = failover(Fault::Partitioned, true).await;
    check(Fault::Partitioned, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_demoted_primary_is_left_for_the_promoted_standby() {
    let report = failover(Fault::Demoted, true).await;
    check(Fault::Demoted, &report);
}

/// What synchronous replication is for: without it, the writes the old
/// primary acknowledged while replication lagged are gone after failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn asynchronous_replication_loses_what_the_standby_never_received() {
    let report = failover(Fault::StoppedLagging, false).await;
    assert!(report.slowest < REQUEST_BOUND, "{report:?}");
    assert_eq!(report.server_errors, 0, "{report:?}");
    assert!(
        report.lost > 0,
        "writes acknowledged while replication stalled should be lost: {report:?}"
    );
}

/// A first host that accepts connections and never answers (a black-holed
/// proxy) costs a new connection a moment, not its connect timeout: the
/// next host is tried beside it after 250 ms and takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_first_host_does_not_hold_new_connections_for_its_timeout() {
    let cluster = blocking(|| OwnCluster::start(ClusterSetup::default()));
    let upstream = format!("127.0.0.1:{}", cluster.port).parse().unwrap();
    let silent = Proxy::start(upstream).await;
    silent.set(Mode::Partition);
    let url = format!(
        "postgresql://postgres@{},127.0.0.1:{}/postgres",
        silent.addr, cluster.port
    );
    let started = Instant::now();
    let server = blocking(|| {
        spawn_server(&[
            ("HULY_DB_CONNECTION", url.as_str()),
            ("HULY_TOKEN_SECRET", SECRET),
            ("HULY_DB_CONNECT_TIMEOUT", "20s"),
        ])
    });
    // The server migrates on start through a connection of its own: ready
    // means that connection, and the pool's first, went to the second host.
    let status = readyz(&server.url("/readyz")).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "/readyz through a silent first host");
    assert!(
        took < Duration::from_secs(10),
        "the silent first host held the connection {took:?} (its timeout is 20 s)"
    );
    let put = reqwest::Client::new()
        .put(server.url(&format!("/api2/{WS}/ha/after-silent")))
        .bearer_auth(system_token())
        .body("v")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("PUT");
    assert!(put.status().is_success(), "{}", put.status());
}
