//! Transactions (SPEC §13) on PostgreSQL and CockroachDB: one database
//! transaction of three statements, and one more to commit.
//!
//! 1. **Lock.** Every key the transaction names is locked in [`Txn::keys`]
//!    order by one `INSERT … ON CONFLICT DO UPDATE … WHERE false`: a stored
//!    row is locked and left as it is (PostgreSQL locks every conflicting
//!    row of such an insert, updated or not), and an absent key gets a
//!    *placeholder*, a row that expired at the epoch, which nobody else sees
//!    before this transaction ends, and which makes a concurrent insert of
//!    that key wait for it. So conditions on absent keys are as stable as on
//!    stored ones, and two transactions meet their keys in one order and
//!    cannot deadlock. Batched upserts and delete by prefix lock in key
//!    order too.
//! 2. **Read** the live rows at the keys (a placeholder is expired, so it
//!    reads as absent) and judge every condition ([`Txn::plan`]); if one
//!    fails, roll back: the placeholders vanish with it.
//! 3. **Write** in one statement: the puts, the deletes, the removal of the
//!    placeholders nothing was put at, and the revisions and changes of the
//!    writes (as `sql::logged` does for single writes: counters bumped after
//!    every value row, in namespace order).
//!
//! CockroachDB runs every transaction serializably; a transaction it aborts
//! with 40001 is run again from the start, at most [`ATTEMPTS`] times, as is
//! one PostgreSQL picks as a deadlock victim (40P01), which the lock order
//! rules out between transactions but which a client-held lock could cause.

use std::collections::{HashMap, HashSet};

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::errors::backoff;
use super::sql::{
    array_params, logged, upsert_many, Flavor, UpsertRows, CURRENT_TYPE, EXPIRY_COLUMNS, LIVE,
    REMOVED, UPSERT_ARRAYS,
};
use super::PgStore;
use crate::store::changes::Revision;
use crate::store::expiry::Expires;
use crate::store::txn::{OpKind, Plan, Txn, TxnOutcome};
use crate::store::{Digest, Entry, StoreError};

/// Attempts of a transaction that the database aborted to serialize it.
pub(super) const ATTEMPTS: u32 = 8;

/// When a placeholder expired: before any real expiry, which is never in the past.
const PLACEHOLDER: &str = "TIMESTAMPTZ '1970-01-01 00:00:00+00'";

/// The statements of a transaction, built with the others once migrations
/// are applied.
pub(super) struct TxnStatements {
    /// `$1` workspace, `$2`/`$3` namespaces and keys in lock order; answers
    /// the placeholders it inserted.
    lock: String,
    /// `$1` workspace, `$2`/`$3` namespaces and keys, `$4` whether to read
    /// the value, `$5` the most bytes of values to answer; answers the
    /// 1-based position of each live row, and whether its value was withheld.
    read: String,
    /// `$1` workspace, `$2` the namespaces written: their revision counters
    /// locked in the order every logged write takes them.
    counters: String,
    /// `$1` workspace, `$2`/`$3` namespaces and keys of placeholders to remove.
    clear: String,
    /// `$1`..`$9` the puts' arrays, as a batched upsert takes them; logged.
    puts: String,
    /// `$1` workspace, `$2`/`$3` namespaces and keys to delete; logged.
    deletes: String,
}

