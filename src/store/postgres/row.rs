//! Rows read back: an [`Entry`] (one copy of the value, a digest that is
//! always 16 bytes), the revision a write made, a page of the change log.

use bytes::Bytes;
use tokio_postgres::Row;

use super::errors::db_error;
use crate::store::changes::{Change, ChangeOp, ChangePage, Revision};
use crate::store::expiry::Expires;
use crate::store::{Digest, Entry, ItemRef, KeyId, StoreError};

/// The entry in `row` (columns value, md5, content_type, expiry second,
/// seconds left, key id) stored at `item`.
pub(super) fn entry_from_row(row: &Row, item: &ItemRef<'_>) -> Result<Entry, StoreError> {
    entry_from_row_at(row, 0, item)
}

/// [`entry_from_row`] with the entry's columns from `first` on.
pub(super) fn entry_from_row_at(
    row: &Row,
    first: usize,
    item: &ItemRef<'_>,
) -> Result<Entry, StoreError> {
    let failed = |e: tokio_postgres::Error| {
        StoreError::Internal(format!(
            "reading {}/{}/{}: {}",
            item.workspace,
            item.namespace,
            item.key,
            db_error(&e)
        ))
    };
    let value: &[u8] = row.try_get(first).map_err(failed)?;
    let md5: &[u8] = row.try_get(first + 1).map_err(failed)?;
    let content_type: Option<String> = row.try_get(first + 2).map_err(failed)?;
    let expires = Expires::from_columns(
        row.try_get(first + 3).map_err(failed)?,
        row.try_get(first + 4).map_err(failed)?,
    );
    let sealed_by: Option<&str> = row.try_get(first + 5).map_err(failed)?;
    let value = Bytes::copy_from_slice(value);
    let md5: Digest = match md5.try_into() {
        Ok(md5) => md5,
        Err(_) => {
            tracing::warn!(
                workspace = %item.workspace,
                namespace = item.namespace,
                key = item.key,
                "stored md5 is not 16 bytes; using the digest of the value"
            );
            md5::compute(&value).0
        }
    };
    Ok(Entry {
        value,
        md5,
        content_type,
        expires,
        sealed_by: sealed_by.map(KeyId::from),
    })
}

/// The revision of the one change a single-row write made (column 3 of
/// what [`super::sql`]'s logged statements answer), or `None` when its
/// condition did not hold.
pub(super) fn revision_written(rows: &[Row]) -> Result<Option<Revision>, StoreError> {
    rows.first().map(|row| revision_at(row, 3)).transpose()
}

/// A revision column: never negative in a log this service writes.
pub(super) fn revision_at(row: &Row, column: usize) -> Result<Revision, StoreError> {
    let revision: i64 = row.try_get(column).map_err(|e| db_error(&e))?;
    Revision::try_from(revision)
        .map_err(|_| StoreError::Internal(format!("a stored revision is negative: {revision}")))
}

/// The page the `changes` statement answers: `current, oldest` on every row,
/// then one change a row (all NULL on the one row of a page without any).
pub(super) fn change_page(rows: &[Row]) -> Result<ChangePage, StoreError> {
    let failed = |e: tokio_postgres::Error| db_error(&e);
    let mut page = ChangePage::default();
    let Some(first) = rows.first() else {
        return Ok(page);
    };
    page.current = revision_at(first, 0)?;
    page.oldest = first
        .try_get::<_, Option<i64>>(1)
        .map_err(failed)?
        .map(|oldest| Revision::try_from(oldest).unwrap_or(0));
    for row in rows {
        let Some(revision) = row.try_get::<_, Option<i64>>(2).map_err(failed)? else {
            continue;
        };
        let op: &str = row.try_get(3).map_err(failed)?;
        let md5: Option<&[u8]> = row.try_get(5).map_err(failed)?;
        page.changes.push(Change {
            revision: Revision::try_from(revision).unwrap_or(0),
            op: ChangeOp::parse(op)
                .ok_or_else(|| StoreError::Internal(format!("unknown change op {op:?}")))?,
            key: row.try_get(4).map_err(failed)?,
            md5: md5.and_then(|m| Digest::try_from(m).ok()),
            expire_at: row.try_get(6).map_err(failed)?,
        });
    }
    Ok(page)
}
