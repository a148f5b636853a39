//! The SQL of the data operations, in both dialects: the embedded migration
//! files, which engine answers, and the statements built for it once its
//! migrations are applied.
//!
//! Keys are compared as raw bytes: with `COLLATE "C"` on PostgreSQL, whose
//! database collation may be linguistic, and as they are on CockroachDB, which
//! compares strings bytewise.

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::store::migrations::Migration;
use crate::store::NewValue;

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
    migration!("postgres", 6, "0006_changes"),
    migration!("postgres", 7, "0007_key_id"),
    migration!("postgres", 8, "0008_kvs_key_live"),
    migration!("postgres", 9, "0009_kvs_expiry_by_namespace"),
];

/// The migrations of `sql/cockroach/`, in order; same versions and names as
/// [`POSTGRES_MIGRATIONS`], in CockroachDB's dialect.
pub static COCKROACH_MIGRATIONS: &[Migration] = &[
    migration!("cockroach", 1, "0001_kvs"),
    migration!("cockroach", 2, "0002_content_type"),
    migration!("cockroach", 3, "0003_kvs_key_bytewise"),
    migration!("cockroach", 4, "0004_content_type_md5"),
    migration!("cockroach", 5, "0005_expire_at"),
    migration!("cockroach", 6, "0006_changes"),
    migration!("cockroach", 7, "0007_key_id"),
    migration!("cockroach", 8, "0008_kvs_key_live"),
    migration!("cockroach", 9, "0009_kvs_expiry_by_namespace"),
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
    pub(super) fn key_bytewise(self) -> &'static str {
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
pub(super) const CURRENT_TYPE: &str =
    "CASE WHEN content_type_md5 = md5 THEN content_type END AS content_type";

/// The data statements, built once the flavor is known. Every write is one
/// statement that also bumps its namespace's revision and appends its
/// change ([`logged`]), answering `workspace, namespace, key, revision` for
/// each row it changed.
pub(super) struct Statements {
    pub(super) get: String,
    pub(super) upsert: String,
    pub(super) insert_if_absent: String,
    pub(super) update: String,
    pub(super) update_if_match: String,
    pub(super) delete: String,
    pub(super) delete_if_match: String,
    /// Deletes up to `$1` expired rows nobody holds, returning their addresses.
    pub(super) sweep: String,
    /// Deletes up to `$5` live keys of `$1`/`$2` from `$3` below `$4` (when
    /// not NULL), in key order: see [`delete_prefix`].
    pub(super) delete_prefix: String,
    /// A page of the change log with the namespace's current and oldest
    /// revision: see [`changes`].
    pub(super) changes: String,
    /// Deletes up to `$2` changes older than `$1` milliseconds: see [`prune`].
    pub(super) prune: String,
    /// A page of live keys, indexed by its [`Bounds`]: see [`list`].
    pub(super) list: [String; 3],
    /// As `list`, one row: a listing's page with its revision, the keys as
    /// an array (see [`page`]).
    pub(super) list_page: [String; 3],
    /// As `list_page`, the keys counted and joined into one text
    /// (PostgreSQL only): see [`joined_page`].
    pub(super) list_joined: Option<[String; 3]>,
    /// A page of values from `$3`, below `$4` when there is an upper bound
    /// (index 1): see [`values`].
    pub(super) values: [String; 2],
}

/// What an upsert's conflict sets: every column of the value from `excluded`.
pub(super) const SET_ALL: &str = "md5 = excluded.md5, value = excluded.value, \
     content_type = excluded.content_type, content_type_md5 = excluded.content_type_md5, \
     expire_at = excluded.expire_at, key_id = excluded.key_id";

/// The columns a write fills, in the order of its parameters' use.
pub(super) const WRITE_COLUMNS: &str =
    "(workspace, namespace, key, md5, value, content_type, content_type_md5, expire_at, key_id)";

/// A row is there for readers and conditions until its expiry instant, by
/// the database's clock.
pub(super) const LIVE: &str = "(expire_at IS NULL OR expire_at > now())";

/// The expiry a write stores: `$7` seconds from now (`Huly-TTL`), the unix
/// second `$8` (`Huly-Expire-At`), or none.
pub(super) const EXPIRES: &str =
    "CASE WHEN $7::INT8 IS NOT NULL THEN now() + $7::INT8 * INTERVAL '1 second' \
     WHEN $8::INT8 IS NOT NULL THEN to_timestamp($8::INT8) END";

/// What a read reports of the expiry: the first whole unix second the value
/// is gone, and the whole seconds left; then the key that sealed the value.
pub(super) const EXPIRY_COLUMNS: &str = "ceil(extract(epoch FROM expire_at))::INT8, \
     ceil(extract(epoch FROM expire_at - now()))::INT8, key_id";

/// What a write returns of each row it wrote, for [`logged`].
pub(super) const WRITTEN: &str = "RETURNING workspace, namespace, key, md5, expire_at";
/// What a delete returns of each row it removed, for [`logged`].
pub(super) const REMOVED: &str =
    "RETURNING workspace, namespace, key, NULL::BYTEA AS md5, NULL::TIMESTAMPTZ AS expire_at";

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
            "INSERT INTO {kvs} AS t {WRITE_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $4, \
             {EXPIRES}, $9) ON CONFLICT (workspace, namespace, key)"
        );
        let update = format!(
            "UPDATE {kvs} SET md5 = $4, value = $5, content_type = $6, content_type_md5 = $4, \
             expire_at = {EXPIRES}, key_id = $9 WHERE {pk} AND {LIVE}"
        );
        let log = |write: String, op: &str| logged(schema, key, &write, op);
        Statements {
            get: format!(
                "SELECT value, md5, {CURRENT_TYPE}, {EXPIRY_COLUMNS} FROM {kvs} WHERE {pk} AND {LIVE}"
            ),
            upsert: log(format!("{insert} DO UPDATE SET {SET_ALL} {WRITTEN}"), "put"),
            // An expired row is absent: If-None-Match: * replaces it.
            insert_if_absent: log(
                format!(
                    "{insert} DO UPDATE SET {SET_ALL} WHERE t.expire_at IS NOT NULL AND t.expire_at <= now() \
                     {WRITTEN}"
                ),
                "put",
            ),
            update_if_match: log(format!("{update} AND md5 = ANY($10) {WRITTEN}"), "put"),
            update: log(format!("{update} {WRITTEN}"), "put"),
            delete: log(
                format!("DELETE FROM {kvs} WHERE {pk} AND {LIVE} {REMOVED}"),
                "delete",
            ),
            delete_if_match: log(
                format!("DELETE FROM {kvs} WHERE {pk} AND {LIVE} AND md5 = ANY($4) {REMOVED}"),
                "delete",
            ),
            sweep: log(sweep(flavor, &kvs), "expire"),
            delete_prefix: log(delete_prefix(flavor, &kvs, key), "delete"),
            changes: changes(schema, key),
            prune: prune(schema),
            list: Bounds::ALL.map(|bounds| list(&kvs, key, bounds)),
            list_page: Bounds::ALL.map(|bounds| page(flavor, schema, &kvs, key, bounds)),
            list_joined: (flavor == Flavor::Postgres)
                .then(|| Bounds::ALL.map(|bounds| joined_page(schema, &kvs, key, bounds))),
            values: [values(&kvs, key, false), values(&kvs, key, true)],
        }
    }
}

