//! The listing of a namespace: one page with a cursor when `limit` is given,
//! else every key, streamed chunk by chunk so the namespace is never held in
//! memory.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::item::REVISION;
use crate::error::ApiError;
use crate::http::request::ListParams;
use crate::http::response::{
    empty, json_bytes, open_listing, plain_500, push_json, BodyError, ChannelBody, ResBody,
};
use crate::http::state::AppState;
use crate::store::{KeyPage, ListQuery, Store};
use crate::wire;

/// Keys fetched per database round trip while streaming an unbounded listing.
const LIST_CHUNK: usize = 1000;

/// The keys of `namespace` that `params` asks for. `shown_workspace` is the
/// workspace as the path wrote it (API v2), echoed in the JSON; the legacy
/// API has none.
pub async fn list<S: Store>(
    state: &Arc<AppState<S>>,
    workspace: Uuid,
    shown_workspace: Option<String>,
    namespace: String,
    params: ListParams,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    // The revision is read no later than the first key: every change after
    // it is in the feed, so "list, then watch from it" misses nothing.
    let first = state
        .store
        .list_page(ListQuery {
            workspace,
            namespace: &namespace,
            prefix: &params.prefix,
            after: params.after.as_deref(),
            limit: params.limit.unwrap_or(LIST_CHUNK),
        })
        .await?;
    let revision = first.revision;
    let mut response = match (&first.more_after, params.limit) {
        (Some(_), None) => stream_list(
            state,
            workspace,
            shown_workspace,
            namespace,
            params.prefix,
            first,
            head,
        ),
        _ => page_response(shown_workspace.as_deref(), &namespace, &first, head)?,
    };
    response.headers_mut().insert(REVISION, revision.into());
    Ok(response)
}

/// One page as [`wire::KeyList`] writes it, the keys' JSON spliced in as the
/// store wrote it.
fn page_response(
    shown_workspace: Option<&str>,
    namespace: &str,
    page: &KeyPage,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let mut out = Vec::with_capacity(page.json.len() + namespace.len() + 128);
    open_listing(&mut out, shown_workspace, namespace);
    out.extend_from_slice(format!(",\"count\":{},\"keys\":[", page.count).as_bytes());
    out.extend_from_slice(page.json.as_bytes());
    out.push(b']');
    if let Some(last) = &page.more_after {
        out.extend_from_slice(b",\"cursor\":");
        push_json(&mut out, &wire::encode_cursor(last));
    }
    out.push(b'}');
    json_bytes(StatusCode::OK, out, head)
}

/// Streams an unbounded listing chunk by chunk, so the namespace is never held
/// in memory. The JSON holds the same fields, with `count` after the keys.
fn stream_list<S: Store>(
    state: &Arc<AppState<S>>,
    workspace: Uuid,
    shown_workspace: Option<String>,
    namespace: String,
    prefix: String,
    first: KeyPage,
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
        open_listing(&mut out, shown_workspace.as_deref(), &namespace);
        out.extend_from_slice(b",\"keys\":[");
        let mut count = 0usize;
        let mut chunk = first;
        loop {
            if count > 0 && chunk.count > 0 {
                out.push(b',');
            }
            out.extend_from_slice(chunk.json.as_bytes());
            count += chunk.count;
            let Some(last) = chunk.more_after else {
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
                .list_page(ListQuery {
                    workspace,
                    namespace: &namespace,
                    prefix: &prefix,
                    after: Some(&last),
                    limit: LIST_CHUNK,
                })
                .await;
            match next {
                Ok(page) => chunk = page,
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
