//! The SQL of the data operations, in both dialects: the embedded migration
//! files, which engine answers, and the statements built for it once its
//! migrations are applied.
//!
//! Keys are compared as raw bytes: with `COLLATE "C"` on PostgreSQL, whose
//! database collation may be linguistic, and as they are on CockroachDB, which
//! compares strings bytewise.

use crate::store::migrations::Migration;

macro_rules! migration {
    ($dialect:literal, $version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../sql/", $dialect, "/", $name, ".sql")),
        }
    };
}

/// The migrations of `sql/postgres/`, in order. `{schema}` in their text
/// stands for the configured schema, quoted.
pub static POSTGRES_MIGRATIONS: &[Migration] = &[
    migration!("postgres", 1, "0001_kvs"),
    migration!("postgres", 2, "0002_content_type"),
    migration!("postgres", 3, "0003_kvs_key_bytewise"),
    migration!("postgres", 4, "0004_content_type_md5"),
    migration!("postgres", 5, "0005_expire_at"),
];

/// The migrations of `sql/cockroach/`, in order; same versions and names as
/// [`POSTGRES_MIGRATIONS`], in CockroachDB's dialect.
pub static COCKROACH_MIGRATIONS: &[Migration] = &[
    migration!("cockroach", 1, "0001_kvs"),
    migration!("cockroach", 2, "0002_content_type"),
    migration!("cockroach", 3, "0003_kvs_key_bytewise"),
    migration!("cockroach", 4, "0004_content_type_md5"),
    migration!("cockroach", 5, "0005_expire_at"),
];

/// Which engine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    Postgres,
    Cockroach,
}

impl Flavor {
    pub(super) fn from_version(version: &str) -> Flavor {
        if version.contains("CockroachDB") {
            Flavor::Cockroach
        } else {
            Flavor::Postgres
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Flavor::Postgres => "postgres",
            Flavor::Cockroach => "cockroachdb",
        }
    }

    pub(super) fn migrations(self) -> &'static [Migration] {
        match self {
            Flavor::Postgres => POSTGRES_MIGRATIONS,
            Flavor::Cockroach => COCKROACH_MIGRATIONS,
        }
    }

    /// The key as an expression that compares and sorts bytewise.
    fn key_bytewise(self) -> &'static str {
        match self {
            // Matches index kvs_key_bytewise (0003), so listings need no sort.
            Flavor::Postgres => r#"key COLLATE "C""#,
            // CockroachDB already compares strings as bytes, and its primary
            // key serves listings only for the uncollated column.
            Flavor::Cockroach => "key",
        }
    }
}

/// The stored content type, while it still belongs to the stored value: the
/// previous service overwrites `md5` and `value` only.
const CURRENT_TYPE: &str = "CASE WHEN content_type_md5 = md5 THEN content_type END AS content_type";

/// The data statements, built once the flavor is known.
pub(super) struct Statements {
    pub(super) get: String,
    pub(super) upsert: String,
    pub(super) insert_if_absent: String,
    pub(super) update: String,
    pub(super) update_if_match: String,
    pub(super) delete: String,
    pub(super) delete_if_match: String,
    /// Reads many keys in one query (PostgreSQL only): see [`read_many`].
    pub(super) read_many: Option<String>,
    /// Upserts many rows in one statement (PostgreSQL only): see [`upsert_many`].
    pub(super) upsert_many: Option<String>,
    /// Deletes up to `$1` expired rows nobody holds, returning their addresses.
    pub(super) sweep: String,
    /// Indexed by [`Statements::list`]: with or without an upper bound and `after`.
    pub(super) list: [String; 4],
}

/// A row is there for readers and conditions until its expiry instant, by
/// the database's clock.
const LIVE: &str = "(expire_at IS NULL OR expire_at > now())";

/// The expiry a write stores: `$7` seconds from now (`Huly-TTL`), the unix
/// second `$8` (`Huly-Expire-At`), or none.
const EXPIRES: &str = "CASE WHEN $7::INT8 IS NOT NULL THEN now() + $7::INT8 * INTERVAL '1 second' \
     WHEN $8::INT8 IS NOT NULL THEN to_timestamp($8::INT8) END";

/// What a read reports of the expiry: the first whole unix second the value
/// is gone, and the whole seconds left.
const EXPIRY_COLUMNS: &str = "ceil(extract(epoch FROM expire_at))::INT8, \
     ceil(extract(epoch FROM expire_at - now()))::INT8";

