//! The client subcommands `put`, `get`, `delete`, `list`, `watch` and `probe`: one reqwest
//! client per run, API v2 with `-w WORKSPACE`, the legacy API without it.
//! Every failure becomes a [`Failure`] whose exit code follows SPEC §9.

use std::io::IsTerminal;
use std::path::Path;

use reqwest::header::{HeaderValue, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod args;
mod probe;
mod service;
mod tls;
mod txn;
mod values;
mod watch;

pub use args::{ClientArgs, DeleteArgs, GetArgs, ListArgs, PutArgs, TxnArgs, WatchArgs};
pub use probe::{probe, ProbeArgs};
/// A failed request's innermost cause in words, for the drill's unknown outcomes too.
pub(crate) use tls::cause;
pub use txn::txn;
pub use watch::watch;

use self::service::{if_match_value, refused, shown, shown_path, Api, Service};
use crate::config::parse_duration;
use crate::exit::Failure;
use crate::wire::KeyList;

/// `put`: stores a value from the argument, `--file` or stdin.
pub async fn put(args: &PutArgs) -> Result<(), Failure> {
    let what = format!("put {}", shown_path(&args.namespace, &args.key));
    // (flag, header, its value, what a 412 then means)
    let precondition = if let Some(tag) = &args.if_match {
        let value = if_match_value(tag)?;
        Some(("--if-match", IF_MATCH, value, "ETag did not match"))
    } else if args.if_exists {
        let any = HeaderValue::from_static("*");
        Some(("--if-exists", IF_MATCH, any, "no value is stored"))
    } else if args.if_absent {
        let any = HeaderValue::from_static("*");
        Some((
            "--if-absent",
            IF_NONE_MATCH,
            any,
            "a value is already stored",
        ))
    } else {
        None
    };
    let content_type = args
        .content_type
        .as_deref()
        .map(|text| {
            HeaderValue::from_str(text)
                .map_err(|_| Failure::usage(format!("--content-type {text:?}: not a header value")))
        })
        .transpose()?;
    let expiry = expiry_header(args)?;
    let service = Service::new(&args.client)?;
    if let Some((flag, ..)) = &precondition {
        service.needs_v2(&what, flag)?;
    }
    if args.previous {
        service.needs_v2(&what, "--previous")?;
    }
    let url = service.value_url(&what, &args.namespace, &args.key)?;
    let value = read_value(&what, args).await?;

    let method = match service.api {
        Api::V2(_) => Method::PUT,
        Api::Legacy => Method::POST,
    };
    let mut request = service.request(method, url).body(value);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    if let Some((name, value)) = expiry {
        request = request.header(name, value);
    }
    if args.previous {
        request = request.header(RETURN_PREVIOUS.0, RETURN_PREVIOUS.1);
    }
    let hint = match precondition {
        Some((_, name, value, hint)) => {
            request = request.header(name, value);
            hint
        }
        None => "",
    };
    let response = service.send(&what, request).await?;
    if !response.status().is_success() {
        return Err(refused(&what, response, hint).await);
    }
    if args.etag {
        print_etag(&response);
    }
    print_previous(&what, response).await
}

/// The header that asks a write for the value it replaces.
const RETURN_PREVIOUS: (&str, &str) = ("Huly-Return", "previous");

/// Writes the value a `--previous` write replaced (a `200` body) to stdout.
async fn print_previous(what: &str, response: Response) -> Result<(), Failure> {
    if response.status() != StatusCode::OK {
        return Ok(());
    }
    let mut stdout = tokio::io::stdout();
    match copy_body(response, &mut stdout).await {
        Err(CopyError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.failure(what, "stdout")),
        Ok(()) => Ok(()),
    }
}

/// `get`: writes a value's raw bytes to stdout or `--output`, as they arrive.
pub async fn get(args: &GetArgs) -> Result<(), Failure> {
    let what = format!("get {}", shown_path(&args.namespace, &args.key));
    let service = Service::new(&args.client)?;
    let url = service.value_url(&what, &args.namespace, &args.key)?;
    let response = service
        .send(&what, service.request(Method::GET, url))
        .await?;
    if response.status() != StatusCode::OK {
        return Err(refused(&what, response, "").await);
    }
    if args.etag {
        print_etag(&response);
    }
    if args.meta {
        print_meta(&response);
    }
    match args.output.as_deref().filter(|p| *p != Path::new("-")) {
        None => {
            let mut stdout = tokio::io::stdout();
            match copy_body(response, &mut stdout).await {
                Err(CopyError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e.failure(&what, "stdout")),
                Ok(()) => Ok(()),
            }
        }
        Some(path) => {
            // Created only now, so a missing key leaves an existing file alone.
            let mut file = tokio::fs::File::create(path).await.map_err(|e| {
                Failure::error(format!("{what}: cannot create {}: {e}", path.display()))
            })?;
            let copied = copy_body(response, &mut file).await;
            if let Err(e) = copied {
                drop(file);
                // A partial value must not pass for the whole one.
                let _ = tokio::fs::remove_file(path).await;
                return Err(e.failure(&what, &path.display().to_string()));
            }
            Ok(())
        }
    }
}

/// `delete`: removes a value, optionally only if its ETag matches.
pub async fn delete(args: &DeleteArgs) -> Result<(), Failure> {
    let key = match (&args.key, &args.prefix) {
        (_, Some(prefix)) => return delete_prefix(args, prefix).await,
        (Some(key), None) => key,
        (None, None) => return Err(Failure::usage("delete: give a KEY or --prefix")),
    };
    let what = format!("delete {}", shown_path(&args.namespace, key));
    let if_match = args.if_match.as_deref().map(if_match_value).transpose()?;
    let service = Service::new(&args.client)?;
    if if_match.is_some() {
        service.needs_v2(&what, "--if-match")?;
    }
    if args.previous {
        service.needs_v2(&what, "--previous")?;
    }
    let url = service.value_url(&what, &args.namespace, key)?;
    let mut request = service.request(Method::DELETE, url);
    if let Some(tag) = if_match {
        request = request.header(IF_MATCH, tag);
    }
    if args.previous {
        request = request.header(RETURN_PREVIOUS.0, RETURN_PREVIOUS.1);
    }
    let response = service.send(&what, request).await?;
    if !response.status().is_success() {
        return Err(refused(&what, response, "ETag did not match").await);
    }
    print_previous(&what, response).await
}

/// `delete --prefix`: deletes every key starting with `prefix`; prints how many.
async fn delete_prefix(args: &DeleteArgs, prefix: &str) -> Result<(), Failure> {
    let what = format!(
        "delete {} --prefix {}",
        shown(&args.namespace),
        shown(prefix)
    );
    if prefix.is_empty() && !args.yes {
        return Err(Failure::usage(format!(
            "{what}: an empty prefix deletes the whole namespace; add --yes to do that"
        )));
    }
    let service = Service::new(&args.client)?;
    service.needs_v2(&what, "--prefix")?;
    let mut url = service.list_url(&what, &args.namespace, None, 1, None)?;
    url.set_query(None);
    url.query_pairs_mut().append_pair("prefix", prefix);
    let response = service
        .send(&what, service.request(Method::DELETE, url))
        .await?;
    if response.status() != StatusCode::OK {
        return Err(refused(&what, response, "").await);
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| service.transport(&what, e))?;
    let deleted = body["deleted"]
        .as_u64()
        .ok_or_else(|| Failure::error(format!("{what}: the service sent an unexpected answer")))?;
    println!("{deleted}");
    Ok(())
}

/// `list`: prints every key of a namespace, one a line, fetching page after
/// page (API v2); `--json` prints one document with all pages merged.
pub async fn list(args: &ListArgs) -> Result<(), Failure> {
    if args.values {
        return values::list_values(args).await;
    }
    let what = format!("list {}", shown(&args.namespace));
    let service = Service::new(&args.client)?;
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let mut merged: Option<KeyList> = None;
    let mut cursor: Option<String> = None;
    loop {
        let url = service.list_url(
            &what,
            &args.namespace,
            args.prefix.as_deref(),
            args.page_size,
            cursor.as_deref(),
        )?;
        let mut page: KeyList = fetch_page(&service, &what, url).await?;
        let next = page.cursor.take();
        if !args.json {
            if let Err(e) = write_lines(&mut out, &page.keys).await {
                return stdout_failure(&what, e);
            }
        }
        match &mut merged {
            None => merged = Some(page),
            Some(all) => all.keys.append(&mut page.keys),
        }
        // The legacy API sends every key at once and no cursor.
        let next = next.filter(|_| matches!(service.api, Api::V2(_)));
        if !advance(&what, &mut cursor, next)? {
            break;
        }
    }
    let merged = merged.filter(|_| args.json).map(|mut all| {
        all.count = all.keys.len();
        all
    });
    finish(&what, &mut out, merged).await
}

/// GETs one page of a listing and reads its JSON.
async fn fetch_page<T: serde::de::DeserializeOwned>(
    service: &Service,
    what: &str,
    url: reqwest::Url,
) -> Result<T, Failure> {
    let response = service
        .send(what, service.request(Method::GET, url))
        .await?;
    if response.status() != StatusCode::OK {
        return Err(refused(what, response, "").await);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| service.transport(what, e))?;
    serde_json::from_slice(&body).map_err(|e| {
        Failure::error(format!(
            "{what}: the service sent an unexpected listing: {e}"
        ))
    })
}

/// Moves `cursor` on to `next`; `false` when the listing is done. A service
/// that sends the same cursor twice would keep a client paging forever.
fn advance(what: &str, cursor: &mut Option<String>, next: Option<String>) -> Result<bool, Failure> {
    let Some(next) = next else {
        return Ok(false);
    };
    if cursor.as_deref() == Some(next.as_str()) {
        return Err(Failure::error(format!(
            "{what}: the service sent the same cursor twice"
        )));
    }
    *cursor = Some(next);
    Ok(true)
}

/// Writes `merged` (a `--json` listing) as one line, then flushes stdout.
async fn finish<W: AsyncWrite + Unpin, T: serde::Serialize>(
    what: &str,
    out: &mut W,
    merged: Option<T>,
) -> Result<(), Failure> {
    if let Some(all) = merged {
        let mut json = serde_json::to_vec(&all)
            .map_err(|e| Failure::error(format!("{what}: cannot write JSON: {e}")))?;
        json.push(b'\n');
        if let Err(e) = out.write_all(&json).await {
            return stdout_failure(what, e);
        }
    }
    match out.flush().await {
        Err(e) => stdout_failure(what, e),
        Ok(()) => Ok(()),
    }
}

/// Reads the value of `put`: the argument, `--file`, or stdin.
async fn read_value(what: &str, args: &PutArgs) -> Result<Vec<u8>, Failure> {
    match (&args.value, &args.file) {
        (Some(value), _) if value != "-" => return Ok(value.as_encoded_bytes().to_vec()),
        (_, Some(path)) if path != Path::new("-") => {
            return tokio::fs::read(path).await.map_err(|e| {
                Failure::error(format!("{what}: cannot read {}: {e}", path.display()))
            })
        }
        (None, None) if std::io::stdin().is_terminal() => {
            return Err(Failure::usage(format!(
                "{what}: no value: give VALUE, --file FILE, or pipe it on stdin"
            )))
        }
        _ => {}
    }
    let mut value = Vec::new();
    tokio::io::stdin()
        .read_to_end(&mut value)
        .await
        .map_err(|e| Failure::error(format!("{what}: cannot read stdin: {e}")))?;
    Ok(value)
}

/// Prints the response's `ETag` to stderr.
fn print_etag(response: &Response) {
    if let Some(tag) = response.headers().get(ETAG).and_then(|v| v.to_str().ok()) {
        eprintln!("{tag}");
    }
}

/// Prints `name: value` to stderr for each header `get --meta` shows.
fn print_meta(response: &Response) {
    for (name, shown) in [
        ("etag", "etag"),
        ("content-type", "content-type"),
        ("huly-expire-at", "expire-at"),
        ("huly-ttl", "ttl"),
    ] {
        if let Some(value) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            eprintln!("{shown}: {value}");
        }
    }
}

