//! The embedded store: SQLite through rusqlite.
//!
//! One writer connection lives on a dedicated thread fed by a channel. It takes
//! the next queued write, drains whatever else is queued (up to [`MAX_BATCH`]),
//! runs them all in one transaction and commits once: one `fsync` pays for many
//! writes (group commit). Each caller is answered only after that COMMIT.
//!
//! Reads go to a queue served by a small set of read-only connections, each on
//! a thread of its own. A reader takes whatever is queued (up to
//! [`READ_BATCH`]) and runs it in one read transaction, answering each caller
//! as its read completes. In WAL mode readers never wait for the writer, and no
//! SQLite call ever runs on the runtime's worker threads.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, DatabaseName, ErrorCode, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{
    prefix_upper_bound, DeleteCondition, DeleteOutcome, Digest, Entry, ItemRef, ListQuery,
    NewValue, PutCondition, PutOutcome, Store, StoreError,
};
use crate::config::DbOptions;
use crate::migrate::{Migration, MigrationState};

/// The migrations of the embedded store, in order (`sql/sqlite/`).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "0001_kvs",
    sql: include_str!("../../sql/sqlite/0001_kvs.sql"),
}];

/// Most writes committed in one transaction. Large enough that a burst shares a
/// handful of fsyncs, small enough that one batch holds the write lock briefly.
pub const MAX_BATCH: usize = 256;

/// Writes that may wait for the writer thread before callers feel back-pressure.
const QUEUE_DEPTH: usize = 1024;

/// Prepared statements kept per connection. The IF-MATCH statements differ by
/// the length of the entity tag list, so leave room beyond the fixed ones.
const STATEMENT_CACHE: usize = 32;

/// Longest an IF-MATCH list may be and still get a cached statement; longer
/// lists are rare enough to prepare each time.
const CACHED_MATCH_LIST: usize = 8;

/// The shortest time `migrate` waits for another process's migration to finish.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);

const HISTORY_TABLE: &str = "CREATE TABLE IF NOT EXISTS hulykvs_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

const RECORD_MIGRATION: &str = "INSERT INTO hulykvs_migrations (version, name, applied_at) \
     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

const SELECT_ENTRY: &str = "SELECT value, md5, content_type FROM kvs \
     WHERE workspace = ?1 AND namespace = ?2 AND key = ?3";

const UPSERT: &str = "INSERT INTO kvs (workspace, namespace, key, md5, value, content_type) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (workspace, namespace, key) DO UPDATE \
     SET md5 = excluded.md5, value = excluded.value, content_type = excluded.content_type";

const INSERT_IF_ABSENT: &str =
    "INSERT INTO kvs (workspace, namespace, key, md5, value, content_type) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (workspace, namespace, key) DO NOTHING";

const UPDATE: &str = "UPDATE kvs SET md5 = ?4, value = ?5, content_type = ?6 \
     WHERE workspace = ?1 AND namespace = ?2 AND key = ?3";

const DELETE: &str = "DELETE FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key = ?3";

// One statement per bound shape, so SQLite can use both ends of the primary
// key range; `(?5 IS NULL OR key < ?5)` would scan to the end of the namespace.
const LIST_FROM: &str = "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 \
     AND key >= ?3 ORDER BY key LIMIT ?4";
const LIST_FROM_UNTIL: &str = "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 \
     AND key >= ?3 AND key < ?5 ORDER BY key LIMIT ?4";
const LIST_AFTER: &str = "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 \
     AND key > ?3 ORDER BY key LIMIT ?4";
const LIST_AFTER_UNTIL: &str = "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 \
     AND key > ?3 AND key < ?5 ORDER BY key LIMIT ?4";

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
///
/// Cheap to share behind an `Arc`; dropping the last handle stops the writer
/// thread once the writes already queued are committed.
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Readers,
    /// How long a write may wait for room in the writer's queue.
    queue_wait: Duration,
    /// How long a queued write may wait for its answer.
    answer_wait: Duration,
    /// How long the writer waits for another process holding the file's write lock.
    lock_waits: LockWaits,
}

