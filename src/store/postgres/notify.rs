//! Wake-ups between instances on PostgreSQL: one dedicated connection per
//! instance LISTENs on a channel named after the schema, and sends, after
//! this instance's writes commit, one notification per namespace written,
//! the namespaces of 25 ms in one statement. Watchers of other instances wake
//! within tens of milliseconds (SPEC: 100 ms) instead of at their next poll.
//!
//! Best effort by design: the NOTIFY is sent after the write commits, so a
//! crash in between, a full queue or a lost connection loses wake-ups, never
//! changes. Watchers also poll every `HULY_WATCH_POLL`, and after the
//! connection comes back every watcher is woken once. The NOTIFY is not in
//! the write's own transaction on purpose: PostgreSQL serializes the commits
//! of every transaction that notifies, which would undo group commit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use super::connect::Hosts;
use crate::store::Wake;

/// Namespaces waiting to be announced; beyond this they are dropped (the
/// other instances' polling covers them).
const QUEUE: usize = 4096;
/// Shortest time between two NOTIFY statements: writes in between are
/// announced together, one notification per namespace, so a busy instance
/// sends at most 40 statements a second whatever its write rate. The first
/// write after a quiet spell is announced at once. 5 ms (200 a second) cost
/// the server 9% of its CPU a PUT under sustained writes (issue #29,
/// docs/PERFORMANCE.md); 25 ms keeps a wake-up well inside SPEC's 100 ms.
const NOTIFY_GAP: Duration = Duration::from_millis(25);
/// Most namespaces one NOTIFY statement carries.
const PER_STATEMENT: usize = 256;

/// The sending side of this instance's LISTEN/NOTIFY connection.
pub(super) struct Notifier {
    pending: Arc<Pending>,
}

/// The namespaces written since the last NOTIFY, each once. A write of a
/// namespace already pending costs a lookup: no allocation, and no wake-up
/// of the connection's task, which is woken only when the set stops being
/// empty (issue #29: one wake-up a write was a cross-thread hand-off a PUT).
#[derive(Default)]
struct Pending {
    names: Mutex<Names>,
    /// Woken when the first namespace arrives, and when the store is gone.
    ready: Notify,
    closed: AtomicBool,
}

/// The pending namespaces by workspace (a lookup by `&str` allocates
/// nothing), and how many there are.
#[derive(Default)]
struct Names {
    by_workspace: HashMap<Uuid, HashSet<String>>,
    count: usize,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Names> {
        // A panic while holding the lock leaves a set of names, still whole.
        self.names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `namespace` unless it is pending already or the set is full;
    /// wakes the connection's task when it was empty.
    fn add(&self, workspace: Uuid, namespace: &str) {
        let mut names = self.lock();
        let Names {
            by_workspace,
            count,
        } = &mut *names;
        let pending = by_workspace
            .get(&workspace)
            .is_some_and(|n| n.contains(namespace));
        if pending || *count >= QUEUE {
            return;
        }
        by_workspace
            .entry(workspace)
            .or_default()
            .insert(namespace.to_owned());
        *count += 1;
        if *count == 1 {
            self.ready.notify_one();
        }
    }

    /// Takes up to `most` pending namespaces; says whether any are left.
    fn take(&self, most: usize) -> (Vec<(Uuid, String)>, bool) {
        let mut names = self.lock();
        let mut taken = Vec::new();
        names.by_workspace.retain(|&workspace, namespaces| {
            let room = most - taken.len();
            if namespaces.len() <= room {
                taken.extend(namespaces.drain().map(|n| (workspace, n)));
            } else {
                let some: Vec<String> = namespaces.iter().take(room).cloned().collect();
                for namespace in some {
                    namespaces.remove(&namespace);
                    taken.push((workspace, namespace));
                }
            }
            !namespaces.is_empty()
        });
        names.count -= taken.len();
        (taken, names.count > 0)
    }

    fn clear(&self) {
        *self.lock() = Names::default();
    }
}

impl Notifier {
    /// Starts the connection task (it reconnects by itself until the
    /// store is dropped) for the schema `schema_name`.
    pub(super) fn start(hosts: Arc<Hosts>, schema_name: &str, wake: Wake) -> Notifier {
        let pending = Arc::new(Pending::default());
        let link = Link {
            hosts,
            channel: channel_name(schema_name),
            instance: Uuid::new_v4().simple().to_string(),
            wake,
            pending: Arc::clone(&pending),
        };
        tokio::spawn(link.run());
        Notifier { pending }
    }

    /// Queues a NOTIFY for `namespace`; never waits.
    pub(super) fn announce(&self, workspace: Uuid, namespace: &str) {
        self.pending.add(workspace, namespace);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.pending.closed.store(true, Ordering::Release);
        self.pending.ready.notify_one();
    }
}

/// The channel of one schema: instances of two deployments sharing a
/// database under different schemas do not wake each other.
fn channel_name(schema_name: &str) -> String {
    let mut name = format!("hulykvs_{schema_name}");
    name.truncate(63);
    name
}

/// `instance/workspace/namespace`.
fn payload(instance: &str, workspace: Uuid, namespace: &str) -> String {
    format!("{instance}/{workspace}/{namespace}")
}

/// The namespace a payload names, unless this instance sent it.
fn parse_payload<'p>(own: &str, payload: &'p str) -> Option<(Uuid, &'p str)> {
    let mut parts = payload.splitn(3, '/');
    let (instance, workspace, namespace) = (parts.next()?, parts.next()?, parts.next()?);
    if instance == own {
        return None;
    }
    Some((Uuid::parse_str(workspace).ok()?, namespace))
}

