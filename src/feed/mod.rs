//! The change feed (SPEC §12) on this instance: one [`Channel`] per watched
//! namespace, filled by one reader task that queries the store's change log
//! when woken (a write through this instance at once, a write through another
//! instance by the store's notifications on PostgreSQL) and every
//! `HULY_WATCH_POLL` in any case (CockroachDB has no notifications; other
//! processes on one SQLite file neither). Streams and long polls read from the
//! channel, or from the store while replaying history older than it.
//!
//! Memory is bounded: a channel keeps at most `HULY_WATCH_BUFFER` events,
//! and a stream further behind than that ends (`too_slow`) instead of
//! buffering. A channel and its task go when its last subscriber does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

pub mod channel;
pub mod retention;
pub mod sse;

use crate::store::changes::{ChangeQuery, Revision, Unreadable};
use crate::store::Store;
use channel::Channel;

/// Changes one reader query takes at most.
pub const READ_PAGE: usize = 1000;

/// The feed's settings (`HULY_WATCH_POLL`, `HULY_WATCH_BUFFER`,
/// `HULY_CHANGES_RETENTION`).
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    pub poll: Duration,
    pub buffer: usize,
    pub retention: Duration,
}

/// The channels of this instance, by workspace, then namespace.
type Channels = HashMap<Uuid, HashMap<String, Arc<Channel>>>;

/// The change feed of one store.
pub struct Feed<S> {
    shared: Arc<Shared<S>>,
}

struct Shared<S> {
    store: Arc<S>,
    settings: FeedSettings,
    channels: Mutex<Channels>,
    /// Set when the service shuts down: streams and long polls end.
    closing: watch::Sender<bool>,
}

/// A subscriber's hold on a channel; the channel lives while any is held.
pub struct Subscription {
    pub channel: Arc<Channel>,
}

impl Subscription {
    /// Counts a subscriber of `channel` (callers hold the channels' lock).
    fn to(channel: &Arc<Channel>) -> Subscription {
        channel.subscribe();
        Subscription {
            channel: Arc::clone(channel),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.channel.unsubscribe();
    }
}

impl<S: Store> Feed<S> {
    pub fn new(store: Arc<S>, settings: FeedSettings) -> Feed<S> {
        Feed {
            shared: Arc::new(Shared {
                store,
                settings,
                channels: Mutex::new(HashMap::new()),
                closing: watch::Sender::new(false),
            }),
        }
    }

    /// Starts what needs the migrated store: notifications from other
    /// instances where the engine has them, and the pruning of old changes.
    pub fn start(&self) {
        let weak = Arc::downgrade(&self.shared);
        let listening = self.shared.store.watch_others(Arc::new(move |changed| {
            if let Some(shared) = weak.upgrade() {
                shared.wake(changed);
            }
        }));
        tracing::debug!(
            listening,
            poll = ?self.shared.settings.poll,
            "change feed started"
        );
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            retention::prune_forever(&*shared.store, shared.settings.retention).await;
        });
    }

    /// A change was committed in `namespace` through this instance: its
    /// watchers here wake at once, other instances are told.
    pub fn written(&self, workspace: Uuid, namespace: &str) {
        self.shared.wake(Some((workspace, namespace)));
        self.shared.store.announce(workspace, namespace);
    }

    /// Holds the channel of `namespace`, starting it at `current` (the
    /// namespace's revision, just read by the caller) when this is its first
    /// subscriber.
    pub fn subscribe(&self, workspace: Uuid, namespace: &str, current: Revision) -> Subscription {
        let mut channels = self.shared.lock();
        let of_workspace = channels.entry(workspace).or_default();
        if let Some(channel) = of_workspace.get(namespace) {
            return Subscription::to(channel);
        }
        let channel = Arc::new(Channel::new(current, self.shared.settings.buffer));
        of_workspace.insert(namespace.to_owned(), Arc::clone(&channel));
        let reader = Reader {
            shared: Arc::downgrade(&self.shared),
            channel: Arc::clone(&channel),
            workspace,
            namespace: namespace.to_owned(),
        };
        tokio::spawn(reader.run());
        Subscription::to(&channel)
    }

    /// Holds the channel of `namespace` if it is already watched here.
    pub fn subscribe_existing(&self, workspace: Uuid, namespace: &str) -> Option<Subscription> {
        let channels = self.shared.lock();
        Some(Subscription::to(channels.get(&workspace)?.get(namespace)?))
    }

    /// Follows shutdown: `true` once streams should end.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.shared.closing.subscribe()
    }

    /// Ends every stream and long poll (the service is shutting down).
    pub fn close(&self) {
        self.shared.closing.send_replace(true);
    }

    /// The store the feed reads.
    pub fn store(&self) -> &S {
        &self.shared.store
    }
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the reader of `changed`, or of every channel.
    fn wake(&self, changed: Option<(Uuid, &str)>) {
        let channels = self.lock();
        match changed {
            Some((workspace, namespace)) => {
                if let Some(channel) = channels.get(&workspace).and_then(|c| c.get(namespace)) {
                    channel.wake.notify_one();
                }
            }
            None => channels
                .values()
                .flat_map(HashMap::values)
                .for_each(|channel| channel.wake.notify_one()),
        }
    }
}

