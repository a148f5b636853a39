//! PostgreSQL and CockroachDB through tokio-postgres and a deadpool pool.
//!
//! One code path serves both engines. [`PgStore::migrate`] connects, tells them
//! apart from `SELECT version()`, applies the migrations of `sql/postgres/` or
//! `sql/cockroach/` under a lease row both engines honour, and only then builds
//! the statements the data operations use: until it succeeds, every data
//! operation answers [`StoreError::Unavailable`].
//!
//! Every statement is prepared once per pooled connection and reused. Keys are
//! compared as raw bytes: with `COLLATE "C"` on PostgreSQL, whose database
//! collation may be linguistic, and as they are on CockroachDB, which compares
//! strings bytewise. Values never appear in logs or error texts.
//!
//! Connections use TLS as libpq would with the URL's `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey` (see [`PgTls`]), through rustls with the `ring`
//! provider; without `sslrootcert`, verifying modes trust the Mozilla roots
//! compiled in (webpki-roots), so a minimal container needs no CA bundle.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error as TlsError, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_postgres::config::SslNegotiation;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::{
    prefix_upper_bound, DeleteCondition, DeleteOutcome, Digest, Entry, ItemRef, ListQuery,
    NewValue, PutCondition, PutOutcome, Store, StoreError,
};
use crate::config::{check_schema, DbOptions, PgTls, PgUrl, RootCerts, Verify};
use crate::migrate::{Migration, MigrationState};

macro_rules! migration {
    ($dialect:literal, $version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../sql/", $dialect, "/", $name, ".sql")),
        }
    };
}

/// The migrations of `sql/postgres/`, in order. `{schema}` in their text
/// stands for the configured schema, quoted.
pub static POSTGRES_MIGRATIONS: &[Migration] = &[
    migration!("postgres", 1, "0001_kvs"),
    migration!("postgres", 2, "0002_content_type"),
    migration!("postgres", 3, "0003_kvs_key_bytewise"),
];

/// The migrations of `sql/cockroach/`, in order; same versions and names as
/// [`POSTGRES_MIGRATIONS`], in CockroachDB's dialect.
pub static COCKROACH_MIGRATIONS: &[Migration] = &[
    migration!("cockroach", 1, "0001_kvs"),
    migration!("cockroach", 2, "0002_content_type"),
    migration!("cockroach", 3, "0003_kvs_key_bytewise"),
];

/// Lifetime of the migration lease; renewed while migrations run, so it only
/// runs out when its holder died.
const LEASE_TTL: &str = "30 seconds";
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long `migrate` waits for another instance to finish before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(120);
const LEASE_POLL: Duration = Duration::from_millis(250);
/// `lock_timeout` for migration statements on PostgreSQL: an `ALTER TABLE`
/// queued behind a long transaction blocks all traffic on the table, so it
/// gives up quickly and is retried instead.
const DDL_LOCK_TIMEOUT: &str = "5s";
/// Bound on one migration statement; index builds on a large table take long.
const DDL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DDL_ATTEMPTS: u32 = 6;
const BOOTSTRAP_ATTEMPTS: u32 = 6;
/// Attempts of one statement that CockroachDB aborted with 40001.
const CONFLICT_ATTEMPTS: u32 = 5;

/// The one place the TLS connector is chosen, for the pool, the dedicated
/// migration connections and cancel requests alike: rustls, checking the
/// server's certificate as much as [`PgTls::verify`] says. The files named
/// in the URL are read here, once; an error names the parameter and the file.
fn tls(settings: &PgTls, negotiation: SslNegotiation) -> Result<DbTls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match settings.verify() {
        Verify::Nothing => Arc::new(AnyCertificate(Arc::clone(&provider))),
        verify => {
            let roots = Arc::new(root_store(&settings.roots())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot verify with these roots: {e}"))?;
            match verify {
                Verify::Chain => Arc::new(ChainOnly(webpki)),
                _ => webpki,
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_pem_file("sslcert", cert)?;
            let certs = CertificateDer::pem_slice_iter(&chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error("sslcert", cert, format!("not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(file_error("sslcert", cert, "holds no certificate"));
            }
            let key_pem = read_pem_file("sslkey", key)?;
            let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                file_error(
                    "sslkey",
                    key,
                    format!("not an unencrypted PEM private key: {e}"),
                )
            })?;
            builder
                .with_client_auth_cert(certs, private)
                .map_err(|e| file_error("sslkey", key, e))?
        }
    };
    if negotiation == SslNegotiation::Direct {
        // PostgreSQL 17 insists on ALPN without the SSLRequest round trip.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(DbTls(MakeRustlsConnect::new(config)))
}

fn file_error(param: &str, path: &Path, why: impl std::fmt::Display) -> String {
    format!("{param} {}: {why}", path.display())
}

fn read_pem_file(param: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| file_error(param, path, format!("cannot read: {e}")))
}

/// The roots of `sslrootcert`, or the built-in Mozilla roots.
fn root_store(roots: &RootCerts) -> Result<RootCertStore, String> {
    let path = match roots {
        RootCerts::Builtin => {
            return Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        }
        RootCerts::File(path) => path,
    };
    let pem = read_pem_file("sslrootcert", path)?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert
            .map_err(|e| file_error("sslrootcert", path, format!("not a PEM certificate: {e}")))?;
        store
            .add(cert)
            .map_err(|e| file_error("sslrootcert", path, e))?;
    }
    if store.is_empty() {
        return Err(file_error("sslrootcert", path, "holds no certificate"));
    }
    Ok(store)
}

/// `sslmode=require` (or `prefer`) without `sslrootcert`: encrypted, but any
/// certificate is taken, as libpq does. The handshake signatures are still
/// checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the name in
/// the certificate may be any.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // The name is checked last, after the chain.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            outcome => outcome,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres-rustls, but a host without a TLS name (a Unix socket, where
/// the server never offers TLS) fails only if TLS is actually attempted, so
/// `sslmode=disable` and socket URLs keep working.
#[derive(Clone)]
struct DbTls(MakeRustlsConnect);

type RustlsConnect<S> = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;

impl<S> MakeTlsConnect<S> for DbTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = MaybeNamed<RustlsConnect<S>>;
    type Error = Infallible;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Infallible> {
        Ok(
            match MakeTlsConnect::<S>::make_tls_connect(&mut self.0, host) {
                Ok(connect) => MaybeNamed::Named(connect),
                Err(_) => MaybeNamed::Unnamed(host.to_owned()),
            },
        )
    }
}

/// A TLS connection to a peer, or to one whose name TLS cannot check.
enum MaybeNamed<T> {
    Named(T),
    Unnamed(String),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, T> TlsConnect<S> for MaybeNamed<T>
where
    T: TlsConnect<S>,
    T::Stream: Send + 'static,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, BoxError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        match self {
            MaybeNamed::Named(inner) => {
                let handshake = inner.connect(stream);
                Box::pin(async move { handshake.await.map_err(Into::into) })
            }
            MaybeNamed::Unnamed(host) => Box::pin(std::future::ready(Err(format!(
                "{host:?} is not a host name or address TLS can verify"
            )
            .into()))),
        }
    }
}

/// Which engine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Postgres,
    Cockroach,
}