/// How long the writer connection waits for the file's write lock (busy timeout).
#[derive(Debug, Clone, Copy)]
struct LockWaits {
    /// For a batch of requests.
    request: Duration,
    /// For a migration run, which may wait for another process's whole run.
    migration: Duration,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
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
        let writer = open_writer(path, lock_wait).map_err(|e| with_context(e, &what))?;
        let mut idle = Vec::with_capacity(opts.pool_size.max(1));
        for _ in 0..opts.pool_size.max(1) {
            idle.push(open_reader(path, lock_wait).map_err(|e| with_context(e, &what))?);
        }
        let readers = Readers::start(idle, opts.pool_timeout).map_err(|e| {
            StoreError::Internal(format!("{what}: cannot start reader threads: {e}"))
        })?;

        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("hulykvs-sqlite-writer".to_owned())
            .spawn(move || run_writer(writer, rx))
            .map_err(|e| {
                StoreError::Internal(format!("{what}: cannot start writer thread: {e}"))
            })?;
        tracing::debug!(path = %path.display(), readers = opts.pool_size.max(1), "opened SQLite store");

        Ok(SqliteStore {
            path: path.to_owned(),
            writer: tx,
            readers,
            queue_wait: opts.pool_timeout,
            // The writer waits up to `statement_timeout` for the file's write lock;
            // allow as long again for the batches queued ahead of this one.
            answer_wait: opts.statement_timeout.saturating_mul(2),
            lock_waits: LockWaits {
                request: lock_wait,
                migration: lock_wait.max(MIGRATION_LOCK_WAIT),
            },
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies pending migrations; returns names applied. Idempotent. Several processes on
    /// one file at once: each migration runs exactly once, every process succeeds.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let waits = self.lock_waits;
        let applied = self
            .exclusive(move |conn| apply_migrations(conn, MIGRATIONS, waits))
            .await?;
        for name in &applied {
            tracing::debug!(migration = %name, path = %self.path.display(), "applied migration");
        }
        Ok(applied)
    }

    /// Applied and pending migrations in order (for `hulykvs migrate --status`).
    pub async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.readers
            .run(|conn| migration_states(conn, MIGRATIONS))
            .await
    }

    /// Queues a write and waits until the batch holding it has committed.
    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Job::Write(make(tx))).await?;
        match tokio::time::timeout(self.answer_wait, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(writer_gone()),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the SQLite writer did not answer within {:?}",
                self.answer_wait
            ))),
        }
    }

    /// Runs `f` on the writer connection between batches, alone.
    async fn exclusive<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Exclusive(Box::new(move |conn| {
            // The caller may have gone away; nobody is left to tell.
            let _ = tx.send(f(conn));
        }));
        self.enqueue(job).await?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        match tokio::time::timeout(self.queue_wait, self.writer.send(job)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(writer_gone()),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the SQLite writer queue stayed full for {:?}",
                self.queue_wait
            ))),
        }
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        let item = Item::from(item);
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
        let item = Item::from(item);
        self.write(|reply| Write::Put {
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
        let item = Item::from(item);
        self.write(|reply| Write::Delete { item, cond, reply })
            .await
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        let query = KeyRange {
            workspace: query.workspace.hyphenated().to_string(),
            namespace: query.namespace.to_owned(),
            prefix: query.prefix.to_owned(),
            after: query.after.map(str::to_owned),
            limit: query.limit,
        };
        self.readers
            .run(move |conn| select_keys(conn, &query))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(|e| db_error("ping", e))
            })
            .await
    }
}

/// A value's address, owned so it can cross to another thread.
struct Item {
    /// Hyphenated lowercase, as the table stores it.
    workspace: String,
    namespace: String,
    key: String,
}

impl From<ItemRef<'_>> for Item {
    fn from(item: ItemRef<'_>) -> Self {
        Item {
            workspace: item.workspace.hyphenated().to_string(),
            namespace: item.namespace.to_owned(),
            key: item.key.to_owned(),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.workspace, self.namespace, self.key)
    }
}

/// A [`ListQuery`], owned so it can cross to another thread.
struct KeyRange {
    workspace: String,
    namespace: String,
    prefix: String,
    after: Option<String>,
    limit: usize,
}

