//! Validated settings: sizes, durations, the database URL, and the whole
//! configuration of `serve`, checked before any I/O.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use crate::cli::{DbArgs, ServeArgs};
use crate::tls::TlsFiles;

/// The secret the previous service shipped with; accepted, but never quietly.
pub const DEFAULT_SECRET: &str = "secret";

/// A setting that cannot be used, named by its environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}: {why}")]
pub struct BadSetting {
    pub name: &'static str,
    pub why: String,
}

fn bad(name: &'static str, why: impl Into<String>) -> BadSetting {
    BadSetting {
        name,
        why: why.into(),
    }
}

/// Which engine holds the data.
#[derive(Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A `postgres://` or `postgresql://` URL: PostgreSQL or CockroachDB.
    Postgres(String),
    /// The embedded store at this path.
    Sqlite(PathBuf),
}

impl DbTarget {
    /// Parses `HULY_DB_CONNECTION`; unset means the embedded store `sqlite:hulykvs.db`.
    pub fn parse(text: Option<&str>) -> Result<Self, BadSetting> {
        const NAME: &str = "HULY_DB_CONNECTION";
        let text = match text.map(str::trim) {
            None | Some("") => return Ok(DbTarget::Sqlite(PathBuf::from("hulykvs.db"))),
            Some(t) => t,
        };
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad(
                    NAME,
                    "sqlite: needs a file path, as in sqlite:hulykvs.db",
                ));
            }
            return Ok(DbTarget::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            PgUrl::parse(text).map_err(|why| bad(NAME, why))?;
            return Ok(DbTarget::Postgres(text.to_owned()));
        }
        Err(bad(
            NAME,
            "expected postgresql://…, postgres://… or sqlite:PATH",
        ))
    }

    /// A description safe for logs: the password never appears.
    pub fn redacted(&self) -> String {
        match self {
            DbTarget::Sqlite(path) => format!("sqlite:{}", path.display()),
            DbTarget::Postgres(url) => redact_url(url),
        }
    }
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, else plaintext (libpq's default; `allow`
    /// is read as this too: both end up connected in the same cases).
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the server's certificate chains to a trusted root.
    VerifyCa,
    /// `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

/// What the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The Mozilla roots compiled into the binary (webpki-roots); also what
    /// libpq's `sslrootcert=system` asks for.
    Builtin,
    /// The PEM file of `sslrootcert=PATH`.
    File(PathBuf),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encryption against eavesdroppers only.
    Nothing,
    /// The chain up to a trusted root, but not the host name.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// The TLS settings of a PostgreSQL URL, with libpq's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    /// `None`: `sslrootcert` not given.
    pub root_certs: Option<RootCerts>,
    /// `sslcert` and `sslkey`: a client certificate chain and its key, PEM.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl PgTls {
    /// What libpq checks in this mode: `require` and `prefer` verify the chain
    /// when `sslrootcert` is given, and nothing otherwise.
    pub fn verify(&self) -> Verify {
        match self.mode {
            SslMode::Disable => Verify::Nothing,
            SslMode::Prefer | SslMode::Require if self.root_certs.is_none() => Verify::Nothing,
            SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Verify::Chain,
            SslMode::VerifyFull => Verify::ChainAndName,
        }
    }

    /// The roots to verify against: `sslrootcert`, else the built-in ones.
    pub fn roots(&self) -> RootCerts {
        self.root_certs.clone().unwrap_or(RootCerts::Builtin)
    }
}

/// A `postgres://` URL split into what tokio-postgres reads and the TLS
/// parameters of libpq it does not know (`sslmode=verify-ca|verify-full`,
/// `sslrootcert`, `sslcert`, `sslkey`).
#[derive(Debug, Clone)]
pub struct PgUrl {
    /// Everything but TLS; its `ssl_mode` is set from [`PgUrl::tls`].
    pub config: tokio_postgres::Config,
    pub tls: PgTls,
}

