//! The linearizability checker (`check::linearizability`) against an
//! independent oracle: stateright's `LinearizabilityTester`, which tries
//! every interleaving of a history, with no partitions and no memoization.
//! Thousands of small random histories, legal ones simulated on a real
//! register and illegal ones mutated from them, must get the same verdict
//! from both. Then the checker's speed on a drill-sized history, and its
//! budget on a hard one.
//!
//! How a history of ours maps onto stateright's:
//! - stateright knows no clock: an operation precedes another when its
//!   `on_return` came before the other's `on_invoke`. The calls and returns
//!   are replayed sorted by instant, calls first within one instant: our
//!   closed intervals, where an answer and a call at one nanosecond overlap.
//! - stateright allows one operation in flight per thread, and one in flight
//!   at the end (invoked, never returned) may be linearized after what
//!   preceded it, or not at all: exactly our unknown outcome. Our clients go
//!   on after an unknown outcome, so each unknown operation is invoked on a
//!   thread of its own, which never returns.
//! - A transaction is one operation of the register, so both sides judge
//!   transactions too; the oracle's register is written here again from the
//!   contract (SPEC §3, §13), not borrowed from `check::model`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hulykvs::check::history::{Call, Cond, History, Key, Operation, Outcome, Step, Tag};
use hulykvs::check::linearizability::{check, Report, Verdict};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// The oracle's register: what each key stores, by tag.
#[derive(Debug, Clone, Default)]
struct Register(BTreeMap<Key, Tag>);

/// Whether `cond` holds for `stored`, as SPEC §3 words it.
fn holds(cond: Cond, stored: Option<Tag>) -> bool {
    match cond {
        Cond::Always => true,
        Cond::Matches(tag) => stored == Some(tag),
        Cond::Absent => stored.is_none(),
    }
}

impl Register {
    fn stored(&self, key: Key) -> Option<Tag> {
        self.0.get(&key).copied()
    }

    fn set(&mut self, key: Key, value: Option<Tag>) {
        match value {
            Some(tag) => self.0.insert(key, tag),
            None => self.0.remove(&key),
        };
    }

    /// A transaction: every condition on the state before it, then every write.
    fn txn(&mut self, steps: &[Step]) -> Outcome {
        let conds_hold = steps.iter().all(|step| match step {
            Step::Get { .. } => true,
            Step::Put { key, cond, .. }
            | Step::Delete { key, cond }
            | Step::Check { key, cond } => holds(*cond, self.stored(*key)),
        });
        if !conds_hold {
            return Outcome::Refused;
        }
        let reads = steps
            .iter()
            .map(|step| match step {
                Step::Get { key } => self.stored(*key),
                _ => None,
            })
            .collect();
        for step in steps {
            match step {
                Step::Put { key, value, .. } => self.set(*key, Some(*value)),
                Step::Delete { key, .. } => self.set(*key, None),
                Step::Get { .. } | Step::Check { .. } => {}
            }
        }
        Outcome::Committed { reads }
    }
}

impl SequentialSpec for Register {
    type Op = Call;
    type Ret = Outcome;

    fn invoke(&mut self, call: &Call) -> Outcome {
        match call {
            Call::Get { key } => Outcome::Read {
                found: self.stored(*key),
            },
            Call::Put { key, value, cond } if holds(*cond, self.stored(*key)) => {
                self.set(*key, Some(*value));
                Outcome::Written
            }
            Call::Put { .. } => Outcome::Refused,
            Call::Delete { key, cond } => match self.stored(*key) {
                None if *cond == Cond::Always => Outcome::NotFound,
                stored if holds(*cond, stored) => {
                    self.set(*key, None);
                    Outcome::Written
                }
                _ => Outcome::Refused,
            },
            Call::Txn { steps } => self.txn(steps),
        }
    }
}

/// What stateright says of `history`.
fn oracle(history: &History) -> bool {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    let unknown = |op: &Operation| matches!(op.outcome, Outcome::Unknown { .. });
    for (i, op) in history.operations.iter().enumerate() {
        events.push((op.called, 0, i));
        match op.returned {
            Some(returned) if !unknown(op) => events.push((returned, 1, i)),
            _ => {}
        }
    }
    events.sort_unstable();
    let mut tester = LinearizabilityTester::new(Register::default());
    for (_, kind, i) in events {
        let op = &history.operations[i];
        // (a thread of its own, which client or operation)
        let thread = if unknown(op) {
            (true, op.id)
        } else {
            (false, op.client)
        };
        let fed = if kind == 0 {
            tester.on_invoke(thread, op.call.clone()).map(|_| ())
        } else {
            tester.on_return(thread, op.outcome.clone()).map(|_| ())
        };
        if let Err(e) = fed {
            panic!("the history does not fit stateright: {e}\n{history:#?}");
        }
    }
    tester.is_consistent()
}