/// Work for the writer thread.
enum Job {
    /// One write, committed together with whatever else is queued.
    Write(Write),
    /// Work that needs the writer connection to itself (migrations).
    Exclusive(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// One queued write and where its answer goes.
enum Write {
    Put {
        item: Item,
        value: NewValue,
        cond: PutCondition,
        reply: oneshot::Sender<Result<PutOutcome, StoreError>>,
    },
    Delete {
        item: Item,
        cond: DeleteCondition,
        reply: oneshot::Sender<Result<DeleteOutcome, StoreError>>,
    },
}

impl Write {
    /// True when the caller stopped waiting (timed out or went away) before the
    /// write started: it was never acknowledged, so it is skipped.
    fn abandoned(&self) -> bool {
        match self {
            Write::Put { reply, .. } => reply.is_closed(),
            Write::Delete { reply, .. } => reply.is_closed(),
        }
    }

    /// Runs the write's one statement inside the open transaction.
    fn apply(self, conn: &Connection) -> Applied {
        match self {
            Write::Put {
                item,
                value,
                cond,
                reply,
            } => {
                let outcome = put_row(conn, &item, &value, &cond)
                    .map_err(|e| db_error(format_args!("put {item}"), e));
                Applied::Put(reply, outcome)
            }
            Write::Delete { item, cond, reply } => {
                let outcome = delete_row(conn, &item, &cond)
                    .map_err(|e| db_error(format_args!("delete {item}"), e));
                Applied::Delete(reply, outcome)
            }
        }
    }

    /// Answers with `err` without running.
    fn fail(self, err: &StoreError) {
        // A caller that went away needs no answer.
        match self {
            Write::Put { reply, .. } => {
                let _ = reply.send(Err(same_error(err)));
            }
            Write::Delete { reply, .. } => {
                let _ = reply.send(Err(same_error(err)));
            }
        }
    }
}

/// A write that ran inside the open transaction, waiting for its COMMIT.
enum Applied {
    Put(
        oneshot::Sender<Result<PutOutcome, StoreError>>,
        Result<PutOutcome, StoreError>,
    ),
    Delete(
        oneshot::Sender<Result<DeleteOutcome, StoreError>>,
        Result<DeleteOutcome, StoreError>,
    ),
}

impl Applied {
    fn failed(&self) -> bool {
        match self {
            Applied::Put(_, outcome) => outcome.is_err(),
            Applied::Delete(_, outcome) => outcome.is_err(),
        }
    }

    /// Answers with the outcome: the transaction committed.
    fn answer(self) {
        // A caller that went away needs no answer.
        match self {
            Applied::Put(reply, outcome) => {
                let _ = reply.send(outcome);
            }
            Applied::Delete(reply, outcome) => {
                let _ = reply.send(outcome);
            }
        }
    }

    /// Answers with `err`: the transaction did not commit.
    fn fail(self, err: &StoreError) {
        match self {
            Applied::Put(reply, _) => {
                let _ = reply.send(Err(same_error(err)));
            }
            Applied::Delete(reply, _) => {
                let _ = reply.send(Err(same_error(err)));
            }
        }
    }
}

/// The writer thread: group commit until every sender is gone.
fn run_writer(mut conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = Vec::new();
        let mut exclusive = None;
        match first {
            Job::Write(write) => batch.push(write),
            Job::Exclusive(f) => exclusive = Some(f),
        }
        while exclusive.is_none() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Job::Write(write)) => batch.push(write),
                Ok(Job::Exclusive(f)) => exclusive = Some(f),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, batch);
        }
        if let Some(f) = exclusive {
            f(&mut conn);
        }
    }
    tracing::debug!("SQLite writer stopped");
}

/// Runs `batch` in one transaction, commits, then answers every write.
fn commit_batch(conn: &Connection, batch: Vec<Write>) {
    let batch: Vec<Write> = batch.into_iter().filter(|w| !w.abandoned()).collect();
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    tracing::trace!(writes = count, "committing a write batch");
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = db_error(format_args!("starting a batch of {count} writes"), e);
        tracing::warn!(error = %err, "SQLite write batch failed");
        batch.into_iter().for_each(|w| w.fail(&err));
        return;
    }

    let mut applied = Vec::with_capacity(count);
    let mut rest = batch.into_iter();
    for write in rest.by_ref() {
        let done = write.apply(conn);
        let failed = done.failed();
        applied.push(done);
        // A failing statement normally undoes only itself, but SQLITE_FULL, I/O
        // errors and the like roll back the whole transaction: then the writes
        // before it are gone too and must not be acknowledged.
        if failed && conn.is_autocommit() {
            let err = StoreError::Unavailable(format!(
                "a batch of {count} writes was rolled back by SQLite after an error"
            ));
            tracing::warn!(error = %err, "SQLite write batch failed");
            for done in applied {
                if done.failed() {
                    done.answer();
                } else {
                    done.fail(&err);
                }
            }
            rest.for_each(|w| w.fail(&err));
            return;
        }
    }

    match conn.execute_batch("COMMIT") {
        Ok(()) => applied.into_iter().for_each(Applied::answer),
        Err(e) => {
            let err = db_error(format_args!("committing a batch of {count} writes"), e);
            tracing::warn!(error = %err, "SQLite write batch failed");
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::warn!(error = %e, "SQLite rollback after a failed commit failed");
                }
            }
            applied.into_iter().for_each(|a| a.fail(&err));
        }
    }
}