/// The bounds of a listing's keys, which pick its statement (the index of
/// its arrays): none, a whole namespace; from `$3`, a prefix with no upper
/// bound or a cursor's next key; or from `$3` below `$4`, a prefix. A bound
/// is compared with every key the scan reads, so a listing carries only the
/// bounds it needs: `key >= ''` cost the database 18% more instructions a
/// 1,000-key page, and a cursor's page compared each key with the prefix and
/// with the cursor (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bounds {
    Whole = 0,
    From = 1,
    Between = 2,
}

impl Bounds {
    const ALL: [Bounds; 3] = [Bounds::Whole, Bounds::From, Bounds::Between];

    /// The bounds of keys from `lower` (none when empty: every key is at
    /// least the empty string) and below `upper`.
    pub(super) fn of(lower: &str, upper: Option<&str>) -> Bounds {
        match (lower.is_empty(), upper) {
            (_, Some(_)) => Bounds::Between,
            (false, None) => Bounds::From,
            (true, None) => Bounds::Whole,
        }
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
             {REMOVED}"
        ),
        // No ctid; the primary key compares bytes, so the match is one probe.
        Flavor::Cockroach => format!(
            "DELETE FROM {kvs} WHERE (workspace, namespace, key) IN \
             (SELECT workspace, namespace, key FROM {kvs} {expired}) {REMOVED}"
        ),
    }
}

