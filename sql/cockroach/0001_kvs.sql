-- 0001_kvs: the key-value table, in the layout the previous service created.
--
-- What it changes: creates {schema}.kvs when it is missing (a new database).
-- `{schema}` stands for the configured schema, quoted; the runner substitutes it.
-- CockroachDB spells BYTEA as BYTES and TEXT as STRING; the types are the same.
--
-- Why it is safe: on a database the previous service set up, the table already
-- exists and IF NOT EXISTS makes this a no-op: no row touched.
CREATE TABLE IF NOT EXISTS {schema}.kvs (
    workspace UUID NOT NULL,
    namespace STRING NOT NULL,
    key       STRING NOT NULL,
    md5       BYTES NOT NULL,
    value     BYTES NOT NULL,
    PRIMARY KEY (workspace, namespace, key)
);
