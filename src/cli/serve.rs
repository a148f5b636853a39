//! The flags of `serve` and `migrate`, and their validation into a
//! [`ServeConfig`] or [`DbOptions`] before any I/O: a bad setting stops the
//! process with one line naming its environment variable.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Args;
use uuid::Uuid;

use crate::config::{
    parse_size, positive_duration, BadSetting, CorsOrigins, DbOptions, DbTarget, EncryptionKeys,
    LogFormat, ServeConfig, TlsFiles, DEFAULT_SECRET,
};
use crate::store::postgres::url::{check_schema, PgUrl};

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
    #[arg(long, env = "HULY_DB_CONNECT_TIMEOUT", default_value = "2s")]
    pub db_connect_timeout: String,

    /// Database connections in the pool (PostgreSQL), or reader connections (SQLite, at most 64), 1 to 1000.
    #[arg(
        long,
        env = "HULY_DB_POOL_SIZE",
        default_value = "8",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub db_pool_size: String,

    /// Longest wait for a free pooled connection before answering 503.
    #[arg(long, env = "HULY_DB_POOL_TIMEOUT", default_value = "5s")]
    pub db_pool_timeout: String,

    /// Longest wait for one database statement before answering 503.
    #[arg(long, env = "HULY_DB_STATEMENT_TIMEOUT", default_value = "10s")]
    pub db_statement_timeout: String,
}

/// The keys of encryption at rest; shared by `serve` and `reencrypt`.
#[derive(Clone, Args)]
pub struct EncryptionArgs {
    /// Encrypt values at rest: id:<base64 of 32 bytes>[,…]. New values are sealed under the
    /// first key, every listed key opens; a first entry `plaintext` writes new values
    /// unencrypted. Prefer the environment variable: a flag shows in the process list.
    #[arg(
        long,
        env = "HULY_ENCRYPTION_KEYS",
        hide_env_values = true,
        value_name = "ID:KEY,…"
    )]
    pub encryption_keys: Option<String>,
}

/// Never the keys.
impl std::fmt::Debug for EncryptionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionArgs { .. }")
    }
}

impl EncryptionArgs {
    /// The keys, validated; an error names the variable, never a key.
    pub fn keys(&self) -> Result<EncryptionKeys, BadSetting> {
        EncryptionKeys::parse(self.encryption_keys.as_deref().unwrap_or(""))
    }
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

    /// A second HS256 secret whose tokens are still accepted during a rotation; nothing is
    /// signed with it. Drop it once the old tokens have expired.
    #[arg(long, env = "HULY_TOKEN_SECRET_PREVIOUS", hide_env_values = true)]
    pub token_secret_previous: Option<String>,

    /// Refuse to start with the default secret "secret" (true or false; the flag alone is true).
    #[arg(
        long,
        env = "HULY_REQUIRE_SECRET",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub require_secret: Option<String>,

    /// Address to listen on.
    #[arg(long, env = "HULY_BIND_HOST", default_value = "0.0.0.0")]
    pub bind_host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(
        long,
        env = "HULY_BIND_PORT",
        default_value = "8094",
        value_name = "PORT",
        allow_hyphen_values = true
    )]
    pub bind_port: String,

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

    /// Most client connections served at once (1 to 1000000); more wait to be accepted.
    #[arg(
        long,
        env = "HULY_MAX_CONNECTIONS",
        default_value = "10000",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub max_connections: String,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key); reloaded when it changes or on SIGHUP.
    #[arg(long, env = "HULY_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of the TLS certificate.
    #[arg(long, env = "HULY_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "HULY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub encryption: EncryptionArgs,

    /// TOML policy of which tokens may read or write which namespaces ([[allow]] rules); unset:
    /// every token may use every namespace of its workspaces. Reloaded when it changes or on
    /// SIGHUP.
    #[arg(long, env = "HULY_ACL_FILE", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub acl_file: Option<std::path::PathBuf>,

    /// Browser origins answered with CORS headers: unset for any (with credentials, as the
    /// previous service), a comma list of origins such as https://huly.example, or off.
    #[arg(long, env = "HULY_CORS_ORIGINS", value_name = "ORIGINS")]
    pub cors_origins: Option<String>,

    /// Longest expiry a write may ask for with Huly-TTL or Huly-Expire-At, such as 30d [default: no limit].
    #[arg(long, env = "HULY_MAX_TTL", value_name = "DURATION")]
    pub max_ttl: Option<String>,

    /// How often expired values are swept from the database.
    #[arg(
        long,
        env = "HULY_EXPIRY_SWEEP",
        default_value = "1s",
        value_name = "DURATION"
    )]
    pub expiry_sweep: String,

    /// How long the change feed keeps a change; a watch or long poll from an older revision
    /// answers 410 revision_compacted.
    #[arg(
        long,
        env = "HULY_CHANGES_RETENTION",
        default_value = "24h",
        value_name = "DURATION"
    )]
    pub changes_retention: String,

    /// How often watched namespaces are polled for changes written through other instances
    /// (CockroachDB has no notifications; on PostgreSQL this backs up LISTEN/NOTIFY).
    #[arg(
        long,
        env = "HULY_WATCH_POLL",
        default_value = "1s",
        value_name = "DURATION"
    )]
    pub watch_poll: String,

    /// Most events a watch stream may fall behind before it ends with event error too_slow.
    #[arg(
        long,
        env = "HULY_WATCH_BUFFER",
        default_value = "10000",
        value_name = "EVENTS"
    )]
    pub watch_buffer: String,

    /// Serve Prometheus metrics at GET /metrics (on or off).
    #[arg(
        long,
        env = "HULY_METRICS",
        default_value = "on",
        value_name = "ON|OFF"
    )]
    pub metrics: String,

    /// Threads that serve requests: a number, 1 to 1024, or auto (one per CPU the process may use).
    /// One spends the least CPU per request; more serve more than one core's worth.
    #[arg(
        long,
        env = "HULY_WORKER_THREADS",
        default_value = "1",
        value_name = "N|auto"
    )]
    pub worker_threads: String,

    /// Serve the web console at GET /console (on or off).
    #[arg(
        long,
        env = "HULY_CONSOLE",
        default_value = "on",
        value_name = "ON|OFF"
    )]
    pub console: String,

    /// Log lines as text (for people) or json (one object per line).
    #[arg(
        long,
        env = "HULY_LOG_FORMAT",
        default_value = "text",
        value_name = "text|json"
    )]
    pub log_format: String,

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

