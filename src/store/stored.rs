//! A row as stored, below every room that reads rows whole: its bytes, its
//! digest and the key that sealed it, what a rewrite makes of it, and how a
//! stored value is opened. `sealed` (serving), `reseal` (`reencrypt`),
//! `snapshot` (dump and restore) and `transfer` all look down here.

use std::time::SystemTime;

use bytes::Bytes;

use super::{Digest, Item, KeyId};
use crate::crypto::{Keyring, Row};

/// A row as stored: what a rewrite reads, and the version it must still hold.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub item: Item,
    /// The stored bytes: the plaintext, or sealed by `sealed_by`.
    pub value: Bytes,
    /// The stored digest, as stored (16 bytes unless the row is damaged).
    pub md5: Vec<u8>,
    pub sealed_by: Option<KeyId>,
    /// The stored content type column, as stored.
    pub content_type: Option<String>,
    /// The stored expiry instant, as stored.
    pub expire_at: Option<SystemTime>,
}

/// A row to rewrite, and what it becomes.
#[derive(Debug, Clone)]
pub struct Reseal {
    pub row: StoredRow,
    pub value: Bytes,
    pub md5: Digest,
    pub sealed_by: Option<KeyId>,
}

/// The plaintext of a stored value whose row names `key_id` as its sealer,
/// opened with `keys`. A value that does not open, but whose MD5 is the
/// stored digest, was written over by a writer that knows nothing of
/// encryption (the previous release during a rolling upgrade writes only
/// `md5` and `value`, leaving `key_id`): it is the plaintext. A sealed
/// value's digest is keyed, never the MD5 of its ciphertext, so a
/// ciphertext moved from another row does not pass for plaintext.
pub fn open_stored(
    keys: Option<&Keyring>,
    row: Row<'_>,
    key_id: &str,
    value: Bytes,
    md5: &[u8],
) -> Result<Bytes, String> {
    let opened = match keys {
        Some(keys) => keys
            .open(row, key_id, value.clone())
            .map_err(|e| e.to_string()),
        None => Err(format!(
            "it was sealed by key {key_id:?}, and HULY_ENCRYPTION_KEYS is not set"
        )),
    };
    match opened {
        Err(_) if md5::compute(&value).0[..] == *md5 => Ok(value),
        other => other,
    }
}
