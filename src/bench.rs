//! `hulykvs bench`: a load generator for a running service, in the manner of
//! redis-benchmark. It writes the keys it needs, then keeps `--connections`
//! HTTP/1.1 keep-alive connections busy, each with one request in flight, and
//! reports throughput, latency percentiles (an HDR histogram merged across
//! connections), answers by status and connection errors.
//!
//! The generator must not be what limits the figures on a small machine, so it
//! speaks hyper's connection-level client directly on one thread by default,
//! builds every path and header once, and shares value buffers between requests.
//!
//! Keys are the decimal numbers `0`..`keys`, so other tools (such as the
//! `pgbench` scripts of `scripts/bench`) can address the same rows.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, ETAG, HOST, IF_MATCH};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use uuid::Uuid;

use crate::auth::{self, Claims};
use crate::cli::BenchArgs;
use crate::config::parse_duration;
use crate::exit::Failure;
use crate::token::uuid_flag;
use crate::wire::{self, KeyList};

/// The workspace the bench uses through API v2 unless `--workspace` is given.
pub const BENCH_WORKSPACE: &str = "b0000000-0000-4000-8000-00000000be9c";

/// Values of this many distinct contents are written, chosen at random per request.
const VALUE_POOL: usize = 64;

/// Most concurrent requests while writing the keys before a run.
const SEED_CONNECTIONS: usize = 32;

/// How long a request may take before the run gives up on it, past the end.
const GRACE: Duration = Duration::from_secs(10);

/// Longest wait for one request while seeding or probing.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A `cas` operation gives up after this many lost races in a row.
const CAS_ATTEMPTS: u32 = 100;

/// Highest latency the histogram holds, in microseconds; longer ones count as this.
const MAX_LATENCY_US: u64 = 60_000_000;

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
        }
    }
}

/// One operation of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Put,
    Cas,
    List,
}

/// Shares of operations, as cumulative thresholds out of their total.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mix {
    steps: Vec<(u64, Op)>,
    total: u64,
}

impl Mix {
    /// A single operation.
    fn only(op: Op) -> Mix {
        Mix {
            steps: vec![(1, op)],
            total: 1,
        }
    }

    /// Parses `get=80,put=15,list=5`; shares are whole numbers, need not sum to 100.
    fn parse(text: &str) -> Result<Mix, String> {
        let mut steps = Vec::new();
        let mut total = 0u64;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected OP=SHARE"))?;
            let op = match name.trim() {
                "get" => Op::Get,
                "put" => Op::Put,
                "cas" => Op::Cas,
                "list" => Op::List,
                other => {
                    return Err(format!(
                        "unknown operation {other:?} (use get, put, cas, list)"
                    ))
                }
            };
            if steps.iter().any(|&(_, seen)| seen == op) {
                return Err(format!("{:?} is given twice", name.trim()));
            }
            let share: u64 = share
                .trim()
                .parse()
                .ok()
                .filter(|&s| s <= 1_000_000)
                .ok_or_else(|| format!("{part:?}: the share must be a whole number"))?;
            if share > 0 {
                total += share;
                steps.push((total, op));
            }
        }
        if total == 0 {
            return Err("no operation has a share above zero".to_owned());
        }
        Ok(Mix { steps, total })
    }

    fn has(&self, op: Op) -> bool {
        self.steps.iter().any(|&(_, o)| o == op)
    }

    fn pick(&self, rng: &mut Rng) -> Op {
        if let [(_, op)] = self.steps[..] {
            return op;
        }
        let roll = rng.below(self.total);
        self.steps
            .iter()
            .find(|&&(upto, _)| roll < upto)
            .map_or(Op::Get, |&(_, op)| op)
    }
}

/// A small, fast generator (SplitMix64): the bench needs spread, not secrecy.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// The result of a run, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `get`, `put`, `cas`, `list` or `mixed`.
    pub workload: String,
    /// Connections, each with one request in flight.
    pub connections: usize,
    /// The measured time, warmup excluded.
    pub duration_s: f64,
    /// Responses received within the measured time.
    pub requests: u64,
    /// `requests` per second.
    pub rps: f64,
    /// Latency of those responses.
    pub latency_us: Latency,
    /// Responses by HTTP status code.
    pub status: BTreeMap<String, u64>,
    /// Requests that got no response: connection refused, reset or closed, or too slow.
    pub errors: u64,
    /// `cas` writes that lost a race (412) and were tried again.
    pub cas_retries: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
    /// Average.
    pub mean: f64,
}

