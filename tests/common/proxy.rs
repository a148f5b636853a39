//! A TCP proxy in front of the test database that a test can cut: to make the
//! database refuse, hang, or come back, without touching the real server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the database.
    Up,
    /// Accept and close at once: a database that is down.
    Refuse,
    /// Accept and never answer: a database that hangs.
    Blackhole,
    /// A network partition: open connections stay open but nothing more
    /// crosses them (no FIN, no RST), and new ones are accepted and never
    /// answered. Unlike the other modes, switching to it cuts nothing.
    Partition,
    /// A slow link: every chunk each way waits 75 ± 50 ms. Cuts nothing.
    Delay,
    /// A lossy link: every second connection (open or new) is partitioned,
    /// the others forward. Cuts nothing.
    Lossy,
}

impl Mode {
    /// Whether switching to the mode leaves open connections open.
    fn keeps_connections(self) -> bool {
        matches!(self, Mode::Partition | Mode::Delay | Mode::Lossy)
    }
}

struct Shared {
    mode: Mode,
    live: Vec<JoinHandle<()>>,
    /// Connections accepted so far: [`Mode::Lossy`] silences the odd ones.
    accepted: u64,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Proxies `127.0.0.1:<free port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Mutex::new(Shared {
            mode: Mode::Up,
            live: Vec::new(),
            accepted: 0,
        }));
        let state = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (mode, id) = {
                    let mut shared = state.lock().unwrap();
                    shared.accepted += 1;
                    (shared.mode, shared.accepted)
                };
                let link = Arc::clone(&state);
                let task = tokio::spawn(async move {
                    match mode {
                        Mode::Refuse => drop(client),
                        Mode::Blackhole | Mode::Partition => {
                            let _hold = client;
                            std::future::pending::<()>().await;
                        }
                        Mode::Up | Mode::Delay | Mode::Lossy => {
                            if let Ok(server) = TcpStream::connect(upstream).await {
                                forward(client, server, link, id).await;
                            }
                        }
                    }
                });
                state.lock().unwrap().live.push(task);
            }
        });
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    /// Switches mode; every open connection is cut, but by
    /// [`Mode::Partition`], [`Mode::Delay`] and [`Mode::Lossy`], which act
    /// on them as they are.
    pub fn set(&self, mode: Mode) {
        let mut shared = self.shared.lock().unwrap();
        shared.mode = mode;
        if !mode.keeps_connections() {
            for task in shared.live.drain(..) {
                task.abort();
            }
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("URL with scheme");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{}{tail}", self.addr)
    }
}

/// Copies both ways until either side closes, as the mode says at each
/// chunk: partitioned (or, lossy, an odd connection), bytes read are
/// dropped and both sockets are held open; delayed, each chunk waits.
async fn forward(client: TcpStream, server: TcpStream, state: Arc<Mutex<Shared>>, id: u64) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mode = move || state.lock().unwrap().mode;
    // Either direction ending ends both, as a closed connection would.
    tokio::select! {
        () = copy(client_read, server_write, mode.clone(), id) => {}
        () = copy(server_read, client_write, mode, id) => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: impl Fn() -> Mode,
    id: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match mode() {
            Mode::Partition => std::future::pending::<()>().await,
            Mode::Lossy if id % 2 == 1 => std::future::pending::<()>().await,
            Mode::Delay => {
                let jitter = rand::random::<u64>() % 101;
                tokio::time::sleep(std::time::Duration::from_millis(25 + jitter)).await;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The `host:port` of a `postgres://` URL (port 5432 by default).
pub fn upstream_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("URL with scheme").1;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_port = rest[..end].rsplit('@').next().unwrap_or("");
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let with_port = with_port.replace("localhost", "127.0.0.1");
    with_port
        .parse()
        .unwrap_or_else(|_| panic!("test database URL must name an IP host: {url}"))
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set(Mode::Refuse);
    }
}
