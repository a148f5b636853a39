//! The watch guarantees of SPEC §19, checked against what watchers received,
//! the server's own change log, and the history of the writes: Ordered,
//! Unique, Reliable, Resumable, Filtered, Accurate and Atomic, revisions that
//! grow with no gap and are never reused, and every acknowledged write in the
//! feed.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::history::{Call, History, Outcome, Step, Tag};

/// A change as the feed carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub revision: u64,
    /// `put`, `delete` or `expire`.
    pub op: String,
    pub key: String,
    pub etag: Option<Tag>,
}

/// One connection of a watcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The instance it went to.
    pub instance: usize,
    /// The revision it asked to start after (`since`, or `Last-Event-ID` on a resume).
    pub since: u64,
    /// Whether it was a resume (`Last-Event-ID`) rather than the first connection.
    pub resumed: bool,
    pub events: Vec<Change>,
    /// How it ended: `dropped` (the watcher cut it), an `error` event's code, or a failure.
    pub ended: String,
}

/// A watcher: its prefix filter and its connections in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watcher {
    pub id: usize,
    pub prefix: Option<String>,
    pub sessions: Vec<Session>,
    /// Resumes from an earlier retained revision, not the last one it got
    /// (Resumable from any revision): it sees changes again by design, so
    /// Unique holds per connection only.
    #[serde(default)]
    pub rewinds: bool,
}

/// Everything the watch checks read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLog {
    /// The namespace's revision before the drill's first write.
    pub start: u64,
    /// The server's change log after `start`, as read at the end (`?changes`).
    pub log: Vec<Change>,
    pub watchers: Vec<Watcher>,
    /// The revisions of each committed transaction's writes, by operation id.
    pub txn_revisions: BTreeMap<usize, Vec<u64>>,
}

/// One broken guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchViolation {
    /// `ordered`, `unique`, `reliable`, `resumable`, `filtered`, `accurate`,
    /// `atomic`, `revisions` or `durable`.
    pub guarantee: String,
    pub detail: String,
}

/// What the watch checks found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Events received by all watchers.
    pub events: usize,
    /// Changes in the server's log.
    pub changes: usize,
    pub violations: Vec<WatchViolation>,
}

struct Found(Vec<WatchViolation>);

impl Found {
    fn add(&mut self, guarantee: &str, detail: String) {
        self.0.push(WatchViolation {
            guarantee: guarantee.to_owned(),
            detail,
        });
    }
}

/// Checks every guarantee; each violation names its guarantee.
pub fn check(history: &History, watch: &WatchLog) -> WatchReport {
    let mut found = Found(Vec::new());
    let by_revision = log_revisions(watch, &mut found);
    for watcher in &watch.watchers {
        check_watcher(watcher, watch, &by_revision, &mut found);
    }
    check_writes(history, watch, &by_revision, &mut found);
    WatchReport {
        events: watch
            .watchers
            .iter()
            .flat_map(|w| &w.sessions)
            .map(|s| s.events.len())
            .sum(),
        changes: watch.log.len(),
        violations: found.0,
    }
}

/// The log by revision; its revisions must follow `start` one by one.
fn log_revisions<'a>(watch: &'a WatchLog, found: &mut Found) -> HashMap<u64, &'a Change> {
    let mut by_revision = HashMap::new();
    let mut expected = watch.start + 1;
    for change in &watch.log {
        if by_revision.insert(change.revision, change).is_some() {
            found.add(
                "revisions",
                format!("revision {} is in the change log twice", change.revision),
            );
        } else if change.revision != expected {
            found.add(
                "revisions",
                format!(
                    "the change log goes from revision {} to {}",
                    expected - 1,
                    change.revision
                ),
            );
        }
        expected = change.revision + 1;
    }
    by_revision
}

fn matches(prefix: &Option<String>, key: &str) -> bool {
    prefix.as_deref().map_or(true, |p| key.starts_with(p))
}

/// Ordered, Unique, Filtered, Accurate, Reliable and Resumable for one watcher.
fn check_watcher(
    watcher: &Watcher,
    watch: &WatchLog,
    by_revision: &HashMap<u64, &Change>,
    found: &mut Found,
) {
    let who = format!("watcher {}", watcher.id);
    let mut seen = HashSet::new();
    for (n, session) in watcher.sessions.iter().enumerate() {
        if watcher.rewinds {
            seen.clear();
        }
        let mut last = session.since;
        for event in &session.events {
            if event.revision <= last {
                found.add(
                    "ordered",
                    format!(
                        "{who}, connection {n}: revision {} after {last}",
                        event.revision
                    ),
                );
            }
            if !seen.insert(event.revision) {
                found.add(
                    "unique",
                    format!("{who}: revision {} received twice", event.revision),
                );
            }
            if !matches(&watcher.prefix, &event.key) {
                found.add(
                    "filtered",
                    format!(
                        "{who}: key {:?} is outside its prefix {:?}",
                        event.key, watcher.prefix
                    ),
                );
            }
            match by_revision.get(&event.revision) {
                Some(change) if *change == event => {}
                Some(change) => found.add(
                    "accurate",
                    format!(
                        "{who}: revision {} was {change:?}, it received {event:?}",
                        event.revision
                    ),
                ),
                None => found.add(
                    "accurate",
                    format!(
                        "{who}: revision {} is not in the change log",
                        event.revision
                    ),
                ),
            }
            last = last.max(event.revision);
        }
        check_no_gap(watcher, session, n, last, watch, found);
    }
}

