//! The embedded store: SQLite through rusqlite.
pub struct SqliteStore;
