//! Linearizability of a history (SPEC §19): can every operation be given
//! one instant between its call and its answer, so that the register
//! ([`model`](super::model)) replayed in that order gives every answer seen?
//!
//! The search is Wing and Gong's, with Lowe's refinements, as porcupine
//! runs it: the calls and returns in time order in a linked list; the first
//! call that may take effect now is lifted out (call and return) and the
//! search goes on from the start; a return reached before its call was
//! lifted means the last choice was wrong: undo it and try the next. A set
//! of (operations linearized, state) already seen is never searched twice.
//! The history is cut into partitions first: each key alone, except keys a
//! transaction touches together. A time budget bounds the search; past it
//! the answer is `Unknown`, never `Ok`.
//!
//! Intervals are closed: an answer and a call at the same nanosecond
//! overlap (the call is ordered first), which can only allow more orders.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::history::{Call, History, Key, Operation, Outcome};
use super::model::{Model, State};

/// The verdict on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Violation(Violation),
    /// The budget ran out first.
    Unknown,
}

/// A partition that is not linearizable, and where the search got furthest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub keys: Vec<Key>,
    /// The partition's operations (ids), in call order.
    pub operations: Vec<usize>,
    /// The longest order found that explains a prefix of the history (ids).
    pub prefix: Vec<usize>,
    /// The operation whose answer could not be explained at that point.
    pub stuck: usize,
}

/// One partition's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub keys: Vec<Key>,
    pub operations: usize,
    pub verdict: Verdict,
}

/// The verdicts on a whole history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub partitions: Vec<Partition>,
    /// Operations checked (reads whose answer is unknown constrain nothing and are left out).
    pub operations: usize,
    pub seconds: f64,
}

/// Checks every partition of `history` within `budget` in all.
pub fn check(history: &History, budget: Duration) -> Report {
    let began = Instant::now();
    let deadline = began + budget;
    let parts = partitions(history);
    let operations = parts.iter().map(|(_, ops)| ops.len()).sum();
    let partitions = std::thread::scope(|scope| {
        let running: Vec<_> = parts
            .into_iter()
            .map(|(keys, ops)| {
                scope.spawn(move || {
                    let verdict = search(&keys, &ops, deadline);
                    Partition {
                        operations: ops.len(),
                        keys,
                        verdict,
                    }
                })
            })
            .collect();
        running
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| unreachable_partition()))
            .collect()
    });
    Report {
        partitions,
        operations,
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// What a search that panicked (a bug) reports: undecided, never `Ok`.
fn unreachable_partition() -> Partition {
    Partition {
        keys: Vec::new(),
        operations: 0,
        verdict: Verdict::Unknown,
    }
}

/// The operations of each partition, in call order; keys a transaction
/// touches together share one.
fn partitions(history: &History) -> Vec<(Vec<Key>, Vec<&Operation>)> {
    let mut parent: BTreeMap<Key, Key> = BTreeMap::new();
    fn root(parent: &mut BTreeMap<Key, Key>, key: Key) -> Key {
        let up = *parent.entry(key).or_insert(key);
        if up == key {
            return key;
        }
        let top = root(parent, up);
        parent.insert(key, top);
        top
    }
    let relevant: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|op| {
            !(matches!(op.call, Call::Get { .. }) && matches!(op.outcome, Outcome::Unknown { .. }))
        })
        .collect();
    for op in &relevant {
        let keys = op.call.keys();
        for pair in keys.windows(2) {
            let (a, b) = (root(&mut parent, pair[0]), root(&mut parent, pair[1]));
            parent.insert(a, b);
        }
        if let Some(k) = keys.first() {
            root(&mut parent, *k);
        }
    }
    let mut groups: BTreeMap<Key, (Vec<Key>, Vec<&Operation>)> = BTreeMap::new();
    let keys: Vec<Key> = parent.keys().copied().collect();
    for key in keys {
        let top = root(&mut parent, key);
        groups.entry(top).or_default().0.push(key);
    }
    for op in relevant {
        if let Some(k) = op.call.keys().first() {
            let top = root(&mut parent, *k);
            groups.entry(top).or_default().1.push(op);
        }
    }
    let mut out: Vec<_> = groups.into_values().collect();
    for (_, ops) in &mut out {
        ops.sort_by_key(|op| (op.called, op.id));
    }
    out
}

/// One entry of the time-ordered list: the call or the return of an operation.
#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    call: bool,
    prev: usize,
    next: usize,
}

