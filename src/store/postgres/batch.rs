//! GET and PUT coalescing (PostgreSQL only): while every slot of a lane is
//! busy, requests queue, and each slot, as it frees, takes the queue to the
//! database as one statement. A request that finds a slot free runs alone, at
//! once, so an idle service pays nothing for this. A slot sends its next
//! batch before it answers the last one (see [`serve_queue`]).
//!
//! Few slots make large batches: a batch of 64 keys costs the database about
//! what 3 single reads do. CockroachDB runs every request alone.
//!
//! Writes go to one of `pool_size` lanes of one slot each, by namespace: every
//! write of a namespace bumps its revision row, whose lock is held to commit,
//! so two statements writing one namespace would only wait for each other.
//! One in flight per namespace, and the rest of its writes in the next batch,
//! commits them together instead of one after another.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use metrics::{histogram, Histogram};
use tokio::sync::oneshot;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::batched::{BatchStatements, READ_MANY_POSITION};
use super::pool::Pooled;
use super::row::{entry_from_row, revision_at};
use super::sql::UpsertRows;
use crate::store::changes::Revision;
use crate::store::{Entry, Item, ItemRef, NewValue, StoreError};
use crate::telemetry::registry::{Handles, DB_BATCH_SIZE};

/// Most requests one batched statement serves.
const BATCH_MAX: usize = 128;
/// Most value bytes one batched statement carries (a batch always takes at
/// least one job): 128 values of 2 MB would otherwise make a 256 MB message.
const BATCH_MAX_BYTES: usize = 8 << 20;

/// The batched statements and the requests waiting for them. Built once
/// migrations are applied, so a queued request always has its statement.
pub(super) struct Batcher {
    pooled: Arc<Pooled>,
    /// The batched read and upsert.
    statements: BatchStatements,
    reads: Lane<QueuedRead>,
    /// One slot each; a namespace always writes through the same lane.
    writes: Vec<Lane<QueuedWrite>>,
    /// Hashes a namespace to its lane (foldhash: SipHash cost more than
    /// the rest of picking a lane, issue #29).
    lanes: foldhash::fast::RandomState,
}

impl Batcher {
    /// Lanes for a pool of `pool_size` connections.
    pub(super) fn new(
        pooled: Arc<Pooled>,
        statements: BatchStatements,
        pool_size: usize,
    ) -> Batcher {
        Batcher {
            pooled,
            statements,
            // One read slot per 8 connections (one for the default pool):
            // on two cores shared with PostgreSQL, 1 slot against 2 served
            // 9-34% more GETs at 16 and 64 clients in each of 8 interleaved
            // runs, its larger batches costing the database less per key.
            reads: Lane::new(pool_size / 8),
            // As many lanes as connections: namespaces spread over them, and
            // a write waiting on a row lock holds back only its lane.
            writes: (0..pool_size.max(1)).map(|_| Lane::new(1)).collect(),
            lanes: foldhash::fast::RandomState::default(),
        }
    }

    /// The write lane of `item`'s namespace.
    fn write_lane(&self, item: &ItemRef<'_>) -> usize {
        use std::hash::BuildHasher;
        let hash = self.lanes.hash_one((item.workspace, item.namespace));
        (hash % self.writes.len() as u64) as usize
    }

    /// Reads `item` with the future `alone` makes when a read slot is free,
    /// else in the next batch of reads. `alone` is a maker, not the future:
    /// a future handed in is held twice (as the argument, and as the value
    /// awaited), and the request's future holds every such copy (issue #29).
    pub(super) async fn read<F>(
        self: &Arc<Self>,
        item: ItemRef<'_>,
        alone: impl FnOnce() -> F,
    ) -> Result<Option<Entry>, StoreError>
    where
        F: Future<Output = Result<Option<Entry>, StoreError>>,
    {
        let mut waiting = None;
        let slot = enter(self, 0, |queued| {
            let (reply, answer) = oneshot::channel();
            waiting = Some(answer);
            QueuedRead {
                item: item.owned(),
                queued,
                reply,
            }
        });
        match waiting {
            Some(answer) => wait_queued(answer).await,
            None => {
                // The slot is held until this read is done, then handed on to the queue.
                let answer = alone().await;
                drop(slot);
                answer
            }
        }
    }