/// Our verdict on the whole history: `Some(true)` all partitions hold,
/// `Some(false)` one does not, `None` undecided.
fn ours(report: &Report) -> Option<bool> {
    let mut all = Some(true);
    for partition in &report.partitions {
        match partition.verdict {
            Verdict::Ok => {}
            Verdict::Violation(_) => return Some(false),
            Verdict::Unknown => all = None,
        }
    }
    all
}

/// How a simulated run is drawn.
#[derive(Debug, Clone, Copy)]
struct Shape {
    clients: usize,
    keys: Key,
    operations: usize,
    /// Percent of operations whose outcome is unknown.
    unknown: u32,
    /// Transactions span the keys of one group of this size (the drill's
    /// way), or, when `None`, any 1–3 keys.
    group: Option<Key>,
    /// The longest an operation takes, and the longest pause between two of a client.
    longest: u64,
}

/// One operation of a run, its instants drawn before what it does.
struct Planned {
    client: usize,
    called: u64,
    returned: Option<u64>,
    /// When it took effect on the register; `None` never (an unknown outcome's option).
    effect: Option<u64>,
}

/// The instants of every operation: each client one at a time, and the
/// instant each takes effect within its interval (an unknown one anywhere
/// after its call, or never).
fn plan(rng: &mut StdRng, shape: Shape) -> Vec<Planned> {
    let mut clock = vec![0u64; shape.clients];
    for t in clock.iter_mut() {
        *t = rng.gen_range(0..=shape.longest);
    }
    let mut planned = Vec::with_capacity(shape.operations);
    for _ in 0..shape.operations {
        let client = rng.gen_range(0..shape.clients);
        let called = clock[client];
        let returned = called + rng.gen_range(0..=shape.longest);
        // The client's next call comes strictly later: one at a time.
        clock[client] = returned + rng.gen_range(1..=shape.longest.max(1));
        let p = if rng.gen_range(0..100) < shape.unknown {
            let effect = rng
                .gen_bool(0.5)
                .then(|| called + rng.gen_range(0..=4 * shape.longest));
            Planned {
                client,
                called,
                returned: None,
                effect,
            }
        } else {
            Planned {
                client,
                called,
                returned: Some(returned),
                effect: Some(rng.gen_range(called..=returned)),
            }
        };
        planned.push(p);
    }
    planned
}

/// A condition likely to hold now, or likely not to.
fn cond(rng: &mut StdRng, stored: Option<Tag>, written: &[Tag], may_be_absent: bool) -> Cond {
    let other = written.choose(rng).copied().unwrap_or(Tag::of(b"never"));
    match rng.gen_range(0..5) {
        0 => Cond::Always,
        1 if may_be_absent => Cond::Absent,
        1 | 2 => Cond::Matches(stored.unwrap_or(other)),
        _ => Cond::Matches(other),
    }
}

fn txn_keys(rng: &mut StdRng, key: Key, shape: Shape) -> Vec<Key> {
    match shape.group {
        Some(size) => {
            let first = key - key % size;
            (first..(first + size).min(shape.keys)).collect()
        }
        None => {
            let mut keys: Vec<Key> = (0..shape.keys).collect();
            keys.shuffle(rng);
            keys.truncate(rng.gen_range(1..=shape.keys.min(3)) as usize);
            keys
        }
    }
}

/// What an operation asks, drawn with the register's state at hand so that
/// conditions hold about half the time.
fn pick(rng: &mut StdRng, shape: Shape, now: &Register, written: &[Tag], value: Tag) -> Call {
    let key = rng.gen_range(0..shape.keys);
    let stored = now.stored(key);
    match rng.gen_range(0..10) {
        0..=2 => Call::Get { key },
        3..=5 => Call::Put {
            key,
            value,
            cond: cond(rng, stored, written, true),
        },
        6 | 7 => Call::Delete {
            key,
            cond: cond(rng, stored, written, false),
        },
        _ => {
            let steps = txn_keys(rng, key, shape)
                .into_iter()
                .map(|key| {
                    let c = cond(rng, now.stored(key), written, true);
                    match rng.gen_range(0..4) {
                        0 => Step::Get { key },
                        // A value of its own for each key, as the drill writes.
                        1 => Step::Put {
                            key,
                            value: Tag::of(&[&value.0[..], &key.to_le_bytes()].concat()),
                            cond: c,
                        },
                        2 => Step::Delete { key, cond: c },
                        _ => Step::Check { key, cond: c },
                    }
                })
                .collect();
            Call::Txn { steps }
        }
    }
}

