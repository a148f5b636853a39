//! Any store, timed: each operation's duration and failures go to the
//! metrics registry by operation name, whatever the engine. The HTTP state
//! wraps its store in this, so both engines are measured the same way.

use std::future::Future;
use std::time::Instant;

use metrics::{counter, histogram};

use super::migrations::MigrationState;
use super::{
    DeleteCondition, DeleteOutcome, Entry, ItemRef, ListQuery, NewValue, PutCondition, PutOutcome,
    Store, StoreError,
};
use crate::telemetry::registry::{PoolState, DB_OPERATION_DURATION, DB_OPERATION_ERRORS};

/// `S`, with every operation timed.
#[derive(Debug)]
pub struct Instrumented<S>(pub S);

/// Runs `work`, recording how long `operation` took and whether it failed.
async fn timed<T>(
    operation: &'static str,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let outcome = work.await;
    histogram!(DB_OPERATION_DURATION, "db_operation_name" => operation)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &outcome {
        let kind = match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Internal(_) => "internal",
        };
        counter!(DB_OPERATION_ERRORS, "db_operation_name" => operation, "error_type" => kind)
            .increment(1);
    }
    outcome
}

impl<S: Store> Store for Instrumented<S> {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        timed("get", self.0.get(item)).await
    }

    async fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        timed("put", self.0.put(item, value, cond)).await
    }

    async fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> Result<DeleteOutcome, StoreError> {
        timed("delete", self.0.delete(item, cond)).await
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        timed("list", self.0.list(query)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        timed("migrate", self.0.migrate()).await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.0.migration_status().await
    }

    fn pool_state(&self) -> Option<PoolState> {
        self.0.pool_state()
    }
}
