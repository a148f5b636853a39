//! Issue #27, the robustness suite: two `serve` instances on one PostgreSQL
//! of the test's own (and one instance on SQLite), `hulykvs check` driving 8
//! clients on 10 keys and 8 watchers across them for a few seconds around
//! ONE fault per run, and the history judged against SPEC §19: the drill
//! must exit 0 (every guarantee held, nothing undecided).
//!
//! `ROBUSTNESS_RUNS=N` repeats every fault N times (a campaign); each run
//! prints its figures (operations, unknown outcomes, checker time).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::pg::{ClusterSetup, OwnCluster};
use common::process::{hulykvs, signal, spawn_server, ServerProcess};
use common::proxy::{Mode, Proxy};

const SECRET: &str = "robustness-secret";
/// How long the drill's traffic runs around the fault.
const TRAFFIC: &str = "4s";
/// When the fault strikes, after the drill starts.
const FAULT_AT: Duration = Duration::from_millis(1500);

fn runs() -> usize {
    std::env::var("ROBUSTNESS_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `hulykvs serve` on `port` with the database at `db`.
fn serve(db: &str, port: u16) -> ServerProcess {
    let port = port.to_string();
    spawn_server(&[
        ("HULY_DB_CONNECTION", db),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_BIND_PORT", &port),
        ("HULY_DB_CONNECT_TIMEOUT", "1s"),
        ("HULY_DB_STATEMENT_TIMEOUT", "2s"),
        ("HULY_DB_POOL_TIMEOUT", "2s"),
    ])
}

/// Starts the drill against `urls`; it runs `TRAFFIC`, then judges.
fn start_drill(urls: &[String], report: &Path, seed: u64) -> std::process::Child {
    start_drill_for(urls, report, seed, TRAFFIC)
}

fn start_drill_for(
    urls: &[String],
    report: &Path,
    seed: u64,
    traffic: &str,
) -> std::process::Child {
    let mut cmd = hulykvs();
    cmd.arg("check");
    for url in urls {
        cmd.args(["--url", url]);
    }
    cmd.args([
        "--duration",
        traffic,
        "--clients",
        "8",
        "--keys",
        "10",
        "--watchers",
        "8",
    ])
    .args([
        "--timeout",
        "3s",
        "--budget",
        "120s",
        "--seed",
        &seed.to_string(),
    ])
    .arg("--report")
    .arg(report)
    .env("HULY_TOKEN_SECRET", SECRET)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd.spawn().expect("spawn hulykvs check")
}

/// Waits for the drill and asserts every guarantee held.
fn judged(name: &str, child: std::process::Child) -> Output {
    judged_beside(name, child, &[])
}

/// [`judged`], with the last lines the instances logged shown when the
/// drill fails, to tell a checker's verdict from an outage.
fn judged_beside(name: &str, child: std::process::Child, servers: &[ServerProcess]) -> Output {
    let out = child.wait_with_output().expect("wait for hulykvs check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{name}:\n{stdout}");
    if out.status.code() != Some(0) {
        for (i, server) in servers.iter().enumerate() {
            let text = server.stderr_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "{name}: instance {i} logged, last lines first:\n{}",
                tail.join("\n")
            );
        }
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: the drill found a violation or could not decide\n{stdout}\n{stderr}"
    );
    out
}

/// Runs `fault` once per run against two instances on a PostgreSQL cluster
/// of the test's own; `fault` gets the cluster and the instances.
fn with_postgres(
    name: &str,
    fault: impl Fn(&OwnCluster, &mut [ServerProcess; 2], &[u16; 2], &str),
) {
    for run in 0..runs() {
        let cluster = OwnCluster::start(ClusterSetup::default());
        let db = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
        let ports = [free_port(), free_port()];
        let mut servers = [serve(&db, ports[0]), serve(&db, ports[1])];
        let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
        let report = tempfile::tempdir().expect("tempdir");
        let drill = start_drill(&urls, report.path(), 1000 + run as u64);
        std::thread::sleep(FAULT_AT);
        fault(&cluster, &mut servers, &ports, &db);
        judged_beside(&format!("{name} (run {run})"), drill, &servers);
    }
}

#[test]
fn no_fault() {
    with_postgres("no fault", |_, _, _, _| {});
}

#[test]
fn an_instance_killed_and_restarted() {
    with_postgres("kill -9 of an instance", |_, servers, ports, db| {
        servers[0].kill();
        std::thread::sleep(Duration::from_millis(500));
        servers[0] = serve(db, ports[0]);
    });
}

#[test]
fn postgres_killed_and_restarted() {
    with_postgres("kill -9 of PostgreSQL", |cluster, _, _, _| {
        cluster.stop_immediate();
        std::thread::sleep(Duration::from_millis(500));
        cluster.start_again();
    });
}

#[test]
fn an_instance_paused_for_two_seconds() {
    with_postgres("SIGSTOP of an instance for 2 s", |_, servers, _, _| {
        let pid = servers[0].child.id();
        signal(pid, "STOP");
        std::thread::sleep(Duration::from_secs(2));
        signal(pid, "CONT");
    });
}

/// Between the instances and PostgreSQL, a proxy of the test's own: the
/// link blackholed (no FIN, no RST), slowed (75 ± 50 ms a chunk) or lossy
/// (every second connection silenced), each for a moment. One test each, so
/// a campaign runs them side by side.
#[tokio::test(flavor = "multi_thread")]
async fn the_database_link_blackholed() {
    through_the_link(
        "the database link blackholed for 1.5 s",
        Mode::Partition,
        1500,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_link_slowed() {
    through_the_link("the database link slowed for 2 s", Mode::Delay, 2000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn half_the_database_connections_silenced() {
    through_the_link(
        "half the database connections silenced for 1.5 s",
        Mode::Lossy,
        1500,
    )
    .await;
}

async fn through_the_link(name: &str, mode: Mode, hold: u64) {
    for run in 0..runs() {
        let cluster = OwnCluster::start(ClusterSetup::default());
        let upstream = format!("127.0.0.1:{}", cluster.port)
            .parse()
            .expect("address");
        let proxy = Proxy::start(upstream).await;
        let db = format!("postgres://postgres@{}/postgres", proxy.addr);
        let servers =
            tokio::task::spawn_blocking(move || [serve(&db, free_port()), serve(&db, free_port())])
                .await
                .expect("start the instances");
        let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
        let report = tempfile::tempdir().expect("tempdir");
        let drill = start_drill(&urls, report.path(), 4000 + run as u64);
        tokio::time::sleep(FAULT_AT).await;
        proxy.set(mode);
        tokio::time::sleep(Duration::from_millis(hold)).await;
        proxy.set(Mode::Up);
        let name = format!("{name} (run {run})");
        let servers = tokio::task::spawn_blocking(move || {
            judged_beside(&name, drill, &servers);
            servers
        })
        .await
        .expect("judge the drill");
        drop(servers);
        drop(cluster);
    }
}

/// A primary with a synchronous standby; the primary stopped (as a crash)
/// and the standby promoted a second later. The instances know both hosts
/// and follow the promotion by themselves.
#[test]
fn the_primary_stopped_and_its_synchronous_standby_promoted() {
    for run in 0..runs() {
        let primary = OwnCluster::start(ClusterSetup {
            conf: vec!["synchronous_standby_names = '*'".to_owned()],
            ..ClusterSetup::default()
        });
        let standby = OwnCluster::standby_of(&primary, primary.port);
        let db = format!(
            "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            primary.port, standby.port
        );
        let servers = [serve(&db, free_port()), serve(&db, free_port())];
        let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
        let report = tempfile::tempdir().expect("tempdir");
        let drill = start_drill_for(&urls, report.path(), 5000 + run as u64, "8s");
        std::thread::sleep(FAULT_AT);
        primary.stop_immediate();
        std::thread::sleep(Duration::from_secs(1));
        standby.promote();
        judged_beside(
            &format!("failover to a synchronous standby (run {run})"),
            drill,
            &servers,
        );
    }
}

#[test]
fn sqlite_instance_killed_and_restarted() {
    for run in 0..runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
        let port = free_port();
        let mut server = serve(&db, port);
        let report = tempfile::tempdir().expect("tempdir");
        let drill = start_drill(&[server.url("")], report.path(), 2000 + run as u64);
        std::thread::sleep(FAULT_AT);
        server.kill();
        std::thread::sleep(Duration::from_millis(300));
        let _server = serve(&db, port);
        judged(
            &format!("SQLite, kill -9 of its instance (run {run})"),
            drill,
        );
    }
}

/// `hulykvs check --judge FILE --report DIR`: the verdict on a recorded history.
fn judge_file(file: &Path, report: &Path) -> Output {
    hulykvs()
        .args(["check", "--judge"])
        .arg(file)
        .arg("--report")
        .arg(report)
        .output()
        .expect("run hulykvs check --judge")
}

/// The page's DOM as headless Chromium renders it.
fn rendered(page: &Path) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .unwrap_or_else(|| {
            panic!("this test renders the drill's report in headless Chromium: install it (Debian: apt-get install chromium; scripts/test does)")
        });
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_violation_is_caught_and_the_report_page_names_it_in_a_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let server = serve(&db, free_port());
    let report = tempfile::tempdir().expect("tempdir");
    judged(
        "a drill to tamper with",
        start_drill(&[server.url("")], report.path(), 3000),
    );
    let dom = rendered(&report.path().join("report.html"));
    assert!(dom.contains("Linearizability held"), "{dom:.2000}");
    assert!(dom.contains("operations on key k0"), "{dom:.2000}");

    // A read that saw a value no write ever wrote, and a watcher's event lost.
    let text = std::fs::read_to_string(report.path().join("history.json")).unwrap();
    let mut saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ops = saved["history"]["operations"].as_array_mut().unwrap();
    let read = ops
        .iter_mut()
        .find(|op| op["outcome"]["found"].is_string())
        .expect("a read that found a value");
    read["outcome"]["found"] = "0123456789abcdef0123456789abcdef".into();
    let id = read["id"].as_u64().unwrap();
    let events = saved["watch"]["watchers"][0]["sessions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|s| s["events"].as_array_mut().unwrap())
        .find(|e| e.len() >= 3)
        .expect("a connection with three events");
    events.remove(1);
    let tampered = report.path().join("tampered.json");
    std::fs::write(&tampered, saved.to_string()).unwrap();
    let verdict = tempfile::tempdir().expect("tempdir");
    let out = judge_file(&tampered, verdict.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("linearizable   VIOLATED"), "{stdout}");
    assert!(
        stdout.contains("reliable") || stdout.contains("resumable"),
        "{stdout}"
    );
    let dom = rendered(&verdict.path().join("report.html"));
    assert!(dom.contains("Violation of linearizability"), "{dom:.3000}");
    assert!(
        dom.contains("class=\"stuck") || dom.contains("stuck\""),
        "{dom:.3000}"
    );
    assert!(dom.contains("Watch violations"), "{dom:.3000}");
    println!("tampered read: operation #{id}");
}