impl Flavor {
    fn from_version(version: &str) -> Flavor {
        if version.contains("CockroachDB") {
            Flavor::Cockroach
        } else {
            Flavor::Postgres
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::Postgres => "postgres",
            Flavor::Cockroach => "cockroachdb",
        }
    }

    fn migrations(self) -> &'static [Migration] {
        match self {
            Flavor::Postgres => POSTGRES_MIGRATIONS,
            Flavor::Cockroach => COCKROACH_MIGRATIONS,
        }
    }

    /// The key as an expression that compares and sorts bytewise.
    fn key_bytewise(self) -> &'static str {
        match self {
            // Matches index kvs_key_bytewise (0003), so listings need no sort.
            Flavor::Postgres => r#"key COLLATE "C""#,
            // CockroachDB already compares strings as bytes, and its primary
            // key serves listings only for the uncollated column.
            Flavor::Cockroach => "key",
        }
    }
}

/// The data statements, built once the flavor is known.
struct Statements {
    get: String,
    upsert: String,
    insert_if_absent: String,
    update: String,
    update_if_match: String,
    delete: String,
    delete_if_match: String,
    /// Reads many keys in one query (PostgreSQL only): `$1`, `$2`, `$3` are
    /// arrays of workspaces, namespaces and keys; each row carries the
    /// 1-based position of its key as column 3.
    read_many: Option<String>,
    /// Upserts many rows in one statement (PostgreSQL only): `$1`..`$6` are
    /// arrays of the columns of [`Statements::upsert`]'s parameters.
    upsert_many: Option<String>,
    /// Indexed by [`Statements::list`]: with or without an upper bound and `after`.
    list: [String; 4],
}

impl Statements {
    fn new(flavor: Flavor, schema: &str) -> Statements {
        let kvs = format!("{schema}.kvs");
        let key = flavor.key_bytewise();
        // The key is compared as the bytewise index spells it, so point reads
        // and writes match all three columns of kvs_key_bytewise: with
        // `key = $3` and no statistics yet, PostgreSQL may pick that index on
        // (workspace, namespace) alone and filter the whole namespace. Every
        // database collation is deterministic, so equality is byte equality
        // either way and the same rows match.
        let pk = format!("workspace = $1 AND namespace = $2 AND {key} = $3");
        let insert = format!(
            "INSERT INTO {kvs} (workspace, namespace, key, md5, value, content_type) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace, namespace, key)"
        );
        let update = format!("UPDATE {kvs} SET md5 = $4, value = $5, content_type = $6 WHERE {pk}");
        let list = |upper: bool, after: bool| {
            let mut sql = format!(
                "SELECT key FROM {kvs} WHERE workspace = $1 AND namespace = $2 AND {key} >= $3"
            );
            let mut n = 4;
            if upper {
                sql.push_str(&format!(" AND {key} < ${n}"));
                n += 1;
            }
            if after {
                sql.push_str(&format!(" AND {key} > ${n}"));
                n += 1;
            }
            sql.push_str(&format!(" ORDER BY {key} LIMIT ${n}"));
            sql
        };
        Statements {
            get: format!("SELECT value, md5, content_type FROM {kvs} WHERE {pk}"),
            upsert: format!(
                "{insert} DO UPDATE SET md5 = excluded.md5, value = excluded.value, \
                 content_type = excluded.content_type"
            ),
            insert_if_absent: format!("{insert} DO NOTHING"),
            update_if_match: format!("{update} AND md5 = ANY($7)"),
            update,
            delete: format!("DELETE FROM {kvs} WHERE {pk}"),
            delete_if_match: format!("DELETE FROM {kvs} WHERE {pk} AND md5 = ANY($4)"),
            upsert_many: (flavor == Flavor::Postgres).then(|| {
                format!(
                    "INSERT INTO {kvs} (workspace, namespace, key, md5, value, content_type) \
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], \
                     $5::bytea[], $6::text[]) ON CONFLICT (workspace, namespace, key) \
                     DO UPDATE SET md5 = excluded.md5, value = excluded.value, \
                     content_type = excluded.content_type"
                )
            }),
            // LIMIT 1 (the primary key allows no more) keeps the lateral
            // subquery from being flattened, so each key is one index probe
            // whatever the planner guesses of the arrays' length.
            read_many: (flavor == Flavor::Postgres).then(|| {
                format!(
                    "SELECT r.value, r.md5, r.content_type, q.i \
                     FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS q(w, n, k, i) \
                     CROSS JOIN LATERAL (SELECT value, md5, content_type FROM {kvs} \
                     WHERE workspace = q.w AND namespace = q.n AND {key} = q.k LIMIT 1) AS r"
                )
            }),
            list: [
                list(false, false),
                list(true, false),
                list(false, true),
                list(true, true),
            ],
        }
    }

    fn list(&self, upper: bool, after: bool) -> &str {
        &self.list[usize::from(upper) | usize::from(after) << 1]
    }
}

/// The statements of the migration runner, schema-qualified.
struct Bookkeeping {
    bootstrap: [String; 3],
    history: String,
    record: String,
    take_lease: String,
    renew_lease: String,
    release_lease: String,
}

impl Bookkeeping {
    fn new(schema: &str) -> Bookkeeping {
        let history = format!("{schema}.hulykvs_migrations");
        let lock = format!("{schema}.hulykvs_migration_lock");
        Bookkeeping {
            bootstrap: [
                format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {history} (version INT8 PRIMARY KEY, \
                     name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {lock} (id INT8 PRIMARY KEY, \
                     holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
                ),
            ],
            history: format!(
                "SELECT version, name, applied_at::TEXT FROM {history} ORDER BY version"
            ),
            record: format!(
                "INSERT INTO {history} (version, name) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING"
            ),
            // One statement takes a free or expired lease, so two instances
            // can never both see it as theirs.
            take_lease: format!(
                "INSERT INTO {lock} AS l (id, holder, expires_at) \
                 VALUES (1, $1, now() + INTERVAL '{LEASE_TTL}') \
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at WHERE l.expires_at < now() RETURNING l.holder"
            ),
            renew_lease: format!(
                "UPDATE {lock} SET expires_at = now() + INTERVAL '{LEASE_TTL}' \
                 WHERE id = 1 AND holder = $1"
            ),
            release_lease: format!("DELETE FROM {lock} WHERE id = 1 AND holder = $1"),
        }
    }
}

/// A key-value store in a PostgreSQL or CockroachDB database.
///
/// Cheap to share: the server holds one in an `Arc`.
pub struct PgStore {
    /// The pool and the GETs queued for it, shared with batched reads.
    pooled: Arc<Pooled>,
    /// For the dedicated connections of the migration runner.
    config: tokio_postgres::Config,
    /// The configured schema, quoted for SQL.
    schema: String,
    /// The configured schema as written, for catalog lookups.
    schema_name: String,
    /// The TLS connector of every connection, from [`tls`].
    tls: DbTls,
    connect_timeout: Duration,
    statement_timeout: Duration,
    flavor: OnceLock<Flavor>,
    /// Set once migrations are applied; data operations refuse to run before.
    statements: OnceLock<Statements>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("backend", &self.backend())
            .field("schema", &self.schema_name)
            .field("migrated", &self.statements.get().is_some())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Builds the pool from the URL and reads the TLS files it names; does
    /// not connect yet (a database that is down must not stop this).
    pub fn open(url: &str, opts: &DbOptions) -> Result<PgStore, StoreError> {
        check_schema(&opts.schema).map_err(StoreError::Internal)?;
        let bad_url =
            |why: String| StoreError::Internal(format!("invalid HULY_DB_CONNECTION: {why}"));
        let PgUrl {
            mut config,
            tls: settings,
        } = PgUrl::parse(url).map_err(bad_url)?;
        let tls = tls(&settings, config.get_ssl_negotiation()).map_err(bad_url)?;
        config.connect_timeout(opts.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("hulykvs");
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                // Fast: no round trip per checkout; a closed connection is
                // still noticed and replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .wait_timeout(Some(opts.pool_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        let pooled = Arc::new(Pooled {
            pool,
            tls: tls.clone(),
            connect_timeout: opts.connect_timeout,
            pool_timeout: opts.pool_timeout,
            statement_timeout: opts.statement_timeout,
            batched: OnceLock::new(),
            reads: Lane::new(opts.pool_size / 4),
            // A write may wait on a row lock: fewer slots than connections
            // would hold other writes back while connections sit idle.
            writes: Lane::new(opts.pool_size),
        });
        Ok(PgStore {
            pooled,
            config,
            schema: format!("\"{}\"", opts.schema),
            schema_name: opts.schema.clone(),
            tls,
            connect_timeout: opts.connect_timeout,
            statement_timeout: opts.statement_timeout,
            flavor: OnceLock::new(),
            statements: OnceLock::new(),
        })
    }

