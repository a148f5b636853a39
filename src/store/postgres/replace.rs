//! `Huly-Return: previous` (SPEC §13) on PostgreSQL and CockroachDB: each
//! write and the read of what it replaces are ONE statement.
//!
//! The statement's first CTE, `o`, reads the row `FOR UPDATE`, and the write
//! may go ahead only once `o` has run (`EXISTS (SELECT 1 FROM o)` in its
//! condition), so the row is locked before the write touches it, and what `o`
//! read is what the write replaced: under READ COMMITTED a locked row is read
//! in its newest committed version, which is the version the write then
//! changes. An upsert that finds no row in its snapshot inserts, and `o` is
//! read only afterwards, from that snapshot: empty. If a row appears between
//! the snapshot and the insert (another writer committed it), the upsert's
//! conflict branch finds `o` empty and writes nothing; the statement is then
//! run again, with a snapshot that holds the row, at most [`ATTEMPTS`] times.
//! CockroachDB runs the statement serializably: `o` and the write see one
//! state, and a conflicting writer makes one of the two retry.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::errors::{backoff, db_error};
use super::row::{entry_from_row_at, revision_at};
use super::sql::{
    logged_reading, Flavor, CURRENT_TYPE, EXPIRES, EXPIRY_COLUMNS, LIVE, SET_ALL, WRITE_COLUMNS,
};
use super::{PgStore, PutParams};
use crate::store::txn::{Replace, Replaced};
use crate::store::{DeleteCondition, Entry, ItemRef, NewValue, PutCondition, Store, StoreError};

/// Runs of an upsert that lost the race to a row inserted meanwhile; each
/// rerun waits a little longer (jittered), so writers racing on one key
/// spread out instead of colliding again in step.
const ATTEMPTS: u32 = 16;

/// The statements of writes that return the value they replace.
pub(super) struct ReplaceStatements {
    /// `$1`..`$9` as an upsert's.
    upsert: String,
    /// `$1`..`$9` as an update's; `$10` the digests to match, or NULL for any.
    update: String,
    /// `$1`..`$3` the key; `$4` the digests to match, or NULL for any.
    delete: String,
}

impl ReplaceStatements {
    pub(super) fn new(flavor: Flavor, schema: &str) -> ReplaceStatements {
        let kvs = format!("{schema}.kvs");
        let key = flavor.key_bytewise();
        let pk = format!("workspace = $1 AND namespace = $2 AND {key} = $3");
        // What was stored: the value, its digest and current type, its expiry
        // (two columns), and whether it was live.
        let old = format!(
            "o (value, md5, content_type, expires_at, ttl, key_id, live) AS (SELECT value, md5, \
             {CURRENT_TYPE}, {EXPIRY_COLUMNS}, {LIVE} FROM {kvs} WHERE {pk} FOR UPDATE)"
        );
        let locked = "EXISTS (SELECT 1 FROM o)";
        let upsert = format!(
            "INSERT INTO {kvs} AS t {WRITE_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $4, \
             {EXPIRES}, $9) ON CONFLICT (workspace, namespace, key) DO UPDATE SET {SET_ALL} WHERE {locked} \
             RETURNING workspace, namespace, key, md5, expire_at"
        );
        let update = format!(
            "UPDATE {kvs} SET md5 = $4, value = $5, content_type = $6, content_type_md5 = $4, \
             expire_at = {EXPIRES}, key_id = $9 WHERE {pk} AND {LIVE} AND {locked} \
             AND ($10::BYTEA[] IS NULL OR md5 = ANY($10)) \
             RETURNING workspace, namespace, key, md5, expire_at"
        );
        let delete = format!(
            "DELETE FROM {kvs} WHERE {pk} AND {LIVE} AND {locked} \
             AND ($4::BYTEA[] IS NULL OR md5 = ANY($4)) RETURNING workspace, namespace, key, \
             NULL::BYTEA AS md5, NULL::TIMESTAMPTZ AS expire_at"
        );
        let log = |write: &str, op| logged_reading(schema, key, &old, write, op);
        ReplaceStatements {
            upsert: log(&upsert, "put"),
            update: log(&update, "put"),
            delete: log(&delete, "delete"),
        }
    }
}

