//! Listings with values (`?values`, SPEC §13): the keys of a listing with
//! each value in base64, its tag, content type and expiry, in the same byte
//! order and with the same cursors as a key listing.
//!
//! The body is streamed value by value, read from the store in chunks of at
//! most [`CHUNK_ITEMS`] values and about [`CHUNK_BYTES`] bytes, so memory
//! stays bounded whatever the values' sizes: a chunk, one value's base64,
//! and the two frames the channel holds. A page ends after `limit` values
//! (every value without it) or once [`PAGE_BYTES`] of values are sent, with
//! a `cursor` when more remain.

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
    empty, open_listing, plain_500, push_json, BodyError, ChannelBody, ResBody,
};
use crate::http::state::AppState;
use crate::store::{ListQuery, Listed, Store, StoreError, DEFAULT_CONTENT_TYPE};
use crate::wire::{self, ETag};

/// Bytes of values after which a page ends (with a cursor when more remain).
pub const PAGE_BYTES: usize = 8 << 20;
/// Values read from the store at most per round trip.
const CHUNK_ITEMS: usize = 100;
/// Bytes of values read from the store per round trip, about (a chunk ends
/// with the value that reaches it).
const CHUNK_BYTES: usize = 1 << 20;
/// Frames of the body that may wait for the client.
const FRAMES: usize = 2;
/// Bytes of JSON gathered before they are sent as one frame (a larger
/// value is one frame of its own).
const FRAME_BYTES: usize = 64 * 1024;

/// One namespace's page of values, as a request asks for it.
pub struct ValuesRequest {
    pub workspace: Uuid,
    /// The workspace as the path wrote it (API v2), echoed in the JSON.
    pub shown_workspace: Option<String>,
    pub namespace: String,
    pub params: ListParams,
}

/// Where a page stands while it is sent.
struct Page {
    /// Values the page may still hold.
    left: usize,
    /// Bytes of values sent.
    bytes: usize,
    /// The last key sent.
    after: Option<String>,
}

impl Page {
    /// The next chunk's query and byte budget; `None` once the page is full.
    fn next<'a>(&'a self, request: &'a ValuesRequest) -> Option<(ListQuery<'a>, usize)> {
        if self.left == 0 || self.bytes >= PAGE_BYTES {
            return None;
        }
        let query = ListQuery {
            workspace: request.workspace,
            namespace: &request.namespace,
            prefix: &request.params.prefix,
            after: self.after.as_deref(),
            limit: self.left.min(CHUNK_ITEMS),
        };
        Some((query, CHUNK_BYTES.min(PAGE_BYTES - self.bytes)))
    }
}

