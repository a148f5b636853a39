//! A listing's keys as the page statements send them, one text of the keys
//! joined (PostgreSQL) or one binary text array (CockroachDB, and a page
//! whose keys hold the separator), read in place and written straight into
//! the page's JSON (no `String` a key, no UTF-8 check a key: the page's JSON
//! is checked once, whole).

use std::cmp::Ordering;

use fallible_iterator::FallibleIterator;
use postgres_protocol::types::array_from_sql;
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::Row;

use super::errors::db_error;
use super::row::revision_at;
use super::sql::KEY_SEPARATOR;
use crate::store::page::KeysJson;
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
/// more follow; `None` when a key holds the separator, which the caller
/// then lists as an array ([`key_page`]).
pub(super) fn joined_key_page(rows: &[Row], page: usize) -> Result<Option<KeyPage>, StoreError> {
    let row = only_row(rows)?;
    let revision = revision_at(row, 0)?;
    let RawText(raw) = row.try_get(1).map_err(|e| db_error(&e))?;
    joined_keys(raw, revision, page)
}

/// The page in `raw`: the count of keys, then each key after a separator.
fn joined_keys(raw: &[u8], revision: Revision, page: usize) -> Result<Option<KeyPage>, StoreError> {
    let malformed = || StoreError::Internal("a listing's joined keys are malformed".into());
    let at = raw
        .iter()
        .position(|&b| b == KEY_SEPARATOR)
        .ok_or_else(malformed)?;
    let count: usize = std::str::from_utf8(&raw[..at])
        .ok()
        .and_then(|count| count.parse().ok())
        .ok_or_else(malformed)?;
    let keys = &raw[at + 1..];
    if count == 0 {
        return match keys.is_empty() {
            true => KeysJson::new(page, 0).finish(revision).map(Some),
            false => Err(malformed()),
        };
    }
    // JSON spends 3 bytes a key, the separators 1. A key holding the
    // separator is read as more keys than the count: the page is not used.
    let mut json = KeysJson::new(page, keys.len() + 2 * count);
    match json.push_joined(keys, KEY_SEPARATOR)?.cmp(&count) {
        Ordering::Equal => {}
        Ordering::Greater => return Ok(None),
        Ordering::Less => return Err(malformed()),
    }
    json.finish(revision).map(Some)
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
    fn a_joined_page_is_read_key_by_key() {
        let page = joined("3\x1fa\x1fb \"q\"\x1fc", 3).unwrap().unwrap();
        assert_eq!(page.count, 3);
        assert_eq!(page.json, r#""a","b \"q\"","c""#);
        assert_eq!(page.more_after, None);
        assert_eq!(page.revision, 7);
        // One key more than the page: more follow, after the page's last.
        let page = joined("3\x1fa\x1fb\x1fc", 2).unwrap().unwrap();
        assert_eq!((page.count, page.json.as_str()), (2, r#""a","b""#));
        assert_eq!(page.more_after.as_deref(), Some("b"));
        let empty = joined("0\x1f", 10).unwrap().unwrap();
        assert_eq!(
            (empty.count, empty.json.as_str(), empty.more_after),
            (0, "", None)
        );
    }

    #[test]
    fn a_key_holding_the_separator_sends_the_page_back_to_the_array() {
        for text in [
            "2\x1fa\x1fb\x1fc",
            "1\x1f\x1fa",
            "1\x1fa\x1f",
            "2\x1fa\x1f\x1f",
        ] {
            assert_eq!(joined(text, 10).unwrap(), None, "{text:?}");
        }
    }

    #[test]
    fn a_malformed_joined_page_is_an_error() {
        for text in ["", "3", "x\x1fa", "-1\x1fa", "0\x1fa", "3\x1fa\x1fb"] {
            assert!(joined(text, 10).is_err(), "{text:?}");
        }
        let invalid = joined_keys(b"1\x1f\xff", 1, 10);
        assert!(invalid.is_err(), "a key that is not UTF-8");
    }
}
