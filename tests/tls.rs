//! HTTPS: serving with a certificate from PEM files, reloading it when the
//! files change or on SIGHUP, and mutual TLS with client certificates.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::certs::{Ca, Leaf};
use common::process::{hulykvs, signal, spawn_server};
use common::server::{start_with, Kind, TestServer};

/// Writes a server certificate and key into `dir`; returns the flags that use them.
fn write_server_files(dir: &Path, leaf: &Leaf) -> (String, String) {
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

fn client_trusting(ca: &Ca, port: u16, identity: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(10));
    if let Some(leaf) = identity {
        builder =
            builder.identity(reqwest::Identity::from_pem(leaf.identity_pem().as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn status(client: &reqwest::Client, s_port: u16) -> Result<u16, reqwest::Error> {
    let resp = client
        .get(format!("https://localhost:{s_port}/status"))
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

async fn start_tls(dir: &Path, leaf: &Leaf, extra: &[&str]) -> TestServer {
    let (cert, key) = write_server_files(dir, leaf);
    let mut flags = vec!["--tls-cert", &cert, "--tls-key", &key];
    flags.extend_from_slice(extra);
    start_with(Kind::Sqlite, &flags).await
}

#[tokio::test]
async fn serves_https_and_only_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let s = start_tls(dir.path(), &ca.server(), &[]).await;
    let port = s.addr.port();
    let client = client_trusting(&ca, port, None);
    assert_eq!(status(&client, port).await.unwrap(), 200);
    // A data request over HTTP/2, negotiated by ALPN.
    let resp = client
        .post(format!("https://localhost:{port}/api/ns/key"))
        .bearer_auth(common::server::system_token())
        .body("secret value")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/status"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // A client that does not trust the CA refuses the server.
    let stranger = client_trusting(&Ca::new("other"), port, None);
    assert!(status(&stranger, port).await.is_err());
}

#[tokio::test]
async fn reloads_the_certificate_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old ca");
    let s = start_tls(dir.path(), &old_ca.server(), &[]).await;
    let port = s.addr.port();
    assert_eq!(
        status(&client_trusting(&old_ca, port, None), port)
            .await
            .unwrap(),
        200
    );

    let new_ca = Ca::new("new ca");
    write_server_files(dir.path(), &new_ca.server());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(200) = status(&client_trusting(&new_ca, port, None), port).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served 10 s after the files changed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        status(&client_trusting(&old_ca, port, None), port)
            .await
            .is_err(),
        "the old certificate is gone"
    );

    // A broken file does not take the service down: the last good certificate stays.
    std::fs::write(dir.path().join("server.pem"), "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        status(&client_trusting(&new_ca, port, None), port)
            .await
            .unwrap(),
        200
    );
}

#[tokio::test]
async fn reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    // Trailing blank lines are ignored by PEM parsers; they let the new files
    // below take exactly the old files' sizes.
    let padded = |leaf: Leaf| Leaf {
        cert_pem: format!("{}{}", leaf.cert_pem, "\n".repeat(256)),
        key_pem: format!("{}{}", leaf.key_pem, "\n".repeat(256)),
    };
    let old_ca = Ca::new("old ca");
    let (cert, key) = write_server_files(dir.path(), &padded(old_ca.server()));
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &db),
        ("HULY_TLS_CERT", &cert),
        ("HULY_TLS_KEY", &key),
    ]);
    let port = server.addr.port();
    assert!(
        server.stderr_text().contains("scheme=https"),
        "{}",
        server.stderr_text()
    );
    assert_eq!(
        status(&client_trusting(&old_ca, port, None), port)
            .await
            .unwrap(),
        200
    );

    // Replace the files so that polling cannot notice: same sizes, same times.
    let new_ca = Ca::new("new ca");
    let leaf = new_ca.server();
    for (path, pem) in [(&cert, &leaf.cert_pem), (&key, &leaf.key_pem)] {
        let meta = std::fs::metadata(path).unwrap();
        let mut text = pem.clone();
        assert!(
            text.len() as u64 <= meta.len(),
            "the padding covers the new file"
        );
        while (text.len() as u64) < meta.len() {
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(meta.modified().unwrap()).unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len(), meta.len());
    }
    signal(server.child.id(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(200) = status(&client_trusting(&new_ca, port, None), port).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{}",
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.stderr_text().contains("TLS certificate reloaded"));
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let clients = Ca::new("client ca");
    let client_ca = dir.path().join("clients.pem");
    std::fs::write(&client_ca, &clients.cert_pem).unwrap();
    let client_ca = client_ca.display().to_string();
    let s = start_tls(dir.path(), &ca.server(), &["--tls-client-ca", &client_ca]).await;
    let port = s.addr.port();

    let anonymous = client_trusting(&ca, port, None);
    assert!(
        status(&anonymous, port).await.is_err(),
        "no client certificate: refused in the handshake"
    );
    let impostor = client_trusting(&ca, port, Some(&Ca::new("impostor ca").client("mallory")));
    assert!(
        status(&impostor, port).await.is_err(),
        "a certificate from another CA is refused"
    );
    let member = client_trusting(&ca, port, Some(&clients.client("calendar-sync")));
    assert_eq!(status(&member, port).await.unwrap(), 200);
}

#[test]
fn bad_tls_settings_stop_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    let missing = dir.path().join("missing.pem").display().to_string();
    let out = hulykvs()
        .args(["serve", "--bind-port", "0"])
        .env("HULY_DB_CONNECTION", &db)
        .env("HULY_TLS_CERT", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HULY_TLS_KEY"), "{stderr}");

    let out = hulykvs()
        .args(["serve", "--bind-port", "0"])
        .env("HULY_DB_CONNECTION", &db)
        .env("HULY_TLS_CERT", &missing)
        .env("HULY_TLS_KEY", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("hulykvs: ") && last.contains("missing.pem"),
        "{stderr}"
    );
}
