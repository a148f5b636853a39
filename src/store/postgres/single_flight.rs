//! Identical listings under load share one statement. A listing that
//! finds another of the same page still waiting for a pooled connection
//! waits with it instead of queueing a statement of its own, and takes a
//! copy of its page. A listing that gets a connection at once runs alone:
//! an idle service pays for a map entry made and removed.
//!
//! What keeps it a listing's own answer: a group closes when its leader has
//! a connection, before its statement is sent, so the statement's snapshot
//! is taken after every member's request arrived and before any is
//! answered. A member that arrives later starts or joins the next group.
//! The page is the same for every member: they asked for the same
//! workspace, namespace, prefix, cursor and limit, and access was decided
//! before the store was asked.
//!
//! A leader whose request goes away (its client hung up) takes its group
//! with it; the members left start again, each as it would have alone.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// The groups of one kind of statement still waiting for a connection, by
/// what they ask.
pub(super) struct SingleFlight<K, T, E> {
    open: Mutex<Open<K, T, E>>,
}

struct Open<K, T, E> {
    /// foldhash: a listing hashes its namespace, prefix and cursor twice.
    groups: HashMap<K, Group<T, E>, foldhash::fast::RandomState>,
    /// Names the next group, so a leader removes its own and no other.
    next_id: u64,
}

/// The members waiting on one leader, each for a copy of its answer.
struct Group<T, E> {
    id: u64,
    members: Vec<oneshot::Sender<Result<T, E>>>,
}

impl<K, T, E> Default for SingleFlight<K, T, E> {
    fn default() -> Self {
        SingleFlight {
            open: Mutex::new(Open {
                groups: HashMap::default(),
                next_id: 0,
            }),
        }
    }
}

/// How a request takes part.
enum Role<T, E> {
    Leader(u64),
    Member(oneshot::Receiver<Result<T, E>>),
}

impl<K, T, E> SingleFlight<K, T, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open<K, T, E>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq + Clone, T: Clone, E: Clone> SingleFlight<K, T, E> {
    /// The answer to `key`: `work` run on the connection `checkout` gives,
    /// by this request or by the leader of the open group it joins.
    /// `shared` is told the size (its leader and members) of a group that
    /// served more than one request.
    pub(super) async fn run<C, CF, WF>(
        &self,
        key: &K,
        checkout: impl Fn() -> CF,
        work: impl Fn(C) -> WF,
        shared: impl Fn(usize),
    ) -> Result<T, E>
    where
        CF: Future<Output = Result<C, E>>,
        WF: Future<Output = Result<T, E>>,
    {
        loop {
            let role = {
                let mut open = self.lock();
                match open.groups.get_mut(key) {
                    Some(group) => {
                        let (tell, answer) = oneshot::channel();
                        group.members.push(tell);
                        Role::Member(answer)
                    }
                    None => {
                        let id = open.next_id;
                        open.next_id += 1;
                        open.groups.insert(
                            key.clone(),
                            Group {
                                id,
                                members: Vec::new(),
                            },
                        );
                        Role::Leader(id)
                    }
                }
            };
            match role {
                Role::Member(answer) => match answer.await {
                    Ok(answer) => return answer,
                    // The leader went away without an answer: start again.
                    Err(_) => continue,
                },
                Role::Leader(id) => {
                    let mut leading = Leading {
                        flight: self,
                        key: Some(key),
                        id,
                    };
                    let connection = checkout().await;
                    let members = leading.close();
                    let answer = match connection {
                        Ok(connection) => work(connection).await,
                        Err(e) => Err(e),
                    };
                    if !members.is_empty() {
                        shared(members.len() + 1);
                    }
                    for member in members {
                        // A member whose request went away takes nothing.
                        let _ = member.send(answer.clone());
                    }
                    return answer;
                }
            }
        }
    }
}

/// The open group of a leader that has no connection yet. Dropped before
/// it is closed (the leader's request went away), it removes the group, and
/// its members, their senders dropped, start again.
struct Leading<'a, K: Hash + Eq, T, E> {
    flight: &'a SingleFlight<K, T, E>,
    key: Option<&'a K>,
    id: u64,
}

impl<K: Hash + Eq, T, E> Leading<'_, K, T, E> {
    /// Closes the group to newcomers and takes its members.
    fn close(&mut self) -> Vec<oneshot::Sender<Result<T, E>>> {
        self.remove().map(|group| group.members).unwrap_or_default()
    }

    fn remove(&mut self) -> Option<Group<T, E>> {
        let key = self.key.take()?;
        let mut open = self.flight.lock();
        match open.groups.get(key) {
            Some(group) if group.id == self.id => open.groups.remove(key),
            _ => None,
        }
    }
}

