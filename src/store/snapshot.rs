//! Reading a whole store in one consistent snapshot, and writing rows back
//! in batches: what `hulykvs dump`, `restore` and `copy` stand on (SPEC §17).
//!
//! A snapshot is sent page by page into a bounded channel, so a reader
//! never holds more than a few pages however large the store; each page
//! ends after [`PAGE_ROWS`] rows or once its values pass [`PAGE_BYTES`].

use uuid::Uuid;

use super::stored::StoredRow;
use super::{Item, NewValue};

/// Most rows of one page of a snapshot.
pub const PAGE_ROWS: usize = 1000;
/// A page ends with the row that brings its values to this many bytes.
pub const PAGE_BYTES: usize = 4 << 20;

/// Which rows a snapshot reads: all, or only these workspaces and/or
/// namespaces (an empty list does not filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    pub workspaces: Vec<Uuid>,
    pub namespaces: Vec<String>,
}

impl SnapshotFilter {
    /// Whether a row at `workspace`/`namespace` is read.
    pub fn admits(&self, workspace: Uuid, namespace: &str) -> bool {
        (self.workspaces.is_empty() || self.workspaces.contains(&workspace))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace))
    }
}

/// Pages of a snapshot, as the engine hands them over.
pub type PageSink = tokio::sync::mpsc::Sender<Vec<StoredRow>>;

/// One row to write back: where, and the value (its expiry an instant).
#[derive(Debug, Clone)]
pub struct Restored {
    pub item: Item,
    pub value: NewValue,
}

/// `rows` sorted by workspace, namespace and key as bytes, the last of each
/// key kept: the order every batched writer takes its row locks in, and a
/// batch that names no row twice (one statement cannot upsert a row twice).
pub fn in_lock_order(mut rows: Vec<Restored>) -> Vec<Restored> {
    rows.reverse();
    rows.sort_by(|a, b| {
        let (a, b) = (&a.item, &b.item);
        (a.workspace, a.namespace.as_bytes(), a.key.as_bytes()).cmp(&(
            b.workspace,
            b.namespace.as_bytes(),
            b.key.as_bytes(),
        ))
    });
    // Stable sort of the reversed rows: the last written of a key is first.
    rows.dedup_by(|later, first| later.item == first.item);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, value: &str) -> Restored {
        Restored {
            item: Item {
                workspace: Uuid::nil(),
                namespace: "ns".into(),
                key: key.into(),
            },
            value: NewValue::new(value.to_owned().into(), "text/plain".into()),
        }
    }

    #[test]
    fn a_batch_is_in_byte_order_with_the_last_of_each_key() {
        let rows = in_lock_order(vec![
            row("b", "1"),
            row("a", "2"),
            row("b", "3"),
            row("é", "4"),
        ]);
        let got: Vec<(&str, &[u8])> = rows
            .iter()
            .map(|r| (r.item.key.as_str(), &r.value.value[..]))
            .collect();
        assert_eq!(got, [("a", &b"2"[..]), ("b", b"3"), ("é", b"4")]);
    }

    #[test]
    fn an_empty_filter_admits_everything() {
        let all = SnapshotFilter::default();
        assert!(all.admits(Uuid::nil(), "x"));
        let some = SnapshotFilter {
            workspaces: vec![Uuid::nil()],
            namespaces: vec!["a".into()],
        };
        assert!(some.admits(Uuid::nil(), "a"));
        assert!(!some.admits(Uuid::nil(), "b"));
        assert!(!some.admits(Uuid::from_u128(1), "a"));
    }
}
