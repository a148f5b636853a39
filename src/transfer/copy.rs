//! `hulykvs copy`: one store's snapshot written into another page by page,
//! then verified: each namespace copied is read back from the target and
//! compared by row count and an order-independent digest of its keys and
//! their values' MD5s.

use uuid::Uuid;

use super::dump::{each_row, Dumped, Summaries};
use super::{expiry_second, now_secs, plaintext, Summary, TransferError};
use crate::crypto::Keyring;
use crate::store::expiry::Expiry;
use crate::store::snapshot::{in_lock_order, Restored, SnapshotFilter};
use crate::store::{Store, DEFAULT_CONTENT_TYPE};

/// Pages in flight between the source's snapshot and the target's writes.
const PAGES_IN_FLIGHT: usize = 2;

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    /// Rows read from the source.
    pub read: Dumped,
    /// Rows written to the target.
    pub written: u64,
    /// Rows left out because they expired while being copied.
    pub expired: u64,
    /// Each namespace of the source, its summary there and in the target.
    pub checks: Vec<Check>,
    /// Namespaces the filter admits that only the target holds (not compared).
    pub only_in_target: Vec<(Uuid, String)>,
}

/// One namespace, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub workspace: Uuid,
    pub namespace: String,
    pub source: Summary,
    pub target: Summary,
}

impl Check {
    pub fn holds(&self) -> bool {
        self.source == self.target
    }
}

/// Copies what `filter` admits from `from` (opened with `keys`) into `to`
/// (values made by `to.new_value`), then verifies it.
pub async fn copy<A: Store, B: Store>(
    from: &A,
    to: &B,
    filter: &SnapshotFilter,
    keys: Option<&Keyring>,
    skip_existing: bool,
    mut progress: impl FnMut(Dumped),
) -> Result<Copied, TransferError> {
    let (sink, pages) = tokio::sync::mpsc::channel(PAGES_IN_FLIGHT);
    let read = from.snapshot(filter, sink);
    let mut copied = Copied::default();
    let mut source = Summaries::new();
    let write = async {
        // Owned here: a failed write drops it, which ends the snapshot.
        let mut pages = pages;
        let now = now_secs();
        while let Some(page) = pages.recv().await {
            let mut rows = Vec::with_capacity(page.len());
            for row in page {
                let value = plaintext(&row, keys)?;
                copied.read.rows += 1;
                copied.read.bytes += value.len() as u64;
                let expiry = match row.expire_at.map(expiry_second) {
                    Some(at) if at <= now => {
                        copied.expired += 1;
                        continue;
                    }
                    Some(at) => Expiry::At(at),
                    None => Expiry::Never,
                };
                let summary = source
                    .entry((row.item.workspace, row.item.namespace.clone()))
                    .or_default();
                summary.add(&row.item.key, &md5::compute(&value).0);
                let content_type = row
                    .content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
                rows.push(Restored {
                    value: to
                        .new_value(row.item.borrowed(), value, content_type)
                        .expiring(expiry),
                    item: row.item,
                });
            }
            copied.written += to.restore(&in_lock_order(rows), skip_existing).await?;
            progress(copied.read);
        }
        Ok::<_, TransferError>(())
    };
    let (read, written) = tokio::join!(read, write);
    written?;
    read?;
    let mut target = Summaries::new();
    each_row(
        to,
        filter,
        keys,
        |row, _, md5| {
            let key = (row.item.workspace, row.item.namespace.clone());
            target.entry(key).or_default().add(&row.item.key, md5);
            Ok(())
        },
        |_| {},
    )
    .await?;
    for ((workspace, namespace), source) in source {
        let target = target
            .remove(&(workspace, namespace.clone()))
            .unwrap_or_default();
        copied.checks.push(Check {
            workspace,
            namespace,
            source,
            target,
        });
    }
    copied.only_in_target = target.into_keys().collect();
    Ok(copied)
}
