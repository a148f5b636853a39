//! Shared by the integration tests: real databases, the real server, raw HTTP.
//! Each test binary uses a different part, hence the allowance below.
#![allow(dead_code)]

pub mod certs;
pub mod load;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod server;
