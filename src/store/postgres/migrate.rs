//! The migration runner of PostgreSQL and CockroachDB: detects the engine
//! from `SELECT version()`, creates the bookkeeping tables, and applies the
//! pending files of `sql/postgres/` or `sql/cockroach/` under a lease row both
//! engines honour (advisory locks are no-ops on CockroachDB). DDL runs on
//! connections of its own, outside the pool, so it never waits for (or
//! starves) pooled connections.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use uuid::Uuid;

use super::errors::{
    backoff, db_error, is_creation_race, is_lock_contention, jitter, retry_conflicts,
    statement_timed_out,
};
use super::sql::Flavor;
use super::PgStore;
use crate::store::migrations::{self, History, Migration, MigrationState};
use crate::store::StoreError;

/// Lifetime of the migration lease; renewed while migrations run, so it only
/// runs out when its holder died.
const LEASE_TTL: &str = "30 seconds";
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long `migrate` waits for another instance to finish before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(120);
const LEASE_POLL: Duration = Duration::from_millis(250);
/// `lock_timeout` for migration statements on PostgreSQL: an `ALTER TABLE`
/// queued behind a long transaction blocks all traffic on the table, so it
/// gives up quickly and is retried instead.
const DDL_LOCK_TIMEOUT: &str = "5s";
/// Bound on one migration statement; index builds on a large table take long.
const DDL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DDL_ATTEMPTS: u32 = 6;
const BOOTSTRAP_ATTEMPTS: u32 = 6;

/// The statements of the migration runner, schema-qualified.
struct Bookkeeping {
    bootstrap: [String; 3],
    history: String,
    record: String,
    take_lease: String,
    renew_lease: String,
    release_lease: String,
}

impl Bookkeeping {
    fn new(schema: &str) -> Bookkeeping {
        let history = format!("{schema}.hulykvs_migrations");
        let lock = format!("{schema}.hulykvs_migration_lock");
        Bookkeeping {
            bootstrap: [
                format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {history} (version INT8 PRIMARY KEY, \
                     name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {lock} (id INT8 PRIMARY KEY, \
                     holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
                ),
            ],
            history: format!(
                "SELECT version, name, applied_at::TEXT FROM {history} ORDER BY version"
            ),
            record: format!(
                "INSERT INTO {history} (version, name) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING"
            ),
            // One statement takes a free or expired lease, so two instances
            // can never both see it as theirs.
            take_lease: format!(
                "INSERT INTO {lock} AS l (id, holder, expires_at) \
                 VALUES (1, $1, now() + INTERVAL '{LEASE_TTL}') \
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at WHERE l.expires_at < now() RETURNING l.holder"
            ),
            renew_lease: format!(
                "UPDATE {lock} SET expires_at = now() + INTERVAL '{LEASE_TTL}' \
                 WHERE id = 1 AND holder = $1"
            ),
            release_lease: format!("DELETE FROM {lock} WHERE id = 1 AND holder = $1"),
        }
    }
}

impl PgStore {
    /// [`crate::store::Store::migrate`]: connects, detects the engine, and
    /// applies what is pending under the lease.
    pub(super) async fn run_migrations(&self) -> Result<Vec<String>, StoreError> {
        let lease = Arc::new(self.connect().await?);
        let flavor = self.detect(&lease).await?;
        let sql = Bookkeeping::new(&self.schema);
        self.bootstrap(&lease, &sql).await?;
        let migrations = flavor.migrations();
        // Most starts find nothing to do: they need not queue for the lease.
        if migrations::pending(migrations, &self.history(&lease, &sql).await?).is_empty() {
            self.mark_migrated(flavor);
            return Ok(Vec::new());
        }

        let holder = Uuid::new_v4().to_string();
        self.take_lease(&lease, &sql, &holder).await?;
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(renew_lease(
            Arc::clone(&lease),
            sql.renew_lease.clone(),
            holder.clone(),
            Arc::clone(&lost),
            self.statement_timeout,
        ));
        let outcome = self
            .apply_pending(flavor, migrations, &lease, &sql, &lost)
            .await;
        heartbeat.abort();
        let params: [&(dyn ToSql + Sync); 1] = [&holder];
        let released = self
            .bounded(retry_conflicts(|| {
                lease.execute(&sql.release_lease, &params)
            }))
            .await;
        if let Err(e) = released {
            // It runs out by itself within LEASE_TTL.
            tracing::warn!(error = %e, "could not release the migration lease");
        }
        let applied = outcome?;
        self.mark_migrated(flavor);
        Ok(applied)
    }

