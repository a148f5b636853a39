//! Rewriting stored rows under the first key, or back to plaintext: the
//! pass `hulykvs reencrypt` runs on any store, online, in batches.
//!
//! The pass walks the rows not yet in the wanted form in (workspace,
//! namespace, key) order, opens each, seals it again (or not), and has the
//! store rewrite it only if the row still holds what was read: a value
//! written meanwhile by a running `serve` is never overwritten. The walk
//! selects only rows still to do, so a pass cut short and run again goes on
//! where it stopped.

use super::stored::{open_stored, Reseal, StoredRow};
use super::{Item, Store, StoreError};
use crate::crypto::{Keyring, Row};

/// What a pass has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows read that were not in the wanted form.
    pub seen: u64,
    /// Rows rewritten.
    pub rewritten: u64,
    /// Rows written meanwhile (by a running service), left as written.
    pub changed: u64,
    /// Rows that do not open with the keys given (each logged).
    pub undecryptable: u64,
}

/// Which form a pass brings rows to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Sealed by the keyring's first key.
    FirstKey,
    /// Plaintext (`--decrypt`).
    Plaintext,
}

/// Runs a pass over `store` with `keys`, `batch` rows at a time, calling
/// `report` after each batch.
pub async fn run<S: Store>(
    store: &S,
    keys: Option<&Keyring>,
    target: Target,
    batch: usize,
    mut report: impl FnMut(&Progress),
) -> Result<Progress, StoreError> {
    let keep = match (target, keys) {
        (Target::Plaintext, _) => None,
        (Target::FirstKey, Some(keys)) => keys.sealing_id().map(|id| id.to_string()),
        (Target::FirstKey, None) => None,
    };
    let mut progress = Progress::default();
    let mut after: Option<Item> = None;
    loop {
        let rows = store
            .rows_to_reseal(after.as_ref(), keep.as_deref(), batch.max(1))
            .await?;
        let Some(last) = rows.last() else {
            return Ok(progress);
        };
        after = Some(last.item.clone());
        progress.seen += rows.len() as u64;
        let mut rewrites = Vec::with_capacity(rows.len());
        for row in rows {
            match rewrite(row, keys, keep.is_some()) {
                Some(rewrite) => rewrites.push(rewrite),
                None => progress.undecryptable += 1,
            }
        }
        let rewritten = store.reseal(&rewrites).await?;
        progress.rewritten += rewritten;
        progress.changed += (rewrites.len() as u64).saturating_sub(rewritten);
        report(&progress);
    }
}

/// What `row` becomes: sealed by the first key when `seal`, else plaintext;
/// `None` (logged) when it does not open.
fn rewrite(row: StoredRow, keys: Option<&Keyring>, seal: bool) -> Option<Reseal> {
    let at = Row {
        workspace: row.item.workspace,
        namespace: &row.item.namespace,
        key: &row.item.key,
    };
    let plaintext = match &row.sealed_by {
        None => row.value.clone(),
        Some(id) => match open_stored(keys, at, id, row.value.clone(), &row.md5) {
            Ok(plaintext) => plaintext,
            Err(why) => {
                tracing::error!(item = %row.item, key_id = &**id, "left as it is: {why}");
                return None;
            }
        },
    };
    let sealed = if seal {
        keys.and_then(|keys| keys.seal(at, &plaintext))
    } else {
        None
    };
    Some(match sealed {
        Some(sealed) => Reseal {
            value: sealed.bytes,
            md5: sealed.digest,
            sealed_by: Some(sealed.key_id),
            row,
        },
        None => Reseal {
            md5: md5::compute(&plaintext).0,
            value: plaintext,
            sealed_by: None,
            row,
        },
    })
}