/// `hulykvs bench`: validates the flags, starts its own runtime, writes the
/// keys, runs the workload and prints the report.
pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    let plan = Plan::from_args(args)?;
    let runtime = if plan.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(plan.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(execute(plan.clone()))?;
    let text = if plan.json {
        let mut json = serde_json::to_string(&report)
            .map_err(|e| Failure::error(format!("cannot write JSON: {e}")))?;
        json.push('\n');
        json
    } else {
        human(&report, &plan)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::error(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Everything a run needs, validated before any I/O.
#[derive(Debug, Clone)]
struct Plan {
    workload: Workload,
    mix: Mix,
    connections: usize,
    threads: usize,
    duration: Duration,
    warmup: Duration,
    json: bool,
    seed: bool,
    /// `--url` as given, for messages.
    url: String,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: HeaderValue,
    authorization: HeaderValue,
    /// The method that writes a value: PUT (API v2) or POST (legacy).
    write: Method,
    /// Paths of the keys that get, put and cas use.
    keys: Arc<[Uri]>,
    /// Paths of the keys in the listed namespace (empty when nothing lists).
    list_keys: Arc<[Uri]>,
    /// Path of the listing.
    list: Uri,
    /// Path of `/readyz`.
    readyz: Uri,
    value_size: usize,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan, Failure> {
        let workload = args.workload;
        let mix = match workload {
            Workload::Get => Mix::only(Op::Get),
            Workload::Put => Mix::only(Op::Put),
            Workload::Cas => Mix::only(Op::Cas),
            Workload::List => Mix::only(Op::List),
            Workload::Mixed => {
                Mix::parse(&args.mix).map_err(|why| Failure::usage(format!("--mix: {why}")))?
            }
        };
        if args.legacy && mix.has(Op::Cas) {
            return Err(Failure::usage(
                "--legacy: the legacy API has no conditional writes, so no cas",
            ));
        }
        let duration = duration_flag("--duration", &args.duration)?;
        if duration.is_zero() {
            return Err(Failure::usage("--duration: must be longer than zero"));
        }
        let warmup = duration_flag("--warmup", &args.warmup)?;
        let (prefix, host, port, authority) = base_url(&args.url)?;
        let authorization = authorization(args, duration + warmup)?;

        let api = if args.legacy {
            format!("{prefix}/api")
        } else {
            let workspace = match &args.workspace {
                Some(text) => uuid_flag("--workspace", text)?,
                None => Uuid::parse_str(BENCH_WORKSPACE)
                    .map_err(|e| Failure::error(format!("bench workspace: {e}")))?,
            };
            format!("{prefix}/api2/{}", workspace.hyphenated())
        };
        let listing_only = workload == Workload::List;
        let default_namespace = if listing_only { "bench-list" } else { "bench" };
        let namespace = args.namespace.as_deref().unwrap_or(default_namespace);
        if namespace.is_empty() || namespace == "." || namespace == ".." {
            return Err(Failure::usage(format!(
                "--namespace {namespace:?}: cannot be sent in a URL path"
            )));
        }
        let key_count = args
            .keys
            .unwrap_or(if listing_only { 1000 } else { 10_000 });
        let (list_namespace, list_count) = if listing_only {
            (namespace.to_owned(), key_count)
        } else {
            (format!("{namespace}-list"), args.list_keys)
        };
        let data_namespace = wire::percent_encode(namespace);
        let list_namespace = wire::percent_encode(&list_namespace);
        let keys = if listing_only {
            Vec::new()
        } else {
            key_paths(&api, &data_namespace, key_count)?
        };
        let list_keys = if mix.has(Op::List) {
            key_paths(&api, &list_namespace, list_count)?
        } else {
            Vec::new()
        };
        Ok(Plan {
            workload,
            mix,
            connections: args.connections as usize,
            threads: args.threads as usize,
            duration,
            warmup,
            json: args.json,
            seed: !args.no_seed,
            url: args.url.clone(),
            host,
            port,
            authority,
            authorization,
            write: if args.legacy {
                Method::POST
            } else {
                Method::PUT
            },
            keys: keys.into(),
            list_keys: list_keys.into(),
            list: path_uri(&format!("{api}/{list_namespace}"))?,
            readyz: path_uri(&format!("{prefix}/readyz"))?,
            value_size: args.value_size,
        })
    }
}

fn duration_flag(flag: &str, text: &str) -> Result<Duration, Failure> {
    parse_duration(text).map_err(|why| Failure::usage(format!("{flag} {text:?}: {why}")))
}

/// Splits `--url` into the path prefix, host, port and `Host` header.
fn base_url(url: &str) -> Result<(String, String, u16, HeaderValue), Failure> {
    let bad = |why: &str| Failure::usage(format!("--url {url:?}: {why}"));
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|_| bad("expected an http:// URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("the bench speaks plain http:// only")),
        _ => return Err(bad("expected an http:// URL")),
    }
    if uri.query().is_some() {
        return Err(bad("expected a URL without query"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information is not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(80);
    let header = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Ok((prefix, host, port, header))
}

/// `Bearer <token>`: `--token`, or a system token minted from the secret.
fn authorization(args: &BenchArgs, run: Duration) -> Result<HeaderValue, Failure> {
    let token = match (&args.token, &args.token_secret) {
        (Some(token), _) => token.expose().trim().to_owned(),
        (None, Some(secret)) if !secret.expose().is_empty() => {
            // Seeding comes on top of the run; an hour more is plenty.
            let claims = Claims::system("hulykvs-bench", run + Duration::from_secs(3600));
            auth::mint(&claims, secret.expose())
                .map_err(|e| Failure::error(format!("cannot sign a system token: {e}")))?
        }
        _ => {
            return Err(Failure::usage(
                "a token is needed: pass --token, or set HULY_TOKEN, \
                 or set HULY_TOKEN_SECRET to mint a system token",
            ))
        }
    };
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Failure::usage("--token: not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The key a bench index stands for.
pub fn key_name(index: u64) -> String {
    index.to_string()
}

fn key_paths(api: &str, namespace: &str, count: u32) -> Result<Vec<Uri>, Failure> {
    (0..u64::from(count))
        .map(|i| path_uri(&format!("{api}/{namespace}/{}", key_name(i))))
        .collect()
}

fn path_uri(path: &str) -> Result<Uri, Failure> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Uri::from_maybe_shared(Bytes::from(path.clone()))
        .map_err(|e| Failure::usage(format!("cannot make a request path of {path:?}: {e}")))
}

/// What every connection shares during a run.
struct Shared {
    plan: Plan,
    addr: SocketAddr,
    values: Vec<Bytes>,
    /// Responses so far, warmup included, for the progress line.
    done: AtomicU64,
    /// Requests without a response so far, for the progress line.
    failed: AtomicU64,
}

/// The runtime part of `bench`: probe, seed, load, report.
async fn execute(plan: Plan) -> Result<Report, Failure> {
    let addr = resolve(&plan).await?;
    let mut rng = Rng::new(seed_from_clock());
    let values = (0..VALUE_POOL)
        .map(|_| {
            let mut value = Vec::with_capacity(plan.value_size + 8);
            while value.len() < plan.value_size {
                value.extend_from_slice(&rng.next().to_le_bytes());
            }
            value.truncate(plan.value_size);
            Bytes::from(value)
        })
        .collect();
    let shared = Arc::new(Shared {
        plan,
        addr,
        values,
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    probe(&shared).await?;
    if shared.plan.seed {
        seed(&shared, &shared.plan.keys).await?;
        seed(&shared, &shared.plan.list_keys).await?;
    }
    if shared.plan.mix.has(Op::List) {
        check_listing(&shared).await?;
    }
    measure(shared).await
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed)
}

async fn resolve(plan: &Plan) -> Result<SocketAddr, Failure> {
    let unreachable = |why: String| Failure::error(format!("cannot reach {}: {why}", plan.url));
    let mut addrs = tokio::net::lookup_host((plan.host.as_str(), plan.port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| unreachable("the host name has no address".to_owned()))
}

/// A keep-alive HTTP/1.1 connection; its driver runs as a task of its own.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| io_cause(&e))?;
    stream.set_nodelay(true).map_err(|e| io_cause(&e))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Its end shows up as an error on the next request.
        let _ = connection.await;
    });
    Ok(sender)
}

fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => e.to_string(),
    }
}

fn request(shared: &Shared, method: Method, uri: &Uri, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri.clone();
    let headers = req.headers_mut();
    headers.insert(HOST, shared.plan.authority.clone());
    headers.insert(AUTHORIZATION, shared.plan.authorization.clone());
    req
}

/// What the bench keeps of a response.
struct Answer {
    status: StatusCode,
    etag: Option<HeaderValue>,
}

/// Sends one request and reads the whole response, dropping the body as it arrives.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    keep_etag: bool,
) -> Result<Answer, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let status = response.status();
    let etag = if keep_etag {
        response.headers().get(ETAG).cloned()
    } else {
        None
    };
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(Answer { status, etag })
}

/// Sends one request with the setup timeout, keeping the body for messages.
async fn setup_exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let work = async {
        sender.ready().await?;
        let response = sender.send_request(req).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    };
    match tokio::time::timeout(SETUP_TIMEOUT, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", SETUP_TIMEOUT.as_secs())),
    }
}

/// The `error` of a JSON error body, or the start of the body.
fn body_hint(body: &[u8]) -> String {
    if let Ok(error) = serde_json::from_slice::<wire::ErrorBody>(body) {
        return format!(": {}", error.error);
    }
    match std::str::from_utf8(body).map(str::trim) {
        Ok(text) if !text.is_empty() && text.len() <= 200 && !text.contains(['\n', '\r']) => {
            format!(": {text}")
        }
        _ => String::new(),
    }
}

/// Checks that the service answers and is ready; exit 1 with one line if not.
async fn probe(shared: &Shared) -> Result<(), Failure> {
    let plan = &shared.plan;
    let mut sender = connect(shared.addr)
        .await
        .map_err(|why| Failure::error(format!("cannot reach {}: {why}", plan.url)))?;
    let mut req = request(shared, Method::GET, &plan.readyz, Bytes::new());
    req.headers_mut().remove(AUTHORIZATION);
    let (status, body) = setup_exchange(&mut sender, req)
        .await
        .map_err(|why| Failure::error(format!("cannot reach {}: {why}", plan.url)))?;
    if status != StatusCode::OK {
        return Err(Failure::error(format!(
            "{} is not ready: /readyz answered {status}{}",
            plan.url,
            body_hint(&body)
        )));
    }
    Ok(())
}

/// Writes `paths` concurrently, each with a value of the pool; any answer but
/// success stops the bench (a refused token, say).
async fn seed(shared: &Arc<Shared>, paths: &Arc<[Uri]>) -> Result<(), Failure> {
    if paths.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let writers = shared.plan.connections.clamp(1, SEED_CONNECTIONS);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let shared = Arc::clone(shared);
        let paths = Arc::clone(paths);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let url = &shared.plan.url;
            let mut sender = connect(shared.addr)
                .await
                .map_err(|why| Failure::error(format!("cannot reach {url}: {why}")))?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else {
                    return Ok(());
                };
                let value = shared.values[i % shared.values.len()].clone();
                let req = request(&shared, shared.plan.write.clone(), path, value);
                let (status, body) = setup_exchange(&mut sender, req).await.map_err(|why| {
                    Failure::error(format!("seeding: {} {path}: {why}", shared.plan.write))
                })?;
                if !status.is_success() {
                    return Err(Failure::error(format!(
                        "seeding: {} {path} answered {status}{}",
                        shared.plan.write,
                        body_hint(&body)
                    )));
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => return Err(failure),
            Err(e) => return Err(Failure::error(format!("seeding: a writer failed: {e}"))),
        }
    }
    eprintln!(
        "bench: wrote {} keys in {:.1}s",
        paths.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Lists the listed namespace once and warns when it holds other than the
/// expected number of keys, which would make the figures incomparable.
async fn check_listing(shared: &Shared) -> Result<(), Failure> {
    let plan = &shared.plan;
    let mut sender = connect(shared.addr)
        .await
        .map_err(|why| Failure::error(format!("cannot reach {}: {why}", plan.url)))?;
    let req = request(shared, Method::GET, &plan.list, Bytes::new());
    let (status, body) = setup_exchange(&mut sender, req)
        .await
        .map_err(|why| Failure::error(format!("listing {}: {why}", plan.list)))?;
    if status != StatusCode::OK {
        return Err(Failure::error(format!(
            "listing {} answered {status}{}",
            plan.list,
            body_hint(&body)
        )));
    }
    match serde_json::from_slice::<KeyList>(&body) {
        Ok(list) if list.keys.len() == plan.list_keys.len() => {}
        Ok(list) => eprintln!(
            "bench: warning: {} lists {} keys, not {}; use a fresh --namespace to compare runs",
            plan.list,
            list.keys.len(),
            plan.list_keys.len()
        ),
        Err(e) => {
            return Err(Failure::error(format!(
                "listing {}: unexpected JSON: {e}",
                plan.list
            )))
        }
    }
    Ok(())
}

/// What one connection measured.
struct Tally {
    latency: Histogram<u64>,
    /// Responses by status code, indexed by the code.
    status: Vec<u64>,
    errors: u64,
    cas_retries: u64,
}

impl Tally {
    fn new() -> Result<Tally, Failure> {
        Ok(Tally {
            // Grows with the slowest answer, so 256 connections cost little memory.
            latency: Histogram::new(3)
                .map_err(|e| Failure::error(format!("cannot make a histogram: {e}")))?,
            status: vec![0; 600],
            errors: 0,
            cas_retries: 0,
        })
    }

    fn merge(&mut self, other: &Tally) -> Result<(), Failure> {
        self.latency
            .add(&other.latency)
            .map_err(|e| Failure::error(format!("cannot merge histograms: {e}")))?;
        for (mine, theirs) in self.status.iter_mut().zip(&other.status) {
            *mine += theirs;
        }
        self.errors += other.errors;
        self.cas_retries += other.cas_retries;
        Ok(())
    }
}

/// The time line of a run: warmup, then the measured window.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn counts(&self, sent: Instant, answered: Instant) -> bool {
        sent >= self.start && answered <= self.end
    }
}

