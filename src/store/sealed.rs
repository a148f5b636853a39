//! Encryption at rest as a store: any store, its new values sealed and its
//! stored values opened again (SPEC §15). `serve` wraps its store in this,
//! so every route reads and writes through it; the engines only carry the
//! sealed bytes, their keyed digest and the id of the key that sealed them.
//!
//! Without keys it seals nothing, and a sealed row it meets answers
//! `undecryptable` rather than its ciphertext.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::changes::{ChangePage, ChangeQuery};
use super::expiry::Expiry;
use super::migrations::MigrationState;
use super::snapshot::{PageSink, Restored, SnapshotFilter};
use super::stored::{open_stored, Reseal, StoredRow};
use super::txn::{OpKind, OpResult, Replace, Replaced, Txn, TxnOutcome};
use super::{
    DeleteCondition, DeleteOutcome, Entry, Item, ItemRef, KeyPage, ListQuery, Listed, NewValue,
    PrefixDeleted, PutCondition, PutOutcome, Store, StoreError, Wake,
};
use crate::crypto::{Keyring, Row};
use crate::telemetry::registry::PoolState;

/// `S`, its values sealed under `keys`.
#[derive(Debug)]
pub struct Sealed<S> {
    inner: S,
    keys: Option<Arc<Keyring>>,
}

impl<S: Store> Sealed<S> {
    /// `inner`, sealing with `keys` (`None`: nothing is sealed, and sealed
    /// rows do not open).
    pub fn new(inner: S, keys: Option<Arc<Keyring>>) -> Self {
        Sealed { inner, keys }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// `entry`, read at `workspace`/`namespace`/`key`, with its plaintext.
    fn open(
        &self,
        workspace: Uuid,
        namespace: &str,
        key: &str,
        entry: Entry,
    ) -> Result<Entry, StoreError> {
        let Some(key_id) = entry.sealed_by.clone() else {
            return Ok(entry);
        };
        let row = Row {
            workspace,
            namespace,
            key,
        };
        let opened = open_stored(
            self.keys.as_deref(),
            row,
            &key_id,
            entry.value.clone(),
            &entry.md5,
        );
        match opened {
            Ok(value) => Ok(Entry {
                value,
                sealed_by: None,
                ..entry
            }),
            Err(why) => {
                tracing::error!(
                    %workspace,
                    namespace,
                    key,
                    key_id = &*key_id,
                    "a stored value does not open: {why}"
                );
                Err(StoreError::Undecryptable(format!(
                    "{workspace}/{namespace}/{key} (key id {key_id:?}): {why}"
                )))
            }
        }
    }

    /// Fails when the value stored at `item` is sealed and does not open.
    /// Without keys nothing is checked (a deployment without encryption
    /// pays no extra read); a sealed value then fails when it is opened.
    async fn check_opens(&self, item: ItemRef<'_>) -> Result<(), StoreError> {
        if self.keys.is_none() {
            return Ok(());
        }
        match self.inner.get(item).await? {
            Some(entry) if entry.sealed_by.is_some() => self.open_at(item, entry).map(drop),
            _ => Ok(()),
        }
    }

    fn open_at(&self, item: ItemRef<'_>, entry: Entry) -> Result<Entry, StoreError> {
        self.open(item.workspace, item.namespace, item.key, entry)
    }
}

impl<S: Store> Store for Sealed<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn new_value(&self, item: ItemRef<'_>, value: Bytes, content_type: String) -> NewValue {
        let row = Row {
            workspace: item.workspace,
            namespace: item.namespace,
            key: item.key,
        };
        match self.keys.as_ref().and_then(|keys| keys.seal(row, &value)) {
            Some(sealed) => NewValue {
                value: sealed.bytes,
                md5: sealed.digest,
                content_type,
                expiry: Expiry::Never,
                sealed_by: Some(sealed.key_id),
            },
            None => NewValue::new(value, content_type),
        }
    }

    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        match self.inner.get(item).await? {
            Some(entry) => self.open_at(item, entry).map(Some),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.inner.put(item, value, cond).await
    }

