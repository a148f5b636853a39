//! The Server-Sent Events a watch stream writes (SPEC §12): one frame per
//! change, encoded once per change and shared by every stream that sends it.

use bytes::Bytes;
use serde::Serialize;

use crate::store::changes::{Change, Revision};
use crate::wire::ETag;

/// The comment a quiet stream sends so proxies and clients see it alive.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The `data` of a change event.
#[derive(Serialize)]
struct ChangeData<'a> {
    key: &'a str,
    etag: Option<String>,
    revision: Revision,
    expire_at: Option<i64>,
}

/// A change as one long-poll entry (`"changes": [...]`).
#[derive(Serialize)]
pub struct ChangeEntry<'a> {
    pub revision: Revision,
    pub op: &'static str,
    pub key: &'a str,
    pub etag: Option<String>,
    pub expire_at: Option<i64>,
}

impl<'a> From<&'a Change> for ChangeEntry<'a> {
    fn from(change: &'a Change) -> Self {
        ChangeEntry {
            revision: change.revision,
            op: change.op.as_str(),
            key: &change.key,
            etag: etag(change),
            expire_at: change.expire_at,
        }
    }
}

fn etag(change: &Change) -> Option<String> {
    change.md5.map(|md5| ETag(md5).hex())
}

/// `id: R`, `event: put|delete|expire`, `data: {…}`.
pub fn change_frame(change: &Change) -> Bytes {
    let data = ChangeData {
        key: &change.key,
        etag: etag(change),
        revision: change.revision,
        expire_at: change.expire_at,
    };
    let mut out = format!(
        "id: {}\nevent: {}\ndata: ",
        change.revision,
        change.op.as_str()
    )
    .into_bytes();
    // Serializing strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The end of the replay: everything up to `revision` has been sent.
pub fn sync_frame(revision: Revision) -> Bytes {
    Bytes::from(format!(
        "event: sync\ndata: {{\"revision\":{revision}}}\n\n"
    ))
}

/// The last event of a stream that ends early: resume from `revision`.
pub fn error_frame(code: &str, revision: Revision) -> Bytes {
    Bytes::from(format!(
        "event: error\ndata: {{\"code\":\"{code}\",\"revision\":{revision}}}\n\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::changes::ChangeOp;

    #[test]
    fn frames_are_server_sent_events() {
        let put = Change {
            revision: 42,
            op: ChangeOp::Put,
            key: "a/\"b\"\n".to_owned(),
            md5: Some(md5::compute(b"hello").0),
            expire_at: None,
        };
        assert_eq!(
            &change_frame(&put)[..],
            &b"id: 42\nevent: put\ndata: {\"key\":\"a/\\\"b\\\"\\n\",\"etag\":\"5d41402abc4b2a76b9719d911017c592\",\"revision\":42,\"expire_at\":null}\n\n"[..],
            "the key is JSON-escaped, so a newline in it cannot end the event"
        );
        let gone = Change {
            revision: 7,
            op: ChangeOp::Expire,
            key: "k".to_owned(),
            md5: None,
            expire_at: None,
        };
        assert!(change_frame(&gone)
            .starts_with(b"id: 7\nevent: expire\ndata: {\"key\":\"k\",\"etag\":null"));
        assert_eq!(
            &sync_frame(41)[..],
            b"event: sync\ndata: {\"revision\":41}\n\n"
        );
        assert_eq!(
            &error_frame("too_slow", 9)[..],
            b"event: error\ndata: {\"code\":\"too_slow\",\"revision\":9}\n\n"
        );
    }
}
