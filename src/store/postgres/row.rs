//! A stored row read back into an [`Entry`]: one copy of the value, and a
//! digest that is always 16 bytes.

use bytes::Bytes;
use tokio_postgres::Row;

use super::errors::db_error;
use crate::store::expiry::Expires;
use crate::store::{Digest, Entry, ItemRef, StoreError};

/// The entry in `row` (columns value, md5, content_type, expiry second,
/// seconds left) stored at `item`.
pub(super) fn entry_from_row(row: &Row, item: &ItemRef<'_>) -> Result<Entry, StoreError> {
    let failed = |e: tokio_postgres::Error| {
        StoreError::Internal(format!(
            "reading {}/{}/{}: {}",
            item.workspace,
            item.namespace,
            item.key,
            db_error(&e)
        ))
    };
    let value: &[u8] = row.try_get(0).map_err(failed)?;
    let md5: &[u8] = row.try_get(1).map_err(failed)?;
    let content_type: Option<String> = row.try_get(2).map_err(failed)?;
    let expires = Expires::from_columns(
        row.try_get(3).map_err(failed)?,
        row.try_get(4).map_err(failed)?,
    );
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
    })
}
