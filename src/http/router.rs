//! The router: one `match` on method and path, authentication before anything
//! else is read, then parsed input for the handler of the route. Every failure
//! becomes an [`ApiError`], answered in [`error_response`].

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response};
use uuid::Uuid;

use super::access;
use super::console;
use super::handlers::changes::PollRequest;
use super::handlers::values::ValuesRequest;
use super::handlers::watch::WatchRequest;
use super::handlers::{changes, health, item, list, metrics, prefix, txn, values, watch};
use super::request::{
    check_key_segments, content_type, decode_part, delete_condition, expiry, last_event_id,
    put_condition, read_body, tag_condition, ListParams, MAX_KEY, MAX_NAMESPACE,
};
use super::response::{error_response, ResBody};
use super::state::AppState;
use crate::auth::{now_secs, Claims, SecretUsed};
use crate::error::ApiError;
use crate::store::txn::Replace;
use crate::store::{DeleteCondition, ItemRef, PutCondition, Store, DEFAULT_CONTENT_TYPE};
use crate::telemetry::registry;
use crate::wire;

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
    /// `None` for a namespace listing; `Some("")` for `/ns/`, which lists on
    /// GET and HEAD and names an empty key otherwise.
    key_raw: Option<&'a str>,
}

impl Target<'_> {
    /// Whether `method` on this path asks for the listing of the namespace.
    fn lists(&self, method: &Method) -> bool {
        match self.key_raw {
            None => true,
            Some("") => method == Method::GET || method == Method::HEAD,
            Some(_) => false,
        }
    }

    /// The methods of the route, as a list and as the `Allow` header.
    fn methods(&self) -> (&'static [Method], &'static str) {
        match (self.api, self.key_raw.is_some()) {
            (_, false) => (&[Method::GET, Method::HEAD], "GET, HEAD"),
            (Api::V2, true) => (
                &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
                "GET, HEAD, PUT, DELETE",
            ),
            (Api::Legacy, true) => (
                &[Method::GET, Method::HEAD, Method::POST, Method::DELETE],
                "GET, HEAD, POST, DELETE",
            ),
        }
    }
}

/// The methods a browser may use on the data route at `path` (a CORS
/// preflight), or `None` when `path` is not a data route. An API v2
/// namespace also takes DELETE with `?prefix`, which a preflight cannot
/// tell apart by its path.
pub(super) fn allowed_methods(path: &str) -> Option<&'static str> {
    if workspace_path(path).is_some() {
        return Some("POST");
    }
    parse_target(path).map(|target| match (target.api, target.key_raw) {
        (Api::V2, None) => "GET, HEAD, DELETE",
        _ => target.methods().1,
    })
}

/// Every route template, for metrics and traces; the first is "no route".
pub(super) const ROUTES: [&str; 11] = [
    "",
    "/status",
    "/livez",
    "/readyz",
    "/metrics",
    "/api2/{workspace}/{namespace}",
    "/api2/{workspace}/{namespace}/{key}",
    "/api/{namespace}",
    "/api/{namespace}/{key}",
    "/api2/{workspace}",
    "/console",
];

/// The index in [`ROUTES`] of the route template of `path`, such as
/// `/api2/{workspace}/{namespace}/{key}`; 0 when no route matches.
pub(super) fn route_of(path: &str) -> usize {
    match path {
        "/status" => return 1,
        "/livez" => return 2,
        "/readyz" => return 3,
        "/metrics" => return 4,
        _ => {}
    }
    if console::serves(path) {
        return 10;
    }
    if workspace_path(path).is_some() {
        return 9;
    }
    match parse_target(path) {
        None => 0,
        Some(t) => match (t.api, t.key_raw) {
            (Api::V2, None | Some("")) => 5,
            (Api::V2, Some(_)) => 6,
            (Api::Legacy, None | Some("")) => 7,
            (Api::Legacy, Some(_)) => 8,
        },
    }
}

