//! The embedded store: SQLite through rusqlite, one file in WAL mode with
//! `synchronous=FULL`.
//!
//! Writes go to one writer connection on a thread of its own that commits
//! them in groups ([`writer`]); reads go to a few read-only connections, each
//! on a thread of its own ([`readers`]). In WAL mode readers never wait for the
//! writer, and no SQLite call ever runs on the runtime's worker threads.

use std::fmt;
use std::path::{Path, PathBuf};

mod changes;
mod connection;
mod migrate;
mod readers;
mod reseal;
mod snapshot;
mod sql;
mod txn;
mod writer;

pub use migrate::MIGRATIONS;
pub use writer::MAX_BATCH;

use self::changes::{
    delete_prefix, prune_changes, select_changes, sweep_expired, OwnedChangeQuery,
};
use self::connection::{db_error, open_reader, open_writer};
use self::migrate::{apply_migrations, migration_states, LockWaits, MIGRATION_LOCK_WAIT};
use self::readers::Readers;
use self::sql::{select_entry, select_keys, select_values, KeyRange};
use self::writer::{writer_gone, Write, Writer};
use super::changes::{ChangePage, ChangeQuery};
use super::migrations::{require_applied, Migrated, MigrationState};
use super::snapshot::{PageSink, Restored, SnapshotFilter};
use super::stored::{Reseal, StoredRow};
use super::txn::{Txn, TxnOutcome};
use super::{
    DeleteCondition, DeleteOutcome, Entry, Item, ItemRef, ListQuery, Listed, NewValue,
    PrefixDeleted, PutCondition, PutOutcome, Store, StoreError,
};
use crate::config::DbOptions;

/// Most reader threads the embedded store starts, whatever the pool size: a
/// reader per core and a few waiting on I/O is all SQLite can use.
pub const MAX_READERS: usize = 64;

