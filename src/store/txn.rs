//! Transactions across keys (SPEC §13): what one asks, how its conditions
//! are judged, and what it answers, the same for every engine.
//!
//! An engine locks the keys a transaction names in [`Txn::keys`] order, reads
//! them once, asks [`Txn::plan`] whether every condition holds against what it
//! read, applies the [`Plan`]'s writes, and builds the answers with
//! [`Txn::results`]. Conditions and `get`s see the state before the
//! transaction; a key is written by at most one op, so the order of the
//! writes within the transaction cannot matter.

use std::collections::HashMap;

use uuid::Uuid;

use super::changes::Revision;
use super::{
    DeleteCondition, DeleteOutcome, Digest, Entry, ItemRef, NewValue, PutCondition, PutOutcome,
    Store, StoreError,
};

/// Most ops one transaction holds.
pub const MAX_OPS: usize = 128;

/// Most bytes of values the `get`s of one transaction may read: the answer
/// is held whole (base64 in JSON), so it is bounded like a request is.
pub const MAX_READ_BYTES: usize = 16 << 20;

/// A condition on the value stored at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// None.
    Always,
    /// A value is stored (`if_match: "*"`).
    Exists,
    /// No value is stored (`if_none_match: "*"`).
    Absent,
    /// The stored value's digest is one of these (`if_match`).
    Matches(Vec<Digest>),
    /// No value is stored, or its digest is none of these (`if_none_match`
    /// with tags; only `check` takes it).
    Differs(Vec<Digest>),
}

impl Condition {
    /// Whether the condition holds for the digest of what is stored.
    pub fn holds(&self, stored: Option<&Digest>) -> bool {
        match (self, stored) {
            (Condition::Always, _) => true,
            (Condition::Exists, found) => found.is_some(),
            (Condition::Absent, found) => found.is_none(),
            (Condition::Matches(tags), Some(md5)) => tags.contains(md5),
            (Condition::Matches(_), None) => false,
            (Condition::Differs(tags), Some(md5)) => !tags.contains(md5),
            (Condition::Differs(_), None) => true,
        }
    }
}

/// What one op does.
#[derive(Debug, Clone)]
pub enum OpKind {
    /// Reads the value.
    Get,
    /// Writes this value.
    Put(NewValue),
    /// Deletes the value (nothing when none is stored and the condition is
    /// [`Condition::Always`]).
    Delete,
    /// Asserts the condition and writes nothing.
    Check,
}

/// One op of a transaction.
#[derive(Debug, Clone)]
pub struct Op {
    pub namespace: String,
    pub key: String,
    pub kind: OpKind,
    pub cond: Condition,
}

impl Op {
    fn writes(&self) -> bool {
        matches!(self.kind, OpKind::Put(_) | OpKind::Delete)
    }
}

/// Why ops cannot make a transaction: the index of the op and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("op {index}: {reason}")]
pub struct InvalidOp {
    pub index: usize,
    pub reason: String,
}

/// Ops on namespaces of one workspace, checked to make sense together.
#[derive(Debug, Clone)]
pub struct Txn {
    pub workspace: Uuid,
    ops: Vec<Op>,
    /// The most bytes its `get`s may read: [`MAX_READ_BYTES`] for a
    /// client's transaction.
    read_limit: usize,
}

/// A namespace and a key of one workspace.
pub type Address<'a> = (&'a str, &'a str);

/// The writes of a transaction whose conditions all hold, by op index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ops that put their value.
    pub puts: Vec<usize>,
    /// Delete ops whose key holds a value.
    pub deletes: Vec<usize>,
}

/// What one op answered.
#[derive(Debug, Clone)]
pub enum OpResult {
    /// `get`: what was stored before the transaction.
    Got(Option<Entry>),
    /// `put`: the revision of its change.
    Put(Revision),
    /// `delete`: the revision of its change, `None` when nothing was stored.
    Deleted(Option<Revision>),
    /// `check`: the condition held.
    Checked,
}

