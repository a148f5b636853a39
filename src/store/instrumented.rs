//! Any store, timed: each operation's duration and failures go to the
//! metrics registry by operation name, whatever the engine. The HTTP state
//! wraps its store in this, so both engines are measured the same way.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{counter, histogram, Histogram};
use tracing::Instrument as _;

use uuid::Uuid;

use super::changes::{ChangePage, ChangeQuery};
use super::migrations::MigrationState;
use super::snapshot::{PageSink, Restored, SnapshotFilter};
use super::stored::{Reseal, StoredRow};
use super::txn::{Replace, Replaced, Txn, TxnOutcome};
use super::{
    DeleteCondition, DeleteOutcome, Entry, Item, ItemRef, KeyPage, ListQuery, Listed, NewValue,
    PrefixDeleted, PutCondition, PutOutcome, Store, StoreError, Wake,
};
use crate::telemetry::registry::{Handles, PoolState, DB_OPERATION_DURATION, DB_OPERATION_ERRORS};
use crate::telemetry::traces;

/// `S`, with every operation timed.
#[derive(Debug)]
pub struct Instrumented<S>(pub S);

/// The operations timed, in the order of their handles.
const OPERATIONS: [&str; 13] = [
    "get",
    "put",
    "delete",
    "list",
    "ping",
    "migrate",
    "sweep",
    "changes",
    "prune",
    "delete_prefix",
    "list_values",
    "txn",
    "replace",
];

static DURATION: Handles<Histogram, { OPERATIONS.len() }> = Handles::new();

/// Runs `work` (operation `OPERATIONS[op]` on `system`), recording how long it
/// took and whether it failed; in a client span while traces are exported.
///
/// `work` makes the future rather than being it: a future handed in would be
/// held twice (the argument, and the value awaited), and so would everything
/// it awaits in turn; the request's future would carry both.
async fn timed<T, F>(
    system: &'static str,
    op: usize,
    work: impl FnOnce() -> F,
) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let operation = OPERATIONS[op];
    let started = Instant::now();
    let outcome = if traces::enabled() {
        let span = tracing::info_span!(
            target: "hulykvs::store",
            "db",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = system,
            db.operation.name = operation,
        );
        work().instrument(span).await
    } else {
        work().await
    };
    DURATION
        .get(
            op,
            || histogram!(DB_OPERATION_DURATION, "db_operation_name" => operation),
        )
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &outcome {
        let kind = match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Internal(_) => "internal",
            StoreError::Undecryptable(_) => "undecryptable",
        };
        counter!(DB_OPERATION_ERRORS, "db_operation_name" => operation, "error_type" => kind)
            .increment(1);
    }
    outcome
}

impl<S: Store> Instrumented<S> {
    /// The database as OpenTelemetry names it.
    fn system(&self) -> &'static str {
        match self.0.backend() {
            "postgres" => "postgresql",
            other => other,
        }
    }
}

impl<S: Store> Store for Instrumented<S> {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        timed(self.system(), 0, || self.0.get(item)).await
    }

    async fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        timed(self.system(), 1, || self.0.put(item, value, cond)).await
    }

    async fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> Result<DeleteOutcome, StoreError> {
        timed(self.system(), 2, || self.0.delete(item, cond)).await
    }

    async fn list_page(&self, query: ListQuery<'_>) -> Result<KeyPage, StoreError> {
        timed(self.system(), 3, || self.0.list_page(query)).await
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        timed(self.system(), 3, || self.0.list(query)).await
    }

    async fn delete_prefix(
        &self,
        query: ListQuery<'_>,
        limit: usize,
    ) -> Result<PrefixDeleted, StoreError> {
        timed(self.system(), 9, || self.0.delete_prefix(query, limit)).await
    }

    async fn list_values(
        &self,
        query: ListQuery<'_>,
        budget: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        timed(self.system(), 10, || self.0.list_values(query, budget)).await
    }

    async fn transact(&self, txn: &Txn) -> Result<TxnOutcome, StoreError> {
        timed(self.system(), 11, || self.0.transact(txn)).await
    }

    async fn replace(&self, item: ItemRef<'_>, write: Replace) -> Result<Replaced, StoreError> {
        timed(self.system(), 12, || self.0.replace(item, write)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(self.system(), 4, || self.0.ping()).await
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        timed(self.system(), 5, || self.0.migrate()).await
    }

    async fn attach(&self) -> Result<(), StoreError> {
        self.0.attach().await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.0.migration_status().await
    }

    async fn sweep_expired(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        timed(self.system(), 6, || self.0.sweep_expired(limit)).await
    }

    async fn changes(&self, query: ChangeQuery<'_>) -> Result<ChangePage, StoreError> {
        timed(self.system(), 7, || self.0.changes(query)).await
    }

    async fn prune_changes(&self, retention: Duration, limit: usize) -> Result<u64, StoreError> {
        timed(self.system(), 8, || self.0.prune_changes(retention, limit)).await
    }

    fn watch_others(&self, wake: Wake) -> bool {
        self.0.watch_others(wake)
    }

    fn announce(&self, workspace: Uuid, namespace: &str) {
        self.0.announce(workspace, namespace)
    }

    fn new_value(&self, item: ItemRef<'_>, value: Bytes, content_type: String) -> NewValue {
        self.0.new_value(item, value, content_type)
    }

    async fn key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        self.0.key_ids_in_use().await
    }

    async fn rows_to_reseal(
        &self,
        after: Option<&Item>,
        keep: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.0.rows_to_reseal(after, keep, limit).await
    }

    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        self.0.reseal(batch).await
    }

    async fn snapshot(&self, filter: &SnapshotFilter, sink: PageSink) -> Result<(), StoreError> {
        self.0.snapshot(filter, sink).await
    }

    async fn restore(&self, rows: &[Restored], skip_existing: bool) -> Result<u64, StoreError> {
        self.0.restore(rows, skip_existing).await
    }

    fn pool_state(&self) -> Option<PoolState> {
        self.0.pool_state()
    }
}