/// Resolves once `closing` turns true (at once if it is).
pub async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` answers must not live across an await.
    let _ = closing.wait_for(|closing| *closing).await.map(|_| ());
}

/// Resolves once `head` is above `revision`.
pub async fn passed(head: &mut watch::Receiver<Revision>, revision: Revision) {
    let _ = head.wait_for(|head| *head > revision).await.map(|_| ());
}

/// The task that fills one channel.
struct Reader<S> {
    shared: Weak<Shared<S>>,
    channel: Arc<Channel>,
    workspace: Uuid,
    namespace: String,
}

impl<S: Store> Reader<S> {
    async fn run(self) {
        let mut failing = false;
        loop {
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            if self.gone(&shared) {
                return;
            }
            let full = match self.read(&shared).await {
                Ok(full) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(namespace = %self.namespace, "reading the change log works again");
                    }
                    full
                }
                Err(e) => {
                    // Once per outage, not once per poll.
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(namespace = %self.namespace, error = %e, "reading the change log failed; retrying every poll");
                    }
                    false
                }
            };
            if full {
                continue;
            }
            let poll = shared.settings.poll;
            let mut closing = shared.closing.subscribe();
            drop(shared);
            tokio::select! {
                () = self.channel.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = closed(&mut closing) => {}
            }
        }
    }

    /// Removes the channel when nobody watches it (under the map's lock,
    /// where subscribers are added, so none can slip in).
    fn gone(&self, shared: &Shared<S>) -> bool {
        let mut channels = shared.lock();
        if !self.channel.unwatched() && !*shared.closing.borrow() {
            return false;
        }
        if let Some(of_workspace) = channels.get_mut(&self.workspace) {
            if of_workspace
                .get(&self.namespace)
                .is_some_and(|c| Arc::ptr_eq(c, &self.channel))
            {
                of_workspace.remove(&self.namespace);
            }
            if of_workspace.is_empty() {
                channels.remove(&self.workspace);
            }
        }
        true
    }

    /// Reads the next page after the head into the channel; `true` when the
    /// page was full (more may follow at once).
    async fn read(&self, shared: &Shared<S>) -> Result<bool, crate::store::StoreError> {
        let head = self.channel.head();
        // A page never exceeds the buffer: a stream at the head before it
        // must still find its next event after it.
        let limit = READ_PAGE.min(shared.settings.buffer);
        let page = shared
            .store
            .changes(ChangeQuery {
                workspace: self.workspace,
                namespace: &self.namespace,
                after: head,
                prefix: "",
                limit,
            })
            .await?;
        if let Err(Unreadable::Compacted { .. }) = page.readable_from(head) {
            tracing::warn!(namespace = %self.namespace, head, "the change log was pruned past a watched revision; its streams end as too slow");
            self.channel.restart_at(page.current);
            return Ok(false);
        }
        let full = page.changes.len() >= limit;
        let reached = page.reached(limit);
        self.channel.append(page.changes, reached);
        Ok(full)
    }
}
