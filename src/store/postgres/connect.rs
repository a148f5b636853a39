//! Connecting to one of the URL's hosts (SPEC §18), for the pool, the
//! migration runner and the notification listener alike.
//!
//! tokio-postgres tries a multi-host URL in order, but its `connect_timeout`
//! bounds only each TCP connect: a host that accepts and then never answers
//! (a partitioned primary behind a load balancer or proxy) holds the startup
//! forever, and a pool's create timeout around the whole attempt then
//! expires before the next host is ever tried. Here each host is its own
//! attempt with the connect timeout covering everything libpq's does: TCP,
//! TLS, authentication and, for `target_session_attrs=read-write`, the
//! check that the server accepts writes (which skips standbys and demoted
//! primaries). The host that last accepted is tried first, and the next
//! one beside it once it has refused or been silent for 250 ms, so a dead
//! first host costs a new connection a moment, not its timeout. When a
//! statement waits long, the hosts with connections are probed; one that
//! does not answer has its connections cut (see `liveness`).
//!
//! Every connection also gets TCP keepalives and `tcp_user_timeout`, so the
//! kernel abandons a connection whose peer vanished without a FIN or RST.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Connect;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::error::Elapsed;
use tokio_postgres::config::{Host, LoadBalanceHosts};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};

use super::errors::with_sources;
use super::liveness::{self, HostState};
use super::tls::DbTls;

/// The connection of a client, as its driver task polls it.
pub(super) type DbConnection = Connection<Socket, <DbTls as MakeTlsConnect<Socket>>::Stream>;

/// Idle time before the first keepalive probe, unless the URL sets one.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_RETRIES: u32 = 3;
/// tokio-postgres's default idle time: the URL did not set one.
const DRIVER_DEFAULT_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// The hosts of a URL, one configuration each, and how long each may take.
pub(super) struct Hosts {
    configs: Vec<Config>,
    tls: DbTls,
    per_host: Duration,
    /// The host that accepted last: the first one tried.
    preferred: AtomicUsize,
    /// What is known of each host's liveness.
    health: Vec<HostState>,
    /// `load_balance_hosts=random`: each connection starts at a random host.
    random: bool,
}

/// A new connection and the index of the host that took it.
pub(super) struct Connected {
    pub(super) client: Client,
    pub(super) connection: DbConnection,
    pub(super) host: usize,
}

/// One host's connection attempt: `Err` when the connect timeout passed.
type Attempt = Result<Result<(Client, DbConnection), tokio_postgres::Error>, Elapsed>;

/// How long one host may take before the next is tried beside it.
const STAGGER: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosts")
            .field("hosts", &self.configs.len())
            .field("per_host", &self.per_host)
            .finish_non_exhaustive()
    }
}

impl Hosts {
    /// One configuration per host of `config`, each with keepalives and a
    /// `tcp_user_timeout` of `user_timeout` unless the URL chose its own.
    pub(super) fn new(
        config: &Config,
        tls: DbTls,
        per_host: Duration,
        user_timeout: Duration,
    ) -> Hosts {
        let count = config
            .get_hosts()
            .len()
            .max(config.get_hostaddrs().len())
            .max(1);
        let configs = (0..count)
            .map(|i| {
                let mut one = one_host(config, i);
                if config.get_keepalives_idle() == DRIVER_DEFAULT_IDLE {
                    one.keepalives_idle(KEEPALIVE_IDLE);
                }
                if config.get_keepalives_interval().is_none() {
                    one.keepalives_interval(KEEPALIVE_INTERVAL);
                }
                if config.get_keepalives_retries().is_none() {
                    one.keepalives_retries(KEEPALIVE_RETRIES);
                }
                if config.get_tcp_user_timeout().is_none() {
                    one.tcp_user_timeout(user_timeout);
                }
                one.connect_timeout(per_host);
                one
            })
            .collect();
        Hosts {
            configs,
            tls,
            per_host,
            preferred: AtomicUsize::new(0),
            health: (0..count).map(|_| HostState::default()).collect(),
            random: config.get_load_balance_hosts() == LoadBalanceHosts::Random,
        }
    }

    /// The longest a connect may take: the last host started after the
    /// others' stagger, then its whole budget.
    pub(super) fn budget(&self) -> Duration {
        let later = u32::try_from(self.configs.len().saturating_sub(1)).unwrap_or(u32::MAX);
        self.per_host + STAGGER.saturating_mul(later)
    }

