//! What a connection's watchdog (`http::server`) times: when bytes last
//! moved, how many requests are in flight, and since when a request head has
//! been arriving (HTTP/1 only); and the open connections, so shutdown can
//! reach each. The I/O path only stores into atomics; the watchdog is woken
//! by a head only when that head's deadline comes before its next look, not
//! once a request, and it waits on an `AtomicWaker` of its own rather than
//! on a `Notify` or a channel, whose waiters lock a mutex at every poll of
//! the connection's task (issue #29).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// No request head under way; no look set.
const NONE: u64 = u64::MAX;

/// The soonest the watchdog looks again after it set a look.
const MIN_LOOK: Duration = Duration::from_millis(10);

/// One connection's activity. Instants are milliseconds since `epoch`.
pub(super) struct Activity {
    epoch: Instant,
    /// The header timeout, in milliseconds.
    header_millis: u64,
    last_millis: AtomicU64,
    in_flight: AtomicU64,
    /// The first byte read while no request was in flight, until that
    /// request starts; [`NONE`] when none.
    head_since: AtomicU64,
    /// When the watchdog looks next ([`NONE`] before its first look is set).
    look_at: AtomicU64,
    /// A head began whose deadline comes before `look_at`.
    head_began: AtomicBool,
    /// Shutdown began.
    stopped: AtomicBool,
    /// The connection's task, woken for either.
    watchdog: AtomicWaker,
    /// HTTP/2 multiplexes requests over one connection: no head timing.
    h2: AtomicBool,
}

/// Why the watchdog was woken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// A head began that must be looked at before the look already set.
    Head,
    /// Shutdown began.
    Stop,
}

impl Activity {
    /// A connection opened now, its heads limited to `header`.
    pub(super) fn new(epoch: Instant, header: Duration) -> Self {
        let a = Activity {
            epoch,
            header_millis: u64::try_from(header.as_millis()).unwrap_or(NONE - 1),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            look_at: AtomicU64::new(NONE),
            head_began: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            watchdog: AtomicWaker::new(),
            h2: AtomicBool::new(false),
        };
        a.touch();
        a
    }

    fn millis_of(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(NONE - 1)
    }

    fn now_millis(&self) -> u64 {
        self.millis_of(Instant::now())
    }

    fn at(&self, millis: u64, plus: Duration) -> Instant {
        after(
            self.epoch,
            Duration::from_millis(millis).saturating_add(plus),
        )
    }

    fn touch(&self) {
        self.last_millis.store(self.now_millis(), Ordering::Relaxed);
    }

    /// Bytes arrived: with no request in flight, they begin the next
    /// request's head. The watchdog is woken only when that head's deadline
    /// comes before its next look: `look` stores the look before it reads
    /// the head, and this stores the head before it reads the look, so one
    /// of the two sees the other (both sequentially consistent).
    fn bytes_read(&self) {
        let now = self.now_millis();
        self.last_millis.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self
                .head_since
                .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            && now.saturating_add(self.header_millis) < self.look_at.load(Ordering::SeqCst)
        {
            self.raise(&self.head_began);
        }
    }

    fn raise(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.watchdog.wake();
    }

    /// Shutdown began: the watchdog lets in-flight requests finish and closes.
    pub(super) fn stop(&self) {
        self.raise(&self.stopped);
    }

    /// Ready once shutdown began.
    pub(super) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.watchdog.register(cx.waker());
        match self.stopped.load(Ordering::Acquire) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// Ready when shutdown began, or a head needs a sooner look (once per
    /// such head). The task registers before it reads the flags, so a flag
    /// raised in between wakes it again.
    pub(super) fn poll_wake(&self, cx: &mut Context<'_>) -> Poll<Wake> {
        self.watchdog.register(cx.waker());
        if self.stopped.load(Ordering::Acquire) {
            Poll::Ready(Wake::Stop)
        } else if self.head_began.load(Ordering::Acquire)
            && self.head_began.swap(false, Ordering::AcqRel)
        {
            Poll::Ready(Wake::Head)
        } else {
            Poll::Pending
        }
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.at(self.last_millis.load(Ordering::Relaxed), idle)
    }

    fn head_deadline(&self) -> Option<Instant> {
        match self.head_since.load(Ordering::SeqCst) {
            NONE => None,
            since => Some(self.at(since, Duration::from_millis(self.header_millis))),
        }
    }

    /// No request in flight and no bytes moved for `idle`.
    pub(super) fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    /// A request head has been arriving for longer than the header timeout.
    pub(super) fn head_timed_out(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.head_deadline().is_some_and(|at| Instant::now() >= at)
    }

    /// When the watchdog looks next, recorded for [`Activity::bytes_read`]:
    /// the idle deadline, or the head's if sooner.
    pub(super) fn look(&self, idle: Duration) -> Instant {
        let now = Instant::now();
        // Busy, or bytes moved since: look again a quarter idle period on at the soonest.
        let idle_at = self.idle_deadline(idle).max(after(now, idle / 4));
        self.look_at
            .store(self.millis_of(idle_at), Ordering::SeqCst);
        match self.head_deadline() {
            Some(head_at) => {
                let at = head_at.min(idle_at).max(now + MIN_LOOK);
                self.look_at.store(self.millis_of(at), Ordering::SeqCst);
                at
            }
            None => idle_at,
        }
    }

