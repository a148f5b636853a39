//! Moving data between stores (SPEC §17): the dump format, and the three
//! commands over it: [`dump`] (a snapshot to JSON Lines), [`restore`] (JSON
//! Lines back into a store, in batches) and [`copy`] (one store into
//! another, then verified namespace by namespace).
//!
//! The format, one JSON object a line: a header
//! `{"format":"hulykvs-dump","version":1,"source":…,"created_at":…}`, then
//! one line a row: `{"workspace","namespace","key","value":"<base64>",
//! "md5":"<hex of the plaintext>","content_type","expire_at"}`. Values are
//! always plaintext in a dump: sealed rows are opened with the keys given.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{Keyring, Row};
use crate::store::stored::open_stored;
use crate::store::stored::StoredRow;
use crate::store::StoreError;

pub mod copy;
pub mod dump;
pub mod restore;

/// The `format` of a dump's header line.
pub const FORMAT: &str = "hulykvs-dump";
/// The version of the format this release writes and reads.
pub const VERSION: u64 = 1;

/// The first line of a dump.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u64,
    /// The engine dumped: `postgres`, `cockroachdb` or `sqlite`.
    #[serde(default)]
    pub source: Option<String>,
    /// Unix seconds when the snapshot was taken.
    #[serde(default)]
    pub created_at: Option<u64>,
}

/// One row of a dump.
#[derive(Debug, Serialize, Deserialize)]
pub struct Line<'a> {
    pub workspace: Uuid,
    #[serde(borrow)]
    pub namespace: Cow<'a, str>,
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    /// The plaintext, base64 (standard alphabet, padded).
    #[serde(borrow)]
    pub value: Cow<'a, str>,
    /// Hex of the MD5 of the plaintext.
    #[serde(borrow)]
    pub md5: Cow<'a, str>,
    #[serde(borrow, default)]
    pub content_type: Option<Cow<'a, str>>,
    /// The first unix second the value is gone; `null`: it does not expire.
    #[serde(default)]
    pub expire_at: Option<i64>,
}

/// Why moving data stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A line of the input is not a row of a dump (exit 2).
    #[error("line {line}: {why}")]
    BadLine { line: u64, why: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Reading or writing a file or a pipe.
    #[error("{0}")]
    Io(String),
}

/// A stored row's plaintext: opened with `keys` when it is sealed.
pub fn plaintext(row: &StoredRow, keys: Option<&Keyring>) -> Result<Bytes, StoreError> {
    let Some(key_id) = &row.sealed_by else {
        return Ok(row.value.clone());
    };
    let at = Row {
        workspace: row.item.workspace,
        namespace: &row.item.namespace,
        key: &row.item.key,
    };
    let opened =
        open_stored(keys, at, key_id, row.value.clone(), &row.md5).map_err(|why| match keys {
            None => format!("{why}: set HULY_ENCRYPTION_KEYS to the keys that open it"),
            Some(_) => why,
        });
    opened.map_err(|why| StoreError::Undecryptable(format!("{}: {why}", row.item)))
}

/// An expiry instant as the first whole unix second the value is gone.
pub fn expiry_second(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => {
            let secs = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
            secs.saturating_add(i64::from(after.subsec_nanos() > 0))
        }
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An order-independent digest of a namespace's rows: the wrapping sum of
/// a 128-bit hash of each key with the MD5 of its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub digest: u128,
}

impl Summary {
    /// Counts a row with `key` and its plaintext's MD5.
    pub fn add(&mut self, key: &str, md5: &[u8; 16]) {
        let mut context = md5::Context::new();
        context.consume(key.as_bytes());
        context.consume([0u8]);
        context.consume(md5);
        self.rows += 1;
        self.digest = self
            .digest
            .wrapping_add(u128::from_be_bytes(context.compute().0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiries_round_up_to_the_second_they_are_gone() {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(expiry_second(at(1_000)), 1);
        assert_eq!(expiry_second(at(1_001)), 2);
        assert_eq!(expiry_second(at(0)), 0);
    }

    #[test]
    fn a_summary_ignores_order_but_not_content() {
        let (a, b) = (md5::compute(b"a").0, md5::compute(b"b").0);
        let mut one = Summary::default();
        one.add("x", &a);
        one.add("y", &b);
        let mut two = Summary::default();
        two.add("y", &b);
        two.add("x", &a);
        assert_eq!(one, two);
        let mut swapped = Summary::default();
        swapped.add("x", &b);
        swapped.add("y", &a);
        assert_ne!(one.digest, swapped.digest);
    }

    #[test]
    fn lines_round_trip_and_borrow() {
        let text = r#"{"workspace":"11111111-2222-3333-4444-555555555555","namespace":"ns","key":"a/b","value":"eA==","md5":"9dd4e461268c8034f5c8564e155c67a6","content_type":null,"expire_at":null}"#;
        let line: Line<'_> = serde_json::from_str(text).unwrap();
        assert!(matches!(line.key, Cow::Borrowed("a/b")));
        assert_eq!(serde_json::to_string(&line).unwrap(), text);
    }
}