    /// A connection to a host that takes one within its budget. The host
    /// that accepted last is tried first; each next host is tried as well
    /// when the ones before have failed or not answered within `STAGGER`,
    /// and the first to take the connection wins. Hosts known to be silent
    /// are skipped for a moment (see `liveness`).
    pub(super) async fn connect(&self) -> Result<Connected, NoHost> {
        let now = Instant::now();
        let count = self.configs.len();
        let first = match self.random {
            true => random_index(),
            false => self.preferred.load(Ordering::Relaxed),
        } % count.max(1);
        let mut order = (first..count)
            .chain(0..first)
            .filter(|&i| !self.health[i].is_down(now));
        let mut failed = NoHost {
            why: match count {
                0 => String::from("the URL names no host"),
                _ => format!(
                    "no host answered a probe within {:?} lately; trying again within {:?}",
                    self.per_host,
                    liveness::DOWN_FOR
                ),
            },
            last: None,
        };
        let mut attempts = FuturesUnordered::new();
        attempts.extend(order.next().map(|i| self.attempt(i)));
        while !attempts.is_empty() {
            let outcome = tokio::select! {
                outcome = attempts.next() => outcome,
                () = tokio::time::sleep(STAGGER) => None,
            };
            let Some((i, outcome)) = outcome else {
                attempts.extend(order.next().map(|i| self.attempt(i)));
                continue;
            };
            match outcome {
                Ok(Ok((client, connection))) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(Connected {
                        client,
                        connection,
                        host: i,
                    });
                }
                Ok(Err(e)) => {
                    if answered(&e) {
                        self.health[i].answered();
                    }
                    failed.why = format!("{}: {}", self.name(i), with_sources(&e));
                    failed.last = Some(e);
                }
                Err(_) => {
                    // Only a failed probe cuts a host's connections: a
                    // connect that is merely slow (an overloaded server, a
                    // promotion under way) must not start a storm of them.
                    failed.why = format!(
                        "{}: no answer within {:?} (the connect timeout)",
                        self.name(i),
                        self.per_host
                    );
                    failed.last = None;
                }
            }
            tracing::debug!(error = %failed.why, "database host not used");
            attempts.extend(order.next().map(|i| self.attempt(i)));
        }
        Err(failed)
    }

    /// One host's connection, within the connect timeout.
    fn attempt(&self, i: usize) -> impl Future<Output = (usize, Attempt)> + '_ {
        let connecting = self.configs[i].connect(self.tls.clone());
        async move { (i, tokio::time::timeout(self.per_host, connecting).await) }
    }

    /// The connection to host `host` runs on `driver`: cut it if the host
    /// goes silent.
    pub(super) fn register(&self, host: usize, driver: AbortHandle) {
        if let Some(state) = self.health.get(host) {
            state.connected(driver);
        }
    }

    /// A statement has waited `liveness::PROBE_AFTER`: probe each host it
    /// may be waiting on (one with connections, not probed within the last
    /// second) with a fresh connection, in the background.
    pub(super) fn suspect(self: &Arc<Self>) {
        let now = Instant::now();
        for i in 0..self.configs.len() {
            if self.health[i].should_probe(now) {
                let hosts = Arc::clone(self);
                tokio::spawn(async move { hosts.probe(i).await });
            }
        }
    }

    /// Connects to host `i` once: a host that answers (even with a refusal)
    /// is alive and its slow statements are left to the statement timeout;
    /// one that does not answer within the connect timeout is silent.
    async fn probe(&self, i: usize) {
        match self.attempt(i).await.1 {
            Ok(Ok((client, connection))) => {
                // Closed politely: the client's drop sends Terminate.
                tokio::spawn(connection);
                drop(client);
                self.health[i].answered();
            }
            Ok(Err(e)) if answered(&e) => self.health[i].answered(),
            Ok(Err(e)) => {
                tracing::debug!(host = %self.name(i), error = %with_sources(&e), "probe failed");
                self.went_silent(i);
            }
            Err(_) => self.went_silent(i),
        }
    }

    /// Host `i` did not answer a probe within the connect timeout.
    fn went_silent(&self, i: usize) {
        let cut = self.health[i].went_silent(Instant::now());
        tracing::warn!(
            host = %self.name(i),
            connections = cut,
            "database host did not answer a probe within {:?}: its connections are cut and it is skipped for {:?}",
            self.per_host,
            liveness::DOWN_FOR
        );
    }

    /// `host:port` of host `i`, for messages.
    fn name(&self, i: usize) -> String {
        let config = &self.configs[i];
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => String::from("?"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }
}

