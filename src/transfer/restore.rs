//! `hulykvs restore`: a dump's lines back into a store, in batches.
//!
//! A thread parses and checks lines while the store writes the batch
//! before (two batches in flight at most). The first line that is not a
//! row of a dump, or whose value does not match its `md5`, stops the
//! restore: the rows before it are written, nothing after it, and the error
//! names the line. Every batch is an upsert (or, with `--skip-existing`,
//! writes only keys with no live value), so running a restore again after
//! an interruption writes the same state.

use std::borrow::Cow;
use std::io::BufRead;

use base64::Engine as _;
use bytes::Bytes;

use super::{now_secs, Header, Line, TransferError, FORMAT, VERSION};
use crate::store::expiry::Expiry;
use crate::store::snapshot::{in_lock_order, Restored, PAGE_BYTES, PAGE_ROWS};
use crate::store::{Item, Store, DEFAULT_CONTENT_TYPE};
use crate::wire::{MAX_KEY, MAX_NAMESPACE};

/// The farthest expiry a row may have, in seconds from now: as far as the
/// API lets a write ask for.
const FARTHEST_EXPIRY: i64 = 100 * 365 * 86_400;

/// Batches parsed ahead of the one being written.
const BATCHES_AHEAD: usize = 2;

/// What a restore did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restoring {
    /// Rows read from the input.
    pub rows: u64,
    /// Rows written (upserted, or inserted with `--skip-existing`).
    pub written: u64,
    /// Rows whose expiry had passed: not written.
    pub expired: u64,
}

/// A row parsed from a line, its value the plaintext.
struct Parsed {
    item: Item,
    value: Bytes,
    content_type: String,
    expiry: Expiry,
}

/// What the parser thread sends: a batch, or the line that stopped it.
type Batch = Result<Vec<Parsed>, TransferError>;