    /// Connects, detects PostgreSQL vs CockroachDB from `SELECT version()`,
    /// applies pending migrations under a lock both engines honour, and returns
    /// the names it applied. Safe to call again, and from several processes at
    /// once: each migration runs exactly once.
    ///
    /// Data operations before a successful `migrate()` answer
    /// `StoreError::Unavailable("database not migrated yet")`.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let lease = Arc::new(self.connect().await?);
        let flavor = self.detect(&lease).await?;
        let sql = Bookkeeping::new(&self.schema);
        self.bootstrap(&lease, &sql).await?;
        let migrations = flavor.migrations();
        // Most starts find nothing to do: they need not queue for the lease.
        if pending(migrations, &self.history(&lease, &sql).await?).is_empty() {
            self.mark_migrated(flavor);
            return Ok(Vec::new());
        }

        let holder = Uuid::new_v4().to_string();
        self.take_lease(&lease, &sql, &holder).await?;
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(renew_lease(
            Arc::clone(&lease),
            sql.renew_lease.clone(),
            holder.clone(),
            Arc::clone(&lost),
            self.statement_timeout,
        ));
        let outcome = self
            .apply_pending(flavor, migrations, &lease, &sql, &lost)
            .await;
        heartbeat.abort();
        let params: [&(dyn ToSql + Sync); 1] = [&holder];
        let released = self
            .bounded(retry_conflicts(|| {
                lease.execute(&sql.release_lease, &params)
            }))
            .await;
        if let Err(e) = released {
            // It runs out by itself within LEASE_TTL.
            tracing::warn!(error = %e, "could not release the migration lease");
        }
        let applied = outcome?;
        self.mark_migrated(flavor);
        Ok(applied)
    }

    /// Applied and pending migrations, in order (for `hulykvs migrate
    /// --status`); applies nothing and creates nothing.
    pub async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        let client = self.connect().await?;
        let flavor = self.detect(&client).await?;
        let mut states: BTreeMap<i64, MigrationState> = flavor
            .migrations()
            .iter()
            .map(|m| {
                let state = MigrationState {
                    version: m.version,
                    name: m.name.to_owned(),
                    applied_at: None,
                };
                (m.version, state)
            })
            .collect();
        if self.table_exists(&client, "hulykvs_migrations").await? {
            let sql = Bookkeeping::new(&self.schema);
            for (version, (name, at)) in self.history(&client, &sql).await? {
                let state = states.entry(version).or_insert(MigrationState {
                    version,
                    name,
                    applied_at: None,
                });
                state.applied_at = Some(at);
            }
        }
        Ok(states.into_values().collect())
    }

    fn mark_migrated(&self, flavor: Flavor) {
        let _ = self.flavor.set(flavor);
        let statements = self
            .statements
            .get_or_init(|| Statements::new(flavor, &self.schema));
        if let (Some(read_many), Some(upsert_many)) =
            (&statements.read_many, &statements.upsert_many)
        {
            let _ = self.pooled.batched.set(Batched {
                read_many: read_many.clone(),
                upsert_many: upsert_many.clone(),
            });
        }
    }

    fn migrated(&self) -> Result<&Statements, StoreError> {
        self.statements
            .get()
            .ok_or_else(|| StoreError::Unavailable("database not migrated yet".to_owned()))
    }

    /// A connection of its own, outside the pool, so the migration runner never
    /// waits for (or starves) pooled connections, whatever the pool size.
    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) =
            tokio::time::timeout(self.connect_timeout, self.config.connect(self.tls.clone()))
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!(
                        "could not connect to the database within {:?}",
                        self.connect_timeout
                    ))
                })?
                .map_err(|e| db_error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "migration connection ended");
            }
        });
        Ok(client)
    }

    async fn detect(&self, client: &Client) -> Result<Flavor, StoreError> {
        if let Some(flavor) = self.flavor.get() {
            return Ok(*flavor);
        }
        let row = self
            .bounded(client.query_one("SELECT version()", &[]))
            .await?;
        let version: String = row.try_get(0).map_err(|e| db_error(&e))?;
        let flavor = Flavor::from_version(&version);
        tracing::debug!(backend = flavor.name(), version, "database detected");
        let _ = self.flavor.set(flavor);
        Ok(flavor)
    }

    /// Runs `work` within the statement timeout, mapping its errors.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.statement_timeout, work).await {
            Ok(outcome) => outcome.map_err(|e| db_error(&e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "the database did not answer within {:?}",
            self.statement_timeout
        ))
    }

    async fn table_exists(&self, client: &Client, table: &str) -> Result<bool, StoreError> {
        let row = self
            .bounded(client.query_one(
                "SELECT count(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname::TEXT = $1::TEXT AND tablename::TEXT = $2::TEXT",
                &[&self.schema_name, &table],
            ))
            .await?;
        let count: i64 = row.try_get(0).map_err(|e| db_error(&e))?;
        Ok(count > 0)
    }

    /// Creates the schema and the runner's two tables. Checks first, as
    /// `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege on the database
    /// even when the schema exists.
    async fn bootstrap(&self, client: &Client, sql: &Bookkeeping) -> Result<(), StoreError> {
        if self.table_exists(client, "hulykvs_migrations").await?
            && self.table_exists(client, "hulykvs_migration_lock").await?
        {
            return Ok(());
        }
        let mut attempt = 1;
        'retry: loop {
            for statement in &sql.bootstrap {
                match tokio::time::timeout(self.statement_timeout, client.batch_execute(statement))
                    .await
                {
                    Err(_) => return Err(self.timed_out()),
                    Ok(Ok(())) => {}
                    // IF NOT EXISTS still races on PostgreSQL: two sessions
                    // both see nothing and one fails on a catalog index.
                    Ok(Err(e)) if attempt < BOOTSTRAP_ATTEMPTS && is_creation_race(&e) => {
                        tracing::debug!(attempt, error = %db_error(&e), "schema bootstrap raced, retrying");
                        tokio::time::sleep(backoff(attempt, Duration::from_millis(50))).await;
                        attempt += 1;
                        continue 'retry;
                    }
                    Ok(Err(e)) => return Err(db_error(&e)),
                }
            }
            return Ok(());
        }
    }

    /// Recorded migrations: version → (name, applied at).
    async fn history(
        &self,
        client: &Client,
        sql: &Bookkeeping,
    ) -> Result<BTreeMap<i64, (String, String)>, StoreError> {
        let rows = self
            .bounded(retry_conflicts(|| client.query(&sql.history, &[])))
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?))))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| db_error(&e))
    }

    async fn take_lease(
        &self,
        client: &Client,
        sql: &Bookkeeping,
        holder: &str,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + LEASE_WAIT;
        let mut waiting = false;
        let params: [&(dyn ToSql + Sync); 1] = [&holder];
        loop {
            let rows = self
                .bounded(retry_conflicts(|| client.query(&sql.take_lease, &params)))
                .await?;
            if !rows.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "another instance has held the migration lock for over {LEASE_WAIT:?}"
                )));
            }
            if !waiting {
                tracing::info!("waiting for another instance to finish migrating");
                waiting = true;
            }
            tokio::time::sleep(LEASE_POLL / 2 + jitter(LEASE_POLL)).await;
        }
    }

    /// Applies what is still pending, holding the lease. DDL runs on a
    /// connection of its own so the lease can be renewed meanwhile.
    async fn apply_pending(
        &self,
        flavor: Flavor,
        migrations: &[Migration],
        lease: &Client,
        sql: &Bookkeeping,
        lost: &AtomicBool,
    ) -> Result<Vec<String>, StoreError> {
        // Read again under the lease: another instance may just have finished.
        let todo = pending(migrations, &self.history(lease, sql).await?);
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let ddl = self.connect().await?;
        // A server or role default could cut an index build short; DDL_TIMEOUT
        // bounds each statement instead.
        self.bounded(ddl.batch_execute("SET statement_timeout = 0"))
            .await?;
        let mut applied = Vec::new();
        for migration in todo {
            if lost.load(Ordering::SeqCst) {
                return Err(StoreError::Internal(
                    "lost the migration lease while migrating".to_owned(),
                ));
            }
            tracing::info!(migration = migration.name, "applying migration");
            self.run_migration(flavor, &ddl, migration).await?;
            let params: [&(dyn ToSql + Sync); 2] = [&migration.version, &migration.name];
            self.bounded(retry_conflicts(|| ddl.execute(&sql.record, &params)))
                .await?;
            applied.push(migration.name.to_owned());
        }
        Ok(applied)
    }

    /// Runs one migration statement by statement, retrying the whole of it
    /// when a lock could not be had in time; every statement is idempotent.
    async fn run_migration(
        &self,
        flavor: Flavor,
        ddl: &Client,
        migration: &Migration,
    ) -> Result<(), StoreError> {
        let text = migration.sql.replace("{schema}", &self.schema);
        let statements = split_statements(&text);
        let mut attempt = 1;
        loop {
            match self.run_statements(flavor, ddl, &statements).await {
                Ok(()) => return Ok(()),
                Err(DdlFailure::Db(e)) if attempt < DDL_ATTEMPTS && is_lock_contention(&e) => {
                    tracing::warn!(
                        migration = migration.name,
                        attempt,
                        error = %db_error(&e),
                        "migration could not get its lock in time, retrying"
                    );
                    tokio::time::sleep(backoff(attempt, Duration::from_millis(500))).await;
                    attempt += 1;
                }
                Err(DdlFailure::Db(e)) => {
                    let why = match db_error(&e) {
                        StoreError::Internal(why) | StoreError::Unavailable(why) => why,
                    };
                    return Err(StoreError::Internal(format!(
                        "migration {}: {why}",
                        migration.name
                    )));
                }
                Err(DdlFailure::TimedOut) => {
                    return Err(StoreError::Internal(format!(
                        "migration {} did not finish within {DDL_TIMEOUT:?}",
                        migration.name
                    )))
                }
            }
        }
    }

    async fn run_statements(
        &self,
        flavor: Flavor,
        ddl: &Client,
        statements: &[String],
    ) -> Result<(), DdlFailure> {
        for statement in statements {
            if flavor == Flavor::Postgres {
                // A CONCURRENTLY build blocks nobody while it waits for older
                // transactions, so it may wait as long as it needs.
                let lock_timeout = if statement.contains("CONCURRENTLY") {
                    "0"
                } else {
                    DDL_LOCK_TIMEOUT
                };
                ddl.batch_execute(&format!("SET lock_timeout = '{lock_timeout}'"))
                    .await
                    .map_err(DdlFailure::Db)?;
            }
            match tokio::time::timeout(DDL_TIMEOUT, ddl.batch_execute(statement)).await {
                Ok(outcome) => outcome.map_err(DdlFailure::Db)?,
                Err(_) => {
                    // Let the server stop the statement rather than run on.
                    let token = ddl.cancel_token();
                    let cancel = token.cancel_query(self.tls.clone());
                    let _ = tokio::time::timeout(self.connect_timeout, cancel).await;
                    return Err(DdlFailure::TimedOut);
                }
            }
        }
        Ok(())
    }

    /// Runs a prepared (and cached) query on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.pooled.query(sql, params, None).await
    }

    /// Runs a prepared (and cached) statement on a pooled connection; returns
    /// the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.pooled.execute(sql, params).await
    }
}

