//! The drill's clients: each makes one operation at a time on a small key
//! set (collisions are the point), records it with its instants and outcome,
//! and moves to the next instance when one stops answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;

use crate::check::history::{Call, Cond, Key, Operation, Outcome, Step, Tag};
use crate::cli::client::cause;
use crate::wire;

/// What every client and watcher of one drill shares.
pub(super) struct Target {
    pub(super) http: reqwest::Client,
    /// Base URLs, without trailing slashes.
    pub(super) urls: Vec<String>,
    pub(super) token: String,
    pub(super) workspace: String,
    pub(super) namespace: String,
    pub(super) keys: Vec<String>,
    /// The instant every operation's time is counted from.
    pub(super) started: Instant,
    /// Tells values of this run from any other's.
    pub(super) run: String,
}

/// Keys a transaction may tie together: pairs, so the checker's partitions stay small.
pub(super) const GROUP: u16 = 2;

impl Target {
    pub(super) fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    pub(super) fn key_url(&self, instance: usize, key: Key) -> String {
        format!(
            "{}/api2/{}/{}/{}",
            self.urls[instance % self.urls.len()],
            self.workspace,
            self.namespace,
            wire::percent_encode(&self.keys[usize::from(key)])
        )
    }

    pub(super) fn namespace_url(&self, instance: usize, query: &str) -> String {
        format!(
            "{}/api2/{}/{}?{query}",
            self.urls[instance % self.urls.len()],
            self.workspace,
            self.namespace
        )
    }

    fn txn_url(&self, instance: usize) -> String {
        format!(
            "{}/api2/{}?txn",
            self.urls[instance % self.urls.len()],
            self.workspace
        )
    }
}

/// One client's operations, and the revisions of its committed transactions.
#[derive(Default)]
pub(super) struct Recorded {
    pub(super) operations: Vec<Operation>,
    pub(super) txn_revisions: Vec<(usize, Vec<u64>)>,
}

/// A client: random operations until `until`; ids are local (renumbered later).
pub(super) async fn client(target: Arc<Target>, id: usize, seed: u64, until: Instant) -> Recorded {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recorded = Recorded::default();
    // The tags this client last saw per key: its conditions are mostly about them.
    let mut known: Vec<Option<Tag>> = vec![None; target.keys.len()];
    let mut instance = id;
    let mut seq = 0u64;
    let mut backoff = Duration::ZERO;
    while Instant::now() < until {
        seq += 1;
        let call = pick(&mut rng, &target, &known, id, seq);
        let Some((mut op, revisions)) = perform(&target, instance, call, id, seq).await else {
            // Never reached the instance (refused): no effect, nothing to record;
            // the next operation tries another instance.
            instance += 1;
            pause(&mut backoff).await;
            continue;
        };
        op.id = recorded.operations.len();
        learn(&mut known, &op);
        if let Outcome::Unknown { .. } = op.outcome {
            // The instance may be gone: the next operation tries another,
            // after a pause, so an outage is not thousands of unknown outcomes.
            instance += 1;
            pause(&mut backoff).await;
        } else {
            backoff = Duration::ZERO;
        }
        if !revisions.is_empty() {
            recorded.txn_revisions.push((op.id, revisions));
        }
        recorded.operations.push(op);
    }
    recorded
}

/// Waits before the next operation after a failure: 20 ms, doubling to 400 ms.
async fn pause(backoff: &mut Duration) {
    *backoff = (*backoff * 2).clamp(Duration::from_millis(20), Duration::from_millis(400));
    tokio::time::sleep(*backoff).await;
}

/// The value client `client` writes to `key` in its operation `seq`: no
/// other write of any run has it, so its tag names the write.
fn value_of(target: &Target, client: usize, seq: u64, key: Key) -> Vec<u8> {
    format!("{}:{client}:{seq}:{key}", target.run).into_bytes()
}

