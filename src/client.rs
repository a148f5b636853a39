//! The client subcommands `put`, `get`, `delete` and `list`: one reqwest
//! client per run, API v2 with `-w WORKSPACE`, the legacy API without it.
//! Every failure becomes a [`Failure`] whose exit code follows SPEC §9.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderValue, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use reqwest::{Certificate, Identity, Method, Response, StatusCode, Url};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use crate::auth::{self, Claims};
use crate::cli::{ClientArgs, DeleteArgs, GetArgs, ListArgs, PutArgs};
use crate::config::parse_duration;
use crate::exit::{Exit, Failure};
use crate::token::uuid_flag;
use crate::wire::{self, ErrorBody, KeyList, TagCondition};

/// Lifetime of the system token minted from `HULY_TOKEN_SECRET` for one run.
const MINTED_TOKEN_LIFETIME: u64 = 3600;

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
    let service = Service::new(&args.client)?;
    if let Some((flag, ..)) = &precondition {
        service.needs_v2(&what, flag)?;
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
    Ok(())
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
    let what = format!("delete {}", shown_path(&args.namespace, &args.key));
    let if_match = args.if_match.as_deref().map(if_match_value).transpose()?;
    let service = Service::new(&args.client)?;
    if if_match.is_some() {
        service.needs_v2(&what, "--if-match")?;
    }
    let url = service.value_url(&what, &args.namespace, &args.key)?;
    let mut request = service.request(Method::DELETE, url);
    if let Some(tag) = if_match {
        request = request.header(IF_MATCH, tag);
    }
    let response = service.send(&what, request).await?;
    if !response.status().is_success() {
        return Err(refused(&what, response, "ETag did not match").await);
    }
    Ok(())
}

/// `list`: prints every key of a namespace, one a line, fetching page after
/// page (API v2); `--json` prints one document with all pages merged.
pub async fn list(args: &ListArgs) -> Result<(), Failure> {
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
        let response = service
            .send(&what, service.request(Method::GET, url))
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refused(&what, response, "").await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| service.transport(&what, e))?;
        let mut page: KeyList = serde_json::from_slice(&body).map_err(|e| {
            Failure::error(format!(
                "{what}: the service sent an unexpected listing: {e}"
            ))
        })?;
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
        match next {
            // The legacy API sends every key at once and no cursor.
            Some(next) if matches!(service.api, Api::V2(_)) => {
                if cursor.as_deref() == Some(next.as_str()) {
                    return Err(Failure::error(format!(
                        "{what}: the service sent the same cursor twice"
                    )));
                }
                cursor = Some(next);
            }
            _ => break,
        }
    }
    if args.json {
        if let Some(mut all) = merged {
            all.count = all.keys.len();
            let mut json = serde_json::to_vec(&all)
                .map_err(|e| Failure::error(format!("{what}: cannot write JSON: {e}")))?;
            json.push(b'\n');
            if let Err(e) = out.write_all(&json).await {
                return stdout_failure(&what, e);
            }
        }
    }
    match out.flush().await {
        Err(e) => stdout_failure(&what, e),
        Ok(()) => Ok(()),
    }
}

/// Which API the requests go to.
#[derive(Debug, Clone, Copy)]
enum Api {
    /// `/api/{ns}/{key}`: the legacy API and its default workspace.
    Legacy,
    /// `/api2/{ws}/{ns}/{key}`.
    V2(Uuid),
}

/// The service as one run of a client subcommand sees it: validated flags
/// and the one HTTP client.
struct Service {
    http: reqwest::Client,
    /// `--url` without trailing slashes, as the user wrote it.
    base: String,
    token: String,
    api: Api,
    timeout: Duration,
    /// Whether `--url` is https.
    https: bool,
    /// Whether `--ca-cert` replaced the built-in roots (for the hint on a refused certificate).
    tls_roots: bool,
    /// Whether a client certificate is offered.
    tls_identity: bool,
}

