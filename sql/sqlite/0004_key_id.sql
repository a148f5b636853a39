-- 0004_key_id: which encryption key sealed a value (SPEC §15).
--
-- What it changes: adds the nullable column kvs.key_id, the id of the key
-- that sealed the row's value (HULY_ENCRYPTION_KEYS); NULL means the value
-- is the plaintext, as in every row written before. A partial index over
-- the sealed rows finds the key ids in use without reading the table.
--
-- Why it is safe: SQLite adds a nullable column without rewriting the table,
-- and the migration runs in one transaction under the write lock, so the
-- column and the index arrive together or not at all.
ALTER TABLE kvs ADD COLUMN key_id TEXT;
CREATE INDEX IF NOT EXISTS kvs_key_id ON kvs (key_id) WHERE key_id IS NOT NULL;