impl TxnStatements {
    pub(super) fn new(flavor: Flavor, schema: &str) -> TxnStatements {
        let kvs = format!("{schema}.kvs");
        let key = flavor.key_bytewise();
        let columns =
            "(workspace, namespace, key, md5, value, content_type, content_type_md5, expire_at)";
        let lock = format!(
            "INSERT INTO {kvs} AS t {columns} SELECT $1::UUID, n, k, \
             decode('00000000000000000000000000000000', 'hex'), ''::BYTEA, NULL, NULL, \
             {PLACEHOLDER} FROM unnest($2::TEXT[], $3::TEXT[]) WITH ORDINALITY AS u(n, k, i) \
             ORDER BY i ON CONFLICT (workspace, namespace, key) \
             DO UPDATE SET expire_at = t.expire_at WHERE false RETURNING namespace, key"
        );
        // A value is answered only while the values before it (in the
        // order asked) and it stay within `$5` bytes; a digest that is not
        // 16 bytes needs the value to be computed again.
        let read = format!(
            "SELECT i, CASE WHEN needed AND (NOT want OR total <= $5::INT8) THEN value END, \
             want AND total > $5::INT8, md5, content_type, expires_at, ttl, key_id FROM \
             (SELECT q.i, q.want, q.want OR octet_length(r.md5) <> 16 AS needed, r.value, r.md5, \
             r.content_type, r.expires_at, r.ttl, r.key_id, sum(CASE WHEN q.want THEN octet_length(r.value) \
             ELSE 0 END) OVER (ORDER BY q.i ROWS UNBOUNDED PRECEDING)::INT8 AS total \
             FROM unnest($2::TEXT[], $3::TEXT[], $4::BOOL[]) WITH ORDINALITY AS q(n, k, want, i) \
             CROSS JOIN LATERAL (SELECT value, md5, {CURRENT_TYPE}, {EXPIRY_COLUMNS} FROM {kvs} \
             WHERE workspace = $1::UUID AND namespace = q.n AND {key} = q.k AND {LIVE} LIMIT 1) \
             AS r(value, md5, content_type, expires_at, ttl, key_id)) AS s"
        );
        let counters = format!(
            "INSERT INTO {schema}.kvs_revision AS v (workspace, namespace, revision) \
             SELECT $1::UUID, n, 0 FROM unnest($2::TEXT[]) AS u(n) ORDER BY n \
             ON CONFLICT (workspace, namespace) DO UPDATE SET revision = v.revision WHERE false"
        );
        let at = |table: &str| {
            format!(
                "USING unnest($2::TEXT[], $3::TEXT[]) AS u(n, k) WHERE {table}.workspace = $1::UUID \
                 AND {table}.namespace = u.n AND {table}.{key} = u.k"
            )
        };
        let clear = format!(
            "DELETE FROM {kvs} AS x {} AND x.expire_at = {PLACEHOLDER}",
            at("x")
        );
        let deletes = format!("DELETE FROM {kvs} AS d {} {REMOVED}", at("d"));
        let log = |write: &str, op: &str| logged(schema, key, write, op);
        // Both engines run it, so its arrays are unnested plainly (see
        // `batched` for why a batch lane's are not).
        let unnest = format!("unnest({})", array_params(&UPSERT_ARRAYS));
        TxnStatements {
            lock,
            read,
            counters,
            clear,
            // Rows are locked already, so their order no longer matters here:
            // the batched upsert does.
            puts: log(&upsert_many(&kvs, &unnest), "put"),
            deletes: log(&deletes, "delete"),
        }
    }
}

/// The live rows read at a transaction's keys, by address.
type Stored = HashMap<(String, String), Entry>;

impl PgStore {
    /// Runs `txn` as the module says.
    pub(super) async fn run_txn(
        &self,
        statements: &TxnStatements,
        txn: &Txn,
    ) -> Result<TxnOutcome, StoreError> {
        let keys = txn.keys();
        let namespaces: Vec<&str> = keys.iter().map(|at| at.0).collect();
        let names: Vec<&str> = keys.iter().map(|at| at.1).collect();
        let want: Vec<bool> = keys.iter().map(|&at| txn.reads_value(at)).collect();
        let addresses = Addresses {
            workspace: txn.workspace,
            namespaces: &namespaces,
            keys: &names,
            want: &want,
        };
        let mut client = self.pooled.checkout(None).await?;
        let connection = &mut client;
        let addresses = &addresses;
        let work = move || async move {
            let mut tries = 1;
            loop {
                match attempt(connection, statements, txn, addresses).await {
                    Err(e) if tries < ATTEMPTS && retried(&e) => {
                        tracing::debug!(attempt = tries, error = %e, "transaction aborted, running it again");
                        tokio::time::sleep(backoff(tries, std::time::Duration::from_millis(5)))
                            .await;
                        tries += 1;
                    }
                    outcome => return outcome,
                }
            }
        };
        let outcome = self.pooled.bounded(work).await;
        self.pooled.settle(client, outcome)?
    }
}

