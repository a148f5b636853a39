//! `POST /api2/{ws}?txn` (SPEC §13): ops across the namespaces of one
//! workspace, all applied in one database transaction or none.
//!
//! The body is read (at most [`MAX_BODY`] bytes) and every op checked before
//! the store is touched: a malformed op, or a value over the payload limit,
//! is a `400` naming its index. The store answers
//! [`TxnOutcome::Failed`] with every op whose condition did not hold (`412`
//! with `failed`), or the result of each op.

use std::collections::BTreeSet;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::acl::Access;
use crate::auth::{now_secs, Claims};
use crate::error::ApiError;
use crate::feed::Feed;
use crate::http::access;
use crate::http::request::{
    at_expiry, check_text, checked_content_type, read_body, ttl_expiry, MAX_KEY, MAX_NAMESPACE,
};
use crate::http::response::{json_response, ResBody};
use crate::http::state::AppState;
use crate::store::expiry::Expiry;
use crate::store::txn::{Condition, Op, OpKind, OpResult, Txn, TxnOutcome, MAX_OPS};
use crate::store::{ItemRef, NewValue, Store, DEFAULT_CONTENT_TYPE};
use crate::wire::{self, ETag, TagCondition};

/// Largest request body of a transaction.
pub const MAX_BODY: u64 = 16 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnBody<'a> {
    #[serde(borrow)]
    ops: Vec<&'a RawValue>,
}

/// One op as the JSON writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson {
    op: String,
    namespace: String,
    key: String,
    value: Option<String>,
    content_type: Option<String>,
    if_match: Option<String>,
    if_none_match: Option<String>,
    ttl: Option<i64>,
    expire_at: Option<i64>,
}

/// Reads, checks and runs a transaction of `workspace`.
pub async fn transact<S: Store>(
    state: &AppState<S>,
    workspace: Uuid,
    claims: &Claims,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, ApiError> {
    let body = read_body(req, MAX_BODY, state.body_timeout).await?;
    let txn = parse(
        &body,
        workspace,
        &*state.store,
        state.payload_limit,
        state.max_ttl,
    )?;
    drop(body);
    // The namespace ACL, op by op, before the store is asked anything.
    for (index, op) in txn.ops().iter().enumerate() {
        let needed = match op.kind {
            OpKind::Get | OpKind::Check => Access::Read,
            OpKind::Put(_) | OpKind::Delete => Access::Write,
        };
        access::check(state.acl.as_deref(), claims, &op.namespace, needed)
            .map_err(|e| at_op(index, e))?;
    }
    match state.feed.store().transact(&txn).await? {
        TxnOutcome::Failed(failed) => Err(ApiError::OpsFailed(failed)),
        TxnOutcome::ReadTooLarge(limit) => Err(ApiError::ReadTooLarge { limit }),
        TxnOutcome::Committed(results) => {
            wake(&state.feed, &txn, &results);
            let body = Results {
                results: results.iter().zip(txn.ops()).map(result_json).collect(),
            };
            json_response(StatusCode::OK, &body, false)
        }
    }
}

/// Wakes the watchers of each namespace the transaction changed.
fn wake<S: Store>(feed: &Feed<S>, txn: &Txn, results: &[OpResult]) {
    let changed: BTreeSet<&str> = results
        .iter()
        .zip(txn.ops())
        .filter(|(result, _)| matches!(result, OpResult::Put(_) | OpResult::Deleted(Some(_))))
        .map(|(_, op)| op.namespace.as_str())
        .collect();
    for namespace in changed {
        feed.written(txn.workspace, namespace);
    }
}

/// The ops of a request body, checked; values to put made by `store`.
fn parse<S: Store>(
    body: &[u8],
    workspace: Uuid,
    store: &S,
    payload_limit: u64,
    max_ttl: Option<u64>,
) -> Result<Txn, ApiError> {
    let parsed: TxnBody<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_txn",
            format!("the body is not {{\"ops\":[…]}}: {e}"),
        )
    })?;
    if parsed.ops.len() > MAX_OPS {
        return Err(ApiError::bad_request(
            "invalid_op",
            format!("op {MAX_OPS}: a transaction holds at most {MAX_OPS} ops"),
        ));
    }
    let now = now_secs() as i64;
    let ops = parsed
        .ops
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let json: OpJson = serde_json::from_str(raw.get())
                .map_err(|e| ApiError::bad_request("invalid_op", format!("op {index}: {e}")))?;
            let at = Place {
                workspace,
                store,
                payload_limit,
                max_ttl,
                now,
            };
            op(json, at).map_err(|e| at_op(index, e))
        })
        .collect::<Result<Vec<Op>, ApiError>>()?;
    Txn::new(workspace, ops).map_err(|e| ApiError::bad_request("invalid_op", e.to_string()))
}

/// `err` with the op's index in front of its message.
fn at_op(index: usize, err: ApiError) -> ApiError {
    match err {
        ApiError::BadRequest { code, message } => ApiError::BadRequest {
            code,
            message: format!("op {index}: {message}"),
        },
        ApiError::NamespaceForbidden {
            namespace, access, ..
        } => ApiError::NamespaceForbidden {
            namespace,
            access,
            op: Some(index),
        },
        other => other,
    }
}

/// Where ops are parsed: their workspace, the store that makes their
/// values, the limits on them and the time now (unix seconds).
#[derive(Clone, Copy)]
struct Place<'a, S> {
    workspace: Uuid,
    store: &'a S,
    payload_limit: u64,
    max_ttl: Option<u64>,
    now: i64,
}

