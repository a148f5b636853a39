//! A listing's page with its keys already written as JSON, from keys as
//! strings (any store), as raw bytes (PostgreSQL's binary text array) or
//! joined by `","` into one text (PostgreSQL's page statement).

use std::cmp::Ordering;

use super::changes::Revision;
use super::StoreError;

/// A page of a listing, its keys already written as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The namespace's revision, read no later than the first key.
    pub revision: Revision,
    /// How many keys `json` holds.
    pub count: usize,
    /// The keys as JSON strings in byte order, separated by commas, without
    /// brackets: `"a","b"`; empty for no key.
    pub json: String,
    /// The page's last key when more keys follow it, else `None`.
    pub more_after: Option<String>,
}

impl KeyPage {
    /// The page of up to `page` keys out of `keys`, which holds one more
    /// when more follow.
    pub fn from_keys<K: AsRef<str>>(revision: Revision, keys: &[K], page: usize) -> KeyPage {
        let capacity = keys.iter().map(|k| k.as_ref().len() + 3).sum();
        let mut json = KeysJson::new(page, capacity);
        // Strings are UTF-8: neither step can fail (an empty page if one did).
        for key in keys {
            if !json.push(key.as_ref().as_bytes()).unwrap_or(false) {
                break;
            }
        }
        json.finish(revision).unwrap_or(KeyPage {
            revision,
            count: 0,
            json: String::new(),
            more_after: None,
        })
    }
}

/// A page's JSON as it is written, one key at a time, up to `page` keys; a
/// key past those says that more follow.
pub(crate) struct KeysJson<'k> {
    out: Vec<u8>,
    count: usize,
    page: usize,
    last: &'k [u8],
    more: bool,
}

impl<'k> KeysJson<'k> {
    /// An empty page of up to `page` keys, `capacity` bytes of JSON reserved.
    pub(crate) fn new(page: usize, capacity: usize) -> KeysJson<'k> {
        KeysJson {
            out: Vec::with_capacity(capacity),
            count: 0,
            page,
            last: &[],
            more: false,
        }
    }

    /// Adds `key`, or notes that more keys follow when the page is full
    /// (and returns false: the caller stops).
    #[inline]
    pub(crate) fn push(&mut self, key: &'k [u8]) -> Result<bool, StoreError> {
        if self.count == self.page {
            self.more = true;
            return Ok(false);
        }
        if self.count > 0 {
            self.out.push(b',');
        }
        push_key(&mut self.out, key)?;
        self.count += 1;
        self.last = key;
        Ok(true)
    }

    /// Adds the `count` keys of `joined`, each but the last followed by
    /// `","` (as PostgreSQL's page statement sends them), as
    /// [`push`](Self::push) adds each, those past the page only noted.
    /// Returns false, and writes nothing, when a key holds a quote: its
    /// keys cannot then be told apart. Otherwise the keys between two quotes
    /// are their JSON when none needs an escape, the common case, and a
    /// fresh page's JSON is the text copied whole. Fewer quotes than
    /// `count` keys need is an error.
    pub(crate) fn push_joined(
        &mut self,
        joined: &'k [u8],
        count: usize,
    ) -> Result<bool, StoreError> {
        let (quotes, escapes) = quotes_and_escapes(joined);
        let Some(separators) = count.checked_sub(1) else {
            return match joined.is_empty() {
                true => Ok(true),
                false => Err(malformed_joined()),
            };
        };
        match quotes.cmp(&(2 * separators)) {
            Ordering::Less => return Err(malformed_joined()),
            Ordering::Greater => return Ok(false),
            Ordering::Equal => {}
        }
        if escapes || self.count > 0 || self.page == 0 {
            for key in joined.split(|&b| b == b'"').step_by(2) {
                if !self.push(key)? {
                    break;
                }
            }
            return Ok(true);
        }
        // All the keys, or those before the separator that ends the page,
        // found from the end: a page asks for one key more than it shows.
        let end = match count.checked_sub(self.page) {
            None | Some(0) => joined.len(),
            Some(past) => joined
                .iter()
                .enumerate()
                .rev()
                .filter(|&(_, &b)| b == b'"')
                .nth(2 * past - 1)
                .map_or(joined.len(), |(at, _)| at),
        };
        let shown = &joined[..end];
        self.out.reserve(shown.len() + 2);
        self.out.push(b'"');
        self.out.extend_from_slice(shown);
        self.out.push(b'"');
        let last = shown
            .iter()
            .rposition(|&b| b == b'"')
            .map_or(0, |at| at + 1);
        self.last = &shown[last..];
        self.count = count.min(self.page);
        self.more = count > self.page;
        Ok(true)
    }

    /// The page, its JSON checked to be UTF-8.
    pub(crate) fn finish(self, revision: Revision) -> Result<KeyPage, StoreError> {
        let json = String::from_utf8(self.out).map_err(|_| not_utf8())?;
        // A page of no keys has no last key to continue after.
        let more_after = match self.more && self.count > 0 {
            true => Some(String::from_utf8(self.last.to_vec()).map_err(|_| not_utf8())?),
            false => None,
        };
        Ok(KeyPage {
            revision,
            count: self.count,
            json,
            more_after,
        })
    }
}

