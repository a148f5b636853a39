//! The read-only connections, each owned by a thread of its own that serves a
//! shared queue. A reader takes whatever is queued (up to [`READ_BATCH`]) and
//! runs it in one read transaction, answering each caller as its read
//! completes. In WAL mode readers never wait for the writer, and no SQLite
//! call ever runs on the runtime's worker threads.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// Reads that may run in one read transaction: one snapshot, one round of
/// file locking, for all of them. Small enough that a long listing in the
/// batch holds up few point reads.
const READ_BATCH: usize = 16;

/// The read-only connections, each owned by a thread of its own that serves a
/// shared queue. A read costs a queue push and a oneshot answer, not a trip
/// through tokio's blocking pool, and a reader that finds several reads queued
/// serves them back to back without sleeping in between.
pub(super) struct Readers {
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
    pub(super) fn start(conns: Vec<Connection>, wait: Duration) -> std::io::Result<Readers> {
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
    pub(super) async fn run<T: Send + 'static>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::connection::{db_error, open_reader, open_writer};

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
