//! Token-secret rotation (SPEC §22), through the real binary: during a
//! rotation tokens of both secrets are accepted and `/metrics` counts them by
//! the secret that verified them; once `HULY_TOKEN_SECRET_PREVIOUS` is dropped
//! the old tokens are refused, cached or not; bad settings stop the start.

mod common;

use std::time::Duration;

use common::metrics::{sample, scrape};
use common::process::{run_hulykvs, spawn_sqlite_server};
use hulykvs::auth::{mint, Claims};

const NEW: &str = "rotation-new-secret";
const OLD: &str = "rotation-old-secret";
const WS: &str = "5c6d7e8f-1111-4222-8333-444455556666";

fn token(secret: &str) -> String {
    mint(
        &Claims::system("rotation-test", Duration::from_secs(600)),
        secret,
    )
    .unwrap()
}

/// The status of `GET` of a value with `token` (a 404 means it was accepted).
async fn status_with(client: &reqwest::Client, url: &str, token: &str) -> u16 {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `hulykvs_tokens_accepted_total{secret="…"}` in a `/metrics` text.
fn accepted(metrics: &str, secret: &str) -> Option<f64> {
    sample(
        metrics,
        "hulykvs_tokens_accepted_total",
        &[("secret", secret)],
    )
}

#[tokio::test]
async fn both_secrets_are_accepted_and_counted_then_the_old_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (new, old, other) = (token(NEW), token(OLD), token("not-configured"));
    {
        let mut server =
            spawn_sqlite_server(dir.path(), NEW, &[("HULY_TOKEN_SECRET_PREVIOUS", OLD)]);
        server.wait_for_migrations();
        let url = server.url(&format!("/api2/{WS}/ns/key"));
        for _ in 0..3 {
            assert_eq!(status_with(&client, &url, &new).await, 404);
        }
        for _ in 0..2 {
            assert_eq!(status_with(&client, &url, &old).await, 404);
        }
        assert_eq!(status_with(&client, &url, &other).await, 401);
        let metrics = scrape(&server.url("/metrics")).await;
        assert_eq!(accepted(&metrics, "current"), Some(3.0), "{metrics}");
        assert_eq!(accepted(&metrics, "previous"), Some(2.0), "{metrics}");
        assert!(!metrics.contains(OLD) && !metrics.contains(NEW));
        server.terminate();
        server.wait_for_exit(Duration::from_secs(10));
    }
    // The rotation's last step: PREVIOUS dropped.
    let mut server = spawn_sqlite_server(dir.path(), NEW, &[]);
    server.wait_for_migrations();
    let url = server.url(&format!("/api2/{WS}/ns/key"));
    assert_eq!(status_with(&client, &url, &new).await, 404);
    assert_eq!(status_with(&client, &url, &old).await, 401);
    let metrics = scrape(&server.url("/metrics")).await;
    assert_eq!(accepted(&metrics, "current"), Some(1.0), "{metrics}");
    assert_eq!(accepted(&metrics, "previous"), None, "{metrics}");
}

#[test]
fn a_bad_previous_secret_stops_the_start_naming_it() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("HULY_TOKEN_SECRET_PREVIOUS", "")], "must not be empty"),
        (
            &[
                ("HULY_TOKEN_SECRET", NEW),
                ("HULY_TOKEN_SECRET_PREVIOUS", NEW),
            ],
            "same as HULY_TOKEN_SECRET",
        ),
        (
            &[
                ("HULY_TOKEN_SECRET", NEW),
                ("HULY_TOKEN_SECRET_PREVIOUS", "secret"),
                ("HULY_REQUIRE_SECRET", "true"),
            ],
            "default",
        ),
    ];
    for (envs, why) in cases {
        let mut all = vec![("HULY_BIND_PORT", "0")];
        all.extend_from_slice(envs);
        let out = run_hulykvs(&all, &["serve"], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{envs:?}: {stderr}");
        assert!(
            stderr.contains("HULY_TOKEN_SECRET_PREVIOUS") && stderr.contains(why),
            "{envs:?}: {stderr}"
        );
        assert!(!stderr.contains(NEW), "a secret in the message: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
