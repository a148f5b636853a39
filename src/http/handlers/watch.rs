//! `GET /api2/{ws}/{ns}?watch[&prefix=P][&since=R]` (and the legacy
//! `/api/{ns}?watch`): the change feed as Server-Sent Events (SPEC §12).
//!
//! Each stream is a task feeding the response body through a small channel.
//! It replays from the store while its position is older than what the
//! namespace's [`Channel`] keeps, sends `sync` once caught up, then follows the
//! channel. A client that stops reading blocks only its own task; when it
//! reads again and has fallen out of the channel, the stream ends with
//! `too_slow` and the revision to resume from.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header;
use hyper::{Response, StatusCode};
use metrics::{counter, gauge};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use uuid::Uuid;

use super::item::REVISION;
use crate::error::ApiError;
use crate::feed::channel::Behind;
use crate::feed::sse::{error_frame, sync_frame, KEEP_ALIVE};
use crate::feed::{closed, Subscription, READ_PAGE};
use crate::http::response::{empty, plain_500, BodyError, ChannelBody, ResBody};
use crate::http::state::AppState;
use crate::store::changes::{ChangeQuery, Revision};
use crate::store::Store;
use crate::telemetry::registry::{WATCH_ENDS, WATCH_EVENTS, WATCH_STREAMS};

/// A quiet stream sends a comment this often.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);
/// Longest the last event of a stream waits for a slow client.
const FAREWELL_WAIT: Duration = Duration::from_secs(5);
/// Events taken from the channel per write to the client.
const SEND_BATCH: usize = 256;

/// What a watch asks for.
pub struct WatchRequest {
    pub workspace: Uuid,
    pub namespace: String,
    pub prefix: String,
    /// From `Last-Event-ID`, else `since`; `None`: from now.
    pub since: Option<Revision>,
    /// The token's `exp` (unix seconds): the stream ends then.
    pub expires: Option<u64>,
}

/// Opens a stream: checks `since` against the log, then answers `200
/// text/event-stream` at once (headers only for HEAD).
pub async fn watch<S: Store>(
    state: &Arc<AppState<S>>,
    request: WatchRequest,
    head: bool,
) -> Result<Response<ResBody>, ApiError> {
    let (subscription, start) = open(state, &request).await?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        // nginx and the like would otherwise hold events back.
        .header("x-accel-buffering", "no")
        .header(REVISION, start);
    if head {
        return Ok(builder.body(empty()).unwrap_or_else(|_| plain_500()));
    }
    let (tx, rx) = mpsc::channel(2);
    let stream = Stream {
        state: Arc::clone(state),
        subscription,
        closing: state.feed.closing(),
        pos: request.since.unwrap_or(start),
        target: start,
        deadline: request.expires.map(deadline_of),
        request,
        tx,
        quiet_until: Instant::now() + KEEP_ALIVE_EVERY,
    };
    tokio::spawn(stream.run());
    Ok(builder
        .body(ChannelBody { rx }.boxed_unsync())
        .unwrap_or_else(|_| plain_500()))
}

/// The channel of the namespace and the revision the stream starts from
/// (without `since`) or replays up to before `sync` (with it), after
/// checking `since`. A stream without `since` of a namespace already watched
/// on this instance starts at its channel's head, without a query: a
/// reconnecting crowd of watchers does not queue for the pool. That head may
/// trail the database by a poll on other instances, so such a stream may
/// start a little earlier, never later.
async fn open<S: Store>(
    state: &AppState<S>,
    request: &WatchRequest,
) -> Result<(Subscription, Revision), ApiError> {
    let (workspace, namespace) = (request.workspace, request.namespace.as_str());
    if request.since.is_none() {
        if let Some(subscription) = state.feed.subscribe_existing(workspace, namespace) {
            let head = subscription.channel.head();
            return Ok((subscription, head));
        }
    }
    let page = state
        .store
        .changes(ChangeQuery {
            workspace,
            namespace,
            after: request.since.unwrap_or(0),
            prefix: "",
            limit: 0,
        })
        .await?;
    if let Some(since) = request.since {
        page.readable_from(since)
            .map_err(|why| ApiError::unreadable(since, why))?;
    }
    let subscription = state.feed.subscribe(workspace, namespace, page.current);
    Ok((subscription, page.current))
}

/// The instant of unix second `exp`, by this process's clock.
fn deadline_of(exp: u64) -> Instant {
    let now = crate::auth::now_secs();
    Instant::now() + Duration::from_secs(exp.saturating_sub(now))
}

/// Why a stream ended, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientGone,
    TooSlow,
    TokenExpired,
    Compacted,
    Shutdown,
    Error,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::ClientGone => "client_gone",
            End::TooSlow => "too_slow",
            End::TokenExpired => "token_expired",
            End::Compacted => "compacted",
            End::Shutdown => "shutdown",
            End::Error => "error",
        }
    }
}

/// Where a round of catching up left a stream.
enum Progress {
    /// More may follow at once.
    More,
    /// Everything the channel has is sent, but the channel has not yet read
    /// up to the revision the stream opened at.
    Trailing,
    /// Everything up to the channel's head and the opening revision is sent.
    Done,
}

/// What woke a caught-up stream.
#[derive(PartialEq, Eq)]
enum Wake {
    Changed,
    Quiet,
}

/// One open stream.
struct Stream<S> {
    state: Arc<AppState<S>>,
    request: WatchRequest,
    subscription: Subscription,
    closing: watch::Receiver<bool>,
    /// Every change up to here has been sent (or skipped by the prefix).
    pos: Revision,
    /// `sync` waits until `pos` reaches this: the namespace's revision when
    /// the stream opened (the channel may still trail it).
    target: Revision,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Result<Bytes, BodyError>>,
    /// When a keep-alive comment is due: [`KEEP_ALIVE_EVERY`] after the last write.
    quiet_until: Instant,
}

