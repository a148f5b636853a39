//! A history: every operation a drill made, with its client, what it asked,
//! when it was called and when it returned, and what it answered (SPEC §19,
//! §21). The checkers read it; `--report` writes it as JSON.
//!
//! A key's value is known by its entity tag alone (the MD5 of the value):
//! every write of a drill writes a value of its own, so the tag names the
//! write. An operation whose outcome is not known (a timeout, a cut
//! connection, a `503`) returned "never": it may or may not have taken effect.

use serde::{Deserialize, Serialize};

use crate::wire::ETag;

/// A value's entity tag: the 16 bytes of its MD5, 32 hex digits in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub [u8; 16]);

/// The wire's own entity tag does the hashing, hex and parsing.
impl Tag {
    /// The tag of `value`.
    pub fn of(value: &[u8]) -> Tag {
        Tag(ETag::of(value).0)
    }

    /// The tag in 32 hex digits, as `ETag` carries it (without quotes).
    pub fn hex(&self) -> String {
        ETag(self.0).hex()
    }

    /// Parses 32 hex digits, quoted or not.
    pub fn parse(text: &str) -> Option<Tag> {
        ETag::parse(text).ok().map(|tag| Tag(tag.0))
    }
}

impl Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Tag::parse(&text).ok_or_else(|| serde::de::Error::custom("not 32 hex digits"))
    }
}

/// The index of a key in the drill's key set.
pub type Key = u16;

/// A condition on the value stored at a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    /// None.
    Always,
    /// `If-Match: <tag>`: the stored value has this tag.
    Matches(Tag),
    /// `If-None-Match: *`: no value is stored.
    Absent,
}

impl Cond {
    /// Whether the condition holds for what is stored.
    pub fn holds(&self, stored: Option<Tag>) -> bool {
        match self {
            Cond::Always => true,
            Cond::Matches(tag) => stored == Some(*tag),
            Cond::Absent => stored.is_none(),
        }
    }
}

/// One step of a transaction. Conditions and reads see the state before
/// the transaction; a key is written by at most one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    Get { key: Key },
    Put { key: Key, value: Tag, cond: Cond },
    Delete { key: Key, cond: Cond },
    Check { key: Key, cond: Cond },
}

impl Step {
    pub fn key(&self) -> Key {
        match self {
            Step::Get { key }
            | Step::Put { key, .. }
            | Step::Delete { key, .. }
            | Step::Check { key, .. } => *key,
        }
    }
}

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// `GET` (or `HEAD`) of one key.
    Get { key: Key },
    /// `PUT` of a value whose tag is `value`, under `cond`.
    Put { key: Key, value: Tag, cond: Cond },
    /// `DELETE`, under `cond` (`Always` or `Matches`).
    Delete { key: Key, cond: Cond },
    /// `POST ?txn`.
    Txn { steps: Vec<Step> },
}

impl Call {
    /// The keys the call touches, in step order.
    pub fn keys(&self) -> Vec<Key> {
        match self {
            Call::Get { key } | Call::Put { key, .. } | Call::Delete { key, .. } => vec![*key],
            Call::Txn { steps } => steps.iter().map(Step::key).collect(),
        }
    }
}

/// What the service answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A read: the tag found (`200`), or none (`404`).
    Read { found: Option<Tag> },
    /// A write applied (`2xx`); for a `DELETE` without a condition, a value was there.
    Written,
    /// `412`: a condition did not hold; nothing was written.
    Refused,
    /// `DELETE` answered `404`: no value was there; nothing was written.
    NotFound,
    /// A transaction applied: per step, for a `get` the tag found, else `None`.
    Committed { reads: Vec<Option<Tag>> },
    /// No answer that says what happened: it may or may not have taken effect.
    Unknown { why: String },
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Its index in the history.
    pub id: usize,
    /// The client that made it (clients make one operation at a time).
    pub client: usize,
    /// The instance (index of `--url`) it went to.
    pub instance: usize,
    pub call: Call,
    /// When it was sent, in nanoseconds from the drill's start.
    pub called: u64,
    /// When its answer came; `None` ("never") when the outcome is unknown.
    pub returned: Option<u64>,
    pub outcome: Outcome,
    /// The HTTP status, when one came.
    pub status: Option<u16>,
    /// `Huly-Revision` of a write, when one came (per namespace: the drill
    /// uses one).
    pub revision: Option<u64>,
}

impl Operation {
    /// Whether the operation may have changed what is stored: a write that
    /// was applied, or whose outcome is unknown.
    pub fn may_have_written(&self) -> bool {
        let writes = match &self.call {
            Call::Get { .. } => false,
            Call::Put { .. } | Call::Delete { .. } => true,
            Call::Txn { steps } => steps
                .iter()
                .any(|s| matches!(s, Step::Put { .. } | Step::Delete { .. })),
        };
        writes
            && matches!(
                self.outcome,
                Outcome::Written | Outcome::Committed { .. } | Outcome::Unknown { .. }
            )
    }
}

/// A whole drill's history, as `--report` writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The key names, by index.
    pub keys: Vec<String>,
    pub operations: Vec<Operation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_back_and_conditions_hold() {
        let tag = Tag::of(b"hello");
        assert_eq!(tag.hex(), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            Tag::parse("\"5d41402abc4b2a76b9719d911017c592\""),
            Some(tag)
        );
        assert_eq!(Tag::parse("5d41"), None);
        assert!(Cond::Matches(tag).holds(Some(tag)));
        assert!(!Cond::Matches(tag).holds(None));
        assert!(Cond::Absent.holds(None) && !Cond::Absent.holds(Some(tag)));
        let op = Operation {
            id: 0,
            client: 1,
            instance: 0,
            call: Call::Put {
                key: 3,
                value: tag,
                cond: Cond::Absent,
            },
            called: 5,
            returned: None,
            outcome: Outcome::Unknown {
                why: "timed out".into(),
            },
            status: None,
            revision: None,
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<Operation>(&json).unwrap(), op);
        assert!(op.may_have_written());
    }
}
