//! What only test builds have (the `test-hooks` feature, which only
//! `tests/seeded_bugs.rs` builds with: a release has none of it). Bugs put
//! in on purpose, to show the robustness suite's checkers catch each kind
//! (issue #27): `HULYKVS_SEEDED_BUG` names the one bug a server process runs
//! with. And `HULYKVS_FORCE_COCKROACH_PATH`: on PostgreSQL, the data
//! statements and behaviour of the CockroachDB path (no batching, no
//! LISTEN, polling; with `default_transaction_isolation=serializable` in the
//! URL, serialization retries), the closest this machine comes to
//! CockroachDB, which cannot be had here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The bugs a test can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Every 10th plain PUT answers `204` without writing anything.
    PutNotWritten,
    /// `If-Match` on a PUT compares nothing: the write always applies.
    IfMatchIgnored,
    /// Every 20th event of a watch stream is not sent.
    WatchEventDropped,
    /// Every 7th write answers the revision of the write before it; the
    /// tests start an instance with it after a restart, so revisions
    /// answered before the restart come back.
    RevisionReused,
}

/// The bug this process runs with, if any.
pub fn active() -> Option<Bug> {
    static BUG: OnceLock<Option<Bug>> = OnceLock::new();
    *BUG.get_or_init(
        || match std::env::var("HULYKVS_SEEDED_BUG").ok()?.as_str() {
            "put_not_written" => Some(Bug::PutNotWritten),
            "if_match_ignored" => Some(Bug::IfMatchIgnored),
            "watch_event_dropped" => Some(Bug::WatchEventDropped),
            "revision_reused" => Some(Bug::RevisionReused),
            _ => None,
        },
    )
}

/// Whether `bug` is active and this is its `every`-th occasion.
pub fn strikes(bug: Bug, every: u64) -> bool {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    active() == Some(bug) && COUNT.fetch_add(1, Ordering::Relaxed) % every == every - 1
}

/// Whether the CockroachDB code path is forced on PostgreSQL.
pub fn cockroach_path() -> bool {
    std::env::var_os("HULYKVS_FORCE_COCKROACH_PATH").is_some()
}
