//! `hulykvs bench --workload watch`: `--connections` Server-Sent Event
//! streams of one namespace (on `--watch-url`, another instance, when
//! given) while writers PUT at a steady `--rate`. Reports the events
//! delivered per second and the delivery latency, from the moment a write
//! was acknowledged (0 when its event arrived first) and from the moment it
//! was sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::BenchArgs;
use super::plan::BENCH_WORKSPACE;
use crate::cli::flags::bearer_token;
use crate::config::parse_duration;
use crate::exit::Failure;

/// Writes in flight at once, at most.
const WRITERS: u32 = 16;
/// Streams one HTTP/2 connection carries (the service allows 256).
const STREAMS_PER_H2: u32 = 200;
/// Streams being opened at once, at most: as a fleet of clients starting
/// up would, not all in the same millisecond.
const OPENING: usize = 256;

/// What a watch run measured.
#[derive(Debug, Serialize)]
pub struct WatchReport {
    pub streams: u32,
    pub streams_opened: u32,
    pub writes: u64,
    pub events: u64,
    pub events_per_sec: f64,
    pub after_ack_p50_ms: f64,
    pub after_ack_p99_ms: f64,
    pub after_send_p50_ms: f64,
    pub after_send_p99_ms: f64,
    /// Events a stream never received (each stream should get every write).
    pub missing: u64,
}

/// When each write was sent and acknowledged, by revision.
type Sent = Arc<Mutex<HashMap<u64, (Instant, Instant)>>>;

pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    let duration = parse_duration(&args.duration)
        .map_err(|why| Failure::usage(format!("--duration: {why}")))?;
    let token = bearer_token(
        args.token.as_ref(),
        args.token_secret.as_ref(),
        "hulykvs-bench",
        Duration::from_secs(24 * 3600),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1) as usize)
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(execute(args, duration, token))?;
    let text = if args.json {
        serde_json::to_string(&report).map_err(|e| Failure::error(e.to_string()))? + "\n"
    } else {
        format!(
            "watch: {} streams ({} opened), {} writes, {} events delivered, {:.0} events/s\n\
             latency after ack: p50 {:.2} ms, p99 {:.2} ms\n\
             latency after send: p50 {:.2} ms, p99 {:.2} ms\n\
             missing events: {}\n",
            report.streams,
            report.streams_opened,
            report.writes,
            report.events,
            report.events_per_sec,
            report.after_ack_p50_ms,
            report.after_ack_p99_ms,
            report.after_send_p50_ms,
            report.after_send_p99_ms,
            report.missing,
        )
    };
    print!("{text}");
    Ok(())
}

async fn execute(
    args: &BenchArgs,
    duration: Duration,
    token: String,
) -> Result<WatchReport, Failure> {
    let base = args.url.trim_end_matches('/').to_owned();
    let watch_base = args
        .watch_url
        .as_deref()
        .unwrap_or(&base)
        .trim_end_matches('/')
        .to_owned();
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| "bench-watch".to_owned());
    let ns_path = format!("/api2/{BENCH_WORKSPACE}/{namespace}");
    let client = new_client(false)?;
    // HTTP/2: one client (so one connection) per STREAMS_PER_H2 streams.
    let h2_clients = match args.http2 {
        true => (0..args.connections.div_ceil(STREAMS_PER_H2))
            .map(|_| new_client(true))
            .collect::<Result<Vec<_>, _>>()?,
        false => Vec::new(),
    };
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel::<bool>(1024);
    let stop = Arc::new(tokio::sync::Notify::new());
    let opening = Arc::new(tokio::sync::Semaphore::new(OPENING));
    let mut streams = Vec::new();
    for i in 0..args.connections {
        let url = format!("{watch_base}{ns_path}?watch");
        let stream_client = match h2_clients.get((i / STREAMS_PER_H2) as usize) {
            Some(h2) => h2.clone(),
            None => client.clone(),
        };
        streams.push(tokio::spawn(stream(
            stream_client,
            url,
            token.clone(),
            ready_tx.clone(),
            Arc::clone(&stop),
            Arc::clone(&opening),
        )));
    }
    drop(ready_tx);
    let mut opened = 0;
    for _ in 0..args.connections {
        if let Some(true) = ready.recv().await {
            opened += 1;
        }
    }
    eprintln!(
        "bench: {opened} of {} streams open; writing for {duration:?}",
        args.connections
    );
    let sent: Sent = Arc::default();
    let writes = write_at_rate(&client, &base, &ns_path, &token, args.rate, duration, &sent).await;
    // Let the last events arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_waiters();
    let mut received = Vec::new();
    for s in streams {
        if let Ok(events) = s.await {
            received.push(events);
        }
    }
    Ok(summarize(
        args.connections,
        opened,
        writes,
        duration,
        &sent,
        &received,
    ))
}

