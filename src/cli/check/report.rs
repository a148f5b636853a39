//! What a drill found: the verdicts of the checkers, the summary table on
//! stdout, and with `--report DIR` the history as JSON and one
//! self-contained page with each key's operations on a timeline, the first
//! violation marked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{CheckArgs, Recording};
use crate::check::history::{Call, Cond, Operation, Outcome};
use crate::check::linearizability::{self, Verdict};
use crate::check::watch::{self, WatchReport};
use crate::exit::{Exit, Failure};

/// The checkers' verdicts on one drill.
#[derive(Serialize)]
pub(super) struct Judgement {
    pub(super) linearizability: linearizability::Report,
    pub(super) watch: WatchReport,
    /// Seconds the checkers took.
    pub(super) checked_in: f64,
}

impl Judgement {
    /// 1 for any violation (even beside an undecided part), 3 when only undecided.
    pub(super) fn exit(&self) -> Exit {
        if self.first_violation().is_some() || !self.watch.violations.is_empty() {
            Exit::Error
        } else if self.undecided() > 0 {
            Exit::UNDECIDED
        } else {
            Exit::Ok
        }
    }

    fn undecided(&self) -> usize {
        self.linearizability
            .partitions
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Unknown))
            .count()
    }

    /// The violation found first in time, if any.
    pub(super) fn first_violation(&self) -> Option<&linearizability::Violation> {
        self.linearizability
            .partitions
            .iter()
            .filter_map(|p| match &p.verdict {
                Verdict::Violation(v) => Some(v),
                _ => None,
            })
            .min_by_key(|v| v.stuck)
    }
}

/// Runs both checkers.
pub(super) fn judge(recording: &Recording, budget: Duration) -> Judgement {
    let began = Instant::now();
    let linearizability = linearizability::check(&recording.history, budget);
    let watch = watch::check(&recording.history, &recording.watch);
    Judgement {
        linearizability,
        watch,
        checked_in: began.elapsed().as_secs_f64(),
    }
}

/// The summary table on stdout.
pub(super) fn print_summary(
    args: &CheckArgs,
    recording: &Recording,
    judgement: &Judgement,
) -> Result<(), Failure> {
    let text = summary(args, recording, judgement);
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Failure::error(format!("cannot write to stdout: {e}")))
}

fn summary(args: &CheckArgs, recording: &Recording, judgement: &Judgement) -> String {
    let ops = &recording.history.operations;
    let count = |f: &dyn Fn(&Operation) -> bool| ops.iter().filter(|o| f(o)).count();
    let reads = count(&|o| matches!(o.call, Call::Get { .. }));
    let txns = count(&|o| matches!(o.call, Call::Txn { .. }));
    let unknown = count(&|o| matches!(o.outcome, Outcome::Unknown { .. }));
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for op in ops {
        let name = op.status.map_or("none".to_owned(), |s| s.to_string());
        *statuses.entry(name).or_default() += 1;
    }
    let answers: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    let lin = &judgement.linearizability;
    let mut out = String::new();
    let clients = ops.iter().map(|o| o.client).max().map_or(0, |c| c + 1);
    let instances = ops.iter().map(|o| o.instance).max().map_or(0, |i| i + 1);
    let source = match &args.judge {
        Some(file) => format!("judged from {}", file.display()),
        None => format!("{:.1} s", recording.elapsed.as_secs_f64()),
    };
    let _ = writeln!(
        out,
        "hulykvs check: {clients} clients (the last one reads every key at the end) and {} watchers on {} keys, {instances} instance(s), {source}",
        recording.watch.watchers.len(),
        recording.history.keys.len(),
    );
    let _ = writeln!(
        out,
        "operations     {} (reads {reads}, writes {}, transactions {txns}; outcome unknown {unknown})",
        ops.len(),
        ops.len() - reads - txns
    );
    let _ = writeln!(out, "answers        {}", answers.join(", "));
    let verdict = match (judgement.first_violation(), judgement.undecided()) {
        (Some(_), _) => "VIOLATED",
        (None, 0) => "held",
        (None, _) => "UNDECIDED",
    };
    let _ = writeln!(
        out,
        "linearizable   {verdict}: {} partition(s), {} operations checked",
        lin.partitions.len(),
        lin.operations
    );
    if let Some(v) = judgement.first_violation() {
        let _ = writeln!(
            out,
            "  first violation: {}",
            describe_violation(recording, v)
        );
    }
    watch_lines(&mut out, recording, &judgement.watch);
    let _ = writeln!(out, "checked in     {:.2} s", judgement.checked_in);
    out
}

