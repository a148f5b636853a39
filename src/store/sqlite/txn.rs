//! Transactions (SPEC §13) on the embedded store: on the writer connection,
//! between batches of single writes, in one `BEGIN IMMEDIATE` transaction.
//! The writer is the only connection that writes, so what the transaction
//! reads cannot change before it commits: no lock order is needed.

use std::collections::HashMap;

use rusqlite::Connection;

use super::connection::db_error;
use super::sql::{delete_row, put_row, select_entry};
use crate::store::txn::{OpKind, Txn, TxnOutcome};
use crate::store::{
    DeleteCondition, DeleteOutcome, Entry, Item, PutCondition, PutOutcome, StoreError,
};

/// Runs `txn`: reads its keys, judges its conditions, applies its writes
/// (each logged as a change) and commits, or rolls back having written nothing.
pub(super) fn run_txn(conn: &Connection, txn: &Txn) -> Result<TxnOutcome, StoreError> {
    let failed = |e| db_error("transaction", e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
    let outcome = apply(conn, txn);
    let end = match &outcome {
        Ok(TxnOutcome::Committed(_)) => "COMMIT",
        Ok(TxnOutcome::Failed(_) | TxnOutcome::ReadTooLarge(_)) | Err(_) => "ROLLBACK",
    };
    // A failed statement may have ended the transaction already (SQLITE_FULL
    // and the like roll it back): then there is nothing left to end.
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch(end) {
            let err = failed(e);
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(err);
        }
    } else if outcome.is_ok() && end == "COMMIT" {
        return Err(StoreError::Unavailable(
            "SQLite rolled the transaction back before it could commit".to_owned(),
        ));
    }
    outcome
}

/// The transaction's work inside the open transaction.
fn apply(conn: &Connection, txn: &Txn) -> Result<TxnOutcome, StoreError> {
    let mut stored: HashMap<(String, String), Entry> = HashMap::new();
    let mut read = 0usize;
    for (namespace, key) in txn.keys() {
        let item = Item {
            workspace: txn.workspace,
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        };
        if let Some(entry) = select_entry(conn, &item)? {
            if txn.reads_value((namespace, key)) {
                read = read.saturating_add(entry.value.len());
                if read > txn.read_limit() {
                    return Ok(TxnOutcome::ReadTooLarge(txn.read_limit()));
                }
            }
            stored.insert((item.namespace, item.key), entry);
        }
    }
    let plan = match txn.plan(&stored) {
        Ok(plan) => plan,
        Err(failed) => return Ok(TxnOutcome::Failed(failed)),
    };
    let mut revisions = HashMap::new();
    let ops = txn.ops();
    // The puts, then the deletes, each in key order: as PostgreSQL numbers them.
    let by_key = |list: &[usize]| {
        let mut sorted = list.to_vec();
        sorted.sort_by_key(|&i| (ops[i].namespace.as_bytes(), ops[i].key.as_bytes()));
        sorted
    };
    let writes = by_key(&plan.puts).into_iter().chain(by_key(&plan.deletes));
    for index in writes {
        let op = &ops[index];
        let item = Item {
            workspace: txn.workspace,
            namespace: op.namespace.clone(),
            key: op.key.clone(),
        };
        let written = match &op.kind {
            OpKind::Put(value) => match put_row(conn, &item, value, &PutCondition::Always) {
                Ok(PutOutcome::Stored(revision) | PutOutcome::Created(revision)) => {
                    Ok(Some(revision))
                }
                Ok(PutOutcome::PreconditionFailed) => Err(unwritten(&item)),
                Err(e) => Err(db_error(format_args!("put {item}"), e)),
            },
            // A value that expired since it was read (the clock moves
            // between statements) is gone already: nothing to delete.
            _ => match delete_row(conn, &item, &DeleteCondition::Always) {
                Ok(DeleteOutcome::Deleted(revision)) => Ok(Some(revision)),
                Ok(_) => Ok(None),
                Err(e) => Err(db_error(format_args!("delete {item}"), e)),
            },
        }?;
        if let Some(revision) = written {
            revisions.insert((item.namespace, item.key), revision);
        }
    }
    Ok(TxnOutcome::Committed(txn.results(&stored, &revisions)))
}

/// A write the plan made that the database did not do: the writer is the
/// only writer, so this is a bug, and nothing is committed.
fn unwritten(item: &Item) -> StoreError {
    StoreError::Internal(format!(
        "transaction: {item} changed under the writer while it held the write lock"
    ))
}