/// Answers one request. Never fails: errors are responses.
pub(super) async fn handle<S: Store>(
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
            return Ok(health::alive());
        }
        "/readyz" => {
            only(&method, &[Method::GET, Method::HEAD], "GET, HEAD")?;
            return health::ready(state).await;
        }
        "/metrics" => {
            if let Some(registry) = state.metrics {
                only(&method, &[Method::GET, Method::HEAD], "GET, HEAD")?;
                let head = method == Method::HEAD;
                return Ok(metrics::render(registry, state.store.pool_state(), head));
            }
        }
        p if state.console && console::serves(p) => {
            return console::respond(&method, p, req.headers());
        }
        _ => {}
    }
    if let Some(workspace_raw) = workspace_path(&path) {
        // Transactions are rare: their future is boxed where it starts, so
        // that every other request's future, which would hold room for it,
        // stays small (`layers::tests`).
        return Box::pin(workspace_route(state, workspace_raw, req)).await;
    }
    let target = parse_target(&path).ok_or(ApiError::NoRoute)?;
    let (allowed, allow) = target.methods();
    let deletes_prefix = method == Method::DELETE
        && target.api == Api::V2
        && target.key_raw.is_none()
        && names_prefix(req.uri().query());
    if !deletes_prefix {
        only(&method, allowed, allow)?;
    }

    // Authentication and authorization come before anything is read or parsed further.
    let claims = authenticate(state, &req)?;
    let workspace = match target.workspace_raw {
        None => state.default_workspace,
        Some(raw) => authorize(&claims, raw)?,
    };
    if !state.is_migrated() {
        return Err(ApiError::Migrating);
    }
    let namespace = decode_part(target.namespace_raw, "namespace", MAX_NAMESPACE)?;
    access::check(
        state.acl.as_deref(),
        &claims,
        &namespace,
        access::needed(&method),
    )?;
    match target.key_raw {
        Some(key_raw) if !target.lists(&method) => {
            let key = decode_key(key_raw)?;
            let at = ItemRef {
                workspace,
                namespace: &namespace,
                key: &key,
            };
            one_value(state, target.api, at, req).await
        }
        _ => {
            let on = Namespace {
                workspace,
                shown_workspace: target.workspace_raw.map(str::to_owned),
                namespace,
            };
            namespace_route(state, on, deletes_prefix, claims.exp, req).await
        }
    }
}

/// The claims of the request's token, counted by the secret that verified it (SPEC §22).
fn authenticate<S: Store>(
    state: &AppState<S>,
    req: &Request<Incoming>,
) -> Result<Arc<Claims>, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION);
    let accepted = state.verifier.verify_header(header.map(|v| v.as_bytes()))?;
    registry::count_token(accepted.secret == SecretUsed::Previous);
    Ok(accepted.claims)
}

/// `POST /api2/{workspace}?txn`: a transaction (SPEC §13).
async fn workspace_route<S: Store>(
    state: &Arc<AppState<S>>,
    workspace_raw: &str,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, ApiError> {
    only(req.method(), &[Method::POST], "POST")?;
    let claims = authenticate(state, &req)?;
    let workspace = authorize(&claims, workspace_raw)?;
    let asks_txn = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "txn" || p.starts_with("txn=")));
    if !asks_txn {
        return Err(ApiError::bad_request(
            "missing_txn",
            "POST /api2/{workspace} runs a transaction: add ?txn",
        ));
    }
    // The namespaces are in the body; a token no rule is for is refused before it is read.
    access::check_any(state.acl.as_deref(), &claims)?;
    if !state.is_migrated() {
        return Err(ApiError::Migrating);
    }
    txn::transact(state, workspace, &claims, req).await
}

/// The workspace of `/api2/{workspace}` (nothing after it), still encoded.
fn workspace_path(path: &str) -> Option<&str> {
    path.strip_prefix("/api2/")
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// A namespace as a request on its route names it.
struct Namespace {
    workspace: Uuid,
    /// The workspace as the path wrote it (API v2), echoed in JSON.
    shown_workspace: Option<String>,
    namespace: String,
}

/// The routes of a namespace: delete by prefix, watch, long poll, listing.
async fn namespace_route<S: Store>(
    state: &Arc<AppState<S>>,
    on: Namespace,
    deletes_prefix: bool,
    token_exp: Option<u64>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, ApiError> {
    let query = ListParams::parse(req.uri().query().unwrap_or(""))?;
    let head = req.method() == Method::HEAD;
    let Namespace {
        workspace,
        shown_workspace,
        namespace,
    } = on;
    if deletes_prefix {
        return prefix::delete_prefix(state, workspace, &namespace, &query.prefix).await;
    }
    if query.watch {
        let watch = WatchRequest {
            workspace,
            namespace,
            prefix: query.prefix,
            since: last_event_id(req.headers())?.or(query.since),
            expires: token_exp,
        };
        return watch::watch(state, watch, head).await;
    }
    if query.changes {
        let poll = poll_request(workspace, shown_workspace, namespace, query)?;
        return changes::poll(state, poll).await;
    }
    if query.values {
        let request = ValuesRequest {
            workspace,
            shown_workspace,
            namespace,
            params: query,
        };
        return values::list_values(state, request, head).await;
    }
    list::list(state, workspace, shown_workspace, namespace, query, head).await
}

/// Whether a query string holds a `prefix` parameter (empty or not): a
/// DELETE of the namespace needs one.
fn names_prefix(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "prefix" || pair.starts_with("prefix="))
    })
}