/// Runs the workers through warmup and the measured window, with a progress
/// line on stderr, and merges what they measured.
async fn measure(shared: Arc<Shared>) -> Result<Report, Failure> {
    let plan = &shared.plan;
    let began = Instant::now();
    let window = Window {
        start: began + plan.warmup,
        end: began + plan.warmup + plan.duration,
    };
    let mut workers = Vec::with_capacity(plan.connections);
    for id in 0..plan.connections {
        let shared = Arc::clone(&shared);
        let seed = seed_from_clock() ^ (id as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        workers.push(tokio::spawn(worker(shared, window, Rng::new(seed))));
    }
    let progress = tokio::spawn(progress(Arc::clone(&shared), window));
    let mut total = Tally::new()?;
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(&tally?)?,
            Err(e) => return Err(Failure::error(format!("a worker failed: {e}"))),
        }
    }
    progress.abort();
    let _ = progress.await;

    let requests = total.latency.len();
    let seconds = plan.duration.as_secs_f64();
    let status = total
        .status
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(code, &n)| (code.to_string(), n))
        .collect();
    let (p50, p90, p99, max, mean) = if requests == 0 {
        (0, 0, 0, 0, 0.0)
    } else {
        let h = &total.latency;
        (
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.max(),
            h.mean(),
        )
    };
    Ok(Report {
        workload: plan.workload.name().to_owned(),
        connections: plan.connections,
        duration_s: seconds,
        requests,
        rps: requests as f64 / seconds,
        latency_us: Latency {
            p50,
            p90,
            p99,
            max,
            mean: (mean * 10.0).round() / 10.0,
        },
        status,
        errors: total.errors,
        cas_retries: total.cas_retries,
    })
}

