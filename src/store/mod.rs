//! The storage layer: one trait, one implementation per engine, and what the
//! engines share (conditions and their outcomes, the migration bookkeeping).
//!
//! HTTP knows nothing of SQL and SQL knows nothing of HTTP. A request reaches
//! a store as an [`ItemRef`] plus typed conditions ([`PutCondition`],
//! [`DeleteCondition`]); the store answers with typed outcomes.

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use uuid::Uuid;

pub mod changes;
pub mod expiry;
pub mod instrumented;
pub mod migrations;
pub(crate) mod page;
pub mod postgres;
pub mod reseal;
pub mod sealed;
pub mod snapshot;
pub mod sqlite;
pub mod stored;
pub mod txn;

use crate::telemetry::registry::PoolState;
use changes::{ChangePage, ChangeQuery, Revision};
use expiry::{Expires, Expiry};
use migrations::MigrationState;
pub use page::KeyPage;
pub use postgres::PgStore;
use snapshot::{PageSink, Restored, SnapshotFilter};
pub use sqlite::SqliteStore;
use stored::{Reseal, StoredRow};
use txn::{Replace, Replaced, Txn, TxnOutcome};

/// The digest of a value, what an entity tag names: its MD5, or for a
/// sealed value its keyed digest (see [`crate::crypto`]).
pub type Digest = [u8; 16];

/// The id of the encryption key that sealed a stored value.
pub type KeyId = std::sync::Arc<str>;

/// Content type stored for a value written without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Where one value lives.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub workspace: Uuid,
    pub namespace: &'a str,
    pub key: &'a str,
}

impl ItemRef<'_> {
    /// An owned copy, for work that outlives the request (a queue, another thread).
    pub fn owned(self) -> Item {
        Item {
            workspace: self.workspace,
            namespace: self.namespace.to_owned(),
            key: self.key.to_owned(),
        }
    }
}

/// Where one value lives, owned: an [`ItemRef`] that can wait in a queue or
/// cross to another thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Item {
    pub workspace: Uuid,
    pub namespace: String,
    pub key: String,
}

impl Item {
    /// The borrowed form the [`Store`] methods take.
    pub fn borrowed(&self) -> ItemRef<'_> {
        ItemRef {
            workspace: self.workspace,
            namespace: &self.namespace,
            key: &self.key,
        }
    }
}

/// `workspace/namespace/key`, for error messages (keys may be logged; values never).
impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.workspace, self.namespace, self.key)
    }
}

/// A stored value with what the HTTP layer needs to answer for it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Bytes,
    pub md5: Digest,
    /// `None` for rows written by the previous service, which kept no content type.
    pub content_type: Option<String>,
    /// When the value expires; `None` when it does not.
    pub expires: Option<Expires>,
    /// The key that sealed `value`; `None`: `value` is the plaintext.
    pub sealed_by: Option<KeyId>,
}

/// A value to write.
#[derive(Debug, Clone)]
pub struct NewValue {
    pub value: Bytes,
    /// MD5 of `value`, computed once by the caller.
    pub md5: Digest,
    pub content_type: String,
    /// When the value expires (by default never).
    pub expiry: Expiry,
    /// The key that sealed `value` (and keyed `md5`); `None`: plaintext.
    pub sealed_by: Option<KeyId>,
}

impl NewValue {
    /// Wraps `value`, computing its digest; it does not expire.
    pub fn new(value: Bytes, content_type: String) -> Self {
        let md5 = md5::compute(&value).0;
        NewValue {
            value,
            md5,
            content_type,
            expiry: Expiry::Never,
            sealed_by: None,
        }
    }

