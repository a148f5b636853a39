//! The SQL of the embedded store and the functions that run it on a
//! connection: one statement per write, so each conditional write is one
//! atomic step inside the writer's transaction.

use std::collections::HashSet;

use bytes::Bytes;
use rusqlite::types::ToSql;
use rusqlite::{params, Connection};
use uuid::Uuid;

use super::changes::{log_change, Logged};
use super::connection::db_error;
use crate::store::changes::ChangeOp;
use crate::store::expiry::Expires;
use crate::store::{
    prefix_upper_bound, DeleteCondition, DeleteOutcome, Digest, Entry, Item, KeyId, ListQuery,
    Listed, NewValue, PutCondition, PutOutcome, StoreError,
};

/// Longest an IF-MATCH list may be and still get a cached statement; longer
/// lists are rare enough to prepare each time.
const CACHED_MATCH_LIST: usize = 8;

/// The database's clock in unix milliseconds, fixed for one statement.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}
pub(super) use now_ms;

/// A row is there for readers and conditions until its expiry instant.
macro_rules! live {
    () => {
        concat!("(expire_at IS NULL OR expire_at > ", now_ms!(), ")")
    };
}
pub(super) use live;

/// The expiry a write stores: `?7` seconds from now (`Huly-TTL`), the unix
/// second `?8` (`Huly-Expire-At`), or none; in unix milliseconds.
macro_rules! expires {
    () => {
        concat!(
            "CASE WHEN ?7 IS NOT NULL THEN ",
            now_ms!(),
            " + ?7 * 1000 WHEN ?8 IS NOT NULL THEN ?8 * 1000 END"
        )
    };
}

macro_rules! insert {
    () => {
        concat!(
            "INSERT INTO kvs (workspace, namespace, key, md5, value, content_type, expire_at, \
             key_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ",
            expires!(),
            ", ?9) ON CONFLICT (workspace, namespace, key) DO UPDATE \
             SET md5 = excluded.md5, value = excluded.value, content_type = excluded.content_type, \
             expire_at = excluded.expire_at, key_id = excluded.key_id"
        )
    };
}

/// The value, digest and type, the first whole unix second the value is
/// gone and the whole seconds left, the key that sealed the value.
const SELECT_ENTRY: &str = concat!(
    "SELECT value, md5, content_type, (expire_at + 999) / 1000, (expire_at - ",
    now_ms!(),
    " + 999) / 1000, key_id FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key = ?3 AND ",
    live!()
);

/// What a write returns of the row it wrote: its expiry, for the change log.
macro_rules! written {
    () => {
        " RETURNING expire_at"
    };
}

const UPSERT: &str = concat!(insert!(), written!());

/// An expired row is absent: If-None-Match: * replaces it.
const INSERT_IF_ABSENT: &str = concat!(
    insert!(),
    " WHERE kvs.expire_at IS NOT NULL AND kvs.expire_at <= ",
    now_ms!(),
    written!()
);

/// An update of a live row; `If-Match` adds its digests after it.
macro_rules! update {
    () => {
        concat!(
            "UPDATE kvs SET md5 = ?4, value = ?5, content_type = ?6, key_id = ?9, expire_at = ",
            expires!(),
            " WHERE workspace = ?1 AND namespace = ?2 AND key = ?3 AND ",
            live!()
        )
    };
}

const UPDATE: &str = concat!(update!(), written!());

const DELETE: &str = concat!(
    "DELETE FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key = ?3 AND ",
    live!()
);

// One statement per bound shape, so SQLite can use both ends of the primary
// key range; `(?5 IS NULL OR key < ?5)` would scan to the end of the namespace.
const LIST_FROM: &str = concat!(
    "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key >= ?3 AND ",
    live!(),
    " ORDER BY key LIMIT ?4"
);
const LIST_FROM_UNTIL: &str = concat!(
    "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key >= ?3 AND key < ?5 AND ",
    live!(),
    " ORDER BY key LIMIT ?4"
);
const LIST_AFTER: &str = concat!(
    "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key > ?3 AND ",
    live!(),
    " ORDER BY key LIMIT ?4"
);
const LIST_AFTER_UNTIL: &str = concat!(
    "SELECT key FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key > ?3 AND key < ?5 AND ",
    live!(),
    " ORDER BY key LIMIT ?4"
);

