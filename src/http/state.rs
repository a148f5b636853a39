//! What every request shares: the store and the settings the router and the
//! handlers read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::acl::Acl;
use crate::auth::Verifier;
use crate::config::{CorsOrigins, ServeConfig};
use crate::feed::{Feed, FeedSettings};
use crate::store::instrumented::Instrumented;
use crate::store::Store;
use crate::telemetry::registry::{registry, Registry};

/// What every request handler shares.
pub struct AppState<S> {
    /// The store, every operation timed for the metrics.
    pub store: Arc<Instrumented<S>>,
    /// The change feed of the store: watchers, and whom a write wakes.
    pub feed: Feed<Instrumented<S>>,
    pub(super) verifier: Verifier,
    pub(super) payload_limit: u64,
    /// Longest expiry a write may ask for, in seconds.
    pub(super) max_ttl: Option<u64>,
    pub(super) default_workspace: Uuid,
    pub(super) body_timeout: Duration,
    /// Set once migrations have been applied; `/readyz` answers 503 before.
    pub migrated: AtomicBool,
    /// Browser origins that get CORS headers.
    pub(super) cors: Arc<CorsOrigins>,
    /// The metrics `/metrics` renders; `None` when `HULY_METRICS=off`.
    pub(super) metrics: Option<&'static Registry>,
    /// Whether `/console` serves the web console.
    pub(super) console: bool,
    /// The namespace ACL; `None` without `HULY_ACL_FILE`.
    pub(super) acl: Option<Arc<Acl>>,
}

impl<S: Store> AppState<S> {
    /// State for `store` under `config`; not ready until [`AppState::migrated`] is set.
    pub fn new(store: S, config: &ServeConfig) -> Self {
        let store = Arc::new(Instrumented(store));
        let settings = FeedSettings {
            poll: config.watch_poll,
            buffer: config.watch_buffer,
            retention: config.changes_retention,
        };
        AppState {
            feed: Feed::new(Arc::clone(&store), settings),
            store,
            verifier: Verifier::rotating(
                &config.token_secret,
                config.token_secret_previous.as_deref(),
            ),
            payload_limit: config.payload_limit,
            max_ttl: config.max_ttl,
            default_workspace: config.default_workspace,
            body_timeout: config.body_timeout,
            migrated: AtomicBool::new(false),
            cors: Arc::new(config.cors.clone()),
            metrics: if config.metrics { registry() } else { None },
            console: config.console,
            acl: None,
        }
    }

    /// The same state, enforcing `acl`.
    pub fn with_acl(self, acl: Option<Arc<Acl>>) -> Self {
        AppState { acl, ..self }
    }

    /// Whether migrations are applied: until then `/readyz` and the data
    /// routes answer `503` with code `migrating`.
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }
}