/// A history a linearizable register could have given: each operation
/// drawn and applied at the instant it takes effect.
fn simulate(rng: &mut StdRng, shape: Shape) -> History {
    let planned = plan(rng, shape);
    let mut order: Vec<usize> = (0..planned.len()).collect();
    // Ties at one instant in any order: both intervals hold that instant.
    order.shuffle(rng);
    order.sort_by_key(|&i| planned[i].effect.unwrap_or(u64::MAX));
    let mut register = Register::default();
    let mut written: Vec<Tag> = Vec::new();
    let mut done: Vec<Option<Operation>> = vec![None; planned.len()];
    for i in order {
        let p = &planned[i];
        let value = Tag::of(format!("value {i}").as_bytes());
        let call = pick(rng, shape, &register, &written, value);
        written.push(value);
        let answer = p.effect.map(|_| register.invoke(&call));
        let outcome = match (p.returned, answer) {
            (Some(_), Some(answer)) => answer,
            _ => Outcome::Unknown {
                why: "timed out".into(),
            },
        };
        done[i] = Some(Operation {
            id: i,
            client: p.client,
            instance: 0,
            call,
            called: p.called,
            returned: p.returned,
            outcome,
            status: None,
            revision: None,
        });
    }
    History {
        keys: (0..shape.keys).map(|k| format!("k{k}")).collect(),
        operations: done.into_iter().flatten().collect(),
    }
}

/// Another tag than `found`: none, one written, or one never written.
fn other_read(rng: &mut StdRng, found: Option<Tag>, written: &[Tag]) -> Option<Tag> {
    let candidate = match rng.gen_range(0..3) {
        0 => None,
        1 => written.choose(rng).copied(),
        _ => Some(Tag::of(b"never written")),
    };
    if candidate == found {
        Some(Tag::of(b"never written either"))
    } else {
        candidate
    }
}

/// `outcome` changed into another the call could have answered.
fn mutated(rng: &mut StdRng, call: &Call, outcome: &Outcome, written: &[Tag]) -> Outcome {
    match (call, outcome) {
        (_, Outcome::Read { found }) => Outcome::Read {
            found: other_read(rng, *found, written),
        },
        (Call::Delete { .. }, answered) => {
            let others: Vec<Outcome> = [Outcome::Written, Outcome::Refused, Outcome::NotFound]
                .into_iter()
                .filter(|o| o != answered)
                .collect();
            others.choose(rng).cloned().unwrap_or(Outcome::Written)
        }
        (_, Outcome::Written) => Outcome::Refused,
        (_, Outcome::Refused | Outcome::NotFound) => Outcome::Written,
        (Call::Txn { steps }, Outcome::Committed { reads }) => {
            let gets: Vec<usize> = (0..steps.len())
                .filter(|&n| matches!(steps[n], Step::Get { .. }))
                .collect();
            match gets.choose(rng) {
                Some(&n) if rng.gen_bool(0.7) => {
                    let mut reads = reads.clone();
                    reads[n] = other_read(rng, reads[n], written);
                    Outcome::Committed { reads }
                }
                _ => Outcome::Refused,
            }
        }
        (_, other) => other.clone(),
    }
}

