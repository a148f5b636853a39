//! What several subcommands read from their flags: secrets that never show in
//! `Debug`, UUIDs and durations with errors naming the flag, and the bearer
//! token of a client run.

use std::time::Duration;

use uuid::Uuid;

use crate::auth::{self, Claims};
use crate::config::parse_duration;
use crate::exit::Failure;

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

/// Parses the UUID given to `flag`, naming the flag when it is not one.
pub fn uuid_flag(flag: &str, text: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(text.trim())
        .map_err(|e| Failure::usage(format!("{flag} {text:?}: not a UUID ({e})")))
}

/// Parses the duration given to `flag`, naming the flag when it is not one.
pub fn duration_flag(flag: &str, text: &str) -> Result<Duration, Failure> {
    parse_duration(text).map_err(|why| Failure::usage(format!("{flag} {text:?}: {why}")))
}

/// The bearer token of a client run: `--token` as given, or a system token
/// for `service` minted from `--token-secret`, valid for `lifetime`.
pub fn bearer_token(
    token: Option<&Secret>,
    secret: Option<&Secret>,
    service: &str,
    lifetime: Duration,
) -> Result<String, Failure> {
    match (token, secret) {
        (Some(token), _) => Ok(token.expose().trim().to_owned()),
        (None, Some(secret)) if !secret.expose().is_empty() => {
            auth::mint(&Claims::system(service, lifetime), secret.expose())
                .map_err(|e| Failure::error(format!("cannot sign a system token: {e}")))
        }
        _ => Err(Failure::usage(
            "a token is needed: pass --token, or set HULY_TOKEN, \
             or set HULY_TOKEN_SECRET to mint a system token",
        )),
    }
}
