//! The router and the handlers: one `match` on method and path, then parsed,
//! validated input for each handler. Every failure becomes an [`ApiError`],
//! turned into a response in [`error_response`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::{Claims, Verifier};
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::store::{
    DeleteCondition, DeleteOutcome, ItemRef, ListQuery, NewValue, PutCondition, PutOutcome, Store,
    DEFAULT_CONTENT_TYPE,
};
use crate::wire::{self, ETag, ErrorBody, KeyList, TagCondition};

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE: usize = 255;
/// Longest key (and prefix), in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest `limit` of a paged listing.
pub const MAX_LIMIT: usize = 10_000;
/// Keys fetched per database round trip while streaming an unbounded listing.
const LIST_CHUNK: usize = 1000;

/// The error type of response bodies (a streamed listing can fail half way).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body.
pub type ResBody = UnsyncBoxBody<Bytes, BodyError>;

/// What every request handler shares.
pub struct AppState<S> {
    pub store: S,
    verifier: Verifier,
    payload_limit: u64,
    default_workspace: Uuid,
    body_timeout: Duration,
    /// Set once migrations have been applied; `/readyz` answers 503 before.
    pub migrated: AtomicBool,
}

impl<S: Store> AppState<S> {
    /// State for `store` under `config`; not ready until [`AppState::migrated`] is set.
    pub fn new(store: S, config: &ServeConfig) -> Self {
        AppState {
            store,
            verifier: Verifier::new(&config.token_secret),
            payload_limit: config.payload_limit,
            default_workspace: config.default_workspace,
            body_timeout: config.body_timeout,
            migrated: AtomicBool::new(false),
        }
    }
}

/// Which API a data route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/api/…`: the default workspace, any valid token, plain upserts.
    Legacy,
    /// `/api2/{workspace}/…`
    V2,
}

/// A data route before validation: raw, still percent-encoded parts of the path.
struct Target<'a> {
    api: Api,
    workspace_raw: Option<&'a str>,
    namespace_raw: &'a str,
    /// `None` for a namespace listing.
    key_raw: Option<&'a str>,
}

/// Answers one request. Never fails: errors are responses.
pub async fn handle<S: Store>(
    state: Arc<AppState<S>>,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let head = req.method() == Method::HEAD;
    match route(&state, req).await {
        Ok(response) => response,
        Err(err) => error_response(&err, head),
    }
}

async fn route<S: Store>(
    state: &Arc<AppState<S>>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match path.as_str() {
        "/status" | "/livez" => {
            only(&method, &[Method::GET, Method::HEAD], "GET, HEAD")?;
            return Ok(text(StatusCode::OK, "ok"));
        }
        "/readyz" => {
            only(&method, &[Method::GET, Method::HEAD], "GET, HEAD")?;
            return readyz(state).await;
        }
        _ => {}
    }
    let target = parse_target(&path).ok_or(ApiError::NoRoute)?;
    let allowed: (&[Method], &str) = match (target.api, target.key_raw.is_some()) {
        (_, false) => (&[Method::GET, Method::HEAD], "GET, HEAD"),
        (Api::V2, true) => (
            &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
            "GET, HEAD, PUT, DELETE",
        ),
        (Api::Legacy, true) => (
            &[Method::GET, Method::HEAD, Method::POST, Method::DELETE],
            "GET, HEAD, POST, DELETE",
        ),
    };
    only(&method, allowed.0, allowed.1)?;

    // Authentication and authorization come before anything is read or parsed further.
    let claims = state.verifier.verify_header(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    )?;
    let workspace = match target.workspace_raw {
        None => state.default_workspace,
        Some(raw) => authorize(&claims, raw)?,
    };
    let namespace = decode_part(target.namespace_raw, "namespace", MAX_NAMESPACE)?;

    let Some(key_raw) = target.key_raw else {
        let query = ListParams::parse(req.uri().query().unwrap_or(""))?;
        let shown_workspace = target.workspace_raw.map(str::to_owned);
        return list(
            state,
            workspace,
            shown_workspace,
            namespace,
            query,
            method == Method::HEAD,
        )
        .await;
    };
    check_key_segments(key_raw)?;
    let key = decode_part(key_raw, "key", MAX_KEY)?;
    let item = ItemRef {
        workspace,
        namespace: &namespace,
        key: &key,
    };
    match method {
        Method::GET | Method::HEAD => get(state, item, req.headers(), method == Method::HEAD).await,
        Method::DELETE => {
            let cond = match target.api {
                Api::Legacy => DeleteCondition::Always,
                Api::V2 => delete_condition(req.headers())?,
            };
            delete(state, item, cond).await
        }
        _ => {
            let cond = match target.api {
                Api::Legacy => PutCondition::Always,
                Api::V2 => put_condition(req.headers())?,
            };
            let content_type = content_type(req.headers())?;
            let value = read_body(state, req).await?;
            put(state, item, NewValue::new(value, content_type), cond).await
        }
    }
}

