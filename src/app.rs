//! `hulykvs serve` and `hulykvs migrate` end to end: open the store, listen,
//! apply migrations while already answering probes, serve until SIGTERM or
//! Ctrl-C (or a migration that fails for good).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::acl::Acl;
use crate::config::{DbOptions, DbTarget, ServeConfig, DEFAULT_SECRET};
use crate::crypto::Keyring;
use crate::http::tls::TlsSource;
use crate::http::{self, AppState, ServerOptions, Stopped};
use crate::store::sealed::Sealed;
use crate::store::{expiry, PgStore, SqliteStore, Store, StoreError};

/// How often the TLS files are checked for changes.
const TLS_POLL: Duration = Duration::from_secs(2);
/// How often the ACL policy file is checked for changes.
const ACL_POLL: Duration = Duration::from_secs(2);

/// Runs the service with `config` until a shutdown signal; `Err` for anything
/// that stops it from starting.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    if config.token_secret == DEFAULT_SECRET {
        tracing::warn!(
            "HULY_TOKEN_SECRET is the default \"secret\": anyone can mint tokens; set a real secret (HULY_REQUIRE_SECRET=true makes this fatal)"
        );
    }
    let keys = Keyring::new(&config.encryption).map(Arc::new);
    if let Some(keys) = &keys {
        let ids: Vec<&str> = keys.ids().collect();
        match keys.sealing_id() {
            Some(id) => tracing::info!(key_id = &**id, opens = ?ids, "new values are encrypted"),
            None => {
                tracing::info!(opens = ?ids, "new values are written unencrypted (plaintext first in HULY_ENCRYPTION_KEYS)")
            }
        }
    }
    match &config.db.target {
        DbTarget::Postgres(url) => {
            let store = Sealed::new(PgStore::open(url, &config.db)?, keys);
            serve_store(store, config).await
        }
        DbTarget::Sqlite(path) => {
            let store = Sealed::new(SqliteStore::open(path, &config.db)?, keys);
            serve_store(store, config).await
        }
    }
}

