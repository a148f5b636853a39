//! The hyper server: the accept loop, a cap on concurrent connections, header
//! and idle timeouts, and graceful shutdown. Each request goes to
//! [`layers::handle`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::activity::{Activity, Live, TrackedIo, Wake};
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
    let live = Arc::new(Live::default());
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
        let activity = Arc::new(Activity::new(epoch, options.header_timeout));
        let open = live.enter(&activity);
        let conn = Conn {
            state: Arc::clone(&state),
            builders: Arc::clone(&builders),
            activity,
            idle: options.idle_timeout,
            peer,
        };
        let tls = options.tls.as_ref().map(|t| t.acceptor());
        let handshake_timeout = options.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => {
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
            drop(open);
            drop(permit);
        });
    }
    drop(listener);
    live.stop_all();
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
    /// Counted open in the server's [`Live`] until the task ends.
    activity: Arc<Activity>,
    idle: Duration,
    peer: SocketAddr,
}

impl<S: Store> Conn<S> {
    /// Waits for a plain connection's first bytes and says what they begin;
    /// `None` (close it) when none come within the idle timeout, the client
    /// went away, or shutdown began.
    async fn first_bytes(&self, stream: &TcpStream) -> Option<Speaks> {
        tokio::select! {
            sniffed = protocol::sniff(stream) => sniffed.ok(),
            _ = tokio::time::sleep(self.idle) => None,
            _ = std::future::poll_fn(|cx| self.activity.poll_stopped(cx)) => None,
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
    async fn drive<I>(self, stream: I, speaks: Speaks)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::clone(&self.activity);
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
        let idle = self.idle;
        let mut closing = false;
        // One timer for the connection's life, moved by `reset`: not one a request.
        let look = tokio::time::sleep_until(activity.look(idle).into());
        tokio::pin!(look);
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                wake = std::future::poll_fn(|cx| activity.poll_wake(cx)), if !closing => match wake {
                    Wake::Stop => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Wake::Head => look.as_mut().reset(activity.look(idle).into()),
                },
                _ = look.as_mut(), if !closing => {
                    if activity.head_timed_out() {
                        // A client sending its request head too slowly: cut it.
                        tracing::debug!(peer = %self.peer, "request head not received within the header timeout");
                        break;
                    }
                    if activity.is_idle(idle) {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    } else {
                        look.as_mut().reset(activity.look(idle).into());
                    }
                }
            }
        }
    }
}