/// The calls and returns in time order, linked, with a head at 0 and a tail at the end.
struct Events {
    entries: Vec<Entry>,
    /// Per operation: its call's and its return's entry.
    at: Vec<(usize, usize)>,
}

const HEAD: usize = 0;

impl Events {
    fn new(ops: &[&Operation]) -> Events {
        // (time, returns after calls at one instant, op, is call)
        let mut order: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            order.push((op.called, 0, i, true));
            order.push((op.returned.unwrap_or(u64::MAX), 1, i, false));
        }
        order.sort_unstable();
        let n = order.len();
        let mut entries = vec![Entry {
            op: usize::MAX,
            call: false,
            prev: 0,
            next: 1,
        }];
        let mut at = vec![(0, 0); ops.len()];
        for (k, (_, _, op, call)) in order.into_iter().enumerate() {
            let index = k + 1;
            entries.push(Entry {
                op,
                call,
                prev: index - 1,
                next: index + 1,
            });
            if call {
                at[op].0 = index;
            } else {
                at[op].1 = index;
            }
        }
        // The tail.
        entries.push(Entry {
            op: usize::MAX,
            call: false,
            prev: n,
            next: n + 1,
        });
        Events { entries, at }
    }

    fn tail(&self) -> usize {
        self.entries.len() - 1
    }

    fn unlink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.entries[i];
        self.entries[prev].next = next;
        self.entries[next].prev = prev;
    }

    /// Puts back an entry unlinked last (links are kept while it is out).
    fn relink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.entries[i];
        self.entries[prev].next = i;
        self.entries[next].prev = i;
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = self.at[op];
        self.unlink(call);
        self.unlink(ret);
    }

    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.at[op];
        self.relink(ret);
        self.relink(call);
    }
}

/// A choice on the stack: the operation linearized, the state before it,
/// and the next states it could still have led to.
struct Choice {
    op: usize,
    before: State,
    untried: Vec<State>,
}

/// Wing–Gong–Lowe on one partition.
fn search(keys: &[Key], ops: &[&Operation], deadline: Instant) -> Verdict {
    let model = Model {
        keys: keys.to_vec(),
    };
    let mut events = Events::new(ops);
    let words = ops.len().div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<Choice> = Vec::new();
    let mut state = model.initial();
    let mut furthest: (usize, Vec<usize>, usize) = (0, Vec::new(), 0);
    let mut entry = events.entries[HEAD].next;
    let mut steps = 0u64;
    while events.entries[HEAD].next != events.tail() {
        steps += 1;
        if steps % 1024 == 1 && Instant::now() > deadline {
            return Verdict::Unknown;
        }
        let Entry { op, call, next, .. } = events.entries[entry];
        if call {
            let mut untried = model.step(&state, ops[op]);
            if let Some(next_state) = take_new(&mut untried, &mut seen, &mut done, op) {
                stack.push(Choice {
                    op,
                    before: std::mem::replace(&mut state, next_state),
                    untried,
                });
                events.lift(op);
                entry = events.entries[HEAD].next;
            } else {
                entry = next;
            }
            continue;
        }
        // A return whose call is still in the list: undo the last choice.
        if stack.len() >= furthest.0 {
            furthest = (
                stack.len(),
                stack.iter().map(|c| ops[c.op].id).collect(),
                ops[op].id,
            );
        }
        let Some(mut choice) = stack.pop() else {
            let (_, prefix, stuck) = furthest;
            return Verdict::Violation(Violation {
                keys: keys.to_vec(),
                operations: ops.iter().map(|o| o.id).collect(),
                prefix,
                stuck,
            });
        };
        events.unlift(choice.op);
        clear(&mut done, choice.op);
        state = choice.before;
        match take_new(&mut choice.untried, &mut seen, &mut done, choice.op) {
            Some(next_state) => {
                let before = std::mem::replace(&mut state, next_state);
                stack.push(Choice {
                    op: choice.op,
                    before,
                    untried: choice.untried,
                });
                events.lift(choice.op);
                entry = events.entries[HEAD].next;
            }
            // Every way of taking it here was tried: take a later call first.
            None => entry = events.entries[events.at[choice.op].0].next,
        }
    }
    Verdict::Ok
}

/// The first of `untried` that, with `op` linearized, reaches a
/// configuration not seen before; marks `op` done when one does.
fn take_new(
    untried: &mut Vec<State>,
    seen: &mut HashSet<(Vec<u64>, State)>,
    done: &mut [u64],
    op: usize,
) -> Option<State> {
    set(done, op);
    while let Some(candidate) = untried.pop() {
        if seen.insert((done.to_vec(), candidate.clone())) {
            return Some(candidate);
        }
    }
    clear(done, op);
    None
}

