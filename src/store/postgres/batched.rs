//! The statements of GET and PUT batches ([`super::batch`]), PostgreSQL
//! only: many keys read, or many rows upserted, in one statement over
//! arrays, each planned once per connection (see [`unnest_planned_once`]).

use super::sql::{
    array_params, logged, upsert_many, Flavor, CURRENT_TYPE, EXPIRY_COLUMNS, LIVE, UPSERT_ARRAYS,
};

/// The column of [`BatchStatements::read`]'s rows that holds the position
/// of their key.
pub(super) const READ_MANY_POSITION: usize = 6;

/// A batch lane's two statements for the (quoted) schema.
pub(super) struct BatchStatements {
    /// Reads many keys in one query: `$1`, `$2`, `$3` are arrays of
    /// workspaces, namespaces and keys; each row carries the 1-based position
    /// of its key last (column [`READ_MANY_POSITION`]).
    pub(super) read: String,
    /// Upserts many rows in one statement (`sql::upsert_many`, logged): its
    /// arrays are `sql::UpsertRows`.
    pub(super) upsert: String,
}

impl BatchStatements {
    pub(super) fn new(schema: &str) -> BatchStatements {
        let kvs = format!("{schema}.kvs");
        let key = Flavor::Postgres.key_bytewise();
        let upsert = upsert_many(&kvs, &unnest_planned_once(&UPSERT_ARRAYS));
        BatchStatements {
            read: read_many(&kvs, key),
            upsert: logged(schema, key, &upsert, "put"),
        }
    }
}

fn read_many(kvs: &str, key: &str) -> String {
    // LIMIT 1 (the primary key allows no more) keeps the lateral subquery
    // from being flattened, so each key is one index probe whatever the
    // planner guesses of the arrays' length.
    format!(
        "SELECT r.value, r.md5, r.content_type, r.expires_at, r.ttl, r.key_id, q.i \
         FROM {} WITH ORDINALITY AS q(w, n, k, i) \
         CROSS JOIN LATERAL (SELECT value, md5, {CURRENT_TYPE}, {EXPIRY_COLUMNS} \
         FROM {kvs} WHERE workspace = q.w AND namespace = q.n AND {key} = q.k AND {LIVE} \
         LIMIT 1) AS r(value, md5, content_type, expires_at, ttl, key_id)",
        unnest_planned_once(&["uuid", "text", "text"])
    )
}

/// `unnest` of the arrays `$1`… (of the element types `types`) as a batch
/// reads them: through a one-row subquery the planner keeps (`OFFSET 0`), so
/// that no plan sees how long the arrays are.
///
/// A batch's plan never depends on what it binds (a probe of the index per
/// key, an insert per row), but PostgreSQL's choice of plan does. Under its
/// default `plan_cache_mode = auto` a prepared statement gets five custom
/// plans, made for the values bound, then the generic plan only while that
/// costs less than the custom plans did on average. Unnested straight from
/// `$1`…, a custom plan knew the arrays' lengths where the generic plan
/// guesses ten rows, so a connection whose batches were mostly small planned
/// every batch afresh: 0.12 ms at bind instead of 0.025, twice the
/// database's CPU per GET at 16 clients, on some connections and not others
/// (issue #29). Here every plan guesses ten rows, the generic plan costs
/// what the custom plans did less their planning, and every connection
/// settles on it from the sixth batch. (PostgreSQL keeps the custom plans'
/// average across invalidations: after fresh statistics raise the plans'
/// costs, a few custom plans come back until that average catches up.)
fn unnest_planned_once(types: &[&str]) -> String {
    let columns: Vec<String> = (1..=types.len()).map(|i| format!("p{i}")).collect();
    let unnested: Vec<String> = columns.iter().map(|c| format!("p.{c}")).collect();
    format!(
        "(SELECT {} OFFSET 0) AS p({}) CROSS JOIN LATERAL unnest({})",
        array_params(types),
        columns.join(", "),
        unnested.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_probe_the_bytewise_index_and_hide_their_lengths() {
        let batch = BatchStatements::new("\"hulykvs\"");
        let read = &batch.read;
        assert!(read.contains(r#"key COLLATE "C" = q.k AND"#), "{read}");
        assert!(read.contains("LIMIT 1) AS r"), "{read}");
        assert!(
            read.contains(
                "FROM (SELECT $1::uuid[], $2::text[], $3::text[] OFFSET 0) AS p(p1, p2, p3) \
                 CROSS JOIN LATERAL unnest(p.p1, p.p2, p.p3) WITH ORDINALITY AS q(w, n, k, i)"
            ),
            "{read}"
        );
        let upsert = &batch.upsert;
        assert!(
            upsert.contains("$9::text[] OFFSET 0) AS p(p1, "),
            "{upsert}"
        );
        assert!(
            upsert.contains("unnest(p.p1, p.p2, p.p3, p.p4, p.p5, p.p6, p.p7, p.p8, p.p9) AS u("),
            "{upsert}"
        );
    }
}