/// Deletes a batch of keys by prefix, locking them in key order (as batched
/// upserts do, so the two cannot deadlock).
fn delete_prefix(flavor: Flavor, kvs: &str, key: &str) -> String {
    let batch = format!(
        "FROM {kvs} WHERE workspace = $1 AND namespace = $2 AND {key} >= $3 \
         AND ($4::TEXT IS NULL OR {key} < $4) AND {LIVE} ORDER BY {key} LIMIT $5 FOR UPDATE"
    );
    match flavor {
        Flavor::Postgres => {
            format!("DELETE FROM {kvs} WHERE ctid = ANY(ARRAY(SELECT ctid {batch})) {REMOVED}")
        }
        Flavor::Cockroach => format!(
            "DELETE FROM {kvs} WHERE (workspace, namespace, key) IN \
             (SELECT workspace, namespace, key {batch}) {REMOVED}"
        ),
    }
}

/// A listing's page in one row, read in one snapshot: the revision of
/// namespace `$1`/`$2` and the keys [`list`] finds, as an array in key order.
/// The caller asks for one key more than the page holds, which says whether
/// more follow. The server writes the JSON: the database sends the array in
/// binary (a length and the bytes a key), 6% fewer instructions for the
/// database a 1,000-key page than writing the JSON itself with
/// `array_to_json` (docs/PERFORMANCE.md). Both engines run it: `ARRAY` of
/// an ordered subquery keeps its order on each. PostgreSQL lists with
/// [`joined_page`], and with this only a page one of whose keys holds a
/// quote; CockroachDB always with this.
fn page(flavor: Flavor, schema: &str, kvs: &str, key: &str, bounds: Bounds) -> String {
    let keys = match flavor {
        Flavor::Postgres => tested_past_expiry(kvs, key, bounds, |scan| format!("ARRAY({scan})")),
        Flavor::Cockroach => format!("ARRAY({})", list(kvs, key, bounds)),
    };
    format!("SELECT {}, {keys}", revision(schema))
}

/// [`page`] as PostgreSQL lists it: the keys counted and joined into one
/// text, the count and a quote first, then the keys joined by `","`
/// (`3"a","b","c`; `0"` for none). Between two quotes, the keys are the
/// page's JSON when none needs an escape, so the server copies the text
/// whole. A key may hold a quote (keys hold anything but NUL): the text then
/// holds more quotes than the separators of the count, and the reader lists
/// the page again with [`page`]. For the database this is one buffer
/// appended to a key, where the array copies each key into the array and
/// again through `textsend`: 15% fewer instructions a 1,000-key page than
/// the array (docs/PERFORMANCE.md). The aggregate reads its subquery's rows
/// in the subquery's order: a subquery with `LIMIT` is never merged into
/// the query above it, and a plain aggregate keeps no state but its input
/// order.
/// CockroachDB keeps the array, whose order it keeps: whether it also hands
/// an aggregate its subquery's order cannot be checked without a binary of
/// it, and an `ORDER BY` inside the call would sort each page again.
fn joined_page(schema: &str, kvs: &str, key: &str, bounds: Bounds) -> String {
    let keys = tested_past_expiry(kvs, key, bounds, |scan| {
        format!(
            "(SELECT count(*)::TEXT || '\"' || coalesce(string_agg(key, '\",\"'), '') \
             FROM ({scan}) AS page)"
        )
    });
    format!("SELECT {}, {keys}", revision(schema))
}

/// The revision of namespace `$1`/`$2`, 0 before its first write.
fn revision(schema: &str) -> String {
    format!(
        "coalesce((SELECT revision FROM {schema}.kvs_revision WHERE workspace = $1 \
         AND namespace = $2), 0)::INT8"
    )
}

