//! Schema migrations as every engine keeps them: the embedded SQL files of
//! `sql/`, the history of what ran, the status `hulykvs migrate --status`
//! prints, and the gate that keeps data operations out until they are applied.
//! Each engine applies them under a lock every instance honours and records
//! them in a history table of its own (`hulykvs_migrations`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::StoreError;

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

/// `Ok` when every migration of `states` is applied; else an error naming
/// the pending ones (for a store that may not migrate, as a dump's source).
pub fn require_applied(states: &[MigrationState]) -> Result<(), StoreError> {
    let pending: Vec<&str> = states
        .iter()
        .filter(|state| state.applied_at.is_none())
        .map(|state| state.name.as_str())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    Err(StoreError::Internal(format!(
        "the database lacks migrations {}: run `hulykvs migrate` with this release first",
        pending.join(", ")
    )))
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.applied_at {
            Some(at) => write!(f, "applied  {:04} {}  ({at})", self.version, self.name),
            None => write!(f, "pending  {:04} {}", self.version, self.name),
        }
    }
}

/// A history table as read: version → (name, applied at).
pub type History = BTreeMap<i64, (String, String)>;

/// The migrations of `known` that `history` does not record, in order.
pub fn pending<'a>(known: &'a [Migration], history: &History) -> Vec<&'a Migration> {
    known
        .iter()
        .filter(|m| !history.contains_key(&m.version))
        .collect()
}

/// Every known migration with its state, plus what `history` records beyond
/// them (applied by a newer release), ordered by version.
pub fn status(known: &[Migration], history: History) -> Vec<MigrationState> {
    let mut states: BTreeMap<i64, MigrationState> = history
        .into_iter()
        .map(|(version, (name, at))| {
            let state = MigrationState {
                version,
                name,
                applied_at: Some(at),
            };
            (version, state)
        })
        .collect();
    for m in known {
        let state = states.entry(m.version).or_insert(MigrationState {
            version: m.version,
            name: String::new(),
            applied_at: None,
        });
        // A known migration goes by the name this release gives it.
        m.name.clone_into(&mut state.name);
    }
    states.into_values().collect()
}

/// What an engine holds once its migrations are applied (for PostgreSQL, the
/// statements built for the detected dialect); until then every data
/// operation answers [`StoreError::Unavailable`].
#[derive(Debug)]
pub struct Migrated<T>(OnceLock<T>);

impl<T> Default for Migrated<T> {
    fn default() -> Self {
        Migrated(OnceLock::new())
    }
}

impl<T> Migrated<T> {
    /// Opens the gate with what `make` builds; a gate already open keeps its value.
    pub fn open(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(make)
    }

    /// The value, or `Unavailable` while migrations are not applied.
    pub fn get(&self) -> Result<&T, StoreError> {
        self.0
            .get()
            .ok_or_else(|| StoreError::Unavailable("database not migrated yet".to_owned()))
    }

    /// Whether migrations are applied.
    pub fn is_open(&self) -> bool {
        self.0.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration {
            version: 1,
            name: "0001_a",
            sql: "",
        },
        Migration {
            version: 2,
            name: "0002_b",
            sql: "",
        },
    ];

    #[test]
    fn status_merges_the_history_into_the_known_migrations() {
        let mut history = History::new();
        history.insert(1, ("0001_old_name".to_owned(), "t1".to_owned()));
        history.insert(7, ("0007_newer".to_owned(), "t7".to_owned()));
        let names: Vec<&str> = pending(KNOWN, &history).iter().map(|m| m.name).collect();
        assert_eq!(names, ["0002_b"]);
        let states = status(KNOWN, history);
        let shown: Vec<String> = states.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "applied  0001 0001_a  (t1)",
                "pending  0002 0002_b",
                "applied  0007 0007_newer  (t7)"
            ]
        );
    }

    #[test]
    fn the_gate_stays_shut_until_opened() {
        let gate = Migrated::default();
        assert!(matches!(gate.get(), Err(StoreError::Unavailable(_))));
        assert!(!gate.is_open());
        assert_eq!(*gate.open(|| 1), 1);
        assert_eq!(*gate.open(|| 2), 1, "opened once");
        assert_eq!(gate.get().ok(), Some(&1));
    }
}
