-- 0002_expire_at: values that expire (Huly-TTL, Huly-Expire-At).
--
-- What it changes: adds the nullable column kvs.expire_at, the instant a value
-- expires in unix milliseconds by the database's clock, and a partial index
-- over the rows that have one, for the sweeper. NULL means "never expires".
--
-- Why it is safe: SQLite adds a nullable column without rewriting the table,
-- and the migration runs in one transaction under the write lock, so the
-- column and the index arrive together or not at all.
ALTER TABLE kvs ADD COLUMN expire_at INTEGER;
CREATE INDEX IF NOT EXISTS kvs_expire_at ON kvs (expire_at) WHERE expire_at IS NOT NULL;
