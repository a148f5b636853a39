//! PostgreSQL and CockroachDB through tokio-postgres and a deadpool pool.
//!
//! One code path serves both engines. `migrate` connects, tells them apart
//! from `SELECT version()`, applies the migrations of its dialect under a lease
//! row both engines honour ([`migrate`]), and only then builds the statements
//! the data operations use ([`sql`]): until it succeeds, every data operation
//! answers [`StoreError::Unavailable`].
//!
//! Every statement is prepared once per pooled connection and reused
//! ([`pool`]); under load, GETs and plain PUTs share statements ([`batch`]),
//! and identical listings share one ([`single_flight`]).
//! Connections use TLS as libpq would with the URL's parameters ([`url`],
//! [`tls`]). Values never appear in logs or error texts.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::histogram;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

mod batch;
mod batched;
mod connect;
mod errors;
mod liveness;
mod migrate;
mod notify;
mod page;
mod pool;
mod replace;
mod reseal;
mod row;
mod single_flight;
mod snapshot;
mod sql;
mod tls;
mod txn;
pub mod url;

pub use sql::{COCKROACH_MIGRATIONS, POSTGRES_MIGRATIONS};

use self::batch::Batcher;
use self::batched::BatchStatements;
use self::connect::Hosts;
use self::errors::db_error;
use self::notify::Notifier;
use self::pool::Pooled;
use self::replace::ReplaceStatements;
use self::reseal::ResealStatements;
use self::row::{change_page, entry_from_row, entry_from_row_at, revision_at, revision_written};
use self::single_flight::SingleFlight;
use self::snapshot::SnapshotStatements;
use self::sql::{Bounds, Flavor, Statements};
use self::tls::DbTls;
use self::txn::TxnStatements;
use self::url::{check_schema, PgUrl};
use super::changes::{ChangePage, ChangeQuery, Revision};
use super::migrations::{require_applied, Migrated, MigrationState};
use super::snapshot::{PageSink, Restored, SnapshotFilter};
use super::stored::{Reseal, StoredRow};
use super::txn::{Replace, Replaced, Txn, TxnOutcome};
use super::{
    prefix_upper_bound, DeleteCondition, DeleteOutcome, Entry, Item, ItemRef, KeyPage, ListQuery,
    Listed, NewValue, PrefixDeleted, PutCondition, PutOutcome, Store, StoreError, Wake,
};
use crate::config::DbOptions;
use crate::telemetry::registry::{PoolState, DB_BATCH_SIZE};

/// A key-value store in a PostgreSQL or CockroachDB database.
///
/// Cheap to share: the server holds one in an `Arc`.
pub struct PgStore {
    /// The pool, shared with the batches it serves.
    pooled: Arc<Pooled>,
    /// The URL's hosts: how the pool, the migration runner and the
    /// notification listener connect.
    hosts: Arc<Hosts>,
    /// The configured schema, folded to lower case and quoted for SQL.
    schema: String,
    /// The configured schema folded to lower case, for catalog lookups.
    schema_name: String,
    /// The TLS connector of every connection.
    tls: DbTls,
    connect_timeout: Duration,
    statement_timeout: Duration,
    pool_size: usize,
    flavor: OnceLock<Flavor>,
    /// The data statements, built once migrations are applied.
    statements: Migrated<Prepared>,
    /// GET/PUT coalescing, set up with the statements on PostgreSQL.
    batcher: OnceLock<Arc<Batcher>>,
    /// Identical listings waiting for a connection, sharing one statement.
    pages: SingleFlight<PageKey, KeyPage, StoreError>,
    /// LISTEN/NOTIFY between instances (PostgreSQL only), once watched.
    notifier: OnceLock<Notifier>,
}

/// What makes two listings' pages the same page.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PageKey {
    workspace: Uuid,
    namespace: String,
    prefix: String,
    after: Option<String>,
    limit: usize,
}

impl PageKey {
    fn of(query: &ListQuery<'_>) -> PageKey {
        PageKey {
            workspace: query.workspace,
            namespace: query.namespace.to_owned(),
            prefix: query.prefix.to_owned(),
            after: query.after.map(str::to_owned),
            limit: query.limit,
        }
    }
}

