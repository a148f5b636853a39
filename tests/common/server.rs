//! The real server, in process, on `127.0.0.1:0`, over a real store made for
//! one test: a fresh PostgreSQL database or a fresh SQLite file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Parser;
use hulykvs::acl::Acl;
use hulykvs::auth::{self, Claims, SYSTEM_ACCOUNT};
use hulykvs::cli::{Cli, Command};
use hulykvs::config::{DbTarget, ServeConfig};
use hulykvs::crypto::Keyring;
use hulykvs::http::server::{self, ServerOptions, Stopped};
use hulykvs::http::tls::TlsSource;
use hulykvs::http::AppState;
use hulykvs::store::sealed::Sealed;
use hulykvs::store::{PgStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::pg;

/// The secret every test server verifies tokens with.
pub const SECRET: &str = "test-secret";
/// The legacy API's workspace (the service's default).
pub const DEFAULT_WS: &str = "11111111-2222-3333-4444-555555555555";

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

/// Keeps the test's database alive as long as the server.
pub enum DbGuard {
    Pg(pg::TestDb),
    Sqlite(tempfile::TempDir),
    None,
}

/// A running server; stopped (and its database dropped) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub kind: Kind,
    /// The `HULY_DB_CONNECTION` the server uses.
    pub db_url: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Stopped>>,
    _db: DbGuard,
}

/// A fresh database of `kind`: its URL and what keeps it alive.
pub async fn fresh_db(kind: Kind) -> (String, DbGuard) {
    match kind {
        Kind::Postgres => {
            let db = pg::fresh_database().await;
            (db.url.clone(), DbGuard::Pg(db))
        }
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite:{}", dir.path().join("kvs.db").display());
            (url, DbGuard::Sqlite(dir))
        }
    }
}

/// Starts a server on a fresh database of `kind` with default settings.
pub async fn start(kind: Kind) -> TestServer {
    start_with(kind, &[]).await
}

/// Starts a server on a fresh database with extra `serve` flags.
pub async fn start_with(kind: Kind, flags: &[&str]) -> TestServer {
    let (url, guard) = fresh_db(kind).await;
    let mut server = start_on(kind, &url, flags).await;
    server._db = guard;
    server
}

/// Starts a server on the database at `db_url` (migrating it first).
pub async fn start_on(kind: Kind, db_url: &str, flags: &[&str]) -> TestServer {
    let config = config(db_url, flags);
    let listener = TcpListener::bind(config.bind).await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let tls = config.tls.clone().map(|files| {
        let source = TlsSource::new(files).expect("TLS files");
        Arc::clone(&source).watch(std::time::Duration::from_millis(200));
        source
    });
    let limits = ServerOptions::from_config(&config, tls);
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = match &config.db.target {
        DbTarget::Postgres(url) => {
            let store = PgStore::open(url, &config.db).expect("open PostgreSQL store");
            store.migrate().await.expect("migrate PostgreSQL");
            spawn(store, &config, listener, limits, shutdown)
        }
        DbTarget::Sqlite(path) => {
            let store = SqliteStore::open(path, &config.db).expect("open SQLite store");
            store.migrate().await.expect("migrate SQLite");
            spawn(store, &config, listener, limits, shutdown)
        }
    };
    TestServer {
        addr,
        kind,
        db_url: db_url.to_owned(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        stop: Some(stop),
        task: Some(task),
        _db: DbGuard::None,
    }
}

fn spawn<S: Store>(
    store: S,
    config: &ServeConfig,
    listener: TcpListener,
    limits: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<Stopped> {
    let acl = config.acl_file.clone().map(|file| {
        let acl = Acl::load(file).expect("ACL file");
        Arc::clone(&acl).watch(std::time::Duration::from_millis(200));
        acl
    });
    // As `serve` does: values sealed under the configured keys, if any.
    let keys = Keyring::new(&config.encryption).map(Arc::new);
    let state = Arc::new(AppState::new(Sealed::new(store, keys), config).with_acl(acl));
    state.migrated.store(true, Ordering::Release);
    state.feed.start();
    tokio::spawn(server::serve(listener, state, limits, shutdown))
}

/// A validated configuration, built through the real command line.
pub fn config(db_url: &str, flags: &[&str]) -> ServeConfig {
    let mut argv = vec![
        "hulykvs",
        "serve",
        "--bind-host",
        "127.0.0.1",
        "--bind-port",
        "0",
        "--token-secret",
        SECRET,
        "--db-connection",
        db_url,
    ];
    argv.extend_from_slice(flags);
    let Command::Serve(args) = Cli::try_parse_from(argv).expect("serve flags").command else {
        unreachable!("parsed a serve command line")
    };
    ServeConfig::from_args(&args).expect("valid config")
}

impl TestServer {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request with a system token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(system_token())
    }

    /// The keys of the listing at `path` (every page of it).
    pub async fn keys(&self, path: &str) -> Vec<String> {
        let resp = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        keys_in(&resp.json().await.unwrap())
    }

    /// Stops accepting and drains; returns how the server stopped.
    pub async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Stopped::Drained,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A token for `account`, optionally granting `workspace`, signed with [`SECRET`].
pub fn token(account: Uuid, workspace: Option<Uuid>) -> String {
    token_with(Claims {
        account,
        workspace,
        extra: BTreeMap::new(),
        exp: None,
        nbf: None,
    })
}

/// Signs arbitrary claims with [`SECRET`].
pub fn token_with(claims: Claims) -> String {
    auth::mint(&claims, SECRET).expect("mint")
}

/// A token of the system account, which may use every workspace.
pub fn system_token() -> String {
    token(SYSTEM_ACCOUNT, None)
}

/// The `keys` of a listing's JSON body.
pub fn keys_in(body: &serde_json::Value) -> Vec<String> {
    body["keys"]
        .as_array()
        .expect("a listing has keys")
        .iter()
        .map(|k| k.as_str().expect("keys are strings").to_owned())
        .collect()
}
