//! The flags of `hulykvs bench`.

use clap::Args;

use crate::cli::flags::Secret;

/// What each connection does, back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// GET random keys.
    Get,
    /// PUT random keys with fresh random values.
    Put,
    /// GET a random key, then PUT it with `If-Match` its ETag; retry on 412.
    Cas,
    /// GET the listing of a namespace of `--keys` keys.
    List,
    /// A random choice per request, in the shares of `--mix`.
    Mixed,
    /// `--connections` watch streams on one namespace while writers PUT at `--rate`:
    /// delivered events per second and the delivery latency.
    Watch,
}

impl Workload {
    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Put => "put",
            Workload::Cas => "cas",
            Workload::List => "list",
            Workload::Mixed => "mixed",
            Workload::Watch => "watch",
        }
    }
}

/// `bench`: load-test a running service, as redis-benchmark does.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of the service (plain http://).
    #[arg(long, env = "HULY_KVS_URL", default_value = "http://localhost:8094")]
    pub url: String,

    /// Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET.
    #[arg(long, env = "HULY_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// HS256 secret to mint a system token with when no --token is given.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// What each connection does, back to back.
    #[arg(long, value_enum, default_value_t = Workload::Get)]
    pub workload: Workload,

    /// Shares of the mixed workload, of get, put, cas and list; lists read <namespace>-list.
    #[arg(
        long,
        value_name = "OP=SHARE,...",
        default_value = "get=80,put=15,list=5"
    )]
    pub mix: String,

    /// Connections, each one keep-alive HTTP/1.1 connection with one request in flight.
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,

    /// How long to measure, such as 10s or 1m.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub duration: String,

    /// How long to load the service before measuring; not counted.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub warmup: String,

    /// Keys the requests spread over, named 0, 1, 2, … [default: 10000; 1000 for --workload list]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: Option<u32>,

    /// Keys in <namespace>-list, the namespace the mixed workload lists.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub list_keys: u32,

    /// Bytes of each value written (random, from a pool of 64).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub value_size: usize,

    /// Workspace UUID (API v2) [default: b0000000-0000-4000-8000-00000000be9c]
    #[arg(short = 'w', long, conflicts_with = "legacy")]
    pub workspace: Option<String>,

    /// Namespace [default: bench; bench-list for --workload list]
    #[arg(long)]
    pub namespace: Option<String>,

    /// Use the legacy /api routes and their default workspace (no cas).
    #[arg(long)]
    pub legacy: bool,

    /// Print one JSON object instead of the table; progress still goes to stderr.
    #[arg(long)]
    pub json: bool,

    /// Do not write the keys first (they must already exist).
    #[arg(long)]
    pub no_seed: bool,

    /// Threads of the load generator; one leaves the other cores to the service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,

    /// Watch workload: writes per second, spread over the run (0: idle streams only).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub rate: u32,

    /// Watch workload: open the streams on this service instead of --url (another instance
    /// on the same database), to measure delivery across instances.
    #[arg(long, value_name = "URL")]
    pub watch_url: Option<String>,

    /// Watch workload: open the streams over HTTP/2 (prior knowledge, up to 200 streams a
    /// connection) instead of one HTTP/1.1 connection each.
    #[arg(long)]
    pub http2: bool,
}