/// Every statement of the store, built once the flavor is known: the
/// single-key ones of [`sql`], and each feature's from its own room (which
/// uses `sql`'s helpers, so `sql` cannot hold them).
struct Prepared {
    core: Statements,
    /// The statements of a transaction.
    txn: TxnStatements,
    /// Writes that answer the value they replace.
    replace: ReplaceStatements,
    /// Encryption at rest: key ids in use, rows to rewrite, the rewrite.
    reseal: ResealStatements,
    /// Dump and restore: snapshot pages, batched writes.
    snapshot: SnapshotStatements,
}

impl Prepared {
    fn new(flavor: Flavor, schema: &str) -> Prepared {
        Prepared {
            core: Statements::new(flavor, schema),
            txn: TxnStatements::new(flavor, schema),
            replace: ReplaceStatements::new(flavor, schema),
            reseal: ResealStatements::new(flavor, schema),
            snapshot: SnapshotStatements::new(flavor, schema),
        }
    }
}

/// The statements of GET and PUT batches on PostgreSQL, for the schema
/// named `schema`: the batched read, then the batched upsert. For tests that
/// check how the database plans them; the server builds its own.
#[doc(hidden)]
pub fn batch_statements(schema: &str) -> [String; 2] {
    let batch = BatchStatements::new(&quoted(&folded(schema)));
    [batch.read, batch.upsert]
}

/// The configured schema as PostgreSQL and CockroachDB name it: the previous
/// service named it unquoted, so they folded it to lower case (`Hulykvs` is
/// `hulykvs`).
fn folded(schema: &str) -> String {
    schema.to_ascii_lowercase()
}

/// `schema` (folded) quoted for SQL.
fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("backend", &self.backend())
            .field("schema", &self.schema_name)
            .field("migrated", &self.statements.is_open())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Builds the pool from the URL and reads the TLS files it names; does
    /// not connect yet (a database that is down must not stop this).
    pub fn open(url: &str, opts: &DbOptions) -> Result<PgStore, StoreError> {
        check_schema(&opts.schema).map_err(StoreError::Internal)?;
        let bad_url =
            |why: String| StoreError::Internal(format!("invalid HULY_DB_CONNECTION: {why}"));
        let PgUrl {
            mut config,
            tls: settings,
        } = PgUrl::parse(url).map_err(bad_url)?;
        let tls = tls::connector(&settings, config.get_ssl_negotiation()).map_err(bad_url)?;
        config.connect_timeout(opts.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("hulykvs");
        }
        let hosts = Arc::new(Hosts::new(
            &config,
            tls.clone(),
            opts.connect_timeout,
            opts.statement_timeout,
        ));
        let pooled = Arc::new(Pooled::new(&config, Arc::clone(&hosts), tls.clone(), opts)?);
        let schema_name = folded(&opts.schema);
        Ok(PgStore {
            pooled,
            hosts,
            schema: quoted(&schema_name),
            schema_name,
            tls,
            connect_timeout: opts.connect_timeout,
            statement_timeout: opts.statement_timeout,
            pool_size: opts.pool_size,
            flavor: OnceLock::new(),
            statements: Migrated::default(),
            batcher: OnceLock::new(),
            pages: SingleFlight::default(),
            notifier: OnceLock::new(),
        })
    }

    /// Opens the data operations once migrations are applied on `flavor`.
    fn mark_migrated(&self, flavor: Flavor) {
        // Test builds may run the CockroachDB path on PostgreSQL's tables.
        #[cfg(feature = "test-hooks")]
        let flavor = match crate::seeded::cockroach_path() {
            true => Flavor::Cockroach,
            false => flavor,
        };
        let _ = self.flavor.set(flavor);
        self.statements.open(|| Prepared::new(flavor, &self.schema));
        if flavor == Flavor::Postgres {
            self.batcher.get_or_init(|| {
                Arc::new(Batcher::new(
                    Arc::clone(&self.pooled),
                    BatchStatements::new(&self.schema),
                    self.pool_size,
                ))
            });
        }
    }

    /// Runs the one of `statements` (`sql::Statements::list` or a page's)
    /// that lists `query`: from its cursor's next key or its prefix, below
    /// the prefix's upper bound; on `client` where given, else on a
    /// connection of the pool.
    async fn query_list(
        &self,
        client: Option<deadpool_postgres::Client>,
        query: &ListQuery<'_>,
        statements: &[String; 3],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let lower = query.lower_bound();
        let upper = prefix_upper_bound(query.prefix);
        let bounds = Bounds::of(&lower, upper.as_deref());
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query.workspace, &query.namespace];
        if bounds != Bounds::Whole {
            params.push(&lower);
        }
        if let Some(upper) = &upper {
            params.push(upper);
        }
        params.push(&limit);
        let sql = &statements[bounds as usize];
        match client {
            Some(client) => self.pooled.query_on(client, sql, &params).await,
            None => self.pooled.query(sql, &params, None).await,
        }
    }

    /// The page `query` asks for, its first statement on `client`.
    async fn read_page(
        &self,
        client: deadpool_postgres::Client,
        query: &ListQuery<'_>,
        sql: &Statements,
    ) -> Result<KeyPage, StoreError> {
        // One key more than the page says whether more follow.
        let probe = ListQuery {
            limit: query.limit.saturating_add(1),
            ..*query
        };
        let mut client = Some(client);
        if let Some(joined) = &sql.list_joined {
            let rows = self.query_list(client.take(), &probe, joined).await?;
            if let Some(page) = page::joined_key_page(&rows, query.limit)? {
                return Ok(page);
            }
            tracing::debug!(
                namespace = query.namespace,
                "a listed key holds a quote, which joined keys cannot tell apart: the page is listed as an array"
            );
        }
        let rows = self.query_list(client, &probe, &sql.list_page).await?;
        page::key_page(&rows, query.limit)
    }

    /// Runs one logged write (see `sql::logged`) on a pooled connection;
    /// returns the revision of its change, or `None` when it wrote nothing.
    async fn write(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Revision>, StoreError> {
        let rows = self.pooled.query(sql, params, None).await?;
        revision_written(&rows)
    }
}