/// `read` of the keys [`list`] finds, tested for expiry only where the test
/// can remove a key (PostgreSQL): when the namespace's earliest expiry
/// (index kvs_expiry_by_namespace, migration 0009) is still ahead, or there
/// is none, every key is live and the keys are read without it. Each side
/// of the `CASE` is an InitPlan, run when the `CASE` first needs it, so one
/// of the two runs; and all three read the statement's one snapshot at its
/// one `now()`. `min()` makes the probe an index descent whatever the
/// statistics (an `EXISTS` may be planned as a scan of the table, stopping
/// at the first row with an expiry). CockroachDB keeps the one query with
/// the test (see its 0009).
fn tested_past_expiry(
    kvs: &str,
    key: &str,
    bounds: Bounds,
    read: impl Fn(&str) -> String,
) -> String {
    format!(
        "CASE WHEN coalesce((SELECT min(expire_at) FROM {kvs} WHERE workspace = $1 \
         AND namespace = $2 AND expire_at IS NOT NULL) > now(), true) \
         THEN {} ELSE {} END",
        read(&keys(kvs, key, bounds, false)),
        read(&list(kvs, key, bounds))
    )
}

/// A page of live keys of namespace `$1`/`$2` within `bounds` (from `$3`,
/// below `$4`), in byte order, at most the last parameter's count of them.
fn list(kvs: &str, key: &str, bounds: Bounds) -> String {
    keys(kvs, key, bounds, true)
}

/// [`list`]'s keys, tested for expiry when `live`.
fn keys(kvs: &str, key: &str, bounds: Bounds, live: bool) -> String {
    let mut sql = format!("SELECT key FROM {kvs} WHERE workspace = $1 AND namespace = $2");
    let limit = match bounds {
        Bounds::Whole => 3,
        Bounds::From => {
            sql.push_str(&format!(" AND {key} >= $3"));
            4
        }
        Bounds::Between => {
            sql.push_str(&format!(" AND {key} >= $3 AND {key} < $4"));
            5
        }
    };
    if live {
        sql.push_str(&format!(" AND {LIVE}"));
    }
    sql.push_str(&format!(" ORDER BY {key} LIMIT ${limit}"));
    sql
}

/// A page of live values from `$3` (below `$4` when `upper`), at most the
/// last parameter's count of them, ending with the first whose value brings
/// the page's bytes to the parameter before it. The count is cut first
/// (innermost), so the running sum sees only that many rows on either
/// engine; it reads only the values' stored lengths, and on PostgreSQL the
/// values themselves are read only for the rows sent.
fn values(kvs: &str, key: &str, upper: bool) -> String {
    let (below, limit, budget) = if upper {
        (format!(" AND {key} < $4"), "$5", "$6")
    } else {
        (String::new(), "$4", "$5")
    };
    format!(
        "SELECT key, value, md5, {CURRENT_TYPE}, {EXPIRY_COLUMNS} FROM \
         (SELECT *, sum(octet_length(value)) OVER (ORDER BY {key} ROWS UNBOUNDED PRECEDING)::INT8 \
         - octet_length(value) AS before FROM \
         (SELECT key, value, md5, content_type, content_type_md5, expire_at, key_id FROM {kvs} \
         WHERE workspace = $1 AND namespace = $2 AND {key} >= $3{below} AND {LIVE} \
         ORDER BY {key} LIMIT {limit}::INT8) AS chunk) AS page \
         WHERE before < {budget}::INT8 ORDER BY {key}"
    )
}

/// The element types of [`upsert_many`]'s nine arrays, `$1`..`$9`: the
/// parameters of one upsert (see [`UpsertRows`]).
pub(super) const UPSERT_ARRAYS: [&str; 9] = [
    "uuid", "text", "text", "bytea", "bytea", "text", "int8", "int8", "text",
];

/// `$1::T1[], $2::T2[], …`: arrays of the element types `types`.
pub(super) fn array_params(types: &[&str]) -> String {
    let arrays: Vec<String> = (1..=types.len())
        .zip(types)
        .map(|(i, ty)| format!("${i}::{ty}[]"))
        .collect();
    arrays.join(", ")
}