/// Splits a data path into its raw parts, or `None` when no route matches.
fn parse_target(path: &str) -> Option<Target<'_>> {
    if let Some(rest) = path.strip_prefix("/api/") {
        let (namespace_raw, key_raw) = split_key(rest);
        return Some(Target {
            api: Api::Legacy,
            workspace_raw: None,
            namespace_raw,
            key_raw,
        });
    }
    let rest = path.strip_prefix("/api2/")?;
    let (workspace_raw, rest) = rest.split_once('/')?;
    let (namespace_raw, key_raw) = split_key(rest);
    Some(Target {
        api: Api::V2,
        workspace_raw: Some(workspace_raw),
        namespace_raw,
        key_raw,
    })
}

/// `ns` → listing; `ns/` → listing; `ns/a/b` → key `a/b`.
fn split_key(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        None | Some((_, "")) => (rest.strip_suffix('/').unwrap_or(rest), None),
        Some((namespace, key)) => (namespace, Some(key)),
    }
}

fn only(method: &Method, allowed: &[Method], allow: &'static str) -> Result<(), ApiError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

fn authorize(claims: &Claims, workspace_raw: &str) -> Result<Uuid, ApiError> {
    let text = wire::percent_decode(workspace_raw)
        .map_err(|_| ApiError::bad_request("invalid_workspace", "workspace is not a UUID"))?;
    let workspace = Uuid::parse_str(&text).map_err(|_| {
        ApiError::bad_request(
            "invalid_workspace",
            format!("workspace {text:?} is not a UUID"),
        )
    })?;
    if !claims.may_use(workspace) {
        return Err(ApiError::Forbidden(text));
    }
    Ok(workspace)
}

/// A raw key path may not hold empty, `.` or `..` segments: proxies and clients
/// rewrite those, so such a key could not be addressed reliably. Percent-encode them.
fn check_key_segments(key_raw: &str) -> Result<(), ApiError> {
    if key_raw
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(ApiError::bad_request(
            "invalid_key",
            "key path segments may not be empty, \".\" or \"..\"; percent-encode such keys",
        ));
    }
    Ok(())
}

/// Percent-decodes a namespace or key and checks its length and content.
fn decode_part(raw: &str, what: &'static str, max: usize) -> Result<String, ApiError> {
    let code = if what == "key" {
        "invalid_key"
    } else {
        "invalid_namespace"
    };
    let text = wire::percent_decode(raw)
        .map_err(|e| ApiError::bad_request(code, format!("{what}: {e}")))?;
    check_text(&text, what, code, 1, max)?;
    Ok(text)
}

fn check_text(
    text: &str,
    what: &str,
    code: &'static str,
    min: usize,
    max: usize,
) -> Result<(), ApiError> {
    if text.len() < min {
        return Err(ApiError::bad_request(code, format!("{what} is empty")));
    }
    if text.len() > max {
        return Err(ApiError::bad_request(
            code,
            format!("{what} is {} bytes, longer than {max}", text.len()),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::bad_request(
            code,
            format!("{what} contains a NUL byte"),
        ));
    }
    Ok(())
}

fn header_text<'h>(
    headers: &'h HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value.to_str().map(Some).map_err(|_| {
        ApiError::bad_request("invalid_header", format!("{name} is not visible ASCII"))
    })
}

