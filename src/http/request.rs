//! What a request carries, parsed and checked before a handler sees it: path
//! parts, preconditions and content type from the headers, the query of a
//! listing, and the body within the size limit. Every failure is an
//! [`ApiError`] naming what was wrong.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::Request;

use crate::error::ApiError;
use crate::store::expiry::Expiry;
use crate::store::{DeleteCondition, PutCondition, DEFAULT_CONTENT_TYPE};
use crate::wire::{self, TagCondition};

pub use crate::wire::{MAX_KEY, MAX_NAMESPACE};
/// Largest `limit` of a paged listing.
pub const MAX_LIMIT: usize = 10_000;

/// A raw key path may not hold empty, `.` or `..` segments: proxies and clients
/// rewrite those, so such a key could not be addressed reliably. Percent-encode them.
pub(super) fn check_key_segments(key_raw: &str) -> Result<(), ApiError> {
    if key_raw
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(ApiError::bad_request(
            "invalid_key",
            "key path segments may not be empty, \".\" or \"..\"; percent-encode such keys",
        ));
    }
    Ok(())
}

/// Percent-decodes a namespace or key and checks its length and content.
pub(super) fn decode_part(raw: &str, what: &'static str, max: usize) -> Result<String, ApiError> {
    let code = if what == "key" {
        "invalid_key"
    } else {
        "invalid_namespace"
    };
    let text = wire::percent_decode(raw)
        .map_err(|e| ApiError::bad_request(code, format!("{what}: {e}")))?;
    check_text(&text, what, code, 1, max)?;
    Ok(text)
}

pub(super) fn check_text(
    text: &str,
    what: &str,
    code: &'static str,
    min: usize,
    max: usize,
) -> Result<(), ApiError> {
    if text.len() < min {
        return Err(ApiError::bad_request(code, format!("{what} is empty")));
    }
    if text.len() > max {
        return Err(ApiError::bad_request(
            code,
            format!("{what} is {} bytes, longer than {max}", text.len()),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::bad_request(
            code,
            format!("{what} contains a NUL byte"),
        ));
    }
    Ok(())
}

fn header_text<'h>(
    headers: &'h HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value.to_str().map(Some).map_err(|_| {
        ApiError::bad_request("invalid_header", format!("{name} is not visible ASCII"))
    })
}

pub(super) fn tag_condition(
    headers: &HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<TagCondition>, ApiError> {
    let Some(text) = header_text(headers, name)? else {
        return Ok(None);
    };
    TagCondition::parse(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_etag", format!("{name}: {e}")))
}

pub(super) fn put_condition(headers: &HeaderMap) -> Result<PutCondition, ApiError> {
    let if_match = tag_condition(headers, &header::IF_MATCH)?;
    let if_none_match = tag_condition(headers, &header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "conflicting_preconditions",
            "If-Match and If-None-Match cannot be combined",
        )),
        (None, None) => Ok(PutCondition::Always),
        (None, Some(TagCondition::Any)) => Ok(PutCondition::IfAbsent),
        (None, Some(TagCondition::List(_))) => Err(ApiError::bad_request(
            "invalid_precondition",
            "If-None-Match on PUT accepts only *",
        )),
        (Some(TagCondition::Any), None) => Ok(PutCondition::IfExists),
        (Some(TagCondition::List(tags)), None) => {
            Ok(PutCondition::IfMatch(TagCondition::strong_digests(&tags)))
        }
    }
}

pub(super) fn delete_condition(headers: &HeaderMap) -> Result<DeleteCondition, ApiError> {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return Err(ApiError::bad_request(
            "invalid_precondition",
            "If-None-Match is not supported on DELETE",
        ));
    }
    Ok(match tag_condition(headers, &header::IF_MATCH)? {
        None => DeleteCondition::Always,
        Some(TagCondition::Any) => DeleteCondition::IfExists,
        Some(TagCondition::List(tags)) => {
            DeleteCondition::IfMatch(TagCondition::strong_digests(&tags))
        }
    })
}

pub(super) fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    checked_content_type(header_text(headers, &header::CONTENT_TYPE)?, "Content-Type")
}

/// A content type to store: the default when none or blank, at most 255 bytes.
pub(super) fn checked_content_type(text: Option<&str>, what: &str) -> Result<String, ApiError> {
    match text {
        None => Ok(DEFAULT_CONTENT_TYPE.to_owned()),
        Some(t) if t.trim().is_empty() => Ok(DEFAULT_CONTENT_TYPE.to_owned()),
        Some(t) if t.len() > 255 => Err(ApiError::bad_request(
            "invalid_header",
            format!("{what} is longer than 255 bytes"),
        )),
        Some(t) => Ok(t.trim().to_owned()),
    }
}