/// A [`ListQuery`], owned so it can cross to another thread.
pub(super) struct KeyRange {
    workspace: Uuid,
    namespace: String,
    prefix: String,
    after: Option<String>,
    limit: usize,
}

impl From<ListQuery<'_>> for KeyRange {
    fn from(query: ListQuery<'_>) -> Self {
        KeyRange {
            workspace: query.workspace,
            namespace: query.namespace.to_owned(),
            prefix: query.prefix.to_owned(),
            after: query.after.map(str::to_owned),
            limit: query.limit,
        }
    }
}

/// The workspace as the table stores it: hyphenated, lowercase.
fn workspace_text<'b>(workspace: &Uuid, buf: &'b mut [u8; 45]) -> &'b str {
    workspace.hyphenated().encode_lower(buf)
}

/// Runs the one statement of a PUT under `cond` and logs its change.
pub(super) fn put_row(
    conn: &Connection,
    item: &Item,
    value: &NewValue,
    cond: &PutCondition,
) -> rusqlite::Result<PutOutcome> {
    if cond.never_holds() {
        return Ok(PutOutcome::PreconditionFailed);
    }
    let mut buf = Uuid::encode_buffer();
    let workspace = workspace_text(&item.workspace, &mut buf);
    let (md5, bytes): (&[u8], &[u8]) = (&value.md5, &value.value);
    let (ttl, at) = value.expiry.params();
    let key_id = value.sealed_by.as_deref();
    let row: [&dyn ToSql; 9] = [
        &workspace,
        &item.namespace,
        &item.key,
        &md5,
        &bytes,
        &value.content_type,
        &ttl,
        &at,
        &key_id,
    ];
    let written = match cond {
        PutCondition::Always => returning(&mut *conn.prepare_cached(UPSERT)?, &row[..])?,
        PutCondition::IfAbsent => {
            returning(&mut *conn.prepare_cached(INSERT_IF_ABSENT)?, &row[..])?
        }
        PutCondition::IfExists => returning(&mut *conn.prepare_cached(UPDATE)?, &row[..])?,
        PutCondition::IfMatch(tags) => {
            let tags = distinct(tags);
            let sql = format!(
                "{} AND md5 IN ({}){}",
                update!(),
                placeholders(10, tags.len()),
                written!()
            );
            let mut bind: Vec<&dyn ToSql> = row.to_vec();
            bind.extend(tags.iter().map(|t| t as &dyn ToSql));
            if tags.len() <= CACHED_MATCH_LIST {
                returning(&mut *conn.prepare_cached(&sql)?, &bind)?
            } else {
                returning(&mut conn.prepare(&sql)?, &bind)?
            }
        }
    };
    let revision = match written {
        None => None,
        Some(expire_at) => {
            let logged = Logged {
                op: ChangeOp::Put,
                md5: Some(&value.md5),
                expire_at,
            };
            Some(log_change(conn, workspace, item, logged)?)
        }
    };
    Ok(cond.outcome(revision))
}

/// Runs a write that returns the expiry of the row it wrote: `Some(expiry)`
/// when it wrote one.
fn returning(
    stmt: &mut rusqlite::Statement<'_>,
    bind: &[&dyn ToSql],
) -> rusqlite::Result<Option<Option<i64>>> {
    let mut rows = stmt.query(bind)?;
    let expiry = match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    };
    Ok(expiry)
}

