-- 0001_kvs: creates the key-value table of the embedded store.
--
-- What it changes: adds table `kvs`, one row per value, keyed by
-- (workspace, namespace, key). `workspace` is the UUID as hyphenated lowercase
-- text; the default BINARY collation compares keys as raw bytes, the order the
-- API promises. `content_type` is nullable, as in the PostgreSQL layout, where
-- rows written by the previous service carry none.
--
-- Why it is safe: it only creates a table, and only if it is missing, so it
-- never touches existing data. It is a rowid table on purpose: values may be
-- megabytes, and WITHOUT ROWID tables suit only small rows.
CREATE TABLE IF NOT EXISTS kvs (
    workspace    TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    key          TEXT NOT NULL,
    md5          BLOB NOT NULL,
    value        BLOB NOT NULL,
    content_type TEXT,
    PRIMARY KEY (workspace, namespace, key)
);
