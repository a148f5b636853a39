//! TLS to the database, against a real PostgreSQL that speaks nothing else:
//! a cluster of these tests' own with `ssl = on`, certificates made at run
//! time, and a `pg_hba.conf` that rejects plaintext over TCP. Each `sslmode`
//! does what libpq's does; the store runs end to end over TLS.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::certs::Ca;
use common::pg::{ClusterSetup, OwnCluster};
use common::process::{hulykvs, spawn_server};
use common::server::{system_token, SECRET};
use hulykvs::config::{DbOptions, DbTarget};
use hulykvs::store::{ItemRef, NewValue, PgStore, PutCondition, Store, StoreError};
use uuid::Uuid;

const WS: &str = "0b0b0b0b-1111-4222-8333-444444444444";

/// The TLS-only cluster and the files a client needs to reach it.
struct TlsCluster {
    cluster: OwnCluster,
    /// The CA that signed the server's certificate.
    ca_file: PathBuf,
    /// A CA that signed nothing the server shows.
    other_ca_file: PathBuf,
    /// A client certificate and key that the server's `ssl_ca_file` trusts.
    client_cert: PathBuf,
    client_key: PathBuf,
    _files: tempfile::TempDir,
}

/// Database whose `pg_hba.conf` line also wants a client certificate.
const CERT_DB: &str = "certdb";

/// The cluster, shared by the tests that run at the same time and stopped
/// when the last of them is done.
fn cluster() -> Arc<TlsCluster> {
    static SHARED: Mutex<Weak<TlsCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(start_tls_cluster());
    *shared = Arc::downgrade(&cluster);
    cluster
}

fn start_tls_cluster() -> TlsCluster {
    let server_ca = Ca::new("hulykvs test server CA");
    let client_ca = Ca::new("hulykvs test client CA");
    let other_ca = Ca::new("hulykvs test unrelated CA");
    let server = server_ca.server();
    let client = client_ca.client("postgres");
    let hba = format!(
        "local all all trust\n\
         hostssl {CERT_DB} all 127.0.0.1/32 trust clientcert=verify-ca\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostnossl all all 127.0.0.1/32 reject\n"
    );
    let cluster = OwnCluster::start(ClusterSetup {
        conf: vec![
            "ssl = on".to_owned(),
            "ssl_cert_file = 'server.crt'".to_owned(),
            "ssl_key_file = 'server.key'".to_owned(),
            "ssl_ca_file = 'client-ca.crt'".to_owned(),
        ],
        hba: Some(hba),
        files: vec![
            ("server.crt".to_owned(), server.cert_pem.clone()),
            ("server.key".to_owned(), server.key_pem.clone()),
            ("client-ca.crt".to_owned(), client_ca.cert_pem.clone()),
        ],
    });
    let files = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, contents: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, contents).expect("write a certificate file");
        path
    };
    let tls = TlsCluster {
        ca_file: write("ca.crt", &server_ca.cert_pem),
        other_ca_file: write("other-ca.crt", &other_ca.cert_pem),
        client_cert: write("client.crt", &client.cert_pem),
        client_key: write("client.key", &client.key_pem),
        cluster,
        _files: files,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            block_on(async {
                let admin = admin(&tls.cluster).await;
                admin
                    .batch_execute(&format!("CREATE DATABASE {CERT_DB}"))
                    .await
                    .expect("create the client-certificate database");
            })
        });
    });
    tls
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A plaintext connection over the cluster's Unix socket.
async fn admin(cluster: &OwnCluster) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&cluster.socket_url(), tokio_postgres::NoTls)
            .await
            .expect("connect over the socket");
    tokio::spawn(connection);
    client
}