    /// [`crate::store::Store::migration_status`].
    pub(super) async fn read_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        let client = self.connect().await?;
        let flavor = self.detect(&client).await?;
        let history = if self.table_exists(&client, "hulykvs_migrations").await? {
            self.history(&client, &Bookkeeping::new(&self.schema))
                .await?
        } else {
            History::new()
        };
        Ok(migrations::status(flavor.migrations(), history))
    }

    /// A connection of its own, outside the pool, so the migration runner never
    /// waits for (or starves) pooled connections, whatever the pool size.
    async fn connect(&self) -> Result<Client, StoreError> {
        let connected = self.hosts.connect().await.map_err(|failed| {
            StoreError::Unavailable(format!("cannot connect to the database: {}", failed.why))
        })?;
        let connection = connected.connection;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "migration connection ended");
            }
        });
        Ok(connected.client)
    }

    async fn detect(&self, client: &Client) -> Result<Flavor, StoreError> {
        if let Some(flavor) = self.flavor.get() {
            return Ok(*flavor);
        }
        let row = self
            .bounded(client.query_one("SELECT version()", &[]))
            .await?;
        let version: String = row.try_get(0).map_err(|e| db_error(&e))?;
        let flavor = Flavor::from_version(&version);
        tracing::debug!(backend = flavor.name(), version, "database detected");
        let _ = self.flavor.set(flavor);
        Ok(flavor)
    }

    /// Runs `work` within the statement timeout, mapping its errors.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.statement_timeout, work).await {
            Ok(outcome) => outcome.map_err(|e| db_error(&e)),
            Err(_) => Err(statement_timed_out(self.statement_timeout)),
        }
    }

    async fn table_exists(&self, client: &Client, table: &str) -> Result<bool, StoreError> {
        let row = self
            .bounded(client.query_one(
                "SELECT count(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname::TEXT = $1::TEXT AND tablename::TEXT = $2::TEXT",
                &[&self.schema_name, &table],
            ))
            .await?;
        let count: i64 = row.try_get(0).map_err(|e| db_error(&e))?;
        Ok(count > 0)
    }

    /// Creates the schema and the runner's two tables. Checks first, as
    /// `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege on the database
    /// even when the schema exists.
    async fn bootstrap(&self, client: &Client, sql: &Bookkeeping) -> Result<(), StoreError> {
        if self.table_exists(client, "hulykvs_migrations").await?
            && self.table_exists(client, "hulykvs_migration_lock").await?
        {
            return Ok(());
        }
        let mut attempt = 1;
        'retry: loop {
            for statement in &sql.bootstrap {
                match tokio::time::timeout(self.statement_timeout, client.batch_execute(statement))
                    .await
                {
                    Err(_) => return Err(statement_timed_out(self.statement_timeout)),
                    Ok(Ok(())) => {}
                    // IF NOT EXISTS still races on PostgreSQL: two sessions
                    // both see nothing and one fails on a catalog index.
                    Ok(Err(e)) if attempt < BOOTSTRAP_ATTEMPTS && is_creation_race(&e) => {
                        tracing::debug!(attempt, error = %db_error(&e), "schema bootstrap raced, retrying");
                        tokio::time::sleep(backoff(attempt, Duration::from_millis(50))).await;
                        attempt += 1;
                        continue 'retry;
                    }
                    Ok(Err(e)) => return Err(db_error(&e)),
                }
            }
            return Ok(());
        }
    }

    /// Recorded migrations: version → (name, applied at).
    async fn history(&self, client: &Client, sql: &Bookkeeping) -> Result<History, StoreError> {
        let rows = self
            .bounded(retry_conflicts(|| client.query(&sql.history, &[])))
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?))))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| db_error(&e))
    }

    async fn take_lease(
        &self,
        client: &Client,
        sql: &Bookkeeping,
        holder: &str,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + LEASE_WAIT;
        let mut waiting = false;
        let params: [&(dyn ToSql + Sync); 1] = [&holder];
        loop {
            let rows = self
                .bounded(retry_conflicts(|| client.query(&sql.take_lease, &params)))
                .await?;
            if !rows.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "another instance has held the migration lock for over {LEASE_WAIT:?}"
                )));
            }
            if !waiting {
                tracing::info!("waiting for another instance to finish migrating");
                waiting = true;
            }
            tokio::time::sleep(LEASE_POLL / 2 + jitter(LEASE_POLL)).await;
        }
    }

    /// Applies what is still pending, holding the lease. DDL runs on a
    /// connection of its own so the lease can be renewed meanwhile.
    async fn apply_pending(
        &self,
        flavor: Flavor,
        migrations: &[Migration],
        lease: &Client,
        sql: &Bookkeeping,
        lost: &AtomicBool,
    ) -> Result<Vec<String>, StoreError> {
        // Read again under the lease: another instance may just have finished.
        let todo = migrations::pending(migrations, &self.history(lease, sql).await?);
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let ddl = self.connect().await?;
        // A server or role default could cut an index build short; DDL_TIMEOUT
        // bounds each statement instead.
        self.bounded(ddl.batch_execute("SET statement_timeout = 0"))
            .await?;
        let mut applied = Vec::new();
        for migration in todo {
            if lost.load(Ordering::SeqCst) {
                return Err(StoreError::Internal(
                    "lost the migration lease while migrating".to_owned(),
                ));
            }
            tracing::info!(migration = migration.name, "applying migration");
            self.run_migration(flavor, &ddl, migration).await?;
            let params: [&(dyn ToSql + Sync); 2] = [&migration.version, &migration.name];
            self.bounded(retry_conflicts(|| ddl.execute(&sql.record, &params)))
                .await?;
            applied.push(migration.name.to_owned());
        }
        Ok(applied)
    }

    /// Runs one migration statement by statement, retrying the whole of it
    /// when a lock could not be had in time; every statement is idempotent.
    async fn run_migration(
        &self,
        flavor: Flavor,
        ddl: &Client,
        migration: &Migration,
    ) -> Result<(), StoreError> {
        let text = migration.sql.replace("{schema}", &self.schema);
        let statements = split_statements(&text);
        let mut attempt = 1;
        loop {
            match self.run_statements(flavor, ddl, &statements).await {
                Ok(()) => return Ok(()),
                Err(DdlFailure::Db(e)) if attempt < DDL_ATTEMPTS && is_lock_contention(&e) => {
                    tracing::warn!(
                        migration = migration.name,
                        attempt,
                        error = %db_error(&e),
                        "migration could not get its lock in time, retrying"
                    );
                    tokio::time::sleep(backoff(attempt, Duration::from_millis(500))).await;
                    attempt += 1;
                }
                Err(DdlFailure::Db(e)) => {
                    let why = match db_error(&e) {
                        StoreError::Internal(why)
                        | StoreError::Unavailable(why)
                        | StoreError::Undecryptable(why) => why,
                    };
                    return Err(StoreError::Internal(format!(
                        "migration {}: {why}",
                        migration.name
                    )));
                }
                Err(DdlFailure::TimedOut) => {
                    return Err(StoreError::Internal(format!(
                        "migration {} did not finish within {DDL_TIMEOUT:?}",
                        migration.name
                    )))
                }
            }
        }
    }

    async fn run_statements(
        &self,
        flavor: Flavor,
        ddl: &Client,
        statements: &[String],
    ) -> Result<(), DdlFailure> {
        for statement in statements {
            if flavor == Flavor::Postgres {
                // A CONCURRENTLY build blocks nobody while it waits for older
                // transactions, so it may wait as long as it needs.
                let lock_timeout = if statement.contains("CONCURRENTLY") {
                    "0"
                } else {
                    DDL_LOCK_TIMEOUT
                };
                ddl.batch_execute(&format!("SET lock_timeout = '{lock_timeout}'"))
                    .await
                    .map_err(DdlFailure::Db)?;
            }
            match tokio::time::timeout(DDL_TIMEOUT, ddl.batch_execute(statement)).await {
                Ok(outcome) => outcome.map_err(DdlFailure::Db)?,
                Err(_) => {
                    // Let the server stop the statement rather than run on.
                    let token = ddl.cancel_token();
                    let cancel = token.cancel_query(self.tls.clone());
                    let _ = tokio::time::timeout(self.connect_timeout, cancel).await;
                    return Err(DdlFailure::TimedOut);
                }
            }
        }
        Ok(())
    }
}