/// Within one connection, every change of the log between where it started
/// and the last event it got, that its prefix selects, arrived.
fn check_no_gap(
    watcher: &Watcher,
    session: &Session,
    n: usize,
    last: u64,
    watch: &WatchLog,
    found: &mut Found,
) {
    let got: HashSet<u64> = session.events.iter().map(|e| e.revision).collect();
    let missing: Vec<u64> = watch
        .log
        .iter()
        .filter(|c| c.revision > session.since && c.revision <= last)
        .filter(|c| matches(&watcher.prefix, &c.key))
        .map(|c| c.revision)
        .filter(|r| !got.contains(r))
        .collect();
    if let Some(first) = missing.first() {
        let before_any = session.events.first().map_or(true, |e| e.revision > *first);
        let guarantee = if session.resumed && before_any {
            "resumable"
        } else {
            "reliable"
        };
        found.add(
            guarantee,
            format!(
                "watcher {}, connection {n} (since {}): {} change(s) missing, first revision {first}",
                watcher.id,
                session.since,
                missing.len()
            ),
        );
    }
}

/// Accurate against the history (no event for a write that failed),
/// Atomic, and every acknowledged write in the log.
fn check_writes(
    history: &History,
    watch: &WatchLog,
    by_revision: &HashMap<u64, &Change>,
    found: &mut Found,
) {
    let key_name = |k: u16| {
        history
            .keys
            .get(usize::from(k))
            .cloned()
            .unwrap_or_default()
    };
    let mut failed: HashSet<Tag> = HashSet::new();
    let mut acknowledged_at: HashMap<u64, usize> = HashMap::new();
    let in_window = |r: u64| r > watch.start;
    for op in &history.operations {
        match (&op.call, &op.outcome, op.revision) {
            (Call::Put { value, .. }, Outcome::Refused, _) => {
                failed.insert(*value);
            }
            (Call::Put { key, value, .. }, Outcome::Written, Some(r)) if in_window(r) => {
                let want = ("put", key_name(*key), Some(*value));
                present(found, by_revision, op.id, r, want);
                reused(found, &mut acknowledged_at, op.id, r);
            }
            (Call::Delete { key, .. }, Outcome::Written, Some(r)) if in_window(r) => {
                present(
                    found,
                    by_revision,
                    op.id,
                    r,
                    ("delete", key_name(*key), None),
                );
                reused(found, &mut acknowledged_at, op.id, r);
            }
            (Call::Txn { steps }, Outcome::Refused, _) => {
                failed.extend(steps.iter().filter_map(|s| match s {
                    Step::Put { value, .. } => Some(*value),
                    _ => None,
                }));
            }
            _ => {}
        }
    }
    for change in &watch.log {
        if let Some(tag) = change.etag.filter(|t| failed.contains(t)) {
            found.add(
                "accurate",
                format!(
                    "revision {} puts {} to {:?}, a write that was refused",
                    change.revision,
                    tag.hex(),
                    change.key
                ),
            );
        }
    }
    check_transactions(watch, by_revision, &mut acknowledged_at, found);
}

/// Atomic: a transaction's changes are consecutive; and each is in the log.
fn check_transactions(
    watch: &WatchLog,
    by_revision: &HashMap<u64, &Change>,
    acknowledged_at: &mut HashMap<u64, usize>,
    found: &mut Found,
) {
    for (id, revisions) in &watch.txn_revisions {
        let mut sorted = revisions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
            if last - first + 1 != sorted.len() as u64 {
                found.add(
                    "atomic",
                    format!("transaction {id}: its changes {sorted:?} are not consecutive"),
                );
            }
        }
        for r in sorted.iter().filter(|r| **r > watch.start) {
            if !by_revision.contains_key(r) {
                found.add(
                    "durable",
                    format!("transaction {id}: its change at revision {r} is not in the log"),
                );
            }
            reused(found, acknowledged_at, *id, *r);
        }
    }
}

/// An acknowledged write's change is in the log as it was written.
fn present(
    found: &mut Found,
    by_revision: &HashMap<u64, &Change>,
    id: usize,
    revision: u64,
    (op, key, etag): (&str, String, Option<Tag>),
) {
    match by_revision.get(&revision) {
        Some(c) if c.op == op && c.key == key && (op != "put" || c.etag == etag) => {}
        Some(c) => found.add(
            "durable",
            format!("operation {id} was acknowledged at revision {revision}, which holds {c:?}"),
        ),
        None => found.add(
            "durable",
            format!("operation {id} was acknowledged at revision {revision}, missing from the log"),
        ),
    }
}

