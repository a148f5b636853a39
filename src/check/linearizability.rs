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
//! The history is cut into partitions first
//! ([`partition`](super::partition)), searched on as many threads as there
//! are cores. A time budget bounds the whole; past it the answer is
//! `Unknown`, never `Ok`.
//!
//! An operation whose outcome is unknown may take effect at any instant
//! after its call, or never. Never is not a choice on the stack: such an
//! operation is simply left out of the order, so the search does not try
//! every subset of them as "taken effect as nothing" (a drill through a
//! failover has hundreds). And since most never took effect, taking effect
//! is tried only after every known call at that point has been.
//!
//! Instants are read on the side that allows more orders, so that a
//! violation reported is one:
//! - Intervals are closed: an answer and a call at the same nanosecond
//!   overlap (calls are ordered first).
//! - An unknown outcome has no answer instant, even when some answer (a
//!   `503`) came: the write may still commit after it.
//! - An answer recorded before its call (a clock that went back) is taken
//!   as coming at the call.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::history::{History, Key, Operation, Outcome};
use super::model::{Model, State};
use super::partition::{partitions, Part};

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
    /// The longest order found that explains a prefix of the history (ids),
    /// unknown outcomes in it only where they took effect.
    pub prefix: Vec<usize>,
    /// The operation whose answer could not be explained at that point.
    pub stuck: usize,
}

/// One partition's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub keys: Vec<Key>,
    /// How many operations it holds.
    pub operations: usize,
    pub verdict: Verdict,
}

/// The verdicts on a whole history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// By their first key.
    pub partitions: Vec<Partition>,
    /// Operations checked (reads whose answer is unknown constrain nothing and are left out).
    pub operations: usize,
    pub seconds: f64,
}

/// Checks every partition of `history` within `budget` in all.
pub fn check(history: &History, budget: Duration) -> Report {
    let began = Instant::now();
    // A budget too large for the clock is no limit.
    let deadline = began.checked_add(budget);
    let parts = partitions(history);
    let operations = parts.iter().map(|part| part.ops.len()).sum();
    let partitions = judge_all(&parts, deadline);
    Report {
        partitions,
        operations,
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// Judges the partitions on as many threads as there are cores, the
/// largest first so that a long one does not start last. The deadline is
/// shared: the budget is for the whole history.
fn judge_all(parts: &[Part<'_>], deadline: Option<Instant>) -> Vec<Partition> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(parts.len());
    let mut queue: Vec<usize> = (0..parts.len()).collect();
    queue.sort_by_key(|&i| Reverse(parts[i].ops.len()));
    let next = AtomicUsize::new(0);
    let mut verdicts: Vec<Option<Verdict>> = vec![None; parts.len()];
    std::thread::scope(|scope| {
        let running: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut judged = Vec::new();
                    while let Some(&i) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                        judged.push((i, Search::new(&parts[i]).run(deadline)));
                    }
                    judged
                })
            })
            .collect();
        for worker in running {
            // A worker that panicked (a bug) leaves its partitions
            // undecided below: never `Ok`.
            for (i, verdict) in worker.join().unwrap_or_default() {
                verdicts[i] = Some(verdict);
            }
        }
    });
    parts
        .iter()
        .zip(verdicts)
        .map(|(part, verdict)| Partition {
            keys: part.keys.clone(),
            operations: part.ops.len(),
            verdict: verdict.unwrap_or(Verdict::Unknown),
        })
        .collect()
}

/// The instants of an operation's call and return for the search (see the
/// module's doc for the choices made).
fn span(op: &Operation) -> (u64, u64) {
    let returned = match (&op.outcome, op.returned) {
        (Outcome::Unknown { .. }, _) | (_, None) => u64::MAX,
        (_, Some(returned)) => returned.max(op.called),
    };
    (op.called, returned)
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
        // (instant, calls before returns at one instant, op, is call)
        let mut order: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            let (called, returned) = span(op);
            order.push((called, 0, i, true));
            order.push((returned, 1, i, false));
        }
        order.sort_unstable();
        let edge = |prev, next| Entry {
            op: usize::MAX,
            call: false,
            prev,
            next,
        };
        let n = order.len();
        let mut entries = Vec::with_capacity(n + 2);
        entries.push(edge(HEAD, 1));
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
        entries.push(edge(n, n + 1));
        Events { entries, at }
    }

    fn first(&self) -> usize {
        self.entries[HEAD].next
    }

    fn tail(&self) -> usize {
        self.entries.len() - 1
    }

    /// The entry after `op`'s call (in the list, its call included).
    fn after_call(&self, op: usize) -> usize {
        self.entries[self.at[op].0].next
    }

    fn unlink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.entries[i];
        self.entries[prev].next = next;
        self.entries[next].prev = prev;
    }

    /// Puts back an entry unlinked last (its own links are kept while it is out).
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

