//! Running a bench: probe the service, write the keys, then keep every
//! connection busy through warmup and the measured window, one request in
//! flight each, over hyper's connection-level HTTP/1.1 client.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, ETAG, HOST, IF_MATCH};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;

use super::plan::{Op, Plan, Rng};
use super::report::{Report, Tally};
use crate::exit::Failure;
use crate::wire::{self, KeyList};

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
pub(super) async fn execute(plan: Plan) -> Result<Report, Failure> {
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

    Ok(total.report(plan))
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
        let (path, mut req) = first_request(&shared, op, &mut rng);
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
                tally.record(answered.duration_since(sent), answer.status);
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

/// The path an operation works on and its first request (a `cas` starts with a GET).
fn first_request<'s>(shared: &'s Shared, op: Op, rng: &mut Rng) -> (&'s Uri, Request<Full<Bytes>>) {
    let plan = &shared.plan;
    let (path, method, body) = match op {
        Op::Get | Op::Cas => (pick(&plan.keys, rng), Method::GET, Bytes::new()),
        Op::Put => (
            pick(&plan.keys, rng),
            plan.write.clone(),
            value(shared, rng),
        ),
        Op::List => (&plan.list, Method::GET, Bytes::new()),
    };
    (path, request(shared, method, path, body))
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
