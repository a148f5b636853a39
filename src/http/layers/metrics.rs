//! Request metrics: how many requests are being served, and how long each
//! took, by method, route template (never the path itself, which holds keys)
//! and status, as OpenTelemetry's HTTP server conventions name them. Every
//! label comes from a fixed list, so each series' handle is made once and a
//! request records without a lookup.

use std::future::Future;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use metrics::{gauge, histogram, Gauge, Histogram};

use crate::http::response::ResBody;
use crate::http::router::ROUTES;
use crate::telemetry::registry::{Handles, ACTIVE_REQUESTS, REQUEST_DURATION};

/// Method labels: the methods of HTTP as they are, any other `_OTHER`, so a
/// client cannot mint label values.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];
/// Status labels: the codes hulykvs answers with, any other `other`.
const STATUSES: [(u16, &str); 15] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (412, "412"),
    (413, "413"),
    (500, "500"),
    (503, "503"),
    (0, "other"),
];
const SERIES: usize = METHODS.len() * ROUTES.len();

static ACTIVE: Handles<Gauge, SERIES> = Handles::new();
static DURATION: Handles<Histogram, { SERIES * STATUSES.len() }> = Handles::new();

/// Runs `next`, counting the request as active meanwhile and recording its
/// duration to the response head under `route` (an index of [`ROUTES`]).
pub async fn layer<F, Fut>(route: usize, req: Request<Incoming>, next: F) -> Response<ResBody>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<ResBody>>,
{
    let method = method_index(req.method());
    let series = method * ROUTES.len() + route;
    let started = Instant::now();
    let active = Active::enter(ACTIVE.get(series, || {
        gauge!(
            ACTIVE_REQUESTS,
            "http_request_method" => METHODS[method],
            "http_route" => ROUTES[route]
        )
    }));
    let response = next(req).await;
    drop(active);
    let status = status_index(response.status().as_u16());
    DURATION
        .get(series * STATUSES.len() + status, || {
            histogram!(
                REQUEST_DURATION,
                "http_request_method" => METHODS[method],
                "http_route" => ROUTES[route],
                "http_response_status_code" => STATUSES[status].1
            )
        })
        .record(started.elapsed().as_secs_f64());
    response
}

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn status_index(code: u16) -> usize {
    STATUSES
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(STATUSES.len() - 1)
}

/// One active request; leaves the gauge when dropped, also when the client
/// goes away mid-request and the request's future is dropped.
struct Active<'g>(&'g Gauge);

impl<'g> Active<'g> {
    fn enter(gauge: &'g Gauge) -> Active<'g> {
        gauge.increment(1.0);
        Active(gauge)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(METHODS[method_index(&Method::GET)], "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(METHODS[method_index(&odd)], "_OTHER");
        assert_eq!(STATUSES[status_index(204)].1, "204");
        assert_eq!(STATUSES[status_index(418)].1, "other");
    }
}