impl Statements {
    pub(super) fn new(flavor: Flavor, schema: &str) -> Statements {
        let kvs = format!("{schema}.kvs");
        let key = flavor.key_bytewise();
        // The key is compared as the bytewise index spells it, so point reads
        // and writes match all three columns of kvs_key_bytewise: with
        // `key = $3` and no statistics yet, PostgreSQL may pick that index on
        // (workspace, namespace) alone and filter the whole namespace. Every
        // database collation is deterministic, so equality is byte equality
        // either way and the same rows match.
        let pk = format!("workspace = $1 AND namespace = $2 AND {key} = $3");
        // The type is written with the digest it belongs to ($4 twice), and
        // read only while that digest is still the row's (see migration 0004).
        let insert = format!(
            "INSERT INTO {kvs} AS t (workspace, namespace, key, md5, value, content_type, \
             content_type_md5, expire_at) VALUES ($1, $2, $3, $4, $5, $6, $4, {EXPIRES}) \
             ON CONFLICT (workspace, namespace, key)"
        );
        let update = format!(
            "UPDATE {kvs} SET md5 = $4, value = $5, content_type = $6, content_type_md5 = $4, \
             expire_at = {EXPIRES} WHERE {pk} AND {LIVE}"
        );
        let set_all = "DO UPDATE SET md5 = excluded.md5, value = excluded.value, \
             content_type = excluded.content_type, content_type_md5 = excluded.content_type_md5, \
             expire_at = excluded.expire_at";
        let batched = flavor == Flavor::Postgres;
        Statements {
            get: format!(
                "SELECT value, md5, {CURRENT_TYPE}, {EXPIRY_COLUMNS} FROM {kvs} WHERE {pk} AND {LIVE}"
            ),
            upsert: format!("{insert} {set_all}"),
            // An expired row is absent: If-None-Match: * replaces it.
            insert_if_absent: format!(
                "{insert} {set_all} WHERE t.expire_at IS NOT NULL AND t.expire_at <= now()"
            ),
            update_if_match: format!("{update} AND md5 = ANY($9)"),
            update,
            delete: format!("DELETE FROM {kvs} WHERE {pk} AND {LIVE}"),
            delete_if_match: format!("DELETE FROM {kvs} WHERE {pk} AND {LIVE} AND md5 = ANY($4)"),
            upsert_many: batched.then(|| upsert_many(&kvs, set_all)),
            read_many: batched.then(|| read_many(&kvs, key)),
            sweep: sweep(flavor, &kvs),
            list: [
                list(&kvs, key, false, false),
                list(&kvs, key, true, false),
                list(&kvs, key, false, true),
                list(&kvs, key, true, true),
            ],
        }
    }

    pub(super) fn list(&self, upper: bool, after: bool) -> &str {
        &self.list[usize::from(upper) | usize::from(after) << 1]
    }
}
/// Deletes up to `$1` expired rows that no other sweeper holds (`SKIP
/// LOCKED`), oldest expiry first, returning their addresses.
fn sweep(flavor: Flavor, kvs: &str) -> String {
    let expired = "WHERE expire_at <= now() ORDER BY expire_at LIMIT $1 FOR UPDATE SKIP LOCKED";
    match flavor {
        // By row address: matching the key back would let the planner pick
        // kvs_key_bytewise on two of its columns and filter a namespace per row.
        Flavor::Postgres => format!(
            "DELETE FROM {kvs} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {kvs} {expired})) \
             RETURNING workspace, namespace, key"
        ),
        // No ctid; the primary key compares bytes, so the match is one probe.
        Flavor::Cockroach => format!(
            "DELETE FROM {kvs} WHERE (workspace, namespace, key) IN \
             (SELECT workspace, namespace, key FROM {kvs} {expired}) \
             RETURNING workspace, namespace, key"
        ),
    }
}

/// A page of keys: from `$3`, below `$4` when `upper`, after the next
/// parameter when `after`, at most the last one.
fn list(kvs: &str, key: &str, upper: bool, after: bool) -> String {
    let mut sql =
        format!("SELECT key FROM {kvs} WHERE workspace = $1 AND namespace = $2 AND {key} >= $3");
    let mut n = 4;
    if upper {
        sql.push_str(&format!(" AND {key} < ${n}"));
        n += 1;
    }
    if after {
        sql.push_str(&format!(" AND {key} > ${n}"));
        n += 1;
    }
    sql.push_str(&format!(" AND {LIVE} ORDER BY {key} LIMIT ${n}"));
    sql
}