/// A put's values as statement parameters `$4`..`$9`, the forms
/// tokio-postgres takes them in.
struct PutParams<'a> {
    md5: &'a [u8],
    bytes: &'a [u8],
    content_type: &'a str,
    ttl: Option<i64>,
    at: Option<i64>,
    key_id: Option<&'a str>,
}

impl<'a> PutParams<'a> {
    fn new(value: &'a NewValue) -> Self {
        let (ttl, at) = value.expiry.params();
        PutParams {
            md5: &value.md5,
            bytes: &value.value,
            content_type: &value.content_type,
            ttl,
            at,
            key_id: value.sealed_by.as_deref(),
        }
    }

    /// `$1`..`$9` of a write of `item`: its key, then the value's.
    fn row<'b>(&'b self, item: &'b ItemRef<'_>) -> [&'b (dyn ToSql + Sync); 9] {
        [
            &item.workspace,
            &item.namespace,
            &item.key,
            &self.md5,
            &self.bytes,
            &self.content_type,
            &self.ttl,
            &self.at,
            &self.key_id,
        ]
    }
}

impl Store for PgStore {
    /// `postgres` or `cockroachdb`; `postgres` until the engine is detected.
    fn backend(&self) -> &'static str {
        self.flavor
            .get()
            .copied()
            .unwrap_or(Flavor::Postgres)
            .name()
    }

    /// A GET that finds a read slot free queries alone; while every slot is
    /// busy, GETs queue and are read together, one query per batch.
    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        let sql = &self.statements.get()?.core;
        let pk: [&(dyn ToSql + Sync); 3] = [&item.workspace, &item.namespace, &item.key];
        // Made where it is awaited, never handed over made: see `Batcher::read`.
        let alone = || async {
            let rows = self.pooled.query(&sql.get, &pk, None).await?;
            rows.first()
                .map(|row| entry_from_row(row, &item))
                .transpose()
        };
        match self.batcher.get() {
            Some(batcher) => batcher.read(item, alone).await,
            None => alone().await,
        }
    }

    async fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let sql = &self.statements.get()?.core;
        if cond.never_holds() {
            return Ok(PutOutcome::PreconditionFailed);
        }
        let put = PutParams::new(&value);
        let row = put.row(&item);
        let changed = match &cond {
            PutCondition::Always => {
                let alone = || self.write(&sql.upsert, &row);
                match self.batcher.get() {
                    Some(batcher) => Some(batcher.upsert(item, &value, alone).await?),
                    None => alone().await?,
                }
            }
            PutCondition::IfAbsent => self.write(&sql.insert_if_absent, &row).await?,
            PutCondition::IfExists => self.write(&sql.update, &row).await?,
            PutCondition::IfMatch(tags) => {
                let tags: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
                let [a, b, c, d, e, f, g, h, i] = row;
                let params: [&(dyn ToSql + Sync); 10] = [a, b, c, d, e, f, g, h, i, &tags];
                self.write(&sql.update_if_match, &params).await?
            }
        };
        Ok(cond.outcome(changed))
    }

    async fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> Result<DeleteOutcome, StoreError> {
        let sql = &self.statements.get()?.core;
        if cond.never_holds() {
            return Ok(DeleteOutcome::PreconditionFailed);
        }
        let pk: [&(dyn ToSql + Sync); 3] = [&item.workspace, &item.namespace, &item.key];
        let changed = match &cond {
            DeleteCondition::Always | DeleteCondition::IfExists => {
                self.write(&sql.delete, &pk).await?
            }
            DeleteCondition::IfMatch(tags) => {
                let tags: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
                let [a, b, c] = pk;
                let params: [&(dyn ToSql + Sync); 4] = [a, b, c, &tags];
                self.write(&sql.delete_if_match, &params).await?
            }
        };
        Ok(cond.outcome(changed))
    }

    async fn delete_prefix(
        &self,
        query: ListQuery<'_>,
        limit: usize,
    ) -> Result<PrefixDeleted, StoreError> {
        let sql = &self.statements.get()?.core;
        let upper = prefix_upper_bound(query.prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let params: [&(dyn ToSql + Sync); 5] = [
            &query.workspace,
            &query.namespace,
            &query.prefix,
            &upper,
            &limit,
        ];
        let rows = self.pooled.query(&sql.delete_prefix, &params, None).await?;
        let mut deleted = PrefixDeleted::default();
        for row in &rows {
            let revision = revision_at(row, 3)?;
            deleted.count += 1;
            deleted.revision = deleted.revision.max(Some(revision));
        }
        Ok(deleted)
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .query_list(None, &query, &self.statements.get()?.core.list)
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(|e| db_error(&e)))
            .collect()
    }

    /// One statement: the revision and the page's keys in one snapshot.
    /// Identical listings waiting for a connection share it ([`single_flight`]).
    async fn list_page(&self, query: ListQuery<'_>) -> Result<KeyPage, StoreError> {
        let sql = &self.statements.get()?.core;
        self.pages
            .run(
                &PageKey::of(&query),
                || self.pooled.checkout(None),
                |client| self.read_page(client, &query, sql),
                |size| histogram!(DB_BATCH_SIZE, "db_operation_name" => "list").record(size as f64),
            )
            .await
    }

    async fn list_values(
        &self,
        query: ListQuery<'_>,
        budget: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        let sql = &self.statements.get()?.core;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let lower = query.lower_bound();
        let upper = prefix_upper_bound(query.prefix);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query.workspace, &query.namespace, &lower];
        if let Some(upper) = &upper {
            params.push(upper);
        }
        params.extend([&limit as &(dyn ToSql + Sync), &budget]);
        let statement = &sql.values[usize::from(upper.is_some())];
        let rows = self.pooled.query(statement, &params, None).await?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get(0).map_err(|e| db_error(&e))?;
                let at = ItemRef {
                    workspace: query.workspace,
                    namespace: query.namespace,
                    key: &key,
                };
                let entry = entry_from_row_at(row, 1, &at)?;
                Ok(Listed { key, entry })
            })
            .collect()
    }

    async fn replace(&self, item: ItemRef<'_>, write: Replace) -> Result<Replaced, StoreError> {
        let sql = self.statements.get()?;
        self.run_replace(&sql.replace, item, write).await
    }

    async fn transact(&self, txn: &Txn) -> Result<TxnOutcome, StoreError> {
        let sql = self.statements.get()?;
        self.run_txn(&sql.txn, txn).await
    }

    /// Whether the server reached through the pool takes writes;
    /// `Unavailable` also while migrations are not applied, as `/readyz`
    /// wants both.
    async fn ping(&self) -> Result<(), StoreError> {
        // Not only that a server answers: that it takes writes. A standby,
        // or a primary demoted while it stays up, answers SELECT 1 too.
        let rows = self
            .pooled
            .query("SELECT current_setting('transaction_read_only')", &[], None)
            .await?;
        let read_only = rows
            .first()
            .and_then(|row| row.try_get::<_, String>(0).ok())
            .is_some_and(|setting| setting == "on");
        if read_only {
            self.pooled.purge();
            return Err(StoreError::Unavailable(
                "the database server takes no writes (a standby, or a demoted primary)".into(),
            ));
        }
        self.statements.get().map(|_| ())
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.run_migrations().await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.read_status().await
    }

    async fn attach(&self) -> Result<(), StoreError> {
        require_applied(&self.read_status().await?)?;
        // read_status detected the engine.
        self.mark_migrated(self.flavor.get().copied().unwrap_or(Flavor::Postgres));
        Ok(())
    }

    /// Rows another instance is sweeping are skipped (`SKIP LOCKED`), so
    /// instances sweeping together never remove a row twice.
    async fn sweep_expired(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        let sql = &self.statements.get()?.core;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.pooled.query(&sql.sweep, &[&limit], None).await?;
        rows.iter()
            .map(|row| {
                Ok(Item {
                    workspace: row.try_get(0)?,
                    namespace: row.try_get(1)?,
                    key: row.try_get(2)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| db_error(&e))
    }

    async fn changes(&self, query: ChangeQuery<'_>) -> Result<ChangePage, StoreError> {
        let sql = &self.statements.get()?.core;
        let after = i64::try_from(query.after).unwrap_or(i64::MAX);
        let upper = prefix_upper_bound(query.prefix);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let params: [&(dyn ToSql + Sync); 6] = [
            &query.workspace,
            &query.namespace,
            &after,
            &query.prefix,
            &upper,
            &limit,
        ];
        let rows = self.pooled.query(&sql.changes, &params, None).await?;
        change_page(&rows)
    }

    async fn prune_changes(&self, retention: Duration, limit: usize) -> Result<u64, StoreError> {
        let sql = &self.statements.get()?.core;
        let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pooled.execute(&sql.prune, &[&millis, &limit]).await
    }

    /// PostgreSQL: one dedicated connection LISTENs (and NOTIFYs for this
    /// instance). CockroachDB has no LISTEN/NOTIFY: watchers poll.
    fn watch_others(&self, wake: Wake) -> bool {
        if self.flavor.get() != Some(&Flavor::Postgres) {
            return false;
        }
        #[cfg(feature = "test-hooks")]
        if crate::seeded::cockroach_path() {
            return false;
        }
        self.notifier
            .get_or_init(|| Notifier::start(Arc::clone(&self.hosts), &self.schema_name, wake));
        true
    }

    fn announce(&self, workspace: Uuid, namespace: &str) {
        if let Some(notifier) = self.notifier.get() {
            notifier.announce(workspace, namespace);
        }
    }

    async fn key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        let sql = self.statements.get()?;
        self.select_key_ids(&sql.reseal).await
    }

    async fn rows_to_reseal(
        &self,
        after: Option<&Item>,
        keep: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        let sql = self.statements.get()?;
        self.select_rows_to_reseal(&sql.reseal, after, keep, limit)
            .await
    }

    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        let sql = self.statements.get()?;
        self.rewrite_rows(&sql.reseal, batch).await
    }

    async fn snapshot(&self, filter: &SnapshotFilter, sink: PageSink) -> Result<(), StoreError> {
        let sql = self.statements.get()?;
        self.read_snapshot(&sql.snapshot, filter, sink).await
    }

    async fn restore(&self, rows: &[Restored], skip_existing: bool) -> Result<u64, StoreError> {
        let sql = self.statements.get()?;
        self.write_restored(&sql.snapshot, rows, skip_existing)
            .await
    }

    fn pool_state(&self) -> Option<PoolState> {
        Some(self.pooled.state())
    }
}