    /// The same value, expiring as `expiry` says.
    pub fn expiring(self, expiry: Expiry) -> Self {
        NewValue { expiry, ..self }
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

impl PutCondition {
    /// Whether the condition can never hold (`If-Match` with no strong tag):
    /// the engines then answer without a statement.
    pub fn never_holds(&self) -> bool {
        matches!(self, PutCondition::IfMatch(tags) if tags.is_empty())
    }

    /// The outcome of the condition's one statement, from the revision of
    /// the change it made (`None`: it changed nothing).
    pub fn outcome(&self, changed: Option<Revision>) -> PutOutcome {
        match (self, changed) {
            (_, None) => PutOutcome::PreconditionFailed,
            (PutCondition::IfAbsent, Some(revision)) => PutOutcome::Created(revision),
            (_, Some(revision)) => PutOutcome::Stored(revision),
        }
    }
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new row was inserted (reported for [`PutCondition::IfAbsent`]), as
    /// the change of this revision.
    Created(Revision),
    /// The value is stored (an upsert or a conditional update), as the
    /// change of this revision.
    Stored(Revision),
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

impl DeleteCondition {
    /// Whether the condition can never hold (`If-Match` with no strong tag).
    pub fn never_holds(&self) -> bool {
        matches!(self, DeleteCondition::IfMatch(tags) if tags.is_empty())
    }

    /// The outcome of the condition's one statement, from the revision of
    /// the change it made (`None`: it deleted nothing).
    pub fn outcome(&self, changed: Option<Revision>) -> DeleteOutcome {
        match (self, changed) {
            (_, Some(revision)) => DeleteOutcome::Deleted(revision),
            (DeleteCondition::Always, None) => DeleteOutcome::NotFound,
            (DeleteCondition::IfExists | DeleteCondition::IfMatch(_), None) => {
                DeleteOutcome::PreconditionFailed
            }
        }
    }
}

/// What a DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted, as the change of this revision.
    Deleted(Revision),
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

impl ListQuery<'_> {
    /// The one inclusive lower bound of the page's keys: the prefix, or the
    /// smallest key after `after` when that is higher. No key holds a NUL
    /// byte, so `after` + U+0001 is the smallest key greater than `after`.
    pub fn lower_bound(&self) -> std::borrow::Cow<'_, str> {
        match self.after {
            Some(after) if after >= self.prefix => format!("{after}\u{1}").into(),
            _ => self.prefix.into(),
        }
    }
}

/// A live value of a listing with values, and its key.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub entry: Entry,
}

/// What one batch of a delete by prefix did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixDeleted {
    /// Keys deleted.
    pub count: u64,
    /// The revision of the last change made; `None` when nothing was deleted.
    pub revision: Option<Revision>,
}

/// Why a store could not answer. `Clone`: one failed batch answers each of
/// its requests with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached in time: the client should retry later (`503`).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (`500`); the text goes to the log, never to the client.
    #[error("database error: {0}")]
    Internal(String),
    /// A stored value that does not open (`500 undecryptable`): the text
    /// names the row and the key id, never bytes.
    #[error("cannot decrypt {0}")]
    Undecryptable(String),
}

impl StoreError {
    /// The same kind of error, its text prefixed with `what`.
    pub fn context(self, what: impl fmt::Display) -> StoreError {
        match self {
            StoreError::Unavailable(text) => StoreError::Unavailable(format!("{what}: {text}")),
            StoreError::Internal(text) => StoreError::Internal(format!("{what}: {text}")),
            StoreError::Undecryptable(text) => StoreError::Undecryptable(format!("{what}: {text}")),
        }
    }
}

