//! Opening the embedded store's connections (the writer in WAL mode with
//! `synchronous=FULL`, read-only readers) and what SQLite's errors mean to
//! the store.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, DatabaseName, ErrorCode, OpenFlags};

use crate::store::StoreError;

/// Prepared statements kept per connection. The IF-MATCH statements differ by
/// the length of the entity tag list, so leave room beyond the fixed ones.
const STATEMENT_CACHE: usize = 32;
/// A reader's page cache, in KiB (negative: SQLite's `cache_size` in KiB, not pages).
const READER_CACHE_KIB: i64 = -512;

pub(super) fn open_writer(path: &Path, lock_wait: Duration) -> Result<Connection, StoreError> {
    // No SQLITE_OPEN_URI: a path is a path, even one starting with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| db_error("open", e))?;
    set_lock_wait(&conn, lock_wait).map_err(|e| db_error("busy_timeout", e))?;
    if conn
        .is_readonly(DatabaseName::Main)
        .map_err(|e| db_error("checking access", e))?
    {
        return Err(StoreError::Internal(
            "the file is read-only for this process".to_owned(),
        ));
    }
    let mode =
        switch_to_wal(&conn, lock_wait).map_err(|e| db_error("switching to the WAL journal", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "the WAL journal is not available (journal mode stays {mode:?})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| db_error("setting synchronous=FULL", e))?;
    // Taking the write lock proves now, not at the first request, that the file,
    // its -wal and -shm companions and their folder can be written.
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .map_err(|e| db_error("checking that the file can be written", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Sets the WAL journal (kept in the file, so a no-op after the first time) and
/// returns the journal mode now in force.
fn switch_to_wal(conn: &Connection, lock_wait: Duration) -> rusqlite::Result<String> {
    let start = Instant::now();
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            // SQLite answers BUSY at once, without the busy handler, when several
            // connections switch a new file together; retry until the lock wait ends.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && start.elapsed() < lock_wait =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// Sets the busy timeout: how long a statement waits for a lock another
/// connection holds before failing with SQLITE_BUSY.
pub(super) fn set_lock_wait(conn: &Connection, wait: Duration) -> rusqlite::Result<()> {
    // rusqlite panics beyond i32::MAX milliseconds (24 days); a configured
    // timeout that long means "wait", so clamp it.
    conn.busy_timeout(wait.min(Duration::from_millis(i32::MAX as u64)))
}

pub(super) fn open_reader(path: &Path, lock_wait: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| db_error("opening a reader", e))?;
    set_lock_wait(&conn, lock_wait).map_err(|e| db_error("busy_timeout", e))?;
    // Each reader keeps a page cache of its own (2 MiB by default): eight
    // full ones were 14 MiB of the server's memory after a bench. The pages
    // are in the kernel's cache anyway, a read away; 512 KiB each holds the
    // B-tree's upper levels. 15-19 MiB less at the peak, for a GET at most a
    // little dearer (docs/PERFORMANCE.md, scripts/bench-sqlite-memory).
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)
        .map_err(|e| db_error("setting the reader's cache_size", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Classifies an SQLite error: a lock held past the busy timeout or a full disk
/// is worth retrying later (`Unavailable`); anything else is `Internal`.
pub(super) fn db_error(what: impl fmt::Display, e: rusqlite::Error) -> StoreError {
    let text = format!("{what}: {e}");
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull) => {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Internal(text),
    }
}