fn put_row(
    conn: &Connection,
    item: &Item,
    value: &NewValue,
    cond: &PutCondition,
) -> rusqlite::Result<PutOutcome> {
    let (md5, bytes): (&[u8], &[u8]) = (&value.md5, &value.value);
    let row: [&dyn ToSql; 6] = [
        &item.workspace,
        &item.namespace,
        &item.key,
        &md5,
        &bytes,
        &value.content_type,
    ];
    let stored = |changed: usize| match changed {
        0 => PutOutcome::PreconditionFailed,
        _ => PutOutcome::Stored,
    };
    Ok(match cond {
        PutCondition::Always => {
            conn.prepare_cached(UPSERT)?.execute(&row[..])?;
            PutOutcome::Stored
        }
        PutCondition::IfAbsent => match conn.prepare_cached(INSERT_IF_ABSENT)?.execute(&row[..])? {
            0 => PutOutcome::PreconditionFailed,
            _ => PutOutcome::Created,
        },
        PutCondition::IfExists => stored(conn.prepare_cached(UPDATE)?.execute(&row[..])?),
        PutCondition::IfMatch(tags) => {
            let tags = distinct(tags);
            if tags.is_empty() {
                return Ok(PutOutcome::PreconditionFailed);
            }
            let sql = format!("{UPDATE} AND md5 IN ({})", placeholders(7, tags.len()));
            let mut bind: Vec<&dyn ToSql> = row.to_vec();
            bind.extend(tags.iter().map(|t| t as &dyn ToSql));
            stored(execute(conn, &sql, tags.len(), &bind)?)
        }
    })
}

fn delete_row(
    conn: &Connection,
    item: &Item,
    cond: &DeleteCondition,
) -> rusqlite::Result<DeleteOutcome> {
    let key: [&dyn ToSql; 3] = [&item.workspace, &item.namespace, &item.key];
    let deleted = |changed: usize, otherwise: DeleteOutcome| match changed {
        0 => otherwise,
        _ => DeleteOutcome::Deleted,
    };
    Ok(match cond {
        DeleteCondition::Always => deleted(
            conn.prepare_cached(DELETE)?.execute(&key[..])?,
            DeleteOutcome::NotFound,
        ),
        DeleteCondition::IfExists => deleted(
            conn.prepare_cached(DELETE)?.execute(&key[..])?,
            DeleteOutcome::PreconditionFailed,
        ),
        DeleteCondition::IfMatch(tags) => {
            let tags = distinct(tags);
            if tags.is_empty() {
                return Ok(DeleteOutcome::PreconditionFailed);
            }
            let sql = format!("{DELETE} AND md5 IN ({})", placeholders(4, tags.len()));
            let mut bind: Vec<&dyn ToSql> = key.to_vec();
            bind.extend(tags.iter().map(|t| t as &dyn ToSql));
            deleted(
                execute(conn, &sql, tags.len(), &bind)?,
                DeleteOutcome::PreconditionFailed,
            )
        }
    })
}

/// Runs an IF-MATCH statement, caching it only for the short lists seen in practice.
fn execute(
    conn: &Connection,
    sql: &str,
    tags: usize,
    bind: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    if tags <= CACHED_MATCH_LIST {
        conn.prepare_cached(sql)?.execute(bind)
    } else {
        conn.prepare(sql)?.execute(bind)
    }
}