fn pick(rng: &mut StdRng, target: &Target, known: &[Option<Tag>], client: usize, seq: u64) -> Call {
    let keys = target.keys.len() as u16;
    let key = rng.gen_range(0..keys);
    let tag = |k: Key| Tag::of(&value_of(target, client, seq, k));
    let value = tag(key);
    let seen = |k: Key| known[usize::from(k)];
    let matching = |k: Key| match seen(k) {
        Some(tag) => Cond::Matches(tag),
        None => Cond::Absent,
    };
    match rng.gen_range(0..100) {
        0..=29 => Call::Get { key },
        30..=49 => Call::Put {
            key,
            value,
            cond: Cond::Always,
        },
        50..=61 => Call::Put {
            key,
            value,
            cond: matching(key),
        },
        62..=69 => Call::Put {
            key,
            value,
            cond: Cond::Absent,
        },
        70..=77 => Call::Delete {
            key,
            cond: Cond::Always,
        },
        78..=85 => match seen(key) {
            Some(tag) => Call::Delete {
                key,
                cond: Cond::Matches(tag),
            },
            None => Call::Get { key },
        },
        _ => {
            let first = key - key % GROUP;
            let steps = (first..(first + GROUP).min(keys))
                .map(|k| match rng.gen_range(0..5) {
                    0 => Step::Get { key: k },
                    1 => Step::Put {
                        key: k,
                        value: tag(k),
                        cond: Cond::Always,
                    },
                    2 => Step::Put {
                        key: k,
                        value: tag(k),
                        cond: matching(k),
                    },
                    3 => Step::Delete {
                        key: k,
                        cond: Cond::Always,
                    },
                    _ => Step::Check {
                        key: k,
                        cond: matching(k),
                    },
                })
                .collect();
            Call::Txn { steps }
        }
    }
}

/// What the client learns of each key from an operation's outcome.
fn learn(known: &mut [Option<Tag>], op: &Operation) {
    match (&op.call, &op.outcome) {
        (Call::Get { key }, Outcome::Read { found }) => known[usize::from(*key)] = *found,
        (Call::Put { key, value, .. }, Outcome::Written) => known[usize::from(*key)] = Some(*value),
        (Call::Delete { key, .. }, Outcome::Written | Outcome::NotFound) => {
            known[usize::from(*key)] = None
        }
        (Call::Txn { steps }, Outcome::Committed { reads }) => {
            for (step, read) in steps.iter().zip(reads) {
                match step {
                    Step::Get { key } => known[usize::from(*key)] = *read,
                    Step::Put { key, value, .. } => known[usize::from(*key)] = Some(*value),
                    Step::Delete { key, .. } => known[usize::from(*key)] = None,
                    Step::Check { .. } => {}
                }
            }
        }
        _ => {}
    }
}

/// Sends `call` (operation `seq` of `client`) to `instance` and records it,
/// with the revisions of a committed transaction's writes; `None` when the
/// request never reached the instance (no connection: it had no effect).
pub(super) async fn perform(
    target: &Target,
    instance: usize,
    call: Call,
    client: usize,
    seq: u64,
) -> Option<(Operation, Vec<u64>)> {
    let called = target.now();
    let judged = match send(target, instance, &call, client, seq).await {
        Ok(response) => judge(&call, response).await,
        Err(e) if e.is_connect() => return None,
        Err(e) => Judged::unknown(cause(&e), None),
    };
    let returned = match judged.outcome {
        Outcome::Unknown { .. } => None,
        _ => Some(target.now()),
    };
    let op = Operation {
        id: 0,
        client,
        instance: instance % target.urls.len(),
        call,
        called,
        returned,
        outcome: judged.outcome,
        status: judged.status,
        revision: judged.revision,
    };
    Some((op, judged.txn_revisions))
}

async fn send(
    target: &Target,
    instance: usize,
    call: &Call,
    client: usize,
    seq: u64,
) -> Result<Response, reqwest::Error> {
    let body = |key: Key| value_of(target, client, seq, key);
    let request = match call {
        Call::Get { key } => target.http.get(target.key_url(instance, *key)),
        Call::Put { key, cond, .. } => {
            let request = target
                .http
                .put(target.key_url(instance, *key))
                .body(body(*key));
            with_cond(request, *cond, IF_MATCH)
        }
        Call::Delete { key, cond } => with_cond(
            target
                .http
                .request(Method::DELETE, target.key_url(instance, *key)),
            *cond,
            IF_MATCH,
        ),
        Call::Txn { steps } => target
            .http
            .post(target.txn_url(instance))
            .json(&txn_body(target, steps, &body)),
    };
    request.bearer_auth(&target.token).send().await
}

fn with_cond(
    request: reqwest::RequestBuilder,
    cond: Cond,
    if_match: reqwest::header::HeaderName,
) -> reqwest::RequestBuilder {
    match cond {
        Cond::Always => request,
        Cond::Matches(tag) => request.header(if_match, format!("\"{}\"", tag.hex())),
        Cond::Absent => request.header(IF_NONE_MATCH, "*"),
    }
}