impl<S: Store> Stream<S> {
    async fn run(mut self) {
        gauge!(WATCH_STREAMS).increment(1.0);
        let end = self.serve().await;
        match end {
            End::TokenExpired => self.farewell("token_expired").await,
            // Ending at once: the drain of the shutdown is waiting.
            End::Shutdown => {
                let _ = self.tx.try_send(Ok(error_frame("shutting_down", self.pos)));
            }
            _ => {}
        }
        gauge!(WATCH_STREAMS).decrement(1.0);
        counter!(WATCH_ENDS, "reason" => end.label()).increment(1);
        tracing::debug!(namespace = %self.request.namespace, reason = end.label(), revision = self.pos, "watch stream ended");
    }

    async fn serve(&mut self) -> End {
        let mut head = self.subscription.channel.follow();
        let mut synced = false;
        loop {
            match self.catch_up(synced).await {
                Err(end) => return end,
                Ok(Progress::More) => {
                    // Events of other prefixes may take many rounds: let others run.
                    tokio::task::yield_now().await;
                    continue;
                }
                // The database has changes the channel has not read yet.
                Ok(Progress::Trailing) => self.subscription.channel.wake_reader(),
                Ok(Progress::Done) if !synced => {
                    synced = true;
                    if let Err(end) = self.send(sync_frame(self.pos)).await {
                        return end;
                    }
                }
                Ok(Progress::Done) => {}
            }
            let (deadline, quiet_until) = (self.deadline, self.quiet_until);
            let woke = tokio::select! {
                changed = head.changed() => match changed {
                    Ok(()) => Wake::Changed,
                    Err(_) => return End::Error,
                },
                () = tokio::time::sleep_until(quiet_until) => Wake::Quiet,
                () = sleep_until_some(deadline) => return End::TokenExpired,
                () = closed(&mut self.closing) => return End::Shutdown,
                () = self.tx.closed() => return End::ClientGone,
            };
            if woke == Wake::Quiet {
                if let Err(end) = self.send(Bytes::from_static(KEEP_ALIVE)).await {
                    return end;
                }
            }
        }
    }

    /// Sends what follows the position, from the channel or (while replaying
    /// history older than it) from the store.
    async fn catch_up(&mut self, synced: bool) -> Result<Progress, End> {
        let channel = &self.subscription.channel;
        let head = channel.head();
        let events = match channel.after(self.pos, SEND_BATCH) {
            Behind::UpToDate => {
                // The log holds every change up to `head`: none is after `pos`.
                self.pos = self.pos.max(head);
                return Ok(match self.pos >= self.target {
                    true => Progress::Done,
                    false => Progress::Trailing,
                });
            }
            Behind::TooFar if synced => {
                self.farewell("too_slow").await;
                return Err(End::TooSlow);
            }
            // Boxed: the store's query is the largest state a stream ever
            // holds, and only while replaying; an idle stream (most of them)
            // would otherwise keep room for it for its whole life.
            Behind::TooFar => return Box::pin(self.replay()).await.map(|()| Progress::More),
            Behind::Events(events) => events,
        };
        let mut out = Vec::new();
        let mut sent = 0u64;
        for event in &events {
            #[cfg(feature = "test-hooks")]
            if crate::seeded::strikes(crate::seeded::Bug::WatchEventDropped, 20) {
                self.pos = event.change.revision;
                continue;
            }
            if event.change.key.starts_with(&self.request.prefix) {
                out.extend_from_slice(&event.frame);
                sent += 1;
            }
            self.pos = event.change.revision;
        }
        if !out.is_empty() {
            self.send(Bytes::from(out)).await?;
            counter!(WATCH_EVENTS).increment(sent);
        }
        Ok(Progress::More)
    }

    /// One page of history from the store.
    async fn replay(&mut self) -> Result<(), End> {
        let request = &self.request;
        let page = self
            .state
            .store
            .changes(ChangeQuery {
                workspace: request.workspace,
                namespace: &request.namespace,
                after: self.pos,
                prefix: &request.prefix,
                limit: READ_PAGE,
            })
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(namespace = %request.namespace, error = %e, "replaying changes failed; the stream ends");
                self.farewell("unavailable").await;
                return Err(End::Error);
            }
        };
        if page.readable_from(self.pos).is_err() {
            self.farewell("revision_compacted").await;
            return Err(End::Compacted);
        }
        let mut out = Vec::new();
        for change in &page.changes {
            out.extend_from_slice(&crate::feed::sse::change_frame(change));
        }
        self.pos = page.reached(READ_PAGE).max(self.pos);
        if !out.is_empty() {
            self.send(Bytes::from(out)).await?;
            counter!(WATCH_EVENTS).increment(page.changes.len() as u64);
        }
        Ok(())
    }

    /// The last event of a stream ending early, with the revision to resume
    /// from; a client that does not take it within a few seconds misses it.
    async fn farewell(&mut self, code: &str) {
        let frame = error_frame(code, self.pos);
        let _ = tokio::time::timeout(FAREWELL_WAIT, self.tx.send(Ok(frame))).await;
    }

    /// Writes `bytes` to the client, unless it leaves, the service shuts
    /// down or the token expires first.
    async fn send(&mut self, bytes: Bytes) -> Result<(), End> {
        let deadline = self.deadline;
        tokio::select! {
            sent = self.tx.send(Ok(bytes)) => sent.map_err(|_| End::ClientGone)?,
            () = closed(&mut self.closing) => return Err(End::Shutdown),
            () = sleep_until_some(deadline) => return Err(End::TokenExpired),
        }
        self.quiet_until = Instant::now() + KEEP_ALIVE_EVERY;
        Ok(())
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