pub async fn list_values<S: Store>(
    state: &Arc<AppState<S>>,
    request: ValuesRequest,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    // Read before the first row, as for a key listing (SPEC §12).
    let revision = state
        .store
        .revision(request.workspace, &request.namespace)
        .await?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(REVISION, revision);
    if head {
        return Ok(builder.body(empty()).unwrap_or_else(|_| plain_500()));
    }
    let page = Page {
        left: request.params.limit.unwrap_or(usize::MAX),
        bytes: 0,
        after: request.params.after.clone(),
    };
    // The first chunk is read before answering, so a failure is a status.
    let (first, asked) = match page.next(&request) {
        Some((query, budget)) => {
            let asked = (query.limit, budget);
            (state.store.list_values(query, budget).await?, asked)
        }
        None => (Vec::new(), (1, 1)),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, BodyError>>(FRAMES);
    let state = Arc::clone(state);
    tokio::spawn(async move {
        // Ends early only when the client went away or the store failed
        // (then the body is aborted, and the log says why).
        let _ = send_page(&*state.store, &request, page, (first, asked), &tx).await;
    });
    Ok(builder
        .body(ChannelBody { rx }.boxed_unsync())
        .unwrap_or_else(|_| plain_500()))
}

/// The client went away, or the body was aborted after a store failure.
struct Gone;

/// Sends the page, chunk after chunk. `first` is the first chunk with the
/// count and the bytes it was asked for.
async fn send_page<S: Store>(
    store: &S,
    request: &ValuesRequest,
    mut page: Page,
    first: (Vec<Listed>, (usize, usize)),
    tx: &mpsc::Sender<Result<Bytes, BodyError>>,
) -> Result<(), Gone> {
    let mut out = Vec::with_capacity(FRAME_BYTES);
    open_listing(
        &mut out,
        request.shown_workspace.as_deref(),
        &request.namespace,
    );
    out.extend_from_slice(b",\"items\":[");
    let (mut chunk, (mut asked, mut budget)) = first;
    let mut count = 0usize;
    let full = loop {
        let (len, mut bytes) = (chunk.len(), 0usize);
        for listed in chunk.drain(..) {
            bytes += listed.entry.value.len();
            if count > 0 {
                out.push(b',');
            }
            page.after = Some(listed.key.clone());
            send_item(tx, &mut out, listed).await?;
            count += 1;
            page.left -= 1;
        }
        page.bytes += bytes;
        // A chunk short of both its count and its bytes reached the end.
        if len < asked && bytes < budget {
            break false;
        }
        let Some((query, next_budget)) = page.next(request) else {
            break true;
        };
        send(tx, &mut out).await?;
        (asked, budget) = (query.limit, next_budget);
        chunk = match store.list_values(query, next_budget).await {
            Ok(chunk) => chunk,
            Err(e) => return abort(tx, &request.namespace, e).await,
        };
    };
    out.extend_from_slice(format!("],\"count\":{count}").as_bytes());
    if full {
        // A full page: a cursor only if a key follows it.
        let next = ListQuery {
            workspace: request.workspace,
            namespace: &request.namespace,
            prefix: &request.params.prefix,
            after: page.after.as_deref(),
            limit: 1,
        };
        match store.list(next).await {
            Ok(keys) if keys.is_empty() => {}
            Ok(_) => {
                if let Some(last) = &page.after {
                    out.extend_from_slice(b",\"cursor\":");
                    push_json(&mut out, &wire::encode_cursor(last));
                }
            }
            Err(e) => return abort(tx, &request.namespace, e).await,
        }
    }
    out.push(b'}');
    send(tx, &mut out).await
}

/// Writes one item's JSON into `out`, its value's base64 a slice at a
/// time, sending a frame whenever `out` holds [`FRAME_BYTES`]: a large value
/// is never held twice over as text.
async fn send_item(
    tx: &mpsc::Sender<Result<Bytes, BodyError>>,
    out: &mut Vec<u8>,
    listed: Listed,
) -> Result<(), Gone> {
    use base64::Engine;
    // Whole groups of three bytes encode without padding, so slices join.
    const SLICE: usize = 3 * 16 * 1024;
    let Listed { key, entry } = listed;
    out.extend_from_slice(b"{\"key\":");
    push_json(out, &key);
    out.extend_from_slice(b",\"value\":\"");
    for slice in entry.value.chunks(SLICE) {
        let at = out.len();
        out.resize(at + slice.len().div_ceil(3) * 4, 0);
        // The buffer was sized for exactly this slice's encoding.
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(slice, &mut out[at..])
            .unwrap_or(0);
        out.truncate(at + written);
        if out.len() >= FRAME_BYTES {
            send(tx, out).await?;
        }
    }
    out.extend_from_slice(b"\",\"etag\":\"");
    out.extend_from_slice(ETag(entry.md5).hex().as_bytes());
    out.extend_from_slice(b"\",\"content_type\":");
    push_json(
        out,
        entry
            .content_type
            .as_deref()
            .unwrap_or(DEFAULT_CONTENT_TYPE),
    );
    match entry.expires {
        Some(expires) => {
            out.extend_from_slice(format!(",\"expire_at\":{}}}", expires.at).as_bytes())
        }
        None => out.extend_from_slice(b",\"expire_at\":null}"),
    }
    if out.len() >= FRAME_BYTES {
        send(tx, out).await?;
    }
    Ok(())
}

async fn send(tx: &mpsc::Sender<Result<Bytes, BodyError>>, out: &mut Vec<u8>) -> Result<(), Gone> {
    if out.is_empty() {
        return Ok(());
    }
    let frame = Bytes::from(std::mem::replace(out, Vec::with_capacity(FRAME_BYTES)));
    tx.send(Ok(frame)).await.map_err(|_| Gone)
}

async fn abort(
    tx: &mpsc::Sender<Result<Bytes, BodyError>>,
    namespace: &str,
    e: StoreError,
) -> Result<(), Gone> {
    tracing::error!(namespace, error = %e, "listing of values failed mid-stream; response aborted");
    let _ = tx.send(Err(Box::new(e))).await;
    Err(Gone)
}