/// Runs the one statement of a DELETE under `cond` and logs its change.
pub(super) fn delete_row(
    conn: &Connection,
    item: &Item,
    cond: &DeleteCondition,
) -> rusqlite::Result<DeleteOutcome> {
    if cond.never_holds() {
        return Ok(DeleteOutcome::PreconditionFailed);
    }
    let mut buf = Uuid::encode_buffer();
    let workspace = workspace_text(&item.workspace, &mut buf);
    let key: [&dyn ToSql; 3] = [&workspace, &item.namespace, &item.key];
    let changed = match cond {
        DeleteCondition::Always | DeleteCondition::IfExists => {
            conn.prepare_cached(DELETE)?.execute(&key[..])?
        }
        DeleteCondition::IfMatch(tags) => {
            let tags = distinct(tags);
            let sql = format!("{DELETE} AND md5 IN ({})", placeholders(4, tags.len()));
            let mut bind: Vec<&dyn ToSql> = key.to_vec();
            bind.extend(tags.iter().map(|t| t as &dyn ToSql));
            execute(conn, &sql, tags.len(), &bind)?
        }
    };
    let revision = match changed {
        0 => None,
        _ => {
            let logged = Logged {
                op: ChangeOp::Delete,
                md5: None,
                expire_at: None,
            };
            Some(log_change(conn, workspace, item, logged)?)
        }
    };
    Ok(cond.outcome(revision))
}

/// Runs an IF-MATCH statement, caching it only for the short lists seen in practice.
fn execute(
    conn: &Connection,
    sql: &str,
    tags: usize,
    bind: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    if tags <= CACHED_MATCH_LIST {
        conn.prepare_cached(sql)?.execute(bind)
    } else {
        conn.prepare(sql)?.execute(bind)
    }
}

/// The digests of an IF-MATCH list without repeats, as SQL blobs.
fn distinct(tags: &[Digest]) -> Vec<&[u8]> {
    let mut seen = HashSet::with_capacity(tags.len());
    tags.iter()
        .filter(|t| seen.insert(*t))
        .map(|t| &t[..])
        .collect()
}

/// `?first, ?first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The entry stored at `item`, or `None`.
pub(super) fn select_entry(conn: &Connection, item: &Item) -> Result<Option<Entry>, StoreError> {
    let failed = |e| db_error(format_args!("get {item}"), e);
    let mut buf = Uuid::encode_buffer();
    let workspace = workspace_text(&item.workspace, &mut buf);
    let mut stmt = conn.prepare_cached(SELECT_ENTRY).map_err(failed)?;
    let mut rows = stmt
        .query(params![workspace, item.namespace, item.key])
        .map_err(failed)?;
    let Some(row) = rows.next().map_err(failed)? else {
        return Ok(None);
    };
    // Borrowed straight from SQLite's row buffer: one copy of the value, into
    // the `Bytes` the response sends, and none of the digest.
    let value = row
        .get_ref(0)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(failed)?;
    let md5 = row
        .get_ref(1)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(failed)?;
    let md5 = Digest::try_from(md5).map_err(|_| {
        StoreError::Internal(format!(
            "get {item}: the stored md5 is {} bytes, not 16",
            md5.len()
        ))
    })?;
    Ok(Some(Entry {
        value: Bytes::copy_from_slice(value),
        md5,
        content_type: row.get(2).map_err(failed)?,
        expires: Expires::from_columns(row.get(3).map_err(failed)?, row.get(4).map_err(failed)?),
        sealed_by: key_id(row, 5).map_err(failed)?,
    }))
}