/// Most requests one batched statement serves.
const BATCH_MAX: usize = 128;
/// Most value bytes one batched statement carries (a batch always takes at
/// least one job): 128 values of 2 MB would otherwise make a 256 MB message.
const BATCH_MAX_BYTES: usize = 8 << 20;

/// The connection pool, the limits that bound its use, and the requests
/// waiting to go to the database together. Shared (in an `Arc`) with the
/// tasks that run batches, so a batch never depends on the request that
/// started it.
struct Pooled {
    pool: Pool,
    tls: DbTls,
    connect_timeout: Duration,
    pool_timeout: Duration,
    statement_timeout: Duration,
    /// The batched statements; set once migrations are applied on
    /// PostgreSQL. On CockroachDB every request is its own statement.
    batched: OnceLock<Batched>,
    reads: Lane<QueuedRead>,
    writes: Lane<QueuedWrite>,
}

/// The statements that serve many requests at once.
struct Batched {
    read_many: String,
    upsert_many: String,
}

/// Statements of one kind in flight at once, and the requests queued behind
/// them. A request finding a slot free runs alone, at once; while every slot
/// is busy, requests queue, and each slot, as it frees, takes the queue as
/// one batch. Few slots make large batches: a batch of 64 keys costs the
/// database about what 3 single reads do.
struct Lane<J> {
    slots: usize,
    state: Mutex<LaneState<J>>,
}

/// A queued request implies every slot is busy.
struct LaneState<J> {
    running: usize,
    queue: Vec<J>,
    /// Names the next queued job, so its request can take it back.
    next_id: u64,
}

