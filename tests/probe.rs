//! `hulykvs probe` (SPEC §20), the image's health check, through the real
//! binary: exit 0 on a ready server, 1 with one line saying why otherwise
//! (refused, no answer in time, a status and its code), its default URL
//! taken from the server's own settings.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::process::{run_hulykvs, spawn_server, spawn_sqlite_server};

fn probe(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut argv = vec!["probe"];
    argv.extend_from_slice(args);
    let out = run_hulykvs(envs, &argv, None);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_ready_server_passes_by_its_own_port_and_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_sqlite_server(dir.path(), "probe-secret", &[]);
    server.wait_for_migrations();
    let port = server.addr.port().to_string();
    let (code, stderr) = probe(&[("HULY_BIND_PORT", &port)], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = probe(&[], &["--url", &server.url("/")]);
    assert_eq!(code, Some(0), "{stderr}");
    // Bound to one address: the probe goes there.
    let (code, stderr) = probe(
        &[("HULY_BIND_HOST", "127.0.0.1"), ("HULY_BIND_PORT", &port)],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn an_unready_server_fails_with_its_status_and_code() {
    // A database that cannot be reached: the server listens, /readyz says 503.
    let server = spawn_server(&[(
        "HULY_DB_CONNECTION",
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
    )]);
    let (code, stderr) = probe(&[], &["--url", &server.url("")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("/readyz") && stderr.contains("503"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(migrating)"),
        "the code is named: {stderr}"
    );
}

#[test]
fn refused_and_silent_servers_fail_saying_so() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let (code, stderr) = probe(&[("HULY_BIND_PORT", &port)], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/readyz"))
            && stderr.contains("connection refused"),
        "{stderr}"
    );

    // Accepts, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let began = Instant::now();
    let (code, stderr) = probe(&[], &["--url", &url, "--timeout", "500ms"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no answer within 500ms"), "{stderr}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    drop(silent);
}

#[test]
fn bad_flags_are_usage_errors() {
    for (envs, args, what) in [
        (&[][..], &["--timeout", "soon"][..], "--timeout"),
        (&[("HULY_BIND_PORT", "http")][..], &[][..], "HULY_BIND_PORT"),
        (&[][..], &["--url", "localhost:8094"][..], "--url"),
    ] {
        let (code, stderr) = probe(envs, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(what), "{args:?}: {stderr}");
    }
}
