//! A fresh PostgreSQL database per test.
//!
//! Where the server comes from, decided once per test process:
//! 1. `HULYKVS_TEST_PG_URL`, an admin URL such as
//!    `postgres://postgres@127.0.0.1:5432/postgres`;
//! 2. else `postgres://postgres@127.0.0.1:5432/postgres` when it answers;
//! 3. else a throwaway cluster made with `initdb` and started with `pg_ctl`
//!    (from PATH or `/usr/lib/postgresql/*/bin`) in the system temp dir, shared
//!    by every test process of the run and reused by later runs;
//! 4. else the test panics, saying how to provide one. Nothing is skipped.
//!
//! Each database is created with a linguistic collation (ICU `en-US`, where
//! the server supports it) so that code which forgets `COLLATE "C"` fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::NoTls;

/// The cluster the throwaway server keeps its files in (data, socket, log).
fn cluster_dir() -> PathBuf {
    std::env::temp_dir().join("hulykvs-test-pg")
}

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test; dropped (best effort) when this is dropped.
pub struct TestDb {
    /// URL of the database, for `HULY_DB_CONNECTION` or `PgStore::open`.
    pub url: String,
    /// Its name, `hulykvs_test_<uuid>`.
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// A plain connection to the test database, for preparing or inspecting it.
    pub async fn connect(&self) -> tokio_postgres::Client {
        side_connection(&self.url).await
    }

    /// Drops the database now rather than at the end of the scope.
    pub async fn drop_db(self) {
        drop_database(&self.admin_url, &self.name).await;
        std::mem::forget(self);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, where blocking on another
        // future is not allowed: use a runtime of its own on a thread.
        let _ = std::thread::spawn(move || block_on(drop_database(&admin_url, &name))).join();
    }
}

/// A plain connection to the database at `url`, beside whatever else uses
/// it (a server's pool): for preparing, inspecting, or holding locks.
pub async fn side_connection(url: &str) -> tokio_postgres::Client {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to test database {url}: {e}"))
}

/// Locks the row of `key` in namespace `ns` (schema `hulykvs`) until the
/// transaction this begins on `client` ends.
pub async fn lock_row(client: &tokio_postgres::Client, ns: &str, key: &str) {
    client.batch_execute("BEGIN").await.unwrap();
    let rows = client
        .query(
            "SELECT key FROM hulykvs.kvs WHERE namespace = $1 AND key = $2 FOR UPDATE",
            &[&ns, &key],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the row to lock exists");
}

/// How many sessions of `client`'s database wait on a lock. Inside a
/// transaction PostgreSQL reads the list of sessions once, so a session
/// opened later shows only to a `client` outside one.
pub async fn lock_waiters(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The server's version as a number, `server_version_num` (150004 is 15.4).
pub async fn server_version(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT current_setting('server_version_num')::INT4", &[])
        .await
        .unwrap()
        .get(0)
}

/// The plan PostgreSQL prints for `explain` (an `EXPLAIN …` statement), one
/// line of text per line of the plan.
pub async fn plan(client: &tokio_postgres::Client, explain: &str) -> String {
    let lines: Vec<String> = client
        .query(explain, &[])
        .await
        .unwrap_or_else(|e| panic!("{explain}: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect();
    lines.join("\n")
}

/// Creates a fresh, uniquely named database and returns its URL.
pub async fn fresh_database() -> TestDb {
    let admin_url = admin_url();
    let name = format!("hulykvs_test_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server {admin_url}: {e}"));
    // ICU needs PostgreSQL 15+; older servers get the cluster's default.
    let icu = format!(
        "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
         LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
    );
    if admin.batch_execute(&icu).await.is_err() {
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    }
    TestDb {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
    }
}

/// [`fresh_database`] for tests without a runtime.
pub fn fresh_database_blocking() -> TestDb {
    std::thread::spawn(|| block_on(fresh_database()))
        .join()
        .unwrap_or_else(|_| panic!("creating a test database failed"))
}

/// The admin URL of the test server, found (or started) once per process.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::thread::spawn(find_server)
            .join()
            .unwrap_or_else(|_| panic!("no PostgreSQL server for the tests"))
    })
    .clone()
}