impl<J> Lane<J> {
    fn new(slots: usize) -> Self {
        Lane {
            slots: slots.max(1),
            state: Mutex::new(LaneState {
                running: 0,
                queue: Vec::new(),
                next_id: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState<J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many of the queued jobs, of these weights, the next batch takes: at
/// most [`BATCH_MAX`] and [`BATCH_MAX_BYTES`], and at least one.
fn batch_len(weights: impl Iterator<Item = usize>) -> usize {
    let mut take = 0;
    let mut bytes = 0usize;
    for weight in weights.take(BATCH_MAX) {
        bytes = bytes.saturating_add(weight);
        if take > 0 && bytes > BATCH_MAX_BYTES {
            break;
        }
        take += 1;
    }
    take
}

/// A request that can wait in a [`Lane`].
trait Job: Sized + Send + 'static {
    type Answer: Send;
    fn lane(pooled: &Pooled) -> &Lane<Self>;
    fn id(&self) -> u64;
    fn queued(&self) -> Instant;
    fn gone(&self) -> bool;
    /// Bytes this job adds to a batched statement, for [`BATCH_MAX_BYTES`].
    fn weight(&self) -> usize {
        0
    }
    fn answer(self, answer: Result<Self::Answer, StoreError>);
    /// Serves every job of `batch` with one statement.
    fn run(pooled: &Pooled, batch: Vec<Self>) -> impl Future<Output = ()> + Send + '_;
}

/// A GET waiting for a batched read.
struct QueuedRead {
    workspace: Uuid,
    namespace: String,
    key: String,
    id: u64,
    queued: Instant,
    reply: oneshot::Sender<Result<Option<Entry>, StoreError>>,
}

/// A PUT without a precondition waiting for a batched upsert.
struct QueuedWrite {
    workspace: Uuid,
    namespace: String,
    key: String,
    value: NewValue,
    id: u64,
    queued: Instant,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// A slot of lane `J`; on drop it serves the queue with a batch task, or frees the slot.
struct Slot<J: Job>(Arc<Pooled>, std::marker::PhantomData<J>);

impl<J: Job> Drop for Slot<J> {
    fn drop(&mut self) {
        let lane = J::lane(&self.0);
        let mut state = lane.lock();
        if state.queue.is_empty() {
            state.running -= 1;
            return;
        }
        drop(state);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(serve_queue::<J>(Arc::clone(&self.0)));
            }
            // The runtime is going away: the queued requests learn it from
            // their dropped replies.
            Err(_) => {
                let mut state = lane.lock();
                state.queue.clear();
                state.running -= 1;
            }
        }
    }
}

/// Takes a slot of lane `J` if one is free; otherwise queues the job `make`
/// builds from its id.
fn enter<J: Job>(pooled: &Arc<Pooled>, make: impl FnOnce(u64) -> J) -> Option<Slot<J>> {
    let lane = J::lane(pooled);
    let mut state = lane.lock();
    if state.running < lane.slots {
        state.running += 1;
        return Some(Slot(Arc::clone(pooled), std::marker::PhantomData));
    }
    let id = state.next_id;
    state.next_id += 1;
    state.queue.push(make(id));
    None
}

/// Holds a slot of lane `J` while jobs are queued, serving them in batches.
/// A job that has waited the pool timeout gets `Unavailable`, as it would
/// from the pool; the batch waits for a connection only what is left of its
/// oldest job's pool timeout.
async fn serve_queue<J: Job>(pooled: Arc<Pooled>) {
    let lane = J::lane(&pooled);
    loop {
        let batch = {
            let mut state = lane.lock();
            if state.queue.is_empty() {
                state.running -= 1;
                return;
            }
            let take = batch_len(state.queue.iter().map(Job::weight));
            state.queue.drain(..take).collect::<Vec<_>>()
        };
        let mut live = Vec::with_capacity(batch.len());
        for job in batch {
            if job.gone() {
                continue;
            }
            if job.queued().elapsed() >= pooled.pool_timeout {
                job.answer(Err(pooled.no_connection()));
                continue;
            }
            live.push(job);
        }
        if pooled.batched.get().is_none() {
            for job in live {
                job.answer(Err(StoreError::Internal(
                    "batched statement before migrations".to_owned(),
                )));
            }
            continue;
        }
        if !live.is_empty() {
            J::run(&pooled, live).await;
        }
    }
}

/// The answer of queued job `id`. A job still queued after the pool timeout
/// is taken back and gets `Unavailable`, as a request waiting for a pooled
/// connection would; one already in a batch waits for it (the batch is
/// bounded by the pool and statement timeouts). A dropped batch means the
/// runtime is stopping.
async fn wait_queued<J: Job>(
    pooled: &Pooled,
    id: u64,
    mut answer: oneshot::Receiver<Result<J::Answer, StoreError>>,
) -> Result<J::Answer, StoreError> {
    let abandoned = |_| {
        Err(StoreError::Unavailable(
            "the batched statement was abandoned".to_owned(),
        ))
    };
    match tokio::time::timeout(pooled.pool_timeout, &mut answer).await {
        Ok(outcome) => outcome.unwrap_or_else(abandoned),
        Err(_) => {
            let taken_back = {
                let mut state = J::lane(pooled).lock();
                let at = state.queue.iter().position(|job| job.id() == id);
                at.map(|at| state.queue.remove(at)).is_some()
            };
            if taken_back {
                return Err(pooled.no_connection());
            }
            answer.await.unwrap_or_else(abandoned)
        }
    }
}

/// How long a batch may wait for a connection.
fn batch_wait<J: Job>(pooled: &Pooled, batch: &[J]) -> Duration {
    let oldest = batch
        .iter()
        .map(Job::queued)
        .min()
        .unwrap_or_else(Instant::now);
    pooled.pool_timeout.saturating_sub(oldest.elapsed())
}

impl Job for QueuedRead {
    type Answer = Option<Entry>;
    fn lane(pooled: &Pooled) -> &Lane<Self> {
        &pooled.reads
    }
    fn id(&self) -> u64 {
        self.id
    }
    fn queued(&self) -> Instant {
        self.queued
    }
    fn gone(&self) -> bool {
        self.reply.is_closed()
    }
    fn answer(self, answer: Result<Option<Entry>, StoreError>) {
        let _ = self.reply.send(answer);
    }

    /// One query for the batch; rows come back with the position of their key.
    async fn run(pooled: &Pooled, live: Vec<Self>) {
        let Some(sql) = pooled.batched.get() else {
            return;
        };
        let workspaces: Vec<Uuid> = live.iter().map(|r| r.workspace).collect();
        let namespaces: Vec<&str> = live.iter().map(|r| r.namespace.as_str()).collect();
        let keys: Vec<&str> = live.iter().map(|r| r.key.as_str()).collect();
        let params: [&(dyn ToSql + Sync); 3] = [&workspaces, &namespaces, &keys];
        let wait = batch_wait(pooled, &live);
        let rows = match pooled.query(&sql.read_many, &params, Some(wait)).await {
            Ok(rows) => rows,
            Err(e) => {
                for read in live {
                    read.answer(Err(copy_error(&e)));
                }
                return;
            }
        };
        let mut found: Vec<Option<Result<Entry, StoreError>>> = Vec::new();
        found.resize_with(live.len(), || None);
        for row in &rows {
            let index = match row.try_get::<_, i64>(3) {
                Ok(i) => usize::try_from(i - 1).ok().filter(|i| *i < live.len()),
                Err(_) => None,
            };
            let Some(index) = index else {
                tracing::warn!("batched read returned a row of no request");
                continue;
            };
            let read = &live[index];
            let item = ItemRef {
                workspace: read.workspace,
                namespace: &read.namespace,
                key: &read.key,
            };
            found[index] = Some(entry_from_row(row, &item));
        }
        for (read, entry) in live.into_iter().zip(found) {
            read.answer(entry.transpose());
        }
    }
}

impl Job for QueuedWrite {
    type Answer = ();
    fn lane(pooled: &Pooled) -> &Lane<Self> {
        &pooled.writes
    }
    fn id(&self) -> u64 {
        self.id
    }
    fn queued(&self) -> Instant {
        self.queued
    }
    fn weight(&self) -> usize {
        self.value.value.len()
    }
    fn gone(&self) -> bool {
        // A write whose client left is still written, as it would be alone.
        false
    }
    fn answer(self, answer: Result<(), StoreError>) {
        let _ = self.reply.send(answer);
    }

    /// One upsert for the batch. Writes of one key in one batch were
    /// concurrent, so the last queued wins and the others are acknowledged as
    /// overwritten at once (one statement may not update a row twice). Rows
    /// go in key order, so two batches lock shared rows in the same order
    /// and cannot deadlock.
    async fn run(pooled: &Pooled, mut live: Vec<Self>) {
        let Some(sql) = pooled.batched.get() else {
            return;
        };
        // Stable: among writes of one key, the last queued stays last.
        live.sort_by(|a, b| {
            (a.workspace, a.namespace.as_bytes(), a.key.as_bytes()).cmp(&(
                b.workspace,
                b.namespace.as_bytes(),
                b.key.as_bytes(),
            ))
        });
        let mut rows: Vec<&QueuedWrite> = Vec::with_capacity(live.len());
        for (i, write) in live.iter().enumerate() {
            let same_next = live.get(i + 1).is_some_and(|next| {
                (next.workspace, &next.namespace, &next.key)
                    == (write.workspace, &write.namespace, &write.key)
            });
            if !same_next {
                rows.push(write);
            }
        }
        let workspaces: Vec<Uuid> = rows.iter().map(|w| w.workspace).collect();
        let namespaces: Vec<&str> = rows.iter().map(|w| w.namespace.as_str()).collect();
        let keys: Vec<&str> = rows.iter().map(|w| w.key.as_str()).collect();
        let md5s: Vec<&[u8]> = rows.iter().map(|w| &w.value.md5[..]).collect();
        let values: Vec<&[u8]> = rows.iter().map(|w| &w.value.value[..]).collect();
        let types: Vec<&str> = rows.iter().map(|w| w.value.content_type.as_str()).collect();
        let params: [&(dyn ToSql + Sync); 6] =
            [&workspaces, &namespaces, &keys, &md5s, &values, &types];
        let wait = batch_wait(pooled, &live);
        let outcome = pooled
            .execute_waiting(&sql.upsert_many, &params, Some(wait))
            .await;
        drop(rows);
        for write in live {
            write.answer(match &outcome {
                Ok(_) => Ok(()),
                Err(e) => Err(copy_error(e)),
            });
        }
    }
}

impl Pooled {
    fn no_connection(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "no free database connection within {:?}",
            self.pool_timeout
        ))
    }

    /// A pooled connection, or `Unavailable` when none comes within `wait`
    /// (the pool timeout when `None`).
    async fn checkout(
        &self,
        wait: Option<Duration>,
    ) -> Result<deadpool_postgres::Client, StoreError> {
        let got = match wait {
            None => self.pool.get().await,
            Some(wait) => {
                let mut timeouts = self.pool.timeouts();
                timeouts.wait = Some(wait);
                self.pool.timeout_get(&timeouts).await
            }
        };
        got.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => self.no_connection(),
            PoolError::Timeout(_) => StoreError::Unavailable(format!(
                "could not connect to the database within {:?}",
                self.connect_timeout
            )),
            PoolError::Backend(e) => db_error(&e),
            PoolError::Closed => StoreError::Unavailable("connection pool closed".to_owned()),
            PoolError::NoRuntimeSpecified => {
                StoreError::Internal("connection pool has no runtime".to_owned())
            }
            PoolError::PostCreateHook(e) => StoreError::Internal(e.to_string()),
        })
    }

    /// Runs a prepared (and cached) query on a pooled connection, waiting
    /// `wait` (default: the pool timeout) for one.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        wait: Option<Duration>,
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.checkout(wait).await?;
        let conn: &deadpool_postgres::ClientWrapper = &client;
        let outcome = tokio::time::timeout(
            self.statement_timeout,
            retry_conflicts(move || async move {
                let statement = conn.prepare_cached(sql).await?;
                conn.query(&statement, params).await
            }),
        )
        .await;
        self.settle(client, outcome)
    }

    /// Runs a prepared (and cached) statement on a pooled connection; returns
    /// the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.execute_waiting(sql, params, None).await
    }

    /// [`Pooled::execute`], waiting `wait` (default: the pool timeout) for a connection.
    async fn execute_waiting(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        wait: Option<Duration>,
    ) -> Result<u64, StoreError> {
        let client = self.checkout(wait).await?;
        let conn: &deadpool_postgres::ClientWrapper = &client;
        let outcome = tokio::time::timeout(
            self.statement_timeout,
            retry_conflicts(move || async move {
                let statement = conn.prepare_cached(sql).await?;
                conn.execute(&statement, params).await
            }),
        )
        .await;
        self.settle(client, outcome)
    }

    fn settle<T>(
        &self,
        client: deadpool_postgres::Client,
        outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        match outcome {
            Ok(result) => result.map_err(|e| db_error(&e)),
            Err(_) => {
                // The statement may still run, and its answer would reach the
                // next user of this connection: cancel it and drop the
                // connection instead of returning it to the pool.
                let cancel = client.cancel_token();
                drop(deadpool_postgres::Object::take(client));
                let (bound, tls) = (self.connect_timeout, self.tls.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(bound, cancel.cancel_query(tls)).await;
                });
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {:?}",
                    self.statement_timeout
                )))
            }
        }
    }
}

