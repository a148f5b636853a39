//! Issue #28: the Grafana dashboard and the Prometheus alerting rules of
//! `deploy/`, checked by the tools that consume them. The rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`: each
//! rule fires when it should and stays quiet when it should not). The
//! dashboard is well formed, and every query of every panel, run against a
//! real Prometheus scraping a real hulykvs on PostgreSQL under known
//! traffic (a drill: reads, writes, conditional writes, transactions,
//! watchers), returns series.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::pg::fresh_database_blocking;
use common::process::{hulykvs, spawn_server};
use common::prometheus::{tool, Prometheus};

const SECRET: &str = "observability-secret";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_alert_rules_load_and_their_unit_tests_pass() {
    let rules = root().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yaml"],
        vec!["test", "rules", "alerts.test.yaml"],
    ] {
        let out = Command::new(tool("promtool"))
            .args(&args)
            .current_dir(&rules)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every rule has a test case naming it.
    let alerts = std::fs::read_to_string(rules.join("alerts.yaml")).unwrap();
    let tests = std::fs::read_to_string(rules.join("alerts.test.yaml")).unwrap();
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}")),
                "{name} has no unit test"
            );
        }
    }
}

/// The dashboard's panels: (title, queries).
fn panels() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/hulykvs.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let variables: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, BTreeSet::from(["datasource", "instance", "job"]));
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().expect("a panel title").to_owned();
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "{title}: id twice"
        );
        assert!(panel["type"].is_string(), "{title}: no type");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let exprs: Vec<String> = panel["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| t["expr"].as_str().expect("an expr").to_owned())
            .collect();
        assert!(!exprs.is_empty(), "{title}: no query");
        out.push((title, exprs));
    }
    out
}

/// A query as Grafana would send it, with every variable on "All".
fn as_sent(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".+")
        .replace("$instance", ".+")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let panels = panels();
    let db = fresh_database_blocking();
    let url = db.url.clone();
    let server = tokio::task::spawn_blocking(move || {
        spawn_server(&[
            ("HULY_DB_CONNECTION", url.as_str()),
            ("HULY_TOKEN_SECRET", SECRET),
        ])
    })
    .await
    .expect("start hulykvs");
    let prometheus = Prometheus::scraping(server.addr);
    // Known traffic: a drill of every kind of operation, with watchers.
    let base = server.url("");
    let drill = tokio::task::spawn_blocking(move || {
        hulykvs()
            .args([
                "check",
                "--url",
                &base,
                "--duration",
                "5s",
                "--watchers",
                "4",
            ])
            .env("HULY_TOKEN_SECRET", SECRET)
            .output()
            .expect("run hulykvs check")
    });
    let drilled = drill.await.expect("the drill");
    assert!(
        drilled.status.success(),
        "{}",
        String::from_utf8_lossy(&drilled.stdout)
    );
    // Until every panel has data (a few scrapes after the traffic), or 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut empty: Vec<String>;
    loop {
        empty = Vec::new();
        for (title, exprs) in &panels {
            for expr in exprs {
                if prometheus.query(&as_sent(expr)).await.is_empty() {
                    empty.push(format!("{title}: {expr}"));
                }
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(prometheus);
    assert!(
        empty.is_empty(),
        "panels whose query returned nothing: {empty:#?}"
    );
    drop(server);
    db.drop_db().await;
}