/// The keys of a transaction as statement parameters, in lock order.
struct Addresses<'a> {
    workspace: Uuid,
    namespaces: &'a [&'a str],
    keys: &'a [&'a str],
    want: &'a [bool],
}

/// Serialization failures (CockroachDB) and deadlock victims: the
/// transaction did not commit, so running it again is safe.
fn retried(e: &tokio_postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("40001" | "40P01"))
}

/// One run of a transaction; the outer `Result` is the database's.
async fn attempt(
    client: &mut deadpool_postgres::Client,
    sql: &TxnStatements,
    txn: &Txn,
    at: &Addresses<'_>,
) -> Result<Result<TxnOutcome, StoreError>, tokio_postgres::Error> {
    let keys: [&(dyn ToSql + Sync); 3] = [&at.workspace, &at.namespaces, &at.keys];
    let cap = i64::try_from(txn.read_limit()).unwrap_or(i64::MAX);
    let read: [&(dyn ToSql + Sync); 5] = [&at.workspace, &at.namespaces, &at.keys, &at.want, &cap];
    if !txn.writes() {
        // One statement is one snapshot: a transaction that only reads needs no more.
        let read_sql = client.prepare_cached(&sql.read).await?;
        let rows = client.query(&read_sql, &read).await?;
        let stored = match stored_rows(&rows, at, txn.read_limit()) {
            Ok(stored) => stored,
            Err(outcome) => return Ok(outcome),
        };
        return Ok(Ok(match txn.plan(&stored) {
            Ok(_) => TxnOutcome::Committed(txn.results(&stored, &HashMap::new())),
            Err(failed) => TxnOutcome::Failed(failed),
        }));
    }
    let tx = client.transaction().await?;
    let lock_sql = tx.prepare_cached(&sql.lock).await?;
    let placeholders: HashSet<(String, String)> = tx
        .query(&lock_sql, &keys)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let read_sql = tx.prepare_cached(&sql.read).await?;
    let rows = tx.query(&read_sql, &read).await?;
    // An error or a refusal drops `tx`, which rolls it back, placeholders and all.
    let stored = match stored_rows(&rows, at, txn.read_limit()) {
        Ok(stored) => stored,
        Err(outcome) => return Ok(outcome),
    };
    let plan = match txn.plan(&stored) {
        Ok(plan) => plan,
        Err(failed) => return Ok(Ok(TxnOutcome::Failed(failed))),
    };
    let rows = write(&tx, sql, txn, &plan, &placeholders).await?;
    let revisions = match revisions(&rows) {
        Ok(revisions) => revisions,
        Err(e) => return Ok(Err(e)),
    };
    tx.commit().await?;
    Ok(Ok(TxnOutcome::Committed(txn.results(&stored, &revisions))))
}

/// Applies `plan`: the written namespaces' counters locked in the order
/// every logged write takes them, then the placeholders nothing is put at
/// removed, the puts and the deletes, each its own statement (CockroachDB
/// lets a statement modify a table once), each logged. Answers the changes.
async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &TxnStatements,
    txn: &Txn,
    plan: &Plan,
    placeholders: &HashSet<(String, String)>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let ops = txn.ops();
    let ws = &txn.workspace;
    let mut puts = UpsertRows::default();
    for &index in &plan.puts {
        if let OpKind::Put(value) = &ops[index].kind {
            puts.push(*ws, &ops[index].namespace, &ops[index].key, value);
        }
    }
    let deleted: (Vec<&str>, Vec<&str>) = plan
        .deletes
        .iter()
        .map(|&i| (ops[i].namespace.as_str(), ops[i].key.as_str()))
        .unzip();
    let put_at: HashSet<(&str, &str)> = puts
        .namespaces
        .iter()
        .copied()
        .zip(puts.keys.iter().copied())
        .collect();
    let cleared: (Vec<&str>, Vec<&str>) = placeholders
        .iter()
        .map(|(n, k)| (n.as_str(), k.as_str()))
        .filter(|at| !put_at.contains(at))
        .unzip();
    let mut written: Vec<&str> = puts.namespaces.iter().chain(&deleted.0).copied().collect();
    written.sort_unstable();
    written.dedup();
    let mut changes = Vec::new();
    if !written.is_empty() {
        let counters = tx.prepare_cached(&sql.counters).await?;
        tx.execute(&counters, &[ws, &written]).await?;
    }
    if !cleared.0.is_empty() {
        let clear = tx.prepare_cached(&sql.clear).await?;
        tx.execute(&clear, &[ws, &cleared.0, &cleared.1]).await?;
    }
    if !puts.is_empty() {
        let statement = tx.prepare_cached(&sql.puts).await?;
        changes.extend(tx.query(&statement, &puts.params()).await?);
    }
    if !deleted.0.is_empty() {
        let statement = tx.prepare_cached(&sql.deletes).await?;
        changes.extend(tx.query(&statement, &[ws, &deleted.0, &deleted.1]).await?);
    }
    Ok(changes)
}

