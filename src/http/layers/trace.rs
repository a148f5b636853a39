//! A server span per request, named `{method} {route}` with OpenTelemetry's
//! HTTP attributes, continuing the caller's trace from a W3C `traceparent`.
//! Applied only while traces are exported: otherwise no span is made at all.

use std::future::Future;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tracing::field::Empty;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::http::response::ResBody;

/// Runs `next` inside the request's server span.
pub async fn layer<F, Fut>(
    route: &'static str,
    req: Request<Incoming>,
    next: F,
) -> Response<ResBody>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<ResBody>>,
{
    let method = req.method().as_str().to_owned();
    let name = if route.is_empty() {
        method.clone()
    } else {
        format!("{method} {route}")
    };
    let span = tracing::info_span!(
        target: "hulykvs::http",
        "request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(req.headers()))
    });
    span.set_parent(parent);
    // Recorded on the span so that log lines inside it (JSON) carry them.
    let context = span.context();
    let ids = context.span().span_context().clone();
    span.record("trace_id", ids.trace_id().to_string());
    span.record("span_id", ids.span_id().to_string());
    let response = next(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// The request's headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