fn tag_condition(
    headers: &HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<TagCondition>, ApiError> {
    let Some(text) = header_text(headers, name)? else {
        return Ok(None);
    };
    TagCondition::parse(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_etag", format!("{name}: {e}")))
}

fn put_condition(headers: &HeaderMap) -> Result<PutCondition, ApiError> {
    let if_match = tag_condition(headers, &header::IF_MATCH)?;
    let if_none_match = tag_condition(headers, &header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "conflicting_preconditions",
            "If-Match and If-None-Match cannot be combined",
        )),
        (None, None) => Ok(PutCondition::Always),
        (None, Some(TagCondition::Any)) => Ok(PutCondition::IfAbsent),
        (None, Some(TagCondition::List(_))) => Err(ApiError::bad_request(
            "invalid_precondition",
            "If-None-Match on PUT accepts only *",
        )),
        (Some(TagCondition::Any), None) => Ok(PutCondition::IfExists),
        (Some(TagCondition::List(tags)), None) => {
            Ok(PutCondition::IfMatch(TagCondition::strong_digests(&tags)))
        }
    }
}

fn delete_condition(headers: &HeaderMap) -> Result<DeleteCondition, ApiError> {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return Err(ApiError::bad_request(
            "invalid_precondition",
            "If-None-Match is not supported on DELETE",
        ));
    }
    Ok(match tag_condition(headers, &header::IF_MATCH)? {
        None => DeleteCondition::Always,
        Some(TagCondition::Any) => DeleteCondition::IfExists,
        Some(TagCondition::List(tags)) => {
            DeleteCondition::IfMatch(TagCondition::strong_digests(&tags))
        }
    })
}

fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    match header_text(headers, &header::CONTENT_TYPE)? {
        None => Ok(DEFAULT_CONTENT_TYPE.to_owned()),
        Some(t) if t.trim().is_empty() => Ok(DEFAULT_CONTENT_TYPE.to_owned()),
        Some(t) if t.len() > 255 => Err(ApiError::bad_request(
            "invalid_header",
            "Content-Type is longer than 255 bytes",
        )),
        Some(t) => Ok(t.trim().to_owned()),
    }
}

/// Reads the whole body, refusing it from `Content-Length` before reading when
/// that is over the limit, and while streaming otherwise.
async fn read_body<S: Store>(
    state: &AppState<S>,
    req: Request<Incoming>,
) -> Result<Bytes, ApiError> {
    let limit = state.payload_limit;
    let declared = match header_text(req.headers(), &header::CONTENT_LENGTH)? {
        None => None,
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_header", "Content-Length is not a number")
        })?),
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let capacity = declared.unwrap_or(0).min(limit) as usize;
    let mut body = req.into_body();
    let read = async {
        let mut buf = BytesMut::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::BodyIncomplete)?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(state.body_timeout, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

async fn get<S: Store>(
    state: &AppState<S>,
    item: ItemRef<'_>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let if_none_match = tag_condition(headers, &header::IF_NONE_MATCH)?;
    let entry = state.store.get(item).await?.ok_or(ApiError::NotFound)?;
    let etag = ETag(entry.md5);
    let etag_value = header_value(&etag.header_value());
    if if_none_match.is_some_and(|c| c.matches_weakly(&etag)) {
        return Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag_value)
            .body(empty())
            .unwrap_or_else(|_| plain_500()));
    }
    let content_type = entry
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::ETAG, etag_value)
        .header(header::CONTENT_TYPE, content_type);
    let response = if head {
        builder
            .header(header::CONTENT_LENGTH, entry.value.len())
            .body(empty())
    } else {
        builder.body(full(entry.value))
    };
    Ok(response.unwrap_or_else(|_| plain_500()))
}

async fn put<S: Store>(
    state: &AppState<S>,
    item: ItemRef<'_>,
    value: NewValue,
    cond: PutCondition,
) -> Result<Response<ResBody>, ApiError> {
    let etag = ETag(value.md5);
    let status = match state.store.put(item, value, cond).await? {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Stored => StatusCode::NO_CONTENT,
        PutOutcome::PreconditionFailed => return Err(ApiError::PreconditionFailed),
    };
    Ok(Response::builder()
        .status(status)
        .header(header::ETAG, header_value(&etag.header_value()))
        .body(empty())
        .unwrap_or_else(|_| plain_500()))
}