/// Most pooled connections (PostgreSQL) or readers (SQLite, which starts at
/// most [`crate::store::sqlite::MAX_READERS`] threads) a setting may ask for.
const MAX_POOL_SIZE: u64 = 1000;
/// The largest value PostgreSQL (a `bytea` of 1 GB) and SQLite (`SQLITE_MAX_LENGTH`) store.
const MAX_PAYLOAD: u64 = 1_000_000_000;
/// Most client connections served at once: each costs a task and buffers.
const MAX_CONNECTIONS: u64 = 1_000_000;

/// A whole number from `min` to `max`, named by the variable `name` when it is not.
fn whole_number(name: &'static str, text: &str, min: u64, max: u64) -> Result<u64, BadSetting> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            BadSetting::new(
                name,
                format!("{text:?} is not a whole number from {min} to {max}"),
            )
        })
}

/// A switch: `true`, `false`, `1`, `0`, `yes`, `no`, `on` or `off`, in any case.
fn switch(name: &'static str, text: &str) -> Result<bool, BadSetting> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(BadSetting::new(
            name,
            format!("{text:?} is not true or false (also 1/0, yes/no, on/off)"),
        )),
    }
}

/// Parses `HULY_LOG_FORMAT`: `text` or `json`.
fn log_format(text: &str) -> Result<LogFormat, BadSetting> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" | "" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(BadSetting::new(
            "HULY_LOG_FORMAT",
            format!("{text:?} is not text or json"),
        )),
    }
}

/// Parses `HULY_CORS_ORIGINS`: unset, empty or `*` for any origin, `off`, or a
/// comma list of origins, each `scheme://host[:port]` as a browser sends it.
fn cors_origins(text: Option<&str>) -> Result<CorsOrigins, BadSetting> {
    const NAME: &str = "HULY_CORS_ORIGINS";
    let text = text.map(str::trim).unwrap_or("");
    if text.is_empty() || text == "*" {
        return Ok(CorsOrigins::Any);
    }
    if text.eq_ignore_ascii_case("off") {
        return Ok(CorsOrigins::Off);
    }
    let mut list = Vec::new();
    for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let host = origin
            .split_once("://")
            .filter(|(scheme, _)| !scheme.is_empty())
            .map(|(_, host)| host);
        match host {
            Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
                list.push(origin.to_owned());
            }
            _ => {
                return Err(BadSetting::new(
                    NAME,
                    format!(
                        "{origin:?} is not an origin such as https://huly.example or \
                         http://localhost:8080 (no path), nor off"
                    ),
                ))
            }
        }
    }
    Ok(CorsOrigins::Only(list))
}

