//! The handlers of one value: GET and HEAD, PUT (and the legacy POST), DELETE.
//! They receive parsed, validated input and answer with the store's outcome.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::error::ApiError;
use crate::feed::Feed;
use crate::http::response::{empty, etag_value, full, plain_500, ResBody};
use crate::store::txn::{Replace, Replaced};
use crate::store::{
    DeleteCondition, DeleteOutcome, Entry, ItemRef, NewValue, PutCondition, PutOutcome, Store,
    DEFAULT_CONTENT_TYPE,
};
use crate::wire::{ETag, TagCondition};

/// The value at `item`, or `304` when `if_none_match` matches its tag; no body for HEAD.
pub async fn get<S: Store>(
    store: &S,
    item: ItemRef<'_>,
    if_none_match: Option<TagCondition>,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let entry = store.get(item).await?.ok_or(ApiError::NotFound)?;
    let etag = ETag(entry.md5);
    let etag_value = etag_value(&etag);
    if if_none_match.is_some_and(|c| c.matches_weakly(&etag)) {
        return Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag_value)
            .body(empty())
            .unwrap_or_else(|_| plain_500()));
    }
    let content_type = content_type_of(&entry);
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::ETAG, etag_value)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(expires) = entry.expires {
        builder = builder
            .header("huly-expire-at", expires.at)
            .header("huly-ttl", expires.ttl);
    }
    let response = if head {
        builder
            .header(header::CONTENT_LENGTH, entry.value.len())
            .body(empty())
    } else {
        builder.body(full(entry.value))
    };
    Ok(response.unwrap_or_else(|_| plain_500()))
}

/// Stores `value` at `item` if `cond` holds; answers with its `ETag` and
/// the revision of its change, and wakes the namespace's watchers.
pub async fn put<S: Store>(
    feed: &Feed<S>,
    item: ItemRef<'_>,
    value: NewValue,
    cond: PutCondition,
) -> Result<Response<ResBody>, ApiError> {
    let etag = ETag(value.md5);
    #[cfg(feature = "test-hooks")]
    let cond = match crate::seeded::active() {
        Some(crate::seeded::Bug::IfMatchIgnored) if matches!(cond, PutCondition::IfMatch(_)) => {
            PutCondition::Always
        }
        _ => cond,
    };
    #[cfg(feature = "test-hooks")]
    if cond == PutCondition::Always && crate::seeded::strikes(crate::seeded::Bug::PutNotWritten, 10)
    {
        return Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ETAG, etag_value(&etag))
            .body(empty())
            .unwrap_or_else(|_| plain_500()));
    }
    let (status, revision) = match feed.store().put(item, value, cond).await? {
        PutOutcome::Created(revision) => (StatusCode::CREATED, revision),
        PutOutcome::Stored(revision) => (StatusCode::NO_CONTENT, revision),
        PutOutcome::PreconditionFailed => return Err(ApiError::PreconditionFailed),
    };
    feed.written(item.workspace, item.namespace);
    #[cfg(feature = "test-hooks")]
    let revision = match crate::seeded::strikes(crate::seeded::Bug::RevisionReused, 7) {
        true => revision.saturating_sub(1),
        false => revision,
    };
    Ok(Response::builder()
        .status(status)
        .header(header::ETAG, etag_value(&etag))
        .header(REVISION, revision)
        .body(empty())
        .unwrap_or_else(|_| plain_500()))
}

/// Deletes the value at `item` if `cond` holds; answers with the revision
/// of its change, and wakes the namespace's watchers.
pub async fn delete<S: Store>(
    feed: &Feed<S>,
    item: ItemRef<'_>,
    cond: DeleteCondition,
) -> Result<Response<ResBody>, ApiError> {
    match feed.store().delete(item, cond).await? {
        DeleteOutcome::Deleted(revision) => {
            feed.written(item.workspace, item.namespace);
            Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header(REVISION, revision)
                .body(empty())
                .unwrap_or_else(|_| plain_500()))
        }
        DeleteOutcome::NotFound => Err(ApiError::NotFound),
        DeleteOutcome::PreconditionFailed => Err(ApiError::PreconditionFailed),
    }
}

/// The revision a write made, or a listing read (SPEC §12).
pub const REVISION: &str = "huly-revision";

/// `Huly-Return: previous` (SPEC §13): a write that answers with the value
/// it replaced.
pub const RETURN: &str = "huly-return";

/// The tag of the value a `Huly-Return: previous` write replaced.
pub const PREVIOUS_ETAG: &str = "huly-previous-etag";

/// Runs `write` at `item`, answering `200` with the value it replaced, or
/// as the plain write would when it replaced nothing.
pub async fn replace<S: Store>(
    feed: &Feed<S>,
    item: ItemRef<'_>,
    write: Replace,
) -> Result<Response<ResBody>, ApiError> {
    let etag = match &write {
        Replace::Put(value, _) => Some(ETag(value.md5)),
        Replace::Delete(_) => None,
    };
    let (status, revision, previous) = match feed.store().replace(item, write).await? {
        Replaced::Put(PutOutcome::Created(revision), old) => (StatusCode::CREATED, revision, old),
        Replaced::Put(PutOutcome::Stored(revision), old) => (StatusCode::NO_CONTENT, revision, old),
        Replaced::Delete(DeleteOutcome::Deleted(revision), old) => {
            (StatusCode::NO_CONTENT, revision, old)
        }
        Replaced::Delete(DeleteOutcome::NotFound, _) => return Err(ApiError::NotFound),
        Replaced::Put(PutOutcome::PreconditionFailed, _)
        | Replaced::Delete(DeleteOutcome::PreconditionFailed, _) => {
            return Err(ApiError::PreconditionFailed)
        }
    };
    feed.written(item.workspace, item.namespace);
    let mut builder = Response::builder().header(REVISION, revision);
    if let Some(etag) = etag {
        builder = builder.header(header::ETAG, etag_value(&etag));
    }
    let response = match previous {
        Some(old) => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type_of(&old))
            .header(PREVIOUS_ETAG, etag_value(&ETag(old.md5)))
            .body(full(old.value)),
        None => builder.status(status).body(empty()),
    };
    Ok(response.unwrap_or_else(|_| plain_500()))
}

/// The stored content type as a header (the default for rows without one).
fn content_type_of(entry: &Entry) -> HeaderValue {
    entry
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE))
}