/// A transaction's JSON (SPEC §13).
fn txn_body(target: &Target, steps: &[Step], body: &dyn Fn(Key) -> Vec<u8>) -> serde_json::Value {
    let ops: Vec<serde_json::Value> = steps
        .iter()
        .map(|step| {
            let key = step.key();
            let mut op = serde_json::json!({
                "namespace": target.namespace,
                "key": target.keys[usize::from(key)],
            });
            let (name, cond) = match step {
                Step::Get { .. } => ("get", Cond::Always),
                Step::Put { cond, .. } => {
                    op["value"] = wire::encode_value(&body(key)).into();
                    ("put", *cond)
                }
                Step::Delete { cond, .. } => ("delete", *cond),
                Step::Check { cond, .. } => ("check", *cond),
            };
            op["op"] = name.into();
            match cond {
                Cond::Always => {}
                Cond::Matches(tag) => op["if_match"] = tag.hex().into(),
                Cond::Absent => op["if_none_match"] = "*".into(),
            }
            op
        })
        .collect();
    serde_json::json!({ "ops": ops })
}

/// What an answer says happened.
struct Judged {
    outcome: Outcome,
    status: Option<u16>,
    revision: Option<u64>,
    txn_revisions: Vec<u64>,
}

impl Judged {
    fn unknown(why: String, status: Option<u16>) -> Judged {
        Judged {
            outcome: Outcome::Unknown { why },
            status,
            revision: None,
            txn_revisions: Vec::new(),
        }
    }

    fn known(outcome: Outcome, status: StatusCode, revision: Option<u64>) -> Judged {
        Judged {
            outcome,
            status: Some(status.as_u16()),
            revision,
            txn_revisions: Vec::new(),
        }
    }
}

/// One result of a committed transaction.
#[derive(Deserialize)]
struct TxnResult {
    found: Option<bool>,
    etag: Option<String>,
    revision: Option<u64>,
}

#[derive(Deserialize)]
struct TxnAnswer {
    results: Vec<TxnResult>,
}

async fn judge(call: &Call, response: Response) -> Judged {
    let status = response.status();
    let revision = response
        .headers()
        .get("huly-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let etag = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(Tag::parse);
    let known = |outcome| Judged::known(outcome, status, revision);
    match (call, status.as_u16()) {
        (Call::Get { .. }, 200) if etag.is_some() => known(Outcome::Read { found: etag }),
        (Call::Get { .. }, 404) => known(Outcome::Read { found: None }),
        (Call::Put { .. }, 200 | 201 | 204) => known(Outcome::Written),
        (Call::Delete { .. }, 200 | 204) => known(Outcome::Written),
        (Call::Delete { .. }, 404) => known(Outcome::NotFound),
        (Call::Put { .. } | Call::Delete { .. } | Call::Txn { .. }, 412) => known(Outcome::Refused),
        (Call::Txn { steps }, 200) => match response.json::<TxnAnswer>().await {
            Ok(answer) if answer.results.len() == steps.len() => committed(steps, answer, status),
            Ok(_) => Judged::unknown(
                "a transaction answered the wrong number of results".into(),
                Some(200),
            ),
            Err(e) => Judged::unknown(
                format!("a transaction's answer did not read: {}", cause(&e)),
                Some(200),
            ),
        },
        (_, code) => {
            let body = response.text().await.unwrap_or_default();
            let why = serde_json::from_str::<wire::ErrorBody>(&body)
                .map(|e| format!("answered {code} {}", e.code))
                .unwrap_or_else(|_| format!("answered {code}"));
            Judged::unknown(why, Some(code))
        }
    }
}

fn committed(steps: &[Step], answer: TxnAnswer, status: StatusCode) -> Judged {
    let mut reads = Vec::with_capacity(steps.len());
    let mut revisions = Vec::new();
    for (step, result) in steps.iter().zip(answer.results) {
        let read = match step {
            Step::Get { .. } if result.found == Some(true) => {
                result.etag.as_deref().and_then(Tag::parse)
            }
            _ => None,
        };
        reads.push(read);
        revisions.extend(result.revision);
    }
    let mut judged = Judged::known(Outcome::Committed { reads }, status, None);
    judged.txn_revisions = revisions;
    judged
}
