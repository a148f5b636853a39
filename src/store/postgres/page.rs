//! A listing's keys as the page statement sends them: one binary text array,
//! read in place and written straight into the page's JSON (no `String` a
//! key, no UTF-8 check a key: the page's JSON is checked once, whole).

use fallible_iterator::FallibleIterator;
use postgres_protocol::types::array_from_sql;
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::Row;

use super::errors::db_error;
use super::row::revision_at;
use crate::store::page::KeysJson;
use crate::store::{KeyPage, StoreError};

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

/// The page in `row` (the revision, then the keys; see `sql::page`), of up
/// to `page` keys, the array holding one more when more follow.
pub(super) fn key_page(row: &Row, page: usize) -> Result<KeyPage, StoreError> {
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
