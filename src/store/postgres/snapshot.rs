//! Dump and restore on PostgreSQL and CockroachDB (see
//! [`crate::store::snapshot`]).
//!
//! A snapshot is one `REPEATABLE READ, READ ONLY` transaction (CockroachDB
//! runs it serializably, a snapshot too) read in keyset pages on the primary
//! key, each page cut by count first and then by a running sum of stored
//! lengths, as listings with values are: every page sees the state of the
//! transaction's start, `now()` included, so expiry is judged at one instant.
//! A restore batch is one logged multi-row statement.

use tokio_postgres::types::ToSql;
use tokio_postgres::IsolationLevel;

use super::errors::db_error;
use super::reseal::stored_row;
use super::sql::{logged, Flavor, UpsertRows, CURRENT_TYPE, LIVE, SET_ALL, WRITE_COLUMNS, WRITTEN};
use super::PgStore;
use crate::store::snapshot::{PageSink, Restored, SnapshotFilter, PAGE_BYTES, PAGE_ROWS};
use crate::store::{Item, StoreError};

/// The statements of dump and restore.
pub(super) struct SnapshotStatements {
    /// `$1` workspaces or NULL, `$2` namespaces or NULL, `$3` rows, `$4` bytes.
    first: String,
    /// As `first`, after the row `$5`/`$6`/`$7`.
    after: String,
    /// `$1`..`$9` arrays, as a batched upsert takes them; logged.
    upsert: String,
    /// As `upsert`, writing only where no live value is stored.
    insert: String,
}

impl SnapshotStatements {
    pub(super) fn new(flavor: Flavor, schema: &str) -> SnapshotStatements {
        let kvs = format!("{schema}.kvs");
        let key = flavor.key_bytewise();
        let page = |after: &str| {
            format!(
                "SELECT workspace, namespace, key, value, md5, key_id, {CURRENT_TYPE}, expire_at \
                 FROM (SELECT *, sum(octet_length(value)) OVER (ORDER BY workspace, namespace, key \
                 ROWS UNBOUNDED PRECEDING)::INT8 - octet_length(value) AS before FROM \
                 (SELECT workspace, namespace, key, value, md5, key_id, content_type, \
                 content_type_md5, expire_at FROM {kvs} WHERE {LIVE}{after} \
                 AND ($1::UUID[] IS NULL OR workspace = ANY($1)) \
                 AND ($2::TEXT[] IS NULL OR namespace = ANY($2)) \
                 ORDER BY workspace, namespace, key LIMIT $3::INT8) AS chunk) AS page \
                 WHERE before < $4::INT8 ORDER BY workspace, namespace, key"
            )
        };
        let rows = "SELECT w, n, k, m, v, t, m, CASE WHEN s IS NOT NULL \
             THEN now() + s * INTERVAL '1 second' WHEN a IS NOT NULL THEN to_timestamp(a) END, id \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], \
             $6::text[], $7::int8[], $8::int8[], $9::text[]) AS u(w, n, k, m, v, t, s, a, id)";
        let insert = |on_conflict: &str| {
            format!(
                "INSERT INTO {kvs} AS t {WRITE_COLUMNS} {rows} \
                 ON CONFLICT (workspace, namespace, key) DO UPDATE SET {SET_ALL}{on_conflict} \
                 {WRITTEN}"
            )
        };
        SnapshotStatements {
            first: page(""),
            after: page(" AND (workspace, namespace, key) > ($5, $6, $7)"),
            upsert: logged(schema, key, &insert(""), "put"),
            // An expired row is absent, as for If-None-Match: *.
            insert: logged(
                schema,
                key,
                &insert(" WHERE t.expire_at IS NOT NULL AND t.expire_at <= now()"),
                "put",
            ),
        }
    }
}

impl PgStore {
    pub(super) async fn read_snapshot(
        &self,
        sql: &SnapshotStatements,
        filter: &SnapshotFilter,
        sink: PageSink,
    ) -> Result<(), StoreError> {
        let mut client = self.pooled.checkout(None).await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| db_error(&e))?;
        let workspaces = (!filter.workspaces.is_empty()).then_some(&filter.workspaces);
        let namespaces = (!filter.namespaces.is_empty()).then_some(&filter.namespaces);
        let rows = i64::try_from(PAGE_ROWS).unwrap_or(i64::MAX);
        let bytes = i64::try_from(PAGE_BYTES).unwrap_or(i64::MAX);
        let first = tx.prepare(&sql.first).await.map_err(|e| db_error(&e))?;
        let after = tx.prepare(&sql.after).await.map_err(|e| db_error(&e))?;
        let mut last: Option<Item> = None;
        loop {
            let mut params: Vec<&(dyn ToSql + Sync)> =
                vec![&workspaces, &namespaces, &rows, &bytes];
            let page = match &last {
                None => self.pooled.bounded(|| tx.query(&first, &params)).await,
                Some(at) => {
                    params.extend([&at.workspace as &(dyn ToSql + Sync), &at.namespace, &at.key]);
                    self.pooled.bounded(|| tx.query(&after, &params)).await
                }
            };
            let page = page
                .map_err(|_| StoreError::Unavailable("a page of the snapshot timed out".into()))?
                .map_err(|e| db_error(&e))?;
            let page = page.iter().map(stored_row).collect::<Result<Vec<_>, _>>()?;
            let Some(end) = page.last() else {
                break;
            };
            last = Some(end.item.clone());
            if sink.send(page).await.is_err() {
                break;
            }
        }
        tx.commit().await.map_err(|e| db_error(&e))
    }

    pub(super) async fn write_restored(
        &self,
        sql: &SnapshotStatements,
        rows: &[Restored],
        skip_existing: bool,
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut arrays = UpsertRows::with_capacity(rows.len());
        for r in rows {
            arrays.push(r.item.workspace, &r.item.namespace, &r.item.key, &r.value);
        }
        let statement = if skip_existing {
            &sql.insert
        } else {
            &sql.upsert
        };
        let written = self.pooled.query(statement, &arrays.params(), None).await?;
        Ok(written.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_modifies_the_table_once_and_pages_follow_the_primary_key() {
        for flavor in [Flavor::Postgres, Flavor::Cockroach] {
            let s = SnapshotStatements::new(flavor, "\"s\"");
            for sql in [&s.upsert, &s.insert] {
                assert_eq!(sql.matches("INSERT INTO \"s\".kvs ").count(), 1, "{sql}");
            }
            assert!(s
                .insert
                .contains("WHERE t.expire_at IS NOT NULL AND t.expire_at <= now()"));
            assert!(s
                .after
                .contains("(workspace, namespace, key) > ($5, $6, $7)"));
            assert!(s
                .first
                .contains("ORDER BY workspace, namespace, key LIMIT $3::INT8"));
        }
    }
}
