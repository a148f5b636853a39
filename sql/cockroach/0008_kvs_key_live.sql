-- 0008_kvs_key_live: nothing to do on CockroachDB.
--
-- What it changes: nothing. The PostgreSQL dialect adds an index carrying
-- each key's expiry so that listings need not read the table. CockroachDB's
-- primary index is the table: it holds every column of the row in key order,
-- so a listing's expiry test already reads nothing else. The file keeps the
-- version numbers of both dialects aligned.
--
-- Why it is safe: it reads nothing and writes nothing.
SELECT 1;
