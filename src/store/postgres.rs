//! PostgreSQL and CockroachDB through tokio-postgres and a deadpool pool.
pub struct PgStore;
