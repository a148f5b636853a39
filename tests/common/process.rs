//! The real binary as a child process: `hulykvs serve` on port 0, its address
//! read from the start line, its stderr kept for assertions.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every variable `serve` reads, cleared so the caller's environment cannot leak in.
const SERVE_VARS: &[&str] = &[
    "HULY_DB_CONNECTION",
    "HULY_DB_SCHEME",
    "HULY_TOKEN_SECRET",
    "HULY_TOKEN_SECRET_PREVIOUS",
    "HULY_REQUIRE_SECRET",
    "HULY_BIND_HOST",
    "HULY_BIND_PORT",
    "HULY_PAYLOAD_SIZE_LIMIT",
    "HULY_DEFAULT_WORKSPACE_UUID",
    "HULY_DB_POOL_SIZE",
    "HULY_DB_CONNECT_TIMEOUT",
    "HULY_DB_POOL_TIMEOUT",
    "HULY_DB_STATEMENT_TIMEOUT",
    "HULY_HEADER_TIMEOUT",
    "HULY_BODY_TIMEOUT",
    "HULY_IDLE_TIMEOUT",
    "HULY_MAX_CONNECTIONS",
    "HULY_SHUTDOWN_TIMEOUT",
    "HULY_CORS_ORIGINS",
    "HULY_METRICS",
    "HULY_LOG_FORMAT",
    "HULY_MAX_TTL",
    "HULY_EXPIRY_SWEEP",
    "HULY_CHANGES_RETENTION",
    "HULY_WATCH_POLL",
    "HULY_WATCH_BUFFER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "HULY_KVS_URL",
    "HULY_TOKEN",
    "RUST_LOG",
    "HULY_TLS_CERT",
    "HULY_TLS_KEY",
    "HULY_TLS_CLIENT_CA",
    "HULY_KVS_CA_CERT",
    "HULY_KVS_CLIENT_CERT",
    "HULY_KVS_CLIENT_KEY",
];

/// `hulykvs` with a clean environment.
pub fn hulykvs() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hulykvs"));
    for var in SERVE_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `hulykvs ARGS` to its end with a clean environment plus `envs`,
/// feeding it `stdin` (none: stdin is empty); stdout and stderr are captured.
pub fn run_hulykvs(envs: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = hulykvs()
        .args(args)
        .envs(envs.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hulykvs");
    // Written from a thread: a child that fills its stdout before reading
    // all of stdin would otherwise wait for us while we wait for it.
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || pipe.write_all(&bytes))
    });
    let output = child.wait_with_output().expect("wait for hulykvs");
    if let Some(writer) = writer {
        writer
            .join()
            .expect("stdin writer")
            .expect("write hulykvs stdin");
    }
    output
}

/// A running `hulykvs serve`; killed when dropped.
pub struct ServerProcess {
    pub addr: SocketAddr,
    pub child: Child,
    /// Every line the process wrote to stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// Starts `hulykvs serve` on 127.0.0.1:0 with `envs`, in `dir` when given,
/// and waits until its first migration attempt is over: `serve` listens
/// before it migrates, and answers data routes `503 migrating` until then.
pub fn spawn_server_in(dir: Option<&Path>, envs: &[(&str, &str)]) -> ServerProcess {
    let mut server = spawn_listening_in(dir, envs);
    server.wait_for_migrations();
    server
}

/// Starts `hulykvs serve` and returns as soon as it listens, migrated or not.
pub fn spawn_listening(envs: &[(&str, &str)]) -> ServerProcess {
    spawn_listening_in(None, envs)
}

fn spawn_listening_in(dir: Option<&Path>, envs: &[(&str, &str)]) -> ServerProcess {
    let mut cmd = hulykvs();
    cmd.arg("serve")
        .env("HULY_BIND_HOST", "127.0.0.1")
        .env("HULY_BIND_PORT", "0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hulykvs serve");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().expect("stderr pipe");
    let lines = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let addr = line
                .contains("listening")
                .then(|| field(&line, "addr"))
                .flatten();
            lines.lock().unwrap().push(line);
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => addr.parse().expect("addr field"),
        Err(_) => {
            let _ = child.kill();
            panic!(
                "hulykvs serve did not start; stderr:\n{}",
                stderr.lock().unwrap().join("\n")
            );
        }
    };
    ServerProcess {
        addr,
        child,
        stderr,
    }
}

/// Starts `hulykvs serve` with `envs`.
pub fn spawn_server(envs: &[(&str, &str)]) -> ServerProcess {
    spawn_server_in(None, envs)
}

/// Starts `hulykvs serve` on a new SQLite file in `dir`, verifying tokens
/// signed with `secret`, with `envs` on top.
pub fn spawn_sqlite_server(dir: &Path, secret: &str, envs: &[(&str, &str)]) -> ServerProcess {
    let db = format!("sqlite:{}", dir.join("kvs.db").display());
    let mut all = vec![
        ("HULY_DB_CONNECTION", db.as_str()),
        ("HULY_TOKEN_SECRET", secret),
    ];
    all.extend_from_slice(envs);
    spawn_server(&all)
}

/// The value of `name=value` in a log line (quotes removed), or of
/// `"name":"value"` in a JSON one.
pub fn field(line: &str, name: &str) -> Option<String> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        return json.get(name)?.as_str().map(str::to_owned);
    }
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    let value = rest.split(' ').next()?;
    Some(value.trim_matches('"').to_owned())
}

impl ServerProcess {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(self.child.id(), "TERM");
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until the log says the first migration attempt is over (applied,
    /// or pending on an unreachable database), or the process has exited.
    pub fn wait_for_migrations(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.stderr_text();
            if text.contains("migrations applied") || text.contains("migrations pending") {
                return;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no migration outcome in the log of hulykvs serve:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal by name (`TERM`, `KILL`, `HUP`) to `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}
