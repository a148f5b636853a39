//! Logging to stderr: `RUST_LOG` filters (default `info`), and
//! `HULY_LOG_FORMAT` picks the human format or one JSON object per line.

use std::io::IsTerminal;

use crate::config::LogFormat;

/// Installs the process's log subscriber; call once, before the first line.
pub fn init(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // tokio-postgres logs every statement's parameters, values included, at
    // debug: that target stays at info whatever RUST_LOG asks for.
    if let Ok(quiet) = "tokio_postgres::query=info".parse() {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
