//! The command line: every subcommand and flag, declared once with clap.
//! Flags fall back to environment variables, then to defaults.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// hulykvs: the Huly key-value service and its command-line client.
#[derive(Debug, Parser)]
#[command(name = "hulykvs", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(MigrateArgs),
    /// Store a value.
    Put(PutArgs),
    /// Print a value's raw bytes.
    Get(GetArgs),
    /// Delete a value.
    Delete(DeleteArgs),
    /// List the keys of a namespace, one a line.
    List(ListArgs),
    /// Print a signed HS256 token for the service.
    Token(TokenArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Load-test a running service: throughput, latency percentiles, answers by status.
    Bench(BenchArgs),
}

/// Where the data lives; shared by `serve` and `migrate`.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database: postgresql://… (PostgreSQL or CockroachDB) or sqlite:PATH [default: sqlite:hulykvs.db]
    #[arg(long, env = "HULY_DB_CONNECTION", hide_env_values = true)]
    pub db_connection: Option<String>,

    /// Schema holding the tables (PostgreSQL and CockroachDB).
    #[arg(long, env = "HULY_DB_SCHEME", default_value = "hulykvs")]
    pub db_scheme: String,

    /// Time allowed to open a database connection.
    #[arg(long, env = "HULY_DB_CONNECT_TIMEOUT", default_value = "5s")]
    pub db_connect_timeout: String,

    /// Database connections in the pool (PostgreSQL), or reader connections (SQLite).
    #[arg(long, env = "HULY_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: usize,

    /// Longest wait for a free pooled connection before answering 503.
    #[arg(long, env = "HULY_DB_POOL_TIMEOUT", default_value = "5s")]
    pub db_pool_timeout: String,

    /// Longest wait for one database statement before answering 503.
    #[arg(long, env = "HULY_DB_STATEMENT_TIMEOUT", default_value = "10s")]
    pub db_statement_timeout: String,
}

/// Settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// HS256 secret that tokens are signed with.
    #[arg(
        long,
        env = "HULY_TOKEN_SECRET",
        default_value = "secret",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub token_secret: String,

    /// Refuse to start with the default secret "secret".
    #[arg(long, env = "HULY_REQUIRE_SECRET")]
    pub require_secret: bool,

    /// Address to listen on.
    #[arg(long, env = "HULY_BIND_HOST", default_value = "0.0.0.0")]
    pub bind_host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "HULY_BIND_PORT", default_value_t = 8094)]
    pub bind_port: u16,

    /// Largest value accepted: bytes, or kb/mb/gb (powers of 1000), kib/mib/gib (of 1024).
    #[arg(long, env = "HULY_PAYLOAD_SIZE_LIMIT", default_value = "2mb")]
    pub payload_size_limit: String,

    /// Workspace of the legacy /api routes.
    #[arg(
        long,
        env = "HULY_DEFAULT_WORKSPACE_UUID",
        default_value = "11111111-2222-3333-4444-555555555555"
    )]
    pub default_workspace: String,

    /// Time a client has to send a request's headers.
    #[arg(long, env = "HULY_HEADER_TIMEOUT", default_value = "10s")]
    pub header_timeout: String,

    /// Time a client has to send a request's body.
    #[arg(long, env = "HULY_BODY_TIMEOUT", default_value = "30s")]
    pub body_timeout: String,

    /// An idle keep-alive connection is closed after this long.
    #[arg(long, env = "HULY_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: String,

    /// Most client connections served at once; more wait to be accepted.
    #[arg(long, env = "HULY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key); reloaded when it changes or on SIGHUP.
    #[arg(long, env = "HULY_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of the TLS certificate.
    #[arg(long, env = "HULY_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "HULY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    /// On SIGTERM or Ctrl-C, how long in-flight requests get to finish.
    #[arg(long, env = "HULY_SHUTDOWN_TIMEOUT", default_value = "30s")]
    pub shutdown_timeout: String,
}

/// Settings of `migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// List applied and pending migrations instead of applying them.
    #[arg(long)]
    pub status: bool,
}

/// A secret from the command line or the environment; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for signing or for an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How a client subcommand reaches the service.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the service.
    #[arg(long, env = "HULY_KVS_URL", default_value = "http://localhost:8094")]
    pub url: String,

    /// Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET.
    #[arg(long, env = "HULY_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// HS256 secret to mint a system token with when no --token is given.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// Workspace UUID (API v2); without it, the legacy API and its default workspace.
    #[arg(short = 'w', long)]
    pub workspace: Option<String>,

    /// How long to wait for the service, such as 30s or 2m.
    #[arg(long, default_value = "30s")]
    pub timeout: String,

    /// PEM file of the CA certificate(s) to trust for an https --url, instead of (not in
    /// addition to) the built-in public roots.
    #[arg(long, env = "HULY_KVS_CA_CERT", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate (chain) for mutual TLS; needs --client-key.
    #[arg(
        long,
        env = "HULY_KVS_CLIENT_CERT",
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "HULY_KVS_CLIENT_KEY",
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

