//! The storage layer: one trait, one implementation per engine.
//!
//! HTTP knows nothing of SQL and SQL knows nothing of HTTP. A request reaches
//! a store as an [`ItemRef`] plus typed conditions ([`PutCondition`],
//! [`DeleteCondition`]); the store answers with typed outcomes.

use std::future::Future;

use bytes::Bytes;
use uuid::Uuid;

pub mod postgres;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The MD5 digest of a value: what an entity tag names.
pub type Digest = [u8; 16];

/// Content type stored for a value written without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Where one value lives.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub workspace: Uuid,
    pub namespace: &'a str,
    pub key: &'a str,
}

/// A stored value with what the HTTP layer needs to answer for it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Bytes,
    pub md5: Digest,
    /// `None` for rows written by the previous service, which kept no content type.
    pub content_type: Option<String>,
}

/// A value to write.
#[derive(Debug, Clone)]
pub struct NewValue {
    pub value: Bytes,
    /// MD5 of `value`, computed once by the caller.
    pub md5: Digest,
    pub content_type: String,
}

impl NewValue {
    /// Wraps `value`, computing its digest.
    pub fn new(value: Bytes, content_type: String) -> Self {
        let md5 = md5::compute(&value).0;
        NewValue {
            value,
            md5,
            content_type,
        }
    }
}

/// When a PUT may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Upsert.
    Always,
    /// Insert only if no value is stored (`If-None-Match: *`).
    IfAbsent,
    /// Update only if a value is stored (`If-Match: *`).
    IfExists,
    /// Update only if the stored value's MD5 is one of these (`If-Match: <list>`).
    /// An empty list never matches.
    IfMatch(Vec<Digest>),
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new row was inserted (reported for [`PutCondition::IfAbsent`]).
    Created,
    /// The value is stored (an upsert or a conditional update).
    Stored,
    /// The condition did not hold; nothing was written.
    PreconditionFailed,
}

/// When a DELETE may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteCondition {
    /// Delete whatever is there.
    Always,
    /// `If-Match: *`: like `Always`, but an absent key is a failed precondition.
    IfExists,
    /// Delete only if the stored value's MD5 is one of these.
    IfMatch(Vec<Digest>),
}

/// What a DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// Nothing was stored (only for [`DeleteCondition::Always`]).
    NotFound,
    /// The condition did not hold (or the key was absent under a condition).
    PreconditionFailed,
}

/// One page of a key listing, in byte order.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    pub workspace: Uuid,
    pub namespace: &'a str,
    /// Literal prefix; empty matches every key.
    pub prefix: &'a str,
    /// Return only keys strictly greater than this one.
    pub after: Option<&'a str>,
    /// At most this many keys.
    pub limit: usize,
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached in time: the client should retry later (`503`).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (`500`); the text goes to the log, never to the client.
    #[error("database error: {0}")]
    Internal(String),
}

/// A key-value engine. Every conditional write is one atomic step in the database.
pub trait Store: Send + Sync + 'static {
    /// Short name for logs: `postgres`, `cockroachdb` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// The stored value, or `None`.
    fn get(
        &self,
        item: ItemRef<'_>,
    ) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// Writes `value` if `cond` holds.
    fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Deletes the value if `cond` holds.
    fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> impl Future<Output = Result<DeleteOutcome, StoreError>> + Send;

    /// Up to `query.limit` keys after `query.after` that start with `query.prefix`, in byte order.
    fn list(
        &self,
        query: ListQuery<'_>,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Answers when the database does (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The smallest string greater than every string that starts with `prefix`,
/// or `None` when no such bound exists (the prefix is all `char::MAX`).
///
/// UTF-8 byte order is code point order, so bumping the last code point gives a
/// byte-order bound usable as `key < upper` without `LIKE` and its wildcards.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_bumps_last_code_point() {
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(
            prefix_upper_bound("a\u{10FFFF}").as_deref(),
            Some("b"),
            "a maximal last char carries into the one before"
        );
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn upper_bound_orders_bytewise() {
        for p in ["a", "é", "\u{7F}", "z\u{FFFF}", "ab/"] {
            let upper = prefix_upper_bound(p).unwrap();
            let inside = format!("{p}\u{10FFFF}\u{10FFFF}");
            assert!(inside.as_bytes() < upper.as_bytes(), "{p:?}");
            assert!(p.as_bytes() < upper.as_bytes());
        }
    }
}