/// Why no host took a connection: the last host's reason, and its driver
/// error when it had one (not when it timed out).
#[derive(Debug)]
pub(super) struct NoHost {
    pub(super) why: String,
    last: Option<tokio_postgres::Error>,
}

/// A random number, random enough to spread connections over hosts.
fn random_index() -> usize {
    use std::hash::BuildHasher as _;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    random as usize
}

/// Whether a failed connection was refused by a live server (an error it
/// sent, or the read-write check's answer) rather than cut or unanswered.
fn answered(e: &tokio_postgres::Error) -> bool {
    if e.as_db_error().is_some() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::PermissionDenied;
        }
        source = cause.source();
    }
    false
}

/// Host `i` of `all`, with every other setting of `all`.
fn one_host(all: &Config, i: usize) -> Config {
    let mut one = Config::new();
    if let Some(user) = all.get_user() {
        one.user(user);
    }
    if let Some(password) = all.get_password() {
        one.password(password);
    }
    if let Some(dbname) = all.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = all.get_options() {
        one.options(options);
    }
    if let Some(name) = all.get_application_name() {
        one.application_name(name);
    }
    one.ssl_mode(all.get_ssl_mode())
        .ssl_negotiation(all.get_ssl_negotiation())
        .keepalives(all.get_keepalives())
        .keepalives_idle(all.get_keepalives_idle())
        .target_session_attrs(all.get_target_session_attrs())
        .channel_binding(all.get_channel_binding());
    if let Some(interval) = all.get_keepalives_interval() {
        one.keepalives_interval(interval);
    }
    if let Some(retries) = all.get_keepalives_retries() {
        one.keepalives_retries(retries);
    }
    if let Some(timeout) = all.get_tcp_user_timeout() {
        one.tcp_user_timeout(*timeout);
    }
    match all.get_hosts().get(i) {
        Some(Host::Tcp(host)) => {
            one.host(host);
        }
        Some(Host::Unix(path)) => {
            one.host_path(path);
        }
        None => {}
    }
    if let Some(addr) = all.get_hostaddrs().get(i) {
        one.hostaddr(*addr);
    }
    // As tokio-postgres picks it: the host's own port, else the first.
    let ports = all.get_ports();
    let port = ports
        .get(i)
        .or_else(|| ports.first())
        .copied()
        .unwrap_or(5432);
    one.port(port);
    one
}

/// The pool's way to connect: [`Hosts::connect`], its driver on a task.
pub(super) struct PoolConnect(pub(super) std::sync::Arc<Hosts>);

impl Connect for PoolConnect {
    fn connect(
        &self,
        _: &Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>> {
        Box::pin(async move {
            let connected = self.0.connect().await.map_err(|failed| {
                tracing::warn!(error = %failed.why, "cannot connect to the database");
                // The pool takes a driver error; a timeout has none of its
                // own, and the driver's "timeout waiting for server" says it.
                failed
                    .last
                    .unwrap_or_else(tokio_postgres::Error::__private_api_timeout)
            })?;
            let connection = connected.connection;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "database connection ended");
                }
            });
            self.0.register(connected.host, driver.abort_handle());
            Ok((connected.client, driver))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_keeps_the_other_settings() {
        let all: Config =
            "postgresql://u:pw@h1:5433,h2:5434/db?target_session_attrs=read-write&application_name=x"
                .parse()
                .unwrap();
        let tls = super::super::tls::connector(
            &super::super::url::PgUrl::parse("postgresql://h/db")
                .unwrap()
                .tls,
            all.get_ssl_negotiation(),
        )
        .unwrap();
        let hosts = Hosts::new(&all, tls, Duration::from_secs(2), Duration::from_secs(9));
        assert_eq!(hosts.configs.len(), 2);
        assert_eq!(hosts.budget(), Duration::from_millis(2250));
        let second = &hosts.configs[1];
        assert_eq!(second.get_hosts(), &[Host::Tcp("h2".into())]);
        assert_eq!(second.get_ports(), &[5434]);
        assert_eq!(second.get_dbname(), Some("db"));
        assert_eq!(second.get_user(), Some("u"));
        assert_eq!(second.get_password(), Some(&b"pw"[..]));
        assert_eq!(second.get_application_name(), Some("x"));
        assert_eq!(
            second.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(second.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(second.get_tcp_user_timeout(), Some(&Duration::from_secs(9)));
        assert_eq!(hosts.name(0), "h1:5433");
        let mut one_port = Config::new();
        one_port.host("a").host("b").port(6000);
        assert_eq!(one_host(&one_port, 1).get_ports(), &[6000]);
    }
}