    /// Upserts `value` at `item` with the future `alone` makes when a write slot is free,
    /// else in the next batch of upserts; answers the revision of its change.
    pub(super) async fn upsert<F>(
        self: &Arc<Self>,
        item: ItemRef<'_>,
        value: &NewValue,
        alone: impl FnOnce() -> F,
    ) -> Result<Revision, StoreError>
    where
        F: Future<Output = Result<Option<Revision>, StoreError>>,
    {
        let mut waiting = None;
        let lane = self.write_lane(&item);
        let slot = enter(self, lane, |queued| {
            let (reply, answer) = oneshot::channel();
            waiting = Some(answer);
            QueuedWrite {
                item: item.owned(),
                value: value.clone(),
                queued,
                reply,
            }
        });
        match waiting {
            Some(answer) => wait_queued(answer).await,
            None => {
                let answer = alone().await.and_then(|revision| {
                    revision.ok_or_else(|| {
                        StoreError::Internal("an upsert reported no change".to_owned())
                    })
                });
                drop(slot);
                answer
            }
        }
    }
}

/// Statements of one kind in flight at once, and the requests queued behind them.
struct Lane<J> {
    slots: usize,
    state: Mutex<LaneState<J>>,
}

/// A queued request implies every slot is busy. The queue is in the order
/// jobs came, so its first job is the one waiting longest.
struct LaneState<J> {
    running: usize,
    queue: Vec<J>,
    /// A [`watch_queue`] task is looking after the queue's pool timeouts.
    watched: bool,
}

