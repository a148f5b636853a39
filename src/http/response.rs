//! Building responses: the body type every handler answers with, JSON and
//! text bodies, and the one place an [`ApiError`] becomes a status, headers
//! and a JSON body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::wire::{ETag, ErrorBody};

/// The error type of response bodies (a streamed listing can fail half way).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body.
pub type ResBody = UnsyncBoxBody<Bytes, BodyError>;

/// A response body fed by a channel; an `Err` aborts the response.
pub(super) struct ChannelBody {
    pub(super) rx: mpsc::Receiver<Result<Bytes, BodyError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

/// The response for an error: status, JSON body (none for HEAD), and the
/// headers some statuses need.
pub fn error_response(err: &ApiError, head: bool) -> Response<ResBody> {
    if let Some(detail) = err.log_detail() {
        tracing::warn!(code = err.code(), detail, "request failed");
    }
    let body = ErrorBody {
        error: err.public_message(),
        code: err.code().to_owned(),
        oldest: match err {
            ApiError::RevisionCompacted { oldest, .. } => Some(*oldest),
            _ => None,
        },
        failed: match err {
            ApiError::OpsFailed(failed) => Some(failed.clone()),
            _ => None,
        },
    };
    let mut response = match json_response(err.status(), &body, head) {
        Ok(r) => r,
        Err(_) => plain_500(),
    };
    let headers = response.headers_mut();
    match err {
        ApiError::Unauthorized(_) => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        ApiError::MethodNotAllowed { allow } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::PayloadTooLarge { .. } | ApiError::BodyIncomplete | ApiError::BodyTimeout => {
            // The rest of the body was not read; the connection cannot be reused.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        ApiError::Unavailable(_) | ApiError::Migrating => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// `body` as JSON with `status`; for HEAD, only its length.
pub(super) fn json_response<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    json_bytes(status, bytes, head)
}

/// JSON already written, with `status`; for HEAD, only its length.
pub(super) fn json_bytes(
    status: StatusCode,
    bytes: Vec<u8>,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    let response = if head {
        builder
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(empty())
    } else {
        builder.body(full(Bytes::from(bytes)))
    };
    response.map_err(|e| ApiError::Internal(e.to_string()))
}

/// `text` as a JSON string, appended to `out`.
pub(super) fn push_json(out: &mut Vec<u8>, text: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `{"workspace":…,"namespace":…` of a listing, with or without values (no
/// workspace in the legacy API); the caller writes the rest of the object.
pub(super) fn open_listing(out: &mut Vec<u8>, shown_workspace: Option<&str>, namespace: &str) {
    out.push(b'{');
    if let Some(ws) = shown_workspace {
        out.extend_from_slice(b"\"workspace\":");
        push_json(out, ws);
        out.push(b',');
    }
    out.extend_from_slice(b"\"namespace\":");
    push_json(out, namespace);
}

/// A short plain-text response.
pub(super) fn text(status: StatusCode, body: &'static str) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| plain_500())
}

/// A response with no body.
pub(super) fn status_only(status: StatusCode) -> Response<ResBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// A bare 500, for the response builders' impossible failures.
pub(super) fn plain_500() -> Response<ResBody> {
    status_only(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `tag` as an `ETag` header value.
pub(super) fn etag_value(tag: &ETag) -> HeaderValue {
    HeaderValue::from_bytes(&tag.quoted()).unwrap_or(HeaderValue::from_static(""))
}

/// A body of `bytes`.
pub(super) fn full(bytes: Bytes) -> ResBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// An empty body.
pub(super) fn empty() -> ResBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}