/// Restores the dump read from `input` into `store`, values made by
/// `store.new_value` (sealed where the store seals).
pub async fn restore<S: Store>(
    store: &S,
    input: Box<dyn BufRead + Send>,
    skip_existing: bool,
    mut progress: impl FnMut(Restoring),
) -> Result<Restoring, TransferError> {
    let (batches, mut parsed) = tokio::sync::mpsc::channel::<(Batch, u64)>(BATCHES_AHEAD);
    let parser = std::thread::spawn(move || parse_all(input, &batches));
    let mut done = Restoring::default();
    let mut stopped = None;
    while let Some((batch, expired)) = parsed.recv().await {
        done.expired += expired;
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                stopped = Some(e);
                break;
            }
        };
        done.rows += batch.len() as u64;
        let rows: Vec<Restored> = batch
            .into_iter()
            .map(|p| Restored {
                value: store
                    .new_value(p.item.borrowed(), p.value, p.content_type)
                    .expiring(p.expiry),
                item: p.item,
            })
            .collect();
        done.written += store.restore(&in_lock_order(rows), skip_existing).await?;
        progress(done);
    }
    drop(parsed);
    // The thread ends once its channel is gone; it holds nothing else.
    let _ = parser.join();
    match stopped {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Parses `input` into batches sent to `out`, each with the count of
/// expired rows it left out; the last thing sent is an error, if any.
fn parse_all(mut input: Box<dyn BufRead + Send>, out: &tokio::sync::mpsc::Sender<(Batch, u64)>) {
    let mut text = String::new();
    let mut number = 0u64;
    let (mut batch, mut bytes, mut expired) = (Vec::new(), 0usize, 0u64);
    let now = now_secs();
    loop {
        text.clear();
        number += 1;
        let line = match input.read_line(&mut text) {
            Ok(0) if number == 1 => Err(bad(1, "the input is empty, not a hulykvs dump")),
            Ok(0) => break,
            Ok(_) if number == 1 => header(&text).map(|()| None),
            Ok(_) if text.trim().is_empty() => Ok(None),
            Ok(_) => row(&text, number, now),
            Err(e) => Err(TransferError::Io(format!(
                "cannot read line {number} of the input: {e}"
            ))),
        };
        match line {
            Ok(None) => {}
            Ok(Some(Ok(row))) => {
                bytes += row.value.len();
                batch.push(row);
            }
            Ok(Some(Err(()))) => expired += 1,
            Err(e) => {
                // The rows before the bad line are written, then it stops.
                let _ = out.blocking_send((Ok(std::mem::take(&mut batch)), expired));
                let _ = out.blocking_send((Err(e), 0));
                return;
            }
        }
        if batch.len() >= PAGE_ROWS || bytes >= PAGE_BYTES {
            if out
                .blocking_send((Ok(std::mem::take(&mut batch)), expired))
                .is_err()
            {
                return;
            }
            (bytes, expired) = (0, 0);
        }
    }
    let _ = out.blocking_send((Ok(batch), expired));
}

fn bad(line: u64, why: impl Into<String>) -> TransferError {
    TransferError::BadLine {
        line,
        why: why.into(),
    }
}

/// Checks the header line.
fn header(text: &str) -> Result<(), TransferError> {
    let not_a_dump = || {
        bad(1, format!("not a hulykvs dump: the first line must be the header {{\"format\":\"{FORMAT}\",\"version\":{VERSION},…}}"))
    };
    let header: Header = serde_json::from_str(text).map_err(|_| not_a_dump())?;
    if header.format != FORMAT {
        return Err(not_a_dump());
    }
    if header.version != VERSION {
        return Err(bad(
            1,
            format!(
                "the dump is format version {}; this release reads version {VERSION}",
                header.version
            ),
        ));
    }
    Ok(())
}

/// A row line: `Some(Ok(row))`, or `Some(Err(()))` when it has expired.
fn row(text: &str, number: u64, now: i64) -> Result<Option<Result<Parsed, ()>>, TransferError> {
    let line: Line<'_> =
        serde_json::from_str(text).map_err(|e| bad(number, format!("not a row of a dump: {e}")))?;
    if line.namespace.is_empty() || line.key.is_empty() {
        return Err(bad(number, "the namespace and the key must not be empty"));
    }
    if line.namespace.contains('\0') || line.key.contains('\0') {
        return Err(bad(
            number,
            "the namespace or the key holds a NUL character",
        ));
    }
    if line.namespace.len() > MAX_NAMESPACE || line.key.len() > MAX_KEY {
        return Err(bad(
            number,
            format!("a namespace is at most {MAX_NAMESPACE} bytes and a key {MAX_KEY}, as the API takes them"),
        ));
    }
    let value = base64::engine::general_purpose::STANDARD
        .decode(line.value.as_bytes())
        .map_err(|_| bad(number, "the value is not base64"))?;
    if format!("{:x}", md5::compute(&value)) != line.md5.to_ascii_lowercase() {
        return Err(bad(
            number,
            format!(
                "the value of {}/{} does not match its md5",
                line.namespace, line.key
            ),
        ));
    }
    let expiry = match line.expire_at {
        Some(at) if at <= now => return Ok(Some(Err(()))),
        Some(at) if at > now.saturating_add(FARTHEST_EXPIRY) => {
            return Err(bad(number, "expire_at is more than 100 years away"))
        }
        Some(at) => Expiry::At(at),
        None => Expiry::Never,
    };
    Ok(Some(Ok(Parsed {
        item: Item {
            workspace: line.workspace,
            namespace: line.namespace.into_owned(),
            key: line.key.into_owned(),
        },
        value: value.into(),
        content_type: line
            .content_type
            .map_or_else(|| DEFAULT_CONTENT_TYPE.to_owned(), Cow::into_owned),
        expiry,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_rows_are_checked() {
        assert!(header(r#"{"format":"hulykvs-dump","version":1}"#).is_ok());
        for bad in [
            r#"{"format":"other","version":1}"#,
            "[]",
            r#"{"format":"hulykvs-dump","version":2}"#,
        ] {
            assert!(header(bad).is_err(), "{bad}");
        }
        let ws = "11111111-2222-3333-4444-555555555555";
        let good = format!(
            r#"{{"workspace":"{ws}","namespace":"n","key":"k","value":"eA==","md5":"9dd4e461268c8034f5c8564e155c67a6","content_type":"text/plain","expire_at":null}}"#
        );
        assert!(matches!(row(&good, 2, 0), Ok(Some(Ok(_)))));
        let wrong = good.replace("9dd4", "0dd4");
        let e = row(&wrong, 7, 0).err().unwrap().to_string();
        assert!(e.starts_with("line 7: ") && e.contains("md5"), "{e}");
        let expired = good.replace(r#""expire_at":null"#, r#""expire_at":5"#);
        assert!(matches!(row(&expired, 2, 10), Ok(Some(Err(())))));
        assert!(row("{not json", 3, 0).is_err());
    }
}