/// `history` with one answered operation's outcome changed.
fn mutate(rng: &mut StdRng, history: &History) -> History {
    let mut out = history.clone();
    let written: Vec<Tag> = history
        .operations
        .iter()
        .filter_map(|op| match op.call {
            Call::Put { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    let answered: Vec<usize> = (0..out.operations.len())
        .filter(|&i| out.operations[i].returned.is_some())
        .collect();
    let Some(&i) = answered.choose(rng) else {
        return out;
    };
    let op = &mut out.operations[i];
    if rng.gen_bool(0.3) {
        // Moved in time, on a client of its own so that its own client
        // still makes one call at a time: real-time order changes.
        let shift = rng.gen_range(1..=8);
        op.client = 500 + op.id;
        if rng.gen_bool(0.5) {
            op.called += shift;
            op.returned = op.returned.map(|r| r + shift);
        } else {
            op.called = op.called.saturating_sub(shift);
            op.returned = op.returned.map(|r| r.saturating_sub(shift));
        }
        return out;
    }
    op.outcome = match (&op.call, &op.outcome) {
        (Call::Txn { steps }, Outcome::Refused) => Outcome::Committed {
            reads: steps.iter().map(|_| None).collect(),
        },
        (call, outcome) => mutated(rng, call, outcome, &written),
    };
    out
}

fn small_shape(rng: &mut StdRng) -> Shape {
    Shape {
        clients: rng.gen_range(2..=4),
        keys: rng.gen_range(1..=3),
        operations: rng.gen_range(4..=12),
        unknown: 15,
        group: None,
        longest: 4,
    }
}

#[test]
fn every_verdict_agrees_with_stateright_on_small_histories() {
    let mut rng = StdRng::seed_from_u64(27);
    let (mut legal, mut illegal, mut unknown_outcomes, mut txns) = (0, 0, 0, 0);
    for round in 0..2500 {
        let shape = small_shape(&mut rng);
        let simulated = simulate(&mut rng, shape);
        let mut histories = vec![simulated.clone()];
        histories.extend((0..2).map(|_| mutate(&mut rng, &simulated)));
        for (n, history) in histories.iter().enumerate() {
            let expected = oracle(history);
            let report = check(history, Duration::from_secs(10));
            assert_eq!(
                ours(&report),
                Some(expected),
                "round {round}, history {n}: stateright says {expected}\n{history:#?}\n{report:#?}"
            );
            assert!(
                n > 0 || expected,
                "a simulated history is legal: {history:#?}"
            );
            if expected {
                legal += 1;
            } else {
                illegal += 1;
            }
            let ops = &history.operations;
            unknown_outcomes += ops.iter().filter(|o| o.returned.is_none()).count();
            txns += ops
                .iter()
                .filter(|o| matches!(o.call, Call::Txn { .. }))
                .count();
        }
    }
    eprintln!("{legal} legal, {illegal} illegal; {unknown_outcomes} unknown outcomes, {txns} transactions");
    // Both verdicts are common, so agreeing is not agreeing on one answer.
    assert!(
        legal > 3000 && illegal > 3000,
        "{legal} legal, {illegal} illegal"
    );
    assert!(unknown_outcomes > 1000 && txns > 1000);
}

#[test]
fn a_drill_sized_history_of_a_correct_register_checks_in_seconds() {
    let mut rng = StdRng::seed_from_u64(5000);
    let shape = Shape {
        clients: 8,
        keys: 10,
        operations: 5000,
        unknown: 2,
        group: Some(2),
        longest: 1_000,
    };
    let history = simulate(&mut rng, shape);
    let began = Instant::now();
    let report = check(&history, Duration::from_secs(30));
    let took = began.elapsed();
    eprintln!(
        "{} operations in {} partitions checked in {took:?}",
        report.operations,
        report.partitions.len()
    );
    assert_eq!(report.partitions.len(), 5, "{:?}", report.partitions);
    assert!(report.operations > 4900, "{}", report.operations);
    assert!(
        report.partitions.iter().all(|p| p.verdict == Verdict::Ok),
        "{report:#?}"
    );
    // One read answered wrong, halfway through, is found as fast.
    let mut broken = history.clone();
    let reads: Vec<usize> = (0..broken.operations.len())
        .filter(|&i| matches!(broken.operations[i].outcome, Outcome::Read { .. }))
        .collect();
    let middle = reads[reads.len() / 2];
    broken.operations[middle].outcome = Outcome::Read {
        found: Some(Tag::of(b"never written")),
    };
    let began = Instant::now();
    let report = check(&broken, Duration::from_secs(30));
    eprintln!("a violation found in {:?}", began.elapsed());
    let violations: Vec<_> = report
        .partitions
        .iter()
        .filter_map(|p| match &p.verdict {
            Verdict::Violation(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(violations.len(), 1, "{report:#?}");
    assert_eq!(violations[0].stuck, middle);
}

#[test]
fn a_budget_of_a_millisecond_on_a_hard_history_is_undecided() {
    // 24 concurrent writes and then a read of a value none wrote: to say
    // "violation" the search must try every subset of the writes.
    let write = |id: usize| Operation {
        id,
        client: id,
        instance: 0,
        call: Call::Put {
            key: 0,
            value: Tag::of(&id.to_le_bytes()),
            cond: Cond::Always,
        },
        called: id as u64,
        returned: Some(100 + id as u64),
        outcome: Outcome::Written,
        status: None,
        revision: None,
    };
    let mut operations: Vec<Operation> = (0..24).map(write).collect();
    operations.push(Operation {
        id: 24,
        client: 24,
        instance: 0,
        call: Call::Get { key: 0 },
        called: 200,
        returned: Some(201),
        outcome: Outcome::Read {
            found: Some(Tag::of(b"nobody")),
        },
        status: None,
        revision: None,
    });
    let history = History {
        keys: vec!["k".into()],
        operations,
    };
    let report = check(&history, Duration::from_millis(1));
    assert_eq!(report.partitions.len(), 1);
    assert_eq!(report.partitions[0].verdict, Verdict::Unknown);
    assert!(report.seconds < 1.0, "stopped after {}s", report.seconds);
}