/// Logs, once migrations are applied, each key id that sealed stored rows
/// and is not configured: those rows answer `500 undecryptable`.
async fn check_key_ids<S: Store>(store: &S, configured: &[String]) {
    match store.key_ids_in_use().await {
        Ok(used) => {
            for id in used.iter().filter(|id| !configured.contains(id)) {
                tracing::error!(
                    key_id = %id,
                    "stored values are sealed by key {id:?}, which HULY_ENCRYPTION_KEYS does not hold: they answer 500 undecryptable until it is listed again"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the encryption key ids in use"),
    }
}

/// What `serve` reloads when its file changes or on SIGHUP.
struct Reloaded {
    tls: Option<Arc<TlsSource>>,
    acl: Option<Arc<Acl>>,
}

/// The TLS certificate and the ACL policy, loaded (an error stops `serve`)
/// and watched for changes and SIGHUP.
fn reloaded_files(config: &ServeConfig) -> anyhow::Result<Reloaded> {
    let tls = match &config.tls {
        None => None,
        Some(files) => {
            let source = TlsSource::new(files.clone()).context("cannot use the TLS files")?;
            Arc::clone(&source).watch(TLS_POLL);
            Some(source)
        }
    };
    let acl = match &config.acl_file {
        None => None,
        Some(file) => {
            let acl = Acl::load(file.clone()).context("cannot use HULY_ACL_FILE")?;
            Arc::clone(&acl).watch(ACL_POLL);
            Some(acl)
        }
    };
    Ok(Reloaded { tls, acl })
}

/// The store-independent part of `serve`.
async fn serve_store<S: Store>(store: S, config: ServeConfig) -> anyhow::Result<()> {
    let Reloaded { tls, acl } = reloaded_files(&config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let state = Arc::new(AppState::new(store, &config).with_acl(acl));
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        version = %env!("CARGO_PKG_VERSION"),
        %addr,
        %scheme,
        backend = %state.store.backend(),
        db = %config.db.target.redacted(),
        "listening"
    );
    // Listening comes first: while migrations run or wait for another
    // instance's lease (an index build may take minutes), /livez answers, and
    // /readyz and the data routes answer 503 `migrating`.
    let (failed_tx, mut failed_rx) = oneshot::channel();
    tokio::spawn(migrate_then_run(Arc::clone(&state), &config, failed_tx));
    let mut failure = None;
    let feed_state = Arc::clone(&state);
    let shutdown = async {
        tokio::select! {
            () = shutdown_signal() => {}
            Ok(e) = &mut failed_rx => failure = Some(e),
        }
        // Watch streams and long polls never finish by themselves: end them
        // so the drain waits only for ordinary requests.
        feed_state.feed.close();
    };
    let limits = ServerOptions::from_config(&config, tls);
    match http::serve(listener, state, limits, shutdown).await {
        Stopped::Drained => tracing::info!("stopped"),
        Stopped::TimedOut(open) => {
            tracing::warn!(
                open,
                "stopped with connections still open after the drain limit"
            )
        }
    }
    match failure {
        Some(e) => Err(anyhow::Error::new(e).context("cannot apply migrations")),
        None => Ok(()),
    }
}

/// Migrates (telling `failed` when that fails for good), then starts what
/// needs the migrated tables: the key-id check, the change feed, the sweeper.
fn migrate_then_run<S: Store>(
    state: Arc<AppState<S>>,
    config: &ServeConfig,
    failed: oneshot::Sender<StoreError>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let sweep_every = config.expiry_sweep;
    let key_ids: Vec<String> = config
        .encryption
        .keys
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    async move {
        if let Err(e) = migrate_until_applied(&state).await {
            let _ = failed.send(e);
            return;
        }
        // Beside the feed and the sweeper: on SQLite it reads the table.
        let checking = Arc::clone(&state);
        tokio::spawn(async move { check_key_ids(&*checking.store, &key_ids).await });
        state.feed.start();
        let feed = &state.feed;
        expiry::sweep_forever(&*state.store, sweep_every, |removed| {
            let mut last = None;
            for item in removed {
                let namespace = Some((item.workspace, item.namespace.as_str()));
                if namespace != last {
                    feed.written(item.workspace, &item.namespace);
                    last = namespace;
                }
            }
        })
        .await
    }
}

/// Applies migrations while the service already answers. A database that
/// cannot be reached (or a lease held past its wait) is retried with backoff;
/// any other failure is returned, and stops the service.
async fn migrate_until_applied<S: Store>(state: &AppState<S>) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(500);
    loop {
        match state.store.migrate().await {
            Ok(applied) => {
                for name in &applied {
                    tracing::info!(migration = %name, "migration applied");
                }
                state.migrated.store(true, Ordering::Release);
                tracing::info!("migrations applied; ready");
                return Ok(());
            }
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!(%why, "migrations pending: database unavailable; retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// `hulykvs migrate`: applies pending migrations, or with `status` lists them.
/// Returns the lines to print.
pub async fn migrate(db: DbOptions, status: bool) -> anyhow::Result<Vec<String>> {
    match &db.target {
        DbTarget::Postgres(url) => migrate_store(PgStore::open(url, &db)?, status).await,
        DbTarget::Sqlite(path) => migrate_store(SqliteStore::open(path, &db)?, status).await,
    }
}

async fn migrate_store<S: Store>(store: S, status: bool) -> anyhow::Result<Vec<String>> {
    if status {
        let states = store.migration_status().await?;
        return Ok(states.iter().map(ToString::to_string).collect());
    }
    let applied = store.migrate().await?;
    if applied.is_empty() {
        return Ok(vec!["up to date".to_owned()]);
    }
    Ok(applied
        .into_iter()
        .map(|n| format!("applied  {n}"))
        .collect())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
}