/// Parses `HULY_DB_CONNECTION`; unset means the embedded store `sqlite:hulykvs.db`.
/// A PostgreSQL URL is checked whole here, TLS parameters included.
fn db_target(text: Option<&str>) -> Result<DbTarget, BadSetting> {
    const NAME: &str = "HULY_DB_CONNECTION";
    let text = match text.map(str::trim) {
        None | Some("") => return Ok(DbTarget::Sqlite(PathBuf::from("hulykvs.db"))),
        Some(t) => t,
    };
    if let Some(path) = text.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(BadSetting::new(
                NAME,
                "sqlite: needs a file path, as in sqlite:hulykvs.db",
            ));
        }
        return Ok(DbTarget::Sqlite(PathBuf::from(path)));
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        PgUrl::parse(text).map_err(|why| BadSetting::new(NAME, why))?;
        return Ok(DbTarget::Postgres(text.to_owned()));
    }
    Err(BadSetting::new(
        NAME,
        "expected postgresql://…, postgres://… or sqlite:PATH",
    ))
}

impl DbOptions {
    /// Validates the database flags.
    pub fn from_args(args: &DbArgs) -> Result<Self, BadSetting> {
        let target = db_target(args.db_connection.as_deref())?;
        check_schema(&args.db_scheme).map_err(|why| BadSetting::new("HULY_DB_SCHEME", why))?;
        let pool_size = whole_number("HULY_DB_POOL_SIZE", &args.db_pool_size, 1, MAX_POOL_SIZE)?;
        Ok(DbOptions {
            target,
            schema: args.db_scheme.clone(),
            pool_size: pool_size as usize,
            connect_timeout: positive_duration(
                "HULY_DB_CONNECT_TIMEOUT",
                &args.db_connect_timeout,
            )?,
            pool_timeout: positive_duration("HULY_DB_POOL_TIMEOUT", &args.db_pool_timeout)?,
            statement_timeout: positive_duration(
                "HULY_DB_STATEMENT_TIMEOUT",
                &args.db_statement_timeout,
            )?,
        })
    }
}

/// The TLS files of `serve`: a certificate and key together, a client CA only with them.
fn tls_files(args: &ServeArgs) -> Result<Option<TlsFiles>, BadSetting> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        })),
        (None, None) if args.tls_client_ca.is_some() => Err(BadSetting::new(
            "HULY_TLS_CLIENT_CA",
            "needs HULY_TLS_CERT and HULY_TLS_KEY",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(BadSetting::new(
            "HULY_TLS_KEY",
            "must be set with HULY_TLS_CERT",
        )),
        (None, Some(_)) => Err(BadSetting::new(
            "HULY_TLS_CERT",
            "must be set with HULY_TLS_KEY",
        )),
    }
}

/// `HULY_TOKEN_SECRET`: never empty, and not the default when
/// `HULY_REQUIRE_SECRET` is set.
fn check_secret(args: &ServeArgs) -> Result<(), BadSetting> {
    if args.token_secret.is_empty() {
        return Err(BadSetting::new("HULY_TOKEN_SECRET", "must not be empty"));
    }
    let require_secret = match &args.require_secret {
        None => false,
        Some(text) => switch("HULY_REQUIRE_SECRET", text)?,
    };
    if require_secret && args.token_secret == DEFAULT_SECRET {
        return Err(BadSetting::new(
            "HULY_TOKEN_SECRET",
            "is the default \"secret\" and HULY_REQUIRE_SECRET is set; set a real secret",
        ));
    }
    match args.token_secret_previous.as_deref() {
        Some("") => Err(BadSetting::new(
            "HULY_TOKEN_SECRET_PREVIOUS",
            "must not be empty (unset it to accept the current secret only)",
        )),
        Some(DEFAULT_SECRET) if require_secret => Err(BadSetting::new(
            "HULY_TOKEN_SECRET_PREVIOUS",
            "is the default \"secret\" and HULY_REQUIRE_SECRET is set",
        )),
        Some(previous) if previous == args.token_secret => Err(BadSetting::new(
            "HULY_TOKEN_SECRET_PREVIOUS",
            "is the same as HULY_TOKEN_SECRET",
        )),
        _ => Ok(()),
    }
}