/// One connection: requests back to back until the window ends, reconnecting
/// after a failure.
async fn worker(shared: Arc<Shared>, window: Window, mut rng: Rng) -> Result<Tally, Failure> {
    let mut tally = Tally::new()?;
    let plan = &shared.plan;
    let mut hard_stop = pin!(tokio::time::sleep_until(TokioInstant::from_std(
        window.end + GRACE
    )));
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    'run: while Instant::now() < window.end {
        let conn = match &mut sender {
            // The service closed it between requests (idle timeout, say): no request was lost.
            Some(conn) if conn.is_closed() => {
                sender = None;
                continue;
            }
            Some(conn) => conn,
            None => match connect(shared.addr).await {
                Ok(conn) => sender.insert(conn),
                Err(_) => {
                    fail(&shared, &mut tally, Instant::now(), window);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let op = plan.mix.pick(&mut rng);
        let (path, method, body) = match op {
            Op::Get | Op::Cas => (pick(&plan.keys, &mut rng), Method::GET, Bytes::new()),
            Op::Put => (
                pick(&plan.keys, &mut rng),
                plan.write.clone(),
                value(&shared, &mut rng),
            ),
            Op::List => (&plan.list, Method::GET, Bytes::new()),
        };
        let mut req = request(&shared, method, path, body);
        for attempt in 1..=CAS_ATTEMPTS {
            let sent = Instant::now();
            let answer = tokio::select! {
                biased;
                answer = exchange(conn, req, op == Op::Cas) => answer,
                () = &mut hard_stop => {
                    fail(&shared, &mut tally, sent, window);
                    break 'run;
                }
            };
            let answered = Instant::now();
            let answer = match answer {
                Ok(answer) => answer,
                Err(_) => {
                    fail(&shared, &mut tally, sent, window);
                    sender = None;
                    continue 'run;
                }
            };
            shared.done.fetch_add(1, Ordering::Relaxed);
            if window.counts(sent, answered) {
                let micros = u64::try_from(answered.duration_since(sent).as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                // Only an allocation failure could refuse the value; it would not be counted.
                let _ = tally.latency.record(micros.min(MAX_LATENCY_US));
                tally.status[usize::from(answer.status.as_u16()).min(599)] += 1;
            }
            if op != Op::Cas {
                break;
            }
            // cas: after the GET, the conditional PUT; after a lost race, GET again.
            req = match (answer.status, answer.etag) {
                (StatusCode::OK, Some(etag)) => {
                    let mut put = request(&shared, Method::PUT, path, value(&shared, &mut rng));
                    put.headers_mut().insert(IF_MATCH, etag);
                    put
                }
                (StatusCode::PRECONDITION_FAILED, _) => {
                    if window.counts(sent, answered) {
                        tally.cas_retries += 1;
                    }
                    request(&shared, Method::GET, path, Bytes::new())
                }
                _ => break,
            };
            if attempt % 2 == 0 && Instant::now() >= window.end {
                break;
            }
        }
    }
    Ok(tally)
}

fn pick<'a>(paths: &'a [Uri], rng: &mut Rng) -> &'a Uri {
    &paths[rng.below(paths.len() as u64) as usize]
}

fn value(shared: &Shared, rng: &mut Rng) -> Bytes {
    shared.values[rng.below(shared.values.len() as u64) as usize].clone()
}

/// Counts a request that got no response.
fn fail(shared: &Shared, tally: &mut Tally, sent: Instant, window: Window) {
    shared.failed.fetch_add(1, Ordering::Relaxed);
    if sent >= window.start {
        tally.errors += 1;
    }
}

/// A line on stderr once a second: `\r`-rewritten on a terminal, plain lines otherwise.
async fn progress(shared: Arc<Shared>, window: Window) {
    let tty = std::io::stderr().is_terminal();
    let began = Instant::now();
    let mut ticks = tokio::time::interval_at(
        TokioInstant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut last = 0;
    let mut ended = false;
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let done = shared.done.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        // The phase of the second that just ended.
        let middle = now - Duration::from_millis(500);
        let phase = if middle < window.start {
            "warmup"
        } else if middle <= window.end {
            "run"
        } else {
            "finishing"
        };
        let line = format!(
            "bench: {:>4.0}s {phase:<9} {:>9.0} req/s  {done} responses  {failed} errors",
            (now - began).as_secs_f64(),
            (done - last) as f64,
        );
        last = done;
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        if now > window.end && !ended {
            ended = true;
            if tty {
                let _ = writeln!(err);
            }
        }
    }
}

/// The report for people.
fn human(report: &Report, plan: &Plan) -> String {
    let ms = |us: u64| format!("{:.2}ms", us as f64 / 1000.0);
    let status = report
        .status
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "workload     {}{}\n\
         connections  {}\n\
         duration     {:.1}s (after {:.1}s warmup)\n\
         requests     {} ({:.1}/s)\n\
         latency      p50 {}  p90 {}  p99 {}  max {}  mean {:.2}ms\n\
         status       {}\n\
         errors       {}\n",
        report.workload,
        if plan.workload == Workload::Mixed {
            format!(" ({})", plan.mix_text())
        } else {
            String::new()
        },
        report.connections,
        report.duration_s,
        plan.warmup.as_secs_f64(),
        report.requests,
        report.rps,
        ms(report.latency_us.p50),
        ms(report.latency_us.p90),
        ms(report.latency_us.p99),
        ms(report.latency_us.max),
        report.latency_us.mean / 1000.0,
        if status.is_empty() { "-" } else { &status },
        report.errors,
    );
    if plan.mix.has(Op::Cas) {
        text.push_str(&format!("cas retries  {}\n", report.cas_retries));
    }
    text
}

