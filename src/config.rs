//! Validated settings: the whole configuration of `serve` and `migrate`, the
//! units they are written in (sizes, durations), and the rules every setting
//! follows. The command line fills these in (`cli::serve`); nothing here
//! knows of flags or of the rooms that use the settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

/// The secret the previous service shipped with; accepted, but never quietly.
pub const DEFAULT_SECRET: &str = "secret";

/// A setting that cannot be used, named by its environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}: {why}")]
pub struct BadSetting {
    pub name: &'static str,
    pub why: String,
}

impl BadSetting {
    /// The setting `name` (its environment variable) is wrong because of `why`.
    pub fn new(name: &'static str, why: impl Into<String>) -> Self {
        BadSetting {
            name,
            why: why.into(),
        }
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

/// How to reach the database; shared by `serve` and `migrate`.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub target: DbTarget,
    /// Schema for the PostgreSQL tables, a plain identifier.
    pub schema: String,
    /// Pooled connections (PostgreSQL) or reader connections (SQLite).
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub pool_timeout: Duration,
    pub statement_timeout: Duration,
}

/// How log lines are written (`HULY_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line per event, colored at a terminal.
    Text,
    /// For machines: one JSON object per line.
    Json,
}

/// Which browser origins get CORS headers (`HULY_CORS_ORIGINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Every origin, reflected, with credentials: what the previous service did.
    Any,
    /// Only these origins (`scheme://host[:port]`, compared without regard to case).
    Only(Vec<String>),
    /// No CORS headers at all.
    Off,
}

impl CorsOrigins {
    /// Whether a request from `origin` gets CORS headers.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::Only(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            CorsOrigins::Off => false,
        }
    }
}

/// The PEM files of the TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (`HULY_TLS_CERT`).
    pub cert: PathBuf,
    /// Private key of the leaf (`HULY_TLS_KEY`).
    pub key: PathBuf,
    /// CA that client certificates must chain to (`HULY_TLS_CLIENT_CA`); `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
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

/// The keys of encryption at rest (`HULY_ENCRYPTION_KEYS`), in order: new
/// values are sealed under the first, and every one opens stored values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptionKeys {
    /// The list starts with `plaintext`: new values are written unsealed
    /// while the keys still open what they sealed (turning encryption off).
    pub write_plaintext: bool,
    /// Each key's id and its 32 bytes.
    pub keys: Vec<(String, [u8; 32])>,
}

/// Key ids only: the bytes never reach a log.
impl std::fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("EncryptionKeys")
            .field("write_plaintext", &self.write_plaintext)
            .field("ids", &ids)
            .finish()
    }
}

/// Longest key id: it is stored with every sealed row.
pub const MAX_KEY_ID: usize = 64;

impl EncryptionKeys {
    /// Parses `[plaintext,]id:<base64 of 32 bytes>[,…]`; empty: no keys. An
    /// error names the entry by its position and id, never its key text.
    pub fn parse(text: &str) -> Result<EncryptionKeys, BadSetting> {
        use base64::Engine as _;
        const NAME: &str = "HULY_ENCRYPTION_KEYS";
        let mut keys = EncryptionKeys::default();
        let entries: Vec<&str> = text.split(',').map(str::trim).collect();
        if text.trim().is_empty() {
            return Ok(keys);
        }
        for (i, entry) in entries.iter().enumerate() {
            let n = i + 1;
            if *entry == "plaintext" && i == 0 {
                keys.write_plaintext = true;
                continue;
            }
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(BadSetting::new(
                    NAME,
                    format!("entry {n} is not id:<base64 key> (only the first entry may be the word plaintext)"),
                ));
            };
            let id_ok = !id.is_empty()
                && id.len() <= MAX_KEY_ID
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !id_ok {
                return Err(BadSetting::new(
                    NAME,
                    format!("entry {n}: a key id is 1 to {MAX_KEY_ID} of A-Z a-z 0-9 . _ -"),
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| {
                    BadSetting::new(NAME, format!("entry {n} (key {id:?}) is not valid base64"))
                })?;
            let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                BadSetting::new(
                    NAME,
                    format!(
                        "entry {n} (key {id:?}) is {} bytes, not 32 (make one with: head -c 32 /dev/urandom | base64)",
                        bytes.len()
                    ),
                )
            })?;
            if keys.keys.iter().any(|(known, _)| known == id) {
                return Err(BadSetting::new(
                    NAME,
                    format!("key id {id:?} is listed twice"),
                ));
            }
            keys.keys.push((id.to_owned(), secret));
        }
        if keys.keys.is_empty() {
            return Err(BadSetting::new(
                NAME,
                "plaintext alone lists no key: unset the variable instead",
            ));
        }
        Ok(keys)
    }
}

