//! The one writer connection, on a dedicated thread fed by a channel. It takes
//! the next queued write, drains whatever else is queued (up to [`MAX_BATCH`]),
//! runs them all in one transaction and commits once: one `fsync` pays for
//! many writes (group commit). Each caller is answered only after that COMMIT.
//!
//! A panic while serving is caught: the writes of that batch are answered
//! with an error (never acknowledged), an open transaction is rolled back, and
//! the thread goes on. Should the thread stop anyway, [`Writer::is_alive`]
//! says so, and `/readyz` answers `503`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::connection::db_error;
use super::sql::{delete_row, put_row};
use crate::store::StoreError;
use crate::store::{DeleteCondition, DeleteOutcome, Item, NewValue, PutCondition, PutOutcome};

/// Most writes committed in one transaction. Large enough that a burst shares a
/// handful of fsyncs, small enough that one batch holds the write lock briefly.
pub const MAX_BATCH: usize = 256;

/// Writes that may wait for the writer thread before callers feel back-pressure.
const QUEUE_DEPTH: usize = 1024;

/// The queue to the writer thread, and whether that thread still runs.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Cleared by [`AliveGuard`] when the thread ends.
    pub(super) alive: Arc<AtomicBool>,
    /// How long a write may wait for room in the queue.
    queue_wait: Duration,
    /// How long a queued write may wait for its answer.
    answer_wait: Duration,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn start(
        conn: Connection,
        queue_wait: Duration,
        answer_wait: Duration,
    ) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(Arc::clone(&alive));
        std::thread::Builder::new()
            .name("hulykvs-sqlite-writer".to_owned())
            .spawn(move || run_writer(conn, rx, guard))?;
        Ok(Writer {
            jobs,
            alive,
            queue_wait,
            answer_wait,
        })
    }

    /// Whether the writer thread still serves writes.
    pub(super) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Queues a write and waits until the batch holding it has committed.
    pub(super) async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Job::Write(make(tx))).await?;
        match tokio::time::timeout(self.answer_wait, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(self.dropped()),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the SQLite writer did not answer within {:?}",
                self.answer_wait
            ))),
        }
    }

    /// Runs `f` on the writer connection between batches, alone.
    pub(super) async fn exclusive<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Exclusive(Box::new(move |conn| {
            // The caller may have gone away; nobody is left to tell.
            let _ = tx.send(f(conn));
        }));
        self.enqueue(job).await?;
        rx.await.map_err(|_| self.dropped())?
    }

    /// Why a job's answer never came: the thread stopped, or the work
    /// holding the job panicked (caught; the thread goes on).
    fn dropped(&self) -> StoreError {
        if self.is_alive() {
            StoreError::Internal("the SQLite writer failed before answering".to_owned())
        } else {
            writer_gone()
        }
    }

    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        match tokio::time::timeout(self.queue_wait, self.jobs.send(job)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(writer_gone()),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the SQLite writer queue stayed full for {:?}",
                self.queue_wait
            ))),
        }
    }
}

/// The writer thread is gone: nothing can be written.
pub(super) fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped".to_owned())
}

/// Clears the writer's `alive` flag when its thread ends, by return or by panic.
pub(super) struct AliveGuard(pub(super) Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Work for the writer thread.
enum Job {
    /// One write, committed together with whatever else is queued.
    Write(Write),
    /// Work that needs the writer connection to itself (migrations).
    Exclusive(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// One queued write and where its answer goes.
pub(super) enum Write {
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
                let _ = reply.send(Err(err.clone()));
            }
            Write::Delete { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
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
                let _ = reply.send(Err(err.clone()));
            }
            Applied::Delete(reply, _) => {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

/// The writer thread: group commit until every sender is gone.
fn run_writer(mut conn: Connection, mut jobs: mpsc::Receiver<Job>, _alive: AliveGuard) {
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
        let serve = AssertUnwindSafe(|| {
            if !batch.is_empty() {
                commit_batch(&conn, batch);
            }
            if let Some(f) = exclusive {
                f(&mut conn);
            }
        });
        // The callers of the work that panicked learn it from their dropped
        // answers; the writes were never acknowledged.
        if std::panic::catch_unwind(serve).is_err() {
            tracing::error!("the SQLite writer panicked; the writes it held were not stored");
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %e, "the SQLite writer cannot roll back after a panic and stops; /readyz answers 503");
                    return;
                }
            }
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
