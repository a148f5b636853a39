//! Issue #27: the robustness suite's checkers are shown to catch bugs. A
//! server built with the `seeded-bugs` feature runs with one bug put in on
//! purpose (`HULYKVS_SEEDED_BUG`, see src/seeded.rs), `hulykvs check`
//! drives it, and the drill must fail naming that kind of violation.
//!
//! `scripts/test` runs this as `cargo test --features seeded-bugs --test
//! seeded_bugs`; without the feature the file holds no test.
#![cfg(feature = "seeded-bugs")]

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
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{bug}: the drill did not report a violation\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
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
    assert!(
        summary.contains("  reliable:") || summary.contains("  resumable:"),
        "{summary}"
    );
}

#[test]
fn a_reused_revision_is_named() {
    let summary = drill_against("revision_reused");
    assert!(summary.contains("  revisions:"), "{summary}");
}
