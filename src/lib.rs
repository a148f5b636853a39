//! # Layout
//! - `app`: `serve` and `migrate` end to end: open the store, migrate, bind, run until a signal.
//! - `cli`: the command line, every subcommand and flag (clap).
//! - `config`: validated settings of `serve` and `migrate`; sizes, durations, database URLs.
//! - `wire`: what crosses HTTP for server and client alike: entity tags, percent-encoding, cursors, JSON bodies.
//! - `auth`: token claims, HS256 verification and minting.
//! - `error`: the API's one error type and its mapping to status and JSON.
//! - `routes`: the router and the handlers of every route.
//! - `server`: the hyper server: accept loop, connection limits, timeouts, graceful shutdown.
//! - `tls`: HTTPS for `serve`: PEM certificates, reloading, client certificates.
//! - `store`: the storage trait and its engines, `store::postgres` and `store::sqlite`.
//! - `migrate`: the embedded migrations of `sql/` and their status.
//! - `client`: the `put`, `get`, `delete` and `list` subcommands over HTTP.
//! - `token`: the `token` subcommand.
//! - `bench`: the `bench` subcommand, a load generator over hyper's HTTP/1.1 client.
//! - `exit`: the exit codes of the command line and the failure a subcommand returns.

pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod exit;
pub mod migrate;
pub mod routes;
pub mod server;
pub mod store;
pub mod tls;
pub mod token;
pub mod wire;
