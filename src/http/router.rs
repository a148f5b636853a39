//! The router: one `match` on method and path, authentication before anything
//! else is read, then parsed input for the handler of the route. Every failure
//! becomes an [`ApiError`], answered in [`error_response`].

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response};
use uuid::Uuid;

use super::handlers::{health, item, list};
use super::request::{
    check_key_segments, content_type, decode_part, delete_condition, put_condition, read_body,
    tag_condition, ListParams, MAX_KEY, MAX_NAMESPACE,
};
use super::response::{error_response, ResBody};
use super::state::AppState;
use crate::auth::Claims;
use crate::error::ApiError;
use crate::store::{DeleteCondition, ItemRef, NewValue, PutCondition, Store};
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
    /// `None` for a namespace listing.
    key_raw: Option<&'a str>,
}

impl Target<'_> {
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
        _ => {}
    }
    let target = parse_target(&path).ok_or(ApiError::NoRoute)?;
    let (allowed, allow) = target.methods();
    only(&method, allowed, allow)?;

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
        return list::list(
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
    let at = ItemRef {
        workspace,
        namespace: &namespace,
        key: &key,
    };
    let store = &state.store;
    match method {
        Method::GET | Method::HEAD => {
            let if_none_match = tag_condition(req.headers(), &header::IF_NONE_MATCH)?;
            item::get(store, at, if_none_match, method == Method::HEAD).await
        }
        Method::DELETE => {
            let cond = match target.api {
                Api::Legacy => DeleteCondition::Always,
                Api::V2 => delete_condition(req.headers())?,
            };
            item::delete(store, at, cond).await
        }
        _ => {
            let cond = match target.api {
                Api::Legacy => PutCondition::Always,
                Api::V2 => put_condition(req.headers())?,
            };
            let content_type = content_type(req.headers())?;
            let value = read_body(req, state.payload_limit, state.body_timeout).await?;
            item::put(store, at, NewValue::new(value, content_type), cond).await
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
}
