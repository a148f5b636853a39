-- 0003_changes: revisions and the change feed (SPEC §12).
--
-- What it changes: adds kvs_revision, one row per (workspace, namespace)
-- with the revision of its last change, and kvs_change, one row per change
-- (put, delete, expire) with the key, the new digest and expiry in unix
-- milliseconds, never the value. The writer thread bumps the revision and
-- appends the change in the transaction that writes the value; SQLite has one
-- writer, so revision order is commit order.
--
-- Why it is safe: new tables only, created in one transaction under the write lock.
CREATE TABLE IF NOT EXISTS kvs_revision (
    workspace TEXT NOT NULL,
    namespace TEXT NOT NULL,
    revision  INTEGER NOT NULL,
    PRIMARY KEY (workspace, namespace)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kvs_change (
    workspace  TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    op         TEXT NOT NULL,
    key        TEXT NOT NULL,
    md5        BLOB,
    expire_at  INTEGER,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, namespace, revision)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kvs_change_changed_at ON kvs_change (changed_at);
