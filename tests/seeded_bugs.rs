//! Issue #27: the robustness suite's checkers are shown to catch bugs. A
//! server built with the `test-hooks` feature runs with one bug put in on
//! purpose (`HULYKVS_SEEDED_BUG`, see src/seeded.rs), `hulykvs check`
//! drives it, and the drill must fail naming that kind of violation.
//!
//! `scripts/test` runs this as `cargo test --features test-hooks --test
//! seeded_bugs`; without the feature the file holds no test.
#![cfg(feature = "test-hooks")]

mod common;

use common::process::{hulykvs, spawn_server};

const SECRET: &str = "seeded-secret";

/// The drill's summary against a server running `bug`; asserts it exited 1.
fn drill_against(bug: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", db.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULYKVS_SEEDED_BUG", bug),
    ]);
    let out = hulykvs()
        .args([
            "check",
            "--url",
            &server.url(""),
            "--duration",
            "2s",
            "--watchers",
            "4",
        ])
        .args(["--seed", "7"])
        .env("HULY_TOKEN_SECRET", SECRET)
        .output()
        .expect("run hulykvs check");
    violated(bug, &out)
}

/// The drill's summary; asserts the drill against `bug` exited 1.
fn violated(bug: &str, out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{bug}: the drill did not report a violation\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The summary's line naming each broken watch guarantee with its count.
fn broken(summary: &str) -> String {
    summary
        .lines()
        .find_map(|line| line.strip_prefix("  broken: "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_acknowledged_put_that_was_not_written_breaks_linearizability() {
    let summary = drill_against("put_not_written");
    assert!(summary.contains("linearizable   VIOLATED"), "{summary}");
}

#[test]
fn an_if_match_that_compares_nothing_breaks_linearizability() {
    let summary = drill_against("if_match_ignored");
    assert!(summary.contains("linearizable   VIOLATED"), "{summary}");
}

#[test]
fn a_dropped_watch_event_breaks_reliability() {
    let summary = drill_against("watch_event_dropped");
    assert!(summary.contains("watch          VIOLATED"), "{summary}");
    let broken = broken(&summary);
    assert!(
        broken.contains("reliable") || broken.contains("resumable"),
        "{summary}"
    );
}

/// The instance is killed mid-drill and comes back with the bug: the
/// revisions it answers after the restart reuse ones answered before.
#[test]
fn a_revision_reused_after_a_restart_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let envs = [
        ("HULY_DB_CONNECTION", db.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_BIND_PORT", port.as_str()),
    ];
    let mut before = spawn_server(&envs);
    let drill = hulykvs()
        .args(["check", "--url", &before.url(""), "--duration", "3s"])
        .args(["--watchers", "4", "--seed", "7"])
        .env("HULY_TOKEN_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hulykvs check");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    before.kill();
    let mut with_bug = envs.to_vec();
    with_bug.push(("HULYKVS_SEEDED_BUG", "revision_reused"));
    let _after = spawn_server(&with_bug);
    let out = drill.wait_with_output().expect("wait for hulykvs check");
    let summary = violated("revision_reused after a restart", &out);
    assert!(broken(&summary).contains("revisions"), "{summary}");
}

/// The CockroachDB code path on PostgreSQL at SERIALIZABLE isolation (its
/// data statements, no batching, no LISTEN so watchers poll, serialization
/// failures retried): two instances under the drill hold every guarantee.
#[test]
fn the_cockroach_path_forced_on_postgres_at_serializable_holds() {
    // ROBUSTNESS_RUNS repeats it in a campaign, as tests/robustness.rs does.
    let runs: u64 = std::env::var("ROBUSTNESS_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    for run in 0..runs {
        cockroach_path_run(11 + run);
    }
}

fn cockroach_path_run(seed: u64) {
    let db = common::pg::fresh_database_blocking();
    let serializable = format!(
        "{}{}options=-c%20default_transaction_isolation%3Dserializable",
        db.url,
        if db.url.contains('?') { "&" } else { "?" }
    );
    let envs = [
        ("HULY_DB_CONNECTION", serializable.as_str()),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULYKVS_FORCE_COCKROACH_PATH", "1"),
        ("HULY_WATCH_POLL", "200ms"),
    ];
    let servers = [spawn_server(&envs), spawn_server(&envs)];
    let out = hulykvs()
        .args([
            "check",
            "--url",
            &servers[0].url(""),
            "--url",
            &servers[1].url(""),
        ])
        .args(["--duration", "4s", "--watchers", "8", "--seed"])
        .arg(seed.to_string())
        .env("HULY_TOKEN_SECRET", SECRET)
        .output()
        .expect("run hulykvs check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("CockroachDB path at SERIALIZABLE (seed {seed}):\n{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The path taken: no batched GET or PUT ran (PostgreSQL's own path
    // batches under load; identical listings share a statement on both).
    let metrics = reqwest::blocking::get(servers[0].url("/metrics"))
        .and_then(|r| r.text())
        .expect("/metrics");
    assert!(
        metrics.contains("hulykvs_db_operation_duration_seconds_count"),
        "{metrics:.2000}"
    );
    for operation in ["get", "put"] {
        let batches = common::metrics::sample(
            &metrics,
            "hulykvs_db_batch_size_count",
            &[("db_operation_name", operation)],
        );
        assert_eq!(batches, None, "{operation} batching ran: {metrics:.2000}");
    }
}
