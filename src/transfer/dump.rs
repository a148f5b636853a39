//! `hulykvs dump`: a store's snapshot as JSON Lines, page by page, so
//! memory stays a few pages whatever the store holds.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine as _;
use uuid::Uuid;

use super::{
    expiry_second, now_secs, plaintext, Header, Line, Summary, TransferError, FORMAT, VERSION,
};
use crate::crypto::Keyring;
use crate::store::snapshot::SnapshotFilter;
use crate::store::stored::StoredRow;
use crate::store::Store;

/// Pages in flight between the snapshot and its consumer.
const PAGES_IN_FLIGHT: usize = 2;

/// What a dump wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dumped {
    pub rows: u64,
    /// Bytes of plaintext values.
    pub bytes: u64,
}

/// Per (workspace, namespace): what [`copy`](super::copy) verifies.
pub type Summaries = BTreeMap<(Uuid, String), Summary>;

/// Reads `store`'s snapshot, hands each row (opened with `keys`) with its
/// plaintext's MD5 to `each`, and calls `progress` after each page.
pub async fn each_row<S: Store>(
    store: &S,
    filter: &SnapshotFilter,
    keys: Option<&Keyring>,
    mut each: impl FnMut(&StoredRow, &[u8], &[u8; 16]) -> Result<(), TransferError>,
    mut progress: impl FnMut(Dumped),
) -> Result<Dumped, TransferError> {
    let (sink, pages) = tokio::sync::mpsc::channel(PAGES_IN_FLIGHT);
    let read = store.snapshot(filter, sink);
    let consume = async {
        // Owned here, so a consumer that fails drops it, and the snapshot,
        // finding its sink closed, ends instead of waiting for ever.
        let mut pages = pages;
        let mut done = Dumped::default();
        while let Some(page) = pages.recv().await {
            for row in &page {
                let value = plaintext(row, keys)?;
                let md5 = md5::compute(&value).0;
                each(row, &value, &md5)?;
                done.rows += 1;
                done.bytes += value.len() as u64;
            }
            progress(done);
        }
        Ok::<_, TransferError>(done)
    };
    let (read, consumed) = tokio::join!(read, consume);
    let done = consumed?;
    read?;
    Ok(done)
}

/// Writes the dump of `store` to `out`: the header, then a line a row.
pub async fn dump<S: Store>(
    store: &S,
    filter: &SnapshotFilter,
    keys: Option<&Keyring>,
    out: &mut dyn Write,
    progress: impl FnMut(Dumped),
) -> Result<Dumped, TransferError> {
    let io = |e: std::io::Error| TransferError::Io(format!("cannot write the dump: {e}"));
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        source: Some(store.backend().to_owned()),
        created_at: u64::try_from(now_secs()).ok(),
    };
    serde_json::to_writer(&mut *out, &header).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)?;
    let mut encoded = String::new();
    let write = |row: &StoredRow, value: &[u8], md5: &[u8; 16]| {
        encoded.clear();
        base64::engine::general_purpose::STANDARD.encode_string(value, &mut encoded);
        let hex = format!("{:x}", md5::Digest(*md5));
        let line = Line {
            workspace: row.item.workspace,
            namespace: Cow::Borrowed(&row.item.namespace),
            key: Cow::Borrowed(&row.item.key),
            value: Cow::Borrowed(&encoded),
            md5: Cow::Owned(hex),
            content_type: row.content_type.as_deref().map(Cow::Borrowed),
            expire_at: row.expire_at.map(expiry_second),
        };
        serde_json::to_writer(&mut *out, &line).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)
    };
    let done = each_row(store, filter, keys, write, progress).await?;
    out.flush().map_err(io)?;
    Ok(done)
}