impl TlsCluster {
    /// `postgres://postgres@HOST:PORT/DB?PARAMS`.
    fn url(&self, host: &str, db: &str, params: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/{db}?{params}",
            self.cluster.port
        )
    }

    /// A fresh database for one test.
    async fn fresh_db(&self) -> String {
        let name = format!("tls_{}", Uuid::new_v4().simple());
        admin(&self.cluster)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a database");
        name
    }

    /// Whether every session of hulykvs runs over TLS, and how many there are.
    async fn hulykvs_sessions(&self, db: &str) -> (bool, i64) {
        let row = admin(&self.cluster)
            .await
            .query_one(
                "SELECT coalesce(bool_and(s.ssl), false), count(*) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'hulykvs' AND a.datname = $1",
                &[&db],
            )
            .await
            .expect("read pg_stat_ssl");
        (row.get(0), row.get(1))
    }
}

fn options(url: &str) -> DbOptions {
    DbOptions {
        target: DbTarget::Postgres(url.to_owned()),
        schema: "hulykvs".to_owned(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(5),
        pool_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(10),
    }
}

/// Opens a store on `url`, migrates, writes a value and reads it back.
async fn round_trip(url: &str) -> Result<PgStore, StoreError> {
    let store = PgStore::open(url, &options(url))?;
    store.migrate().await?;
    let item = ItemRef {
        workspace: WS.parse().expect("uuid"),
        namespace: "tls",
        key: "greeting",
    };
    let value = Bytes::from_static(b"over TLS");
    store
        .put(
            item,
            NewValue::new(value.clone(), "text/plain".to_owned()),
            PutCondition::Always,
        )
        .await?;
    let entry = store.get(item).await?.expect("the value just written");
    assert_eq!(entry.value, value);
    assert_eq!(entry.md5, md5::compute(&value).0);
    Ok(store)
}

/// The text of a failure that must have happened.
fn failure(outcome: Result<PgStore, StoreError>) -> String {
    match outcome {
        Ok(_) => panic!("connected, but should not have"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let tls = cluster();
    let db = tls.fresh_db().await;
    // No CA given: require takes the certificate as it is (libpq does too).
    let store = round_trip(&tls.url("127.0.0.1", &db, "sslmode=require"))
        .await
        .expect("sslmode=require");
    let (all_tls, sessions) = tls.hulykvs_sessions(&db).await;
    assert!(
        sessions > 0 && all_tls,
        "{sessions} sessions, all TLS: {all_tls}"
    );
    drop(store);

    // prefer, libpq's default and tokio-postgres's, takes the TLS on offer.
    round_trip(&tls.url("127.0.0.1", &db, "sslmode=prefer"))
        .await
        .expect("sslmode=prefer");
    round_trip(&tls.url("127.0.0.1", &db, "application_name=hulykvs"))
        .await
        .expect("no sslmode");
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_works_by_name_and_by_address() {
    let tls = cluster();
    let db = tls.fresh_db().await;
    let ca = format!("sslmode=verify-full&sslrootcert={}", tls.ca_file.display());
    round_trip(&tls.url("localhost", &db, &ca))
        .await
        .expect("verify-full via localhost");
    let store = round_trip(&tls.url("127.0.0.1", &db, &ca))
        .await
        .expect("verify-full via the address in the certificate");
    let (all_tls, sessions) = tls.hulykvs_sessions(&db).await;
    assert!(
        sessions > 0 && all_tls,
        "{sessions} sessions, all TLS: {all_tls}"
    );
    drop(store);
}

#[tokio::test]
async fn another_ca_is_refused_in_every_verifying_mode() {
    let tls = cluster();
    let db = tls.fresh_db().await;
    for mode in ["verify-full", "verify-ca", "require"] {
        let params = format!("sslmode={mode}&sslrootcert={}", tls.other_ca_file.display());
        let why = failure(round_trip(&tls.url("localhost", &db, &params)).await);
        assert!(
            why.contains("database unavailable") && why.contains("certificate"),
            "{mode}: {why}"
        );
    }
    // Without sslrootcert the built-in public roots are used; they do not
    // know a CA made a moment ago.
    let why = failure(round_trip(&tls.url("localhost", &db, "sslmode=verify-full")).await);
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[tokio::test]
async fn another_ca_makes_serve_answer_503_and_migrate_exit_1() {
    let tls = cluster();
    let db = tls.fresh_db().await;
    let url = tls.url(
        "localhost",
        &db,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            tls.other_ca_file.display()
        ),
    );

    let out = hulykvs()
        .arg("migrate")
        .env("HULY_DB_CONNECTION", &url)
        .env("HULY_DB_CONNECT_TIMEOUT", "5s")
        .output()
        .expect("run hulykvs migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("hulykvs: migrate: ") && last.contains("certificate"),
        "{stderr}"
    );

    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &url),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_DB_CONNECT_TIMEOUT", "2s"),
        ("HULY_DB_POOL_TIMEOUT", "2s"),
    ]);
    let client = reqwest::Client::new();
    let ready = client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let token = system_token();
    let started = Instant::now();
    let resp = client
        .put(server.url(&format!("/api2/{WS}/tls/key")))
        .bearer_auth(&token)
        .body("v")
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = server.stderr_text();
    assert!(log.contains("certificate"), "the log says why: {log}");
}

#[tokio::test]
async fn verify_ca_ignores_the_host_name_that_verify_full_checks() {
    let tls = cluster();
    let db = tls.fresh_db().await;
    let ca = tls.ca_file.display();
    // A name the certificate does not hold, reaching the server by address.
    let host = "db.hulykvs.invalid";
    let full = format!("sslmode=verify-full&sslrootcert={ca}&hostaddr=127.0.0.1");
    let why = failure(round_trip(&tls.url(host, &db, &full)).await);
    assert!(why.contains("not valid for name"), "{why}");

    let chain = format!("sslmode=verify-ca&sslrootcert={ca}&hostaddr=127.0.0.1");
    round_trip(&tls.url(host, &db, &chain))
        .await
        .expect("verify-ca with the right CA and the wrong name");
    // require with sslrootcert checks the chain as verify-ca does (libpq).
    let require = format!("sslmode=require&sslrootcert={ca}&hostaddr=127.0.0.1");
    round_trip(&tls.url(host, &db, &require))
        .await
        .expect("require with the right CA and the wrong name");
}

#[tokio::test]
async fn disable_is_refused_by_a_server_that_wants_tls() {
    let tls = cluster();
    let db = tls.fresh_db().await;
    let why = failure(round_trip(&tls.url("127.0.0.1", &db, "sslmode=disable")).await);
    assert!(
        why.contains("pg_hba.conf") && why.contains("no encryption"),
        "{why}"
    );
}

#[tokio::test]
async fn client_certificates_are_sent_when_given() {
    let tls = cluster();
    let ca = tls.ca_file.display();
    let without = format!("sslmode=verify-full&sslrootcert={ca}");
    let why = failure(round_trip(&tls.url("localhost", CERT_DB, &without)).await);
    assert!(why.contains("certificate"), "{why}");

    let with = format!(
        "{without}&sslcert={}&sslkey={}",
        tls.client_cert.display(),
        tls.client_key.display()
    );
    round_trip(&tls.url("localhost", CERT_DB, &with))
        .await
        .expect("with a client certificate");
}

#[test]
fn unusable_tls_files_stop_serve_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing-ca.crt");
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let key = dir.path().join("missing.key");
    for (params, file) in [
        (
            format!("sslmode=verify-full&sslrootcert={}", missing.display()),
            &missing,
        ),
        (
            format!("sslmode=verify-full&sslrootcert={}", garbage.display()),
            &garbage,
        ),
        (
            format!("sslcert={}&sslkey={}", garbage.display(), key.display()),
            &garbage,
        ),
    ] {
        let url = format!("postgres://postgres@127.0.0.1:1/x?{params}");
        let out = hulykvs()
            .arg("serve")
            .env("HULY_DB_CONNECTION", &url)
            .env("HULY_TOKEN_SECRET", SECRET)
            .env("HULY_BIND_HOST", "127.0.0.1")
            .env("HULY_BIND_PORT", "0")
            .output()
            .expect("run hulykvs serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{params}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{params}: {stderr}");
        assert!(
            stderr.starts_with("hulykvs: ")
                && stderr.contains("HULY_DB_CONNECTION")
                && stderr.contains(&file.display().to_string()),
            "{params}: {stderr}"
        );
    }
}