/// The digests of an IF-MATCH list without repeats, as SQL blobs.
fn distinct(tags: &[Digest]) -> Vec<&[u8]> {
    let mut seen = HashSet::with_capacity(tags.len());
    tags.iter()
        .filter(|t| seen.insert(*t))
        .map(|t| &t[..])
        .collect()
}

/// `?first, ?first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn select_entry(conn: &Connection, item: &Item) -> Result<Option<Entry>, StoreError> {
    let failed = |e| db_error(format_args!("get {item}"), e);
    let mut stmt = conn.prepare_cached(SELECT_ENTRY).map_err(failed)?;
    let mut rows = stmt
        .query(params![item.workspace, item.namespace, item.key])
        .map_err(failed)?;
    let Some(row) = rows.next().map_err(failed)? else {
        return Ok(None);
    };
    // Borrowed straight from SQLite's row buffer: one copy of the value, into
    // the `Bytes` the response sends, and none of the digest.
    let value = row
        .get_ref(0)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(failed)?;
    let md5 = row
        .get_ref(1)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(failed)?;
    let md5 = Digest::try_from(md5).map_err(|_| {
        StoreError::Internal(format!(
            "get {item}: the stored md5 is {} bytes, not 16",
            md5.len()
        ))
    })?;
    Ok(Some(Entry {
        value: Bytes::copy_from_slice(value),
        md5,
        content_type: row.get(2).map_err(failed)?,
    }))
}

fn select_keys(conn: &Connection, query: &KeyRange) -> Result<Vec<String>, StoreError> {
    // `key > after` implies `key >= prefix` once `after` is not below the prefix;
    // one lower bound lets SQLite seek straight to the first key.
    let (after, lower) = match &query.after {
        Some(after) if after.as_str() >= query.prefix.as_str() => (true, after),
        _ => (false, &query.prefix),
    };
    let upper = prefix_upper_bound(&query.prefix);
    let sql = match (after, upper.is_some()) {
        (false, false) => LIST_FROM,
        (false, true) => LIST_FROM_UNTIL,
        (true, false) => LIST_AFTER,
        (true, true) => LIST_AFTER_UNTIL,
    };
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let mut bind: Vec<&dyn ToSql> = vec![&query.workspace, &query.namespace, lower, &limit];
    if let Some(upper) = &upper {
        bind.push(upper);
    }
    let failed = |e| {
        db_error(
            format_args!(
                "list {}/{} prefix {:?}",
                query.workspace, query.namespace, query.prefix
            ),
            e,
        )
    };
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    let keys = stmt
        .query_map(&bind[..], |row| row.get::<_, String>(0))
        .map_err(failed)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(failed)?;
    Ok(keys)
}

/// Applies what `migrations` holds beyond the history, all in one transaction
/// under SQLite's write lock, so concurrent processes apply each one once.
fn apply_migrations(
    conn: &mut Connection,
    migrations: &[Migration],
    waits: LockWaits,
) -> Result<Vec<String>, StoreError> {
    let failed = |e| db_error("migrating", e);
    // Another process may hold the write lock for its whole migration run.
    set_lock_wait(conn, waits.migration).map_err(failed)?;
    let applied = apply_pending(conn, migrations);
    // Requests must not wait as long as migrations do.
    let restored = set_lock_wait(conn, waits.request).map_err(failed);
    let applied = applied?;
    restored?;
    Ok(applied)
}

fn apply_pending(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<Vec<String>, StoreError> {
    // BEGIN IMMEDIATE takes the write lock that every SQLite connection honours:
    // the check below and the apply cannot interleave with another process.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| db_error("taking the write lock to migrate", e))?;
    tx.execute_batch(HISTORY_TABLE)
        .map_err(|e| db_error("creating the migration history", e))?;
    let done: HashSet<i64> = tx
        .prepare("SELECT version FROM hulykvs_migrations")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| db_error("reading the migration history", e))?;
    let mut applied = Vec::new();
    for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
        tx.execute_batch(m.sql)
            .and_then(|()| tx.execute(RECORD_MIGRATION, params![m.version, m.name]))
            .map_err(|e| db_error(format_args!("migration {}", m.name), e))?;
        applied.push(m.name.to_owned());
    }
    tx.commit()
        .map_err(|e| db_error("committing migrations", e))?;
    Ok(applied)
}