impl PgStore {
    /// Runs `write` at `item` in one statement (see the module).
    pub(super) async fn run_replace(
        &self,
        sql: &ReplaceStatements,
        item: ItemRef<'_>,
        write: Replace,
    ) -> Result<Replaced, StoreError> {
        match write {
            Replace::Put(value, cond) => {
                let (statement, tags) = match &cond {
                    PutCondition::Always => (&sql.upsert, None),
                    PutCondition::IfExists => (&sql.update, Some(None)),
                    PutCondition::IfMatch(tags) => (&sql.update, Some(Some(digests(tags)))),
                    // Only an absent (or expired) key is written: nothing
                    // live is ever replaced.
                    PutCondition::IfAbsent => {
                        let outcome = self.put(item, value, cond).await?;
                        return Ok(Replaced::Put(outcome, None));
                    }
                };
                let mut attempt = 1;
                loop {
                    let rows = self.put_returning(statement, item, &value, &tags).await?;
                    let lost_race = rows.is_empty() && cond == PutCondition::Always;
                    if !lost_race || attempt == ATTEMPTS {
                        let (revision, previous) = written(&rows, &item)?;
                        if lost_race {
                            return Err(StoreError::Unavailable(format!(
                                "{}/{}/{} kept changing under {ATTEMPTS} attempts to replace it",
                                item.workspace, item.namespace, item.key
                            )));
                        }
                        return Ok(Replaced::Put(cond.outcome(revision), previous));
                    }
                    let pause = backoff(attempt.min(6), std::time::Duration::from_micros(500));
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
            }
            Replace::Delete(cond) => {
                let tags = match &cond {
                    DeleteCondition::IfMatch(tags) => Some(digests(tags)),
                    DeleteCondition::Always | DeleteCondition::IfExists => None,
                };
                let params: [&(dyn ToSql + Sync); 4] =
                    [&item.workspace, &item.namespace, &item.key, &tags];
                let rows = self.pooled.query(&sql.delete, &params, None).await?;
                let (revision, previous) = written(&rows, &item)?;
                Ok(Replaced::Delete(cond.outcome(revision), previous))
            }
        }
    }

    async fn put_returning(
        &self,
        statement: &str,
        item: ItemRef<'_>,
        value: &NewValue,
        tags: &Option<Option<Vec<&[u8]>>>,
    ) -> Result<Vec<Row>, StoreError> {
        let put = PutParams::new(value);
        let mut params = put.row(&item).to_vec();
        // The update's `$10`: the digests to match, or NULL for any.
        if let Some(tags) = tags {
            params.push(tags);
        }
        self.pooled.query(statement, &params, None).await
    }
}

fn digests(tags: &[crate::store::Digest]) -> Vec<&[u8]> {
    tags.iter().map(|t| &t[..]).collect()
}

/// The revision of the write (`None`: it wrote nothing) and the live value
/// it replaced, from the one row the statement answers.
fn written(rows: &[Row], item: &ItemRef<'_>) -> Result<(Option<u64>, Option<Entry>), StoreError> {
    let Some(row) = rows.first() else {
        return Ok((None, None));
    };
    let revision = revision_at(row, 3)?;
    let live: Option<bool> = row.try_get(10).map_err(|e| db_error(&e))?;
    let previous = match live {
        Some(true) => Some(entry_from_row_at(row, 4, item)?),
        _ => None,
    };
    Ok((Some(revision), previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_modifies_the_table_once_and_reads_the_row_locked_first() {
        for flavor in [Flavor::Postgres, Flavor::Cockroach] {
            let r = ReplaceStatements::new(flavor, "\"s\"");
            for sql in [&r.upsert, &r.update, &r.delete] {
                let writes = [
                    "INSERT INTO \"s\".kvs ",
                    "DELETE FROM \"s\".kvs ",
                    "UPDATE \"s\".kvs ",
                ]
                .iter()
                .map(|w| sql.matches(w).count())
                .sum::<usize>();
                assert_eq!(writes, 1, "{sql}");
                assert!(sql.starts_with("WITH o (value"), "{sql}");
                assert!(
                    sql.contains("FOR UPDATE)") && sql.contains("EXISTS (SELECT 1 FROM o)"),
                    "{sql}"
                );
            }
        }
    }
}