/// Upserts many rows in one statement: `$1`..`$8` are arrays of the
/// parameters of one upsert.
fn upsert_many(kvs: &str, set_all: &str) -> String {
    format!(
        "INSERT INTO {kvs} (workspace, namespace, key, md5, value, content_type, \
         content_type_md5, expire_at) SELECT w, n, k, m, v, t, m, CASE WHEN s IS NOT NULL \
         THEN now() + s * INTERVAL '1 second' WHEN a IS NOT NULL THEN to_timestamp(a) END \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], \
         $6::text[], $7::int8[], $8::int8[]) AS u(w, n, k, m, v, t, s, a) \
         ON CONFLICT (workspace, namespace, key) {set_all}"
    )
}

/// Reads many keys in one query: `$1`, `$2`, `$3` are arrays of workspaces,
/// namespaces and keys; each row carries the 1-based position of its key last.
fn read_many(kvs: &str, key: &str) -> String {
    // LIMIT 1 (the primary key allows no more) keeps the lateral subquery
    // from being flattened, so each key is one index probe whatever the
    // planner guesses of the arrays' length.
    format!(
        "SELECT r.value, r.md5, r.content_type, r.expires_at, r.ttl, q.i \
         FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS q(w, n, k, i) \
         CROSS JOIN LATERAL (SELECT value, md5, {CURRENT_TYPE}, {EXPIRY_COLUMNS} \
         FROM {kvs} WHERE workspace = q.w AND namespace = q.n AND {key} = q.k AND {LIVE} \
         LIMIT 1) AS r(value, md5, content_type, expires_at, ttl)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_statements_match_the_bytewise_index() {
        let pg = Statements::new(Flavor::Postgres, "\"hulykvs\"");
        for sql in [&pg.get, &pg.update, &pg.delete, &pg.delete_if_match] {
            assert!(
                sql.contains(r#"namespace = $2 AND key COLLATE "C" = $3"#),
                "{sql}"
            );
        }
        let many = pg
            .read_many
            .as_deref()
            .expect("PostgreSQL reads in batches");
        assert!(many.contains(r#"key COLLATE "C" = q.k AND"#), "{many}");
        assert!(many.contains("LIMIT 1) AS r"), "{many}");
        assert!(many.contains("WITH ORDINALITY"), "{many}");
        let crdb = Statements::new(Flavor::Cockroach, "\"s\"");
        assert!(
            crdb.get.ends_with(
                "namespace = $2 AND key = $3 AND (expire_at IS NULL OR expire_at > now())"
            ),
            "{}",
            crdb.get
        );
        assert!(
            crdb.read_many.is_none(),
            "CockroachDB reads one key a query"
        );
    }

    #[test]
    fn listing_compares_bytes_without_like() {
        let pg = Statements::new(Flavor::Postgres, "\"hulykvs\"");
        for sql in &pg.list {
            assert!(sql.contains(r#"ORDER BY key COLLATE "C""#), "{sql}");
            assert!(sql.contains("\"hulykvs\".kvs"), "{sql}");
            assert!(!sql.to_lowercase().contains("like"), "{sql}");
        }
        assert_eq!(
            pg.list(true, true),
            "SELECT key FROM \"hulykvs\".kvs WHERE workspace = $1 AND namespace = $2 \
             AND key COLLATE \"C\" >= $3 AND key COLLATE \"C\" < $4 \
             AND key COLLATE \"C\" > $5 AND (expire_at IS NULL OR expire_at > now()) \
             ORDER BY key COLLATE \"C\" LIMIT $6"
        );
        assert!(pg.list(false, true).contains(
            "> $4 AND (expire_at IS NULL OR expire_at > now()) ORDER BY key COLLATE \"C\" LIMIT $5"
        ));
        let crdb = Statements::new(Flavor::Cockroach, "\"s\"");
        for sql in &crdb.list {
            assert!(!sql.contains("COLLATE"), "{sql}");
        }
        assert!(crdb.list(false, false).ends_with(
            "key >= $3 AND (expire_at IS NULL OR expire_at > now()) ORDER BY key LIMIT $4"
        ));
    }

    #[test]
    fn flavor_from_version() {
        assert_eq!(
            Flavor::from_version("CockroachDB CCL v23.2.4 (x86_64-pc-linux-gnu, built 2024/04/08)"),
            Flavor::Cockroach
        );
        assert_eq!(
            Flavor::from_version("PostgreSQL 15.6 on x86_64-pc-linux-gnu"),
            Flavor::Postgres
        );
    }
}
