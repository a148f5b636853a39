//! The migrations of the embedded store (`sql/sqlite/`), applied on the
//! writer connection under SQLite's write lock, which every process on the
//! file honours.

use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use super::connection::{db_error, set_lock_wait};
use crate::store::migrations::{self, History, Migration, MigrationState};
use crate::store::StoreError;

/// The migrations of the embedded store, in order (`sql/sqlite/`).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_kvs",
        sql: include_str!("../../../sql/sqlite/0001_kvs.sql"),
    },
    Migration {
        version: 2,
        name: "0002_expire_at",
        sql: include_str!("../../../sql/sqlite/0002_expire_at.sql"),
    },
    Migration {
        version: 3,
        name: "0003_changes",
        sql: include_str!("../../../sql/sqlite/0003_changes.sql"),
    },
    Migration {
        version: 4,
        name: "0004_key_id",
        sql: include_str!("../../../sql/sqlite/0004_key_id.sql"),
    },
];

/// The shortest time `migrate` waits for another process's migration to finish.
pub(super) const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);

const HISTORY_TABLE: &str = "CREATE TABLE IF NOT EXISTS hulykvs_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

const RECORD_MIGRATION: &str = "INSERT INTO hulykvs_migrations (version, name, applied_at) \
     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

/// How long the writer connection waits for the file's write lock (busy timeout).
#[derive(Debug, Clone, Copy)]
pub(super) struct LockWaits {
    /// For a batch of requests.
    pub(super) request: Duration,
    /// For a migration run, which may wait for another process's whole run.
    pub(super) migration: Duration,
}

/// Applies what [`MIGRATIONS`] holds beyond the history, all in one
/// transaction under SQLite's write lock, so concurrent processes apply each
/// one once. Returns the names applied.
pub(super) fn apply_migrations(
    conn: &mut Connection,
    waits: LockWaits,
) -> Result<Vec<String>, StoreError> {
    let failed = |e| db_error("migrating", e);
    // Another process may hold the write lock for its whole migration run.
    set_lock_wait(conn, waits.migration).map_err(failed)?;
    let applied = apply_pending(conn, MIGRATIONS);
    // Requests must not wait as long as migrations do.
    let restored = set_lock_wait(conn, waits.request).map_err(failed);
    let applied = applied?;
    restored?;
    Ok(applied)
}

fn apply_pending(conn: &mut Connection, known: &[Migration]) -> Result<Vec<String>, StoreError> {
    // BEGIN IMMEDIATE takes the write lock that every SQLite connection honours:
    // the check below and the apply cannot interleave with another process.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| db_error("taking the write lock to migrate", e))?;
    tx.execute_batch(HISTORY_TABLE)
        .map_err(|e| db_error("creating the migration history", e))?;
    let history = read_history(&tx).map_err(|e| db_error("reading the migration history", e))?;
    let mut applied = Vec::new();
    for m in migrations::pending(known, &history) {
        tx.execute_batch(m.sql)
            .and_then(|()| tx.execute(RECORD_MIGRATION, params![m.version, m.name]))
            .map_err(|e| db_error(format_args!("migration {}", m.name), e))?;
        applied.push(m.name.to_owned());
    }
    tx.commit()
        .map_err(|e| db_error("committing migrations", e))?;
    Ok(applied)
}

/// Every known migration with its state (for `hulykvs migrate --status`).
pub(super) fn migration_states(conn: &Connection) -> Result<Vec<MigrationState>, StoreError> {
    let failed = |e| db_error("reading the migration history", e);
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = 'hulykvs_migrations')",
            [],
            |row| row.get(0),
        )
        .map_err(failed)?;
    let history = if exists {
        read_history(conn).map_err(failed)?
    } else {
        History::new()
    };
    Ok(migrations::status(MIGRATIONS, history))
}

/// The history table.
fn read_history(conn: &Connection) -> rusqlite::Result<History> {
    let mut stmt = conn.prepare("SELECT version, name, applied_at FROM hulykvs_migrations")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))?;
    rows.collect()
}