impl Service {
    /// Validates the flags and builds the HTTP client; no I/O yet.
    fn new(args: &ClientArgs) -> Result<Self, Failure> {
        let base = args.url.trim().trim_end_matches('/').to_owned();
        let https = match Url::parse(&base) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.query().is_none()
                    && url.fragment().is_none() =>
            {
                url.scheme() == "https"
            }
            _ => {
                return Err(Failure::usage(format!(
                    "--url {:?}: expected an http:// or https:// URL without query",
                    args.url
                )))
            }
        };
        let timeout = parse_duration(&args.timeout)
            .map_err(|why| Failure::usage(format!("--timeout: {why}")))?;
        if timeout.is_zero() {
            return Err(Failure::usage(format!(
                "--timeout {:?}: must be longer than zero",
                args.timeout
            )));
        }
        let api = match &args.workspace {
            Some(text) => Api::V2(uuid_flag("--workspace", text)?),
            None => Api::Legacy,
        };
        let token = match (&args.token, &args.token_secret) {
            (Some(token), _) => token.expose().trim().to_owned(),
            (None, Some(secret)) if !secret.expose().is_empty() => system_token(secret.expose())?,
            _ => {
                return Err(Failure::usage(
                    "a token is needed: pass --token, or set HULY_TOKEN, \
                     or set HULY_TOKEN_SECRET to mint a system token",
                ))
            }
        };
        let tls = ClientTls::load(args)?;
        let http = http_client(timeout, &tls, true).map_err(|e| tls.blame(timeout, e))?;
        Ok(Service {
            http,
            base,
            token,
            api,
            timeout,
            https,
            tls_roots: tls.roots.is_some(),
            tls_identity: tls.identity.is_some(),
        })
    }

    /// Refuses `flag`, a conditional request, on the legacy API, which has none.
    fn needs_v2(&self, what: &str, flag: &str) -> Result<(), Failure> {
        match self.api {
            Api::V2(_) => Ok(()),
            Api::Legacy => Err(Failure::usage(format!(
                "{what}: {flag} needs -w WORKSPACE (the legacy API has no conditional requests)"
            ))),
        }
    }

    /// The URL of one value.
    fn value_url(&self, what: &str, namespace: &str, key: &str) -> Result<Url, Failure> {
        let ns = path_part(what, "namespace", namespace)?;
        let key = path_part(what, "key", key)?;
        self.url(what, &format!("{}/{ns}/{key}", self.prefix()))
    }

    /// The URL of one page of a listing.
    fn list_url(
        &self,
        what: &str,
        namespace: &str,
        prefix: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Url, Failure> {
        let ns = path_part(what, "namespace", namespace)?;
        let mut url = self.url(what, &format!("{}/{ns}", self.prefix()))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(prefix) = prefix {
                query.append_pair("prefix", prefix);
            }
            if let Api::V2(_) = self.api {
                query.append_pair("limit", &limit.to_string());
                if let Some(cursor) = cursor {
                    query.append_pair("cursor", cursor);
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// `/api2/{ws}` or `/api`.
    fn prefix(&self) -> String {
        match self.api {
            Api::V2(ws) => format!("{}/api2/{}", self.base, ws.hyphenated()),
            Api::Legacy => format!("{}/api", self.base),
        }
    }

    fn url(&self, what: &str, text: &str) -> Result<Url, Failure> {
        Url::parse(text).map_err(|e| Failure::usage(format!("{what}: cannot make a URL: {e}")))
    }

    /// A request with the token.
    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// Sends a request; only a failure to get a response is an error here.
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, Failure> {
        request.send().await.map_err(|e| self.transport(what, e))
    }

    /// The line for a request that got no (complete) response.
    fn transport(&self, what: &str, e: reqwest::Error) -> Failure {
        let after = format!("timed out after {}", shown_duration(self.timeout));
        let why = cause(&e);
        if e.is_connect() {
            if e.is_timeout() {
                return Failure::error(format!("cannot reach {}: {after}", self.base));
            }
            let hint = match (TlsProblem::of(&why), self.tls_roots) {
                (Some(TlsProblem::UnknownIssuer), false) => {
                    " (give the CA that signed it with --ca-cert)"
                }
                (Some(TlsProblem::UnknownIssuer), true) => " (is it signed by the --ca-cert CA?)",
                _ => "",
            };
            Failure::error(format!("cannot reach {}: {why}{hint}", self.base))
        } else if e.is_timeout() {
            Failure::error(format!("{what}: {after}"))
        } else if self.https
            && (TlsProblem::of(&why) == Some(TlsProblem::Alert) || closed_early(&e))
        {
            // A server that wants a client certificate and gets none, or one it
            // does not trust, sends an alert after the TLS 1.3 handshake; the
            // request then sees either the alert or only the closed connection.
            let why = match TlsProblem::of(&why) {
                Some(_) => why,
                None => "the connection closed".to_owned(),
            };
            let hint = if self.tls_identity {
                "did the service refuse the client certificate?"
            } else {
                "does the service want a client certificate? see --client-cert"
            };
            Failure::error(format!("{what}: {why} ({hint})"))
        } else {
            Failure::error(format!("{what}: {why}"))
        }
    }
}

/// The TLS settings of a client run, read and checked from their PEM files.
#[derive(Default)]
struct ClientTls {
    /// `--ca-cert`: its path and the CAs it holds, trusted instead of the built-in roots.
    roots: Option<(PathBuf, Vec<Certificate>)>,
    /// `--client-cert` and `--client-key`: their paths and the identity made of them.
    identity: Option<(PathBuf, PathBuf, Identity)>,
}

impl ClientTls {
    /// Reads the files named by `--ca-cert`, `--client-cert` and `--client-key`;
    /// a file that is missing or holds no usable PEM is a usage error naming it.
    fn load(args: &ClientArgs) -> Result<Self, Failure> {
        let mut tls = ClientTls::default();
        if let Some(path) = &args.ca_cert {
            let certs = pem_certificates("--ca-cert", path)?
                .iter()
                .map(|der| Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_failure("--ca-cert", path, cause(&e)))?;
            tls.roots = Some((path.clone(), certs));
        }
        match (&args.client_cert, &args.client_key) {
            (Some(cert_path), Some(key_path)) => {
                let chain = pem_certificates("--client-cert", cert_path)?;
                let key_pem = read_file("--client-key", key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    let why = match e {
                        pem::Error::NoItemsFound => {
                            "holds no PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1)"
                                .to_owned()
                        }
                        e => pem_problem(e),
                    };
                    file_failure("--client-key", key_path, why)
                })?;
                // reqwest takes the identity as one PEM: rebuilt from what was
                // parsed, so other sections in the files cannot confuse it.
                let mut identity = String::new();
                for cert in &chain {
                    identity.push_str(&pem_section("CERTIFICATE", cert));
                }
                let label = match &key {
                    PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
                    PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
                    _ => "PRIVATE KEY",
                };
                identity.push_str(&pem_section(label, key.secret_der()));
                let identity = Identity::from_pem(identity.as_bytes())
                    .map_err(|e| file_failure("--client-key", key_path, cause(&e)))?;
                tls.identity = Some((cert_path.clone(), key_path.clone(), identity));
            }
            // clap already makes each of the two require the other.
            (Some(_), None) => return Err(Failure::usage("--client-cert needs --client-key")),
            (None, Some(_)) => return Err(Failure::usage("--client-key needs --client-cert")),
            (None, None) => {}
        }
        Ok(tls)
    }

    /// The failure for a client that could not be built: the TLS files are
    /// left out one at a time to name the one at fault.
    fn blame(&self, timeout: Duration, e: reqwest::Error) -> Failure {
        let why = cause(&e);
        if let Some((cert, key, _)) = &self.identity {
            if http_client(timeout, self, false).is_ok() {
                return Failure::usage(format!(
                    "--client-key {key:?} does not fit --client-cert {cert:?}: {why}"
                ));
            }
        }
        if let Some((path, _)) = &self.roots {
            if http_client(timeout, &ClientTls::default(), false).is_ok() {
                return file_failure("--ca-cert", path, format!("not a usable CA ({why})"));
            }
        }
        Failure::error(format!("cannot set up HTTP: {why}"))
    }
}

/// The one HTTP client of a run; `with_identity: false` leaves out the client certificate.
fn http_client(
    timeout: Duration,
    tls: &ClientTls,
    with_identity: bool,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        // A redirect would change POST to GET and carry the token elsewhere: report it instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hulykvs/", env!("CARGO_PKG_VERSION")));
    if let Some((_, certs)) = &tls.roots {
        // Only the CAs given: a private service's certificate comes from its
        // own CA, and any public CA could otherwise vouch for an impostor.
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    if let (Some((_, _, identity)), true) = (&tls.identity, with_identity) {
        builder = builder.identity(identity.clone());
    }
    builder.build()
}

/// The contents of a file named by `flag`.
fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| file_failure(flag, path, format!("cannot read: {e}")))
}

/// The certificates of a PEM file named by `flag`; none is an error.
fn pem_certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let pem = read_file(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_failure(flag, path, pem_problem(e)))?;
    if certs.is_empty() {
        return Err(file_failure(flag, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// A usage failure about the file `path` given to `flag`.
fn file_failure(flag: &str, path: &Path, why: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("{flag} {path:?}: {why}"))
}

/// A PEM parse error in words (the library's own show raw bytes).
fn pem_problem(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "not valid PEM: a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "not valid PEM: a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "not valid PEM: bad base64".into(),
        e => format!("not valid PEM: {e}"),
    }
}

/// One PEM section of `der` under `label`.
fn pem_section(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 is ASCII, so every 64-byte chunk is whole characters.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A system token for this run, signed with `secret`.
fn system_token(secret: &str) -> Result<String, Failure> {
    let claims = Claims::system("hulykvs", Duration::from_secs(MINTED_TOKEN_LIFETIME));
    auth::mint(&claims, secret)
        .map_err(|e| Failure::error(format!("cannot sign a system token: {e}")))
}

/// Percent-encodes a namespace or key, refusing what no URL path can carry.
fn path_part(what: &str, name: &str, part: &str) -> Result<String, Failure> {
    if part.is_empty() {
        return Err(Failure::usage(format!("{what}: the {name} is empty")));
    }
    // URL parsers resolve `.` and `..` segments (also when written %2E), so
    // such a part would silently address something else.
    if part == "." || part == ".." {
        return Err(Failure::usage(format!(
            "{what}: a {name} of {part:?} cannot be sent in a URL path"
        )));
    }
    Ok(wire::percent_encode(part))
}

/// The `If-Match` header for `--if-match`: `*`, or tags quoted or bare, sent quoted.
fn if_match_value(text: &str) -> Result<HeaderValue, Failure> {
    let bad = |why: String| Failure::usage(format!("--if-match {text:?}: {why}"));
    let value = match TagCondition::parse(text).map_err(|e| bad(e.to_string()))? {
        TagCondition::Any => "*".to_owned(),
        TagCondition::List(tags) => tags
            .iter()
            .map(|t| {
                let tag = t.tag.header_value();
                if t.weak {
                    format!("W/{tag}")
                } else {
                    tag
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    HeaderValue::from_str(&value).map_err(|e| bad(e.to_string()))
}

/// The failure for a response that is not a success: `404` and `412` have
/// exit codes of their own; the rest say the status and the server's error.
async fn refused(what: &str, response: Response, precondition: &str) -> Failure {
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.unwrap_or_default();
    let (server, code) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (Some(e.error).filter(|e| !e.is_empty()), Some(e.code)),
        // Not our JSON (the old service, a proxy): a short plain line is still worth showing.
        Err(_) => (
            std::str::from_utf8(&body)
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= 200 && !t.contains(['\n', '\r', '<']))
                .map(str::to_owned),
            None,
        ),
    };
    let no_route = code.as_deref() == Some("no_route");
    match status {
        StatusCode::NOT_FOUND if !no_route => {
            Failure::new(Exit::NotFound, format!("{what}: not found"))
        }
        StatusCode::PRECONDITION_FAILED => {
            let detail = if precondition.is_empty() {
                String::new()
            } else {
                format!(" ({precondition})")
            };
            Failure::new(
                Exit::PreconditionFailed,
                format!("{what}: precondition failed{detail}"),
            )
        }
        _ => {
            let mut line = format!("{what}: {status}");
            if let Some(server) = server {
                line = format!("{line}: {server}");
            }
            if no_route {
                line.push_str(" (is --url the hulykvs service?)");
            }
            if let Some(location) = location.filter(|_| status.is_redirection()) {
                line = format!("{line} (redirected to {location})");
            }
            Failure::error(line)
        }
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

/// The errors an error is made of, outermost first.
fn chain<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// What TLS said about a failed request. rustls reaches us only as text
/// inside an `io::Error`, so the text is what there is to go by.
#[derive(Debug, PartialEq, Eq)]
enum TlsProblem {
    /// The server's certificate is signed by no trusted CA.
    UnknownIssuer,
    /// The server ended the connection with an alert (such as `CertificateRequired`).
    Alert,
}

impl TlsProblem {
    /// Reads `why`, the innermost cause of a failed request.
    fn of(why: &str) -> Option<TlsProblem> {
        if why.starts_with("invalid peer certificate") && why.contains("UnknownIssuer") {
            Some(TlsProblem::UnknownIssuer)
        } else if why.starts_with("received fatal alert") {
            Some(TlsProblem::Alert)
        } else {
            None
        }
    }
}

/// Whether a request failed because its connection went away under it.
fn closed_early(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::*;
    chain(e).any(|e| {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            hyper.is_closed() || hyper.is_canceled() || hyper.is_incomplete_message()
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
            )
        } else {
            false
        }
    })
}

/// The innermost cause of an error, worded for one line: reqwest's own
/// messages ("error sending request") say less than the socket's.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind::*;
        let plain = match io.kind() {
            ConnectionRefused => Some("connection refused"),
            ConnectionReset => Some("connection reset"),
            ConnectionAborted => Some("connection aborted"),
            TimedOut => Some("timed out"),
            UnexpectedEof => Some("connection closed early"),
            _ => None,
        };
        if let Some(plain) = plain {
            return plain.to_owned();
        }
    }
    inner.to_string().replace(['\n', '\r'], " ")
}

/// `namespace/key` for messages, escaped if it would break the line.
fn shown_path(namespace: &str, key: &str) -> String {
    format!("{}/{}", shown(namespace), shown(key))
}

/// A name for messages: as is, or escaped when it holds control characters.
fn shown(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_owned()
    }
}

/// `30s`, `1500ms`: a duration as the user would write it.
fn shown_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, Secret};
    use clap::Parser;

    const WS: &str = "9A1B2C3D-0000-4000-8000-000000000001";
    const TAG: &str = "5d41402abc4b2a76b9719d911017c592";

    fn client(extra: &[&str]) -> Result<Service, Failure> {
        let argv = ["hulykvs", "get", "--token", "t"]
            .into_iter()
            .chain(extra.iter().copied())
            .chain(["ns", "k"]);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Get(args) => Service::new(&args.client),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn urls_of_both_apis() {
        let legacy = client(&["--url", "http://h:1/base//"]).unwrap();
        let url = legacy.value_url("x", "n s", "a/b:c@d+e%f é").unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/base/api/n%20s/a%2Fb%3Ac%40d%2Be%25f%20%C3%A9"
        );
        let url = legacy
            .list_url("x", "ns", Some("a b&c+"), 7, Some("cur"))
            .unwrap();
        assert_eq!(url.as_str(), "http://h:1/base/api/ns?prefix=a+b%26c%2B");
        let url = legacy.list_url("x", "ns", None, 7, None).unwrap();
        assert_eq!(url.as_str(), "http://h:1/base/api/ns");

        let v2 = client(&["--url", "http://h:1", "-w", WS]).unwrap();
        let url = v2.value_url("x", "ns", "k").unwrap();
        assert_eq!(
            url.as_str(),
            format!("http://h:1/api2/{}/ns/k", WS.to_lowercase())
        );
        let url = v2.list_url("x", "ns", None, 2, Some("Y3Vy")).unwrap();
        assert_eq!(
            url.as_str(),
            format!(
                "http://h:1/api2/{}/ns?limit=2&cursor=Y3Vy",
                WS.to_lowercase()
            )
        );
    }

    #[test]
    fn unsendable_parts_are_usage_errors() {
        let service = client(&[]).unwrap();
        for (ns, key) in [("ns", ""), ("", "k"), ("ns", ".."), (".", "k")] {
            let failure = service.value_url("get", ns, key).unwrap_err();
            assert_eq!(failure.exit, Exit::Usage, "{ns:?} {key:?}");
        }
        assert!(service.value_url("get", "ns", "a/../b").is_ok());
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        for (argv, flag) in [
            (&["--url", "localhost:8094"][..], "--url"),
            (&["--url", "ftp://h"][..], "--url"),
            (&["--url", "http://h/?q=1"][..], "--url"),
            (&["--timeout", "soon"][..], "--timeout"),
            (&["--timeout", "0s"][..], "--timeout"),
            (&["-w", "not-a-uuid"][..], "--workspace"),
        ] {
            let failure = client(argv).err().unwrap();
            assert_eq!(failure.exit, Exit::Usage, "{argv:?}");
            assert!(failure.message.starts_with(flag), "{argv:?}: {failure}");
        }
    }

    #[test]
    fn token_comes_from_flag_or_is_minted_or_is_missing() {
        let mut args = match Cli::try_parse_from(["hulykvs", "get", "ns", "k"])
            .unwrap()
            .command
        {
            Command::Get(args) => args.client,
            other => panic!("parsed as {other:?}"),
        };
        args.token = None;
        args.token_secret = None;
        let failure = Service::new(&args).err().unwrap();
        assert_eq!(failure.exit, Exit::Usage);
        assert!(failure.message.contains("HULY_TOKEN_SECRET"), "{failure}");

        args.token_secret = Some(Secret::from("s3".to_owned()));
        let minted = Service::new(&args).unwrap().token;
        let claims = auth::Verifier::new("s3").verify(&minted).unwrap();
        assert_eq!(claims.account, crate::auth::SYSTEM_ACCOUNT);
        assert!(claims.exp.is_some());

        args.token = Some(Secret::from("given".to_owned()));
        assert_eq!(Service::new(&args).unwrap().token, "given");
        assert!(!format!("{args:?}").contains("given"));
        assert!(!format!("{args:?}").contains("s3"));
    }

    #[test]
    fn if_match_is_sent_quoted() {
        let quoted = format!("\"{TAG}\"");
        assert_eq!(if_match_value(TAG).unwrap(), quoted.as_str());
        assert_eq!(if_match_value(&quoted).unwrap(), quoted.as_str());
        assert_eq!(if_match_value(" * ").unwrap(), "*");
        assert_eq!(
            if_match_value(&format!("{TAG},W/{quoted}")).unwrap(),
            format!("{quoted}, W/{quoted}").as_str()
        );
        for bad in ["", "abc", "\"\"", &format!("{TAG}0")] {
            assert_eq!(
                if_match_value(bad).unwrap_err().exit,
                Exit::Usage,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pem_sections_parse_back() {
        let der: Vec<u8> = (0..=255).cycle().take(700).collect();
        let pem = pem_section("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
        let parsed = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(parsed.as_ref(), der.as_slice());
    }

    #[test]
    fn tls_problems_are_told_apart() {
        let unknown = "invalid peer certificate: UnknownIssuer";
        assert_eq!(TlsProblem::of(unknown), Some(TlsProblem::UnknownIssuer));
        let alert = "received fatal alert: CertificateRequired";
        assert_eq!(TlsProblem::of(alert), Some(TlsProblem::Alert));
        assert_eq!(TlsProblem::of("invalid peer certificate: Expired"), None);
        assert_eq!(TlsProblem::of("connection refused"), None);
    }

    #[test]
    fn messages_stay_on_one_line() {
        assert_eq!(shown_path("ns", "a/b c"), "ns/a/b c");
        assert_eq!(shown_path("ns", "a\nb"), "ns/a\\nb");
        assert_eq!(shown_duration(Duration::from_secs(30)), "30s");
        assert_eq!(shown_duration(Duration::from_millis(1500)), "1500ms");
    }
}