/// The longest expiry a value may ask for without `HULY_MAX_TTL`: a hundred
/// years, far below what the databases' timestamps can hold.
const LONGEST_TTL: u64 = 100 * 365 * 86_400;

/// The expiry `Huly-TTL` or `Huly-Expire-At` asks for (neither: never), at
/// most `max_ttl` seconds from `now` (unix seconds).
pub(super) fn expiry(
    headers: &HeaderMap,
    max_ttl: Option<u64>,
    now: i64,
) -> Result<Expiry, ApiError> {
    let ttl = header_text(headers, &HeaderName::from_static("huly-ttl"))?;
    let at = header_text(headers, &HeaderName::from_static("huly-expire-at"))?;
    let seconds = |name: &str, text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| bad_expiry(format!("{name} {text:?} is not a whole number of seconds")))
    };
    match (ttl, at) {
        (None, None) => Ok(Expiry::Never),
        (Some(_), Some(_)) => Err(bad_expiry(
            "Huly-TTL and Huly-Expire-At cannot be combined".into(),
        )),
        (Some(text), None) => ttl_expiry(seconds("Huly-TTL", text)?, "Huly-TTL", max_ttl),
        (None, Some(text)) => at_expiry(
            seconds("Huly-Expire-At", text)?,
            "Huly-Expire-At",
            max_ttl,
            now,
        ),
    }
}

fn bad_expiry(why: String) -> ApiError {
    ApiError::bad_request("invalid_expiry", why)
}

/// An expiry `ttl` seconds from now: at least 1, at most `max_ttl`.
pub(super) fn ttl_expiry(ttl: i64, name: &str, max_ttl: Option<u64>) -> Result<Expiry, ApiError> {
    let longest = max_ttl.unwrap_or(LONGEST_TTL).min(LONGEST_TTL);
    if ttl < 1 {
        return Err(bad_expiry(format!("{name} {ttl} is not at least 1 second")));
    }
    if ttl.unsigned_abs() > longest {
        return Err(bad_expiry(format!(
            "{name} {ttl} is longer than the {longest} s allowed"
        )));
    }
    Ok(Expiry::After(ttl.unsigned_abs()))
}

/// An expiry at the unix second `at`: in the future, at most `max_ttl` from `now`.
pub(super) fn at_expiry(
    at: i64,
    name: &str,
    max_ttl: Option<u64>,
    now: i64,
) -> Result<Expiry, ApiError> {
    let longest = max_ttl.unwrap_or(LONGEST_TTL).min(LONGEST_TTL);
    if at <= now {
        return Err(bad_expiry(format!("{name} {at} is not in the future")));
    }
    if (at - now).unsigned_abs() > longest {
        return Err(bad_expiry(format!(
            "{name} {at} is more than the {longest} s allowed from now"
        )));
    }
    Ok(Expiry::At(at))
}

/// Reads the whole body within `timeout`, refusing it from `Content-Length`
/// before reading when that is over `limit`, and while streaming otherwise.
pub(super) async fn read_body(
    req: Request<Incoming>,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = match header_text(req.headers(), &header::CONTENT_LENGTH)? {
        None => None,
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_header", "Content-Length is not a number")
        })?),
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let capacity = declared.unwrap_or(0).min(limit) as usize;
    let mut body = req.into_body();
    let read = async {
        let mut buf = BytesMut::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::BodyIncomplete)?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

/// The query of a listing, a watch stream (`watch`) or a long poll (`changes`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ListParams {
    pub(super) prefix: String,
    pub(super) limit: Option<usize>,
    /// The key to continue after, decoded from `cursor`.
    pub(super) after: Option<String>,
    /// `?watch`: a Server-Sent Events stream of changes.
    pub(super) watch: bool,
    /// `?changes`: a long poll for changes.
    pub(super) changes: bool,
    /// `?values`: a listing with values.
    pub(super) values: bool,
    /// The revision the feed continues after.
    pub(super) since: Option<u64>,
    /// How long a long poll waits for a change.
    pub(super) wait: Option<Duration>,
}

/// Longest a long poll may wait (`wait`).
pub(super) const MAX_WAIT: Duration = Duration::from_secs(300);

/// A revision as a query parameter or `Last-Event-ID` writes it.
pub(super) fn parse_revision(text: &str, what: &str) -> Result<u64, ApiError> {
    text.trim().parse::<u64>().map_err(|_| {
        ApiError::bad_request(
            "invalid_revision",
            format!("{what} must be a revision (a whole number), not {text:?}"),
        )
    })
}

/// `Last-Event-ID`, which a reconnecting EventSource sends: it wins over `since`.
pub(super) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().unwrap_or("\u{fffd}");
            if text.trim().is_empty() {
                return Ok(None);
            }
            parse_revision(text, "Last-Event-ID").map(Some)
        }
    }
}

