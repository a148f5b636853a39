//! `GET /metrics`: the Prometheus text exposition, without a token (as
//! `/livez`), sampled at each scrape.

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::http::response::{empty, full, ResBody};
use crate::telemetry::registry::{PoolState, Registry};

/// The content type of Prometheus' text format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every series of `registry`, with the pool sampled now; headers only for HEAD.
pub fn render(registry: &Registry, pool: Option<PoolState>, head: bool) -> Response<ResBody> {
    let text = registry.render(pool);
    let length = text.len();
    let mut response = Response::new(if head {
        empty()
    } else {
        full(Bytes::from(text))
    });
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}
