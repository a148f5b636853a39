//! `GET /api2/{ws}/{ns}?changes&since=R[&prefix=P][&limit=N][&wait=D]`: the
//! change feed as a long poll (SPEC §12). Answers at once when changes after
//! `since` exist, else when the first arrives, else after `wait` with none.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::item::REVISION;
use crate::error::ApiError;
use crate::feed::sse::ChangeEntry;
use crate::feed::{closed, passed, Subscription};
use crate::http::response::{json_response, ResBody};
use crate::http::state::AppState;
use crate::store::changes::{ChangePage, ChangeQuery, Revision};
use crate::store::Store;

/// Changes one answer holds without `limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// How long a poll waits without `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// What a long poll asks for.
pub struct PollRequest {
    pub workspace: Uuid,
    /// The workspace as the path wrote it (API v2), echoed in the JSON.
    pub shown_workspace: Option<String>,
    pub namespace: String,
    pub prefix: String,
    pub since: Revision,
    pub limit: Option<usize>,
    pub wait: Option<Duration>,
}

#[derive(Serialize)]
struct PollAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<&'a str>,
    namespace: &'a str,
    /// Poll again with `since` = this.
    revision: Revision,
    changes: Vec<ChangeEntry<'a>>,
    more: bool,
}

pub async fn poll<S: Store>(
    state: &Arc<AppState<S>>,
    request: PollRequest,
) -> Result<hyper::Response<ResBody>, ApiError> {
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
    let deadline = Instant::now() + request.wait.unwrap_or(DEFAULT_WAIT);
    let mut closing = state.feed.closing();
    let mut after = request.since;
    let mut subscription: Option<Subscription> = None;
    loop {
        let page = read(state, &request, after, limit + 1).await?;
        page.readable_from(after)
            .map_err(|why| ApiError::unreadable(after, why))?;
        if !page.changes.is_empty() || Instant::now() >= deadline {
            return answer(&request, page, limit);
        }
        // Nothing of the prefix up to the current revision: wait past it.
        after = page.current;
        let channel = &subscription
            .get_or_insert_with(|| {
                state
                    .feed
                    .subscribe(request.workspace, &request.namespace, after)
            })
            .channel;
        let mut head = channel.follow();
        let shutting_down = tokio::select! {
            () = passed(&mut head, after) => false,
            () = tokio::time::sleep_until(deadline) => false,
            () = closed(&mut closing) => true,
        };
        if shutting_down {
            let page = read(state, &request, after, limit + 1).await?;
            return answer(&request, page, limit);
        }
    }
}

async fn read<S: Store>(
    state: &AppState<S>,
    request: &PollRequest,
    after: Revision,
    limit: usize,
) -> Result<ChangePage, ApiError> {
    Ok(state
        .store
        .changes(ChangeQuery {
            workspace: request.workspace,
            namespace: &request.namespace,
            after,
            prefix: &request.prefix,
            limit,
        })
        .await?)
}

/// The answer for `page`, read with one change more than `limit` to know
/// whether more follow.
fn answer(
    request: &PollRequest,
    page: ChangePage,
    limit: usize,
) -> Result<hyper::Response<ResBody>, ApiError> {
    let more = page.changes.len() > limit;
    let changes = &page.changes[..page.changes.len().min(limit)];
    let revision = match (more, changes.last()) {
        (true, Some(last)) => last.revision,
        _ => page.current,
    };
    let body = PollAnswer {
        workspace: request.shown_workspace.as_deref(),
        namespace: &request.namespace,
        revision,
        changes: changes.iter().map(ChangeEntry::from).collect(),
        more,
    };
    let mut response = json_response(StatusCode::OK, &body, false)?;
    response.headers_mut().insert(REVISION, revision.into());
    Ok(response)
}
