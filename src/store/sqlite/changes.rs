//! The change feed's SQL on the embedded store: the writer bumps the
//! namespace's revision and appends the change in the transaction of the
//! write ([`log_change`]); readers page through the log ([`select_changes`]);
//! the writer prunes it ([`prune_changes`]), sweeps expired rows with their
//! `expire` changes ([`sweep_expired`]) and deletes by prefix with their
//! `delete` changes ([`delete_prefix`]). One writer: revision order is
//! commit order.

use rusqlite::{params, Connection, TransactionBehavior};
use uuid::Uuid;

use super::connection::db_error;
use crate::store::changes::{Change, ChangeOp, ChangePage, ChangeQuery, Revision};
use crate::store::{prefix_upper_bound, Digest, Item, PrefixDeleted, StoreError};

/// The database's clock in unix milliseconds, fixed for one statement.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

const BUMP: &str = "INSERT INTO kvs_revision (workspace, namespace, revision) VALUES (?1, ?2, 1) \
     ON CONFLICT (workspace, namespace) DO UPDATE SET revision = revision + 1 RETURNING revision";

const APPEND: &str = concat!(
    "INSERT INTO kvs_change (workspace, namespace, revision, op, key, md5, expire_at, changed_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ",
    now_ms!(),
    ")"
);

/// One snapshot: the current and oldest revision, and a page of changes (a
/// row of NULL changes when none matches, kept by the left join).
const PAGE: &str = "SELECT s.current, s.oldest, c.revision, c.op, c.key, c.md5, \
     (c.expire_at + 999) / 1000 FROM \
     (SELECT coalesce((SELECT revision FROM kvs_revision WHERE workspace = ?1 AND namespace = ?2), 0) \
     AS current, (SELECT min(revision) FROM kvs_change WHERE workspace = ?1 AND namespace = ?2) \
     AS oldest) AS s LEFT JOIN (SELECT revision, op, key, md5, expire_at FROM kvs_change \
     WHERE workspace = ?1 AND namespace = ?2 AND revision > ?3 AND key >= ?4 \
     AND (?5 IS NULL OR key < ?5) ORDER BY revision LIMIT ?6) AS c ORDER BY c.revision";

/// Of each namespace with changes older than `?1` ms, every change up to the
/// newest old one, oldest first, at most `?2` (see the PostgreSQL statement).
const PRUNE: &str = concat!(
    "DELETE FROM kvs_change WHERE (workspace, namespace, revision) IN \
     (SELECT c.workspace, c.namespace, c.revision FROM kvs_change AS c JOIN \
     (SELECT workspace, namespace, max(revision) AS upto FROM \
     (SELECT workspace, namespace, revision FROM kvs_change WHERE changed_at < ",
    now_ms!(),
    " - ?1 ORDER BY changed_at LIMIT ?2) GROUP BY workspace, namespace) AS m \
     ON c.workspace = m.workspace AND c.namespace = m.namespace AND c.revision <= m.upto \
     ORDER BY c.workspace, c.namespace, c.revision LIMIT ?2)"
);

/// Deletes up to `?1` expired rows, returning their addresses.
const SWEEP: &str = concat!(
    "DELETE FROM kvs WHERE rowid IN (SELECT rowid FROM kvs WHERE expire_at <= ",
    now_ms!(),
    " LIMIT ?1) RETURNING workspace, namespace, key"
);

/// Deletes up to `?5` live keys of `?1`/`?2` from `?3` (below `?4` in the
/// second form), in key order, returning them. Two forms, so SQLite uses both
/// ends of the primary key range.
const DELETE_FROM: &str = concat!(
    "DELETE FROM kvs WHERE rowid IN (SELECT rowid FROM kvs WHERE workspace = ?1 AND namespace = ?2 \
     AND key >= ?3 AND (expire_at IS NULL OR expire_at > ",
    now_ms!(),
    ") ORDER BY key LIMIT ?5) RETURNING key"
);
const DELETE_FROM_UNTIL: &str = concat!(
    "DELETE FROM kvs WHERE rowid IN (SELECT rowid FROM kvs WHERE workspace = ?1 AND namespace = ?2 \
     AND key >= ?3 AND key < ?4 AND (expire_at IS NULL OR expire_at > ",
    now_ms!(),
    ") ORDER BY key LIMIT ?5) RETURNING key"
);

/// What a change records of the value it wrote.
pub(super) struct Logged<'a> {
    pub(super) op: ChangeOp,
    pub(super) md5: Option<&'a Digest>,
    /// Unix milliseconds.
    pub(super) expire_at: Option<i64>,
}

/// Bumps the revision of `item`'s namespace and appends its change, inside
/// the writer's open transaction; returns the revision.
pub(super) fn log_change(
    conn: &Connection,
    workspace: &str,
    item: &Item,
    change: Logged<'_>,
) -> rusqlite::Result<Revision> {
    let revision: i64 = conn
        .prepare_cached(BUMP)?
        .query_row(params![workspace, item.namespace], |row| row.get(0))?;
    conn.prepare_cached(APPEND)?.execute(params![
        workspace,
        item.namespace,
        revision,
        change.op.as_str(),
        item.key,
        change.md5.map(|m| &m[..]),
        change.expire_at,
    ])?;
    Ok(Revision::try_from(revision).unwrap_or(0))
}