impl<J> Lane<J> {
    fn new(slots: usize) -> Self {
        Lane {
            slots: slots.max(1),
            state: Mutex::new(LaneState {
                running: 0,
                queue: Vec::new(),
                watched: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState<J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many of the queued jobs, of these weights, the next batch takes: at
/// most [`BATCH_MAX`] and [`BATCH_MAX_BYTES`], and at least one.
fn batch_len(weights: impl Iterator<Item = usize>) -> usize {
    let mut take = 0;
    let mut bytes = 0usize;
    for weight in weights.take(BATCH_MAX) {
        bytes = bytes.saturating_add(weight);
        if take > 0 && bytes > BATCH_MAX_BYTES {
            break;
        }
        take += 1;
    }
    take
}

/// A request that can wait in a [`Lane`].
trait Job: Sized + Send + 'static {
    type Answer: Send;
    /// Lane number `lane` of this kind.
    fn lane(batcher: &Batcher, lane: usize) -> &Lane<Self>;
    fn queued(&self) -> Instant;
    fn gone(&self) -> bool;
    /// Bytes this job adds to a batched statement, for [`BATCH_MAX_BYTES`].
    fn weight(&self) -> usize {
        0
    }
    fn answer(self, answer: Result<Self::Answer, StoreError>);
    /// Serves every job of `batch` with one statement, and returns each job
    /// with its answer, for [`serve_queue`] to deliver.
    fn run(batcher: &Batcher, batch: Vec<Self>) -> impl Future<Output = Answers<Self>> + Send + '_;
}

/// Jobs with their answers, not yet delivered.
type Answers<J> = Vec<(J, Result<<J as Job>::Answer, StoreError>)>;

/// Wakes each job's request with its answer.
fn deliver<J: Job>(answers: Answers<J>) {
    for (job, answer) in answers {
        job.answer(answer);
    }
}

/// A GET waiting for a batched read.
struct QueuedRead {
    item: Item,
    queued: Instant,
    reply: oneshot::Sender<Result<Option<Entry>, StoreError>>,
}

/// A PUT without a precondition waiting for a batched upsert.
struct QueuedWrite {
    item: Item,
    value: NewValue,
    queued: Instant,
    reply: oneshot::Sender<Result<Revision, StoreError>>,
}

/// A slot of lane `J` number `.1`; on drop it serves the queue with a batch
/// task, or frees the slot.
struct Slot<J: Job>(Arc<Batcher>, usize, std::marker::PhantomData<J>);

impl<J: Job> Drop for Slot<J> {
    fn drop(&mut self) {
        let lane = J::lane(&self.0, self.1);
        let mut state = lane.lock();
        if state.queue.is_empty() {
            state.running -= 1;
            return;
        }
        drop(state);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(serve_queue::<J>(Arc::clone(&self.0), self.1));
            }
            // The runtime is going away: the queued requests learn it from
            // their dropped replies.
            Err(_) => {
                let mut state = lane.lock();
                state.queue.clear();
                state.running -= 1;
            }
        }
    }
}

/// Takes a slot of lane `J` number `at` if one is free; otherwise queues the
/// job `make` builds from the instant it is queued, and makes sure a
/// [`watch_queue`] task looks after the queue.
fn enter<J: Job>(
    batcher: &Arc<Batcher>,
    at: usize,
    make: impl FnOnce(Instant) -> J,
) -> Option<Slot<J>> {
    let lane = J::lane(batcher, at);
    let mut state = lane.lock();
    if state.running < lane.slots {
        state.running += 1;
        return Some(Slot(Arc::clone(batcher), at, std::marker::PhantomData));
    }
    // Read under the lock, so the queue's instants never go backwards.
    state.queue.push(make(Instant::now()));
    if !state.watched {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            state.watched = true;
            drop(state);
            runtime.spawn(watch_queue::<J>(Arc::clone(batcher), at));
        }
    }
    None
}

/// Answers `Unavailable` to each job of lane `J` number `at` still queued
/// after the pool timeout, as a request waiting for a pooled connection would
/// get; ends once the queue is empty. One timer for the lane, not one a
/// queued request (issue #29: a timer a request was 2% of a GET's
/// instructions): it sleeps until the first job's deadline, the soonest of
/// the queue's, and looks again. Under load the first job is always young,
/// so the task wakes about once a pool timeout. A job already taken into a
/// batch is bounded by the batch instead (see [`serve_queue`]).
async fn watch_queue<J: Job>(batcher: Arc<Batcher>, at: usize) {
    let timeout = batcher.pooled.pool_timeout;
    loop {
        let (expired, next) = {
            let lane = J::lane(&batcher, at);
            let mut state = lane.lock();
            let now = Instant::now();
            let waited = state
                .queue
                .iter()
                .take_while(|job| now.saturating_duration_since(job.queued()) >= timeout)
                .count();
            let expired: Vec<J> = state.queue.drain(..waited).collect();
            // No overflow: the pool timeout is at most 365 days (`config`).
            let next = state.queue.first().map(|job| job.queued() + timeout);
            if next.is_none() {
                state.watched = false;
            }
            (expired, next)
        };
        for job in expired {
            job.answer(Err(batcher.pooled.no_connection()));
        }
        match next {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => return,
        }
    }
}

/// Holds a slot of lane `J` while jobs are queued, serving them in batches.
/// A job that has waited the pool timeout gets `Unavailable`, as it would
/// from the pool; the batch waits for a connection only what is left of its
/// oldest job's pool timeout.
///
/// The answers of a batch are delivered once the next batch's statement is
/// on its way: on a request thread that also parses and answers requests,
/// the connection's task then writes that statement before the woken
/// requests write their responses, so the database does not sit idle
/// behind them (issue #29: a batched read's round trip took 400 µs at 16
/// clients, the database busy for a fraction of it). Every answer still
/// follows its own statement's completion.
async fn serve_queue<J: Job>(batcher: Arc<Batcher>, at: usize) {
    let lane = J::lane(&batcher, at);
    let mut answered: Answers<J> = Vec::new();
    loop {
        let batch = {
            let mut state = lane.lock();
            if state.queue.is_empty() {
                state.running -= 1;
                drop(state);
                deliver(answered);
                return;
            }
            let take = batch_len(state.queue.iter().map(Job::weight));
            state.queue.drain(..take).collect::<Vec<_>>()
        };
        let mut live = Vec::with_capacity(batch.len());
        let now = Instant::now();
        for job in batch {
            if job.gone() {
                continue;
            }
            if now.saturating_duration_since(job.queued()) >= batcher.pooled.pool_timeout {
                job.answer(Err(batcher.pooled.no_connection()));
                continue;
            }
            live.push(job);
        }
        if live.is_empty() {
            continue;
        }
        let mut run = std::pin::pin!(J::run(&batcher, live));
        // One poll sends the statement (or finishes, on an early error).
        let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
        deliver(std::mem::take(&mut answered));
        answered = match first {
            Poll::Ready(answers) => answers,
            Poll::Pending => run.await,
        };
    }
}

/// The answer of a queued job: from its batch, which the pool and statement
/// timeouts bound, or `Unavailable` from [`watch_queue`] if it is still
/// queued after the pool timeout. A dropped reply means the runtime is
/// stopping.
async fn wait_queued<A>(answer: oneshot::Receiver<Result<A, StoreError>>) -> Result<A, StoreError> {
    answer.await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(
            "the batched statement was abandoned".to_owned(),
        ))
    })
}

