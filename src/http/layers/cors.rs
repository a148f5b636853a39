//! CORS (SPEC §10): browsers may call the API from the origins
//! `HULY_CORS_ORIGINS` allows (any by default, with credentials, as the
//! previous service did). A preflight `OPTIONS` on a data route is answered
//! here, without a token; every other response to an allowed origin carries
//! the headers a script needs to read it. Requests from other origins, or
//! without `Origin`, pass through untouched.

use std::future::Future;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::CorsOrigins;
use crate::http::response::{empty, ResBody};

/// The response headers a script may read: what the API answers with beyond
/// the headers every browser shows.
const EXPOSED: &str = "ETag, Huly-Revision, Huly-Expire-At, Huly-TTL, Huly-Previous-ETag";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "3600";

/// Answers a preflight from an allowed origin on a route with `methods`
/// (from `allowed`, given the path; `None`: no data route), or runs `next`
/// and adds the CORS headers to what it answers.
pub async fn layer<F, Fut>(
    origins: &CorsOrigins,
    allowed: impl FnOnce(&str) -> Option<&'static str>,
    req: Request<Incoming>,
    next: F,
) -> Response<ResBody>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<ResBody>>,
{
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| o.to_str().is_ok_and(|o| origins.allows(o)))
        .cloned();
    let Some(origin) = origin else {
        return next(req).await;
    };
    if req.method() == Method::OPTIONS {
        if let Some(methods) = allowed(req.uri().path()) {
            return preflight(origin, methods, req.headers());
        }
    }
    let mut response = next(req).await;
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    response
}

/// `204` with what the browser asked to use: the route's methods and the
/// request headers it named.
fn preflight(origin: HeaderValue, methods: &'static str, request: &HeaderMap) -> Response<ResBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    response
}

/// The headers every CORS answer carries: the origin reflected, credentials,
/// and `Vary: Origin` (added to any `Vary` already there), so a cache never
/// serves one origin's answer to another.
fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