/// Why a migration statement failed.
enum DdlFailure {
    Db(tokio_postgres::Error),
    TimedOut,
}

/// Keeps the lease alive while migrations run; raises `lost` if it is gone.
async fn renew_lease(
    client: Arc<Client>,
    sql: String,
    holder: String,
    lost: Arc<AtomicBool>,
    bound: Duration,
) {
    loop {
        tokio::time::sleep(LEASE_RENEW_EVERY).await;
        let renewal = tokio::time::timeout(bound, client.execute(&sql, &[&holder]))
            .await
            .ok()
            .map(|done| done.map_err(|e| db_error(&e)));
        if let Some(why) = lease_lost(renewal) {
            tracing::error!(%why, "lost the migration lease; no further migration starts");
            lost.store(true, Ordering::SeqCst);
            return;
        }
    }
}

/// Why the lease counts as lost, given what one renewal did (`None` when it
/// did not finish in time); `None` while the lease is still held. A renewal
/// that failed counts as lost: the lease may run out before the next one,
/// and another instance may take it over.
fn lease_lost(renewal: Option<Result<u64, StoreError>>) -> Option<String> {
    match renewal {
        Some(Ok(0)) => Some("another instance took it over".to_owned()),
        Some(Ok(_)) => None,
        Some(Err(e)) => Some(format!("renewing it failed: {e}")),
        None => Some("renewing it did not finish in time".to_owned()),
    }
}