impl PgUrl {
    /// Parses a URL; the error says what is wrong, never quoting a password.
    pub fn parse(url: &str) -> Result<PgUrl, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|t| t.into_owned())
                    .map_err(|_| format!("parameter {raw_key} is not UTF-8"))
            };
            let name = decode(raw_key)?;
            let slot = match name.as_str() {
                "sslmode" => &mut mode,
                "sslrootcert" => &mut root,
                "sslcert" => &mut cert,
                "sslkey" => &mut key,
                _ => {
                    kept.push(pair);
                    continue;
                }
            };
            // As in libpq, the last one wins and an empty value means unset.
            *slot = Some(decode(raw_value)?).filter(|v| !v.is_empty());
        }
        let root_certs = root.map(|path| match path.as_str() {
            "system" => RootCerts::Builtin,
            _ => RootCerts::File(PathBuf::from(path)),
        });
        let system = root_certs == Some(RootCerts::Builtin);
        let mode = match mode.as_deref() {
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some("allow" | "prefer") => SslMode::Prefer,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                ))
            }
        };
        if system && mode != SslMode::VerifyFull {
            // libpq refuses this too: the public roots vouch for names, not for servers.
            return Err("sslrootcert=system needs sslmode=verify-full".to_owned());
        }
        let client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            (Some(_), None) => return Err("sslcert needs sslkey".to_owned()),
            (None, Some(_)) => return Err("sslkey needs sslcert".to_owned()),
        };
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| format!("not a usable PostgreSQL URL: {e}"))?;
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            // tokio-postgres knows no verify-*: the connector does the checking.
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        // tokio-postgres names the TLS peer after `host`; with only `hostaddr`
        // given, libpq checks the certificate against that address.
        if config.get_hosts().is_empty() {
            for addr in config.get_hostaddrs().to_vec() {
                config.host(addr.to_string());
            }
        }
        Ok(PgUrl {
            config,
            tls: PgTls {
                mode,
                root_certs,
                client_cert,
            },
        })
    }
}

/// Replaces the password of a URL (`user:password@`) and any `password=` query value.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return "<unparsable url>".to_owned(),
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Parses a size: bytes, or a number with `kb`/`mb`/`gb` (powers of 1000) or
/// `kib`/`mib`/`gib` (powers of 1024), any case, with optional space; `b` is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    if number.is_empty() {
        return Err(format!("no number in {text:?}"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a number: {number:?}"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration such as `90s`, `1h`, `7d`, `250ms` or `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number in {text:?}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" | "sec" => Duration::from_secs(number),
            "m" | "min" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "w" => Duration::from_secs(number.saturating_mul(604_800)),
            _ => {
                return Err(format!(
                    "unknown unit {unit:?} in {text:?} (use ms, s, m, h, d, w)"
                ))
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{text:?} is too long"))?;
    }
    Ok(total)
}

/// Everything `serve` needs, validated.
#[derive(Clone)]
pub struct ServeConfig {
    pub db: DbOptions,
    pub token_secret: String,
    pub bind: SocketAddr,
    pub payload_limit: u64,
    pub default_workspace: Uuid,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    /// HTTPS settings; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("db", &self.db)
            .field("token_secret", &"***")
            .field("bind", &self.bind)
            .field("payload_limit", &self.payload_limit)
            .field("default_workspace", &self.default_workspace)
            .finish_non_exhaustive()
    }
}

/// The longest timeout a setting may hold: deadlines are instants, and an
/// instant that far out cannot be represented (adding it would panic).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 86_400);

/// Parses a duration setting that must be longer than zero and at most [`MAX_TIMEOUT`].
fn positive_duration(name: &'static str, text: &str) -> Result<Duration, BadSetting> {
    let d = parse_duration(text).map_err(|why| bad(name, why))?;
    if d.is_zero() {
        return Err(bad(name, "must be longer than zero"));
    }
    if d > MAX_TIMEOUT {
        return Err(bad(name, "must be at most 365d"));
    }
    Ok(d)
}

/// The TLS files of `serve`: a certificate and key together, a client CA only with them.
fn tls_files(args: &ServeArgs) -> Result<Option<TlsFiles>, BadSetting> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        })),
        (None, None) if args.tls_client_ca.is_some() => Err(bad(
            "HULY_TLS_CLIENT_CA",
            "needs HULY_TLS_CERT and HULY_TLS_KEY",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad("HULY_TLS_KEY", "must be set with HULY_TLS_CERT")),
        (None, Some(_)) => Err(bad("HULY_TLS_CERT", "must be set with HULY_TLS_KEY")),
    }
}