/// The batch-size histogram of `operation` (`index` 0 for GET, 1 for PUT),
/// made once: a batch records without looking its series up.
fn batch_size(index: usize, operation: &'static str) -> &'static Histogram {
    static SIZES: Handles<Histogram, 2> = Handles::new();
    SIZES.get(
        index,
        || histogram!(DB_BATCH_SIZE, "db_operation_name" => operation),
    )
}

/// How long a batch may wait for a connection.
fn batch_wait<J: Job>(pooled: &Pooled, batch: &[J]) -> Duration {
    let oldest = batch
        .iter()
        .map(Job::queued)
        .min()
        .unwrap_or_else(Instant::now);
    pooled.pool_timeout.saturating_sub(oldest.elapsed())
}

impl Job for QueuedRead {
    type Answer = Option<Entry>;
    fn lane(batcher: &Batcher, _: usize) -> &Lane<Self> {
        &batcher.reads
    }
    fn queued(&self) -> Instant {
        self.queued
    }
    fn gone(&self) -> bool {
        self.reply.is_closed()
    }
    fn answer(self, answer: Result<Option<Entry>, StoreError>) {
        let _ = self.reply.send(answer);
    }

    /// One query for the batch; rows come back with the position of their key.
    async fn run(batcher: &Batcher, live: Vec<Self>) -> Answers<Self> {
        batch_size(0, "get").record(live.len() as f64);
        let workspaces: Vec<Uuid> = live.iter().map(|r| r.item.workspace).collect();
        let namespaces: Vec<&str> = live.iter().map(|r| r.item.namespace.as_str()).collect();
        let keys: Vec<&str> = live.iter().map(|r| r.item.key.as_str()).collect();
        let params: [&(dyn ToSql + Sync); 3] = [&workspaces, &namespaces, &keys];
        let pooled = &batcher.pooled;
        let wait = batch_wait(pooled, &live);
        let rows = match pooled
            .query(&batcher.statements.read, &params, Some(wait))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                return live
                    .into_iter()
                    .map(|read| (read, Err(e.clone())))
                    .collect()
            }
        };
        let mut found: Vec<Option<Result<Entry, StoreError>>> = Vec::new();
        found.resize_with(live.len(), || None);
        for row in &rows {
            let index = match row.try_get::<_, i64>(READ_MANY_POSITION) {
                Ok(i) => usize::try_from(i - 1).ok().filter(|i| *i < live.len()),
                Err(_) => None,
            };
            let Some(index) = index else {
                tracing::warn!("batched read returned a row of no request");
                continue;
            };
            found[index] = Some(entry_from_row(row, &live[index].item.borrowed()));
        }
        live.into_iter()
            .zip(found)
            .map(|(read, entry)| (read, entry.transpose()))
            .collect()
    }
}

impl Job for QueuedWrite {
    type Answer = Revision;
    fn lane(batcher: &Batcher, at: usize) -> &Lane<Self> {
        &batcher.writes[at]
    }
    fn queued(&self) -> Instant {
        self.queued
    }
    fn weight(&self) -> usize {
        self.value.value.len()
    }
    fn gone(&self) -> bool {
        // A write whose client left is still written, as it would be alone.
        false
    }
    fn answer(self, answer: Result<Revision, StoreError>) {
        let _ = self.reply.send(answer);
    }