async fn delete<S: Store>(
    state: &AppState<S>,
    item: ItemRef<'_>,
    cond: DeleteCondition,
) -> Result<Response<ResBody>, ApiError> {
    match state.store.delete(item, cond).await? {
        DeleteOutcome::Deleted => Ok(status_only(StatusCode::NO_CONTENT)),
        DeleteOutcome::NotFound => Err(ApiError::NotFound),
        DeleteOutcome::PreconditionFailed => Err(ApiError::PreconditionFailed),
    }
}

/// The query of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListParams {
    prefix: String,
    limit: Option<usize>,
    /// The key to continue after, decoded from `cursor`.
    after: Option<String>,
}

impl ListParams {
    /// Parses `application/x-www-form-urlencoded` (`+` is a space); unknown names are ignored.
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut params = ListParams::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = wire::percent_decode(&raw.replace('+', " ")).map_err(|e| {
                ApiError::bad_request("invalid_query", format!("query parameter {name:?}: {e}"))
            })?;
            match name {
                "prefix" => {
                    check_text(&value, "prefix", "invalid_prefix", 0, MAX_KEY)?;
                    params.prefix = value;
                }
                "limit" => {
                    let limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_limit",
                                format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                    params.limit = Some(limit);
                }
                "cursor" => {
                    let after = wire::decode_cursor(&value).ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            "cursor is not one this service issued",
                        )
                    })?;
                    params.after = Some(after);
                }
                _ => {}
            }
        }
        Ok(params)
    }
}

async fn list<S: Store>(
    state: &Arc<AppState<S>>,
    workspace: Uuid,
    shown_workspace: Option<String>,
    namespace: String,
    params: ListParams,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let page = params.limit.unwrap_or(LIST_CHUNK);
    let mut keys = state
        .store
        .list(ListQuery {
            workspace,
            namespace: &namespace,
            prefix: &params.prefix,
            after: params.after.as_deref(),
            limit: page + 1,
        })
        .await?;
    let more = keys.len() > page;
    keys.truncate(page);
    if more && params.limit.is_none() {
        return Ok(stream_list(
            state,
            workspace,
            shown_workspace,
            namespace,
            params.prefix,
            keys,
            head,
        ));
    }
    let cursor = match (more, keys.last()) {
        (true, Some(last)) => Some(wire::encode_cursor(last)),
        _ => None,
    };
    let body = KeyList {
        workspace: shown_workspace,
        namespace,
        count: keys.len(),
        keys,
        cursor,
    };
    json_response(StatusCode::OK, &body, head)
}

/// Streams an unbounded listing chunk by chunk, so the namespace is never held
/// in memory. The JSON holds the same fields, with `count` after the keys.
fn stream_list<S: Store>(
    state: &Arc<AppState<S>>,
    workspace: Uuid,
    shown_workspace: Option<String>,
    namespace: String,
    prefix: String,
    first: Vec<String>,
    head: bool,
) -> Response<ResBody> {
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json");
    if head {
        return builder.body(empty()).unwrap_or_else(|_| plain_500());
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, BodyError>>(2);
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let mut out = Vec::with_capacity(64 * 1024);
        out.push(b'{');
        if let Some(ws) = &shown_workspace {
            out.extend_from_slice(b"\"workspace\":");
            push_json(&mut out, ws);
            out.push(b',');
        }
        out.extend_from_slice(b"\"namespace\":");
        push_json(&mut out, &namespace);
        out.extend_from_slice(b",\"keys\":[");
        let mut count = 0usize;
        let mut chunk = first;
        loop {
            for key in &chunk {
                if count > 0 {
                    out.push(b',');
                }
                push_json(&mut out, key);
                count += 1;
            }
            let Some(last) = chunk.last().cloned() else {
                break;
            };
            if tx
                .send(Ok(Bytes::from(std::mem::take(&mut out))))
                .await
                .is_err()
            {
                return; // the client went away
            }
            let next = state
                .store
                .list(ListQuery {
                    workspace,
                    namespace: &namespace,
                    prefix: &prefix,
                    after: Some(&last),
                    limit: LIST_CHUNK,
                })
                .await;
            match next {
                Ok(keys) => chunk = keys,
                Err(e) => {
                    tracing::error!(namespace = %namespace, error = %e, "listing failed mid-stream; response aborted");
                    let _ = tx.send(Err(Box::new(e))).await;
                    return;
                }
            }
        }
        out.extend_from_slice(format!("],\"count\":{count}}}").as_bytes());
        let _ = tx.send(Ok(Bytes::from(out))).await;
    });
    builder
        .body(ChannelBody { rx }.boxed_unsync())
        .unwrap_or_else(|_| plain_500())
}

