//! A listing's page with its keys already written as JSON, from keys as
//! strings (any store) or as raw bytes (PostgreSQL's binary text array).

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

    /// Adds the keys `joined` holds, each ended by `separator` and the last
    /// by the text's end, as [`push`](Self::push) adds each (those past the
    /// page only noted); returns how many it holds.
    pub(crate) fn push_joined(
        &mut self,
        joined: &'k [u8],
        separator: u8,
    ) -> Result<usize, StoreError> {
        let mut keys = 0;
        let mut rest = joined;
        loop {
            keys += 1;
            let end = if self.count < self.page {
                if self.count > 0 {
                    self.out.push(b',');
                }
                let end = push_key_until(&mut self.out, rest, Some(separator))?;
                self.count += 1;
                self.last = &rest[..end];
                end
            } else {
                self.more = true;
                rest.iter()
                    .position(|&b| b == separator)
                    .unwrap_or(rest.len())
            };
            match rest.get(end + 1..) {
                Some(next) => rest = next,
                None => return Ok(keys),
            }
        }
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

/// Writes `key` as a JSON string. Most keys need no escape and are copied
/// byte by byte as they are checked (keys are short: one pass, no call a
/// key); the rest are escaped by serde_json, as every other string of a
/// response is.
#[inline]
fn push_key(out: &mut Vec<u8>, key: &[u8]) -> Result<(), StoreError> {
    out.reserve(key.len() + 2);
    push_key_until(out, key, None).map(drop)
}

/// Writes the key that starts `text` as a JSON string, as [`push_key`]: the
/// whole text, or up to the first `separator` (a control character, so
/// found by the escape test at no cost a byte). Returns the key's length.
#[inline(always)]
fn push_key_until(
    out: &mut Vec<u8>,
    text: &[u8],
    separator: Option<u8>,
) -> Result<usize, StoreError> {
    let open = out.len();
    out.push(b'"');
    for (at, &b) in text.iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            if Some(b) == separator {
                out.push(b'"');
                return Ok(at);
            }
            let end = match separator {
                Some(separator) => text[at..]
                    .iter()
                    .position(|&b| b == separator)
                    .map_or(text.len(), |len| at + len),
                None => text.len(),
            };
            out.truncate(open);
            let key = std::str::from_utf8(&text[..end]).map_err(|_| not_utf8())?;
            // Serializing a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            return Ok(end);
        }
        out.push(b);
    }
    out.push(b'"');
    Ok(text.len())
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
