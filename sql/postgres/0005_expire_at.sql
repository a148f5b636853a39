-- 0005_expire_at: values that expire (Huly-TTL, Huly-Expire-At).
--
-- What it changes: adds the nullable column {schema}.kvs.expire_at and a
-- partial index kvs_expire_at over the rows that have one, so the sweeper
-- finds expired rows without reading the table. NULL means "never expires":
-- every row written before, and every row the previous service writes during
-- a rolling upgrade or after a rollback, which is what it meant there.
--
-- Why it is safe: a nullable column without a default is a catalog-only change
-- (short lock, lock_timeout set by the runner, retried). The index is built
-- CONCURRENTLY, blocking neither reads nor writes; a build that failed before
-- leaves an INVALID index, which the first statement removes (the index is
-- ours), and the runner records this migration only after the build succeeds.
ALTER TABLE {schema}.kvs ADD COLUMN IF NOT EXISTS expire_at TIMESTAMPTZ;
DROP INDEX CONCURRENTLY IF EXISTS {schema}.kvs_expire_at;
CREATE INDEX CONCURRENTLY IF NOT EXISTS kvs_expire_at
    ON {schema}.kvs (expire_at) WHERE expire_at IS NOT NULL;