fn op<S: Store>(json: OpJson, at: Place<'_, S>) -> Result<Op, ApiError> {
    check_text(
        &json.namespace,
        "namespace",
        "invalid_namespace",
        1,
        MAX_NAMESPACE,
    )?;
    check_text(&json.key, "key", "invalid_key", 1, MAX_KEY)?;
    let bad = |why: &str| ApiError::bad_request("invalid_op", why.to_owned());
    let cond = condition(json.if_match.as_deref(), json.if_none_match.as_deref())?;
    let writes_value = json.op == "put";
    if !writes_value
        && (json.value.is_some()
            || json.content_type.is_some()
            || json.ttl.is_some()
            || json.expire_at.is_some())
    {
        return Err(bad(
            "value, content_type, ttl and expire_at belong to a put",
        ));
    }
    let kind = match json.op.as_str() {
        "get" => OpKind::Get,
        "check" => OpKind::Check,
        "delete" => OpKind::Delete,
        "put" => OpKind::Put(put_value(&json, at)?),
        other => {
            return Err(bad(&format!(
                "op {other:?} is none of get, put, delete and check"
            )))
        }
    };
    Ok(Op {
        namespace: json.namespace,
        key: json.key,
        kind,
        cond,
    })
}

/// The value a put op writes, made by the store (sealed where it seals).
fn put_value<S: Store>(json: &OpJson, at: Place<'_, S>) -> Result<NewValue, ApiError> {
    let bad = |why: &str| ApiError::bad_request("invalid_op", why.to_owned());
    let payload_limit = at.payload_limit;
    let text = json
        .value
        .as_deref()
        .ok_or_else(|| bad("a put needs a value (base64)"))?;
    let value = wire::decode_value(text).ok_or_else(|| bad("value is not base64"))?;
    if value.len() as u64 > payload_limit {
        return Err(ApiError::BadRequest {
            code: "value_too_large",
            message: format!(
                "value is {} bytes, larger than HULY_PAYLOAD_SIZE_LIMIT ({payload_limit})",
                value.len()
            ),
        });
    }
    let content_type = json.content_type.as_deref();
    if content_type.is_some_and(|t| t.chars().any(char::is_control)) {
        return Err(bad("content_type holds a control character"));
    }
    let expiry = match (json.ttl, json.expire_at) {
        (None, None) => Expiry::Never,
        (Some(_), Some(_)) => return Err(bad("ttl and expire_at cannot be combined")),
        (Some(ttl), None) => ttl_expiry(ttl, "ttl", at.max_ttl)?,
        (None, Some(when)) => at_expiry(when, "expire_at", at.max_ttl, at.now)?,
    };
    let content_type = checked_content_type(content_type, "content_type")?;
    let item = ItemRef {
        workspace: at.workspace,
        namespace: &json.namespace,
        key: &json.key,
    };
    Ok(at
        .store
        .new_value(item, value.into(), content_type)
        .expiring(expiry))
}

/// The condition of `if_match` / `if_none_match`, written as the headers are.
fn condition(if_match: Option<&str>, if_none_match: Option<&str>) -> Result<Condition, ApiError> {
    let parse = |text: &str, what: &str| {
        TagCondition::parse(text)
            .map_err(|e| ApiError::bad_request("invalid_etag", format!("{what}: {e}")))
    };
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::Always),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_op",
            "if_match and if_none_match cannot be combined",
        )),
        (Some(text), None) => Ok(match parse(text, "if_match")? {
            TagCondition::Any => Condition::Exists,
            TagCondition::List(tags) => Condition::Matches(TagCondition::strong_digests(&tags)),
        }),
        (None, Some(text)) => Ok(match parse(text, "if_none_match")? {
            TagCondition::Any => Condition::Absent,
            TagCondition::List(tags) => Condition::Differs(tags.iter().map(|t| t.tag.0).collect()),
        }),
    }
}

#[derive(Serialize)]
struct Results {
    results: Vec<ResultJson>,
}

/// One op's result; each op fills the fields its kind answers with.
#[derive(Serialize)]
#[serde(untagged)]
enum ResultJson {
    Got {
        found: bool,
        value: Option<String>,
        etag: Option<String>,
        content_type: Option<String>,
        expire_at: Option<i64>,
    },
    Put {
        etag: String,
        revision: u64,
    },
    Deleted {
        deleted: bool,
        revision: Option<u64>,
    },
    Checked {},
}

fn result_json((result, op): (&OpResult, &Op)) -> ResultJson {
    match result {
        OpResult::Got(None) => ResultJson::Got {
            found: false,
            value: None,
            etag: None,
            content_type: None,
            expire_at: None,
        },
        OpResult::Got(Some(entry)) => ResultJson::Got {
            found: true,
            value: Some(wire::encode_value(&entry.value)),
            etag: Some(ETag(entry.md5).hex()),
            content_type: Some(
                entry
                    .content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            ),
            expire_at: entry.expires.map(|e| e.at),
        },
        OpResult::Put(revision) => ResultJson::Put {
            etag: match &op.kind {
                OpKind::Put(value) => ETag(value.md5).hex(),
                _ => String::new(),
            },
            revision: *revision,
        },
        OpResult::Deleted(revision) => ResultJson::Deleted {
            deleted: revision.is_some(),
            revision: *revision,
        },
        OpResult::Checked => ResultJson::Checked {},
    }
}
