//! The drill's watchers: each follows the namespace's change feed (some
//! through a prefix), cuts its connection at random moments and resumes
//! with `Last-Event-ID` on another instance, and when the traffic stops
//! catches up once more until `sync`, so it should have every change.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::drill::Target;
use crate::check::history::Tag;
use crate::check::watch::{Change, Session, Watcher};
use crate::wire;

/// Longest a catch-up or a connection attempt may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// Follows the feed from revision `start` until `stop` turns true, then catches up.
pub(super) async fn watcher(
    target: Arc<Target>,
    id: usize,
    prefix: Option<String>,
    start: u64,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> Watcher {
    let mut rng = StdRng::seed_from_u64(seed);
    // Every fourth watcher resumes from a random earlier revision (Resumable
    // from any retained revision), the others from the last one they got.
    let mut me = Watcher {
        id,
        prefix,
        sessions: Vec::new(),
        rewinds: id % 4 == 3,
    };
    let mut since = start;
    let mut instance = id;
    while !*stop.borrow() {
        let drop_after = Duration::from_millis(rng.gen_range(300..3000));
        let session = tokio::select! {
            session = follow(&target, &me, instance, since, Some(drop_after), false) => session,
            _ = stop.changed() => break,
        };
        since = session.events.last().map_or(since, |e| e.revision);
        if me.rewinds && since > start {
            since = rng.gen_range(start..=since);
        }
        let failed = session.ended.starts_with("failed");
        me.sessions.push(session);
        instance += 1;
        if failed {
            // Not a hot loop while an instance is away.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The traffic has stopped: one more connection replays what is left.
    let last = follow(&target, &me, instance, since, None, true).await;
    me.sessions.push(last);
    me
}

/// One connection from `since`: until `drop_after` (then `dropped`), an
/// `error` event, a failure, or with `until_sync`, the `sync` event.
async fn follow(
    target: &Target,
    me: &Watcher,
    instance: usize,
    since: u64,
    drop_after: Option<Duration>,
    until_sync: bool,
) -> Session {
    let mut session = Session {
        instance: instance % target.urls.len(),
        since,
        resumed: !me.sessions.is_empty(),
        events: Vec::new(),
        ended: String::new(),
    };
    let limit = drop_after.unwrap_or(PATIENCE);
    let read = read_stream(target, me, instance, since, until_sync, &mut session.events);
    session.ended = match tokio::time::timeout(limit, read).await {
        Ok(ended) => ended,
        Err(_) if drop_after.is_some() => "dropped".to_owned(),
        Err(_) => "failed: no sync within the catch-up's patience".to_owned(),
    };
    session
}

/// Reads events into `events` until the stream ends; how it ended.
async fn read_stream(
    target: &Target,
    me: &Watcher,
    instance: usize,
    since: u64,
    until_sync: bool,
    events: &mut Vec<Change>,
) -> String {
    let mut query = "watch".to_owned();
    if let Some(prefix) = &me.prefix {
        query.push_str(&format!("&prefix={}", wire::percent_encode(prefix)));
    }
    // The first connection names `since`; a resume sends Last-Event-ID, as an EventSource would.
    let request = match me.sessions.is_empty() && !until_sync {
        true => target
            .http
            .get(target.namespace_url(instance, &format!("{query}&since={since}"))),
        false => target
            .http
            .get(target.namespace_url(instance, &query))
            .header("last-event-id", since.to_string()),
    };
    let mut response = match request.bearer_auth(&target.token).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return format!("failed: answered {}", response.status().as_u16()),
        Err(e) => return format!("failed: {e}"),
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return "failed: the stream ended".to_owned(),
            Err(e) => return format!("failed: {e}"),
        };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            let Some((event, data)) = wire::parse_feed_frame(&frame) else {
                continue;
            };
            match event.as_str() {
                "sync" if until_sync => return "caught up".to_owned(),
                "sync" => {}
                "error" => return data.code.unwrap_or_else(|| "error".to_owned()),
                op => events.push(Change {
                    revision: data.revision,
                    op: op.to_owned(),
                    key: data.key.unwrap_or_default(),
                    etag: data.etag.as_deref().and_then(Tag::parse),
                }),
            }
        }
    }
}
