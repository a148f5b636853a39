//! What the stores keep for the change feed (SPEC §12): each committed
//! change of a namespace gets the next revision of that namespace, in the
//! transaction that makes it, and a row in the change log (the key, the new
//! digest and expiry; never the value).
//!
//! Revisions of one namespace have no gaps: every engine bumps the
//! namespace's counter row and appends the change in one transaction, and
//! commits of one namespace are ordered by that row (its lock on PostgreSQL,
//! serializable isolation on CockroachDB, the one writer on SQLite). So a
//! reader that sees revision R sees every change up to R, and the log of a
//! namespace is always a contiguous run of revisions ending at its current
//! one; pruning removes it from the oldest end only.

use uuid::Uuid;

use super::Digest;

/// A namespace's revision: 0 before its first change.
pub type Revision = u64;

/// What a change did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Put,
    Delete,
    /// Removed at its expiry by the sweeper.
    Expire,
}

impl ChangeOp {
    /// The name in the log table, the event stream and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Put => "put",
            ChangeOp::Delete => "delete",
            ChangeOp::Expire => "expire",
        }
    }

    /// From the log table's `op` column.
    pub fn parse(text: &str) -> Option<ChangeOp> {
        match text {
            "put" => Some(ChangeOp::Put),
            "delete" => Some(ChangeOp::Delete),
            "expire" => Some(ChangeOp::Expire),
            _ => None,
        }
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: Revision,
    pub op: ChangeOp,
    pub key: String,
    /// The new value's digest (puts only).
    pub md5: Option<Digest>,
    /// The new value's expiry in unix seconds (puts only, when it expires).
    pub expire_at: Option<i64>,
}

/// Which changes to read.
#[derive(Debug, Clone, Copy)]
pub struct ChangeQuery<'a> {
    pub workspace: Uuid,
    pub namespace: &'a str,
    /// Changes with a revision above this one.
    pub after: Revision,
    /// Only changes of keys starting with this (literal; empty: all).
    pub prefix: &'a str,
    /// At most this many changes (0: only the revisions).
    pub limit: usize,
}

/// Changes read in one snapshot, with where the namespace stood in it.
#[derive(Debug, Clone, Default)]
pub struct ChangePage {
    /// The namespace's revision in the snapshot.
    pub current: Revision,
    /// The oldest change still in the log; `None` when the log of the
    /// namespace is empty.
    pub oldest: Option<Revision>,
    /// The changes asked for, in revision order.
    pub changes: Vec<Change>,
}

/// Why the feed cannot continue from a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Above the current revision (`400 revision_ahead`).
    Ahead { current: Revision },
    /// Changes after it were pruned (`410 revision_compacted`); `oldest` is
    /// the oldest revision still kept (current + 1 when none is).
    Compacted { oldest: Revision },
}

impl ChangePage {
    /// Whether every change after `after` is in this snapshot's log.
    pub fn readable_from(&self, after: Revision) -> Result<(), Unreadable> {
        if after > self.current {
            return Err(Unreadable::Ahead {
                current: self.current,
            });
        }
        if after == self.current {
            return Ok(());
        }
        match self.oldest {
            Some(oldest) if oldest <= after + 1 => Ok(()),
            oldest => Err(Unreadable::Compacted {
                oldest: oldest.unwrap_or(self.current + 1),
            }),
        }
    }

    /// The revision a reader has seen everything up to once it has this
    /// page: the last change when the page is full, else the current one.
    pub fn reached(&self, limit: usize) -> Revision {
        match self.changes.last() {
            Some(last) if self.changes.len() >= limit => last.revision,
            _ => self.current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(current: Revision, oldest: Option<Revision>) -> ChangePage {
        ChangePage {
            current,
            oldest,
            changes: Vec::new(),
        }
    }

    #[test]
    fn readable_only_while_the_log_reaches_back() {
        assert_eq!(page(0, None).readable_from(0), Ok(()));
        assert_eq!(
            page(0, None).readable_from(1),
            Err(Unreadable::Ahead { current: 0 })
        );
        assert_eq!(page(10, Some(1)).readable_from(0), Ok(()));
        assert_eq!(page(10, Some(5)).readable_from(4), Ok(()));
        assert_eq!(
            page(10, Some(5)).readable_from(3),
            Err(Unreadable::Compacted { oldest: 5 })
        );
        assert_eq!(page(10, None).readable_from(10), Ok(()));
        assert_eq!(
            page(10, None).readable_from(9),
            Err(Unreadable::Compacted { oldest: 11 }),
            "everything pruned: only the current revision is readable"
        );
    }

    #[test]
    fn ops_round_trip() {
        for op in [ChangeOp::Put, ChangeOp::Delete, ChangeOp::Expire] {
            assert_eq!(ChangeOp::parse(op.as_str()), Some(op));
        }
        assert_eq!(ChangeOp::parse("other"), None);
    }
}