/// What a transaction did.
#[derive(Debug, Clone)]
pub enum TxnOutcome {
    /// Every condition held and every write is committed.
    Committed(Vec<OpResult>),
    /// These ops' conditions did not hold; nothing was written.
    Failed(Vec<usize>),
    /// The `get`s would read more than this many bytes of values; nothing
    /// was written.
    ReadTooLarge(usize),
}

impl Txn {
    /// The most bytes the transaction's `get`s may read together.
    pub fn read_limit(&self) -> usize {
        self.read_limit
    }

    /// The transaction with no limit on what its `get`s read: for a write
    /// that answers the value it replaces, which a single PUT may have
    /// stored at any size up to the payload limit.
    pub fn without_read_limit(self) -> Txn {
        Txn {
            read_limit: usize::MAX,
            ..self
        }
    }

    /// Checks `ops`: at most [`MAX_OPS`], a condition only where the op
    /// takes it, every `check` with one, and no key written twice.
    pub fn new(workspace: Uuid, ops: Vec<Op>) -> Result<Txn, InvalidOp> {
        let invalid = |index, reason: &str| InvalidOp {
            index,
            reason: reason.to_owned(),
        };
        if ops.is_empty() {
            return Err(invalid(0, "a transaction needs at least one op"));
        }
        if ops.len() > MAX_OPS {
            return Err(invalid(
                MAX_OPS,
                &format!("a transaction holds at most {MAX_OPS} ops"),
            ));
        }
        let mut written: HashMap<Address<'_>, usize> = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            match (&op.kind, &op.cond) {
                (OpKind::Get, Condition::Always) => {}
                (OpKind::Get, _) => return Err(invalid(index, "a get takes no condition")),
                (OpKind::Check, Condition::Always) => {
                    return Err(invalid(index, "a check needs if_match or if_none_match"))
                }
                (OpKind::Put(_), Condition::Differs(_))
                | (OpKind::Delete, Condition::Differs(_)) => {
                    return Err(invalid(
                        index,
                        "if_none_match on a put takes only \"*\", and a delete takes none",
                    ))
                }
                (OpKind::Delete, Condition::Absent) => {
                    return Err(invalid(index, "a delete takes if_match, not if_none_match"))
                }
                _ => {}
            }
            if op.writes() {
                if let Some(first) = written.insert((&op.namespace, &op.key), index) {
                    return Err(invalid(
                        index,
                        &format!(
                            "{}/{} is written by op {first} already; a transaction writes a key once",
                            op.namespace, op.key
                        ),
                    ));
                }
            }
        }
        Ok(Txn {
            workspace,
            ops,
            read_limit: MAX_READ_BYTES,
        })
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether any op writes: a transaction that only reads needs no lock.
    pub fn writes(&self) -> bool {
        self.ops.iter().any(Op::writes)
    }

    /// The distinct addresses the ops name, in byte order of namespace, then
    /// key: the order every engine locks them in, so two transactions never
    /// wait for each other in a circle.
    pub fn keys(&self) -> Vec<Address<'_>> {
        let mut keys: Vec<Address<'_>> = self
            .ops
            .iter()
            .map(|op| (op.namespace.as_str(), op.key.as_str()))
            .collect();
        keys.sort_unstable_by(|a, b| {
            (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes()))
        });
        keys.dedup();
        keys
    }

    /// Whether the value at an address must be read in full (a `get` names
    /// it); conditions need only its digest.
    pub fn reads_value(&self, at: Address<'_>) -> bool {
        self.ops.iter().any(|op| {
            matches!(op.kind, OpKind::Get) && (op.namespace.as_str(), op.key.as_str()) == at
        })
    }

    /// The writes to apply when every condition holds against `stored` (the
    /// live values at the transaction's keys, by address), or every op
    /// whose condition does not.
    pub fn plan(&self, stored: &HashMap<(String, String), Entry>) -> Result<Plan, Vec<usize>> {
        let mut plan = Plan::default();
        let mut failed = Vec::new();
        for (index, op) in self.ops.iter().enumerate() {
            let found = stored.get(&(op.namespace.clone(), op.key.clone()));
            if !op.cond.holds(found.map(|e| &e.md5)) {
                failed.push(index);
                continue;
            }
            match op.kind {
                OpKind::Put(_) => plan.puts.push(index),
                OpKind::Delete if found.is_some() => plan.deletes.push(index),
                OpKind::Delete | OpKind::Get | OpKind::Check => {}
            }
        }
        if failed.is_empty() {
            Ok(plan)
        } else {
            Err(failed)
        }
    }

    /// The answer of each op, from what was stored before and the revision
    /// of each change the plan made, by address.
    pub fn results(
        &self,
        stored: &HashMap<(String, String), Entry>,
        revisions: &HashMap<(String, String), Revision>,
    ) -> Vec<OpResult> {
        self.ops
            .iter()
            .map(|op| {
                let at = (op.namespace.clone(), op.key.clone());
                match op.kind {
                    OpKind::Get => OpResult::Got(stored.get(&at).cloned()),
                    OpKind::Put(_) => OpResult::Put(revisions.get(&at).copied().unwrap_or(0)),
                    OpKind::Delete => OpResult::Deleted(revisions.get(&at).copied()),
                    OpKind::Check => OpResult::Checked,
                }
            })
            .collect()
    }
}