/// A key-value engine. Every conditional write is one atomic step in the database.
pub trait Store: Send + Sync + 'static {
    /// Short name for logs: `postgres`, `cockroachdb` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// The value a write of `value` at `item` stores: its digest computed
    /// once, sealed where the store seals values ([`sealed::Sealed`]).
    fn new_value(&self, item: ItemRef<'_>, value: Bytes, content_type: String) -> NewValue {
        let _ = item;
        NewValue::new(value, content_type)
    }

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

    /// Deletes up to `limit` live keys of `query`'s namespace that start
    /// with `query.prefix`, in byte order, each with its `delete` change, in
    /// one short transaction (`query.after` and `query.limit` are ignored).
    fn delete_prefix(
        &self,
        query: ListQuery<'_>,
        limit: usize,
    ) -> impl Future<Output = Result<PrefixDeleted, StoreError>> + Send;

    /// Up to `query.limit` keys after `query.after` that start with `query.prefix`, in byte order.
    fn list(
        &self,
        query: ListQuery<'_>,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// A listing's page: the namespace's revision, read no later than the
    /// first key (a listing's `Huly-Revision`), and up to `query.limit` keys
    /// of `query` as JSON, ready for the response. One statement where the
    /// engine can.
    fn list_page(
        &self,
        query: ListQuery<'_>,
    ) -> impl Future<Output = Result<KeyPage, StoreError>> + Send {
        async move {
            let revision = self.revision(query.workspace, query.namespace).await?;
            let page = query.limit;
            let keys = self
                .list(ListQuery {
                    limit: page.saturating_add(1),
                    ..query
                })
                .await?;
            Ok(KeyPage::from_keys(revision, &keys, page))
        }
    }

    /// Up to `query.limit` live values after `query.after` whose keys start
    /// with `query.prefix`, in byte order of their keys, ending early after
    /// the first value that brings their total size to `budget` bytes (so
    /// at least one when any matches): a listing with values in bounded
    /// memory whatever their sizes.
    fn list_values(
        &self,
        query: ListQuery<'_>,
        budget: usize,
    ) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send;

    /// Runs a transaction (SPEC §13): its keys locked in [`Txn::keys`]
    /// order, every condition judged and every write applied in one database
    /// transaction, or nothing written. Each write is a change of its
    /// namespace with its own revision.
    fn transact(&self, txn: &Txn) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send;

    /// Runs `write` at `item` and answers what it did with the live value it
    /// replaced, read atomically with the write (`Huly-Return: previous`).
    fn replace(
        &self,
        item: ItemRef<'_>,
        write: Replace,
    ) -> impl Future<Output = Result<Replaced, StoreError>> + Send {
        txn::replace_by_transaction(self, item, write)
    }

    /// Answers when the database does and migrations are applied (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies pending migrations under a lock every instance honours and
    /// returns the names applied; until it succeeds, data operations answer
    /// [`StoreError::Unavailable`]. Safe to call again and from several
    /// processes at once: each migration runs exactly once.
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Opens the data operations on a database this release has fully
    /// migrated, writing nothing (the source of `dump` and `copy` may be a
    /// standby, or serve an older release); an error names what is pending.
    fn attach(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applied and pending migrations in order (for `hulykvs migrate
    /// --status`); applies and creates nothing.
    fn migration_status(
        &self,
    ) -> impl Future<Output = Result<Vec<MigrationState>, StoreError>> + Send;

    /// Changes of one namespace after a revision, with the namespace's
    /// current and oldest kept revision, all read in one snapshot.
    fn changes(
        &self,
        query: ChangeQuery<'_>,
    ) -> impl Future<Output = Result<ChangePage, StoreError>> + Send;

    /// Deletes up to `limit` changes older than `retention` from the change
    /// log, each namespace's oldest first (so what stays of its log is a
    /// contiguous run of revisions); returns how many.
    fn prune_changes(
        &self,
        retention: std::time::Duration,
        limit: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Starts telling `wake` about changes committed through other
    /// processes sharing the database (a namespace, or `None` for "maybe
    /// any": after a lost connection). `false` when the engine cannot:
    /// watchers then poll.
    fn watch_others(&self, wake: Wake) -> bool {
        let _ = wake;
        false
    }

    /// Tells the other processes watching (see [`Store::watch_others`]) that
    /// a namespace changed; best effort, never waits for the database.
    fn announce(&self, workspace: Uuid, namespace: &str) {
        let _ = (workspace, namespace);
    }

    /// The namespace's current revision (0 before its first change).
    fn revision(
        &self,
        workspace: Uuid,
        namespace: &str,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send {
        let now = ChangeQuery {
            workspace,
            namespace,
            after: 0,
            prefix: "",
            limit: 0,
        };
        async move { self.changes(now).await.map(|page| page.current) }
    }

    /// Deletes up to `limit` expired rows in one short transaction, each
    /// with its `expire` change, and returns where they were (for the change
    /// feed). Several instances may sweep one database at once: no row is
    /// removed twice.
    fn sweep_expired(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Item>, StoreError>> + Send;

    /// The ids of the keys that sealed stored rows, in order, each once.
    fn key_ids_in_use(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Up to `limit` rows, expired or not, after `after` in (workspace,
    /// namespace, key) order, whose value is not sealed by `keep` (`None`:
    /// every sealed row), as stored: what `hulykvs reencrypt` rewrites.
    fn rows_to_reseal(
        &self,
        after: Option<&Item>,
        keep: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredRow>, StoreError>> + Send;

    /// Rewrites each row of `batch` that still holds what was read of it,
    /// each with a `put` change (its entity tag changes); answers how many
    /// were rewritten. A row written meanwhile is left as it is.
    fn reseal(&self, batch: &[Reseal]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Sends every live row `filter` admits, read in ONE consistent
    /// snapshot, to `sink` in pages (see [`snapshot`]) in (workspace,
    /// namespace, key) order, as stored (sealed values stay sealed). Stops
    /// early, without error, when the sink is closed.
    fn snapshot(
        &self,
        filter: &SnapshotFilter,
        sink: PageSink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `rows` (distinct keys, in [`snapshot::in_lock_order`]), each
    /// a `put` change: upserts, or with `skip_existing` only where no live
    /// value is stored. One transaction; answers how many rows were written.
    fn restore(
        &self,
        rows: &[Restored],
        skip_existing: bool,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The connection pool at this moment, for metrics; `None` where the
    /// engine has none.
    fn pool_state(&self) -> Option<PoolState> {
        None
    }
}

/// Called with a namespace changed elsewhere, or `None` when any may have.
pub type Wake = std::sync::Arc<dyn Fn(Option<(Uuid, &str)>) + Send + Sync>;

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
    fn put_outcomes_follow_the_change_made() {
        let tag = vec![[0u8; 16]];
        assert_eq!(PutCondition::Always.outcome(Some(3)), PutOutcome::Stored(3));
        assert_eq!(
            PutCondition::IfAbsent.outcome(Some(1)),
            PutOutcome::Created(1)
        );
        for cond in [
            PutCondition::Always,
            PutCondition::IfAbsent,
            PutCondition::IfExists,
            PutCondition::IfMatch(tag.clone()),
        ] {
            assert_eq!(cond.outcome(None), PutOutcome::PreconditionFailed);
        }
        assert_eq!(
            PutCondition::IfExists.outcome(Some(7)),
            PutOutcome::Stored(7)
        );
        assert_eq!(
            PutCondition::IfMatch(tag.clone()).outcome(Some(2)),
            PutOutcome::Stored(2)
        );
        assert!(PutCondition::IfMatch(Vec::new()).never_holds());
        assert!(!PutCondition::IfMatch(tag).never_holds());
        assert!(!PutCondition::IfExists.never_holds());
    }

    #[test]
    fn delete_outcomes_follow_the_change_made() {
        let tag = vec![[0u8; 16]];
        assert_eq!(
            DeleteCondition::Always.outcome(Some(4)),
            DeleteOutcome::Deleted(4)
        );
        assert_eq!(
            DeleteCondition::Always.outcome(None),
            DeleteOutcome::NotFound
        );
        assert_eq!(
            DeleteCondition::IfExists.outcome(None),
            DeleteOutcome::PreconditionFailed
        );
        assert_eq!(
            DeleteCondition::IfMatch(tag.clone()).outcome(None),
            DeleteOutcome::PreconditionFailed
        );
        assert_eq!(
            DeleteCondition::IfMatch(tag).outcome(Some(9)),
            DeleteOutcome::Deleted(9)
        );
        assert!(DeleteCondition::IfMatch(Vec::new()).never_holds());
    }

    #[test]
    fn a_page_starts_after_its_cursor_or_at_its_prefix() {
        let query = |prefix, after| ListQuery {
            workspace: Uuid::nil(),
            namespace: "ns",
            prefix,
            after,
            limit: 1,
        };
        assert_eq!(query("a/", None).lower_bound(), "a/");
        assert_eq!(query("a/", Some("a/b")).lower_bound(), "a/b\u{1}");
        assert_eq!(query("b", Some("a")).lower_bound(), "b");
        assert!("a/b\u{1}" <= "a/b\u{1}c" && "a/b" < "a/b\u{1}");
    }

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