struct Link {
    hosts: Arc<Hosts>,
    channel: String,
    instance: String,
    wake: Wake,
    pending: Arc<Pending>,
}

impl Link {
    async fn run(self) {
        let mut delay = Duration::from_millis(200);
        while !self.pending.closed.load(Ordering::Acquire) {
            match self.session().await {
                Ok(()) => return, // the store is gone
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications: connection lost; watchers poll until it is back");
                }
            }
            // Announcements made while disconnected are dropped.
            self.pending.clear();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection's life: LISTEN, then wake on notifications and send
    /// announcements until it fails. `Ok` when the store is dropped.
    async fn session(&self) -> Result<(), String> {
        let lost = |e: tokio_postgres::Error| e.to_string();
        // Each host within its connect timeout; a demoted primary or a
        // standby is skipped as the pool skips it (target_session_attrs).
        let connected = self.hosts.connect().await.map_err(|failed| failed.why)?;
        let (client, mut connection) = (connected.client, connected.connection);
        let (notes_tx, mut notes) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if notes_tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "notification connection ended");
                        return;
                    }
                }
            }
        });
        // A host gone silent cuts this connection too: the session ends
        // and the next one connects to a host that answers.
        self.hosts.register(connected.host, driver.abort_handle());
        let _stop_driver = AbortOnDrop(driver);
        let listen = format!("LISTEN \"{}\"", self.channel);
        client.batch_execute(&listen).await.map_err(lost)?;
        tracing::debug!(channel = %self.channel, "listening for changes made through other instances");
        // Whatever happened while not listening is unknown: wake every watcher.
        (self.wake)(None);
        let notify = client
            .prepare("SELECT pg_notify($1, p) FROM unnest($2::TEXT[]) AS p")
            .await
            .map_err(lost)?;
        let mut due = false;
        let mut next_send = tokio::time::Instant::now();
        loop {
            tokio::select! {
                note = notes.recv() => {
                    let Some(note) = note else {
                        return Err("the connection closed".to_owned());
                    };
                    if let Some((workspace, namespace)) = parse_payload(&self.instance, &note) {
                        (self.wake)(Some((workspace, namespace)));
                    }
                }
                () = self.pending.ready.notified(), if !due => {
                    if self.pending.closed.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    due = true;
                }
                () = tokio::time::sleep_until(next_send), if due => {
                    let (taken, more) = self.pending.take(PER_STATEMENT);
                    due = more;
                    if taken.is_empty() {
                        continue;
                    }
                    let payloads: Vec<String> = taken
                        .iter()
                        .map(|(ws, ns)| payload(&self.instance, *ws, ns))
                        .collect();
                    client
                        .execute(&notify, &[&self.channel, &payloads])
                        .await
                        .map_err(lost)?;
                    next_send = tokio::time::Instant::now() + NOTIFY_GAP;
                }
            }
        }
    }
}

/// Stops the connection's driver task with the session.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_skip_our_own() {
        let ws = Uuid::new_v4();
        let p = payload("me", ws, "ns/with/slashes");
        assert_eq!(parse_payload("other", &p), Some((ws, "ns/with/slashes")));
        assert_eq!(parse_payload("me", &p), None);
        assert_eq!(parse_payload("other", "garbage"), None);
        assert_eq!(channel_name("hulykvs"), "hulykvs_hulykvs");
        assert_eq!(channel_name(&"s".repeat(63)).len(), 63);
    }

    #[tokio::test]
    async fn a_namespace_pending_is_announced_once_and_wakes_the_task_once() {
        let pending = Pending::default();
        let (ws, other) = (Uuid::new_v4(), Uuid::new_v4());
        pending.add(ws, "a");
        // The first namespace left a wake-up for the connection's task.
        tokio::time::timeout(Duration::from_secs(1), pending.ready.notified())
            .await
            .expect("woken by the first namespace");
        pending.add(ws, "a");
        pending.add(ws, "b");
        pending.add(other, "a");
        // Not empty before: no second wake-up.
        let again = tokio::time::timeout(Duration::from_millis(50), pending.ready.notified());
        assert!(again.await.is_err(), "woken again while not empty");

        let (first, more) = pending.take(2);
        assert_eq!((first.len(), more), (2, true));
        let (rest, more) = pending.take(2);
        assert_eq!((rest.len(), more), (1, false));
        let mut all: Vec<(Uuid, String)> = first.into_iter().chain(rest).collect();
        all.sort();
        let mut want = vec![
            (ws, "a".to_owned()),
            (ws, "b".to_owned()),
            (other, "a".to_owned()),
        ];
        want.sort();
        assert_eq!(all, want);

        // Empty again: the next namespace wakes the task again.
        pending.add(ws, "a");
        tokio::time::timeout(Duration::from_secs(1), pending.ready.notified())
            .await
            .expect("woken once the set had emptied");
    }

    #[test]
    fn a_full_set_drops_new_namespaces() {
        let pending = Pending::default();
        let ws = Uuid::new_v4();
        for n in 0..QUEUE + 10 {
            pending.add(ws, &n.to_string());
        }
        let (taken, more) = pending.take(usize::MAX);
        assert_eq!((taken.len(), more), (QUEUE, false));
    }
}
