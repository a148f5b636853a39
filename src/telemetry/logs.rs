//! Logging to stderr: `RUST_LOG` filters (default `info`), and
//! `HULY_LOG_FORMAT` picks the human format or one JSON object per line (with
//! the current span's fields, `trace_id` among them, while tracing). With
//! traces on, the spans also go to OpenTelemetry, whatever `RUST_LOG` says.
//! A request thread's lines are written together when it idles
//! (`telemetry::log_buffer`).

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use super::traces::Tracing;
use crate::config::LogFormat;

/// Installs the process's subscriber; call once, before the first line.
pub fn init(format: LogFormat, tracing: Option<&Tracing>) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // tokio-postgres logs every statement's parameters, values included, at
    // debug: that target stays at info whatever RUST_LOG asks for.
    if let Ok(quiet) = "tokio_postgres::query=info".parse() {
        filter = filter.add_directive(quiet);
    }
    let lines = tracing_subscriber::fmt::layer().with_writer(super::log_buffer::Stderr);
    let lines = match format {
        LogFormat::Text => lines
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    // Spans only: log lines (which may hold a key, in a path) stay out of the
    // traces, as do the source locations and thread names of every span.
    let spans = tracing.map(|t| {
        tracing_opentelemetry::layer()
            .with_tracer(t.tracer())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target("hulykvs", Level::INFO))
            .with_filter(filter_fn(|meta| meta.is_span()))
    });
    tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .init();
}
