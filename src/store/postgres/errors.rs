//! What PostgreSQL's and CockroachDB's errors mean to the store: which are
//! worth a retry, which mean "unavailable", and how they read in a log line
//! (never with a row's data).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::store::StoreError;

/// Attempts of one statement that CockroachDB aborted with 40001.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Runs `attempt` again when CockroachDB aborted it with a serialization
/// failure (40001): such a statement did not commit, so running it again is
/// safe. 40003 (result unknown) is never retried.
pub(super) async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < CONFLICT_ATTEMPTS && sqlstate(&e) == Some("40001") => {
                tracing::debug!(attempt = tries, "serialization failure, retrying");
                tokio::time::sleep(backoff(tries, Duration::from_millis(5))).await;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Exponential backoff from `base`, capped at 64×, with jitter over its upper half.
pub(super) fn backoff(attempt: u32, base: Duration) -> Duration {
    let full = base.saturating_mul(1 << attempt.min(6));
    full / 2 + jitter(full / 2)
}

/// A random duration in `[0, max)`, random enough to spread retries apart.
pub(super) fn jitter(max: Duration) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    max.mul_f64((random % 1_000) as f64 / 1_000.0)
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

pub(super) fn is_lock_contention(e: &tokio_postgres::Error) -> bool {
    matches!(sqlstate(e), Some("55P03" | "40001"))
}

pub(super) fn is_creation_race(e: &tokio_postgres::Error) -> bool {
    matches!(
        sqlstate(e),
        Some("23505" | "42P06" | "42P07" | "42710" | "40001")
    )
}

/// Whether a SQLSTATE means "the database cannot answer now, retry later".
/// 25006 (a write in a read-only transaction) is a primary demoted to a
/// standby or made read-only: a failover in progress, not a client error.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "25006"
        )
}

/// Whether `e` says the connection's server is gone or no longer a
/// writable primary, so the connection (and its idle siblings) must not be
/// used again: closed, an I/O failure, an administrator or crash shutdown,
/// a connection exception, or a write refused as read-only.
pub(super) fn is_failover(e: &tokio_postgres::Error) -> bool {
    match sqlstate(e) {
        Some(code) => {
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
        }
        None => caused_by_io(e) || e.is_closed(),
    }
}

/// `e` and its causes, one line.
pub(super) fn with_sources(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether an I/O error is among `e`'s causes: the connection failed.
fn caused_by_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// No connection could be opened within `bound`.
pub(super) fn connect_timed_out(bound: Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "could not connect to the database within {bound:?}"
    ))
}

/// A statement got no answer within `bound`.
pub(super) fn statement_timed_out(bound: Duration) -> StoreError {
    StoreError::Unavailable(format!("the database did not answer within {bound:?}"))
}

/// Maps a driver error. The text holds the server's message and SQLSTATE but
/// never its DETAIL, which may quote a row; no value reaches it.
pub(super) fn db_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("{} (SQLSTATE {code})", db.message());
        return if is_unavailable_code(code) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Internal(text)
        };
    }
    let text = with_sources(e);
    let io = caused_by_io(e);
    // The driver's error kinds are private; these are the ones that mean the
    // connection, not the request, failed.
    let connection = [
        "error connecting to server",
        "error communicating with the server",
        "error performing TLS handshake",
        "timeout waiting for server",
    ];
    if io || e.is_closed() || connection.iter().any(|k| text.starts_with(k)) {
        StoreError::Unavailable(text)
    } else {
        StoreError::Internal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_codes() {
        for code in [
            "08006", "08001", "53300", "57P01", "57P02", "57P03", "40001", "25006",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "40003", "XX000", "22001"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let base = Duration::from_millis(10);
        for attempt in 0..20 {
            let d = backoff(attempt, base);
            let full = base * (1 << attempt.min(6));
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }
}
