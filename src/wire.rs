//! What crosses the wire, shared by the server and the client: entity tags,
//! precondition headers, percent-encoding of path parts, list cursors, the
//! JSON bodies of listings and errors.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::Digest;

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE: usize = 255;
/// Longest key (and prefix), in bytes.
pub const MAX_KEY: usize = 1024;

/// An entity tag: the MD5 of a value, shown as `"` + 32 lowercase hex digits + `"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag(pub Digest);

impl ETag {
    /// The tag of `value`.
    pub fn of(value: &[u8]) -> Self {
        ETag(md5::compute(value).0)
    }

    /// Parses 32 hex digits, quoted or bare (either case of hex).
    pub fn parse(text: &str) -> Result<Self, BadTag> {
        let text = text.trim();
        let bare = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        let bytes = bare.as_bytes();
        if bytes.len() != 32 {
            return Err(BadTag(text.to_owned()));
        }
        let mut digest = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| BadTag(text.to_owned()))?;
            let lo = hex_value(pair[1]).ok_or_else(|| BadTag(text.to_owned()))?;
            digest[i] = hi << 4 | lo;
        }
        Ok(ETag(digest))
    }

    /// The header value, with its quotes.
    pub fn header_value(&self) -> String {
        self.quoted().iter().map(|&b| b as char).collect()
    }

    /// The header value's bytes, with its quotes, written without
    /// formatting: every response to a GET or PUT carries one (issue #29).
    pub fn quoted(&self) -> [u8; 34] {
        let mut out = [b'"'; 34];
        for (i, b) in self.0.iter().enumerate() {
            out[1 + 2 * i] = HEX[(b >> 4) as usize];
            out[2 + 2 * i] = HEX[(b & 0xf) as usize];
        }
        out
    }

    /// The 32 hex digits without quotes, as JSON bodies write a tag.
    pub fn hex(&self) -> String {
        self.quoted()[1..33].iter().map(|&b| b as char).collect()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An entity tag that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entity tag {0:?}: expected 32 hex digits, quoted or bare")]
pub struct BadTag(pub String);

/// The parsed value of an `If-Match` or `If-None-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    /// `*`
    Any,
    /// A list of tags; `weak` marks those written `W/"…"`.
    List(Vec<ListedTag>),
}

/// One member of an entity-tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedTag {
    pub tag: ETag,
    pub weak: bool,
}

impl TagCondition {
    /// Parses `*` or a comma-separated list of tags, each quoted, bare or weak.
    pub fn parse(header: &str) -> Result<Self, BadTag> {
        let header = header.trim();
        if header == "*" {
            return Ok(TagCondition::Any);
        }
        let mut tags = Vec::new();
        for part in header.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (weak, text) = match part.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            tags.push(ListedTag {
                tag: ETag::parse(text)?,
                weak,
            });
        }
        if tags.is_empty() {
            return Err(BadTag(header.to_owned()));
        }
        Ok(TagCondition::List(tags))
    }

    /// The digests an `If-Match` accepts: strong comparison, so weak tags never match.
    pub fn strong_digests(tags: &[ListedTag]) -> Vec<Digest> {
        tags.iter().filter(|t| !t.weak).map(|t| t.tag.0).collect()
    }

    /// Weak comparison, as `If-None-Match` on GET uses: does `current` match?
    pub fn matches_weakly(&self, current: &ETag) -> bool {
        match self {
            TagCondition::Any => true,
            TagCondition::List(tags) => tags.iter().any(|t| t.tag == *current),
        }
    }
}

/// Why a path part could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPart {
    #[error("malformed percent-encoding")]
    Percent,
    #[error("not valid UTF-8")]
    Utf8,
}

/// Decodes RFC 3986 percent-encoding (`+` stays a plus). A `%` not followed by
/// two hex digits and a result that is not UTF-8 are errors.
pub fn percent_decode(raw: &str) -> Result<String, BadPart> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(raw.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(BadPart::Percent),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadPart::Utf8)
}

/// Characters left as they are in an encoded path part: RFC 3986 unreserved.
const PATH_PART: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one namespace or key for a URL path; `/` is encoded too, so a
/// key survives any proxy that normalizes paths.
pub fn percent_encode(part: &str) -> String {
    percent_encoding::utf8_percent_encode(part, PATH_PART).to_string()
}

/// Encodes the last key of a page as the opaque cursor that continues after it.
pub fn encode_cursor(last_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_key.as_bytes())
}

/// Decodes a cursor made by [`encode_cursor`]; `None` when it is not one.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()?;
    String::from_utf8(bytes).ok().filter(|k| !k.is_empty())
}

/// The JSON of a listing. `workspace` is absent in the legacy API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyList {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub workspace: Option<String>,
    pub namespace: String,
    pub count: usize,
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cursor: Option<String>,
}