/// The embedded store.
///
/// Cheap to share behind an `Arc`; dropping the last handle stops the writer
/// thread once the writes already queued are committed.
pub struct SqliteStore {
    /// The database file, for log lines.
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    /// How long the writer waits for another process holding the file's write lock.
    lock_waits: LockWaits,
    /// Open once this store has applied (or found applied) every migration.
    migrated: Migrated<()>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("migrated", &self.migrated.is_open())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens or creates the database file (creating missing parent folders), WAL journal,
    /// synchronous=FULL, busy_timeout, checks that the file can be written; starts the writer
    /// thread and the readers. Does not migrate. A path that cannot be opened or written is an
    /// Err whose text names the path and the reason.
    pub fn open(path: &Path, opts: &DbOptions) -> Result<SqliteStore, StoreError> {
        let what = format!("cannot open SQLite database {}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                let why = if parent.exists() {
                    format!("{} is not a folder", parent.display())
                } else {
                    format!("cannot create folder {}: {e}", parent.display())
                };
                StoreError::Internal(format!("{what}: {why}"))
            })?;
        }
        let lock_wait = opts.statement_timeout;
        let writer = open_writer(path, lock_wait).map_err(|e| e.context(&what))?;
        let reader_count = opts.pool_size.clamp(1, MAX_READERS);
        let mut idle = Vec::with_capacity(reader_count);
        for _ in 0..reader_count {
            idle.push(open_reader(path, lock_wait).map_err(|e| e.context(&what))?);
        }
        let readers = Readers::start(idle, opts.pool_timeout).map_err(|e| {
            StoreError::Internal(format!("{what}: cannot start reader threads: {e}"))
        })?;
        // The writer waits up to `statement_timeout` for the file's write lock;
        // a write allows as long again for the batches queued ahead of it.
        let answer_wait = opts.statement_timeout.saturating_mul(2);
        let writer = Writer::start(writer, opts.pool_timeout, answer_wait).map_err(|e| {
            StoreError::Internal(format!("{what}: cannot start writer thread: {e}"))
        })?;
        tracing::debug!(path = %path.display(), readers = reader_count, "opened SQLite store");

        Ok(SqliteStore {
            path: path.to_owned(),
            writer,
            readers,
            lock_waits: LockWaits {
                request: lock_wait,
                migration: lock_wait.max(MIGRATION_LOCK_WAIT),
            },
            migrated: Migrated::default(),
        })
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        self.migrated.get()?;
        let item = item.owned();
        self.readers
            .run(move |conn| select_entry(conn, &item))
            .await
    }

    async fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.migrated.get()?;
        let item = item.owned();
        self.writer
            .write(|reply| Write::Put {
                item,
                value,
                cond,
                reply,
            })
            .await
    }

    async fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> Result<DeleteOutcome, StoreError> {
        self.migrated.get()?;
        let item = item.owned();
        self.writer
            .write(|reply| Write::Delete { item, cond, reply })
            .await
    }

    /// On the writer connection, between batches of writes: one short transaction.
    async fn delete_prefix(
        &self,
        query: ListQuery<'_>,
        limit: usize,
    ) -> Result<PrefixDeleted, StoreError> {
        self.migrated.get()?;
        let range = OwnedChangeQuery::from(ChangeQuery {
            workspace: query.workspace,
            namespace: query.namespace,
            after: 0,
            prefix: query.prefix,
            limit,
        });
        self.writer
            .exclusive(move |conn| delete_prefix(conn, &range, limit))
            .await
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        self.migrated.get()?;
        let query = KeyRange::from(query);
        self.readers
            .run(move |conn| select_keys(conn, &query))
            .await
    }

    async fn list_values(
        &self,
        query: ListQuery<'_>,
        budget: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        self.migrated.get()?;
        let query = KeyRange::from(query);
        self.readers
            .run(move |conn| select_values(conn, &query, budget))
            .await
    }

    /// On the writer connection, between batches of writes: one transaction.
    async fn transact(&self, txn: &Txn) -> Result<TxnOutcome, StoreError> {
        self.migrated.get()?;
        let txn = txn.clone();
        self.writer
            .exclusive(move |conn| txn::run_txn(conn, &txn))
            .await
    }

    async fn changes(&self, query: ChangeQuery<'_>) -> Result<ChangePage, StoreError> {
        self.migrated.get()?;
        let query = OwnedChangeQuery::from(query);
        self.readers
            .run(move |conn| select_changes(conn, &query))
            .await
    }

    /// On the writer connection, between batches of writes.
    async fn prune_changes(
        &self,
        retention: std::time::Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.migrated.get()?;
        let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.writer
            .exclusive(move |conn| prune_changes(conn, millis, limit))
            .await
    }

    async fn key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        self.migrated.get()?;
        self.readers.run(reseal::key_ids).await
    }

    async fn rows_to_reseal(
        &self,
        after: Option<&Item>,
        keep: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.migrated.get()?;
        let (after, keep) = (after.cloned(), keep.map(str::to_owned));
        self.readers
            .run(move |conn| reseal::rows_to_reseal(conn, after.as_ref(), keep.as_deref(), limit))
            .await
    }

    /// On the writer connection, between batches of writes: one transaction.
    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        self.migrated.get()?;
        let batch = batch.to_vec();
        self.writer
            .exclusive(move |conn| reseal::reseal(conn, &batch))
            .await
    }

    /// One statement on a reader, which it holds until the snapshot is read.
    async fn snapshot(&self, filter: &SnapshotFilter, sink: PageSink) -> Result<(), StoreError> {
        self.migrated.get()?;
        let filter = filter.clone();
        self.readers
            .run(move |conn| snapshot::read_snapshot(conn, &filter, &sink))
            .await
    }

    /// On the writer connection, between batches of writes: one transaction.
    async fn restore(&self, rows: &[Restored], skip_existing: bool) -> Result<u64, StoreError> {
        self.migrated.get()?;
        let rows = rows.to_vec();
        self.writer
            .exclusive(move |conn| snapshot::write_restored(conn, &rows, skip_existing))
            .await
    }

    /// On the writer connection, between batches of writes: one short
    /// transaction, as one process at a time holds SQLite's write lock.
    async fn sweep_expired(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.migrated.get()?;
        self.writer
            .exclusive(move |conn| sweep_expired(conn, limit))
            .await
    }

    /// A read through a reader; `Unavailable` also while migrations are not
    /// applied or when the writer thread has stopped, as `/readyz` wants all three.
    async fn ping(&self) -> Result<(), StoreError> {
        if !self.writer.is_alive() {
            return Err(writer_gone());
        }
        self.readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(|e| db_error("ping", e))
            })
            .await?;
        self.migrated.get().map(|_| ())
    }

    /// Several processes on one file at once: each migration runs exactly
    /// once, every process succeeds.
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let waits = self.lock_waits;
        let applied = self
            .writer
            .exclusive(move |conn| apply_migrations(conn, waits))
            .await?;
        for name in &applied {
            tracing::debug!(migration = %name, path = %self.path.display(), "applied migration");
        }
        self.migrated.open(|| ());
        Ok(applied)
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.readers.run(migration_states).await
    }

    async fn attach(&self) -> Result<(), StoreError> {
        require_applied(&self.migration_status().await?)?;
        self.migrated.open(|| ());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::DbTarget;

    /// A store on a new file in a new folder, not migrated yet.
    fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvs.db");
        let opts = DbOptions {
            target: DbTarget::Sqlite(path.clone()),
            schema: "hulykvs".to_owned(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
            pool_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        };
        (dir, SqliteStore::open(&path, &opts).unwrap())
    }

    async fn migrated() -> (tempfile::TempDir, SqliteStore) {
        let (dir, store) = fresh();
        store.migrate().await.unwrap();
        (dir, store)
    }

    fn item(key: &str) -> ItemRef<'_> {
        ItemRef {
            workspace: uuid::Uuid::nil(),
            namespace: "ns",
            key,
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_writer_fails_its_caller_and_writes_go_on() {
        let (_dir, store) = migrated().await;
        // Panics inside an open transaction: the writer must roll it back.
        let panicked = store
            .writer
            .exclusive(|conn| -> Result<(), StoreError> {
                conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM kvs;")
                    .unwrap();
                panic!("a writer job that panics")
            })
            .await;
        assert!(
            matches!(&panicked, Err(StoreError::Internal(why)) if why.contains("before answering")),
            "{panicked:?}"
        );
        assert!(store.writer.is_alive());
        store.ping().await.unwrap();
        let value = NewValue::new("v".into(), "text/plain".to_owned());
        let put = store.put(item("k"), value, PutCondition::IfAbsent).await;
        assert_eq!(put.unwrap(), PutOutcome::Created(1));
        let read = store.get(item("k")).await.unwrap().unwrap();
        assert_eq!(&read.value[..], b"v");
    }

    #[tokio::test]
    async fn readiness_fails_once_the_writer_thread_is_gone() {
        let (_dir, store) = migrated().await;
        store.ping().await.unwrap();
        // What the writer thread's guard does as the thread ends, by return or panic.
        drop(writer::AliveGuard(std::sync::Arc::clone(
            &store.writer.alive,
        )));
        assert!(!store.writer.is_alive());
        let ping = store.ping().await;
        assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    }

    #[tokio::test]
    async fn data_operations_wait_for_migrations() {
        let (_dir, store) = fresh();
        let early = store.get(item("k")).await;
        assert!(
            matches!(&early, Err(StoreError::Unavailable(why)) if why == "database not migrated yet"),
            "{early:?}"
        );
        assert!(store.ping().await.is_err());
        store.migrate().await.unwrap();
        assert!(store.get(item("k")).await.unwrap().is_none());
        store.ping().await.unwrap();
    }
}