/// The id of the key that sealed a row's value, from column `at`.
fn key_id(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<KeyId>> {
    Ok(row.get_ref(at)?.as_str_or_null()?.map(KeyId::from))
}

/// The keys of one page of a listing, in byte order.
pub(super) fn select_keys(conn: &Connection, query: &KeyRange) -> Result<Vec<String>, StoreError> {
    // `key > after` implies `key >= prefix` once `after` is not below the prefix;
    // one lower bound lets SQLite seek straight to the first key.
    let (after, lower) = match &query.after {
        Some(after) if after.as_str() >= query.prefix.as_str() => (true, after),
        _ => (false, &query.prefix),
    };
    let upper = prefix_upper_bound(&query.prefix);
    let sql = match (after, upper.is_some()) {
        (false, false) => LIST_FROM,
        (false, true) => LIST_FROM_UNTIL,
        (true, false) => LIST_AFTER,
        (true, true) => LIST_AFTER_UNTIL,
    };
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let mut buf = Uuid::encode_buffer();
    let workspace = workspace_text(&query.workspace, &mut buf);
    let mut bind: Vec<&dyn ToSql> = vec![&workspace, &query.namespace, lower, &limit];
    if let Some(upper) = &upper {
        bind.push(upper);
    }
    let failed = |e| {
        db_error(
            format_args!(
                "list {}/{} prefix {:?}",
                query.workspace, query.namespace, query.prefix
            ),
            e,
        )
    };
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    let keys = stmt
        .query_map(&bind[..], |row| row.get::<_, String>(0))
        .map_err(failed)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(failed)?;
    Ok(keys)
}

/// A page of live values from `?3`, at most `?4`; `_UNTIL` below `?5`.
macro_rules! values_from {
    ($until:literal) => {
        concat!(
            "SELECT key, value, md5, content_type, (expire_at + 999) / 1000, (expire_at - ",
            now_ms!(),
            " + 999) / 1000, key_id FROM kvs WHERE workspace = ?1 AND namespace = ?2 AND key >= ?3",
            $until,
            " AND ",
            live!(),
            " ORDER BY key LIMIT ?4"
        )
    };
}
const VALUES_FROM: &str = values_from!("");
const VALUES_FROM_UNTIL: &str = values_from!(" AND key < ?5");

/// Up to `query.limit` live values of a listing, ending with the first that
/// brings their bytes to `budget`: rows are read one by one, so nothing past
/// it is read.
pub(super) fn select_values(
    conn: &Connection,
    query: &KeyRange,
    budget: usize,
) -> Result<Vec<Listed>, StoreError> {
    let lower = ListQuery {
        workspace: query.workspace,
        namespace: &query.namespace,
        prefix: &query.prefix,
        after: query.after.as_deref(),
        limit: query.limit,
    }
    .lower_bound()
    .into_owned();
    let upper = prefix_upper_bound(&query.prefix);
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let mut buf = Uuid::encode_buffer();
    let workspace = workspace_text(&query.workspace, &mut buf);
    let mut bind: Vec<&dyn ToSql> = vec![&workspace, &query.namespace, &lower, &limit];
    if let Some(upper) = &upper {
        bind.push(upper);
    }
    let failed = |e| {
        db_error(
            format_args!("list values of {}/{}", query.workspace, query.namespace),
            e,
        )
    };
    let sql = match upper {
        Some(_) => VALUES_FROM_UNTIL,
        None => VALUES_FROM,
    };
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    let mut rows = stmt.query(&bind[..]).map_err(failed)?;
    let (mut page, mut bytes) = (Vec::new(), 0usize);
    while bytes < budget {
        let Some(row) = rows.next().map_err(failed)? else {
            break;
        };
        let key: String = row.get(0).map_err(failed)?;
        let value = row
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(failed)?;
        let md5 = row
            .get_ref(2)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(failed)?;
        let md5 = Digest::try_from(md5).unwrap_or_else(|_| md5::compute(value).0);
        bytes = bytes.saturating_add(value.len());
        page.push(Listed {
            entry: Entry {
                value: Bytes::copy_from_slice(value),
                md5,
                content_type: row.get(3).map_err(failed)?,
                expires: Expires::from_columns(
                    row.get(4).map_err(failed)?,
                    row.get(5).map_err(failed)?,
                ),
                sealed_by: key_id(row, 6).map_err(failed)?,
            },
            key,
        });
    }
    Ok(page)
}
