-- 0007_key_id: which encryption key sealed a value (SPEC §15).
--
-- What it changes: adds the nullable column {schema}.kvs.key_id and a
-- partial index kvs_key_id over the rows that have one. A row written with
-- HULY_ENCRYPTION_KEYS set holds its value sealed and the id of the key that
-- sealed it here; NULL means the value is the plaintext (every row written
-- before, and every row the previous service writes). The index finds the
-- key ids in use at start without reading the table.
--
-- Why it is safe: CockroachDB adds a nullable column and builds an index as
-- online schema changes, without blocking reads or writes. Both statements
-- are idempotent, so a run cut short is simply run again.
ALTER TABLE {schema}.kvs ADD COLUMN IF NOT EXISTS key_id STRING;
CREATE INDEX IF NOT EXISTS kvs_key_id
    ON {schema}.kvs (key_id) WHERE key_id IS NOT NULL;