fn push_json(out: &mut Vec<u8>, text: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// A response body fed by a channel; an `Err` aborts the response.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BodyError>>,
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

async fn readyz<S: Store>(state: &AppState<S>) -> Result<Response<ResBody>, ApiError> {
    if !state.migrated.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable("migrations not applied yet".into()));
    }
    state.store.ping().await?;
    Ok(text(StatusCode::OK, "ok"))
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
        ApiError::Unavailable(_) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

fn json_response<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
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

fn text(status: StatusCode, body: &'static str) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| plain_500())
}

fn status_only(status: StatusCode) -> Response<ResBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// A bare 500, for the response builders' impossible failures.
fn plain_500() -> Response<ResBody> {
    status_only(StatusCode::INTERNAL_SERVER_ERROR)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""))
}

fn full(bytes: Bytes) -> ResBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn empty() -> ResBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("/api2/ws/ns/a/b").unwrap();
        assert_eq!(
            (t.api, t.workspace_raw, t.namespace_raw, t.key_raw),
            (Api::V2, Some("ws"), "ns", Some("a/b"))
        );
        let t = parse_target("/api2/ws/ns/").unwrap();
        assert_eq!((t.namespace_raw, t.key_raw), ("ns", None));
        let t = parse_target("/api2/ws/ns").unwrap();
        assert_eq!((t.namespace_raw, t.key_raw), ("ns", None));
        let t = parse_target("/api/ns/k").unwrap();
        assert_eq!(
            (t.api, t.workspace_raw, t.namespace_raw, t.key_raw),
            (Api::Legacy, None, "ns", Some("k"))
        );
        assert!(parse_target("/api2/ws").is_none());
        assert!(parse_target("/other").is_none());
        assert!(parse_target("/api").is_none());
    }

    #[test]
    fn key_segments() {
        assert!(check_key_segments("a/b%2F%2Fc").is_ok());
        assert!(check_key_segments("a/%2E%2E/b").is_ok());
        for bad in ["a//b", "a/../b", "./a", "a/", "/a"] {
            assert!(check_key_segments(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_params() {
        let p = ListParams::parse("prefix=a+b%2Bc&limit=10&cursor=YQ&x=1").unwrap();
        assert_eq!(p.prefix, "a b+c");
        assert_eq!(p.limit, Some(10));
        assert_eq!(p.after.as_deref(), Some("a"));
        for bad in [
            "limit=0",
            "limit=10001",
            "limit=x",
            "cursor=!!",
            "prefix=%00",
            "prefix=%zz",
            "prefix=%FF",
        ] {
            assert!(ListParams::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ListParams::parse("").unwrap(), ListParams::default());
    }

    #[test]
    fn put_conditions() {
        let tag = "\"5d41402abc4b2a76b9719d911017c592\"";
        let mut h = HeaderMap::new();
        assert_eq!(put_condition(&h).unwrap(), PutCondition::Always);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(put_condition(&h).unwrap(), PutCondition::IfAbsent);
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert!(put_condition(&h).is_err(), "both headers");
        h.remove(header::IF_NONE_MATCH);
        assert_eq!(put_condition(&h).unwrap(), PutCondition::IfExists);
        h.insert(
            header::IF_MATCH,
            HeaderValue::from_str(&format!("W/{tag}, {tag}")).unwrap(),
        );
        assert_eq!(
            put_condition(&h).unwrap(),
            PutCondition::IfMatch(vec![ETag::of(b"hello").0])
        );
        h.remove(header::IF_MATCH);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(tag));
        assert!(put_condition(&h).is_err(), "If-None-Match with a tag");
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"nothex\""),
        );
        assert!(put_condition(&h).is_err());
    }
}