/// One value of a listing with values (`?values`), as its JSON writes it:
/// the value in standard base64, the tag as 32 hex digits without quotes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ValueItem {
    pub key: String,
    pub value: String,
    pub etag: String,
    pub content_type: String,
    /// The first unix second the value is gone; `None` when it does not expire.
    pub expire_at: Option<i64>,
}

/// Encodes bytes as standard base64, as JSON bodies carry values.
pub fn encode_value(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// Decodes a value from standard base64 (padding optional).
pub fn decode_value(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// For people: what went wrong.
    pub error: String,
    /// For programs: a stable snake_case name.
    pub code: String,
    /// `410 revision_compacted`: the oldest revision the feed still has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
    /// `412` of a transaction: the indexes of the ops whose condition failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<usize>>,
}

/// The `data` of a change-feed event (SPEC §12) as a client reads it:
/// `put`, `delete`, `expire`, and the `sync` and `error` markers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FeedData {
    pub revision: u64,
    pub key: Option<String>,
    pub etag: Option<String>,
    pub expire_at: Option<i64>,
    /// Why the server ended the stream (`error` events).
    pub code: Option<String>,
}

/// The event name and data of one Server-Sent Events frame of the change
/// feed; `None` for comments and frames without JSON data.
pub fn parse_feed_frame(frame: &[u8]) -> Option<(String, FeedData)> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut event = "message";
    let mut data = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name;
        } else if let Some(json) = line.strip_prefix("data: ") {
            data = serde_json::from_str(json).ok();
        }
    }
    Some((event.to_owned(), data?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "5d41402abc4b2a76b9719d911017c592";

    #[test]
    fn etag_of_value_is_quoted_lowercase_md5() {
        assert_eq!(ETag::of(b"hello").header_value(), format!("\"{HELLO}\""));
        assert_eq!(
            ETag::of(b"hello").quoted().as_slice(),
            format!("\"{HELLO}\"").as_bytes()
        );
    }

    #[test]
    fn etag_parses_quoted_bare_and_uppercase() {
        let want = ETag::of(b"hello");
        assert_eq!(ETag::parse(HELLO), Ok(want));
        assert_eq!(ETag::parse(&format!("\"{HELLO}\"")), Ok(want));
        assert_eq!(ETag::parse(&HELLO.to_uppercase()), Ok(want));
        assert_eq!(ETag::parse(&format!(" \"{HELLO}\" ")), Ok(want));
    }

    #[test]
    fn etag_rejects_wrong_length_and_non_hex() {
        for bad in [
            "",
            "\"\"",
            "abc",
            &HELLO[1..],
            &format!("{HELLO}0"),
            "zz41402abc4b2a76b9719d911017c592",
            "\"5d41402abc4b2a76b9719d911017c592",
        ] {
            assert!(ETag::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tag_lists_parse() {
        assert_eq!(TagCondition::parse(" * "), Ok(TagCondition::Any));
        let other = "00000000000000000000000000000000";
        let TagCondition::List(tags) =
            TagCondition::parse(&format!("\"{other}\", W/\"{HELLO}\" ,{HELLO}")).unwrap()
        else {
            panic!("expected a list");
        };
        assert_eq!(tags.len(), 3);
        assert!(!tags[0].weak && tags[1].weak && !tags[2].weak);
        assert_eq!(TagCondition::strong_digests(&tags).len(), 2);
        assert!(TagCondition::parse("").is_err());
        assert!(TagCondition::parse(" , ").is_err());
        assert!(TagCondition::parse(&format!("{HELLO}, nope")).is_err());
        assert!(TagCondition::parse("**").is_err());
    }

    #[test]
    fn weak_tags_match_if_none_match() {
        let cond = TagCondition::parse(&format!("W/\"{HELLO}\"")).unwrap();
        assert!(cond.matches_weakly(&ETag::of(b"hello")));
        assert!(!cond.matches_weakly(&ETag::of(b"other")));
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a+b%20c%2Fd").unwrap(), "a+b c/d");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert_eq!(percent_decode("%zz"), Err(BadPart::Percent));
        assert_eq!(percent_decode("%4"), Err(BadPart::Percent));
        assert_eq!(percent_decode("%FF"), Err(BadPart::Utf8));
    }

    #[test]
    fn percent_encoding_round_trips() {
        for part in ["a/b c", "x:y@z+1%", "ключ", "~._-", "\u{1F600}"] {
            let encoded = percent_encode(part);
            assert!(!encoded.contains('/') && !encoded.contains(' ') && !encoded.contains('+'));
            assert_eq!(percent_decode(&encoded).unwrap(), part);
        }
    }

    #[test]
    fn cursors_round_trip() {
        for key in ["a", "a/b", "ключ", "x=y&z"] {
            assert_eq!(decode_cursor(&encode_cursor(key)).as_deref(), Some(key));
        }
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(""), None);
        assert_eq!(decode_cursor("_w"), None, "not UTF-8");
    }
}
