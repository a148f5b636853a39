//! A history cut into partitions for the linearizability checker: each key
//! alone, except keys that a transaction touches together, which share one.
//! Linearizability is local (Herlihy and Wing): a history is linearizable
//! when each partition is, and small partitions are searched far faster
//! than the whole.

use std::collections::BTreeMap;

use super::history::{Call, History, Key, Operation, Outcome};

/// The operations on a set of keys no operation outside it touches.
#[derive(Debug, Clone, Default)]
pub struct Part<'h> {
    /// Ascending.
    pub keys: Vec<Key>,
    /// In call order (ties by id).
    pub ops: Vec<&'h Operation>,
}

/// Whether an operation says anything about the register: a read with no
/// answer does not, nor a transaction of no steps.
pub fn constrains(op: &Operation) -> bool {
    let blind_read =
        matches!(op.call, Call::Get { .. }) && matches!(op.outcome, Outcome::Unknown { .. });
    !blind_read && !op.call.keys().is_empty()
}

/// The partitions of `history`, by their first key, leaving out the
/// operations that constrain nothing.
pub fn partitions(history: &History) -> Vec<Part<'_>> {
    let relevant: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|op| constrains(op))
        .collect();
    let mut sets = KeySets::default();
    for op in &relevant {
        sets.join(&op.call.keys());
    }
    let mut groups: BTreeMap<Key, Part<'_>> = BTreeMap::new();
    for key in sets.keys() {
        groups.entry(sets.root(key)).or_default().keys.push(key);
    }
    for op in relevant {
        if let Some(&key) = op.call.keys().first() {
            groups.entry(sets.root(key)).or_default().ops.push(op);
        }
    }
    let mut out: Vec<Part<'_>> = groups.into_values().collect();
    for part in &mut out {
        part.ops.sort_by_key(|op| (op.called, op.id));
    }
    out.sort_by_key(|part| part.keys.first().copied());
    out
}

/// Keys in disjoint sets (union–find): a transaction's keys end in one.
#[derive(Default)]
struct KeySets {
    parent: BTreeMap<Key, Key>,
}

impl KeySets {
    /// The key that stands for `key`'s set (meeting `key` puts it in a set of its own).
    fn root(&mut self, key: Key) -> Key {
        let mut top = *self.parent.entry(key).or_insert(key);
        while let Some(&up) = self.parent.get(&top).filter(|&&up| up != top) {
            top = up;
        }
        // Every key on the way now points at the top: later walks are short.
        let mut at = key;
        while at != top {
            at = self.parent.insert(at, top).unwrap_or(top);
        }
        top
    }

    fn join(&mut self, keys: &[Key]) {
        let Some((&first, rest)) = keys.split_first() else {
            return;
        };
        let top = self.root(first);
        for &key in rest {
            let other = self.root(key);
            self.parent.insert(other, top);
        }
    }

    /// Every key met, ascending.
    fn keys(&self) -> Vec<Key> {
        self.parent.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{Cond, Step, Tag};

    fn op(id: usize, call: Call, outcome: Outcome) -> Operation {
        Operation {
            id,
            client: 0,
            instance: 0,
            call,
            // Later ids called earlier: the partition orders by call.
            called: 100 - id as u64,
            returned: Some(101 - id as u64),
            outcome,
            status: None,
            revision: None,
        }
    }

    #[test]
    fn transactions_tie_keys_and_blind_reads_are_left_out() {
        let tag = Tag::of(b"x");
        let put = |key| Step::Put {
            key,
            value: tag,
            cond: Cond::Always,
        };
        let committed = |n| Outcome::Committed {
            reads: vec![None; n],
        };
        let read = Outcome::Read { found: None };
        let unknown = Outcome::Unknown { why: "cut".into() };
        let history = History {
            keys: (0..8).map(|k| format!("k{k}")).collect(),
            operations: vec![
                op(0, Call::Get { key: 5 }, read.clone()),
                // 1–3 and 3–4 in two transactions: one partition of three keys.
                op(
                    1,
                    Call::Txn {
                        steps: vec![put(3), put(1)],
                    },
                    committed(2),
                ),
                op(
                    2,
                    Call::Txn {
                        steps: vec![put(4), put(3)],
                    },
                    committed(2),
                ),
                op(3, Call::Get { key: 1 }, read.clone()),
                // A read with no answer says nothing: key 7 has no partition.
                op(4, Call::Get { key: 7 }, unknown.clone()),
                // A transaction of no steps neither.
                op(5, Call::Txn { steps: vec![] }, committed(0)),
                // A write with no answer may have taken effect: it counts.
                op(
                    6,
                    Call::Delete {
                        key: 0,
                        cond: Cond::Always,
                    },
                    unknown,
                ),
            ],
        };
        let parts = partitions(&history);
        let shape: Vec<(Vec<Key>, Vec<usize>)> = parts
            .iter()
            .map(|p| (p.keys.clone(), p.ops.iter().map(|o| o.id).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (vec![0], vec![6]),
                (vec![1, 3, 4], vec![3, 2, 1]),
                (vec![5], vec![0]),
            ]
        );
    }

    #[test]
    fn long_chains_of_joins_find_one_root() {
        let mut sets = KeySets::default();
        for k in (0..200u16).rev() {
            sets.join(&[k, k + 1]);
        }
        let top = sets.root(0);
        assert!((0..=200).all(|k| sets.root(k) == top));
        sets.join(&[500]);
        assert_ne!(sets.root(500), top);
    }
}
