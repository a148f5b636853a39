//! # Layout
//! One line per module. A request walks `http::server` → `http::layers` →
//! `http::router` → `http::handlers` → `store` → SQL, and back. `config`,
//! `auth` and `exit` import nothing of the crate (`crypto` only `config`); `store` reads `config` and
//! records into `telemetry`; `feed` reads `store` (and `wire`), and `http` reads `feed`;
//! `wire` and `error` know the store's types (`error` also `auth`'s); no room
//! of the library imports `cli`, which `main` runs. No module imports one
//! that imports it back, at the top level or between siblings at any depth
//! (`tests/layout.rs` checks).
//!
//! - `config`: validated settings of `serve` and `migrate`; sizes, durations, the database target.
//! - `auth`: token claims, HS256 verification and minting.
//!   - `auth::cache`: tokens verified before, by their text, checked again only for `exp` and `nbf`.
//! - `crypto`: encryption at rest: the keyring, values sealed and opened, keyed digests.
//! - `pem`: certificates, keys and CA files read from PEM, for every TLS setting.
//! - `wire`: what crosses HTTP for server and client alike: entity tags, percent-encoding, cursors, JSON bodies.
//! - `error`: the API's one error type and its status and code.
//! - `reload`: files a running `serve` reloads when they change or on SIGHUP.
//! - `acl`: access control by namespace: the policy file, compiled, reloaded.
//!   - `acl::policy`: `[[allow]]` rules from TOML, indexed by service and account, and the decision.
//!   - `acl::glob`: namespace globs, compiled to their fastest shape.
//!   - `acl::index`: one identity's rules by glob shape: lookups by the namespace, not a scan.
//! - `check`: a drill's history judged against the consistency model (SPEC §19).
//!   - `check::history`: operations with their calls, instants and outcomes; entity tags.
//!   - `check::model`: the register a history is replayed against, per key the tag stored.
//!   - `check::partition`: a history cut by key, keys a transaction touches together in one part.
//!   - `check::linearizability`: the Wing–Gong–Lowe search per partition, memoized, within a budget.
//!   - `check::watch`: the watch guarantees against the change log and the writes of a history.
//! - `exit`: the exit codes of the command line and the failure a subcommand returns.
//! - `app`: `serve` and `migrate` end to end: open the store, listen, migrate beside, run until a signal.
//! - `http`: the HTTP side of `serve`; nothing in it knows SQL.
//!   - `http::server`: accept loop, connection cap, header and idle timeouts, graceful shutdown.
//!   - `http::activity`: what a connection's watchdog times (bytes moved, a head's first byte) and the open connections shutdown reaches.
//!   - `http::protocol`: which HTTP a connection speaks (a peek at its first bytes, or ALPN) and its hyper builder.
//!   - `http::layers`: what wraps every request, in the order of one function.
//!     - `http::layers::access_log`: one log line per request, never a value.
//!     - `http::layers::cors`: CORS for browsers: preflights, reflected origins, exposed headers.
//!     - `http::layers::metrics`: request durations and active requests, by route template.
//!     - `http::layers::trace`: a server span per request, continuing a W3C `traceparent`.
//!   - `http::router`: the one `match` on method and path; authentication; parsed input to a handler.
//!   - `http::handlers`: the handlers, grouped by what they serve.
//!     - `http::handlers::item`: GET, HEAD, PUT (legacy POST) and DELETE of one value.
//!     - `http::handlers::list`: listings, paged or streamed.
//!     - `http::handlers::watch`: the change feed as Server-Sent Events (`?watch`).
//!     - `http::handlers::changes`: the change feed as a long poll (`?changes`).
//!     - `http::handlers::prefix`: delete by prefix, in bounded batches.
//!     - `http::handlers::values`: listings with values, streamed in bounded memory.
//!     - `http::handlers::txn`: transactions across keys (`POST /api2/{ws}?txn`).
//!     - `http::handlers::health`: `/status`, `/livez`, `/readyz`.
//!     - `http::handlers::metrics`: `/metrics`, the Prometheus exposition.
//!   - `http::console`: the web console's page, script and style (`console/`), compiled in, with their CSP.
//!   - `http::access`: the namespace ACL as requests meet it: the access needed, `403 namespace_forbidden`.
//!   - `http::request`: path parts, preconditions, content type, listing query and body, parsed and checked.
//!   - `http::response`: response bodies and the one place an error becomes a response.
//!   - `http::state`: what every request shares: the store, the token verifier, limits.
//!   - `http::tls`: HTTPS: PEM certificates, reloading, client certificates.
//! - `store`: the storage trait, its types, and what every engine shares (condition outcomes).
//!   - `store::migrations`: migration files, history, status, the not-yet-migrated gate.
//!   - `store::instrumented`: any store with every operation timed for the metrics.
//!   - `store::expiry`: expiry instants written and read, and the sweeper of expired rows.
//!   - `store::changes`: revisions, changes and pages of the change log, and when a revision is readable.
//!   - `store::page`: a listing's page, its keys written as JSON.
//!   - `store::txn`: transactions across keys: ops, conditions, the plan every engine follows.
//!   - `store::stored`: a row as stored (bytes, digest, sealing key), its rewrite, and how it is opened.
//!   - `store::sealed`: any store with its values sealed and opened (encryption at rest).
//!   - `store::reseal`: the `reencrypt` pass: rows rewritten under the first key, or to plaintext.
//!   - `store::snapshot`: a whole store read in one snapshot, page by page; rows written back in batches.
//!   - `store::postgres`: PostgreSQL and CockroachDB, one code path.
//!     - `store::postgres::url`: the libpq URL, its TLS parameters, schema names.
//!     - `store::postgres::tls`: the rustls connector of every connection.
//!     - `store::postgres::sql`: migration files per dialect, engine detection, data statements.
//!     - `store::postgres::migrate`: the migration runner under a lease row both engines honour.
//!     - `store::postgres::connect`: the URL's hosts, each within the connect timeout, the next tried beside a slow one; probes of hosts a statement waits on.
//!     - `store::postgres::liveness`: what is known of each host: its connections, and whether it went silent.
//!     - `store::postgres::pool`: the connection pool, how a statement runs on it, what a failover drops.
//!     - `store::postgres::batch`: GET and PUT coalescing under load.
//!     - `store::postgres::batched`: the batches' statements, over arrays, each planned once a connection.
//!     - `store::postgres::single_flight`: identical listings waiting for a connection, one statement for all.
//!     - `store::postgres::row`: a stored row read back into an entry.
//!     - `store::postgres::page`: a listing's keys read in place from the one text (PostgreSQL) or binary array the database sends.
//!     - `store::postgres::errors`: SQLSTATEs, retries of serialization failures, error texts.
//!     - `store::postgres::notify`: LISTEN/NOTIFY between instances, one connection, reconnecting.
//!     - `store::postgres::txn`: transactions: keys locked in one order, placeholders, one write statement.
//!     - `store::postgres::replace`: writes that answer the value they replace, each one statement.
//!     - `store::postgres::reseal`: key ids in use, rows to reencrypt, the conditional rewrite.
//!     - `store::postgres::snapshot`: dump pages in one read-only transaction; restore batches.
//!   - `store::sqlite`: the embedded store, one file in WAL mode.
//!     - `store::sqlite::connection`: opening the writer and readers; SQLite's errors.
//!     - `store::sqlite::sql`: statements and the functions that run them.
//!     - `store::sqlite::writer`: the writer thread, group commit, its panic guard.
//!     - `store::sqlite::readers`: the reader threads and their queue.
//!     - `store::sqlite::migrate`: migrations under SQLite's write lock.
//!     - `store::sqlite::changes`: revisions, the change log, its pruning, and sweeping with `expire` changes.
//!     - `store::sqlite::txn`: transactions on the writer connection.
//!     - `store::sqlite::reseal`: key ids in use, rows to reencrypt, rewrites in one transaction.
//!     - `store::sqlite::snapshot`: dump as one statement stepped on a reader; restore batches.
//! - `seeded`: test builds only (feature `test-hooks`): bugs put in on purpose, the CockroachDB path forced.
//! - `transfer`: moving data between stores: the dump format, dump, restore, copy and its verification.
//!   - `transfer::dump`: a snapshot to JSON Lines, page by page; rows with their plaintext's MD5.
//!   - `transfer::restore`: a dump back into a store: lines parsed on a thread, batches written.
//!   - `transfer::copy`: one store into another, then each namespace compared by count and digest.
//! - `feed`: the change feed on this instance: a channel per watched namespace and its reader task.
//!   - `feed::channel`: the recent events of one namespace, shared by its streams.
//!   - `feed::retention`: pruning of changes older than the retention.
//!   - `feed::sse`: Server-Sent Event frames and long-poll entries.
//! - `telemetry`: what operators see of the service.
//!   - `telemetry::logs`: log lines to stderr, text or JSON.
//!   - `telemetry::log_buffer`: a request thread's log lines, written together when it idles.
//!   - `telemetry::registry`: the Prometheus registry, metric names and buckets, process metrics.
//!   - `telemetry::traces`: spans over OTLP/HTTP from the `OTEL_*` variables, drops counted.
//! - `cli`: the command line (only `main` uses it): the clap root and completions.
//!   - `cli::flags`: secrets, UUID and duration flags, the token a client run sends.
//!   - `cli::progress`: progress on stderr at a terminal, one way for dump, restore, copy and reencrypt.
//!   - `cli::serve`: flags of `serve` and `migrate`, validated into `config`.
//!   - `cli::token`: the `token` subcommand.
//!   - `cli::reencrypt`: `reencrypt`, the pass over stored rows with progress and counts.
//!   - `cli::transfer`: `dump`, `restore`, `copy`: files, gzip, progress, the verification table.
//!   - `cli::acl`: `acl check`: what a policy file allows a token, and by which rule.
//!   - `cli::client`: `put`, `get`, `delete`, `list`, `watch` and `txn` over reqwest.
//!     - `cli::client::watch`: `watch`, the change feed a line per change, reconnecting.
//!     - `cli::client::values`: `list --values`, a JSON line per value.
//!     - `cli::client::txn`: `txn`, a transaction from a file or stdin.
//!     - `cli::client::probe`: `probe`, the container's health check of `/readyz`.
//!     - `cli::client::args`: their flags.
//!     - `cli::client::service`: URLs, requests, and the line a failure prints.
//!     - `cli::client::tls`: CA and client certificates; TLS failures in words.
//!   - `cli::check`: `check`, the drill: traffic and watchers against a deployment, then the verdicts.
//!     - `cli::check::drill`: the clients, each operation recorded with its instants and outcome.
//!     - `cli::check::watchers`: the watchers, cutting and resuming their streams across instances.
//!     - `cli::check::report`: the checkers run, the summary table, the report files.
//!     - `cli::check::page`: `report.html`, each key's operations on a timeline.
//!   - `cli::bench`: the `bench` load generator.
//!     - `cli::bench::args`: its flags.
//!     - `cli::bench::plan`: what a run does, validated before any I/O.
//!     - `cli::bench::load`: probing, seeding, and the connections under load.
//!     - `cli::bench::report`: tallies, the JSON report, the table.
//!     - `cli::bench::watch`: the watch workload: streams, writers at a rate, delivery latency.

pub mod acl;
pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod exit;
pub mod feed;
pub mod http;
pub mod pem;
pub mod reload;
#[cfg(feature = "test-hooks")]
pub mod seeded;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod wire;