/// Why a migration statement failed.
enum DdlFailure {
    Db(tokio_postgres::Error),
    TimedOut,
}

/// Keeps the lease alive while migrations run; raises `lost` if it is gone.
async fn renew_lease(
    client: Arc<Client>,
    sql: String,
    holder: String,
    lost: Arc<AtomicBool>,
    bound: Duration,
) {
    loop {
        tokio::time::sleep(LEASE_RENEW_EVERY).await;
        match tokio::time::timeout(bound, client.execute(&sql, &[&holder])).await {
            Ok(Ok(0)) => {
                tracing::error!("the migration lease was taken over");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(Ok(_)) => {}
            // Two more renewals fit in the lease before it runs out.
            Ok(Err(e)) => {
                tracing::warn!(error = %db_error(&e), "could not renew the migration lease")
            }
            Err(_) => tracing::warn!("could not renew the migration lease in time"),
        }
    }
}

fn pending<'a>(
    migrations: &'a [Migration],
    recorded: &BTreeMap<i64, (String, String)>,
) -> Vec<&'a Migration> {
    migrations
        .iter()
        .filter(|m| !recorded.contains_key(&m.version))
        .collect()
}

/// Splits a migration file into statements: each ends with `;` at the end of
/// a line; whole-line `--` comments are dropped.
fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            statements.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