/// `put`: store a value.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Key; `/` is part of the key.
    pub key: String,
    /// The value; `-` (or nothing, with no --file) reads stdin to its end.
    pub value: Option<OsString>,
    /// Read the value from this file (`-`: stdin).
    #[arg(long, conflicts_with = "value")]
    pub file: Option<PathBuf>,
    /// Content type stored with the value [default: application/octet-stream].
    #[arg(long)]
    pub content_type: Option<String>,
    /// Write only if the current value has this ETag, quoted or bare (needs -w).
    #[arg(long, value_name = "ETAG", group = "precondition")]
    pub if_match: Option<String>,
    /// Write only if a value is already stored (needs -w).
    #[arg(long, group = "precondition")]
    pub if_exists: bool,
    /// Write only if no value is stored yet (needs -w).
    #[arg(long, group = "precondition")]
    pub if_absent: bool,
    /// Print the new value's ETag to stderr.
    #[arg(long)]
    pub etag: bool,
}

/// `get`: print a value.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Key; `/` is part of the key.
    pub key: String,
    /// Write the value to this file instead of stdout (`-`: stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the value's ETag to stderr.
    #[arg(long)]
    pub etag: bool,
}

/// `delete`: remove a value.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Key; `/` is part of the key.
    pub key: String,
    /// Delete only if the current value has this ETag, quoted or bare (needs -w).
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
}

/// `list`: print the keys of a namespace.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Only keys that start with this literal prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Print one JSON document in the service's shape, all pages merged.
    #[arg(long)]
    pub json: bool,
    /// Keys fetched per request (API v2; the legacy API sends all keys at once).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
}

/// `token`: mint a JWT.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Sign for the system account, which may use every workspace.
    #[arg(long, conflicts_with = "account")]
    pub system: bool,
    /// Account UUID the token speaks for.
    #[arg(long, required_unless_present = "system")]
    pub account: Option<String>,
    /// Workspace UUID the token grants.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Service name, stored as extra.service.
    #[arg(long)]
    pub service: Option<String>,
    /// Extra claim K=V (repeatable).
    #[arg(long = "extra", value_name = "K=V")]
    pub extra: Vec<String>,
    /// Lifetime, such as 90s, 1h or 7d; without it the token does not expire.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// HS256 secret.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub secret: Secret,
}

/// `completions`: print a completion script.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// Shell to complete for.
    pub shell: clap_complete::Shell,
}

/// `bench`: load-test a running service, as redis-benchmark does.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of the service (plain http://).
    #[arg(long, env = "HULY_KVS_URL", default_value = "http://localhost:8094")]
    pub url: String,

    /// Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET.
    #[arg(long, env = "HULY_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// HS256 secret to mint a system token with when no --token is given.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// What each connection does, back to back.
    #[arg(long, value_enum, default_value_t = crate::bench::Workload::Get)]
    pub workload: crate::bench::Workload,

    /// Shares of the mixed workload, of get, put, cas and list; lists read <namespace>-list.
    #[arg(
        long,
        value_name = "OP=SHARE,...",
        default_value = "get=80,put=15,list=5"
    )]
    pub mix: String,

    /// Connections, each one keep-alive HTTP/1.1 connection with one request in flight.
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,

    /// How long to measure, such as 10s or 1m.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub duration: String,

    /// How long to load the service before measuring; not counted.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub warmup: String,

    /// Keys the requests spread over, named 0, 1, 2, … [default: 10000; 1000 for --workload list]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: Option<u32>,

    /// Keys in <namespace>-list, the namespace the mixed workload lists.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub list_keys: u32,

    /// Bytes of each value written (random, from a pool of 64).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub value_size: usize,

    /// Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]
    #[arg(short = 'w', long, conflicts_with = "legacy")]
    pub workspace: Option<String>,

    /// Namespace [default: bench; bench-list for --workload list]
    #[arg(long)]
    pub namespace: Option<String>,

    /// Use the legacy /api routes and their default workspace (no cas).
    #[arg(long)]
    pub legacy: bool,

    /// Print one JSON object instead of the table; progress still goes to stderr.
    #[arg(long)]
    pub json: bool,

    /// Do not write the keys first (they must already exist).
    #[arg(long)]
    pub no_seed: bool,

    /// Threads of the load generator; one leaves the other cores to the service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
}

/// Writes the completion script of `shell` for the whole command line.
/// A closed pipe (`hulykvs completions bash | head`) is not an error.
pub fn write_completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // Generate into memory first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hulykvs", &mut script);
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