fn migration_states(
    conn: &Connection,
    migrations: &[Migration],
) -> Result<Vec<MigrationState>, StoreError> {
    let failed = |e| db_error("reading the migration history", e);
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = 'hulykvs_migrations')",
            [],
            |row| row.get(0),
        )
        .map_err(failed)?;
    let mut history: BTreeMap<i64, (String, String)> = BTreeMap::new();
    if exists {
        let mut stmt = conn
            .prepare("SELECT version, name, applied_at FROM hulykvs_migrations")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
            .map_err(failed)?;
        for row in rows {
            let (version, entry) = row.map_err(failed)?;
            history.insert(version, entry);
        }
    }
    let mut states: Vec<MigrationState> = migrations
        .iter()
        .map(|m| MigrationState {
            version: m.version,
            name: m.name.to_owned(),
            applied_at: history.remove(&m.version).map(|(_, at)| at),
        })
        .collect();
    // Left over: applied by a newer release that this one does not know.
    states.extend(
        history
            .into_iter()
            .map(|(version, (name, at))| MigrationState {
                version,
                name,
                applied_at: Some(at),
            }),
    );
    states.sort_by_key(|s| s.version);
    Ok(states)
}

/// Reads that may run in one read transaction: one snapshot, one round of
/// file locking, for all of them. Small enough that a long listing in the
/// batch holds up few point reads.
const READ_BATCH: usize = 16;

/// The read-only connections, each owned by a thread of its own that serves a
/// shared queue. A read costs a queue push and a oneshot answer, not a trip
/// through tokio's blocking pool, and a reader that finds several reads queued
/// serves them back to back without sleeping in between.
struct Readers {
    queue: Arc<ReadQueue>,
    /// How long a read may wait in the queue before it answers `Unavailable`.
    wait: Duration,
}

/// What the reader threads share with the store.
struct ReadQueue {
    state: Mutex<QueueState>,
    /// Signalled when the queue goes from empty to not empty, or closes.
    ready: Condvar,
}

struct QueueState {
    jobs: VecDeque<ReadJob>,
    /// Reader threads asleep on `ready`.
    idle: usize,
    /// Set when the store is dropped: the threads finish the queue and stop.
    closed: bool,
}

/// A queued read's work, given a connection, or `None` when it waited too long.
type ReadFn = Box<dyn FnOnce(Option<&Connection>) + Send>;

/// One queued read.
struct ReadJob {
    queued: Instant,
    /// Runs the read on a connection and answers the caller. Without a
    /// connection it answers `Unavailable`: the read waited too long.
    run: ReadFn,
    /// Set when a reader takes the job; a caller whose wait ran out keeps
    /// waiting for a read that has started, as it would for a lent connection.
    started: Arc<AtomicBool>,
}