fn new_client(http2: bool) -> Result<reqwest::Client, Failure> {
    let builder = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX);
    let builder = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder
    };
    builder.build().map_err(|e| Failure::error(e.to_string()))
}

/// One stream: the instant each event arrived, by revision.
async fn stream(
    client: reqwest::Client,
    url: String,
    token: String,
    ready: tokio::sync::mpsc::Sender<bool>,
    stop: Arc<tokio::sync::Notify>,
    opening: Arc<tokio::sync::Semaphore>,
) -> Vec<(u64, Instant)> {
    let mut got = Vec::new();
    let mut permit = opening.acquire_owned().await.ok();
    let resp = client.get(url).bearer_auth(token).send().await;
    let mut resp = match resp {
        Ok(resp) if resp.status().is_success() => resp,
        _ => {
            let _ = ready.send(false).await;
            return got;
        }
    };
    let mut synced = false;
    let mut buf = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = resp.chunk() => chunk,
            () = stop.notified() => break,
        };
        let Ok(Some(chunk)) = chunk else { break };
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            if frame.starts_with(b"event: sync") && !synced {
                synced = true;
                permit.take();
                let _ = ready.send(true).await;
            } else if let Some(id) = frame.strip_prefix(b"id: ") {
                let digits: Vec<u8> = id
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect();
                if let Some(revision) = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                {
                    got.push((revision, now));
                }
            }
        }
    }
    got
}

/// PUTs at `rate` per second for `duration`, at most [`WRITERS`] in flight;
/// records when each was sent and acknowledged.
async fn write_at_rate(
    client: &reqwest::Client,
    base: &str,
    ns_path: &str,
    token: &str,
    rate: u32,
    duration: Duration,
    sent: &Sent,
) -> u64 {
    if rate == 0 {
        tokio::time::sleep(duration).await;
        return 0;
    }
    let every = Duration::from_secs_f64(1.0 / f64::from(rate));
    let limit = Arc::new(tokio::sync::Semaphore::new(WRITERS as usize));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = Instant::now() + duration;
    let mut n = 0u64;
    let mut tasks = Vec::new();
    while Instant::now() < end {
        ticker.tick().await;
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            break;
        };
        let request = client
            .put(format!("{base}{ns_path}/{}", n % 1000))
            .bearer_auth(token)
            .body(format!("value-{n}"));
        let sent = Arc::clone(sent);
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            if let Ok(resp) = request.send().await {
                let acked = Instant::now();
                let revision = resp
                    .headers()
                    .get("huly-revision")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                if let Some(revision) = revision {
                    sent.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(revision, (at, acked));
                }
            }
            drop(permit);
        }));
        n += 1;
    }
    for task in tasks {
        let _ = task.await;
    }
    n
}

fn summarize(
    streams: u32,
    opened: u32,
    writes: u64,
    duration: Duration,
    sent: &Sent,
    received: &[Vec<(u64, Instant)>],
) -> WatchReport {
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let new_histogram = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).ok();
    let (mut after_ack, mut after_send) = (new_histogram(), new_histogram());
    let mut events = 0u64;
    let mut missing = 0u64;
    for stream in received.iter().filter(|s| !s.is_empty() || writes == 0) {
        let mut seen = 0u64;
        for (revision, at) in stream {
            let Some((sent_at, acked)) = sent.get(revision) else {
                continue;
            };
            seen += 1;
            let micros = |from: &Instant| at.saturating_duration_since(*from).as_micros() as u64;
            if let (Some(h1), Some(h2)) = (after_ack.as_mut(), after_send.as_mut()) {
                let _ = h1.record(micros(acked).max(1));
                let _ = h2.record(micros(sent_at).max(1));
            }
        }
        events += stream.len() as u64;
        missing += (sent.len() as u64).saturating_sub(seen);
    }
    let ms = |h: &Option<Histogram<u64>>, q: f64| {
        h.as_ref()
            .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
    };
    WatchReport {
        streams,
        streams_opened: opened,
        writes,
        events,
        events_per_sec: events as f64 / duration.as_secs_f64().max(0.001),
        after_ack_p50_ms: ms(&after_ack, 0.5),
        after_ack_p99_ms: ms(&after_ack, 0.99),
        after_send_p50_ms: ms(&after_send, 0.5),
        after_send_p99_ms: ms(&after_send, 0.99),
        missing,
    }
}