/// Everything `serve` needs, validated.
#[derive(Clone)]
pub struct ServeConfig {
    pub db: DbOptions,
    pub token_secret: String,
    /// `HULY_TOKEN_SECRET_PREVIOUS`: also accepted, never signed with (SPEC §22).
    pub token_secret_previous: Option<String>,
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
    /// Browser origins that get CORS headers.
    pub cors: CorsOrigins,
    /// Encryption at rest: none when no key is listed.
    pub encryption: EncryptionKeys,
    /// The ACL policy file; `None`: every token may use every namespace of its workspaces.
    pub acl_file: Option<std::path::PathBuf>,
    /// Longest expiry a write may ask for, in seconds; `None`: no limit.
    pub max_ttl: Option<u64>,
    /// How often this instance sweeps expired values.
    pub expiry_sweep: Duration,
    /// How long the change log keeps a change.
    pub changes_retention: Duration,
    /// How often watched namespaces are polled for changes made elsewhere.
    pub watch_poll: Duration,
    /// Most events a watch stream may fall behind before it ends (`too_slow`).
    pub watch_buffer: usize,
    /// Whether `GET /metrics` serves the Prometheus registry.
    pub metrics: bool,
    /// Whether `GET /console` serves the web console (SPEC §23).
    pub console: bool,
    /// Threads of the runtime that serves requests; `None`: one per CPU the process may use.
    pub worker_threads: Option<usize>,
    /// How log lines are written.
    pub log_format: LogFormat,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("db", &self.db)
            .field("token_secret", &"***")
            .field(
                "token_secret_previous",
                &self.token_secret_previous.as_ref().map(|_| "***"),
            )
            .field("bind", &self.bind)
            .field("payload_limit", &self.payload_limit)
            .field("default_workspace", &self.default_workspace)
            .field("encryption", &self.encryption)
            .finish_non_exhaustive()
    }
}

/// The longest timeout a setting may hold: deadlines are instants, and an
/// instant that far out cannot be represented (adding it would panic).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 86_400);

/// Parses a duration setting that must be longer than zero and at most [`MAX_TIMEOUT`].
pub fn positive_duration(name: &'static str, text: &str) -> Result<Duration, BadSetting> {
    let d = parse_duration(text).map_err(|why| BadSetting::new(name, why))?;
    if d.is_zero() {
        return Err(BadSetting::new(name, "must be longer than zero"));
    }
    if d > MAX_TIMEOUT {
        return Err(BadSetting::new(name, "must be at most 365d"));
    }
    Ok(d)
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
    fn encryption_keys() {
        let k = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let keys = EncryptionKeys::parse(&format!("k2:{k}, k1:{k}")).unwrap();
        assert_eq!(keys.keys.len(), 2);
        assert_eq!((keys.keys[0].0.as_str(), keys.keys[0].1), ("k2", [1u8; 32]));
        assert!(!keys.write_plaintext);
        let off = EncryptionKeys::parse(&format!("plaintext,k1:{k}")).unwrap();
        assert!(off.write_plaintext && off.keys.len() == 1);
        assert_eq!(
            EncryptionKeys::parse("  ").unwrap(),
            EncryptionKeys::default()
        );
        let short = "c2hvcnQ=";
        for bad in [
            format!("k1:{short}"),
            format!("k1:{k},k1:{k}"),
            "k1:not base64!".to_owned(),
            format!(":{k}"),
            format!("k 1:{k}"),
            k.to_owned(),
            "plaintext".to_owned(),
            format!("k1:{k},plaintext"),
        ] {
            let e = EncryptionKeys::parse(&bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid HULY_ENCRYPTION_KEYS: "), "{e}");
            assert!(!e.contains(k) && !e.contains(short), "{e}");
        }
        assert!(!format!("{keys:?}").contains("[1, 1"), "{keys:?}");
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
}