fn set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn clear(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{Cond, Tag};

    fn op(
        id: usize,
        client: usize,
        call: Call,
        span: (u64, Option<u64>),
        outcome: Outcome,
    ) -> Operation {
        Operation {
            id,
            client,
            instance: 0,
            call,
            called: span.0,
            returned: span.1,
            outcome,
            status: None,
            revision: None,
        }
    }

    fn history(ops: Vec<Operation>) -> History {
        History {
            keys: vec!["k0".into(), "k1".into()],
            operations: ops,
        }
    }

    fn verdicts(h: &History) -> Vec<Verdict> {
        check(h, Duration::from_secs(10))
            .partitions
            .into_iter()
            .map(|p| p.verdict)
            .collect()
    }

    #[test]
    fn overlapping_writes_and_reads_order_either_way_but_not_backwards() {
        let (a, b) = (Tag::of(b"a"), Tag::of(b"b"));
        let put = |id, v, span| {
            op(
                id,
                id,
                Call::Put {
                    key: 0,
                    value: v,
                    cond: Cond::Always,
                },
                span,
                Outcome::Written,
            )
        };
        let read =
            |id, found, span| op(id, id, Call::Get { key: 0 }, span, Outcome::Read { found });
        // a and b overlap; a read after both may see either, but two reads
        // after both cannot disagree in the order they ran.
        let ok = history(vec![
            put(0, a, (0, Some(10))),
            put(1, b, (5, Some(15))),
            read(2, Some(a), (20, Some(25))),
        ]);
        assert_eq!(verdicts(&ok), vec![Verdict::Ok]);
        let bad = history(vec![
            put(0, a, (0, Some(10))),
            put(1, b, (5, Some(15))),
            read(2, Some(a), (20, Some(25))),
            read(3, Some(b), (30, Some(35))),
        ]);
        match &verdicts(&bad)[0] {
            Verdict::Violation(v) => assert_eq!(v.stuck, 3),
            other => panic!("{other:?}"),
        }
        // A write that returned before a read began must be seen.
        let stale = history(vec![
            put(0, a, (0, Some(10))),
            read(1, None, (11, Some(12))),
        ]);
        assert!(matches!(verdicts(&stale)[0], Verdict::Violation(_)));
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not() {
        let a = Tag::of(b"a");
        let lost = op(
            0,
            0,
            Call::Put {
                key: 0,
                value: a,
                cond: Cond::Always,
            },
            (0, None),
            Outcome::Unknown { why: "cut".into() },
        );
        let read = |id, found, t| {
            op(
                id,
                1,
                Call::Get { key: 0 },
                (t, Some(t + 1)),
                Outcome::Read { found },
            )
        };
        assert_eq!(
            verdicts(&history(vec![lost.clone(), read(1, Some(a), 10)])),
            vec![Verdict::Ok]
        );
        assert_eq!(
            verdicts(&history(vec![lost.clone(), read(1, None, 10)])),
            vec![Verdict::Ok]
        );
        // Once seen, it cannot be unseen.
        let flicker = history(vec![lost, read(1, Some(a), 10), read(2, None, 20)]);
        assert!(matches!(verdicts(&flicker)[0], Verdict::Violation(_)));
    }

    #[test]
    fn transactions_join_their_keys_and_no_budget_is_never_ok() {
        let (a, b) = (Tag::of(b"a"), Tag::of(b"b"));
        let txn = Call::Txn {
            steps: vec![
                crate::check::history::Step::Put {
                    key: 0,
                    value: a,
                    cond: Cond::Absent,
                },
                crate::check::history::Step::Put {
                    key: 1,
                    value: b,
                    cond: Cond::Absent,
                },
            ],
        };
        let h = history(vec![
            op(
                0,
                0,
                txn,
                (0, Some(5)),
                Outcome::Committed {
                    reads: vec![None, None],
                },
            ),
            op(
                1,
                1,
                Call::Get { key: 1 },
                (6, Some(7)),
                Outcome::Read { found: Some(b) },
            ),
            op(
                2,
                1,
                Call::Get { key: 0 },
                (8, Some(9)),
                Outcome::Read { found: None },
            ),
        ]);
        let report = check(&h, Duration::from_secs(10));
        assert_eq!(report.partitions.len(), 1, "{report:?}");
        assert!(matches!(
            report.partitions[0].verdict,
            Verdict::Violation(_)
        ));
        assert_eq!(
            check(&h, Duration::ZERO).partitions[0].verdict,
            Verdict::Unknown
        );
    }
}
