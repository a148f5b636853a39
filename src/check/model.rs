//! The register a history is replayed against: for each key of a
//! partition, the tag of the value stored, or none; and what each operation
//! may do to it. An operation whose outcome is unknown may have taken
//! effect or not: it has two next states, the search tries both.

use super::history::{Call, Cond, Key, Operation, Outcome, Step, Tag};

/// What is stored, per key of the partition (in the order of [`Model::keys`]).
pub type State = Vec<Option<Tag>>;

/// The keys of one partition, and the steps of operations on them.
#[derive(Debug, Clone)]
pub struct Model {
    pub keys: Vec<Key>,
}

impl Model {
    /// The empty namespace a drill starts from.
    pub fn initial(&self) -> State {
        vec![None; self.keys.len()]
    }

    fn at(&self, key: Key) -> Option<usize> {
        self.keys.iter().position(|k| *k == key)
    }

    /// The states `op` may leave `state` in; none when it cannot take
    /// effect in `state` (its answer contradicts what is stored).
    pub fn step(&self, state: &State, op: &Operation) -> Vec<State> {
        let unknown = matches!(op.outcome, Outcome::Unknown { .. });
        let applied = match &op.call {
            Call::Get { key } => return self.get(state, *key, &op.outcome),
            Call::Put { key, value, cond } => {
                self.write(state, &[(*key, Some(*value), *cond)], &op.outcome)
            }
            Call::Delete { key, cond } => self.delete(state, *key, *cond, &op.outcome),
            Call::Txn { steps } => self.txn(state, steps, &op.outcome),
        };
        match (unknown, applied) {
            // It may have taken effect, or not.
            (true, Some(next)) if next != *state => vec![next, state.clone()],
            (true, _) => vec![state.clone()],
            (false, Some(next)) => vec![next],
            (false, None) => Vec::new(),
        }
    }

    fn get(&self, state: &State, key: Key, outcome: &Outcome) -> Vec<State> {
        match (self.at(key), outcome) {
            (Some(i), Outcome::Read { found }) if state[i] == *found => vec![state.clone()],
            // A read with no answer constrains nothing.
            (_, Outcome::Unknown { .. }) => vec![state.clone()],
            _ => Vec::new(),
        }
    }

    /// Puts (a tag) or deletes (none) under conditions, all or nothing: the
    /// next state when the outcome fits, `None` when it does not. For an
    /// unknown outcome, the state if it was applied.
    fn write(
        &self,
        state: &State,
        writes: &[(Key, Option<Tag>, Cond)],
        outcome: &Outcome,
    ) -> Option<State> {
        let mut holds = true;
        let mut next = state.clone();
        for (key, value, cond) in writes {
            let i = self.at(*key)?;
            holds &= cond.holds(state[i]);
            next[i] = *value;
        }
        match (outcome, holds) {
            (Outcome::Written | Outcome::Unknown { .. }, true) => Some(next),
            (Outcome::Unknown { .. }, false) => Some(state.clone()),
            (Outcome::Refused, false) => Some(state.clone()),
            _ => None,
        }
    }

    fn delete(&self, state: &State, key: Key, cond: Cond, outcome: &Outcome) -> Option<State> {
        let i = self.at(key)?;
        match (outcome, state[i]) {
            // Without a condition, a delete of nothing answers 404 and changes nothing.
            (Outcome::NotFound, None) if cond == Cond::Always => Some(state.clone()),
            (Outcome::NotFound, _) => None,
            (Outcome::Written, None) => None,
            _ => self.write(state, &[(key, None, cond)], outcome),
        }
    }

