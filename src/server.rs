//! The hyper server: the accept loop, a cap on concurrent connections, header
//! and idle timeouts, one log line per request, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::routes::{self, AppState};
use crate::store::Store;
use crate::tls::TlsSource;

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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(options.idle_timeout / 2))
        .keep_alive_timeout(options.header_timeout);
    let builder = Arc::new(builder);
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
            builder: Arc::clone(&builder),
            stop: stop_rx.clone(),
            idle: options.idle_timeout,
            epoch,
            peer,
        };
        let tls = options.tls.as_ref().map(|t| t.acceptor());
        let handshake_timeout = options.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => conn.drive(stream).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => conn.drive(tls_stream).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
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
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    idle: Duration,
    epoch: Instant,
    peer: SocketAddr,
}

impl<S: Store> Conn<S> {
    /// Serves HTTP on `stream` until the client leaves, the connection idles
    /// out, or shutdown begins (then in-flight requests finish first).
    async fn drive<I>(mut self, stream: I)
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
                let _busy = activity.request_started();
                Ok::<_, Infallible>(logged(state, req).await)
            }
        });
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let idle = self.idle;
        let mut closing = false;
        let mut next_check = activity.idle_deadline(idle);
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
                _ = tokio::time::sleep_until(next_check.into()), if !closing => {
                    if activity.is_idle(idle) {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    } else {
                        // Busy, or bytes moved since: look again one idle period on.
                        next_check = activity.idle_deadline(idle).max(Instant::now() + idle / 4);
                    }
                }
            }
        }
    }
}

/// Runs one request and writes its log line (method, path, status, duration; never a value).
async fn logged<S: Store>(
    state: Arc<AppState<S>>,
    req: Request<Incoming>,
) -> hyper::Response<routes::ResBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = routes::handle(state, req).await;
    tracing::info!(
        %method,
        path = %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// When a connection last moved bytes, and how many requests it is serving.
struct Activity {
    epoch: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicU64,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let a = Activity {
            epoch,
            last_millis: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        };
        a.touch();
        a
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_millis.store(now, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.last_millis.load(Ordering::Relaxed)) + idle
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
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
            self.activity.touch();
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