/// A long poll's parameters; `since` is required.
fn poll_request(
    workspace: Uuid,
    shown_workspace: Option<String>,
    namespace: String,
    query: ListParams,
) -> Result<PollRequest, ApiError> {
    let since = query.since.ok_or_else(|| {
        ApiError::bad_request(
            "missing_since",
            "?changes needs since=R, the revision to continue after (a listing answers it in Huly-Revision)",
        )
    })?;
    Ok(PollRequest {
        workspace,
        shown_workspace,
        namespace,
        prefix: query.prefix,
        since,
        limit: query.limit,
        wait: query.wait,
    })
}

/// The handler of one value, with the conditions and body its API reads.
/// The legacy API is as lenient as the previous service: it has no
/// conditional writes, and a `Content-Type` or `If-None-Match` it cannot use
/// is ignored rather than refused.
async fn one_value<S: Store>(
    state: &AppState<S>,
    api: Api,
    at: ItemRef<'_>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, ApiError> {
    let store = &*state.store;
    let headers = req.headers();
    match *req.method() {
        Method::GET | Method::HEAD => {
            let if_none_match = match (api, tag_condition(headers, &header::IF_NONE_MATCH)) {
                (Api::Legacy, Err(_)) => None,
                (_, parsed) => parsed?,
            };
            let head = req.method() == Method::HEAD;
            item::get(store, at, if_none_match, head).await
        }
        Method::DELETE => {
            let cond = match api {
                Api::Legacy => DeleteCondition::Always,
                Api::V2 => delete_condition(headers)?,
            };
            if returns_previous(api, headers)? {
                // Boxed, as every rare route's future is (see `route`).
                return Box::pin(item::replace(&state.feed, at, Replace::Delete(cond))).await;
            }
            item::delete(&state.feed, at, cond).await
        }
        _ => {
            let expiry = expiry(headers, state.max_ttl, now_secs() as i64)?;
            let (cond, content_type) = match api {
                Api::Legacy => (
                    PutCondition::Always,
                    content_type(headers).unwrap_or_else(|_| DEFAULT_CONTENT_TYPE.to_owned()),
                ),
                Api::V2 => (put_condition(headers)?, content_type(headers)?),
            };
            let previous = returns_previous(api, headers)?;
            let value = read_body(req, state.payload_limit, state.body_timeout).await?;
            let value = state
                .store
                .new_value(at, value, content_type)
                .expiring(expiry);
            if previous {
                return Box::pin(item::replace(&state.feed, at, Replace::Put(value, cond))).await;
            }
            item::put(&state.feed, at, value, cond).await
        }
    }
}

/// Whether an API v2 write asks for the value it replaces
/// (`Huly-Return: previous`); the legacy API ignores the header.
fn returns_previous(api: Api, headers: &hyper::HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(item::RETURN).filter(|_| api == Api::V2) else {
        return Ok(false);
    };
    match value.to_str().map(str::trim) {
        Ok(text) if text.eq_ignore_ascii_case("previous") => Ok(true),
        _ => Err(ApiError::bad_request(
            "invalid_header",
            "Huly-Return takes only \"previous\"",
        )),
    }
}

/// Decodes the key of a path; `/ns/` with a method that writes names an empty key.
fn decode_key(key_raw: &str) -> Result<String, ApiError> {
    if key_raw.is_empty() {
        return Err(ApiError::bad_request("invalid_key", "key is empty"));
    }
    check_key_segments(key_raw)?;
    decode_part(key_raw, "key", MAX_KEY)
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

/// `ns` → no key; `ns/` → the empty key; `ns/a/b` → key `a/b`.
fn split_key(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        None => (rest, None),
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
        assert_eq!((t.namespace_raw, t.key_raw), ("ns", Some("")));
        assert!(t.lists(&Method::GET) && !t.lists(&Method::PUT));
        assert_eq!(t.methods().1, "GET, HEAD, PUT, DELETE");
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
        let route_template = |path| ROUTES[route_of(path)];
        assert_eq!(
            route_template("/api2/ws/ns/a/b"),
            "/api2/{workspace}/{namespace}/{key}"
        );
        assert_eq!(
            route_template("/api2/ws/ns/"),
            "/api2/{workspace}/{namespace}"
        );
        assert_eq!(route_template("/api/ns"), "/api/{namespace}");
        assert_eq!(route_template("/metrics"), "/metrics");
        assert_eq!(route_template("/elsewhere"), "");
    }
}
