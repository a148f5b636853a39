//! Encryption at rest on the embedded store: the key ids in use, and the
//! rows `hulykvs reencrypt` walks and rewrites (see [`crate::store::reseal`]).
//!
//! A batch of rewrites is one transaction on the writer connection, each
//! row an `UPDATE` conditioned on the version that was read (digest, key
//! id, content type, expiry), so a value written meanwhile is left alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, TransactionBehavior};
use uuid::Uuid;

use super::changes::{log_change, Logged};
use super::connection::db_error;
use crate::store::changes::ChangeOp;
use crate::store::stored::{Reseal, StoredRow};
use crate::store::{Item, KeyId, StoreError};

/// A table scan: the column has no index (see migration 0004).
const KEY_IDS: &str = "SELECT DISTINCT key_id FROM kvs WHERE key_id IS NOT NULL ORDER BY key_id";

/// `?4` the key id to skip (NULL: skip plaintext), `?5` the limit, after
/// the row `?1`/`?2`/`?3` (the workspace text `''` is before every row).
const ROWS: &str = "SELECT workspace, namespace, key, value, md5, key_id, content_type, \
     expire_at FROM kvs WHERE (workspace, namespace, key) > (?1, ?2, ?3) AND key_id IS NOT ?4 \
     ORDER BY workspace, namespace, key LIMIT ?5";

const REWRITE: &str = "UPDATE kvs SET value = ?4, md5 = ?5, key_id = ?6 \
     WHERE workspace = ?1 AND namespace = ?2 AND key = ?3 AND md5 = ?7 AND key_id IS ?8 \
     AND content_type IS ?9 AND expire_at IS ?10 RETURNING expire_at";

pub(super) fn key_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let failed = |e| db_error("reading the key ids in use", e);
    let mut stmt = conn.prepare_cached(KEY_IDS).map_err(failed)?;
    let ids = stmt
        .query_map([], |row| row.get(0))
        .map_err(failed)?
        .collect::<rusqlite::Result<_>>()
        .map_err(failed)?;
    Ok(ids)
}

pub(super) fn rows_to_reseal(
    conn: &Connection,
    after: Option<&Item>,
    keep: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredRow>, StoreError> {
    let failed = |e| db_error("reading rows to reencrypt", e);
    let mut buf = Uuid::encode_buffer();
    let (workspace, namespace, key) = match after {
        Some(at) => (
            &*at.workspace.hyphenated().encode_lower(&mut buf),
            at.namespace.as_str(),
            at.key.as_str(),
        ),
        None => ("", "", ""),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(ROWS).map_err(failed)?;
    let mut rows = stmt
        .query(params![workspace, namespace, key, keep, limit])
        .map_err(failed)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        found.push(stored_row(row).map_err(failed)?);
    }
    Ok(found)
}

/// A row of [`ROWS`] (and of a snapshot): workspace, namespace, key, value,
/// md5, key_id, content type, expiry (unix milliseconds).
pub(super) fn stored_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    let workspace: String = row.get(0)?;
    let workspace = Uuid::parse_str(&workspace).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let value = row.get_ref(3)?.as_blob()?;
    let sealed_by: Option<String> = row.get(5)?;
    let expire_at: Option<i64> = row.get(7)?;
    Ok(StoredRow {
        item: Item {
            workspace,
            namespace: row.get(1)?,
            key: row.get(2)?,
        },
        value: Bytes::copy_from_slice(value),
        md5: row.get(4)?,
        sealed_by: sealed_by.map(KeyId::from),
        content_type: row.get(6)?,
        expire_at: expire_at.map(instant),
    })
}

/// Rewrites the rows of `batch` that still hold what was read, each with
/// its `put` change, in one transaction; answers how many.
pub(super) fn reseal(conn: &Connection, batch: &[Reseal]) -> Result<u64, StoreError> {
    let failed = |e| db_error("rewriting rows under another key", e);
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(failed)?;
    let mut rewritten = 0;
    for reseal in batch {
        let row = &reseal.row;
        let mut buf = Uuid::encode_buffer();
        let workspace: &str = row.item.workspace.hyphenated().encode_lower(&mut buf);
        let (value, md5): (&[u8], &[u8]) = (&reseal.value, &reseal.md5);
        let expire_at = row.expire_at.map(millis);
        let written: Option<Option<i64>> = {
            let mut stmt = tx.prepare_cached(REWRITE).map_err(failed)?;
            let mut rows = stmt
                .query(params![
                    workspace,
                    row.item.namespace,
                    row.item.key,
                    value,
                    md5,
                    reseal.sealed_by.as_deref(),
                    row.md5,
                    row.sealed_by.as_deref(),
                    row.content_type,
                    expire_at,
                ])
                .map_err(failed)?;
            match rows.next().map_err(failed)? {
                Some(written) => Some(written.get(0).map_err(failed)?),
                None => None,
            }
        };
        if let Some(expire_at) = written {
            let change = Logged {
                op: ChangeOp::Put,
                md5: Some(&reseal.md5),
                expire_at,
            };
            log_change(&tx, workspace, &row.item, change).map_err(failed)?;
            rewritten += 1;
        }
    }
    tx.commit().map_err(failed)?;
    Ok(rewritten)
}

/// A stored expiry (unix milliseconds) as an instant.
fn instant(ms: i64) -> SystemTime {
    match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs()),
    }
}

/// An instant read by [`instant`] as unix milliseconds again.
fn millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_expiries_round_trip() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_000] {
            assert_eq!(millis(instant(ms)), ms);
        }
    }
}
