//! # Layout
//! One line per module; a request walks `http::server` → `http::layers` →
//! `http::router` → `http::handlers` → `store` → SQL, and back.
//!
//! The shared core, imported by the rooms below and importing none of them:
//! - `config`: validated settings of `serve` and `migrate`; sizes, durations, the database target.
//! - `auth`: token claims, HS256 verification and minting.
//! - `wire`: what crosses HTTP for server and client alike: entity tags, percent-encoding, cursors, JSON bodies.
//! - `error`: the API's one error type and its mapping to status and code.
//! - `exit`: the exit codes of the command line and the failure a subcommand returns.
//!
//! The service:
//! - `app`: `serve` and `migrate` end to end: open the store, migrate, bind, run until a signal.
//! - `http`: the HTTP side of `serve`.
//!   - `http::server`: accept loop, connection limits, header and idle timeouts, graceful shutdown.
//!   - `http::layers`: what wraps every request, in order (`layers::access_log`: one log line each).
//!   - `http::router`: the one `match` on method and path; authentication; parsed input to a handler.
//!   - `http::handlers`: `handlers::item` (GET, HEAD, PUT, POST, DELETE of a value), `handlers::list`, `handlers::health`.
//!   - `http::request`: path parts, preconditions, content type, listing query and body, parsed and checked.
//!   - `http::response`: response bodies and the one place an error becomes a response.
//!   - `http::state`: what every request shares (the store, the token verifier, limits).
//!   - `http::tls`: HTTPS: PEM certificates, reloading, client certificates.
//! - `store`: the storage trait, its types and what every engine shares (condition outcomes).
//!   - `store::migrations`: migration files, history, status, the not-yet-migrated gate.
//!   - `store::postgres`: PostgreSQL and CockroachDB: `url` (libpq URL and TLS parameters), `tls`
//!     (connector), `sql` (dialects and statements), `migrate` (lease-locked runner), `pool`,
//!     `batch` (GET/PUT coalescing), `row`, `errors`.
//!   - `store::sqlite`: the embedded store: `connection`, `sql`, `writer` (group commit),
//!     `readers` (reader threads), `migrate`.
//!
//! The command line (only `main` uses it):
//! - `cli`: the clap root; `cli::flags` (secrets, flag values, the client's token).
//!   - `cli::serve`: flags of `serve` and `migrate`, validated into `config`.
//!   - `cli::client`: `put`, `get`, `delete`, `list` over reqwest: `args`, `service`, `tls`.
//!   - `cli::token`: the `token` subcommand.
//!   - `cli::bench`: the `bench` load generator: `args`, `plan`, `load`, `report`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod exit;
pub mod http;
pub mod store;
pub mod wire;