/// The watch checks' lines: the verdict, each broken guarantee's count, the first ten.
fn watch_lines(out: &mut String, recording: &Recording, w: &WatchReport) {
    let sessions: usize = recording
        .watch
        .watchers
        .iter()
        .map(|w| w.sessions.len())
        .sum();
    let _ = writeln!(
        out,
        "watch          {}: {} events on {} connection(s), {} changes in the log",
        if w.violations.is_empty() {
            "held"
        } else {
            "VIOLATED"
        },
        w.events,
        sessions,
        w.changes
    );
    if !w.violations.is_empty() {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &w.violations {
            *kinds.entry(v.guarantee.as_str()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "  broken: {}", kinds.join(", "));
    }
    for v in w.violations.iter().take(10) {
        let _ = writeln!(out, "  {}: {}", v.guarantee, v.detail);
    }
    if w.violations.len() > 10 {
        let _ = writeln!(out, "  … and {} more", w.violations.len() - 10);
    }
}

/// One line about a linearizability violation.
pub(super) fn describe_violation(recording: &Recording, v: &linearizability::Violation) -> String {
    let keys: Vec<&str> = v
        .keys
        .iter()
        .filter_map(|k| {
            recording
                .history
                .keys
                .get(usize::from(*k))
                .map(String::as_str)
        })
        .collect();
    let op = recording.history.operations.get(v.stuck);
    let what = op.map_or("?".to_owned(), |op| describe(op, &recording.history.keys));
    format!(
        "key(s) {}: operation #{} ({what}) cannot take effect at any instant between its call and its answer after the {} before it",
        keys.join(", "),
        v.stuck,
        v.prefix.len()
    )
}

/// An operation in words: client, call, outcome.
pub(super) fn describe(op: &Operation, keys: &[String]) -> String {
    let name = |k: &u16| keys.get(usize::from(*k)).map_or("?", String::as_str);
    let cond = |c: &Cond| match c {
        Cond::Always => String::new(),
        Cond::Matches(t) => format!(" If-Match {}", &t.hex()[..8]),
        Cond::Absent => " If-None-Match *".to_owned(),
    };
    let call = match &op.call {
        Call::Get { key } => format!("GET {}", name(key)),
        Call::Put {
            key,
            value,
            cond: c,
        } => format!("PUT {} {}{}", name(key), &value.hex()[..8], cond(c)),
        Call::Delete { key, cond: c } => format!("DELETE {}{}", name(key), cond(c)),
        Call::Txn { steps } => {
            let touched: Vec<&str> = op.call.keys().iter().map(name).collect();
            format!(
                "transaction of {} step(s) on {}",
                steps.len(),
                touched.join(", ")
            )
        }
    };
    let outcome = match &op.outcome {
        Outcome::Read { found: Some(t) } => format!("read {}", &t.hex()[..8]),
        Outcome::Read { found: None } => "read nothing".to_owned(),
        Outcome::Written => "written".to_owned(),
        Outcome::Refused => "refused (412)".to_owned(),
        Outcome::NotFound => "not found (404)".to_owned(),
        Outcome::Committed { .. } => "committed".to_owned(),
        Outcome::Unknown { why } => format!("unknown: {why}"),
    };
    format!("client {}: {call} → {outcome}", op.client)
}
