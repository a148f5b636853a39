-- 0003_kvs_key_bytewise: an index that orders keys as raw bytes.
--
-- What it changes: adds index kvs_key_bytewise on
-- (workspace, namespace, key COLLATE "C"). Listings compare and sort keys with
-- COLLATE "C" (byte order, whatever the database collation is); the primary key
-- index follows the database collation, which may be linguistic, so without
-- this index a listing would sort the whole namespace on every page.
--
-- Why it is safe: CONCURRENTLY builds the index without blocking reads or
-- writes. A concurrent build that fails or is interrupted leaves an INVALID
-- index behind, and this migration is only recorded after it succeeds, so the
-- first statement removes such a leftover before building again; the index is
-- ours (the previous service never had one by this name). The runner executes
-- the two statements separately, as CONCURRENTLY cannot run in a transaction.
DROP INDEX CONCURRENTLY IF EXISTS {schema}.kvs_key_bytewise;
CREATE INDEX CONCURRENTLY IF NOT EXISTS kvs_key_bytewise
    ON {schema}.kvs (workspace, namespace, key COLLATE "C");