impl Readers {
    /// Starts one thread per connection.
    fn start(conns: Vec<Connection>, wait: Duration) -> std::io::Result<Readers> {
        let queue = Arc::new(ReadQueue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                idle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let readers = Readers { queue, wait };
        for (i, conn) in conns.into_iter().enumerate() {
            let queue = Arc::clone(&readers.queue);
            // On failure `readers` drops here and stops the threads already started.
            std::thread::Builder::new()
                .name(format!("hulykvs-sqlite-reader-{i}"))
                .spawn(move || run_reader(conn, &queue, wait))?;
        }
        Ok(readers)
    }

    /// Runs `f` on a reader connection on a reader thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, mut rx) = oneshot::channel();
        let wait = self.wait;
        let started = Arc::new(AtomicBool::new(false));
        let job = ReadJob {
            queued: Instant::now(),
            run: Box::new(move |conn: Option<&Connection>| {
                if tx.is_closed() {
                    return;
                }
                let answer = match conn {
                    Some(conn) => f(conn),
                    None => Err(no_reader(wait)),
                };
                // A caller that went away needs no answer.
                let _ = tx.send(answer);
            }),
            started: Arc::clone(&started),
        };
        self.queue.push(job)?;
        let gone = |_| StoreError::Internal("an SQLite reader stopped mid-read".to_owned());
        match tokio::time::timeout(wait, &mut rx).await {
            Ok(answer) => answer.map_err(gone)?,
            Err(_) if started.load(Ordering::Acquire) => rx.await.map_err(gone)?,
            // Dropping `rx` tells the reader to skip the job.
            Err(_) => Err(no_reader(wait)),
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

impl ReadQueue {
    /// The queue, also after a panic elsewhere: a VecDeque push or pop cannot
    /// leave it half-changed.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: ReadJob) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.closed {
            return Err(StoreError::Unavailable(
                "the SQLite readers have stopped".to_owned(),
            ));
        }
        state.jobs.push_back(job);
        // A reader already awake drains the queue and wakes a peer if it leaves
        // work behind, so only the first job of a burst needs a wakeup.
        let wake = state.idle > 0 && state.jobs.len() == 1;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Up to [`READ_BATCH`] queued jobs, sleeping while there are none;
    /// empty once the queue is closed and drained.
    fn take(&self, batch: &mut Vec<ReadJob>) {
        let mut state = self.lock();
        while state.jobs.is_empty() && !state.closed {
            state.idle += 1;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
        }
        let n = state.jobs.len().min(READ_BATCH);
        batch.extend(state.jobs.drain(..n));
        let wake = !state.jobs.is_empty() && state.idle > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// A reader thread: serves queued reads until the store is dropped.
fn run_reader(conn: Connection, queue: &ReadQueue, wait: Duration) {
    let mut batch = Vec::with_capacity(READ_BATCH);
    loop {
        queue.take(&mut batch);
        if batch.is_empty() {
            break;
        }
        serve_reads(&conn, &mut batch, wait);
    }
    tracing::debug!("SQLite reader stopped");
}

/// Runs the reads of `batch`, several in one read transaction, answering each
/// as soon as it is done.
///
/// Sharing one snapshot is sound: every read of the batch was queued before the
/// transaction began, so each sees every write acknowledged before it was asked.
fn serve_reads(conn: &Connection, batch: &mut Vec<ReadJob>, wait: Duration) {
    let now = Instant::now();
    let mut live = 0;
    for job in batch.iter() {
        job.started.store(true, Ordering::Release);
        if now.duration_since(job.queued) <= wait {
            live += 1;
        }
    }
    // One read needs no explicit transaction: its statement is one.
    let shared = live > 1 && begin_read(conn);
    for job in batch.drain(..) {
        let conn = (now.duration_since(job.queued) <= wait).then_some(conn);
        let run = job.run;
        // A panicking read must not take the connection and its thread with it;
        // its caller learns of it from the dropped answer channel.
        if std::panic::catch_unwind(AssertUnwindSafe(move || run(conn))).is_err() {
            tracing::error!("an SQLite read panicked");
        }
    }
    if shared || !conn.is_autocommit() {
        end_read(conn);
    }
}

/// Opens a read transaction; false if SQLite refused (each read then runs alone).
fn begin_read(conn: &Connection) -> bool {
    match conn.prepare_cached("BEGIN").and_then(|mut s| s.execute([])) {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(error = %e, "could not open a shared SQLite read transaction");
            false
        }
    }
}

/// Ends the read transaction, releasing its snapshot so checkpoints can proceed.
fn end_read(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        tracing::warn!(error = %e, "ending an SQLite read transaction failed");
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "rolling back an SQLite read transaction failed");
        }
    }
}

fn no_reader(wait: Duration) -> StoreError {
    StoreError::Unavailable(format!("no SQLite reader connection free within {wait:?}"))
}

