//! Write load from several clients at once, and what must hold after a crash
//! or an outage: every acknowledged write reads back whole with its ETag, and
//! a write that was never acknowledged is either absent or whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most writes one writer sends, and the longest it writes: a load stops by
/// itself even if nobody raises `stop`.
const MAX_WRITES: usize = 50_000;
const MAX_TIME: Duration = Duration::from_secs(120);
/// A request that takes longer has hung; it is given up and recorded as such.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// Pause after a failed write, so a writer waiting out an outage does not spin.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(20);

/// What a writer does when a write is not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stops: the server is gone for good.
    Stop,
    /// Goes on with the next key: the server is expected back.
    KeepGoing,
}

/// One PUT and what came of it.
#[derive(Debug, Clone)]
pub struct Write {
    pub key: String,
    pub value: Vec<u8>,
    /// When it was sent.
    pub sent: Instant,
    /// How long the answer took (or the failure).
    pub took: Duration,
    /// The status and `ETag` of the answer, or why there was none.
    pub outcome: Result<(u16, Option<String>), String>,
}

impl Write {
    /// Answered with 2xx: the service promised the value is stored.
    pub fn acknowledged(&self) -> bool {
        matches!(self.outcome, Ok((200..=299, _)))
    }

    /// The status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.outcome.as_ref().ok().map(|(status, _)| *status)
    }
}

/// The `ETag` of `value`, quoted.
pub fn etag_of(value: &[u8]) -> String {
    format!("\"{:x}\"", md5::compute(value))
}

/// PUTs distinct keys `w<writer>-<n>` under `base` from `writers` clients at
/// once until `stop` is raised (or the bounds above are reached), and returns
/// every write with its outcome.
pub async fn write_until(
    base: String,
    token: String,
    writers: usize,
    stop: Arc<AtomicBool>,
    on_failure: OnFailure,
) -> Vec<Write> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_LIMIT)
        .build()
        .expect("HTTP client");
    let writes = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + MAX_TIME;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (client, base, token, stop, writes) = (
            client.clone(),
            base.clone(),
            token.clone(),
            Arc::clone(&stop),
            Arc::clone(&writes),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..MAX_WRITES {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let key = format!("w{writer}-{i:06}");
                let value = format!("value of {key} ").repeat(1 + i % 50).into_bytes();
                let sent = Instant::now();
                let outcome = client
                    .put(format!("{base}/{key}"))
                    .bearer_auth(&token)
                    .body(value.clone())
                    .send()
                    .await
                    .map(|r| {
                        let etag = r
                            .headers()
                            .get("etag")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        (r.status().as_u16(), etag)
                    })
                    .map_err(|e| format!("{e:?}"));
                let write = Write {
                    key,
                    value,
                    sent,
                    took: sent.elapsed(),
                    outcome,
                };
                let failed = !write.acknowledged();
                writes.lock().unwrap().push(write);
                if failed {
                    match on_failure {
                        OnFailure::Stop => break,
                        OnFailure::KeepGoing => tokio::time::sleep(PAUSE_AFTER_FAILURE).await,
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer panicked");
    }
    let writes = writes.lock().unwrap().clone();
    writes
}

/// Reads every write back from `base` (the same namespace, maybe another
/// server): an acknowledged one must be there with the value sent and the
/// `ETag` it was acknowledged with; any other must be absent or whole, never
/// torn. Returns how many unacknowledged writes were found stored.
pub async fn assert_writes_durable(base: &str, token: &str, writes: &[Write]) -> usize {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_LIMIT)
        .build()
        .expect("HTTP client");
    let mut stored_unacknowledged = 0;
    for write in writes {
        let key = &write.key;
        let resp = client
            .get(format!("{base}/{key}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        let status = resp.status().as_u16();
        if write.acknowledged() {
            assert_eq!(status, 200, "{key} was acknowledged but is gone");
        } else if status == 404 {
            continue;
        } else {
            assert_eq!(status, 200, "GET {key} (never acknowledged)");
            stored_unacknowledged += 1;
        }
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: body: {e}"));
        assert!(
            body.as_ref() == write.value.as_slice(),
            "{key}: stored {} bytes, not the {} written",
            body.len(),
            write.value.len()
        );
        assert_eq!(
            etag.as_deref(),
            Some(etag_of(&body).as_str()),
            "{key}: value and ETag agree"
        );
        if let Ok((_, Some(acked))) = &write.outcome {
            assert_eq!(
                etag.as_deref(),
                Some(acked.as_str()),
                "{key}: the ETag acknowledged"
            );
        }
    }
    stored_unacknowledged
}
