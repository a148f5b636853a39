-- 0006_changes: revisions and the change feed (SPEC §12).
--
-- What it changes: adds two tables. {schema}.kvs_revision holds one row per
-- (workspace, namespace) with the revision of its last change; every write
-- bumps it in the statement that writes the value, so its row lock orders
-- the commits of one namespace and revision order is commit order.
-- {schema}.kvs_change holds one row per change (put, delete, expire): the
-- key, the new digest and expiry, never the value. changed_at serves the
-- background pruning of history older than HULY_CHANGES_RETENTION.
--
-- Why it is safe: new tables only (CockroachDB creates them online); the previous service never reads them, and
-- its writes during a rolling upgrade simply leave no change behind.
CREATE TABLE IF NOT EXISTS {schema}.kvs_revision (
    workspace UUID NOT NULL,
    namespace TEXT NOT NULL,
    revision  BIGINT NOT NULL,
    PRIMARY KEY (workspace, namespace)
);
CREATE TABLE IF NOT EXISTS {schema}.kvs_change (
    workspace  UUID NOT NULL,
    namespace  TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    op         TEXT NOT NULL,
    key        TEXT NOT NULL,
    md5        BYTES,
    expire_at  TIMESTAMPTZ,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, namespace, revision)
);
CREATE INDEX IF NOT EXISTS kvs_change_changed_at ON {schema}.kvs_change (changed_at);
