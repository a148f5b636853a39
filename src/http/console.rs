//! The web console (SPEC §23): the page, script and stylesheet of `console/`,
//! compiled in and served as they are, with the headers that keep them to
//! their own origin. The console has no routes of its own for data: its
//! script calls API v2 with the token the user typed, like any client.

use std::sync::OnceLock;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::response::{empty, full, ResBody};
use crate::error::ApiError;

/// What the console's files may do: scripts, styles and requests of their
/// own origin only, images of their own or `data:` (the page's icon), no
/// inline script or style, no `eval`, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// One file of the console.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file one page load fetches. The page refers to the others by
/// relative paths (`console/console.js`), so a proxy may mount the service
/// under a prefix.
const ASSETS: [Asset; 3] = [
    Asset {
        path: "/console",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../console/index.html"),
    },
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../console/console.js"),
    },
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../console/console.css"),
    },
];

/// An asset as sent: its entity tag, and its bytes gzipped once.
struct Prepared {
    etag: HeaderValue,
    gzip_etag: HeaderValue,
    gzipped: Bytes,
}

/// Whether `path` belongs to the console (so the router sends it here, not
/// to the data routes, which it cannot be anyway).
pub(super) fn serves(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Answers a request under `/console`: an asset, or `404`/`405` as JSON.
pub(super) fn respond(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response<ResBody>, ApiError> {
    if path == "/console/" {
        // The page's relative links need it at `/console`; `../console`
        // keeps a prefix a proxy mounted the service under.
        return Ok(Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header(header::LOCATION, "../console")
            .body(empty())
            .unwrap_or_else(|_| super::response::plain_500()));
    }
    let index = ASSETS
        .iter()
        .position(|a| a.path == path)
        .ok_or(ApiError::NoRoute)?;
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    let asset = &ASSETS[index];
    let prepared = &prepared()[index];
    let gzip = accepts_gzip(headers);
    let etag = if gzip {
        &prepared.gzip_etag
    } else {
        &prepared.etag
    };
    let mut builder = Response::builder()
        .header(header::ETAG, etag.clone())
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "Accept-Encoding")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("Cross-Origin-Opener-Policy", "same-origin")
        .header("Cross-Origin-Resource-Policy", "same-origin");
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    if unchanged {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    builder = builder.header(header::CONTENT_TYPE, asset.content_type);
    let body = if gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
        prepared.gzipped.clone()
    } else {
        Bytes::from_static(asset.bytes)
    };
    let response = if method == Method::HEAD {
        builder
            .header(header::CONTENT_LENGTH, body.len())
            .body(empty())
    } else {
        builder.body(full(body))
    };
    response.map_err(|e| ApiError::Internal(e.to_string()))
}

/// The assets' tags and gzipped bytes, made on the first request.
fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| ASSETS.iter().map(prepare).collect())
}

fn prepare(asset: &Asset) -> Prepared {
    let digest = format!("{:x}", md5::compute(asset.bytes));
    Prepared {
        etag: HeaderValue::from_str(&format!("\"{digest}\""))
            .unwrap_or(HeaderValue::from_static("\"console\"")),
        gzip_etag: HeaderValue::from_str(&format!("\"{digest}-gzip\""))
            .unwrap_or(HeaderValue::from_static("\"console-gzip\"")),
        gzipped: Bytes::from(gzip(asset.bytes)),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether `Accept-Encoding` takes gzip (not refused with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn the_gzipped_files_unzip_to_the_files() {
        use std::io::Read;
        for (asset, prepared) in ASSETS.iter().zip(prepared()) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&prepared.gzipped[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, asset.bytes, "{}", asset.path);
            assert!(prepared.gzipped.len() < asset.bytes.len(), "{}", asset.path);
        }
    }

    #[test]
    fn a_page_load_is_under_200_kb() {
        let total: usize = ASSETS.iter().map(|a| a.bytes.len()).sum();
        assert!(total < 200_000, "the console's files hold {total} bytes");
    }

    #[test]
    fn a_matching_tag_answers_304_and_others_the_file() {
        let plain = respond(&Method::GET, "/console", &headers(&[])).unwrap();
        assert_eq!(plain.status(), StatusCode::OK);
        let tag = plain.headers()[header::ETAG].to_str().unwrap().to_owned();
        let csp = plain.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe"));
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        let cached = respond(&Method::GET, "/console", &again).unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        // The gzipped file is another representation with its own tag.
        again.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let zipped = respond(&Method::GET, "/console", &again).unwrap();
        assert_eq!(zipped.status(), StatusCode::OK);
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(matches!(
            respond(&Method::GET, "/console/other.js", &headers(&[])),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            respond(&Method::POST, "/console", &headers(&[])),
            Err(ApiError::MethodNotAllowed { .. })
        ));
    }
}