fn open_writer(path: &Path, lock_wait: Duration) -> Result<Connection, StoreError> {
    // No SQLITE_OPEN_URI: a path is a path, even one starting with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error("open", e))?;
    set_lock_wait(&conn, lock_wait).map_err(|e| db_error("busy_timeout", e))?;
    if conn
        .is_readonly(DatabaseName::Main)
        .map_err(|e| db_error("checking access", e))?
    {
        return Err(StoreError::Internal(
            "the file is read-only for this process".to_owned(),
        ));
    }
    let mode =
        switch_to_wal(&conn, lock_wait).map_err(|e| db_error("switching to the WAL journal", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "the WAL journal is not available (journal mode stays {mode:?})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| db_error("setting synchronous=FULL", e))?;
    // Taking the write lock proves now, not at the first request, that the file,
    // its -wal and -shm companions and their folder can be written.
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .map_err(|e| db_error("checking that the file can be written", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Sets the WAL journal (kept in the file, so a no-op after the first time) and
/// returns the journal mode now in force.
fn switch_to_wal(conn: &Connection, lock_wait: Duration) -> rusqlite::Result<String> {
    let start = Instant::now();
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            // SQLite answers BUSY at once, without the busy handler, when several
            // connections switch a new file together; retry until the lock wait ends.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && start.elapsed() < lock_wait =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// Sets the busy timeout: how long a statement waits for a lock another
/// connection holds before failing with SQLITE_BUSY.
fn set_lock_wait(conn: &Connection, wait: Duration) -> rusqlite::Result<()> {
    // rusqlite panics beyond i32::MAX milliseconds (24 days); a configured
    // timeout that long means "wait", so clamp it.
    conn.busy_timeout(wait.min(Duration::from_millis(i32::MAX as u64)))
}

fn open_reader(path: &Path, lock_wait: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| db_error("opening a reader", e))?;
    set_lock_wait(&conn, lock_wait).map_err(|e| db_error("busy_timeout", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Classifies an SQLite error: a lock held past the busy timeout or a full disk
/// is worth retrying later (`Unavailable`); anything else is `Internal`.
fn db_error(what: impl fmt::Display, e: rusqlite::Error) -> StoreError {
    let text = format!("{what}: {e}");
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull) => {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Internal(text),
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped".to_owned())
}

/// A copy of `err` for each of several callers failed by one cause.
fn same_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(text) => StoreError::Unavailable(text.clone()),
        StoreError::Internal(text) => StoreError::Internal(text.clone()),
    }
}

/// Prefixes the message of `err` with `what`, keeping its kind.
fn with_context(err: StoreError, what: &str) -> StoreError {
    match err {
        StoreError::Unavailable(text) => StoreError::Unavailable(format!("{what}: {text}")),
        StoreError::Internal(text) => StoreError::Internal(format!("{what}: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One reader thread on a fresh database, with reads waiting at most `wait`.
    fn one_reader(dir: &tempfile::TempDir, wait: Duration) -> Readers {
        let path = dir.path().join("kvs.db");
        drop(open_writer(&path, Duration::from_secs(1)).unwrap());
        let reader = open_reader(&path, Duration::from_secs(1)).unwrap();
        Readers::start(vec![reader], wait).unwrap()
    }

    #[tokio::test]
    async fn a_read_queued_past_the_pool_timeout_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let readers = one_reader(&dir, Duration::from_millis(100));
        let started = Instant::now();
        // Holds the only reader for longer than a read may wait.
        let slow = readers.run(|conn| {
            std::thread::sleep(Duration::from_millis(600));
            conn.query_row("SELECT 7", [], |row| row.get::<_, i64>(0))
                .map_err(|e| db_error("slow read", e))
        });
        let queued = async {
            // Queued behind the slow read, never started.
            tokio::time::sleep(Duration::from_millis(20)).await;
            readers.run(|_| Ok(())).await
        };
        let (slow, queued) = tokio::join!(slow, async {
            let answer = queued.await;
            (answer, started.elapsed())
        });
        let (queued, after) = queued;
        assert!(
            matches!(queued, Err(StoreError::Unavailable(_))),
            "{queued:?}"
        );
        assert!(
            after < Duration::from_millis(400),
            "answered after {after:?}, not at the pool timeout"
        );
        assert_eq!(
            slow.unwrap(),
            7,
            "a read that started finishes even past the pool timeout"
        );
    }

    #[tokio::test]
    async fn queued_reads_share_the_readers_and_all_answer() {
        let dir = tempfile::tempdir().unwrap();
        let readers = one_reader(&dir, Duration::from_secs(5));
        let reads = (0..100i64).map(|i| {
            readers.run(move |conn| {
                conn.query_row("SELECT ?1", [i], |row| row.get::<_, i64>(0))
                    .map_err(|e| db_error("read", e))
            })
        });
        let answers = futures_util::future::join_all(reads).await;
        let answers: Vec<i64> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_panicking_read_leaves_the_reader_serving() {
        let dir = tempfile::tempdir().unwrap();
        let readers = one_reader(&dir, Duration::from_secs(5));
        let err = readers
            .run(|_| -> Result<(), StoreError> { panic!("a read that panics") })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)), "{err}");
        let after = readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
                    .map_err(|e| db_error("read", e))
            })
            .await;
        assert_eq!(after.unwrap(), 1);
    }
}
