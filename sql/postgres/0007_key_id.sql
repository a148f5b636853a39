-- 0007_key_id: which encryption key sealed a value (SPEC §15).
--
-- What it changes: adds the nullable column {schema}.kvs.key_id and a
-- partial index kvs_key_id over the rows that have one. A row written with
-- HULY_ENCRYPTION_KEYS set holds its value sealed (nonce, ciphertext, tag)
-- and the id of the key that sealed it here; NULL means the value is the
-- plaintext: every row written before, and every row the previous service
-- writes. The index finds the key ids in use at start without reading the
-- table.
--
-- Why it is safe: a nullable column without a default is a catalog-only change
-- (short lock, lock_timeout set by the runner, retried). The index is built
-- CONCURRENTLY, blocking neither reads nor writes; a build that failed before
-- leaves an INVALID index, which the first statement removes (the index is
-- ours), and the runner records this migration only after the build succeeds.
ALTER TABLE {schema}.kvs ADD COLUMN IF NOT EXISTS key_id TEXT;
DROP INDEX CONCURRENTLY IF EXISTS {schema}.kvs_key_id;
CREATE INDEX CONCURRENTLY IF NOT EXISTS kvs_key_id
    ON {schema}.kvs (key_id) WHERE key_id IS NOT NULL;
