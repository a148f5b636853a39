//! Shared by the integration tests: real databases, the real server, raw HTTP.
//! Each test binary uses a different part, hence the allowance below.
#![allow(dead_code)]

pub mod certs;
pub mod load;
pub mod metrics;
pub mod pg;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod raw;
pub mod server;
pub mod sse;

/// Instantiates each `async fn(Kind)` named once for PostgreSQL and once for
/// SQLite, as `postgres::NAME` and `sqlite::NAME` (the file imports `Kind`).
#[allow(unused_macros)]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
    };
}