/// A set of a partition's operations, one bit each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// A choice on the stack: the operation linearized, the state before it,
/// and the next states it could still have led to.
struct Choice {
    op: usize,
    before: State,
    untried: Vec<State>,
}

/// Where the search got deepest, for a human to start from.
struct Furthest {
    depth: usize,
    prefix: Vec<usize>,
    stuck: usize,
}

/// Where the search reads the list, and which calls it tries there: first
/// those with a known outcome; then, on a second pass up to the same
/// answer, those whose outcome is unknown. Most of those never took
/// effect: making one take effect is tried only when nothing known fits.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    entry: usize,
    unknowns: bool,
}

/// Wing–Gong–Lowe on one partition.
struct Search<'p> {
    model: Model,
    /// Per operation: its outcome is unknown, so it may be left out (an
    /// effect of none is the same as never taking effect).
    optional: Vec<bool>,
    events: Events,
    /// The operations linearized.
    done: Bits,
    /// Operations with a known outcome not linearized yet.
    left: usize,
    /// The configurations met. The state itself is kept, not its hash: two
    /// states with one hash would cut off a search that might have
    /// succeeded, and report a violation that is not one.
    seen: HashSet<(Bits, State)>,
    stack: Vec<Choice>,
    state: State,
    furthest: Option<Furthest>,
    part: &'p Part<'p>,
}

