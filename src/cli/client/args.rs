//! The flags of the client subcommands: how to reach the service
//! ([`ClientArgs`], shared by all four) and what each one does.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::flags::Secret;

/// How a client subcommand reaches the service.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the service.
    #[arg(long, env = "HULY_KVS_URL", default_value = "http://localhost:8094")]
    pub url: String,

    /// Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET.
    #[arg(long, env = "HULY_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// HS256 secret to mint a system token with when no --token is given.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// Workspace UUID (API v2); without it, the legacy API and its default workspace.
    #[arg(short = 'w', long)]
    pub workspace: Option<String>,

    /// How long to wait for the service, such as 30s or 2m.
    #[arg(long, default_value = "30s")]
    pub timeout: String,

    /// PEM file of the CA certificate(s) to trust for an https --url, instead of (not in
    /// addition to) the built-in public roots.
    #[arg(long, env = "HULY_KVS_CA_CERT", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate (chain) for mutual TLS; needs --client-key.
    #[arg(
        long,
        env = "HULY_KVS_CLIENT_CERT",
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert (unencrypted PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "HULY_KVS_CLIENT_KEY",
        value_name = "FILE",
        value_hint = clap::ValueHint::FilePath,
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

/// `put`: store a value.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Key; `/` is part of the key.
    pub key: String,
    /// The value; `-` (or nothing, with no --file) reads stdin to its end.
    pub value: Option<OsString>,
    /// Read the value from this file (`-`: stdin).
    #[arg(long, conflicts_with = "value")]
    pub file: Option<PathBuf>,
    /// Content type stored with the value [default: application/octet-stream].
    #[arg(long)]
    pub content_type: Option<String>,
    /// Write only if the current value has this ETag, quoted or bare (needs -w).
    #[arg(long, value_name = "ETAG", group = "precondition")]
    pub if_match: Option<String>,
    /// Write only if a value is already stored (needs -w).
    #[arg(long, group = "precondition")]
    pub if_exists: bool,
    /// Write only if no value is stored yet (needs -w).
    #[arg(long, group = "precondition")]
    pub if_absent: bool,
    /// The value expires this long after it is written, such as 90s, 1h or 7d (Huly-TTL).
    #[arg(long, value_name = "DURATION", group = "expiry")]
    pub ttl: Option<String>,
    /// The value expires at this unix second (Huly-Expire-At).
    #[arg(long, value_name = "UNIX", group = "expiry")]
    pub expire_at: Option<String>,
    /// Print the new value's ETag to stderr.
    #[arg(long)]
    pub etag: bool,
    /// Print the value this write replaced to stdout, if there was one (needs -w).
    #[arg(long)]
    pub previous: bool,
}

/// `get`: print a value.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Key; `/` is part of the key.
    pub key: String,
    /// Write the value to this file instead of stdout (`-`: stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the value's ETag to stderr.
    #[arg(long)]
    pub etag: bool,
    /// Print what is known of the value to stderr, a line each: etag, content-type,
    /// and for a value that expires, expire-at (unix seconds) and ttl (seconds left).
    #[arg(long, conflicts_with = "etag")]
    pub meta: bool,
}

/// `delete`: remove a value.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Key; `/` is part of the key.
    #[arg(required_unless_present = "prefix")]
    pub key: Option<String>,
    /// Delete only if the current value has this ETag, quoted or bare (needs -w).
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
    /// Instead of one key, every key that starts with this literal prefix (needs -w); prints
    /// how many were deleted. An empty prefix (the whole namespace) needs --yes.
    #[arg(long, conflicts_with_all = ["key", "if_match"])]
    pub prefix: Option<String>,
    /// Confirms deleting a whole namespace with --prefix "".
    #[arg(long, requires = "prefix")]
    pub yes: bool,
    /// Print the value deleted to stdout (needs -w).
    #[arg(long, conflicts_with = "prefix")]
    pub previous: bool,
}

/// `list`: print the keys of a namespace.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Only keys that start with this literal prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Print one JSON document in the service's shape, all pages merged.
    #[arg(long)]
    pub json: bool,
    /// Keys fetched per request (API v2; the legacy API sends all keys at once).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// With each key its value: one JSON object a line (key, value in base64, etag,
    /// content_type, expire_at); with --json, one document with every item.
    #[arg(long)]
    pub values: bool,
}

/// `txn`: run a transaction.
#[derive(Debug, Clone, Args)]
pub struct TxnArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// JSON file of the transaction, {"ops":[...]} as the API takes it; `-` (or nothing)
    /// reads stdin.
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,
}

/// `watch`: follow the changes of a namespace.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace.
    pub namespace: String,
    /// Only changes of keys that start with this literal prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Start after this revision (the Huly-Revision of a listing or a write): its later
    /// changes are printed first. Without it, only changes from now on.
    #[arg(long, value_name = "REVISION")]
    pub since: Option<u64>,
    /// One JSON object a line (revision, op, key, etag, expire_at), and a "sync" line once
    /// caught up.
    #[arg(long)]
    pub json: bool,
}