/// No two acknowledged writes share a revision.
fn reused(found: &mut Found, at: &mut HashMap<u64, usize>, id: usize, revision: u64) {
    if let Some(other) = at.insert(revision, id) {
        if other != id {
            found.add(
                "revisions",
                format!(
                    "operations {other} and {id} were both acknowledged at revision {revision}"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{Cond, Operation};

    fn put(revision: u64, key: &str, value: &str) -> Change {
        Change {
            revision,
            op: "put".into(),
            key: key.into(),
            etag: Some(Tag::of(value.as_bytes())),
        }
    }

    fn log() -> Vec<Change> {
        vec![put(11, "k1", "a"), put(12, "k2", "b"), put(13, "k1", "c")]
    }

    fn session(since: u64, resumed: bool, events: Vec<Change>) -> Session {
        Session {
            since,
            resumed,
            events,
            ..Session::default()
        }
    }

    fn history() -> History {
        let op = |id, key, value: &str, outcome, revision| Operation {
            id,
            client: 0,
            instance: 0,
            call: Call::Put {
                key,
                value: Tag::of(value.as_bytes()),
                cond: Cond::Always,
            },
            called: id as u64,
            returned: Some(id as u64 + 1),
            outcome,
            status: Some(204),
            revision,
        };
        History {
            keys: (0..3).map(|k| format!("k{k}")).collect(),
            operations: vec![
                op(0, 1, "a", Outcome::Written, Some(11)),
                op(1, 2, "b", Outcome::Written, Some(12)),
                op(2, 1, "c", Outcome::Written, Some(13)),
                op(3, 1, "refused", Outcome::Refused, None),
            ],
        }
    }

    fn kinds(watch: &WatchLog) -> Vec<String> {
        check(&history(), watch)
            .violations
            .into_iter()
            .map(|v| v.guarantee)
            .collect()
    }

    #[test]
    fn a_faithful_feed_passes_and_each_fault_is_named() {
        let all = log();
        let good = WatchLog {
            start: 10,
            log: all.clone(),
            watchers: vec![
                Watcher {
                    id: 0,
                    prefix: None,
                    sessions: vec![
                        session(10, false, all[..1].to_vec()),
                        session(11, true, all[1..].to_vec()),
                    ],
                    rewinds: false,
                },
                Watcher {
                    id: 1,
                    prefix: Some("k2".into()),
                    sessions: vec![session(10, false, vec![all[1].clone()])],
                    rewinds: false,
                },
            ],
            txn_revisions: BTreeMap::new(),
        };
        assert_eq!(kinds(&good), Vec::<String>::new());

        let mut dropped = good.clone();
        dropped.watchers[0].sessions[1].events.remove(0);
        assert_eq!(kinds(&dropped), ["resumable"]);
        let mut gap = good.clone();
        gap.watchers[0].sessions[0].events = vec![all[0].clone(), all[2].clone()];
        gap.watchers[0].sessions[1].events.clear();
        assert_eq!(kinds(&gap), ["reliable"]);
        let mut twice = good.clone();
        twice.watchers[0].sessions[1].since = 10;
        twice.watchers[0].sessions[1]
            .events
            .insert(0, all[0].clone());
        assert_eq!(kinds(&twice), ["unique"]);
        let mut swapped = good.clone();
        swapped.watchers[0].sessions[1].events.swap(0, 1);
        assert!(kinds(&swapped).contains(&"ordered".to_owned()));
        let mut filtered = good.clone();
        filtered.watchers[1].sessions[0].events.push(all[2].clone());
        assert_eq!(kinds(&filtered), ["filtered"]);
        let mut wrong = good.clone();
        wrong.watchers[1].sessions[0].events[0].etag = Some(Tag::of(b"other"));
        assert_eq!(kinds(&wrong), ["accurate"]);
        let mut lost = good.clone();
        lost.log.remove(2);
        lost.watchers[0].sessions[1].events.pop();
        assert_eq!(kinds(&lost), ["durable"]);
        let mut refused = good.clone();
        refused.log.push(put(14, "k1", "refused"));
        assert_eq!(kinds(&refused), ["accurate"]);
        let mut reused = good.clone();
        reused.log[2].revision = 12;
        assert!(kinds(&reused).contains(&"revisions".to_owned()));
        // A watcher that resumes from an earlier revision sees changes again:
        // not a violation; a gap in such a connection still is.
        let mut rewound = good.clone();
        rewound.watchers[0].rewinds = true;
        rewound.watchers[0].sessions[1] = session(10, true, all.clone());
        assert_eq!(kinds(&rewound), Vec::<String>::new());
        rewound.watchers[0].sessions[1].events.remove(1);
        assert_eq!(kinds(&rewound), ["reliable"]);
        let mut torn = good.clone();
        torn.log
            .extend([put(14, "k0", "x"), put(15, "k2", "y"), put(16, "k0", "z")]);
        torn.txn_revisions.insert(9, vec![14, 16]);
        assert_eq!(kinds(&torn), ["atomic"]);
    }
}
