//! Traces over OTLP/HTTP (issue #11), through the real binary: an OTLP
//! receiver in the test (hyper, decoding the protobuf with
//! `opentelemetry-proto`) gets the server span of a request that came with a
//! `traceparent`, in the caller's trace, named after its route, with a child
//! span per store operation; and a collector that never answers slows no
//! request.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::metrics::{sample, scrape};
use common::process::{spawn_sqlite_server, ServerProcess};
use http_body_util::{BodyExt, Full};
use hulykvs::auth::{mint, Claims};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

const SECRET: &str = "traces-secret";
const WS: &str = "0f0f0f0f-1111-4222-8333-444455556666";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// One received span and the service name of its resource.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

/// An OTLP/HTTP receiver on 127.0.0.1:0 keeping every span it is sent;
/// with `answer: false` it accepts requests and never answers them.
async fn receiver(answer: bool) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&spans);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let kept = Arc::clone(&kept);
                    async move {
                        if !answer {
                            std::future::pending::<()>().await;
                        }
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        for resource in export.resource_spans {
                            let service = resource
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| kv.value.as_ref()?.value.clone())
                                .map(|v| match v {
                                    Value::StringValue(s) => s,
                                    other => format!("{other:?}"),
                                })
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    kept.lock().unwrap().push(Received {
                                        service: service.clone(),
                                        span,
                                    });
                                }
                            }
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, spans)
}

fn server(collector: SocketAddr, dir: &tempfile::TempDir, queue: &str) -> ServerProcess {
    let endpoint = format!("http://{collector}");
    spawn_sqlite_server(
        dir.path(),
        SECRET,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", queue),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
        ],
    )
}

fn token() -> String {
    mint(
        &Claims::system("traces-test", Duration::from_secs(600)),
        SECRET,
    )
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_request_with_a_traceparent_continues_its_trace() {
    let (collector, spans) = receiver(true).await;
    let dir = tempfile::tempdir().unwrap();
    let server = server(collector, &dir, "2048");
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api2/{WS}/ns/traced-key"));
    let resp = client
        .put(&url)
        .bearer_auth(token())
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let name = "PUT /api2/{workspace}/{namespace}/{key}";
    let deadline = Instant::now() + Duration::from_secs(20);
    let (server_span, db_span) = loop {
        let got = spans.lock().unwrap().clone();
        let request = got.iter().find(|r| r.span.name == name).cloned();
        let db = got
            .iter()
            .find(|r| r.span.name == "put" && hex(&r.span.trace_id) == TRACE_ID)
            .cloned();
        if let (Some(request), Some(db)) = (request, db) {
            break (request, db);
        }
        assert!(
            Instant::now() < deadline,
            "no spans named {name:?} and \"put\": {:?}",
            got.iter().map(|r| &r.span.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(server_span.service, "hulykvs");
    assert_eq!(
        hex(&server_span.span.trace_id),
        TRACE_ID,
        "the caller's trace"
    );
    assert_eq!(hex(&server_span.span.parent_span_id), PARENT_ID);
    assert_eq!(server_span.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(db_span.span.parent_span_id, server_span.span.span_id);
    let attributes: Vec<&str> = db_span
        .span
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert!(attributes.contains(&"db.system.name"), "{attributes:?}");
    assert!(attributes.contains(&"db.operation.name"), "{attributes:?}");
    let everything = format!("{server_span:?}{db_span:?}");
    assert!(
        !everything.contains("traced-key"),
        "no key in a span: {everything}"
    );
}

#[tokio::test]
async fn a_collector_that_never_answers_slows_no_request_and_drops_are_counted() {
    let (collector, _spans) = receiver(false).await;
    let dir = tempfile::tempdir().unwrap();
    let server = server(collector, &dir, "16");
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api2/{WS}/ns/key"));
    for i in 0..200 {
        let started = Instant::now();
        let resp = client
            .put(&url)
            .bearer_auth(token())
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        // Waiting on the collector would take its 30 s timeout.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "request {i} took {:?}",
            started.elapsed()
        );
    }
    // Two spans a request, a queue of 16 stuck behind the first export.
    let metrics = scrape(&server.url("/metrics")).await;
    let dropped = sample(&metrics, "hulykvs_trace_spans_dropped_total", &[]);
    assert!(dropped.is_some_and(|n| n >= 300.0), "dropped: {dropped:?}");
}

#[tokio::test]
async fn with_json_logs_even_the_exit_behind_a_hung_collector_is_json() {
    let (collector, _spans) = receiver(false).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector}");
    let mut server = spawn_sqlite_server(
        dir.path(),
        SECRET,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("HULY_LOG_FORMAT", "json"),
        ],
    );
    server.wait_for_migrations();
    let client = reqwest::Client::new();
    for i in 0..5 {
        let resp = client
            .put(server.url(&format!("/api2/{WS}/ns/k{i}")))
            .bearer_auth(token())
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    server.terminate();
    let status = server.wait_for_exit(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // The reader of stderr may still hold the last lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = server.stderr_text();
    while !text.contains("traces not all sent") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = server.stderr_text();
    }
    assert!(text.contains("traces not all sent at exit"), "{text}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}
