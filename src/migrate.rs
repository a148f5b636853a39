//! Schema migrations: the embedded SQL files of `sql/`, in order, per dialect.
//! Each store applies them under a lock every instance honours and records
//! them in its own history table (`hulykvs_migrations`).

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Position in the sequence, from 1.
    pub version: i64,
    /// File name without extension, such as `0001_kvs`.
    pub name: &'static str,
    /// The SQL to run.
    pub sql: &'static str,
}

/// Whether a migration has run, for `hulykvs migrate --status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub version: i64,
    pub name: String,
    /// When it was applied (as the database prints it), or `None` while pending.
    pub applied_at: Option<String>,
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.applied_at {
            Some(at) => write!(f, "applied  {:04} {}  ({at})", self.version, self.name),
            None => write!(f, "pending  {:04} {}", self.version, self.name),
        }
    }
}