    /// The batch's upserts. Writes of one key in one batch were concurrent,
    /// yet each gets a change and a revision of its own (the feed carries
    /// every acknowledged write, SPEC §19), and one statement may not update a
    /// row twice: the k-th write of each key, in queue order, goes in the
    /// k-th statement. Rows go in key order, so two batches lock shared rows
    /// in the same order and cannot deadlock.
    async fn run(batcher: &Batcher, mut live: Vec<Self>) -> Answers<Self> {
        batch_size(1, "put").record(live.len() as f64);
        let mut answers = Vec::with_capacity(live.len());
        // Stable: among writes of one key, queue order is kept.
        live.sort_by(|a, b| {
            let (a, b) = (&a.item, &b.item);
            (a.workspace, a.namespace.as_bytes(), a.key.as_bytes()).cmp(&(
                b.workspace,
                b.namespace.as_bytes(),
                b.key.as_bytes(),
            ))
        });
        let mut rounds: Vec<Vec<Self>> = Vec::new();
        let mut round = 0;
        for write in live {
            // The write before this one is the last of its round.
            let again = rounds
                .get(round)
                .and_then(|writes| writes.last())
                .is_some_and(|before| before.item == write.item);
            round = match again {
                true => round + 1,
                false => 0,
            };
            if rounds.len() <= round {
                rounds.push(Vec::new());
            }
            rounds[round].push(write);
        }
        let mut failed: Option<StoreError> = None;
        for writes in rounds {
            match &failed {
                // Not sent: the error of the statement before stands for them.
                Some(e) => answers.extend(writes.into_iter().map(|w| (w, Err(e.clone())))),
                None => failed = upsert(batcher, writes, &mut answers).await.err(),
            }
        }
        answers
    }
}

/// One statement upserting `writes` (one per key), each answered (into
/// `answers`) with its revision.
async fn upsert(
    batcher: &Batcher,
    writes: Vec<QueuedWrite>,
    answers: &mut Answers<QueuedWrite>,
) -> Result<(), StoreError> {
    let rows: Vec<&QueuedWrite> = writes.iter().collect();
    let mut arrays = UpsertRows::with_capacity(rows.len());
    for w in &rows {
        arrays.push(w.item.workspace, &w.item.namespace, &w.item.key, &w.value);
    }
    let params = arrays.params();
    let pooled = &batcher.pooled;
    let wait = batch_wait(pooled, &writes);
    let outcome = pooled
        .query(&batcher.statements.upsert, &params, Some(wait))
        .await
        .and_then(|written| revisions_by_row(&rows, &written));
    drop(rows);
    match outcome {
        Ok(revisions) => {
            let written = writes.into_iter().zip(revisions);
            answers.extend(written.map(|(write, revision)| (write, Ok(revision))));
            Ok(())
        }
        Err(e) => {
            answers.extend(writes.into_iter().map(|write| (write, Err(e.clone()))));
            Err(e)
        }
    }
}

/// The revision of each row of the batch, in the batch's order, from the
/// rows the statement answered (`workspace, namespace, key, revision`),
/// looked up by the keys as the rows hold them: nothing is copied.
fn revisions_by_row(
    rows: &[&QueuedWrite],
    written: &[tokio_postgres::Row],
) -> Result<Vec<Revision>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity_and_hasher(
        written.len(),
        foldhash::fast::RandomState::default(),
    );
    let column = |e| super::errors::db_error(&e);
    for row in written {
        let item: (Uuid, &str, &str) = (
            row.try_get(0).map_err(column)?,
            row.try_get(1).map_err(column)?,
            row.try_get(2).map_err(column)?,
        );
        found.insert(item, revision_at(row, 3)?);
    }
    rows.iter()
        .map(|write| {
            let item = &write.item;
            let at = (item.workspace, item.namespace.as_str(), item.key.as_str());
            found
                .get(&at)
                .copied()
                .ok_or_else(|| StoreError::Internal(format!("a batched upsert did not log {item}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_in_count_and_bytes() {
        assert_eq!(batch_len(std::iter::repeat(0).take(500)), BATCH_MAX);
        assert_eq!(batch_len(std::iter::repeat(100).take(3)), 3);
        assert_eq!(batch_len(std::iter::repeat(2_000_000).take(16)), 4);
        assert_eq!(
            batch_len([usize::MAX, 1].into_iter()),
            1,
            "one job always goes"
        );
        assert_eq!(batch_len(std::iter::empty()), 0);
    }
}