impl ServeConfig {
    /// Validates the command line and environment into a configuration.
    pub fn from_args(args: &ServeArgs) -> Result<Self, BadSetting> {
        let db = DbOptions::from_args(&args.db)?;
        check_secret(args)?;
        let host: IpAddr = args
            .bind_host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                BadSetting::new(
                    "HULY_BIND_HOST",
                    format!("{:?} is not an IP address", args.bind_host),
                )
            })?;
        let payload_limit = parse_size(&args.payload_size_limit)
            .map_err(|why| BadSetting::new("HULY_PAYLOAD_SIZE_LIMIT", why))?;
        if payload_limit > MAX_PAYLOAD {
            return Err(BadSetting::new(
                "HULY_PAYLOAD_SIZE_LIMIT",
                format!(
                    "{:?} is over 1gb, the largest value PostgreSQL and SQLite store",
                    args.payload_size_limit
                ),
            ));
        }
        let default_workspace = Uuid::parse_str(args.default_workspace.trim()).map_err(|e| {
            BadSetting::new(
                "HULY_DEFAULT_WORKSPACE_UUID",
                format!("{:?} is not a UUID: {e}", args.default_workspace),
            )
        })?;
        let max_connections = whole_number(
            "HULY_MAX_CONNECTIONS",
            &args.max_connections,
            1,
            MAX_CONNECTIONS,
        )?;
        let port = whole_number("HULY_BIND_PORT", &args.bind_port, 0, u64::from(u16::MAX))?;
        Ok(ServeConfig {
            db,
            token_secret: args.token_secret.clone(),
            token_secret_previous: args.token_secret_previous.clone(),
            bind: SocketAddr::new(host, port as u16),
            payload_limit,
            default_workspace,
            header_timeout: positive_duration("HULY_HEADER_TIMEOUT", &args.header_timeout)?,
            body_timeout: positive_duration("HULY_BODY_TIMEOUT", &args.body_timeout)?,
            idle_timeout: positive_duration("HULY_IDLE_TIMEOUT", &args.idle_timeout)?,
            max_connections: max_connections as usize,
            shutdown_timeout: positive_duration("HULY_SHUTDOWN_TIMEOUT", &args.shutdown_timeout)?,
            tls: tls_files(args)?,
            cors: cors_origins(args.cors_origins.as_deref())?,
            encryption: args.encryption.keys()?,
            acl_file: args.acl_file.clone(),
            max_ttl: args
                .max_ttl
                .as_deref()
                .map(|text| positive_duration("HULY_MAX_TTL", text).map(|d| d.as_secs().max(1)))
                .transpose()?,
            expiry_sweep: positive_duration("HULY_EXPIRY_SWEEP", &args.expiry_sweep)?,
            changes_retention: positive_duration(
                "HULY_CHANGES_RETENTION",
                &args.changes_retention,
            )?,
            watch_poll: positive_duration("HULY_WATCH_POLL", &args.watch_poll)?,
            watch_buffer: whole_number("HULY_WATCH_BUFFER", &args.watch_buffer, 1, 1_000_000)?
                as usize,
            metrics: switch("HULY_METRICS", &args.metrics)?,
            console: switch("HULY_CONSOLE", &args.console)?,
            worker_threads: match args.worker_threads.trim() {
                text if text.eq_ignore_ascii_case("auto") || text.is_empty() => None,
                text => Some(whole_number("HULY_WORKER_THREADS", text, 1, 1024)? as usize),
            },
            log_format: log_format(&args.log_format)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_switches_name_their_range() {
        assert_eq!(whole_number("X", " 8 ", 1, 10).unwrap(), 8);
        for bad in ["", "abc", "-1", "0", "11", "99999999999999999999", "1.5"] {
            let e = whole_number("X", bad, 1, 10).unwrap_err();
            assert!(e.to_string().contains("from 1 to 10"), "{bad:?}: {e}");
        }
        assert!(switch("X", "TRUE").unwrap());
        assert!(switch("X", "yes").unwrap());
        assert!(!switch("X", "off").unwrap());
        assert!(
            !switch("X", "").unwrap(),
            "set but empty, as clap reads a flag"
        );
        assert!(switch("X", "maybe").is_err());
    }

    #[test]
    fn cors_origin_lists() {
        assert_eq!(cors_origins(None).unwrap(), CorsOrigins::Any);
        assert_eq!(cors_origins(Some(" * ")).unwrap(), CorsOrigins::Any);
        assert_eq!(cors_origins(Some("OFF")).unwrap(), CorsOrigins::Off);
        let list = cors_origins(Some("https://a.example, http://localhost:8080")).unwrap();
        assert!(list.allows("https://A.example"));
        assert!(list.allows("http://localhost:8080"));
        assert!(!list.allows("http://localhost:8081"));
        assert!(!CorsOrigins::Off.allows("https://a.example"));
        for bad in ["a.example", "https://a.example/", "https://", "://x", "on"] {
            assert!(cors_origins(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn db_targets() {
        assert_eq!(
            db_target(None).unwrap(),
            DbTarget::Sqlite("hulykvs.db".into())
        );
        assert_eq!(
            db_target(Some("sqlite:/tmp/x.db")).unwrap(),
            DbTarget::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            db_target(Some(
                "postgresql://root@huly.local:26257/defaultdb?sslmode=disable"
            )),
            Ok(DbTarget::Postgres(_))
        ));
        assert!(matches!(
            db_target(Some(
                "postgres://db/x?sslmode=verify-full&sslrootcert=/ca.pem"
            )),
            Ok(DbTarget::Postgres(_))
        ));
        assert!(db_target(Some("postgres://db/x?sslmode=strict")).is_err());
        assert!(db_target(Some("mysql://x")).is_err());
        assert!(db_target(Some("sqlite:")).is_err());
    }
}
