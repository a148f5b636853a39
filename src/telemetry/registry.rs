//! The Prometheus registry: the one recorder of the process's metrics (the
//! `metrics` facade, exposed by `metrics-exporter-prometheus`), the names and
//! buckets of every series, and the rendering `/metrics` answers with.
//!
//! Names follow OpenTelemetry's semantic conventions as Prometheus spells
//! them (`http_server_request_duration_seconds`); hulykvs' own carry the
//! prefix `hulykvs_`. Labels are bounded: methods, route templates, status
//! codes, operation names, pool states; never a key, namespace, workspace,
//! token or value.

use std::sync::OnceLock;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, Counter, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request duration in seconds, by method, route template and status.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Requests being served now, by method and route template.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// Store operation duration in seconds, by operation.
pub const DB_OPERATION_DURATION: &str = "hulykvs_db_operation_duration_seconds";
/// Store operations that failed, by operation and kind (`unavailable`, `internal`).
pub const DB_OPERATION_ERRORS: &str = "hulykvs_db_operation_errors_total";
/// Database connections by state: `idle`, `used`, `max`.
pub const DB_POOL_CONNECTIONS: &str = "hulykvs_db_pool_connections";
/// Requests waiting for a pooled connection now.
pub const DB_POOL_PENDING: &str = "hulykvs_db_pool_pending_requests";
/// Time waited for a pooled connection, in seconds.
pub const DB_POOL_WAIT: &str = "hulykvs_db_pool_wait_seconds";
/// Requests served by one batched statement, by operation.
pub const DB_BATCH_SIZE: &str = "hulykvs_db_batch_size";
/// Spans dropped because the export queue was full.
pub const TRACE_SPANS_DROPPED: &str = "hulykvs_trace_spans_dropped_total";
/// Spans the collector did not take.
pub const TRACE_SPANS_FAILED: &str = "hulykvs_trace_spans_failed_total";
/// Expired values the sweeper removed.
pub const EXPIRED: &str = "hulykvs_expired_total";
/// Change-feed streams (watch) open now.
pub const WATCH_STREAMS: &str = "hulykvs_watch_streams";
/// Change events sent on watch streams.
pub const WATCH_EVENTS: &str = "hulykvs_watch_events_total";
/// Watch streams ended, by reason.
pub const WATCH_ENDS: &str = "hulykvs_watch_stream_ends_total";
/// Tokens accepted, by which configured secret verified them (`current`, `previous`).
pub const TOKENS_ACCEPTED: &str = "hulykvs_tokens_accepted_total";
/// 1, labelled with the running version.
pub const BUILD_INFO: &str = "hulykvs_build_info";

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// OpenTelemetry's advised buckets for `http.server.request.duration`.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// OpenTelemetry's advised buckets for `db.client.operation.duration`.
const DB_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
/// Powers of two up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Connections of a pool at one moment, for [`DB_POOL_CONNECTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub idle: usize,
    pub used: usize,
    pub max: usize,
    /// Requests waiting for a connection.
    pub pending: usize,
}

/// What `/metrics` renders from: the recorder and the process collector.
pub struct Registry {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

/// The process's registry, installed as the global recorder on first use;
/// `None` if another recorder was installed first (then metrics are off).
pub fn registry() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(install).as_ref()
}

fn install() -> Option<Registry> {
    let built = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), HTTP_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(DB_OPERATION_DURATION.to_owned()), DB_BUCKETS)
        })
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DB_POOL_WAIT.to_owned()), DB_BUCKETS))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(DB_BATCH_SIZE.to_owned()), BATCH_BUCKETS)
        })
        .map(PrometheusBuilder::install_recorder);
    let handle = match built {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics are off: cannot install the recorder");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: bad bucket settings");
            return None;
        }
    };
    describe();
    // Histogram samples wait in buckets until upkeep folds them in: without
    // it, and without scrapes, they would grow without bound.
    let upkeep = handle.clone();
    let started = std::thread::Builder::new()
        .name("hulykvs-metrics".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "metrics are off: cannot start their upkeep thread");
        return None;
    }
    let process = metrics_process::Collector::default();
    process.describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Some(Registry { handle, process })
}

/// Metric handles made once per combination of bounded labels, by index, so
/// a hot path records without building a key or looking one up.
pub struct Handles<T, const N: usize>([OnceLock<T>; N]);

impl<T, const N: usize> Handles<T, N> {
    /// No handle made yet.
    pub const fn new() -> Self {
        Handles([const { OnceLock::new() }; N])
    }

    /// The handle at `index`, made by `make` the first time.
    pub fn get(&self, index: usize, make: impl FnOnce() -> T) -> &T {
        self.0[index].get_or_init(make)
    }
}

impl<T, const N: usize> Default for Handles<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one accepted token: verified by `HULY_TOKEN_SECRET_PREVIOUS` when
/// `previous`, else by `HULY_TOKEN_SECRET` (SPEC §22), so an operator sees
/// when the old secret is no longer used.
pub fn count_token(previous: bool) {
    static ACCEPTED: Handles<Counter, 2> = Handles::new();
    let (index, secret) = match previous {
        false => (0, "current"),
        true => (1, "previous"),
    };
    ACCEPTED
        .get(index, || counter!(TOKENS_ACCEPTED, "secret" => secret))
        .increment(1);
}

fn describe() {
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP server requests."
    );
    describe_gauge!(ACTIVE_REQUESTS, "Number of active HTTP server requests.");
    describe_histogram!(
        DB_OPERATION_DURATION,
        Unit::Seconds,
        "Duration of store operations, from the request's view (batching included)."
    );
    describe_counter!(
        DB_OPERATION_ERRORS,
        "Store operations that failed, by kind."
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database connections by state.");
    describe_gauge!(
        DB_POOL_PENDING,
        "Requests waiting for a pooled database connection."
    );
    describe_histogram!(
        DB_POOL_WAIT,
        Unit::Seconds,
        "Time waited for a pooled database connection."
    );
    describe_histogram!(DB_BATCH_SIZE, "Requests served by one batched statement.");
    describe_counter!(EXPIRED, "Expired values the sweeper removed.");
    describe_gauge!(WATCH_STREAMS, "Change-feed streams (watch) open now.");
    describe_counter!(WATCH_EVENTS, "Change events sent on watch streams.");
    describe_counter!(
        WATCH_ENDS,
        "Watch streams ended, by reason (client_gone, too_slow, token_expired, compacted, shutdown, error)."
    );
    describe_counter!(
        TRACE_SPANS_DROPPED,
        "Spans dropped because the export queue was full."
    );
    describe_counter!(
        TRACE_SPANS_FAILED,
        "Spans the trace collector did not take."
    );
    describe_counter!(
        TOKENS_ACCEPTED,
        "Tokens accepted, by which configured secret verified them (current, previous)."
    );
    describe_gauge!(
        BUILD_INFO,
        "1, labelled with the version of hulykvs running."
    );
}

impl Registry {
    /// The Prometheus text exposition of every series, process and pool
    /// figures sampled now.
    pub fn render(&self, pool: Option<PoolState>) -> String {
        self.process.collect();
        if let Some(pool) = pool {
            for (state, n) in [("idle", pool.idle), ("used", pool.used), ("max", pool.max)] {
                gauge!(DB_POOL_CONNECTIONS, "state" => state).set(n as f64);
            }
            gauge!(DB_POOL_PENDING).set(pool.pending as f64);
        }
        self.handle.render()
    }
}
