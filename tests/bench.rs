//! `hulykvs bench` end to end: a short run against the real server on SQLite,
//! its JSON report, and its exit codes when the service is away or a flag is bad.

mod common;

use std::process::Output;

use common::process::{hulykvs, spawn_server};
use serde_json::Value;

const SECRET: &str = "bench-secret";

/// Runs `hulykvs bench` against `url` with `args`.
fn bench(url: &str, args: &[&str]) -> Output {
    hulykvs()
        .arg("bench")
        .args(["--url", url])
        .args(args)
        .env("HULY_TOKEN_SECRET", SECRET)
        .output()
        .expect("run hulykvs bench")
}

/// Parses the one JSON line on stdout and checks what every report must hold.
fn checked_report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    let requests = report["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}\n{stderr}");
    let by_status: u64 = report["status"]
        .as_object()
        .expect("status map")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert_eq!(by_status, requests, "{report}");
    let latency = &report["latency_us"];
    let [p50, p90, p99, max] = ["p50", "p90", "p99", "max"].map(|q| latency[q].as_u64().unwrap());
    assert!(
        0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{report}"
    );
    assert!(latency["mean"].as_f64().unwrap() > 0.0, "{report}");
    let rps = report["rps"].as_f64().unwrap();
    let seconds = report["duration_s"].as_f64().unwrap();
    assert!((rps * seconds - requests as f64).abs() < 1.0, "{report}");
    report
}

#[test]
fn mixed_run_on_sqlite_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("bench.db").display());
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &db),
        ("HULY_TOKEN_SECRET", SECRET),
        // The start line only: per-request lines would slow the server down.
        ("RUST_LOG", "warn,hulykvs::app=info"),
    ]);
    let out = bench(
        &server.url(""),
        &[
            "--workload",
            "mixed",
            "--mix",
            "get=50,put=20,cas=20,list=10",
            "--connections",
            "4",
            "--duration",
            "1500ms",
            "--warmup",
            "200ms",
            "--keys",
            "200",
            "--list-keys",
            "30",
            "--json",
        ],
    );
    let report = checked_report(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("req/s"),
        "a progress line each second: {stderr}"
    );
    assert_eq!(report["workload"], "mixed");
    assert_eq!(report["connections"], 4);
    assert_eq!(report["duration_s"], 1.5);
    let status = report["status"].as_object().unwrap();
    for code in status.keys() {
        assert!(["200", "204", "412"].contains(&code.as_str()), "{report}");
    }
    assert!(
        status.contains_key("200") && status.contains_key("204"),
        "{report}"
    );
    assert!(report["cas_retries"].as_u64().is_some(), "{report}");

    // The seeded keys are there, named by their index.
    let key = hulykvs()
        .args(["get", "--url", &server.url(""), "-w"])
        .arg(hulykvs::cli::bench::BENCH_WORKSPACE)
        .args(["bench", "199"])
        .env("HULY_TOKEN_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    assert_eq!(key.stdout.len(), 100, "a value of --value-size bytes");

    // The legacy routes and their default workspace.
    let out = bench(
        &server.url(""),
        &[
            "--legacy",
            "--workload",
            "list",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--keys",
            "30",
            "-c",
            "2",
            "--json",
        ],
    );
    let report = checked_report(&out);
    assert_eq!(report["workload"], "list");
    assert_eq!(report["status"].as_object().unwrap().len(), 1, "{report}");
    assert!(report["status"]["200"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn unreachable_service_is_exit_1_with_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = bench(&url, &["--duration", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("hulykvs: cannot reach http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_flags_are_exit_2() {
    for args in [
        &["--workload", "scan"][..],
        &["--connections", "0"][..],
        &["--duration", "soon"][..],
        &["--workload", "mixed", "--mix", "get=1,zap=1"][..],
        &["--legacy", "--workload", "cas"][..],
    ] {
        let out = bench("http://127.0.0.1:9", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}