impl<'p> Search<'p> {
    fn new(part: &'p Part<'p>) -> Search<'p> {
        let model = Model {
            keys: part.keys.clone(),
        };
        let optional: Vec<bool> = part
            .ops
            .iter()
            .map(|op| matches!(op.outcome, Outcome::Unknown { .. }))
            .collect();
        Search {
            state: model.initial(),
            model,
            left: optional.iter().filter(|o| !**o).count(),
            optional,
            events: Events::new(&part.ops),
            done: Bits::new(part.ops.len()),
            seen: HashSet::new(),
            stack: Vec::new(),
            furthest: None,
            part,
        }
    }

    fn run(mut self, deadline: Option<Instant>) -> Verdict {
        let mut at = self.restart();
        let mut steps = 0u64;
        while self.left > 0 {
            // The first step looks too, so that no budget is never `Ok`.
            if steps % 256 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Verdict::Unknown;
            }
            steps += 1;
            if at.entry == self.events.tail() {
                // Past every known answer with one still to explain: the
                // list says this cannot be. Undecided rather than a guess.
                return Verdict::Unknown;
            }
            at = match self.advance(at) {
                Some(at) => at,
                None => return Verdict::Violation(self.violation()),
            };
        }
        Verdict::Ok
    }

    /// The first entry, known outcomes first.
    fn restart(&self) -> Cursor {
        Cursor {
            entry: self.events.first(),
            unknowns: false,
        }
    }

    /// Reads one entry: where to go on, `None` when no order is left to try.
    fn advance(&mut self, at: Cursor) -> Option<Cursor> {
        let Entry { op, call, next, .. } = self.events.entries[at.entry];
        let on = Cursor { entry: next, ..at };
        if call {
            if self.optional[op] != at.unknowns {
                return Some(on);
            }
            return Some(self.try_call(op).unwrap_or(on));
        }
        if self.optional[op] {
            // The answer that never came bounds nothing.
            return Some(on);
        }
        if !at.unknowns {
            return Some(Cursor {
                unknowns: true,
                ..self.restart()
            });
        }
        self.backtrack(op)
    }

    /// Linearizes `op` now, if that leads somewhere not seen before.
    fn try_call(&mut self, op: usize) -> Option<Cursor> {
        let mut untried = self.model.step(&self.state, self.part.ops[op]);
        if self.optional[op] {
            // Taking no effect is not being linearized at all.
            untried.retain(|next| *next != self.state);
        }
        self.lift(op, untried)
    }

    /// Linearizes `op` into the first of `untried` that reaches a
    /// configuration not seen before; then the search starts again from
    /// the first entry.
    fn lift(&mut self, op: usize, mut untried: Vec<State>) -> Option<Cursor> {
        self.done.insert(op);
        while let Some(next) = untried.pop() {
            if self.seen.insert((self.done.clone(), next.clone())) {
                let before = std::mem::replace(&mut self.state, next);
                self.stack.push(Choice {
                    op,
                    before,
                    untried,
                });
                self.events.lift(op);
                if !self.optional[op] {
                    self.left -= 1;
                }
                return Some(self.restart());
            }
        }
        self.done.remove(op);
        None
    }

    /// The answer of `stuck` was reached with no call before it left to
    /// try: undo the last choice and take its next way, or go on past its
    /// call. `None` when there is nothing left to undo.
    fn backtrack(&mut self, stuck: usize) -> Option<Cursor> {
        self.remember(stuck);
        let Choice {
            op,
            before,
            untried,
        } = self.stack.pop()?;
        self.events.unlift(op);
        self.done.remove(op);
        if !self.optional[op] {
            self.left += 1;
        }
        self.state = before;
        let past = Cursor {
            entry: self.events.after_call(op),
            unknowns: self.optional[op],
        };
        Some(self.lift(op, untried).unwrap_or(past))
    }

    /// Keeps the first point of the greatest depth reached.
    fn remember(&mut self, stuck: usize) {
        let depth = self.stack.len();
        if self.furthest.as_ref().is_some_and(|f| f.depth >= depth) {
            return;
        }
        let ops = &self.part.ops;
        self.furthest = Some(Furthest {
            depth,
            prefix: self.stack.iter().map(|c| ops[c.op].id).collect(),
            stuck: ops[stuck].id,
        });
    }

    fn violation(self) -> Violation {
        let (prefix, stuck) = match self.furthest {
            Some(f) => (f.prefix, f.stuck),
            None => (Vec::new(), self.part.ops.first().map_or(0, |op| op.id)),
        };
        Violation {
            keys: self.part.keys.clone(),
            operations: self.part.ops.iter().map(|op| op.id).collect(),
            prefix,
            stuck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{Call, Cond, Tag};

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

    fn put(id: usize, value: Tag, cond: Cond, span: (u64, Option<u64>), out: Outcome) -> Operation {
        op(
            id,
            id,
            Call::Put {
                key: 0,
                value,
                cond,
            },
            span,
            out,
        )
    }

    fn read(id: usize, found: Option<Tag>, span: (u64, u64)) -> Operation {
        let span = (span.0, Some(span.1));
        op(id, id, Call::Get { key: 0 }, span, Outcome::Read { found })
    }

    fn unknown() -> Outcome {
        Outcome::Unknown { why: "cut".into() }
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

    #[test]
    fn an_answer_and_a_call_at_one_instant_overlap() {
        let a = Tag::of(b"a");
        let write = || put(0, a, Cond::Always, (0, Some(10)), Outcome::Written);
        // The read called at 10 may have taken effect before the write that answered at 10.
        let same = history(vec![write(), read(1, None, (10, 12))]);
        assert_eq!(verdicts(&same), vec![Verdict::Ok]);
        let after = history(vec![write(), read(1, None, (11, 12))]);
        assert!(matches!(verdicts(&after)[0], Verdict::Violation(_)));
        // An answer recorded before its call is taken as coming at the call:
        // the write is over at 10 and the read at 11 must see it.
        let backwards = put(0, a, Cond::Always, (10, Some(3)), Outcome::Written);
        let stale = history(vec![backwards, read(1, None, (11, 12))]);
        assert!(matches!(verdicts(&stale)[0], Verdict::Violation(_)));
    }

    #[test]
    fn an_unknown_outcome_with_an_answer_instant_may_take_effect_later() {
        let a = Tag::of(b"a");
        // A 503 at 1; the write committed after the read at 5.
        let late = history(vec![
            put(0, a, Cond::Always, (0, Some(1)), unknown()),
            read(1, None, (5, 6)),
            read(2, Some(a), (7, 8)),
        ]);
        assert_eq!(verdicts(&late), vec![Verdict::Ok]);
    }

    #[test]
    fn unknown_writes_that_took_no_effect_cost_the_search_nothing() {
        let (a, b, never) = (Tag::of(b"a"), Tag::of(b"b"), Tag::of(b"never"));
        // Forty concurrent unknown writes whose condition never holds, then
        // a read that nothing explains: each of them being linearized or not
        // would make 2^40 orders to refute.
        let mut ops: Vec<Operation> = (0..40)
            .map(|id| put(id, b, Cond::Matches(never), (id as u64, None), unknown()))
            .collect();
        ops.push(put(40, a, Cond::Always, (0, Some(50)), Outcome::Written));
        ops.push(read(41, Some(b), (60, 61)));
        let report = check(&history(ops), Duration::from_secs(10));
        let Verdict::Violation(v) = &report.partitions[0].verdict else {
            panic!("{report:?}");
        };
        assert_eq!((v.keys.clone(), v.stuck), (vec![0], 41));
        // Only what took effect is in the order found.
        assert_eq!(v.prefix, vec![40]);
        assert_eq!(v.operations[..3], [0, 40, 1]);
        assert_eq!(report.operations, 42);
    }
}