fn find_server() -> String {
    if let Ok(url) = std::env::var("HULYKVS_TEST_PG_URL") {
        if let Err(e) = block_on(connect(&url)) {
            panic!("HULYKVS_TEST_PG_URL={url} does not answer: {e}");
        }
        return url;
    }
    if block_on(connect(DEFAULT_ADMIN_URL)).is_ok() {
        return DEFAULT_ADMIN_URL.to_owned();
    }
    match pg_bin_dir() {
        Some(bin) => start_cluster(&bin),
        None => panic!(
            "the PostgreSQL tests need a server: set HULYKVS_TEST_PG_URL to an admin URL \
             (such as postgres://postgres@127.0.0.1:5432/postgres), run PostgreSQL on \
             127.0.0.1:5432 with user postgres, or install PostgreSQL (initdb and pg_ctl, \
             e.g. `apt-get install postgresql`) so the tests can start their own"
        ),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        .block_on(future)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = tokio::time::timeout(Duration::from_secs(5), config.connect(NoTls))
        .await
        .map_err(|_| "no answer within 5s".to_owned())?
        .map_err(|e| format!("{e}: {}", source_text(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map(|s| s.to_string()).unwrap_or_default()
}

async fn drop_database(admin_url: &str, name: &str) {
    let Ok(admin) = connect(admin_url).await else {
        return;
    };
    let force = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    if admin.batch_execute(&force).await.is_err() {
        // Before PostgreSQL 13: end the sessions by hand, then drop.
        let _ = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .await;
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
            format!("{scheme}://{authority}/{name}{query}")
        }
        // key=value form: a later dbname wins.
        None => format!("{url} dbname={name}"),
    }
}

fn pg_bin_dir() -> Option<PathBuf> {
    // Where initdb really lives (PATH may hold only links to it), so the
    // other programs of that version (pg_basebackup) are found beside it.
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
            .and_then(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL program, run as user `postgres` when we are root (initdb,
/// pg_ctl and postgres refuse to run as root).
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a PostgreSQL program; panics with its output when it fails.
fn run_pg(program: &Path, args: &[&str]) {
    let mut command = pg_command(program);
    let output = command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    if !output.status.success() {
        panic!(
            "{} {} failed: {}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Holds the cluster directory's lock file while it lives.
struct ClusterLock(PathBuf);

impl ClusterLock {
    fn take(dir: &Path) -> ClusterLock {
        let path = dir.join("lock");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return ClusterLock(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A process that died while starting the cluster leaves it behind.
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .map(|at| {
                            SystemTime::now().duration_since(at).unwrap_or_default()
                                > Duration::from_secs(120)
                        })
                        .unwrap_or(false);
                    if stale {
                        let _ = std::fs::remove_file(&path);
                    }
                    assert!(
                        Instant::now() < deadline,
                        "waited too long for {}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("creating {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The URL of the shared throwaway cluster if it is up.
fn running_cluster(dir: &Path) -> Option<String> {
    let port = std::fs::read_to_string(dir.join("port")).ok()?;
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", port.trim());
    block_on(connect(&url)).ok().map(|_| url)
}

/// Starts (or finds) the throwaway cluster in the system temp dir. It keeps
/// running after the tests, for the next test process; stop it with
/// `pg_ctl -D $TMPDIR/hulykvs-test-pg/data stop`.
fn start_cluster(bin: &Path) -> String {
    let dir = cluster_dir();
    if let Some(url) = running_cluster(&dir) {
        return url;
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let _lock = ClusterLock::take(&dir);
    if let Some(url) = running_cluster(&dir) {
        return url;
    }
    if is_root() {
        let status = Command::new("chown").arg("postgres:").arg(&dir).status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "chown postgres {} failed",
            dir.display()
        );
    }
    let data = dir.join("data");
    let data_arg = data.to_string_lossy().into_owned();
    if !data.join("PG_VERSION").is_file() {
        let _ = std::fs::remove_dir_all(&data);
        run_pg(
            &bin.join("initdb"),
            &[
                "-D",
                &data_arg,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"));
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        dir.display()
    );
    let log = dir.join("log").to_string_lossy().into_owned();
    // A server of this cluster that runs but does not answer on the recorded
    // port (its port file lost or stale): stop it, then start it afresh.
    let running = pg_command(&bin.join("pg_ctl"))
        .args(["-D", &data_arg, "status"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if running {
        run_pg(
            &bin.join("pg_ctl"),
            &["-D", &data_arg, "-m", "fast", "-w", "stop"],
        );
    }
    run_pg(
        &bin.join("pg_ctl"),
        &[
            "-D", &data_arg, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
        ],
    );
    std::fs::write(dir.join("port"), port.to_string())
        .unwrap_or_else(|e| panic!("writing the port file: {e}"));
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    if let Err(e) = block_on(connect(&url)) {
        panic!(
            "the throwaway cluster in {} does not answer: {e}",
            dir.display()
        );
    }
    url
}

/// What an [`OwnCluster`] is made with, beyond `initdb`'s defaults.
#[derive(Default)]
pub struct ClusterSetup {
    /// Lines appended to `postgresql.conf`, such as `ssl = on`.
    pub conf: Vec<String>,
    /// The whole `pg_hba.conf`, when the default (trust everyone) will not do.
    pub hba: Option<String>,
    /// Files written into the data folder (name, contents), owned by the
    /// server's user with mode 0600, as PostgreSQL wants a TLS key to be.
    pub files: Vec<(String, String)>,
}

/// A PostgreSQL cluster of one test's own, for what the shared server must
/// never see: restarts, TLS-only settings. Made with `initdb` in a temporary
/// folder and run on a free port of 127.0.0.1 (its socket in that folder);
/// stopped and removed when dropped.
pub struct OwnCluster {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    data: String,
    options: String,
    log: String,
}

impl OwnCluster {
    /// Makes and starts a cluster; panics when PostgreSQL is not installed.
    pub fn start(setup: ClusterSetup) -> OwnCluster {
        let bin = pg_bin_dir().unwrap_or_else(|| {
            panic!("this test starts a PostgreSQL of its own: install PostgreSQL (initdb, pg_ctl)")
        });
        let dir = tempfile::Builder::new()
            .prefix("hulykvs-own-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a cluster folder: {e}"));
        let as_server_user = |path: &Path| {
            if is_root() {
                let status = Command::new("chown").arg("postgres:").arg(path).status();
                assert!(
                    status.map(|s| s.success()).unwrap_or(false),
                    "chown postgres {}",
                    path.display()
                );
            }
        };
        as_server_user(dir.path());
        let data = dir.path().join("data").to_string_lossy().into_owned();
        run_pg(
            &bin.join("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let data_path = Path::new(&data);
        if !setup.conf.is_empty() {
            let conf = data_path.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf)
                .unwrap_or_else(|e| panic!("reading {}: {e}", conf.display()));
            for line in &setup.conf {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&conf, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
        }
        if let Some(hba) = &setup.hba {
            let path = data_path.join("pg_hba.conf");
            std::fs::write(&path, hba)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        for (name, contents) in &setup.files {
            use std::os::unix::fs::PermissionsExt;
            let path = data_path.join(name);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            as_server_user(&path);
        }
        OwnCluster::run(bin, dir, data)
    }

    /// Starts the server of the data folder `data` in `dir` on a free port.
    fn run(bin: PathBuf, dir: tempfile::TempDir, data: String) -> OwnCluster {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("finding a free port: {e}"));
        // Commits are durable as in production (only fsync is off: no test
        // crashes the machine), so a test may stop the server any way it likes.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("log").to_string_lossy().into_owned();
        let cluster = OwnCluster {
            port,
            bin,
            dir,
            data,
            options,
            log,
        };
        cluster.start_again();
        cluster
    }

    /// The superuser's URL of database `postgres`, over TCP.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The superuser's URL of database `postgres` over the Unix socket, which
    /// never speaks TLS and is trusted whatever `pg_hba.conf` says of TCP.
    pub fn socket_url(&self) -> String {
        format!(
            "postgres://postgres@/postgres?host={}&port={}",
            self.dir.path().display(),
            self.port
        )
    }

    /// The folder holding the cluster (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, not waited for).
    pub fn stop(&self) {
        run_pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data, "-m", "fast", "-w", "-t", "60", "stop"],
        );
    }

    /// Starts the server again after [`OwnCluster::stop`], on the same port.
    pub fn start_again(&self) {
        run_pg(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data,
                "-o",
                &self.options,
                "-l",
                &self.log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A streaming standby of `primary` (`pg_basebackup -R` with a
    /// replication slot of its own), started on a free port of its own.
    /// `primary_port` is where it replicates from: the primary's port, or a
    /// proxy in front of it.
    pub fn standby_of(primary: &OwnCluster, primary_port: u16) -> OwnCluster {
        let dir = tempfile::Builder::new()
            .prefix("hulykvs-standby-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a standby folder: {e}"));
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status();
            assert!(
                status.map(|s| s.success()).unwrap_or(false),
                "chown postgres"
            );
        }
        let data = dir.path().join("data").to_string_lossy().into_owned();
        let slot = format!("standby_{}", std::process::id());
        run_pg(
            &primary.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                &slot,
                "--no-sync",
            ],
        );
        // -R wrote the primary's own port: replicate through `primary_port`.
        // Once promoted, this server has no standby of its own to wait for
        // (a failover manager would set this; the copied postgresql.conf
        // may name `*`, which would hold every commit forever).
        let auto = Path::new(&data).join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default().replace(
            &format!("port={}", primary.port),
            &format!("port={primary_port}"),
        );
        text.push_str("synchronous_standby_names = ''\n");
        std::fs::write(&auto, text).unwrap_or_else(|e| panic!("writing {}: {e}", auto.display()));
        OwnCluster::run(primary.bin.clone(), dir, data)
    }

    /// Promotes a standby to primary and waits until it takes writes.
    pub fn promote(&self) {
        run_pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data, "-w", "-t", "60", "promote"],
        );
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) {
        run_pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data, "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin.join("pg_ctl"))
            .args(["-D", &self.data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}