    async fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete(item, cond).await
    }

    async fn delete_prefix(
        &self,
        query: ListQuery<'_>,
        limit: usize,
    ) -> Result<PrefixDeleted, StoreError> {
        self.inner.delete_prefix(query, limit).await
    }

    async fn list_page(&self, query: ListQuery<'_>) -> Result<KeyPage, StoreError> {
        self.inner.list_page(query).await
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        self.inner.list(query).await
    }

    async fn list_values(
        &self,
        query: ListQuery<'_>,
        budget: usize,
    ) -> Result<Vec<Listed>, StoreError> {
        let (workspace, namespace) = (query.workspace, query.namespace);
        self.inner
            .list_values(query, budget)
            .await?
            .into_iter()
            .map(|Listed { key, entry }| {
                let entry = self.open(workspace, namespace, &key, entry)?;
                Ok(Listed { key, entry })
            })
            .collect()
    }

    /// A transaction that writes is checked first: every value its `get`s
    /// will read must open, so an undecryptable one is refused before
    /// anything is written, not reported after the commit. (Only a value
    /// made unreadable between the check and the transaction, by tampering
    /// or by an instance with other keys, can still fail after it.)
    async fn transact(&self, txn: &Txn) -> Result<TxnOutcome, StoreError> {
        if txn.writes() {
            for op in txn.ops().iter().filter(|op| matches!(op.kind, OpKind::Get)) {
                let item = ItemRef {
                    workspace: txn.workspace,
                    namespace: &op.namespace,
                    key: &op.key,
                };
                self.check_opens(item).await?;
            }
        }
        let results = match self.inner.transact(txn).await? {
            TxnOutcome::Committed(results) => results,
            unwritten => return Ok(unwritten),
        };
        let ops = txn.ops();
        results
            .into_iter()
            .enumerate()
            .map(|(i, result)| match (result, ops.get(i)) {
                (OpResult::Got(Some(entry)), Some(op)) => self
                    .open(txn.workspace, &op.namespace, &op.key, entry)
                    .map(|e| OpResult::Got(Some(e))),
                (result, _) => Ok(result),
            })
            .collect::<Result<_, _>>()
            .map(TxnOutcome::Committed)
    }

    /// The value to be replaced is checked first, as a transaction's
    /// `get`s are: the write is refused when it would not open.
    async fn replace(&self, item: ItemRef<'_>, write: Replace) -> Result<Replaced, StoreError> {
        self.check_opens(item).await?;
        let open =
            |previous: Option<Entry>| previous.map(|entry| self.open_at(item, entry)).transpose();
        Ok(match self.inner.replace(item, write).await? {
            Replaced::Put(outcome, previous) => Replaced::Put(outcome, open(previous)?),
            Replaced::Delete(outcome, previous) => Replaced::Delete(outcome, open(previous)?),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.inner.migrate().await
    }

    async fn attach(&self) -> Result<(), StoreError> {
        self.inner.attach().await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.inner.migration_status().await
    }

    async fn changes(&self, query: ChangeQuery<'_>) -> Result<ChangePage, StoreError> {
        self.inner.changes(query).await
    }

    async fn prune_changes(&self, retention: Duration, limit: usize) -> Result<u64, StoreError> {
        self.inner.prune_changes(retention, limit).await
    }

    fn watch_others(&self, wake: Wake) -> bool {
        self.inner.watch_others(wake)
    }

    fn announce(&self, workspace: Uuid, namespace: &str) {
        self.inner.announce(workspace, namespace)
    }

    async fn sweep_expired(&self, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.inner.sweep_expired(limit).await
    }

    async fn key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        self.inner.key_ids_in_use().await
    }

    async fn rows_to_reseal(
        &self,
        after: Option<&Item>,
        keep: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.rows_to_reseal(after, keep, limit).await
    }

    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        self.inner.reseal(batch).await
    }

    async fn snapshot(&self, filter: &SnapshotFilter, sink: PageSink) -> Result<(), StoreError> {
        self.inner.snapshot(filter, sink).await
    }

    async fn restore(&self, rows: &[Restored], skip_existing: bool) -> Result<u64, StoreError> {
        self.inner.restore(rows, skip_existing).await
    }

    fn pool_state(&self) -> Option<PoolState> {
        self.inner.pool_state()
    }
}