/// The expiry header `put --ttl` or `--expire-at` sends, if any.
fn expiry_header(args: &PutArgs) -> Result<Option<(&'static str, String)>, Failure> {
    if let Some(text) = &args.ttl {
        let ttl =
            parse_duration(text).map_err(|why| Failure::usage(format!("--ttl {text:?}: {why}")))?;
        // The service counts whole seconds; a part-second rounds up.
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        if secs == 0 {
            return Err(Failure::usage(format!(
                "--ttl {text:?}: must be longer than zero"
            )));
        }
        return Ok(Some(("Huly-TTL", secs.to_string())));
    }
    if let Some(text) = &args.expire_at {
        let at: i64 = text
            .trim()
            .parse()
            .map_err(|_| Failure::usage(format!("--expire-at {text:?}: not a unix second")))?;
        return Ok(Some(("Huly-Expire-At", at.to_string())));
    }
    Ok(None)
}

/// Why copying a body stopped.
enum CopyError {
    Read(reqwest::Error),
    Write(std::io::Error),
}

impl CopyError {
    fn failure(self, what: &str, target: &str) -> Failure {
        match self {
            CopyError::Read(e) => {
                Failure::error(format!("{what}: reading the value: {}", cause(&e)))
            }
            CopyError::Write(e) => Failure::error(format!("{what}: cannot write {target}: {e}")),
        }
    }
}

/// Streams a response body into `out`, chunk by chunk.
async fn copy_body<W: AsyncWrite + Unpin>(
    mut response: Response,
    out: &mut W,
) -> Result<(), CopyError> {
    while let Some(chunk) = response.chunk().await.map_err(CopyError::Read)? {
        out.write_all(&chunk).await.map_err(CopyError::Write)?;
    }
    out.flush().await.map_err(CopyError::Write)
}

/// Writes one key a line.
async fn write_lines<W: AsyncWrite + Unpin>(out: &mut W, keys: &[String]) -> std::io::Result<()> {
    for key in keys {
        out.write_all(key.as_bytes()).await?;
        out.write_all(b"\n").await?;
    }
    Ok(())
}

/// A closed stdout (`hulykvs list | head`) ends the run quietly; other write
/// errors are failures.
fn stdout_failure(what: &str, e: std::io::Error) -> Result<(), Failure> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Failure::error(format!("{what}: cannot write stdout: {e}")))
    }
}