/// Upserts many rows in one statement: `rows`, a FROM item, yields the nine
/// parameters of one upsert a row, unnested from the arrays of
/// [`UPSERT_ARRAYS`] (plain `unnest`, or as a batch plans them).
pub(super) fn upsert_many(kvs: &str, rows: &str) -> String {
    format!(
        "INSERT INTO {kvs} {WRITE_COLUMNS} SELECT w, n, k, m, v, t, m, CASE WHEN s IS NOT NULL \
         THEN now() + s * INTERVAL '1 second' WHEN a IS NOT NULL THEN to_timestamp(a) END, id \
         FROM {rows} AS u(w, n, k, m, v, t, s, a, id) \
         ON CONFLICT (workspace, namespace, key) DO UPDATE SET {SET_ALL} {WRITTEN}"
    )
}

/// Rows of a batched upsert as the nine arrays [`upsert_many`] takes
/// (`$1`..`$9`), the forms tokio-postgres binds them in.
#[derive(Default)]
pub(super) struct UpsertRows<'a> {
    workspaces: Vec<Uuid>,
    pub(super) namespaces: Vec<&'a str>,
    pub(super) keys: Vec<&'a str>,
    md5s: Vec<&'a [u8]>,
    values: Vec<&'a [u8]>,
    types: Vec<&'a str>,
    ttls: Vec<Option<i64>>,
    ats: Vec<Option<i64>>,
    key_ids: Vec<Option<&'a str>>,
}

impl<'a> UpsertRows<'a> {
    /// Room for `rows` rows: nine arrays grown a push at a time were about 3%
    /// of a batched PUT's instructions (issue #29).
    pub(super) fn with_capacity(rows: usize) -> Self {
        UpsertRows {
            workspaces: Vec::with_capacity(rows),
            namespaces: Vec::with_capacity(rows),
            keys: Vec::with_capacity(rows),
            md5s: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows),
            types: Vec::with_capacity(rows),
            ttls: Vec::with_capacity(rows),
            ats: Vec::with_capacity(rows),
            key_ids: Vec::with_capacity(rows),
        }
    }

    pub(super) fn push(
        &mut self,
        workspace: Uuid,
        namespace: &'a str,
        key: &'a str,
        value: &'a NewValue,
    ) {
        let (ttl, at) = value.expiry.params();
        self.workspaces.push(workspace);
        self.namespaces.push(namespace);
        self.keys.push(key);
        self.md5s.push(&value.md5);
        self.values.push(&value.value);
        self.types.push(&value.content_type);
        self.ttls.push(ttl);
        self.ats.push(at);
        self.key_ids.push(value.sealed_by.as_deref());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `$1`..`$9`.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.workspaces,
            &self.namespaces,
            &self.keys,
            &self.md5s,
            &self.values,
            &self.types,
            &self.ttls,
            &self.ats,
            &self.key_ids,
        ]
    }
}

/// `write` (one statement returning [`WRITTEN`] or [`REMOVED`] columns) as
/// one statement that also bumps the revision of each namespace it wrote by
/// the rows it wrote there, and logs each row as a change `op` numbered in
/// key order within the range the bump took.
///
/// The counter rows are bumped only after every row of `write` is written
/// (the aggregate reads all of `w` first), in namespace order: a statement
/// holding a counter lock never waits for a value row, and two statements
/// take shared counters in one order, so writers cannot deadlock. The lock
/// is held to commit, so the commits of one namespace follow its revisions
/// (PostgreSQL). CockroachDB runs each statement serializably: a second
/// writer of a namespace reads the first one's counter, so it is ordered
/// after it, and a conflicting pair is retried by the database.
pub(super) fn logged(schema: &str, key: &str, write: &str, op: &str) -> String {
    log_around(
        schema,
        key,
        Around {
            write,
            op: &format!("'{op}'"),
            ..Around::default()
        },
    )
}