/// A page of the change log, in one statement (one snapshot).
pub(super) fn select_changes(
    conn: &Connection,
    query: &OwnedChangeQuery,
) -> Result<ChangePage, StoreError> {
    let failed = |e| {
        db_error(
            format_args!("changes of {}/{}", query.workspace, query.namespace),
            e,
        )
    };
    let mut buf = Uuid::encode_buffer();
    let workspace: &str = query.workspace.hyphenated().encode_lower(&mut buf);
    let upper = prefix_upper_bound(&query.prefix);
    let after = i64::try_from(query.after).unwrap_or(i64::MAX);
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(PAGE).map_err(failed)?;
    let mut rows = stmt
        .query(params![
            workspace,
            query.namespace,
            after,
            query.prefix,
            upper,
            limit
        ])
        .map_err(failed)?;
    let mut page = ChangePage::default();
    while let Some(row) = rows.next().map_err(failed)? {
        page.current = row.get::<_, i64>(0).map_err(failed)?.max(0) as Revision;
        page.oldest = row
            .get::<_, Option<i64>>(1)
            .map_err(failed)?
            .map(|r| r.max(0) as Revision);
        let Some(revision) = row.get::<_, Option<i64>>(2).map_err(failed)? else {
            continue;
        };
        let op: String = row.get(3).map_err(failed)?;
        let md5: Option<Vec<u8>> = row.get(5).map_err(failed)?;
        page.changes.push(Change {
            revision: revision.max(0) as Revision,
            op: ChangeOp::parse(&op)
                .ok_or_else(|| StoreError::Internal(format!("unknown change op {op:?}")))?,
            key: row.get(4).map_err(failed)?,
            md5: md5.and_then(|m| Digest::try_from(m.as_slice()).ok()),
            expire_at: row.get(6).map_err(failed)?,
        });
    }
    Ok(page)
}

/// A [`ChangeQuery`], owned so it can cross to a reader thread.
pub(super) struct OwnedChangeQuery {
    workspace: Uuid,
    namespace: String,
    after: Revision,
    prefix: String,
    limit: usize,
}

impl From<ChangeQuery<'_>> for OwnedChangeQuery {
    fn from(query: ChangeQuery<'_>) -> Self {
        OwnedChangeQuery {
            workspace: query.workspace,
            namespace: query.namespace.to_owned(),
            after: query.after,
            prefix: query.prefix.to_owned(),
            limit: query.limit,
        }
    }
}

/// Deletes up to `limit` changes older than `retention_ms`; returns how many.
pub(super) fn prune_changes(
    conn: &Connection,
    retention_ms: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(PRUNE)
        .and_then(|mut stmt| stmt.execute(params![retention_ms, limit]))
        .map(|n| n as u64)
        .map_err(|e| db_error("pruning the change log", e))
}

/// Deletes up to `limit` live keys of `range` that start with its prefix, in
/// key order, each logged as a `delete` change, in one transaction.
pub(super) fn delete_prefix(
    conn: &Connection,
    range: &OwnedChangeQuery,
    limit: usize,
) -> Result<PrefixDeleted, StoreError> {
    let failed = |e| {
        db_error(
            format_args!(
                "delete {}/{} prefix {:?}",
                range.workspace, range.namespace, range.prefix
            ),
            e,
        )
    };
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(failed)?;
    let mut buf = Uuid::encode_buffer();
    let workspace: &str = range.workspace.hyphenated().encode_lower(&mut buf);
    let upper = prefix_upper_bound(&range.prefix);
    let sql = if upper.is_some() {
        DELETE_FROM_UNTIL
    } else {
        DELETE_FROM
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut keys: Vec<String> = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(
                params![workspace, range.namespace, range.prefix, upper, limit],
                |row| row.get(0),
            )?
            .collect()
        })
        .map_err(failed)?;
    // RETURNING comes in row order; the changes are numbered in key order,
    // as on PostgreSQL (UTF-8 compares as its bytes do).
    keys.sort_unstable();
    let mut deleted = PrefixDeleted::default();
    for key in keys {
        let item = Item {
            workspace: range.workspace,
            namespace: range.namespace.clone(),
            key,
        };
        let gone = Logged {
            op: ChangeOp::Delete,
            md5: None,
            expire_at: None,
        };
        deleted.revision = Some(log_change(&tx, workspace, &item, gone).map_err(failed)?);
        deleted.count += 1;
    }
    tx.commit().map_err(failed)?;
    Ok(deleted)
}

/// Deletes up to `limit` expired rows and logs each as an `expire` change,
/// in one transaction; returns where they were.
pub(super) fn sweep_expired(conn: &Connection, limit: usize) -> Result<Vec<Item>, StoreError> {
    let failed = |e| db_error("sweeping expired values", e);
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(failed)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<(String, String, String)> = tx
        .prepare_cached(SWEEP)
        .and_then(|mut stmt| {
            stmt.query_map([limit], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .map_err(failed)?;
    let mut removed = Vec::with_capacity(rows.len());
    for (workspace_text, namespace, key) in rows {
        let workspace = Uuid::parse_str(&workspace_text).map_err(|e| {
            StoreError::Internal(format!(
                "a stored workspace {workspace_text:?} is not a UUID: {e}"
            ))
        })?;
        let item = Item {
            workspace,
            namespace,
            key,
        };
        let expired = Logged {
            op: ChangeOp::Expire,
            md5: None,
            expire_at: None,
        };
        log_change(&tx, &workspace_text, &item, expired).map_err(failed)?;
        removed.push(item);
    }
    tx.commit().map_err(failed)?;
    Ok(removed)
}
