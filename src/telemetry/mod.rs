//! What hulykvs tells the people who run it: log lines, human or JSON
//! ([`logs`]); Prometheus metrics and the registry `/metrics` renders
//! ([`registry`]); and traces over OTLP ([`traces`]). The store times its own
//! operations (`store::instrumented`).
//! No log line, label or span ever holds a value, a token, or (as a label) a
//! key, namespace or workspace.

pub mod log_buffer;
pub mod logs;
pub mod registry;
pub mod traces;
