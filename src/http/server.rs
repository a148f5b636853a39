//! The hyper server: the accept loop, a cap on concurrent connections, header
//! and idle timeouts, and graceful shutdown. Each request goes to
//! [`layers::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::layers;
use super::protocol::{self, Builders, Speaks};
use super::state::AppState;
use super::tls::TlsSource;
use crate::config::ServeConfig;
use crate::store::Store;

/// Settings of the connection layer.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// An idle connection (no bytes either way, no request in flight) is closed after this.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long in-flight requests get to finish after shutdown starts.
    pub shutdown_timeout: Duration,
    /// Serve HTTPS with this configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<TlsSource>>,
}

impl ServerOptions {
    /// The connection settings of `config`, serving HTTPS from `tls` when given.
    pub fn from_config(config: &ServeConfig, tls: Option<Arc<TlsSource>>) -> Self {
        ServerOptions {
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
            shutdown_timeout: config.shutdown_timeout,
            tls,
        }
    }
}

/// How a server run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished within the drain limit.
    Drained,
    /// The drain limit passed with this many connections still open; they were dropped.
    TimedOut(usize),
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish and waits at most `options.shutdown_timeout`.
pub async fn serve<S: Store>(
    listener: TcpListener,
    state: Arc<AppState<S>>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let builders = Arc::new(Builders::new(options.header_timeout, options.idle_timeout));
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let epoch = Instant::now();

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            state: Arc::clone(&state),
            builders: Arc::clone(&builders),
            stop: stop_rx.clone(),
            idle: options.idle_timeout,
            header: options.header_timeout,
            epoch,
            peer,
        };
        let tls = options.tls.as_ref().map(|t| t.acceptor());
        let handshake_timeout = options.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => {
                    let mut conn = conn;
                    if let Some(speaks) = conn.first_bytes(&stream).await {
                        conn.drive(stream, speaks).await;
                    }
                }
                // Boxed, so that the task of a plain connection does not
                // hold room for a TLS session.
                Some(acceptor) => {
                    Box::pin(conn.drive_tls(acceptor, stream, handshake_timeout)).await
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(options.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(options.shutdown_timeout, permits.acquire_many(all))
        .await
        .is_ok();
    if drained {
        Stopped::Drained
    } else {
        Stopped::TimedOut(options.max_connections - permits.available_permits())
    }
}

/// What one connection's task needs.
struct Conn<S> {
    state: Arc<AppState<S>>,
    builders: Arc<Builders>,
    stop: watch::Receiver<bool>,
    idle: Duration,
    header: Duration,
    epoch: Instant,
    peer: SocketAddr,
}

impl<S: Store> Conn<S> {
    /// Waits for a plain connection's first bytes and says what they begin;
    /// `None` (close it) when none come within the idle timeout, the client
    /// went away, or shutdown began.
    async fn first_bytes(&mut self, stream: &TcpStream) -> Option<Speaks> {
        tokio::select! {
            sniffed = protocol::sniff(stream) => sniffed.ok(),
            _ = tokio::time::sleep(self.idle) => None,
            _ = self.stop.changed() => None,
        }
    }

    /// The TLS handshake within `within`, then HTTP in the protocol ALPN chose.
    async fn drive_tls(self, acceptor: TlsAcceptor, stream: TcpStream, within: Duration) {
        let peer = self.peer;
        match tokio::time::timeout(within, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => {
                let speaks = protocol::negotiated(tls_stream.get_ref().1.alpn_protocol());
                self.drive(tls_stream, speaks).await
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP on `stream` until the client leaves, the connection idles
    /// out, or shutdown begins (then in-flight requests finish first).
    async fn drive<I>(mut self, stream: I, speaks: Speaks)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new(self.epoch));
        let io = TokioIo::new(TrackedIo {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let state = Arc::clone(&self.state);
        let service_activity = Arc::clone(&activity);
        let service = service_fn(move |req: Request<Incoming>| {
            let state = Arc::clone(&state);
            let activity = Arc::clone(&service_activity);
            async move {
                let _busy = activity.request_started(req.version() == hyper::Version::HTTP_2);
                // Boxed: hyper keeps one allocation of this future for the
                // life of the connection, so an idle keep-alive connection or
                // a watch stream would otherwise hold every layer's and route's
                // state (9 KiB) for as long as it stays open. Boxing copies
                // it, once a request: `layers::tests` keeps it small.
                Ok::<_, Infallible>(Box::pin(layers::handle(state, req)).await)
            }
        });
        let conn = self.builders.serving(speaks).serve_connection(io, service);
        tokio::pin!(conn);
        let (idle, header) = (self.idle, self.header);
        let mut closing = false;
        let mut next_check = activity.next_check(idle, header);
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = self.stop.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = activity.head_began.notified(), if !closing => {
                    next_check = activity.next_check(idle, header);
                }
                _ = tokio::time::sleep_until(next_check.into()), if !closing => {
                    if activity.head_timed_out(header) {
                        // A client sending its request head too slowly: cut it.
                        tracing::debug!(peer = %self.peer, "request head not received within the header timeout");
                        break;
                    }
                    if activity.is_idle(idle) {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    } else {
                        next_check = activity.next_check(idle, header);
                    }
                }
            }
        }
    }
}

/// No request head under way.
const NO_HEAD: u64 = u64::MAX;

/// When a connection last moved bytes, how many requests it is serving, and
/// since when a request head has been arriving (HTTP/1 only).
struct Activity {
    epoch: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicU64,
    /// Milliseconds since `epoch` of the first byte read while no request was
    /// in flight, until that request starts; [`NO_HEAD`] when none.
    head_since: AtomicU64,
    /// Woken when a head begins, so the watchdog can time it.
    head_began: Notify,
    /// HTTP/2 multiplexes requests over one connection: no head timing.
    h2: AtomicBool,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let a = Activity {
            epoch,
            last_millis: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            head_since: AtomicU64::new(NO_HEAD),
            head_began: Notify::new(),
            h2: AtomicBool::new(false),
        };
        a.touch();
        a
    }

    fn now_millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NO_HEAD - 1)
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

    /// Bytes arrived: with no request in flight, they begin the next request's head.
    fn bytes_read(&self) {
        self.touch();
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self
                .head_since
                .compare_exchange(
                    NO_HEAD,
                    self.now_millis(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.head_began.notify_one();
        }
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.at(self.last_millis.load(Ordering::Relaxed), idle)
    }

    fn head_deadline(&self, header: Duration) -> Option<Instant> {
        match self.head_since.load(Ordering::Acquire) {
            NO_HEAD => None,
            since => Some(self.at(since, header)),
        }
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    fn head_timed_out(&self, header: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_deadline(header)
                .is_some_and(|at| Instant::now() >= at)
    }

    /// When the watchdog looks next: the idle deadline, or the head's if sooner.
    fn next_check(&self, idle: Duration, header: Duration) -> Instant {
        let now = Instant::now();
        // Busy, or bytes moved since: look again a quarter idle period on at the soonest.
        let idle_at = self.idle_deadline(idle).max(after(now, idle / 4));
        match self.head_deadline(header) {
            Some(head_at) => head_at.min(idle_at).max(now + Duration::from_millis(10)),
            None => idle_at,
        }
    }

    fn request_started(self: &Arc<Self>, h2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NO_HEAD, Ordering::Release);
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        InFlight(Arc::clone(self))
    }
}

/// `base + by`, or a year on for durations too long to add.
fn after(base: Instant, by: Duration) -> Instant {
    base.checked_add(by)
        .unwrap_or_else(|| base + Duration::from_secs(86_400 * 365))
}

/// Marks a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A stream that records when bytes last moved.
struct TrackedIo<I> {
    inner: I,
    activity: Arc<Activity>,
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

    #[test]
    fn a_head_is_timed_from_its_first_byte_until_its_request_starts() {
        let a = Arc::new(Activity::new(Instant::now()));
        let header = Duration::from_millis(50);
        assert!(a.head_deadline(header).is_none(), "no bytes, no head");
        a.bytes_read();
        assert!(a.head_deadline(header).is_some(), "a head began");
        let busy = a.request_started(false);
        assert!(a.head_deadline(header).is_none(), "its request started");
        a.bytes_read();
        assert!(a.head_deadline(header).is_none(), "a body is not a head");
        drop(busy);
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            !a.head_timed_out(header),
            "an idle connection is not a slow head"
        );
        a.bytes_read();
        assert!(!a.head_timed_out(header));
        std::thread::sleep(Duration::from_millis(60));
        assert!(a.head_timed_out(header), "a head slower than the limit");
    }

    #[test]
    fn http2_requests_are_not_timed_per_head() {
        let a = Arc::new(Activity::new(Instant::now()));
        drop(a.request_started(true));
        a.bytes_read();
        assert!(a.head_deadline(Duration::from_secs(1)).is_none());
    }

    #[test]
    fn deadlines_of_absurd_limits_do_not_overflow() {
        let a = Activity::new(Instant::now());
        a.bytes_read();
        let _ = a.next_check(Duration::MAX, Duration::MAX);
        assert!(!a.is_idle(Duration::MAX));
        assert!(!a.head_timed_out(Duration::MAX));
    }
}
