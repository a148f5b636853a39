-- 0005_expire_at: values that expire (Huly-TTL, Huly-Expire-At).
--
-- What it changes: adds the nullable column {schema}.kvs.expire_at and a
-- partial index kvs_expire_at over the rows that have one, so the sweeper
-- finds expired rows without reading the table. NULL means "never expires":
-- every row written before, and every row the previous service writes during
-- a rolling upgrade or after a rollback, which is what it meant there.
--
-- Why it is safe: CockroachDB adds a nullable column and builds an index as
-- online schema changes, without blocking reads or writes. Both statements
-- are idempotent, so a run cut short is simply run again.
ALTER TABLE {schema}.kvs ADD COLUMN IF NOT EXISTS expire_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS kvs_expire_at
    ON {schema}.kvs (expire_at) WHERE expire_at IS NOT NULL;
