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
}

struct Shared {
    mode: Mode,
    live: Vec<JoinHandle<()>>,
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
        }));
        let state = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = state.lock().unwrap().mode;
                let link = Arc::clone(&state);
                let task = tokio::spawn(async move {
                    match mode {
                        Mode::Refuse => drop(client),
                        Mode::Blackhole | Mode::Partition => {
                            let _hold = client;
                            std::future::pending::<()>().await;
                        }
                        Mode::Up => {
                            if let Ok(server) = TcpStream::connect(upstream).await {
                                forward(client, server, link).await;
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
    /// [`Mode::Partition`], which leaves them open and silent.
    pub fn set(&self, mode: Mode) {
        let mut shared = self.shared.lock().unwrap();
        shared.mode = mode;
        if mode != Mode::Partition {
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

/// Copies both ways until either side closes; once the proxy is
/// partitioned, bytes read are dropped and both sockets are held open.
async fn forward(client: TcpStream, server: TcpStream, state: Arc<Mutex<Shared>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let partitioned = move || state.lock().unwrap().mode == Mode::Partition;
    let up = {
        let partitioned = partitioned.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) if partitioned() => std::future::pending::<()>().await,
                    Ok(n) => {
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) if partitioned() => std::future::pending::<()>().await,
                Ok(n) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    // Either direction ending ends both, as a closed connection would.
    tokio::select! {
        () = up => {}
        () = down => {}
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
