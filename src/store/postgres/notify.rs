//! Wake-ups between instances on PostgreSQL: one dedicated connection per
//! instance LISTENs on a channel named after the schema, and sends, after
//! this instance's writes commit, one notification per namespace written,
//! the namespaces of 5 ms in one statement. Watchers of other instances wake
//! within milliseconds instead of at their next poll.
//!
//! Best effort by design: the NOTIFY is sent after the write commits, so a
//! crash in between, a full queue or a lost connection loses wake-ups, never
//! changes. Watchers also poll every `HULY_WATCH_POLL`, and after the
//! connection comes back every watcher is woken once. The NOTIFY is not in
//! the write's own transaction on purpose: PostgreSQL serializes the commits
//! of every transaction that notifies, which would undo group commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use super::connect::Hosts;
use crate::store::Wake;

/// Announcements waiting to be sent; beyond this they are dropped (the
/// other instances' polling covers them).
const QUEUE: usize = 4096;
/// Shortest time between two NOTIFY statements: writes in between are
/// announced together, one notification per namespace, so a busy instance
/// sends at most 200 statements a second whatever its write rate.
const NOTIFY_GAP: Duration = Duration::from_millis(5);
/// Most namespaces one NOTIFY statement carries.
const PER_STATEMENT: usize = 256;

/// The sending side of this instance's LISTEN/NOTIFY connection.
pub(super) struct Notifier {
    queue: mpsc::Sender<(Uuid, String)>,
}

impl Notifier {
    /// Starts the connection task (it reconnects by itself until the
    /// process ends) for the schema `schema_name`.
    pub(super) fn start(hosts: Arc<Hosts>, schema_name: &str, wake: Wake) -> Notifier {
        let (queue, announced) = mpsc::channel(QUEUE);
        let link = Link {
            hosts,
            channel: channel_name(schema_name),
            instance: Uuid::new_v4().simple().to_string(),
            wake,
        };
        tokio::spawn(link.run(announced));
        Notifier { queue }
    }

    /// Queues a NOTIFY for `namespace`; never waits.
    pub(super) fn announce(&self, workspace: Uuid, namespace: &str) {
        let _ = self.queue.try_send((workspace, namespace.to_owned()));
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
}

impl Link {
    async fn run(self, mut announced: mpsc::Receiver<(Uuid, String)>) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.session(&mut announced).await {
                Ok(()) => return, // the store is gone
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications: connection lost; watchers poll until it is back");
                }
            }
            // Announcements made while disconnected are dropped.
            while announced.try_recv().is_ok() {}
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection's life: LISTEN, then wake on notifications and send
    /// announcements until it fails. `Ok` when the store is dropped.
    async fn session(&self, announced: &mut mpsc::Receiver<(Uuid, String)>) -> Result<(), String> {
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
        let mut pending: HashSet<(Uuid, String)> = HashSet::new();
        let mut next_send = tokio::time::Instant::now();
        loop {
            let due = !pending.is_empty();
            let room = pending.len() < PER_STATEMENT;
            tokio::select! {
                note = notes.recv() => {
                    let Some(note) = note else {
                        return Err("the connection closed".to_owned());
                    };
                    if let Some((workspace, namespace)) = parse_payload(&self.instance, &note) {
                        (self.wake)(Some((workspace, namespace)));
                    }
                }
                announcement = announced.recv(), if room => {
                    let Some(announcement) = announcement else { return Ok(()) };
                    pending.insert(announcement);
                }
                () = tokio::time::sleep_until(next_send), if due => {
                    let payloads: Vec<String> = pending
                        .drain()
                        .map(|(ws, ns)| payload(&self.instance, ws, &ns))
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
}
