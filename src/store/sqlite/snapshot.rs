//! Dump and restore on the embedded store (see [`crate::store::snapshot`]).
//!
//! A snapshot is ONE statement on a reader connection, stepped row by row:
//! in WAL mode a statement reads one snapshot from its first step to its
//! last, whatever the writer commits meanwhile. Its expiry is judged at the
//! instant the statement starts. Pages go to the sink from the reader
//! thread, which waits while the sink is full: memory stays a few pages.
//! A restore batch is one transaction on the writer connection.

use rusqlite::types::ToSql;
use rusqlite::{Connection, TransactionBehavior};

use super::connection::db_error;
use super::reseal::stored_row;
use super::sql::{live, now_ms, put_row};
use crate::store::snapshot::{PageSink, Restored, SnapshotFilter, PAGE_BYTES, PAGE_ROWS};
use crate::store::{PutCondition, PutOutcome, StoreError};

/// The snapshot's one statement, filtered by `filter` (its lists bound in order).
fn statement(filter: &SnapshotFilter) -> String {
    let list = |column: &str, n: usize| match n {
        0 => String::new(),
        n => format!(" AND {column} IN ({})", vec!["?"; n].join(", ")),
    };
    format!(
        concat!(
            "SELECT workspace, namespace, key, value, md5, key_id, content_type, expire_at \
             FROM kvs WHERE ",
            live!(),
            "{}{} ORDER BY workspace, namespace, key"
        ),
        list("workspace", filter.workspaces.len()),
        list("namespace", filter.namespaces.len()),
    )
}

/// Reads the snapshot on `conn` into `sink`; runs on a reader thread.
pub(super) fn read_snapshot(
    conn: &Connection,
    filter: &SnapshotFilter,
    sink: &PageSink,
) -> Result<(), StoreError> {
    let failed = |e| db_error("reading a snapshot", e);
    let workspaces: Vec<String> = filter
        .workspaces
        .iter()
        .map(|w| w.hyphenated().to_string())
        .collect();
    let mut bind: Vec<&dyn ToSql> = workspaces.iter().map(|w| w as &dyn ToSql).collect();
    bind.extend(filter.namespaces.iter().map(|n| n as &dyn ToSql));
    let mut stmt = conn.prepare(&statement(filter)).map_err(failed)?;
    let mut rows = stmt.query(&bind[..]).map_err(failed)?;
    let (mut page, mut bytes) = (Vec::with_capacity(PAGE_ROWS), 0usize);
    while let Some(row) = rows.next().map_err(failed)? {
        let stored = stored_row(row).map_err(failed)?;
        bytes = bytes.saturating_add(stored.value.len());
        page.push(stored);
        if page.len() >= PAGE_ROWS || bytes >= PAGE_BYTES {
            if sink.blocking_send(std::mem::take(&mut page)).is_err() {
                return Ok(());
            }
            bytes = 0;
        }
    }
    if !page.is_empty() {
        let _ = sink.blocking_send(page);
    }
    Ok(())
}

/// Writes `rows` in one transaction on the writer connection, each a put
/// with its change; answers how many were written.
pub(super) fn write_restored(
    conn: &Connection,
    rows: &[Restored],
    skip_existing: bool,
) -> Result<u64, StoreError> {
    let failed = |e| db_error("restoring rows", e);
    let cond = match skip_existing {
        true => PutCondition::IfAbsent,
        false => PutCondition::Always,
    };
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(failed)?;
    let mut written = 0;
    for row in rows {
        match put_row(&tx, &row.item, &row.value, &cond).map_err(failed)? {
            PutOutcome::Created(_) | PutOutcome::Stored(_) => written += 1,
            PutOutcome::PreconditionFailed => {}
        }
    }
    tx.commit().map_err(failed)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn filters_bind_their_lists_in_order() {
        let all = statement(&SnapshotFilter::default());
        assert!(!all.contains(" IN ("), "{all}");
        let some = statement(&SnapshotFilter {
            workspaces: vec![Uuid::nil(), Uuid::nil()],
            namespaces: vec!["a".into()],
        });
        assert!(
            some.contains("AND workspace IN (?, ?) AND namespace IN (?) ORDER BY"),
            "{some}"
        );
    }
}