/// [`logged`], with the CTE `old` (named `o`, with columns value, md5,
/// content_type, expires_at, ttl, key_id, live) before the write and its one row's
/// columns after the change's in the answer. They are read only after the
/// change is logged, so a write that reads `o` first decides when it is read.
pub(super) fn logged_reading(schema: &str, key: &str, old: &str, write: &str, op: &str) -> String {
    let columns = [
        "value",
        "md5",
        "content_type",
        "expires_at",
        "ttl",
        "key_id",
        "live",
    ]
    .map(|c| format!(", (SELECT {c} FROM o)"))
    .concat();
    log_around(
        schema,
        key,
        Around {
            before: &format!("{old}, "),
            write,
            op: &format!("'{op}'"),
            columns: &columns,
            filter: "",
        },
    )
}

/// What [`log_around`] puts around the counter bump and the change log.
#[derive(Default)]
struct Around<'a> {
    /// CTEs before `w`, each followed by `, `.
    before: &'a str,
    /// The write `w`: a statement returning [`WRITTEN`] or [`REMOVED`] columns.
    write: &'a str,
    /// The op of each change, as SQL over `w` (a literal, or `w.op`).
    op: &'a str,
    /// More columns of the answer, each after `, `.
    columns: &'a str,
    /// A `WHERE` on the answer, if any.
    filter: &'a str,
}

/// The one statement of [`logged`] and its variants.
fn log_around(schema: &str, key: &str, around: Around<'_>) -> String {
    let Around {
        before,
        write,
        op,
        columns,
        filter,
    } = around;
    let revisions = format!("{schema}.kvs_revision");
    let log = format!("{schema}.kvs_change");
    let ns = "PARTITION BY w.workspace, w.namespace";
    format!(
        "WITH {before}w AS ({write}), \
         r AS (INSERT INTO {revisions} AS v (workspace, namespace, revision) \
         SELECT workspace, namespace, count(*) FROM w GROUP BY workspace, namespace \
         ORDER BY workspace, namespace ON CONFLICT (workspace, namespace) \
         DO UPDATE SET revision = v.revision + excluded.revision \
         RETURNING workspace, namespace, revision), \
         c AS (INSERT INTO {log} (workspace, namespace, revision, op, key, md5, expire_at) \
         SELECT w.workspace, w.namespace, r.revision - count(*) OVER ({ns}) \
         + row_number() OVER ({ns} ORDER BY w.{key}), {op}, w.key, w.md5, w.expire_at \
         FROM w JOIN r ON r.workspace = w.workspace AND r.namespace = w.namespace \
         RETURNING workspace, namespace, key, revision) \
         SELECT workspace, namespace, key, revision{columns} FROM c{filter}"
    )
}

/// The namespace `$1`/`$2`'s current revision (0 before its first change)
/// and oldest logged one, and up to `$6` of its changes after revision `$3`
/// of keys from `$4` and below `$5` (when not NULL), in revision order. One
/// statement, so one snapshot: the changes are exactly those up to `current`.
/// The left join keeps the one row of revisions when no change matches.
fn changes(schema: &str, key: &str) -> String {
    let ns = "workspace = $1 AND namespace = $2";
    format!(
        "SELECT s.current, s.oldest, c.revision, c.op, c.key, c.md5, \
         ceil(extract(epoch FROM c.expire_at))::INT8 FROM \
         (SELECT coalesce((SELECT revision FROM {schema}.kvs_revision WHERE {ns}), 0) AS current, \
         (SELECT min(revision) FROM {schema}.kvs_change WHERE {ns}) AS oldest) AS s \
         LEFT JOIN LATERAL (SELECT revision, op, key, md5, expire_at FROM {schema}.kvs_change \
         WHERE {ns} AND revision > $3 AND revision <= s.current AND {key} >= $4 \
         AND ($5::TEXT IS NULL OR {key} < $5) ORDER BY revision LIMIT $6) AS c ON true \
         ORDER BY c.revision"
    )
}