impl<K: Hash + Eq, T, E> Drop for Leading<'_, K, T, E> {
    fn drop(&mut self) {
        drop(self.remove());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::sync::{OwnedSemaphorePermit, Semaphore};

    use super::*;

    /// A store's stand-in: a connection is a permit of `connections`, a
    /// statement ends when `done` gives it a permit, and each answers how
    /// many statements ran before it.
    struct Database {
        flight: SingleFlight<&'static str, usize, String>,
        connections: Arc<Semaphore>,
        done: Arc<Semaphore>,
        statements: AtomicUsize,
        groups: Mutex<Vec<usize>>,
    }

    impl Database {
        fn new() -> Arc<Database> {
            Arc::new(Database {
                flight: SingleFlight::default(),
                connections: Arc::new(Semaphore::new(0)),
                done: Arc::new(Semaphore::new(0)),
                statements: AtomicUsize::new(0),
                groups: Mutex::new(Vec::new()),
            })
        }

        async fn list(self: Arc<Self>, key: &'static str) -> Result<usize, String> {
            let checkout = || async {
                let connection = Arc::clone(&self.connections).acquire_owned().await;
                connection.map_err(|e| e.to_string())
            };
            let db: &Database = &self;
            let statement = |connection: OwnedSemaphorePermit| async move {
                let number = db.statements.fetch_add(1, Ordering::SeqCst);
                db.done.acquire().await.map_err(|e| e.to_string())?.forget();
                drop(connection);
                Ok(number)
            };
            let shared = |size| self.groups.lock().unwrap().push(size);
            self.flight.run(&key, checkout, statement, shared).await
        }

        fn spawn(
            self: &Arc<Self>,
            key: &'static str,
        ) -> tokio::task::JoinHandle<Result<usize, String>> {
            tokio::spawn(Arc::clone(self).list(key))
        }

        /// The open group of `key`, its members counted.
        fn members(&self, key: &'static str) -> Option<usize> {
            self.flight.lock().groups.get(key).map(|g| g.members.len())
        }
    }

    /// Lets the spawned requests run until `done` holds.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the requests did not get there");
    }

    #[tokio::test]
    async fn a_listing_with_a_connection_free_runs_alone() {
        let db = Database::new();
        db.connections.add_permits(1);
        db.done.add_permits(2);
        assert_eq!(Arc::clone(&db).list("a").await, Ok(0));
        assert_eq!(Arc::clone(&db).list("a").await, Ok(1));
        assert!(db.groups.lock().unwrap().is_empty());
        assert!(db.flight.lock().groups.is_empty());
    }

    #[tokio::test]
    async fn listings_waiting_for_a_connection_share_their_leaders_statement() {
        let db = Database::new();
        let leader = db.spawn("a");
        until(|| db.members("a") == Some(0)).await;
        let members: Vec<_> = (0..5).map(|_| db.spawn("a")).collect();
        // Another page waits in a group of its own.
        let other = db.spawn("b");
        until(|| db.members("a") == Some(5) && db.members("b") == Some(0)).await;
        db.connections.add_permits(2);
        db.done.add_permits(2);
        let answer = leader.await.unwrap();
        assert!(matches!(answer, Ok(0 | 1)), "{answer:?}");
        for member in members {
            assert_eq!(member.await.unwrap(), answer);
        }
        assert!(other.await.unwrap().is_ok());
        assert_eq!(
            db.statements.load(Ordering::SeqCst),
            2,
            "one statement a page"
        );
        assert_eq!(*db.groups.lock().unwrap(), [6]);
        assert!(db.flight.lock().groups.is_empty());
    }

    /// The group closes when its leader has a connection: a listing that
    /// arrives while the statement runs could miss a write acknowledged
    /// before it arrived, so it waits for a statement of its own.
    #[tokio::test]
    async fn a_listing_after_its_group_closed_gets_a_later_statement() {
        let db = Database::new();
        db.connections.add_permits(1);
        let first = db.spawn("a");
        until(|| db.statements.load(Ordering::SeqCst) == 1).await;
        assert_eq!(db.members("a"), None, "closed before its statement");
        let late = db.spawn("a");
        until(|| db.members("a") == Some(0)).await;
        let later = db.spawn("a");
        until(|| db.members("a") == Some(1)).await;
        db.done.add_permits(2);
        assert_eq!(first.await.unwrap(), Ok(0));
        assert_eq!(late.await.unwrap(), Ok(1));
        assert_eq!(later.await.unwrap(), Ok(1));
        assert_eq!(*db.groups.lock().unwrap(), [2]);
    }

    /// A leader whose request goes away leaves its members to start again.
    #[tokio::test]
    async fn members_of_a_leader_gone_start_again() {
        let db = Database::new();
        let leader = db.spawn("a");
        until(|| db.members("a") == Some(0)).await;
        let members: Vec<_> = (0..3).map(|_| db.spawn("a")).collect();
        until(|| db.members("a") == Some(3)).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        // One of them leads the group the others join again.
        until(|| db.members("a") == Some(2)).await;
        db.connections.add_permits(1);
        db.done.add_permits(1);
        for member in members {
            assert_eq!(member.await.unwrap(), Ok(0));
        }
        assert_eq!(db.statements.load(Ordering::SeqCst), 1);
        assert_eq!(*db.groups.lock().unwrap(), [3]);
    }

    /// No connection for the leader is no connection for its members.
    #[tokio::test]
    async fn a_leaders_error_answers_its_members() {
        let db = Database::new();
        let leader = db.spawn("a");
        until(|| db.members("a") == Some(0)).await;
        let member = db.spawn("a");
        until(|| db.members("a") == Some(1)).await;
        db.connections.close();
        let error = leader.await.unwrap().unwrap_err();
        assert_eq!(member.await.unwrap(), Err(error));
        assert_eq!(db.statements.load(Ordering::SeqCst), 0);
    }
}
