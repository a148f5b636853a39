-- 0001_kvs: the key-value table, in the layout the previous service created.
--
-- What it changes: creates {schema}.kvs when it is missing (a new database).
-- `{schema}` stands for the configured schema, quoted; the runner substitutes it.
--
-- Why it is safe: on a database the previous service set up, the table already
-- exists and IF NOT EXISTS makes this a no-op that reads the catalog only: no
-- lock on the table, no row touched.
CREATE TABLE IF NOT EXISTS {schema}.kvs (
    workspace UUID NOT NULL,
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    md5       BYTEA NOT NULL,
    value     BYTEA NOT NULL,
    PRIMARY KEY (workspace, namespace, key)
);