/// Runs `attempt` again when CockroachDB aborted it with a serialization
/// failure (40001): such a statement did not commit, so running it again is
/// safe. 40003 (result unknown) is never retried.
async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < CONFLICT_ATTEMPTS && sqlstate(&e) == Some("40001") => {
                tracing::debug!(attempt = tries, "serialization failure, retrying");
                tokio::time::sleep(backoff(tries, Duration::from_millis(5))).await;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Exponential backoff from `base`, capped at 64×, with jitter over its upper half.
fn backoff(attempt: u32, base: Duration) -> Duration {
    let full = base.saturating_mul(1 << attempt.min(6));
    full / 2 + jitter(full / 2)
}

/// A random duration in `[0, max)`, random enough to spread retries apart.
fn jitter(max: Duration) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    max.mul_f64((random % 1_000) as f64 / 1_000.0)
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

fn is_lock_contention(e: &tokio_postgres::Error) -> bool {
    matches!(sqlstate(e), Some("55P03" | "40001"))
}

fn is_creation_race(e: &tokio_postgres::Error) -> bool {
    matches!(
        sqlstate(e),
        Some("23505" | "42P06" | "42P07" | "42710" | "40001")
    )
}

/// Whether a SQLSTATE means "the database cannot answer now, retry later".
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "57014" | "40001")
}

/// Maps a driver error. The text holds the server's message and SQLSTATE but
/// never its DETAIL, which may quote a row; no value reaches it.
fn db_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("{} (SQLSTATE {code})", db.message());
        return if is_unavailable_code(code) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Internal(text)
        };
    }
    let mut text = e.to_string();
    let mut io = false;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        io |= cause.is::<std::io::Error>();
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // The driver's error kinds are private; these are the ones that mean the
    // connection, not the request, failed.
    let connection = [
        "error connecting to server",
        "error communicating with the server",
        "error performing TLS handshake",
        "timeout waiting for server",
    ];
    if io || e.is_closed() || connection.iter().any(|k| text.starts_with(k)) {
        StoreError::Unavailable(text)
    } else {
        StoreError::Internal(text)
    }
}

fn entry_from_row(row: &Row, item: &ItemRef<'_>) -> Result<Entry, StoreError> {
    let failed = |e: tokio_postgres::Error| {
        StoreError::Internal(format!(
            "reading {}/{}/{}: {}",
            item.workspace,
            item.namespace,
            item.key,
            db_error(&e)
        ))
    };
    let value: &[u8] = row.try_get(0).map_err(failed)?;
    let md5: &[u8] = row.try_get(1).map_err(failed)?;
    let content_type: Option<String> = row.try_get(2).map_err(failed)?;
    let value = Bytes::copy_from_slice(value);
    let md5: Digest = match md5.try_into() {
        Ok(md5) => md5,
        Err(_) => {
            tracing::warn!(
                workspace = %item.workspace,
                namespace = item.namespace,
                key = item.key,
                "stored md5 is not 16 bytes; using the digest of the value"
            );
            md5::compute(&value).0
        }
    };
    Ok(Entry {
        value,
        md5,
        content_type,
    })
}

/// The same error again, for each GET of a batch that failed.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        StoreError::Internal(why) => StoreError::Internal(why.clone()),
    }
}

fn stored_if(rows: u64) -> PutOutcome {
    if rows > 0 {
        PutOutcome::Stored
    } else {
        PutOutcome::PreconditionFailed
    }
}

