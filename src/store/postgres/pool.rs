//! The connection pool (deadpool) and the one way a statement runs on it:
//! prepared once per connection and cached, bounded by the pool and statement
//! timeouts, cancelled on the server when it overruns, and retried when
//! CockroachDB aborts it with a serialization failure.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, QueueMode, RecyclingMethod, Runtime, TimeoutType,
};
use metrics::Histogram;
use tokio::time::error::Elapsed;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::connect::{Hosts, PoolConnect};
use super::errors::{
    connect_timed_out, db_error, is_failover, retry_conflicts, statement_timed_out,
};
use super::liveness::PROBE_AFTER;
use super::tls::DbTls;
use crate::config::DbOptions;
use crate::store::StoreError;
use crate::telemetry::registry::{Handles, PoolState, DB_POOL_WAIT};

/// The connection pool and the limits that bound its use. Shared (in an
/// `Arc`) with the tasks that run batches, so a batch never depends on the
/// request that started it.
pub(super) struct Pooled {
    pool: Pool,
    /// The hosts, probed when a statement waits long (see `liveness`).
    hosts: Arc<Hosts>,
    tls: DbTls,
    connect_timeout: Duration,
    /// Longest wait for a free connection.
    pub(super) pool_timeout: Duration,
    statement_timeout: Duration,
}

impl Pooled {
    /// Builds the pool; connects only when a connection is first needed.
    pub(super) fn new(
        config: &tokio_postgres::Config,
        hosts: Arc<Hosts>,
        tls: DbTls,
        opts: &DbOptions,
    ) -> Result<Pooled, StoreError> {
        // Each host gets the connect timeout (see `connect`): creating a
        // connection may take that for every host of the URL.
        let create = hosts.budget() + Duration::from_secs(1);
        let manager = Manager::from_connect(
            config.clone(),
            PoolConnect(Arc::clone(&hosts)),
            ManagerConfig {
                // Fast: no round trip per checkout. A connection that died
                // with its server is noticed as closed; one that outlived a
                // failover (to a silent host, or a primary turned read-only)
                // fails its statement, and that failure drops it and every
                // idle connection (`settle`), so only the requests already in
                // flight fail, without a health query on every request.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .wait_timeout(Some(opts.pool_timeout))
            .create_timeout(Some(create))
            .recycle_timeout(Some(opts.connect_timeout))
            // The connection freed last is handed out first: under a load
            // that needs few connections, the same ones (their backends
            // awake and in cache) serve every statement, where handing them
            // out in turn woke each of the pool's backends in turn (issue
            // #29: 25% more PUTs at 16 clients). The rest stay idle; one
            // that died meanwhile is found closed at checkout, or fails its
            // statement and is dropped with its idle siblings (`settle`).
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        Ok(Pooled {
            pool,
            hosts,
            tls,
            connect_timeout: opts.connect_timeout,
            pool_timeout: opts.pool_timeout,
            statement_timeout: opts.statement_timeout,
        })
    }

    /// The pool's connections now.
    pub(super) fn state(&self) -> PoolState {
        let status = self.pool.status();
        PoolState {
            idle: status.available,
            used: status.size.saturating_sub(status.available),
            max: status.max_size,
            pending: status.waiting,
        }
    }

    pub(super) fn no_connection(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "no free database connection within {:?}",
            self.pool_timeout
        ))
    }