/// Deletes up to `$2` changes logged more than `$1` milliseconds ago. Of
/// each namespace with such changes it deletes every change up to the
/// newest old one, oldest first, so a namespace's log stays contiguous even
/// where commit times and revisions disagree by a few milliseconds.
fn prune(schema: &str) -> String {
    let log = format!("{schema}.kvs_change");
    format!(
        "DELETE FROM {log} WHERE (workspace, namespace, revision) IN \
         (SELECT c.workspace, c.namespace, c.revision FROM {log} AS c JOIN \
         (SELECT workspace, namespace, max(revision) AS upto FROM \
         (SELECT workspace, namespace, revision FROM {log} \
         WHERE changed_at < now() - $1::INT8 * INTERVAL '1 millisecond' \
         ORDER BY changed_at LIMIT $2) AS o GROUP BY workspace, namespace) AS m \
         ON c.workspace = m.workspace AND c.namespace = m.namespace AND c.revision <= m.upto \
         ORDER BY c.workspace, c.namespace, c.revision LIMIT $2)"
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
        let crdb = Statements::new(Flavor::Cockroach, "\"s\"");
        assert!(
            crdb.get.ends_with(
                "namespace = $2 AND key = $3 AND (expire_at IS NULL OR expire_at > now())"
            ),
            "{}",
            crdb.get
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
        let live = "(expire_at IS NULL OR expire_at > now())";
        let from = r#"SELECT key FROM "hulykvs".kvs WHERE workspace = $1 AND namespace = $2"#;
        let order = r#"ORDER BY key COLLATE "C" LIMIT"#;
        // Each listing compares only the bounds it has.
        assert_eq!(
            pg.list[Bounds::Between as usize],
            format!(
                r#"{from} AND key COLLATE "C" >= $3 AND key COLLATE "C" < $4 AND {live} {order} $5"#
            )
        );
        assert_eq!(
            pg.list[Bounds::From as usize],
            format!(r#"{from} AND key COLLATE "C" >= $3 AND {live} {order} $4"#)
        );
        assert_eq!(
            pg.list[Bounds::Whole as usize],
            format!("{from} AND {live} {order} $3")
        );
        assert_eq!(Bounds::of("", None), Bounds::Whole);
        assert_eq!(Bounds::of("a", None), Bounds::From);
        assert_eq!(Bounds::of("a", Some("b")), Bounds::Between);
        // A page is the revision and its list (the caller asks for one key
        // more than the page), as one array or joined: on PostgreSQL, the
        // list without the expiry test unless a key of the namespace has
        // expired.
        let tested = &pg.list[Bounds::Between as usize];
        let untested = tested.replace(&format!(" AND {live}"), "");
        assert_ne!(&untested, tested);
        let both = |untested: &str, tested: &str| {
            format!(
                "SELECT coalesce((SELECT revision FROM \"hulykvs\".kvs_revision WHERE \
                 workspace = $1 AND namespace = $2), 0)::INT8, CASE WHEN coalesce((SELECT \
                 min(expire_at) FROM \"hulykvs\".kvs WHERE workspace = $1 AND namespace = $2 \
                 AND expire_at IS NOT NULL) > now(), true) THEN {untested} ELSE {tested} END"
            )
        };
        assert_eq!(
            pg.list_page[Bounds::Between as usize],
            both(&format!("ARRAY({untested})"), &format!("ARRAY({tested})"))
        );
        // The same page joined: its count and a quote, then the keys
        // joined by `","`.
        let joined = |scan: &str| {
            format!(
                "(SELECT count(*)::TEXT || '\"' || coalesce(string_agg(key, '\",\"'), '') \
                 FROM ({scan}) AS page)"
            )
        };
        let pg_joined = pg.list_joined.as_ref().expect("PostgreSQL joins pages");
        assert_eq!(
            pg_joined[Bounds::Between as usize],
            both(&joined(&untested), &joined(tested))
        );
        let crdb = Statements::new(Flavor::Cockroach, "\"s\"");
        for sql in &crdb.list {
            assert!(!sql.contains("COLLATE"), "{sql}");
        }
        assert!(crdb.list[Bounds::From as usize].ends_with(
            "key >= $3 AND (expire_at IS NULL OR expire_at > now()) ORDER BY key LIMIT $4"
        ));
        assert!(crdb.list_joined.is_none(), "CockroachDB lists arrays");
        assert!(crdb.list_page[Bounds::Whole as usize]
            .ends_with(&format!("ARRAY({})", crdb.list[Bounds::Whole as usize])));
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
