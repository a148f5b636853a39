//! Expiry (SPEC §11): a value written with `Huly-TTL` or `Huly-Expire-At`
//! is gone for every reader from that instant, judged by the database's clock
//! (on PostgreSQL and CockroachDB every instance agrees); a sweeper removes
//! expired rows in bounded batches and reports what it removed.

use std::time::Duration;

use metrics::counter;

use super::{Item, Store};
use crate::telemetry::registry::EXPIRED;

/// Rows one sweep statement removes at most: a short transaction whose
/// locks no request waits long for.
pub const SWEEP_BATCH: usize = 1000;

/// When a written value expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// It does not; a write without either header clears an earlier expiry.
    #[default]
    Never,
    /// This many seconds after the database's now (`Huly-TTL`).
    After(u64),
    /// At this unix second (`Huly-Expire-At`).
    At(i64),
}

impl Expiry {
    /// The two statement parameters that carry it: seconds to live, or the
    /// unix second; at most one is set.
    pub fn params(self) -> (Option<i64>, Option<i64>) {
        match self {
            Expiry::Never => (None, None),
            Expiry::After(secs) => (Some(i64::try_from(secs).unwrap_or(i64::MAX)), None),
            Expiry::At(at) => (None, Some(at)),
        }
    }
}

/// When a stored value expires, as the database saw it when reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expires {
    /// The first unix second at which the value is gone.
    pub at: i64,
    /// Whole seconds left, at least 1.
    pub ttl: i64,
}

impl Expires {
    /// From the two columns a read selects: both set, or neither.
    pub fn from_columns(at: Option<i64>, ttl: Option<i64>) -> Option<Expires> {
        Some(Expires {
            at: at?,
            ttl: ttl?.max(1),
        })
    }
}

/// Sweeps expired rows from `store` every `every` until the process ends:
/// batch after batch while batches come back full, so a backlog drains
/// without one long transaction, then a pause. `removed` hears of each
/// batch (the change feed wakes its watchers).
pub async fn sweep_forever<S: Store>(store: &S, every: Duration, removed: impl Fn(&[Item])) {
    loop {
        tokio::time::sleep(every).await;
        loop {
            match store.sweep_expired(SWEEP_BATCH).await {
                Ok(batch) => {
                    counter!(EXPIRED).increment(batch.len() as u64);
                    log_removed(&batch);
                    removed(&batch);
                    if batch.len() < SWEEP_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping expired values failed; trying again later");
                    break;
                }
            }
        }
    }
}

fn log_removed(removed: &[Item]) {
    if !removed.is_empty() {
        tracing::debug!(count = removed.len(), "expired values removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_columns() {
        assert_eq!(Expiry::Never.params(), (None, None));
        assert_eq!(Expiry::After(5).params(), (Some(5), None));
        assert_eq!(
            Expiry::At(1_900_000_000).params(),
            (None, Some(1_900_000_000))
        );
        assert_eq!(Expires::from_columns(None, None), None);
        assert_eq!(
            Expires::from_columns(Some(10), Some(0)),
            Some(Expires { at: 10, ttl: 1 }),
            "a value still there has at least a second left"
        );
    }
}