    /// A pooled connection, or `Unavailable` when none comes within `wait`
    /// (the pool timeout when `None`).
    pub(super) async fn checkout(
        &self,
        wait: Option<Duration>,
    ) -> Result<deadpool_postgres::Client, StoreError> {
        let started = std::time::Instant::now();
        let got = match wait {
            None => self.pool.get().await,
            Some(wait) => {
                let mut timeouts = self.pool.timeouts();
                timeouts.wait = Some(wait);
                self.pool.timeout_get(&timeouts).await
            }
        };
        static POOL_WAIT: Handles<Histogram, 1> = Handles::new();
        POOL_WAIT
            .get(0, || metrics::histogram!(DB_POOL_WAIT))
            .record(started.elapsed().as_secs_f64());
        got.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => self.no_connection(),
            PoolError::Timeout(_) => connect_timed_out(self.connect_timeout),
            PoolError::Backend(e) => db_error(&e),
            PoolError::Closed => StoreError::Unavailable("connection pool closed".to_owned()),
            PoolError::NoRuntimeSpecified => {
                StoreError::Internal("connection pool has no runtime".to_owned())
            }
            PoolError::PostCreateHook(e) => StoreError::Internal(e.to_string()),
        })
    }

    /// Runs a prepared (and cached) query on a pooled connection, waiting
    /// `wait` (default: the pool timeout) for one.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        wait: Option<Duration>,
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.checkout(wait).await?;
        self.query_on(client, sql, params).await
    }

    /// Runs a prepared (and cached) query on `client`, a connection checked
    /// out of this pool, and hands it back.
    pub(super) async fn query_on(
        &self,
        client: deadpool_postgres::Client,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let conn: &deadpool_postgres::ClientWrapper = &client;
        let outcome = self
            .bounded(|| {
                retry_conflicts(move || async move {
                    let statement = conn.prepare_cached(sql).await?;
                    conn.query(&statement, params).await
                })
            })
            .await;
        self.settle(client, outcome)
    }

    /// Runs a prepared (and cached) statement on a pooled connection; returns
    /// the number of rows it changed.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.execute_waiting(sql, params, None).await
    }

    /// [`Pooled::execute`], waiting `wait` (default: the pool timeout) for a connection.
    pub(super) async fn execute_waiting(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        wait: Option<Duration>,
    ) -> Result<u64, StoreError> {
        let client = self.checkout(wait).await?;
        let conn: &deadpool_postgres::ClientWrapper = &client;
        let outcome = self
            .bounded(|| {
                retry_conflicts(move || async move {
                    let statement = conn.prepare_cached(sql).await?;
                    conn.execute(&statement, params).await
                })
            })
            .await;
        self.settle(client, outcome)
    }

    /// `work` (statements on a pooled connection) within the statement
    /// timeout. Once it has waited `PROBE_AFTER` the hosts are probed, so a
    /// host gone silent has its connections cut (and `work` fails) within
    /// that and the connect timeout, not the statement timeout.
    ///
    /// `work` makes the future: see `Batcher::read` for why it is not handed over made.
    pub(super) async fn bounded<F: Future>(
        &self,
        work: impl FnOnce() -> F,
    ) -> Result<F::Output, Elapsed> {
        let first = PROBE_AFTER.min(self.statement_timeout);
        let mut work = std::pin::pin!(work());
        if let Ok(done) = tokio::time::timeout(first, &mut work).await {
            return Ok(done);
        }
        self.hosts.suspect();
        tokio::time::timeout(self.statement_timeout.saturating_sub(first), work).await
    }

    pub(super) fn settle<T>(
        &self,
        client: deadpool_postgres::Client,
        outcome: Result<Result<T, tokio_postgres::Error>, Elapsed>,
    ) -> Result<T, StoreError> {
        match outcome {
            Ok(Err(e)) if is_failover(&e) => {
                // The server went away, or is no longer a writable primary:
                // neither this connection nor its idle siblings (same
                // server) are worth another request.
                drop(deadpool_postgres::Object::take(client));
                self.purge();
                Err(db_error(&e))
            }
            Ok(result) => result.map_err(|e| db_error(&e)),
            Err(_) => {
                // The statement may still run, and its answer would reach the
                // next user of this connection: cancel it and drop the
                // connection instead of returning it to the pool.
                let cancel = client.cancel_token();
                drop(deadpool_postgres::Object::take(client));
                let (bound, tls) = (self.connect_timeout, self.tls.clone());
                let pool = self.pool.clone();
                tokio::spawn(async move {
                    // A slow statement on a healthy server is cancelled; a
                    // server that does not take the cancel either is silent
                    // (a partition), and so are its idle connections.
                    let cancelled = tokio::time::timeout(bound, cancel.cancel_query(tls)).await;
                    if !matches!(cancelled, Ok(Ok(()))) {
                        purge(&pool);
                    }
                });
                Err(statement_timed_out(self.statement_timeout))
            }
        }
    }

    /// Drops every idle connection, so the next ones are made afresh and
    /// find the current primary.
    pub(super) fn purge(&self) {
        purge(&self.pool);
    }
}

/// Drops every idle connection of `pool`.
fn purge(pool: &Pool) {
    let dropped = pool.retain(|_, _| false);
    if !dropped.removed.is_empty() {
        tracing::info!(
            connections = dropped.removed.len(),
            "dropped idle database connections after a failure of their server"
        );
    }
}
