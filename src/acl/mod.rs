//! Access control by namespace (SPEC §14): the policy of `HULY_ACL_FILE`
//! in force, reloaded when the file changes or on SIGHUP, and the one
//! question the router asks of it: may this token do this to that
//! namespace? A file that does not load keeps the last good policy.
//!
//! Deciding takes the policy's read lock and nothing else: no allocation,
//! and only the rules of the token's service and account are looked at.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub mod glob;
pub mod index;
pub mod policy;

pub use policy::{Access, Identity, Policy, PolicyError, Rule};

/// Why the policy file cannot be used, naming the file and the line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AclError {
    #[error("{file}: {why}")]
    Unreadable { file: String, why: String },
    #[error("{file}: {error}")]
    Invalid { file: String, error: PolicyError },
}

/// Reads and compiles the policy file at `path`.
pub fn read_policy(path: &Path) -> Result<Policy, AclError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| AclError::Unreadable {
        file: file.clone(),
        why: e.to_string(),
    })?;
    Policy::parse(&text).map_err(|error| AclError::Invalid { file, error })
}

/// The policy in force.
#[derive(Debug)]
pub struct Acl {
    file: PathBuf,
    current: RwLock<Arc<Policy>>,
}

impl Acl {
    /// Loads the file; an error here stops `serve` at start.
    pub fn load(file: PathBuf) -> Result<Arc<Acl>, AclError> {
        let policy = read_policy(&file)?;
        Ok(Arc::new(Acl {
            file,
            current: RwLock::new(Arc::new(policy)),
        }))
    }

    /// Whether `who` may do `access` to `namespace`.
    pub fn allows(&self, who: &Identity<'_>, namespace: &str, access: Access) -> bool {
        let policy = match self.current.read() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        policy.decide(who, namespace, access).is_some()
    }

    /// Whether any rule is for `who` (see [`Policy::knows`]).
    pub fn knows(&self, who: &Identity<'_>) -> bool {
        match self.current.read() {
            Ok(p) => p.knows(who),
            Err(poisoned) => poisoned.into_inner().knows(who),
        }
    }

    /// Loads the file again; on failure the policy in force stays.
    pub fn reload(&self) -> Result<usize, AclError> {
        let policy = read_policy(&self.file)?;
        let rules = policy.rules().len();
        match self.current.write() {
            Ok(mut p) => *p = Arc::new(policy),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
        }
        Ok(rules)
    }

    /// Reloads on SIGHUP, and when the file changes (checked every `poll`).
    pub fn watch(self: Arc<Self>, poll: Duration) {
        crate::reload::on_change(vec![self.file.clone()], poll, move || match self.reload() {
            Ok(rules) => {
                tracing::info!(file = %self.file.display(), rules, "ACL policy reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "ACL policy reload failed; the previous policy stays in force")
            }
        });
    }
}