    /// Marks a request in flight until the guard is dropped.
    pub(super) fn request_started(self: &Arc<Self>, h2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::SeqCst);
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        InFlight(Arc::clone(self))
    }
}

/// Every open connection's activity, so that shutdown reaches each one.
#[derive(Default)]
pub(super) struct Live {
    stopping: AtomicBool,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Live {
    /// Counts `activity` open until the guard drops; stops it at once if
    /// shutdown began. `stop_all` raises `stopping` before it takes the lock
    /// and this reads it after taking it, so every connection is stopped by
    /// one or the other.
    pub(super) fn enter(self: &Arc<Self>, activity: &Arc<Activity>) -> Open {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(activity));
        if self.stopping.load(Ordering::SeqCst) {
            activity.stop();
        }
        Open {
            live: Arc::clone(self),
            id,
        }
    }

    /// Stops every open connection, and each that opens after.
    pub(super) fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for activity in open.values() {
            activity.stop();
        }
    }
}

/// A connection counted open in [`Live`].
pub(super) struct Open {
    live: Arc<Live>,
    id: u64,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.live
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// `base + by`, or a year on for durations too long to add.
fn after(base: Instant, by: Duration) -> Instant {
    base.checked_add(by)
        .unwrap_or_else(|| base + Duration::from_secs(86_400 * 365))
}

/// Marks a request in flight until dropped.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A stream that records when bytes last moved.
pub(super) struct TrackedIo<I> {
    pub(super) inner: I,
    pub(super) activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_millis(50);

    #[test]
    fn a_head_is_timed_from_its_first_byte_until_its_request_starts() {
        let a = Arc::new(Activity::new(Instant::now(), HEADER));
        assert!(a.head_deadline().is_none(), "no bytes, no head");
        a.bytes_read();
        assert!(a.head_deadline().is_some(), "a head began");
        let busy = a.request_started(false);
        assert!(a.head_deadline().is_none(), "its request started");
        a.bytes_read();
        assert!(a.head_deadline().is_none(), "a body is not a head");
        drop(busy);
        std::thread::sleep(Duration::from_millis(60));
        assert!(!a.head_timed_out(), "an idle connection is not a slow head");
        a.bytes_read();
        assert!(!a.head_timed_out());
        std::thread::sleep(Duration::from_millis(60));
        assert!(a.head_timed_out(), "a head slower than the limit");
    }

    #[test]
    fn http2_requests_are_not_timed_per_head() {
        let a = Arc::new(Activity::new(Instant::now(), Duration::from_secs(1)));
        drop(a.request_started(true));
        a.bytes_read();
        assert!(a.head_deadline().is_none());
    }

    /// A head wakes the watchdog only when its deadline comes before the
    /// watchdog's next look: the first head of a connection looked at for its
    /// idle deadline does, the heads after it, due later than the look the
    /// first one set, do not.
    #[test]
    fn a_head_wakes_the_watchdog_only_to_look_sooner() {
        let woken = |a: &Activity| {
            a.poll_wake(&mut Context::from_waker(std::task::Waker::noop()))
                .is_ready()
        };
        let idle = Duration::from_secs(60);
        let a = Arc::new(Activity::new(Instant::now(), Duration::from_secs(10)));
        let first = a.look(idle);
        assert!(
            first >= Instant::now() + Duration::from_secs(14),
            "the idle look"
        );
        a.bytes_read();
        assert!(woken(&a), "a head due before the idle look");
        let head_look = a.look(idle);
        assert!(
            head_look < first,
            "the watchdog looks at the head's deadline"
        );
        for _ in 0..3 {
            drop(a.request_started(false));
            a.bytes_read();
            assert!(!woken(&a), "a later head, due after the look already set");
        }
        assert!(
            a.look(idle) >= head_look,
            "looking again finds the latest head"
        );
    }

    /// Shutdown reaches connections open before it and those that open
    /// after; a connection that closed is forgotten.
    #[test]
    fn shutdown_stops_every_open_connection() {
        let cx = &mut Context::from_waker(std::task::Waker::noop());
        let live = Arc::new(Live::default());
        let open = Arc::new(Activity::new(Instant::now(), HEADER));
        let closed = Arc::new(Activity::new(Instant::now(), HEADER));
        let _open = live.enter(&open);
        drop(live.enter(&closed));
        assert!(open.poll_wake(cx).is_pending());
        live.stop_all();
        assert_eq!(open.poll_wake(cx), Poll::Ready(Wake::Stop));
        assert!(open.poll_stopped(cx).is_ready());
        assert!(closed.poll_stopped(cx).is_pending(), "no longer counted");
        let late = Arc::new(Activity::new(Instant::now(), HEADER));
        let _late = live.enter(&late);
        assert!(
            late.poll_stopped(cx).is_ready(),
            "opened after shutdown began"
        );
        assert_eq!(live.open.lock().unwrap().len(), 2);
    }

    #[test]
    fn deadlines_of_absurd_limits_do_not_overflow() {
        let a = Activity::new(Instant::now(), Duration::MAX);
        a.bytes_read();
        let _ = a.look(Duration::MAX);
        assert!(!a.is_idle(Duration::MAX));
        assert!(!a.head_timed_out());
    }
}