/// The live rows the read statement answered, by address; `Err` with the
/// answer instead when the values the `get`s read would pass
/// `limit`, or with the error when a row does not read.
fn stored_rows(
    rows: &[Row],
    at: &Addresses<'_>,
    limit: usize,
) -> Result<Stored, Result<TxnOutcome, StoreError>> {
    let failed = |e: tokio_postgres::Error| {
        Err(StoreError::Internal(format!(
            "reading a transaction's keys: {e}"
        )))
    };
    let mut stored = Stored::with_capacity(rows.len());
    for row in rows {
        let position: i64 = row.try_get(0).map_err(failed)?;
        let Some(index) = usize::try_from(position - 1)
            .ok()
            .filter(|&i| i < at.keys.len())
        else {
            return Err(Err(StoreError::Internal(format!(
                "a transaction read row {position}, which it did not ask for"
            ))));
        };
        if row.try_get::<_, bool>(2).map_err(failed)? {
            return Err(Ok(TxnOutcome::ReadTooLarge(limit)));
        }
        let value: Option<&[u8]> = row.try_get(1).map_err(failed)?;
        let md5: &[u8] = row.try_get(3).map_err(failed)?;
        let entry = Entry {
            value: value.map(bytes::Bytes::copy_from_slice).unwrap_or_default(),
            // The statement read the value of a digest that is not 16 bytes.
            md5: Digest::try_from(md5)
                .unwrap_or_else(|_| md5::compute(value.unwrap_or_default()).0),
            content_type: row.try_get(4).map_err(failed)?,
            expires: Expires::from_columns(
                row.try_get(5).map_err(failed)?,
                row.try_get(6).map_err(failed)?,
            ),
            sealed_by: row
                .try_get::<_, Option<&str>>(7)
                .map_err(failed)?
                .map(crate::store::KeyId::from),
        };
        stored.insert(
            (at.namespaces[index].to_owned(), at.keys[index].to_owned()),
            entry,
        );
    }
    Ok(stored)
}

/// The revision of each change the write statement made, by address.
fn revisions(rows: &[Row]) -> Result<HashMap<(String, String), Revision>, StoreError> {
    rows.iter()
        .map(|row| {
            // workspace, namespace, key, revision: as every logged write answers.
            let at = (row.try_get(1)?, row.try_get(2)?);
            let revision: i64 = row.try_get(3)?;
            Ok((at, Revision::try_from(revision).unwrap_or(0)))
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| StoreError::Internal(format!("reading a transaction's revisions: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Modifications of `kvs` in one statement: CockroachDB refuses more than one.
    fn kvs_writes(sql: &str) -> usize {
        [
            "INSERT INTO \"s\".kvs ",
            "DELETE FROM \"s\".kvs ",
            "UPDATE \"s\".kvs ",
        ]
        .iter()
        .map(|w| sql.matches(w).count())
        .sum()
    }

    #[test]
    fn every_statement_modifies_the_table_once_at_most() {
        for flavor in [Flavor::Postgres, Flavor::Cockroach] {
            let t = TxnStatements::new(flavor, "\"s\"");
            for sql in [&t.lock, &t.read, &t.counters, &t.clear, &t.puts, &t.deletes] {
                assert!(kvs_writes(sql) <= 1, "{sql}");
            }
            assert!(t.lock.contains("WHERE false") && t.counters.contains("WHERE false"));
        }
    }
}
