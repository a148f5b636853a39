//! History: changes older than `HULY_CHANGES_RETENTION` are pruned in the
//! background, in bounded batches, oldest first. A `since` older than what is
//! left answers `410 revision_compacted`.

use std::time::Duration;

use crate::store::Store;

/// Changes one prune statement deletes at most: a short transaction.
pub const PRUNE_BATCH: usize = 1000;

/// Prunes every `retention / 10` (at least every second, at most every
/// minute) until the process ends: batch after batch while they come back
/// full, so a backlog drains without one long transaction.
pub async fn prune_forever<S: Store>(store: &S, retention: Duration) {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        loop {
            match store.prune_changes(retention, PRUNE_BATCH).await {
                Ok(pruned) if pruned as usize >= PRUNE_BATCH => {
                    tracing::debug!(pruned, "pruned old changes; more to go");
                }
                Ok(pruned) => {
                    if pruned > 0 {
                        tracing::debug!(pruned, "pruned old changes");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning the change log failed; trying again later");
                    break;
                }
            }
        }
    }
}
