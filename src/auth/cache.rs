//! Tokens already verified, by their exact text: a service sends the same
//! token with every request, and checking its HS256 signature and parsing
//! its claims again each time is work whose answer does not change, except
//! with time, which is checked on every hit (`exp`, `nbf`).
//!
//! Only tokens that verified are kept, so filling the cache needs the
//! secret. It holds at most [`CAPACITY`] tokens; when full it starts over
//! (empty), which bounds memory without bookkeeping on the hot path.
//!
//! Keys are hashed with foldhash (seeded per process), not SipHash: a token
//! is hashed on every request, and SipHash over its few hundred bytes cost
//! more than the rest of the lookup (issue #29). Only tokens that verified
//! are inserted, so no client can choose the keys that collide.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Accepted, AuthError, Claims};

/// Most tokens kept.
pub const CAPACITY: usize = 4096;
/// Longest token kept: longer ones are verified every time (a token of
/// Huly's services is a few hundred bytes).
const LONGEST: usize = 2048;

/// Verified tokens and their claims.
#[derive(Debug, Default)]
pub struct Verified {
    tokens: RwLock<HashMap<Box<str>, Accepted, foldhash::fast::RandomState>>,
}

impl Verified {
    /// The claims of `token` if it verified before and `now` (unix
    /// seconds) is within its `nbf`/`exp`; `Some(Err)` when it has expired
    /// or is not valid yet; `None` when it is not known.
    pub fn get(&self, token: &str, now: u64) -> Option<Result<Accepted, AuthError>> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let accepted = tokens.get(token)?;
        Some(in_time(&accepted.claims, now).map(|()| accepted.clone()))
    }

    /// Keeps `token`'s verified claims and the secret that verified them.
    pub fn insert(&self, token: &str, accepted: Accepted) {
        if token.len() > LONGEST {
            return;
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= CAPACITY {
            tokens.clear();
        }
        tokens.insert(token.into(), accepted);
    }
}

/// The time checks jsonwebtoken makes (no leeway).
fn in_time(claims: &Claims, now: u64) -> Result<(), AuthError> {
    if claims.exp.is_some_and(|exp| exp < now) {
        return Err(AuthError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn claims(exp: Option<u64>, nbf: Option<u64>) -> Accepted {
        Accepted {
            claims: Arc::new(Claims {
                account: uuid::Uuid::nil(),
                workspace: None,
                extra: Default::default(),
                exp,
                nbf,
            }),
            secret: super::super::SecretUsed::Current,
        }
    }

    #[test]
    fn hits_honour_exp_and_nbf_and_the_cache_stays_bounded() {
        let cache = Verified::default();
        assert!(cache.get("t", 100).is_none());
        cache.insert("t", claims(Some(200), Some(50)));
        assert!(matches!(cache.get("t", 100), Some(Ok(_))));
        assert!(
            matches!(cache.get("t", 200), Some(Ok(_))),
            "exp is inclusive, as jsonwebtoken's"
        );
        assert_eq!(
            cache.get("t", 201).map(|r| r.err()),
            Some(Some(AuthError::Expired))
        );
        assert_eq!(
            cache.get("t", 49).map(|r| r.err()),
            Some(Some(AuthError::NotYetValid))
        );
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("token {i}"), claims(None, None));
        }
        assert!(cache.tokens.read().unwrap().len() <= CAPACITY);
        cache.insert(&"x".repeat(LONGEST + 1), claims(None, None));
        assert!(cache.get(&"x".repeat(LONGEST + 1), 0).is_none());
    }
}
