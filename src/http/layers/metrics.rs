//! Request metrics: how many requests are being served, and how long each
//! took, by method, route template (never the path itself, which holds keys)
//! and status, as OpenTelemetry's HTTP server conventions name them.

use std::future::Future;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use metrics::{gauge, histogram, Gauge};

use crate::http::response::ResBody;
use crate::telemetry::registry::{ACTIVE_REQUESTS, REQUEST_DURATION};

/// Runs `next`, counting the request as active meanwhile and recording its
/// duration to the response head under `route`.
pub async fn layer<F, Fut>(
    route: &'static str,
    req: Request<Incoming>,
    next: F,
) -> Response<ResBody>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<ResBody>>,
{
    let method = method_label(req.method());
    let started = Instant::now();
    let active = Active::enter(gauge!(
        ACTIVE_REQUESTS,
        "http_request_method" => method,
        "http_route" => route
    ));
    let response = next(req).await;
    drop(active);
    histogram!(
        REQUEST_DURATION,
        "http_request_method" => method,
        "http_route" => route,
        "http_response_status_code" => status_label(response.status().as_u16())
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the methods of HTTP as they are, any other
/// `_OTHER`, so a client cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// A status code as a label, without an allocation for the common ones.
fn status_label(code: u16) -> &'static str {
    const CODES: &[(u16, &str)] = &[
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
    ];
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("other", |(_, label)| label)
}

/// One active request; leaves the gauge when dropped, also when the client
/// goes away mid-request and the request's future is dropped.
struct Active(Gauge);

impl Active {
    fn enter(gauge: Gauge) -> Active {
        gauge.increment(1.0);
        Active(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "_OTHER");
        assert_eq!(status_label(204), "204");
        assert_eq!(status_label(418), "other");
    }
}