impl Plan {
    /// The shares of the mix, as `get=80,put=15,list=5`.
    fn mix_text(&self) -> String {
        let mut below = 0;
        self.mix
            .steps
            .iter()
            .map(|&(upto, op)| {
                let share = upto - below;
                below = upto;
                let name = match op {
                    Op::Get => "get",
                    Op::Put => "put",
                    Op::Cas => "cas",
                    Op::List => "list",
                };
                format!("{name}={share}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::exit::Exit;
    use clap::Parser;

    fn plan(extra: &[&str]) -> Result<Plan, Failure> {
        let argv = ["hulykvs", "bench", "--token", "t", "--keys", "3"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Bench(args) => Plan::from_args(&args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn mix_parses_shares_and_refuses_nonsense() {
        let mix = Mix::parse("get=80, put=15,list=5").unwrap();
        assert_eq!(mix.total, 100);
        assert_eq!(
            mix.steps,
            vec![(80, Op::Get), (95, Op::Put), (100, Op::List)]
        );
        assert_eq!(Mix::parse("cas=1,get=0").unwrap().steps, vec![(1, Op::Cas)]);
        for bad in [
            "",
            "get",
            "get=x",
            "del=1",
            "get=1,get=2",
            "get=0",
            "put=-1",
        ] {
            assert!(Mix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mix_picks_in_proportion() {
        let mix = Mix::parse("get=3,put=1").unwrap();
        let mut rng = Rng::new(7);
        let puts = (0..40_000)
            .filter(|_| mix.pick(&mut rng) == Op::Put)
            .count();
        assert!((9_000..11_000).contains(&puts), "{puts}");
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.below(3) < 3));
    }

    #[test]
    fn paths_of_both_apis() {
        let v2 = plan(&["--url", "http://h:81/base/", "--namespace", "a b"]).unwrap();
        assert_eq!(v2.keys.len(), 3);
        assert_eq!(
            v2.keys[2].to_string(),
            format!("/base/api2/{BENCH_WORKSPACE}/a%20b/2")
        );
        assert_eq!(v2.authority, "h:81");
        assert_eq!(v2.readyz.to_string(), "/base/readyz");
        assert!(v2.list_keys.is_empty());
        assert_eq!(v2.write, Method::PUT);

        let legacy = plan(&["--legacy", "--workload", "mixed"]).unwrap();
        assert_eq!(legacy.keys[0].to_string(), "/api/bench/0");
        assert_eq!(legacy.list.to_string(), "/api/bench-list");
        assert_eq!(legacy.list_keys.len(), 1000);
        assert_eq!(legacy.write, Method::POST);
        assert_eq!(legacy.port, 8094);

        let list = plan(&[
            "--workload",
            "list",
            "-w",
            "0B0B0B0B-1111-4222-8333-444444444444",
        ])
        .unwrap();
        assert!(list.keys.is_empty());
        assert_eq!(list.list_keys.len(), 3);
        assert_eq!(
            list.list.to_string(),
            "/api2/0b0b0b0b-1111-4222-8333-444444444444/bench-list"
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for argv in [
            &["--url", "https://h"][..],
            &["--url", "localhost:8094"][..],
            &["--url", "http://h/?q=1"][..],
            &["--duration", "soon"][..],
            &["--duration", "0s"][..],
            &["-w", "nope"][..],
            &["--workload", "mixed", "--mix", "get=1,zap=2"][..],
            &["--workload", "cas", "--legacy"][..],
            &["--namespace", ".."][..],
        ] {
            let failure = plan(argv).err().unwrap();
            assert_eq!(failure.exit, Exit::Usage, "{argv:?}: {failure}");
        }
    }

    #[test]
    fn minted_token_is_a_system_token() {
        let argv = ["hulykvs", "bench", "--token-secret", "s3", "--keys", "1"];
        let Command::Bench(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not bench");
        };
        let header = authorization(&args, Duration::from_secs(10)).unwrap();
        let text = header.to_str().unwrap();
        let token = text.strip_prefix("Bearer ").unwrap();
        let claims = auth::Verifier::new("s3").verify(token).unwrap();
        assert_eq!(claims.account, crate::auth::SYSTEM_ACCOUNT);
        assert!(header.is_sensitive());
    }
}
