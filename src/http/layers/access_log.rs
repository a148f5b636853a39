//! One log line per request: method, path, status and duration. Never a
//! value, a header or a token; keys may appear, as part of the path.

use std::future::Future;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::http::response::ResBody;

/// Runs `next` on `req` and logs how it went.
pub async fn layer<F, Fut>(req: Request<Incoming>, next: F) -> Response<ResBody>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<ResBody>>,
{
    // Whether the line is wanted is not asked first: with the per-layer
    // filter of `telemetry::logs`, `tracing::enabled!` answers true even
    // where the line is filtered out. The URI is shared, not copied.
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let response = next(req).await;
    tracing::info!(
        %method,
        path = %uri.path(),
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}
