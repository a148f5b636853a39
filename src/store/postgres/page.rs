//! A listing's keys as the page statements send them, one text of the keys
//! joined by `","` (PostgreSQL), copied whole when no key needs an escape,
//! or one binary text array (CockroachDB, and a page one of whose keys
//! holds a quote), read in place and written straight into the page's JSON
//! (no `String` a key, no UTF-8 check a key: the page's JSON is checked
//! once, whole).

use fallible_iterator::FallibleIterator;
use postgres_protocol::types::array_from_sql;
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::Row;

use super::errors::db_error;
use super::row::revision_at;
use crate::store::page::{malformed_joined, KeysJson};
use crate::store::{KeyPage, Revision, StoreError};

/// The keys of a page as the database sent them: the array's bytes.
struct RawKeys<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawKeys<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawKeys(raw))
    }

    /// An array of text: `ARRAY(SELECT key …)` on either engine (TEXT is
    /// CockroachDB's STRING). Only types whose binary form is the bytes.
    fn accepts(ty: &Type) -> bool {
        match ty.kind() {
            Kind::Array(member) => {
                matches!(
                    *member,
                    Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME
                )
            }
            _ => false,
        }
    }
}

/// The keys of a joined page as the database sent them: the text's bytes.
struct RawText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawText<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawText(raw))
    }

    /// Text, whose binary form is the bytes.
    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME)
    }
}

/// The one row a page statement answers.
fn only_row(rows: &[Row]) -> Result<&Row, StoreError> {
    rows.first()
        .ok_or_else(|| StoreError::Internal("a listing answered no row".into()))
}

/// The page in `rows` (the revision, then the keys joined; see
/// `sql::joined_page`), of up to `page` keys, the text holding one more when
/// more follow; `None` when a key holds a quote, which the caller then
/// lists as an array ([`key_page`]).
pub(super) fn joined_key_page(rows: &[Row], page: usize) -> Result<Option<KeyPage>, StoreError> {
    let row = only_row(rows)?;
    let revision = revision_at(row, 0)?;
    let RawText(raw) = row.try_get(1).map_err(|e| db_error(&e))?;
    joined_keys(raw, revision, page)
}

/// The page in `raw`: the count of keys and a quote, then the keys joined
/// by `","`.
fn joined_keys(raw: &[u8], revision: Revision, page: usize) -> Result<Option<KeyPage>, StoreError> {
    let at = raw
        .iter()
        .position(|&b| b == b'"')
        .ok_or_else(malformed_joined)?;
    let count: usize = std::str::from_utf8(&raw[..at])
        .ok()
        .and_then(|count| count.parse().ok())
        .ok_or_else(malformed_joined)?;
    let keys = &raw[at + 1..];
    let mut json = KeysJson::new(page, keys.len() + 2);
    match json.push_joined(keys, count)? {
        true => json.finish(revision).map(Some),
        false => Ok(None),
    }
}

/// The page in `rows` (the revision, then the keys; see `sql::page`), of up
/// to `page` keys, the array holding one more when more follow.
pub(super) fn key_page(rows: &[Row], page: usize) -> Result<KeyPage, StoreError> {
    let row = only_row(rows)?;
    let revision = revision_at(row, 0)?;
    let RawKeys(raw) = row.try_get(1).map_err(|e| db_error(&e))?;
    let malformed = |e: Box<dyn std::error::Error + Sync + Send>| {
        StoreError::Internal(format!("a listing's key array is malformed: {e}"))
    };
    let array = array_from_sql(raw).map_err(malformed)?;
    if array.dimensions().count().map_err(malformed)? > 1 {
        return Err(StoreError::Internal(
            "a listing's key array has more than one dimension".into(),
        ));
    }
    // Each key is a 4-byte length and its bytes; JSON spends 3 bytes a key.
    let mut json = KeysJson::new(page, raw.len());
    let mut keys = array.values();
    while let Some(key) = keys.next().map_err(malformed)? {
        let key = key.ok_or_else(|| StoreError::Internal("a listed key is NULL".into()))?;
        if !json.push(key)? {
            break;
        }
    }
    json.finish(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(text: &str, page: usize) -> Result<Option<KeyPage>, StoreError> {
        joined_keys(text.as_bytes(), 7, page)
    }

    #[test]
    fn a_joined_page_is_its_json_between_quotes() {
        let page = joined("3\"a\",\"b c\",\"d", 3).unwrap().unwrap();
        assert_eq!(page.count, 3);
        assert_eq!(page.json, r#""a","b c","d""#);
        assert_eq!(page.more_after, None);
        assert_eq!(page.revision, 7);
        // One key more than the page: more follow, after the page's last.
        let page = joined("3\"a\",\"b\",\"c", 2).unwrap().unwrap();
        assert_eq!((page.count, page.json.as_str()), (2, r#""a","b""#));
        assert_eq!(page.more_after.as_deref(), Some("b"));
        let page = joined("2\"a\",\"b", 1).unwrap().unwrap();
        assert_eq!((page.count, page.json.as_str()), (1, r#""a""#));
        assert_eq!(page.more_after.as_deref(), Some("a"));
        let empty = joined("0\"", 10).unwrap().unwrap();
        assert_eq!(
            (empty.count, empty.json.as_str(), empty.more_after),
            (0, "", None)
        );
        let one_empty_key = joined("1\"", 10).unwrap().unwrap();
        assert_eq!(
            (one_empty_key.count, one_empty_key.json.as_str()),
            (1, r#""""#)
        );
    }

    #[test]
    fn joined_keys_that_need_an_escape_are_escaped_key_by_key() {
        let page = joined("3\"a\\b\",\"c\nd\",\"\u{1f}", 3).unwrap().unwrap();
        assert_eq!(page.json, r#""a\\b","c\nd","\u001f""#);
        let page = joined("3\"a\",\"b\\\",\"c", 2).unwrap().unwrap();
        assert_eq!((page.count, page.json.as_str()), (2, r#""a","b\\""#));
        assert_eq!(page.more_after.as_deref(), Some("b\\"));
    }

    #[test]
    fn a_key_holding_a_quote_sends_the_page_back_to_the_array() {
        for text in [
            "1\"a\",\"b",
            "2\"a\"\",\"b",
            "1\"\"",
            "2\"a\",\"\",\"",
            "1\"\\\"",
        ] {
            assert_eq!(joined(text, 10).unwrap(), None, "{text:?}");
        }
    }

    #[test]
    fn a_malformed_joined_page_is_an_error() {
        for text in ["", "3", "x\"a", "-1\"a", "0\"a", "3\"a\",\"b", "2\"a"] {
            assert!(joined(text, 10).is_err(), "{text:?}");
        }
        for invalid in [&b"1\"\xff"[..], b"2\"a\",\"\xfe\n"] {
            assert!(
                joined_keys(invalid, 1, 10).is_err(),
                "{invalid:?} is not UTF-8"
            );
        }
    }
}