    /// Conditions and reads see the state before the transaction.
    fn txn(&self, state: &State, steps: &[Step], outcome: &Outcome) -> Option<State> {
        let mut holds = true;
        let mut next = state.clone();
        for (n, step) in steps.iter().enumerate() {
            let i = self.at(step.key())?;
            match step {
                Step::Get { .. } => {
                    if let Outcome::Committed { reads } = outcome {
                        if reads.get(n).copied().flatten() != state[i] {
                            return None;
                        }
                    }
                }
                Step::Put { value, cond, .. } => {
                    holds &= cond.holds(state[i]);
                    next[i] = Some(*value);
                }
                Step::Delete { cond, .. } => {
                    holds &= cond.holds(state[i]);
                    next[i] = None;
                }
                Step::Check { cond, .. } => holds &= cond.holds(state[i]),
            }
        }
        match (outcome, holds) {
            (Outcome::Committed { .. } | Outcome::Unknown { .. }, true) => Some(next),
            (Outcome::Refused | Outcome::Unknown { .. }, false) => Some(state.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome) -> Operation {
        Operation {
            id: 0,
            client: 0,
            instance: 0,
            call,
            called: 0,
            returned: Some(1),
            outcome,
            status: None,
            revision: None,
        }
    }

    #[test]
    fn each_call_steps_as_the_contract_says() {
        let m = Model { keys: vec![0, 1] };
        let (a, b) = (Tag::of(b"a"), Tag::of(b"b"));
        let empty = m.initial();
        let put = |cond, outcome| {
            op(
                Call::Put {
                    key: 0,
                    value: a,
                    cond,
                },
                outcome,
            )
        };
        assert_eq!(
            m.step(&empty, &put(Cond::Always, Outcome::Written)),
            vec![vec![Some(a), None]]
        );
        assert!(m
            .step(&empty, &put(Cond::Matches(b), Outcome::Written))
            .is_empty());
        assert_eq!(
            m.step(&empty, &put(Cond::Matches(b), Outcome::Refused)),
            vec![empty.clone()]
        );
        assert!(m
            .step(&empty, &put(Cond::Absent, Outcome::Refused))
            .is_empty());
        let unknown = Outcome::Unknown { why: "cut".into() };
        assert_eq!(m.step(&empty, &put(Cond::Always, unknown.clone())).len(), 2);
        let read = |found| op(Call::Get { key: 0 }, Outcome::Read { found });
        assert!(m.step(&empty, &read(Some(a))).is_empty());
        assert_eq!(m.step(&empty, &read(None)).len(), 1);
        let holding = vec![Some(a), Some(b)];
        let del = |cond, outcome| op(Call::Delete { key: 0, cond }, outcome);
        assert_eq!(
            m.step(&holding, &del(Cond::Matches(a), Outcome::Written)),
            vec![vec![None, Some(b)]]
        );
        assert!(m
            .step(&holding, &del(Cond::Always, Outcome::NotFound))
            .is_empty());
        assert_eq!(
            m.step(&empty, &del(Cond::Always, Outcome::NotFound)).len(),
            1
        );
        let txn = Call::Txn {
            steps: vec![
                Step::Get { key: 1 },
                Step::Put {
                    key: 0,
                    value: b,
                    cond: Cond::Matches(a),
                },
            ],
        };
        let committed = Outcome::Committed {
            reads: vec![Some(b), None],
        };
        assert_eq!(
            m.step(&holding, &op(txn.clone(), committed.clone())),
            vec![vec![Some(b), Some(b)]]
        );
        assert!(m.step(&empty, &op(txn.clone(), committed)).is_empty());
        assert_eq!(
            m.step(&empty, &op(txn, Outcome::Refused)),
            vec![empty.clone()]
        );
    }

    #[test]
    fn deletes_transactions_and_unknowns_at_the_edges() {
        let m = Model { keys: vec![0, 1] };
        let (a, b) = (Tag::of(b"a"), Tag::of(b"b"));
        let empty = m.initial();
        let holding = vec![Some(a), None];
        let unknown = || Outcome::Unknown { why: "503".into() };
        let del = |cond, outcome| op(Call::Delete { key: 0, cond }, outcome);
        // A conditional delete of nothing is refused, never "not found".
        assert_eq!(
            m.step(&empty, &del(Cond::Matches(a), Outcome::Refused)),
            vec![empty.clone()]
        );
        assert!(m
            .step(&empty, &del(Cond::Matches(a), Outcome::NotFound))
            .is_empty());
        assert!(m
            .step(&empty, &del(Cond::Always, Outcome::Written))
            .is_empty());
        assert!(m
            .step(&holding, &del(Cond::Always, Outcome::Refused))
            .is_empty());
        assert!(m
            .step(&holding, &del(Cond::Matches(b), Outcome::Written))
            .is_empty());
        // An unknown delete of a value: gone or still there; of nothing: nothing.
        assert_eq!(
            m.step(&holding, &del(Cond::Always, unknown())),
            vec![empty.clone(), holding.clone()]
        );
        assert_eq!(
            m.step(&empty, &del(Cond::Always, unknown())),
            vec![empty.clone()]
        );
        // A read with no answer says nothing; an answer of the wrong kind is impossible.
        assert_eq!(
            m.step(&holding, &op(Call::Get { key: 0 }, unknown())).len(),
            1
        );
        let put = Call::Put {
            key: 1,
            value: b,
            cond: Cond::Always,
        };
        for wrong in [
            Outcome::Read { found: None },
            Outcome::NotFound,
            Outcome::Committed { reads: vec![] },
        ] {
            assert!(m.step(&holding, &op(put.clone(), wrong)).is_empty());
        }
        assert!(m
            .step(&holding, &op(Call::Get { key: 0 }, Outcome::Written))
            .is_empty());
    }

    #[test]
    fn a_transaction_reads_and_checks_the_state_before_it_and_writes_all_or_nothing() {
        let m = Model { keys: vec![0, 1] };
        let (a, b) = (Tag::of(b"a"), Tag::of(b"b"));
        let holding = vec![Some(a), None];
        let unknown = || Outcome::Unknown { why: "503".into() };
        let txn = Call::Txn {
            steps: vec![
                Step::Delete {
                    key: 0,
                    cond: Cond::Always,
                },
                Step::Get { key: 0 },
                Step::Check {
                    key: 1,
                    cond: Cond::Absent,
                },
                Step::Put {
                    key: 1,
                    value: b,
                    cond: Cond::Always,
                },
            ],
        };
        let reads = |found| Outcome::Committed {
            reads: vec![None, found, None, None],
        };
        assert_eq!(
            m.step(&holding, &op(txn.clone(), reads(Some(a)))),
            vec![vec![None, Some(b)]]
        );
        assert!(m.step(&holding, &op(txn.clone(), reads(None))).is_empty());
        assert!(m
            .step(&holding, &op(txn.clone(), Outcome::Refused))
            .is_empty());
        assert_eq!(
            m.step(&holding, &op(txn.clone(), unknown())),
            vec![vec![None, Some(b)], holding.clone()]
        );
        let full = vec![Some(a), Some(a)];
        assert_eq!(
            m.step(&full, &op(txn.clone(), Outcome::Refused)),
            vec![full.clone()]
        );
        assert_eq!(m.step(&full, &op(txn, unknown())), vec![full]);
    }
}
