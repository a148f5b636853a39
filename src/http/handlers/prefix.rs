//! `DELETE /api2/{ws}/{ns}?prefix=P` (SPEC §13): deletes every key that
//! starts with P (`prefix=` empty: the whole namespace) in batches of
//! [`BATCH`], each its own short transaction, so a huge namespace neither
//! runs into the statement timeout nor holds writers back; every key deleted
//! is a `delete` change in the feed. A batch that fails ends the request
//! with its error; the batches before it stay deleted, and the request can
//! simply be sent again.

use hyper::{Response, StatusCode};
use serde::Serialize;
use uuid::Uuid;

use super::item::REVISION;
use crate::error::ApiError;
use crate::http::response::{json_response, ResBody};
use crate::http::state::AppState;
use crate::store::{ListQuery, Store};

/// Keys one statement deletes at most.
pub const BATCH: usize = 1000;

#[derive(Serialize)]
struct Deleted {
    deleted: u64,
    /// The namespace's revision once the last key is deleted.
    revision: u64,
}

pub async fn delete_prefix<S: Store>(
    state: &AppState<S>,
    workspace: Uuid,
    namespace: &str,
    prefix: &str,
) -> Result<Response<ResBody>, ApiError> {
    let query = ListQuery {
        workspace,
        namespace,
        prefix,
        after: None,
        limit: BATCH,
    };
    let (mut deleted, mut revision) = (0, None);
    loop {
        let batch = state.store.delete_prefix(query.clone(), BATCH).await?;
        deleted += batch.count;
        revision = revision.max(batch.revision);
        if batch.count > 0 {
            state.feed.written(workspace, namespace);
        }
        if batch.count < BATCH as u64 {
            break;
        }
    }
    let revision = match revision {
        Some(revision) => revision,
        None => state.store.revision(workspace, namespace).await?,
    };
    let mut response = json_response(StatusCode::OK, &Deleted { deleted, revision }, false)?;
    response.headers_mut().insert(REVISION, revision.into());
    Ok(response)
}