impl ListParams {
    /// Parses `application/x-www-form-urlencoded` (`+` is a space); unknown names are ignored.
    pub(super) fn parse(query: &str) -> Result<Self, ApiError> {
        let mut params = ListParams::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = wire::percent_decode(&raw.replace('+', " ")).map_err(|e| {
                ApiError::bad_request("invalid_query", format!("query parameter {name:?}: {e}"))
            })?;
            match name {
                "prefix" => {
                    check_text(&value, "prefix", "invalid_prefix", 0, MAX_KEY)?;
                    params.prefix = value;
                }
                "limit" => {
                    let limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_limit",
                                format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                    params.limit = Some(limit);
                }
                "watch" => params.watch = true,
                "changes" => params.changes = true,
                "values" => params.values = true,
                "since" => params.since = Some(parse_revision(&value, "since")?),
                "wait" => {
                    let wait = crate::config::parse_duration(&value)
                        .ok()
                        .filter(|d| *d <= MAX_WAIT)
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_wait",
                                "wait must be a duration such as 30s, at most 5m",
                            )
                        })?;
                    params.wait = Some(wait);
                }
                "cursor" => {
                    // A cursor holds the last key of a page: one that could
                    // never be a key is none this service issued.
                    let after = wire::decode_cursor(&value)
                        .filter(|key| key.len() <= MAX_KEY && !key.contains('\0'))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_cursor",
                                "cursor is not one this service issued",
                            )
                        })?;
                    params.after = Some(after);
                }
                _ => {}
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ETag;
    use hyper::header::HeaderValue;

    #[test]
    fn key_segments() {
        assert!(check_key_segments("a/b%2F%2Fc").is_ok());
        assert!(check_key_segments("a/%2E%2E/b").is_ok());
        for bad in ["a//b", "a/../b", "./a", "a/", "/a"] {
            assert!(check_key_segments(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_params() {
        let p = ListParams::parse("prefix=a+b%2Bc&limit=10&cursor=YQ&x=1").unwrap();
        assert_eq!(p.prefix, "a b+c");
        assert_eq!(p.limit, Some(10));
        assert_eq!(p.after.as_deref(), Some("a"));
        for bad in [
            "limit=0",
            "limit=10001",
            "limit=x",
            "cursor=!!",
            "cursor=YQBi",
            "prefix=%00",
            "prefix=%zz",
            "prefix=%FF",
        ] {
            assert!(ListParams::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ListParams::parse("").unwrap(), ListParams::default());
    }

    #[test]
    fn put_conditions() {
        let tag = "\"5d41402abc4b2a76b9719d911017c592\"";
        let mut h = HeaderMap::new();
        assert_eq!(put_condition(&h).unwrap(), PutCondition::Always);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(put_condition(&h).unwrap(), PutCondition::IfAbsent);
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert!(put_condition(&h).is_err(), "both headers");
        h.remove(header::IF_NONE_MATCH);
        assert_eq!(put_condition(&h).unwrap(), PutCondition::IfExists);
        h.insert(
            header::IF_MATCH,
            HeaderValue::from_str(&format!("W/{tag}, {tag}")).unwrap(),
        );
        assert_eq!(
            put_condition(&h).unwrap(),
            PutCondition::IfMatch(vec![ETag::of(b"hello").0])
        );
        h.remove(header::IF_MATCH);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(tag));
        assert!(put_condition(&h).is_err(), "If-None-Match with a tag");
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"nothex\""),
        );
        assert!(put_condition(&h).is_err());
    }

    #[test]
    fn expiry_headers() {
        let now = 1_000_000;
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, HeaderValue::from_static(value));
            }
            expiry(&h, Some(3600), now)
        };
        assert_eq!(with(&[]).unwrap(), Expiry::Never);
        assert_eq!(with(&[("huly-ttl", " 60 ")]).unwrap(), Expiry::After(60));
        assert_eq!(
            with(&[("Huly-Expire-At", "1000060")]).unwrap(),
            Expiry::At(1_000_060)
        );
        for bad in [
            &[("huly-ttl", "0")][..],
            &[("huly-ttl", "-5")][..],
            &[("huly-ttl", "1.5")][..],
            &[("huly-ttl", "soon")][..],
            &[("huly-ttl", "3601")][..],
            &[("huly-ttl", "99999999999999999999")][..],
            &[("huly-expire-at", "1000000")][..],
            &[("huly-expire-at", "999999")][..],
            &[("huly-expire-at", "1003601")][..],
            &[("huly-ttl", "5"), ("huly-expire-at", "1000060")][..],
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_expiry", "{bad:?}");
        }
        let unbounded = expiry(&HeaderMap::new(), None, now).unwrap();
        assert_eq!(unbounded, Expiry::Never);
    }
}
