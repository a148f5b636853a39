//! Encryption at rest on PostgreSQL and CockroachDB: the key ids in use,
//! and the rows `hulykvs reencrypt` walks and rewrites (see
//! [`crate::store::reseal`]).
//!
//! Each rewrite is one logged `UPDATE` whose condition is the version of
//! the row that was read (digest, key id, content type, expiry): a write
//! that came between changes the digest (or, for the same value, the type
//! or expiry) and the rewrite matches nothing. Two rows hold the same digest
//! under the same key id only if they hold the same plaintext, so the one
//! write the condition cannot see stores exactly what the rewrite would
//! keep. Both engines run it as written: a row comparison, `IS NOT DISTINCT
//! FROM` and a recursive CTE are in both dialects.

use std::time::SystemTime;

use bytes::Bytes;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::errors::db_error;
use super::sql::{logged, Flavor};
use super::PgStore;
use crate::store::stored::{Reseal, StoredRow};
use crate::store::{Item, KeyId, StoreError};

/// The statements of encryption at rest.
pub(super) struct ResealStatements {
    /// The distinct key ids of sealed rows, walking the partial index
    /// `kvs_key_id` one id at a time (a loose index scan) rather than
    /// reading every sealed row.
    key_ids: String,
    /// `$1` the key id to skip (NULL: skip plaintext), `$2` the limit: the
    /// first rows to rewrite, in primary key order.
    first: String,
    /// As `first`, after the row `$3`/`$4`/`$5`.
    after: String,
    /// Rewrites `$1`..`$3` to `$4` (value), `$5` (digest), `$6` (key id)
    /// while it holds digest `$7`, key id `$8`, type `$9`, expiry `$10`;
    /// logged as a `put`.
    rewrite: String,
}

impl ResealStatements {
    pub(super) fn new(flavor: Flavor, schema: &str) -> ResealStatements {
        let kvs = format!("{schema}.kvs");
        let key = flavor.key_bytewise();
        let columns = "workspace, namespace, key, value, md5, key_id, content_type, expire_at";
        let order = "ORDER BY workspace, namespace, key LIMIT $2";
        let todo = "key_id IS DISTINCT FROM $1::TEXT";
        let rewrite = format!(
            "UPDATE {kvs} SET value = $4, md5 = $5, key_id = $6, content_type_md5 = \
             CASE WHEN content_type_md5 = md5 THEN $5 ELSE content_type_md5 END \
             WHERE workspace = $1 AND namespace = $2 AND {key} = $3 AND md5 = $7 \
             AND key_id IS NOT DISTINCT FROM $8::TEXT \
             AND content_type IS NOT DISTINCT FROM $9::TEXT \
             AND expire_at IS NOT DISTINCT FROM $10::TIMESTAMPTZ \
             RETURNING workspace, namespace, key, md5, expire_at"
        );
        ResealStatements {
            key_ids: format!(
                "WITH RECURSIVE ids (id) AS (\
                 SELECT min(key_id) FROM {kvs} WHERE key_id IS NOT NULL \
                 UNION ALL SELECT (SELECT min(key_id) FROM {kvs} WHERE key_id > ids.id) \
                 FROM ids WHERE ids.id IS NOT NULL) \
                 SELECT id FROM ids WHERE id IS NOT NULL"
            ),
            first: format!("SELECT {columns} FROM {kvs} WHERE {todo} {order}"),
            after: format!(
                "SELECT {columns} FROM {kvs} WHERE (workspace, namespace, key) > ($3, $4, $5) \
                 AND {todo} {order}"
            ),
            rewrite: logged(schema, key, &rewrite, "put"),
        }
    }
}

impl PgStore {
    pub(super) async fn select_key_ids(
        &self,
        sql: &ResealStatements,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self.pooled.query(&sql.key_ids, &[], None).await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(|e| db_error(&e)))
            .collect()
    }

    pub(super) async fn select_rows_to_reseal(
        &self,
        sql: &ResealStatements,
        after: Option<&Item>,
        keep: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match after {
            None => {
                self.pooled
                    .query(&sql.first, &[&keep, &limit], None)
                    .await?
            }
            Some(at) => {
                let params: [&(dyn ToSql + Sync); 5] =
                    [&keep, &limit, &at.workspace, &at.namespace, &at.key];
                self.pooled.query(&sql.after, &params, None).await?
            }
        };
        rows.iter().map(stored_row).collect()
    }

    /// One statement a row, each its own transaction: a batch that fails
    /// half way has rewritten what it answered for, and the next pass skips it.
    pub(super) async fn rewrite_rows(
        &self,
        sql: &ResealStatements,
        batch: &[Reseal],
    ) -> Result<u64, StoreError> {
        let mut rewritten = 0;
        for reseal in batch {
            let row = &reseal.row;
            let (value, md5): (&[u8], &[u8]) = (&reseal.value, &reseal.md5);
            let key_id = reseal.sealed_by.as_deref();
            let old_key_id = row.sealed_by.as_deref();
            let params: [&(dyn ToSql + Sync); 10] = [
                &row.item.workspace,
                &row.item.namespace,
                &row.item.key,
                &value,
                &md5,
                &key_id,
                &row.md5,
                &old_key_id,
                &row.content_type,
                &row.expire_at,
            ];
            let changed = self.pooled.query(&sql.rewrite, &params, None).await?;
            rewritten += changed.len() as u64;
        }
        Ok(rewritten)
    }
}

/// A row of the `first`/`after` statements (and of a snapshot's pages):
/// workspace, namespace, key, value, md5, key_id, content type, expiry.
pub(super) fn stored_row(row: &Row) -> Result<StoredRow, StoreError> {
    let failed = |e: tokio_postgres::Error| db_error(&e);
    let value: &[u8] = row.try_get(3).map_err(failed)?;
    let sealed_by: Option<&str> = row.try_get(5).map_err(failed)?;
    let expire_at: Option<SystemTime> = row.try_get(7).map_err(failed)?;
    Ok(StoredRow {
        item: Item {
            workspace: row.try_get(0).map_err(failed)?,
            namespace: row.try_get(1).map_err(failed)?,
            key: row.try_get(2).map_err(failed)?,
        },
        value: Bytes::copy_from_slice(value),
        md5: row.try_get(4).map_err(failed)?,
        sealed_by: sealed_by.map(KeyId::from),
        content_type: row.try_get(6).map_err(failed)?,
        expire_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_modifies_the_table_once_and_holds_the_version_read() {
        for flavor in [Flavor::Postgres, Flavor::Cockroach] {
            let r = ResealStatements::new(flavor, "\"s\"");
            assert_eq!(r.rewrite.matches("UPDATE \"s\".kvs ").count(), 1);
            for column in [
                "md5 = $7",
                "key_id IS NOT DISTINCT FROM $8",
                "$10::TIMESTAMPTZ",
            ] {
                assert!(r.rewrite.contains(column), "{column}: {}", r.rewrite);
            }
            assert!(r
                .after
                .contains("(workspace, namespace, key) > ($3, $4, $5)"));
        }
    }
}