impl Store for PgStore {
    /// `postgres` or `cockroachdb`; `postgres` until the engine is detected.
    fn backend(&self) -> &'static str {
        self.flavor
            .get()
            .copied()
            .unwrap_or(Flavor::Postgres)
            .name()
    }

    /// A GET that finds a read slot free queries alone; while every slot is
    /// busy, GETs queue and are read together, one query per batch.
    async fn get(&self, item: ItemRef<'_>) -> Result<Option<Entry>, StoreError> {
        let sql = self.migrated()?;
        // Held until this read is done, then handed on to the queue.
        let mut _slot = None;
        if self.pooled.batched.get().is_some() {
            let mut waiting = None;
            _slot = enter(&self.pooled, |id| {
                let (reply, answer) = oneshot::channel();
                waiting = Some((id, answer));
                QueuedRead {
                    workspace: item.workspace,
                    namespace: item.namespace.to_owned(),
                    key: item.key.to_owned(),
                    id,
                    queued: Instant::now(),
                    reply,
                }
            });
            if let Some((id, answer)) = waiting {
                return wait_queued::<QueuedRead>(&self.pooled, id, answer).await;
            }
        }
        let rows = self
            .query(&sql.get, &[&item.workspace, &item.namespace, &item.key])
            .await?;
        rows.first()
            .map(|row| entry_from_row(row, &item))
            .transpose()
    }

    async fn put(
        &self,
        item: ItemRef<'_>,
        value: NewValue,
        cond: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let sql = self.migrated()?;
        let bytes: &[u8] = &value.value;
        let md5: &[u8] = &value.md5;
        let row: [&(dyn ToSql + Sync); 6] = [
            &item.workspace,
            &item.namespace,
            &item.key,
            &md5,
            &bytes,
            &value.content_type,
        ];
        match cond {
            PutCondition::Always if self.pooled.batched.get().is_some() => {
                let mut waiting = None;
                let _slot = enter(&self.pooled, |id| {
                    let (reply, answer) = oneshot::channel();
                    waiting = Some((id, answer));
                    QueuedWrite {
                        id,
                        workspace: item.workspace,
                        namespace: item.namespace.to_owned(),
                        key: item.key.to_owned(),
                        value: value.clone(),
                        queued: Instant::now(),
                        reply,
                    }
                });
                match waiting {
                    Some((id, answer)) => {
                        wait_queued::<QueuedWrite>(&self.pooled, id, answer).await?
                    }
                    None => {
                        self.execute(&sql.upsert, &row).await?;
                    }
                }
                Ok(PutOutcome::Stored)
            }
            PutCondition::Always => {
                self.execute(&sql.upsert, &row).await?;
                Ok(PutOutcome::Stored)
            }
            PutCondition::IfAbsent => Ok(match self.execute(&sql.insert_if_absent, &row).await? {
                0 => PutOutcome::PreconditionFailed,
                _ => PutOutcome::Created,
            }),
            PutCondition::IfExists => Ok(stored_if(self.execute(&sql.update, &row).await?)),
            PutCondition::IfMatch(tags) if tags.is_empty() => Ok(PutOutcome::PreconditionFailed),
            PutCondition::IfMatch(tags) => {
                let tags: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
                let [a, b, c, d, e, f] = row;
                let params: [&(dyn ToSql + Sync); 7] = [a, b, c, d, e, f, &tags];
                Ok(stored_if(
                    self.execute(&sql.update_if_match, &params).await?,
                ))
            }
        }
    }

    async fn delete(
        &self,
        item: ItemRef<'_>,
        cond: DeleteCondition,
    ) -> Result<DeleteOutcome, StoreError> {
        let sql = self.migrated()?;
        let pk: [&(dyn ToSql + Sync); 3] = [&item.workspace, &item.namespace, &item.key];
        let (rows, absent) = match cond {
            DeleteCondition::Always => (
                self.execute(&sql.delete, &pk).await?,
                DeleteOutcome::NotFound,
            ),
            DeleteCondition::IfExists => (
                self.execute(&sql.delete, &pk).await?,
                DeleteOutcome::PreconditionFailed,
            ),
            DeleteCondition::IfMatch(tags) if tags.is_empty() => {
                return Ok(DeleteOutcome::PreconditionFailed)
            }
            DeleteCondition::IfMatch(tags) => {
                let tags: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
                let [a, b, c] = pk;
                let params: [&(dyn ToSql + Sync); 4] = [a, b, c, &tags];
                (
                    self.execute(&sql.delete_if_match, &params).await?,
                    DeleteOutcome::PreconditionFailed,
                )
            }
        };
        Ok(if rows > 0 {
            DeleteOutcome::Deleted
        } else {
            absent
        })
    }

    async fn list(&self, query: ListQuery<'_>) -> Result<Vec<String>, StoreError> {
        let sql = self.migrated()?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let upper = prefix_upper_bound(query.prefix);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&query.workspace, &query.namespace, &query.prefix];
        if let Some(upper) = &upper {
            params.push(upper);
        }
        if let Some(after) = &query.after {
            params.push(after);
        }
        params.push(&limit);
        let rows = self
            .query(sql.list(upper.is_some(), query.after.is_some()), &params)
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(|e| db_error(&e)))
            .collect()
    }

    /// `SELECT 1` through the pool; `Unavailable` also while migrations are
    /// not applied, as `/readyz` wants both.
    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await?;
        self.migrated().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_line_ends() {
        let sql = "-- header; with a semicolon\n\
                   DROP INDEX IF EXISTS x;\n\
                   CREATE INDEX y\n    ON t (a, b);\n\
                   \n-- trailing\nSELECT 1";
        assert_eq!(
            split_statements(sql),
            [
                "DROP INDEX IF EXISTS x;",
                "CREATE INDEX y\n    ON t (a, b);",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn dialects_share_versions_and_names() {
        assert_eq!(POSTGRES_MIGRATIONS.len(), COCKROACH_MIGRATIONS.len());
        for (i, (pg, crdb)) in POSTGRES_MIGRATIONS
            .iter()
            .zip(COCKROACH_MIGRATIONS)
            .enumerate()
        {
            assert_eq!(pg.version, i as i64 + 1);
            assert_eq!((pg.version, pg.name), (crdb.version, crdb.name));
            for m in [pg, crdb] {
                assert!(m.sql.starts_with(&format!("-- {}:", m.name)), "{}", m.name);
                assert!(m.sql.contains("Why it is safe"), "{}", m.name);
                assert!(!split_statements(m.sql).is_empty(), "{}", m.name);
            }
        }
    }

    #[test]
    fn migrations_never_touch_the_old_history() {
        for m in POSTGRES_MIGRATIONS.iter().chain(COCKROACH_MIGRATIONS) {
            for statement in split_statements(m.sql) {
                let lower = statement.to_lowercase();
                assert!(!lower.contains("migrations"), "{}: {statement}", m.name);
                assert!(!lower.contains("drop table"), "{}: {statement}", m.name);
                assert!(!lower.contains("drop column"), "{}: {statement}", m.name);
            }
        }
    }

    #[test]
    fn point_statements_match_the_bytewise_index() {
        let pg = Statements::new(Flavor::Postgres, "\"hulykvs\"");
        for sql in [&pg.get, &pg.update, &pg.delete, &pg.delete_if_match] {
            assert!(
                sql.contains(r#"namespace = $2 AND key COLLATE "C" = $3"#),
                "{sql}"
            );
        }
        let many = pg
            .read_many
            .as_deref()
            .expect("PostgreSQL reads in batches");
        assert!(many.contains(r#"key COLLATE "C" = q.k LIMIT 1"#), "{many}");
        assert!(many.contains("WITH ORDINALITY"), "{many}");
        let crdb = Statements::new(Flavor::Cockroach, "\"s\"");
        assert!(
            crdb.get.ends_with("namespace = $2 AND key = $3"),
            "{}",
            crdb.get
        );
        assert!(
            crdb.read_many.is_none(),
            "CockroachDB reads one key a query"
        );
    }

    #[test]
    fn listing_compares_bytes_without_like() {
        let pg = Statements::new(Flavor::Postgres, "\"hulykvs\"");
        for sql in &pg.list {
            assert!(sql.contains(r#"ORDER BY key COLLATE "C""#), "{sql}");
            assert!(sql.contains("\"hulykvs\".kvs"), "{sql}");
            assert!(!sql.to_lowercase().contains("like"), "{sql}");
        }
        assert_eq!(
            pg.list(true, true),
            "SELECT key FROM \"hulykvs\".kvs WHERE workspace = $1 AND namespace = $2 \
             AND key COLLATE \"C\" >= $3 AND key COLLATE \"C\" < $4 \
             AND key COLLATE \"C\" > $5 ORDER BY key COLLATE \"C\" LIMIT $6"
        );
        assert!(pg
            .list(false, true)
            .contains("> $4 ORDER BY key COLLATE \"C\" LIMIT $5"));
        let crdb = Statements::new(Flavor::Cockroach, "\"s\"");
        for sql in &crdb.list {
            assert!(!sql.contains("COLLATE"), "{sql}");
        }
        assert!(crdb
            .list(false, false)
            .ends_with("key >= $3 ORDER BY key LIMIT $4"));
    }

    #[test]
    fn flavor_from_version() {
        assert_eq!(
            Flavor::from_version("CockroachDB CCL v23.2.4 (x86_64-pc-linux-gnu, built 2024/04/08)"),
            Flavor::Cockroach
        );
        assert_eq!(
            Flavor::from_version("PostgreSQL 15.6 on x86_64-pc-linux-gnu"),
            Flavor::Postgres
        );
    }

    #[test]
    fn unavailable_codes() {
        for code in [
            "08006", "08001", "53300", "57P01", "57P02", "57P03", "40001",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "40003", "XX000", "22001"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let base = Duration::from_millis(10);
        for attempt in 0..20 {
            let d = backoff(attempt, base);
            let full = base * (1 << attempt.min(6));
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn batches_are_bounded_in_count_and_bytes() {
        assert_eq!(batch_len(std::iter::repeat(0).take(500)), BATCH_MAX);
        assert_eq!(batch_len(std::iter::repeat(100).take(3)), 3);
        assert_eq!(batch_len(std::iter::repeat(2_000_000).take(16)), 4);
        assert_eq!(
            batch_len([usize::MAX, 1].into_iter()),
            1,
            "one job always goes"
        );
        assert_eq!(batch_len(std::iter::empty()), 0);
    }
}