/// Checks a schema name: a plain identifier, so it can be quoted into SQL safely.
pub fn check_schema(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 63 {
        return Err(format!(
            "{name:?} is not a plain identifier (letters, digits, _; at most 63)"
        ));
    }
    Ok(())
}

impl ServeConfig {
    /// Validates the command line and environment into a configuration.
    pub fn from_args(args: &ServeArgs) -> Result<Self, BadSetting> {
        let db = DbOptions::from_args(&args.db)?;
        if args.token_secret.is_empty() {
            return Err(bad("HULY_TOKEN_SECRET", "must not be empty"));
        }
        if args.require_secret && args.token_secret == DEFAULT_SECRET {
            return Err(bad(
                "HULY_TOKEN_SECRET",
                "is the default \"secret\" and HULY_REQUIRE_SECRET is set; set a real secret",
            ));
        }
        let host: IpAddr = args
            .bind_host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                bad(
                    "HULY_BIND_HOST",
                    format!("{:?} is not an IP address", args.bind_host),
                )
            })?;
        let payload_limit = parse_size(&args.payload_size_limit)
            .map_err(|why| bad("HULY_PAYLOAD_SIZE_LIMIT", why))?;
        let default_workspace = Uuid::parse_str(args.default_workspace.trim()).map_err(|e| {
            bad(
                "HULY_DEFAULT_WORKSPACE_UUID",
                format!("{:?} is not a UUID: {e}", args.default_workspace),
            )
        })?;
        if args.max_connections == 0 {
            return Err(bad("HULY_MAX_CONNECTIONS", "must be at least 1"));
        }
        Ok(ServeConfig {
            db,
            token_secret: args.token_secret.clone(),
            bind: SocketAddr::new(host, args.bind_port),
            payload_limit,
            default_workspace,
            header_timeout: positive_duration("HULY_HEADER_TIMEOUT", &args.header_timeout)?,
            body_timeout: positive_duration("HULY_BODY_TIMEOUT", &args.body_timeout)?,
            idle_timeout: positive_duration("HULY_IDLE_TIMEOUT", &args.idle_timeout)?,
            max_connections: args.max_connections,
            shutdown_timeout: positive_duration("HULY_SHUTDOWN_TIMEOUT", &args.shutdown_timeout)?,
            tls: tls_files(args)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2mb"), Ok(2_000_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("2 MiB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1kib"), Ok(1024));
        assert_eq!(parse_size("1.5kb"), Ok(1500));
        assert_eq!(parse_size("3gb"), Ok(3_000_000_000));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100b"), Ok(100));
        for bad in ["", "mb", "2xb", "-1mb", "1e400gb", "two"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        for bad in ["", "s", "1x", "h1", "1.5h", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(positive_duration("X", "365d").unwrap(), MAX_TIMEOUT);
        // Parsable, but no deadline that far out can be set: refused at start.
        for bad in ["0", "0s", "366d", "18446744073709551615", "99999999999999d"] {
            assert!(positive_duration("X", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn db_targets() {
        assert_eq!(
            DbTarget::parse(None).unwrap(),
            DbTarget::Sqlite("hulykvs.db".into())
        );
        assert_eq!(
            DbTarget::parse(Some("sqlite:/tmp/x.db")).unwrap(),
            DbTarget::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DbTarget::parse(Some(
                "postgresql://root@huly.local:26257/defaultdb?sslmode=disable"
            )),
            Ok(DbTarget::Postgres(_))
        ));
        assert!(DbTarget::parse(Some("mysql://x")).is_err());
        assert!(DbTarget::parse(Some("sqlite:")).is_err());
    }

    #[test]
    fn ssl_modes_read_as_libpq_does() {
        let tls = |url: &str| PgUrl::parse(url).map(|u| (u.tls.mode, u.tls.verify()));
        let base = "postgres://u@db:5432/x";
        assert_eq!(tls(base), Ok((SslMode::Prefer, Verify::Nothing)));
        for (mode, want, verify) in [
            ("disable", SslMode::Disable, Verify::Nothing),
            ("allow", SslMode::Prefer, Verify::Nothing),
            ("prefer", SslMode::Prefer, Verify::Nothing),
            ("require", SslMode::Require, Verify::Nothing),
            ("verify-ca", SslMode::VerifyCa, Verify::Chain),
            ("verify-full", SslMode::VerifyFull, Verify::ChainAndName),
        ] {
            assert_eq!(tls(&format!("{base}?sslmode={mode}")), Ok((want, verify)));
        }
        // With a root file, require checks the chain, as libpq does.
        assert_eq!(
            tls(&format!("{base}?sslmode=require&sslrootcert=/ca.pem")),
            Ok((SslMode::Require, Verify::Chain))
        );
        assert_eq!(
            tls(&format!("{base}?sslrootcert=system")),
            Ok((SslMode::VerifyFull, Verify::ChainAndName))
        );
        assert!(tls(&format!("{base}?sslrootcert=system&sslmode=require")).is_err());
        assert!(tls(&format!("{base}?sslmode=strict")).is_err());
    }

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let url = PgUrl::parse(
            "postgresql://u:pw@db:26257/x?sslmode=verify-full&application_name=kv\
             &sslrootcert=%2Fetc%2Fca%20dir%2Froot.crt&sslcert=/c.pem&sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(
            url.tls.root_certs,
            Some(RootCerts::File("/etc/ca dir/root.crt".into()))
        );
        assert_eq!(
            url.tls.client_cert,
            Some(("/c.pem".into(), "/k.pem".into()))
        );
        assert_eq!(url.config.get_application_name(), Some("kv"));
        assert_eq!(url.config.get_dbname(), Some("x"));
        assert_eq!(
            url.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            PgUrl::parse("postgres://db/x").unwrap().tls.roots(),
            RootCerts::Builtin
        );
        assert!(PgUrl::parse("postgres://db/x?sslcert=/c.pem").is_err());
        assert!(PgUrl::parse("postgres://db/x?sslkey=/k.pem").is_err());
        assert!(PgUrl::parse("postgres://db/x?sslcrl=/crl.pem").is_err());
        let only_addr = PgUrl::parse("postgres://u@/x?hostaddr=127.0.0.1").unwrap();
        assert_eq!(
            only_addr.config.get_hosts(),
            [tokio_postgres::config::Host::Tcp("127.0.0.1".to_owned())]
        );
        assert!(matches!(
            DbTarget::parse(Some(
                "postgres://db/x?sslmode=verify-full&sslrootcert=/ca.pem"
            )),
            Ok(DbTarget::Postgres(_))
        ));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db:5432/x?sslmode=require"),
            "postgres://u:***@db:5432/x?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/x?user=u&password=hunter2"),
            "postgres://db/x?user=u&password=***"
        );
        assert_eq!(
            redact_url("postgres://root@db:26257"),
            "postgres://root@db:26257"
        );
    }

    #[test]
    fn schema_names() {
        assert!(check_schema("hulykvs").is_ok());
        assert!(check_schema("_a1").is_ok());
        for bad in ["", "1a", "a-b", "a\"b", "a b"] {
            assert!(check_schema(bad).is_err(), "{bad:?}");
        }
    }
}

/// How to reach the database; shared by `serve` and `migrate`.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub target: DbTarget,
    /// Schema for the PostgreSQL tables, checked by [`check_schema`].
    pub schema: String,
    /// Pooled connections (PostgreSQL) or reader connections (SQLite).
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub pool_timeout: Duration,
    pub statement_timeout: Duration,
}

impl DbOptions {
    /// Validates the database flags.
    pub fn from_args(args: &DbArgs) -> Result<Self, BadSetting> {
        let target = DbTarget::parse(args.db_connection.as_deref())?;
        check_schema(&args.db_scheme).map_err(|why| bad("HULY_DB_SCHEME", why))?;
        if args.db_pool_size == 0 {
            return Err(bad("HULY_DB_POOL_SIZE", "must be at least 1"));
        }
        Ok(DbOptions {
            target,
            schema: args.db_scheme.clone(),
            pool_size: args.db_pool_size,
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