/// Splits a migration file into statements: each ends with `;` at the end of
/// a line; whole-line `--` comments are dropped.
fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            statements.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::sql::{COCKROACH_MIGRATIONS, POSTGRES_MIGRATIONS};

    #[test]
    fn statements_split_at_line_ends() {
        let sql = "-- header; with a semicolon\n\
                   DROP INDEX IF EXISTS x;\n\
                   CREATE INDEX y\n    ON t (a, b);\n\
                   \n-- trailing\nSELECT 1";
        assert_eq!(
            split_statements(sql),
            [
                "DROP INDEX IF EXISTS x;",
                "CREATE INDEX y\n    ON t (a, b);",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn dialects_share_versions_and_names() {
        assert_eq!(POSTGRES_MIGRATIONS.len(), COCKROACH_MIGRATIONS.len());
        for (i, (pg, crdb)) in POSTGRES_MIGRATIONS
            .iter()
            .zip(COCKROACH_MIGRATIONS)
            .enumerate()
        {
            assert_eq!(pg.version, i as i64 + 1);
            assert_eq!((pg.version, pg.name), (crdb.version, crdb.name));
            for m in [pg, crdb] {
                assert!(m.sql.starts_with(&format!("-- {}:", m.name)), "{}", m.name);
                assert!(m.sql.contains("Why it is safe"), "{}", m.name);
                assert!(!split_statements(m.sql).is_empty(), "{}", m.name);
            }
        }
    }

    #[test]
    fn migrations_never_touch_the_old_history() {
        for m in POSTGRES_MIGRATIONS.iter().chain(COCKROACH_MIGRATIONS) {
            for statement in split_statements(m.sql) {
                let lower = statement.to_lowercase();
                assert!(!lower.contains("migrations"), "{}: {statement}", m.name);
                assert!(!lower.contains("drop table"), "{}: {statement}", m.name);
                assert!(!lower.contains("drop column"), "{}: {statement}", m.name);
            }
        }
    }

    #[test]
    fn a_failed_renewal_counts_as_a_lost_lease() {
        assert_eq!(lease_lost(Some(Ok(1))), None);
        assert!(lease_lost(Some(Ok(0))).is_some(), "taken over");
        let failed = lease_lost(Some(Err(StoreError::Unavailable("gone".into()))));
        assert!(failed.is_some_and(|why| why.contains("gone")));
        assert!(lease_lost(None).is_some(), "timed out");
    }
}
