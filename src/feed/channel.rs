//! One watched namespace on this instance: the recent changes every stream
//! of it reads from, and the revision they reach. One reader task per
//! channel (in [`super`]) fills it, so a thousand streams of a namespace cost
//! one query per wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::sse::change_frame;
use crate::store::changes::{Change, Revision};

/// A change with its event frame, encoded once for every stream.
#[derive(Debug)]
pub struct Event {
    pub change: Change,
    pub frame: Bytes,
}

impl Event {
    pub fn new(change: Change) -> Event {
        let frame = change_frame(&change);
        Event { change, frame }
    }
}

/// Where a stream stands against the channel.
#[derive(Debug)]
pub enum Behind {
    /// Nothing after its position yet.
    UpToDate,
    /// These events follow its position, in order.
    Events(Vec<Arc<Event>>),
    /// Its position is older than what the channel keeps.
    TooFar,
}

/// The recent changes of one namespace: all changes in `(base, head]`,
/// at most `capacity` of them.
struct Log {
    base: Revision,
    events: VecDeque<Arc<Event>>,
}

/// One namespace watched on this instance.
pub struct Channel {
    log: Mutex<Log>,
    capacity: usize,
    /// The revision every change up to which is in the log (or was, before
    /// it was trimmed); streams wait on it.
    head: watch::Sender<Revision>,
    /// Wakes the reader task: a local write, a notification, a last
    /// subscriber leaving.
    pub(super) wake: Notify,
    subscribers: AtomicUsize,
}

impl Channel {
    /// A channel at revision `head`, keeping at most `capacity` events.
    pub(super) fn new(head: Revision, capacity: usize) -> Channel {
        Channel {
            log: Mutex::new(Log {
                base: head,
                events: VecDeque::new(),
            }),
            capacity: capacity.max(1),
            head: watch::Sender::new(head),
            wake: Notify::new(),
            subscribers: AtomicUsize::new(0),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The revision the channel has read up to.
    pub fn head(&self) -> Revision {
        *self.head.borrow()
    }

    /// Asks the reader task to read the change log now (a stream knows of
    /// changes the channel has not read yet).
    pub fn wake_reader(&self) {
        self.wake.notify_one();
    }

    /// Follows [`Channel::head`].
    pub fn follow(&self) -> watch::Receiver<Revision> {
        self.head.subscribe()
    }

    /// Appends changes read after the head and moves the head to `reached`;
    /// the oldest events go once more than `capacity` are kept.
    pub(super) fn append(&self, changes: Vec<Change>, reached: Revision) {
        {
            let mut log = self.log();
            for change in changes {
                log.events.push_back(Arc::new(Event::new(change)));
            }
            while log.events.len() > self.capacity {
                if let Some(gone) = log.events.pop_front() {
                    log.base = gone.change.revision;
                }
            }
        }
        self.head.send_if_modified(|head| {
            let moved = reached > *head;
            if moved {
                *head = reached;
            }
            moved
        });
    }

    /// Forgets everything before `head` (the log of the database no longer
    /// reaches the channel's head): streams behind it are too far behind.
    pub(super) fn restart_at(&self, head: Revision) {
        {
            let mut log = self.log();
            log.events.clear();
            log.base = head;
        }
        self.head.send_replace(head);
    }

    /// Up to `max` events after revision `pos`.
    pub fn after(&self, pos: Revision, max: usize) -> Behind {
        let log = self.log();
        if pos < log.base {
            return Behind::TooFar;
        }
        let from = log.events.partition_point(|e| e.change.revision <= pos);
        if from == log.events.len() {
            return Behind::UpToDate;
        }
        Behind::Events(log.events.range(from..).take(max).cloned().collect())
    }

    pub(super) fn subscribe(&self) {
        self.subscribers.fetch_add(1, Ordering::AcqRel);
    }

    /// One subscriber fewer; the reader task is woken to see whether any is left.
    pub(super) fn unsubscribe(&self) {
        if self.subscribers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wake.notify_one();
        }
    }

    pub(super) fn unwatched(&self) -> bool {
        self.subscribers.load(Ordering::Acquire) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::changes::ChangeOp;

    fn change(revision: Revision) -> Change {
        Change {
            revision,
            op: ChangeOp::Delete,
            key: format!("k{revision}"),
            md5: None,
            expire_at: None,
        }
    }

    fn revisions(behind: Behind) -> Vec<Revision> {
        match behind {
            Behind::Events(events) => events.iter().map(|e| e.change.revision).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_the_newest_events_and_knows_what_it_lost() {
        let channel = Channel::new(10, 3);
        assert!(matches!(channel.after(10, 100), Behind::UpToDate));
        assert!(matches!(channel.after(9, 100), Behind::TooFar));
        channel.append((11..=12).map(change).collect(), 12);
        assert_eq!(revisions(channel.after(10, 100)), vec![11, 12]);
        assert_eq!(revisions(channel.after(11, 1)), vec![12]);
        channel.append((13..=15).map(change).collect(), 15);
        assert_eq!(channel.head(), 15);
        assert!(
            matches!(channel.after(11, 100), Behind::TooFar),
            "11 was trimmed"
        );
        assert_eq!(revisions(channel.after(12, 100)), vec![13, 14, 15]);
        assert!(matches!(channel.after(15, 100), Behind::UpToDate));
        channel.append(Vec::new(), 20);
        assert_eq!(channel.head(), 20, "a page of other keys moves the head");
        channel.restart_at(30);
        assert!(matches!(channel.after(20, 100), Behind::TooFar));
        assert!(matches!(channel.after(30, 100), Behind::UpToDate));
    }

    #[test]
    fn the_last_subscriber_wakes_the_reader() {
        let channel = Channel::new(0, 1);
        channel.subscribe();
        channel.subscribe();
        channel.unsubscribe();
        assert!(!channel.unwatched());
        channel.unsubscribe();
        assert!(channel.unwatched());
    }
}