/// How many quotes `text` holds, and whether any byte of it needs an escape
/// in a JSON string (a control character or a backslash; a quote is
/// counted). Counted a chunk at a time in bytes, so the loop runs on wide
/// registers.
fn quotes_and_escapes(text: &[u8]) -> (usize, bool) {
    let (mut quotes, mut escapes) = (0usize, 0u8);
    for chunk in text.chunks(255) {
        let (mut chunk_quotes, mut chunk_escapes) = (0u8, 0u8);
        for &b in chunk {
            chunk_quotes += u8::from(b == b'"');
            chunk_escapes |= u8::from(b < 0x20) | u8::from(b == b'\\');
        }
        quotes += usize::from(chunk_quotes);
        escapes |= chunk_escapes;
    }
    (quotes, escapes != 0)
}

/// Writes `key` as a JSON string. Most keys need no escape and are copied
/// byte by byte as they are checked (keys are short: one pass, no call a
/// key); the rest are escaped by serde_json, as every other string of a
/// response is.
#[inline]
fn push_key(out: &mut Vec<u8>, key: &[u8]) -> Result<(), StoreError> {
    out.reserve(key.len() + 2);
    let open = out.len();
    out.push(b'"');
    for &b in key {
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.truncate(open);
            let key = std::str::from_utf8(key).map_err(|_| not_utf8())?;
            // Serializing a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            return Ok(());
        }
        out.push(b);
    }
    out.push(b'"');
    Ok(())
}

/// A joined page that does not hold what its count says.
pub(crate) fn malformed_joined() -> StoreError {
    StoreError::Internal("a listing's joined keys are malformed".into())
}

fn not_utf8() -> StoreError {
    StoreError::Internal("a listed key is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_as_serde_json_writes_them() {
        let keys = [
            "a", "b\"c", "d\\e", "f\ng", "\u{1}", "é/ü", "\u{7f}", "\u{2028}", "",
        ];
        let page = KeyPage::from_keys(7, &keys, keys.len());
        let expected: Vec<String> = keys
            .iter()
            .map(|k| serde_json::to_string(k).unwrap())
            .collect();
        assert_eq!(page.json, expected.join(","));
        assert_eq!(page.count, keys.len());
        assert_eq!(page.more_after, None);
    }

    #[test]
    fn one_key_more_than_the_page_makes_the_last_one_the_cursor() {
        let keys = ["a", "b", "c"];
        let page = KeyPage::from_keys(1, &keys, 2);
        assert_eq!((page.json.as_str(), page.count), ("\"a\",\"b\"", 2));
        assert_eq!(page.more_after.as_deref(), Some("b"));
        let whole = KeyPage::from_keys(1, &keys, 3);
        assert_eq!((whole.count, whole.more_after), (3, None));
        let empty = KeyPage::from_keys::<&str>(1, &[], 3);
        assert_eq!((empty.json.as_str(), empty.count), ("", 0));
        let none = KeyPage::from_keys(1, &keys, 0);
        assert_eq!((none.count, none.more_after), (0, None));
    }

    #[test]
    fn joined_keys_are_written_as_keys_one_by_one() {
        let sets: [&[&str]; 9] = [
            &["a", "bc", "def"],
            &["0", "1", "10", "100"],
            &[""],
            &["", ""],
            &["é", "€", "😀"],
            &["a b", "/c:d", "~"],
            &["a\\b", "c"],
            &["x\ny", "z", "\u{1f}"],
            &["\u{7f}", "\u{2028}"],
        ];
        for keys in sets {
            let joined = keys.join("\",\"");
            for page in 0..=keys.len() + 1 {
                let mut json = KeysJson::new(page, 0);
                assert!(json.push_joined(joined.as_bytes(), keys.len()).unwrap());
                let expected = KeyPage::from_keys(3, keys, page);
                assert_eq!(json.finish(3).unwrap(), expected, "{keys:?}, page {page}");
            }
        }
    }

    #[test]
    fn joined_keys_holding_quotes_are_not_written() {
        let mut json = KeysJson::new(5, 0);
        assert!(!json.push_joined(br#"a"b"#, 1).unwrap());
        assert!(!json.push_joined(br#"a","b"#, 1).unwrap());
        assert!(json.out.is_empty());
        assert!(json.push_joined(br#"a","b"#, 3).is_err());
        assert!(json.push_joined(b"a", 0).is_err());
        assert!(json.push_joined(b"", 0).unwrap());
    }

    #[test]
    fn raw_keys_that_are_not_utf8_are_refused() {
        // Copied whole, then refused with the page.
        let mut plain = KeysJson::new(5, 16);
        assert!(plain.push(b"ok").unwrap());
        assert!(plain.push(b"\xff\xfe").unwrap());
        assert!(plain.finish(1).is_err());
        // Needing an escape, refused at once.
        let mut escaped = KeysJson::new(5, 16);
        assert!(escaped.push(b"\"\xff").is_err());
    }
}
