//! Traces over OTLP/HTTP, on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; the other standard `OTEL_*`
//! variables apply (`OTEL_SERVICE_NAME`, default `hulykvs`;
//! `OTEL_TRACES_SAMPLER`; `OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`).
//!
//! Spans leave through the SDK's batch processor: a bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048) drained by a thread of its own,
//! so a collector that is down or slow costs a request nothing. A span that
//! finds the queue full is dropped, never waited for, and counted in
//! `hulykvs_trace_spans_dropped_total`; spans the collector refused, in
//! `hulykvs_trace_spans_failed_total`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;

use super::registry::{TRACE_SPANS_DROPPED, TRACE_SPANS_FAILED};

/// Set once spans are exported: until then no layer makes a span at all.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (and so worth making).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The traces of this process, exported until [`Tracing::shutdown`].
pub struct Tracing {
    provider: SdkTracerProvider,
}

/// Whether the environment asks for traces.
pub fn configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
}

impl Tracing {
    /// The exporter and provider the `OTEL_*` variables describe; the error
    /// names the variable that is wrong.
    pub fn from_env() -> Result<Tracing, String> {
        let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_default();
        let protocol = match protocol.trim() {
            "" | "http/protobuf" => Protocol::HttpBinary,
            other => {
                return Err(format!(
                    "invalid OTEL_EXPORTER_OTLP_PROTOCOL: {other:?} is not supported; use http/protobuf"
                ))
            }
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()
            .map_err(|e| format!("invalid OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
        let service = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "hulykvs".to_owned());
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let backlog = Arc::new(AtomicUsize::new(0));
        let exporter = Counting {
            inner: exporter,
            backlog: Arc::clone(&backlog),
        };
        let processor = Admitting {
            inner: BatchSpanProcessor::builder(exporter).build(),
            backlog,
            capacity: queue_size()?,
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Tracing { provider })
    }

    /// A tracer for the `tracing` layer that turns spans into OpenTelemetry's.
    pub fn tracer(&self) -> opentelemetry_sdk::trace::Tracer {
        self.provider.tracer("hulykvs")
    }

    /// Sends what is queued, waiting at most the exporter's timeout.
    pub fn shutdown(self) {
        // Logged, not printed: with HULY_LOG_FORMAT=json every line is JSON, this one too.
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces not all sent at exit");
        }
    }
}

/// The batch processor's queue size, as the SDK reads it.
fn queue_size() -> Result<usize, String> {
    match std::env::var("OTEL_BSP_MAX_QUEUE_SIZE") {
        Err(_) => Ok(2048),
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("invalid OTEL_BSP_MAX_QUEUE_SIZE: {text:?} is not a whole number above 0")
            }),
    }
}

/// The batch processor, admitting at most `capacity` spans between their end
/// and their export: one more is dropped here, and counted, before the SDK's
/// queue (as large) could refuse it silently.
#[derive(Debug)]
struct Admitting {
    inner: BatchSpanProcessor,
    /// Spans ended and not yet exported, counted down by [`Counting`].
    backlog: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for Admitting {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.backlog.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            counter!(TRACE_SPANS_DROPPED).increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting down the backlog by what left it.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    backlog: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let outcome = self.inner.export(batch).await;
        self.backlog.fetch_sub(spans, Ordering::AcqRel);
        if outcome.is_err() {
            counter!(TRACE_SPANS_FAILED).increment(spans as u64);
        }
        outcome
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