/// A write that answers with the value it replaces (`Huly-Return: previous`).
#[derive(Debug, Clone)]
pub enum Replace {
    Put(NewValue, PutCondition),
    Delete(DeleteCondition),
}

/// What a [`Replace`] did, and the live value it replaced (`None`: none).
#[derive(Debug, Clone)]
pub enum Replaced {
    Put(PutOutcome, Option<Entry>),
    Delete(DeleteOutcome, Option<Entry>),
}

/// [`Store::replace`] as a transaction of two ops, a `get` and the write:
/// for engines where a transaction is as good as one statement (SQLite's
/// one writer).
pub async fn replace_by_transaction<S: Store + ?Sized>(
    store: &S,
    item: ItemRef<'_>,
    write: Replace,
) -> Result<Replaced, StoreError> {
    let (kind, cond) = match &write {
        Replace::Put(value, cond) => (
            OpKind::Put(value.clone()),
            match cond {
                PutCondition::Always => Condition::Always,
                PutCondition::IfAbsent => Condition::Absent,
                PutCondition::IfExists => Condition::Exists,
                PutCondition::IfMatch(tags) => Condition::Matches(tags.clone()),
            },
        ),
        Replace::Delete(cond) => (
            OpKind::Delete,
            match cond {
                DeleteCondition::Always => Condition::Always,
                DeleteCondition::IfExists => Condition::Exists,
                DeleteCondition::IfMatch(tags) => Condition::Matches(tags.clone()),
            },
        ),
    };
    let at = |kind, cond| Op {
        namespace: item.namespace.to_owned(),
        key: item.key.to_owned(),
        kind,
        cond,
    };
    let ops = vec![at(OpKind::Get, Condition::Always), at(kind, cond)];
    let txn = Txn::new(item.workspace, ops)
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .without_read_limit();
    let results = match store.transact(&txn).await? {
        TxnOutcome::Failed(_) | TxnOutcome::ReadTooLarge(_) => None,
        TxnOutcome::Committed(results) => Some(results),
    };
    Ok(match (write, results.as_deref()) {
        (Replace::Put(_, cond), Some([OpResult::Got(old), OpResult::Put(revision)])) => {
            Replaced::Put(cond.outcome(Some(*revision)), old.clone())
        }
        (Replace::Put(..), _) => Replaced::Put(PutOutcome::PreconditionFailed, None),
        (Replace::Delete(cond), Some([OpResult::Got(old), OpResult::Deleted(revision)])) => {
            Replaced::Delete(cond.outcome(*revision), old.clone())
        }
        (Replace::Delete(cond), _) => Replaced::Delete(cond.outcome(None), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, key: &str, cond: Condition) -> Op {
        Op {
            namespace: "ns".to_owned(),
            key: key.to_owned(),
            kind,
            cond,
        }
    }

    fn put(key: &str, cond: Condition) -> Op {
        op(
            OpKind::Put(NewValue::new("v".into(), "text/plain".to_owned())),
            key,
            cond,
        )
    }

    fn entry(md5: Digest) -> Entry {
        Entry {
            value: bytes::Bytes::new(),
            md5,
            content_type: None,
            expires: None,
            sealed_by: None,
        }
    }

    #[test]
    fn conditions_judge_the_stored_digest() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let cases = [
            (Condition::Always, None, true),
            (Condition::Exists, Some(&a), true),
            (Condition::Exists, None, false),
            (Condition::Absent, None, true),
            (Condition::Absent, Some(&a), false),
            (Condition::Matches(vec![a]), Some(&a), true),
            (Condition::Matches(vec![a]), Some(&b), false),
            (Condition::Matches(vec![a]), None, false),
            (Condition::Differs(vec![a]), Some(&b), true),
            (Condition::Differs(vec![a]), Some(&a), false),
            (Condition::Differs(vec![a]), None, true),
        ];
        for (cond, stored, holds) in cases {
            assert_eq!(cond.holds(stored), holds, "{cond:?} on {stored:?}");
        }
    }

    #[test]
    fn ops_that_cannot_go_together_name_the_op() {
        let ws = Uuid::nil();
        let twice = Txn::new(
            ws,
            vec![
                put("k", Condition::Always),
                op(OpKind::Delete, "k", Condition::Always),
            ],
        );
        assert_eq!(twice.unwrap_err().index, 1);
        let check = Txn::new(ws, vec![op(OpKind::Check, "k", Condition::Always)]);
        assert!(check.unwrap_err().reason.contains("needs if_match"));
        let get = Txn::new(ws, vec![op(OpKind::Get, "k", Condition::Exists)]);
        assert_eq!(get.unwrap_err().index, 0);
        assert!(Txn::new(ws, Vec::new()).is_err());
        let many = (0..=MAX_OPS).map(|i| op(OpKind::Get, &i.to_string(), Condition::Always));
        assert_eq!(Txn::new(ws, many.collect()).unwrap_err().index, MAX_OPS);
        let read_then_write = Txn::new(
            ws,
            vec![
                op(OpKind::Get, "k", Condition::Always),
                put("k", Condition::Always),
            ],
        );
        assert!(
            read_then_write.is_ok(),
            "a key may be read and written once"
        );
    }

    #[test]
    fn keys_are_locked_in_byte_order_once_each() {
        let ops = vec![
            op(OpKind::Get, "b", Condition::Always),
            Op {
                namespace: "a".to_owned(),
                ..op(OpKind::Get, "z", Condition::Always)
            },
            put("a", Condition::Always),
            op(OpKind::Check, "b", Condition::Exists),
            op(OpKind::Get, "é", Condition::Always),
            op(OpKind::Get, "Z", Condition::Always),
        ];
        let txn = Txn::new(Uuid::nil(), ops).unwrap();
        assert_eq!(
            txn.keys(),
            vec![
                ("a", "z"),
                ("ns", "Z"),
                ("ns", "a"),
                ("ns", "b"),
                ("ns", "é")
            ]
        );
        assert!(txn.reads_value(("ns", "b")) && !txn.reads_value(("ns", "a")));
    }

    #[test]
    fn a_plan_names_every_failed_op_or_the_writes() {
        let tag = [7u8; 16];
        let txn = Txn::new(
            Uuid::nil(),
            vec![
                op(OpKind::Check, "x", Condition::Matches(vec![tag])),
                put("y", Condition::Absent),
                op(OpKind::Delete, "x", Condition::Always),
                op(OpKind::Delete, "gone", Condition::Always),
            ],
        )
        .unwrap();
        let mut stored = HashMap::new();
        stored.insert(("ns".to_owned(), "x".to_owned()), entry(tag));
        let plan = txn.plan(&stored).unwrap();
        assert_eq!(
            plan,
            Plan {
                puts: vec![1],
                deletes: vec![2]
            }
        );
        stored.insert(("ns".to_owned(), "y".to_owned()), entry(tag));
        stored.insert(("ns".to_owned(), "x".to_owned()), entry([0; 16]));
        assert_eq!(txn.plan(&stored).unwrap_err(), vec![0, 1]);
    }
}
