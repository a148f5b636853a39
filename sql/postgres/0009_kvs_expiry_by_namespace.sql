-- 0009_kvs_expiry_by_namespace: a namespace's earliest expiry, read from an index.
--
-- What it changes: adds a partial index kvs_expiry_by_namespace on
-- (workspace, namespace, expire_at) over the rows that have an expiry. A
-- listing's page first reads the namespace's earliest expiry from it (one
-- descent); when no key of the namespace has expired, every key is live and
-- the page is read from kvs_key_bytewise without the expiry test. The test
-- is what made a listing dearer for the database than the plain statement:
-- kvs_key_live carries a NULL expire_at for every key that never expires, and
-- PostgreSQL reads the attributes of an index tuple with a NULL by its slow
-- path (docs/PERFORMANCE.md, issue #29). Rows without expiry are not in this
-- index, so writes of them touch it never; a row with one was already updated
-- outside HOT when its expiry changed (kvs_key_live carries it).
--
-- Why it is safe: CONCURRENTLY builds the index without blocking reads or
-- writes. A build that failed before leaves an INVALID index, which the first
-- statement removes (the index is ours), and the runner records this
-- migration only after the build succeeds. The previous release and the
-- previous service never name it.
DROP INDEX CONCURRENTLY IF EXISTS {schema}.kvs_expiry_by_namespace;
CREATE INDEX CONCURRENTLY IF NOT EXISTS kvs_expiry_by_namespace
    ON {schema}.kvs (workspace, namespace, expire_at) WHERE expire_at IS NOT NULL;
