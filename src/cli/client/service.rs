//! The service as one run of a client subcommand sees it: validated flags,
//! the one HTTP client, the URLs of values and listings, and the one line a
//! failed request is reported with.

use std::time::Duration;

use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use uuid::Uuid;

use super::args::ClientArgs;
use super::tls::{cause, closed_early, http_client, streaming_client, ClientTls, TlsProblem};
use crate::cli::flags::{bearer_token, uuid_flag};
use crate::config::parse_duration;
use crate::exit::{Exit, Failure};
use crate::wire::{self, ErrorBody, TagCondition};

/// Lifetime of the system token minted from `HULY_TOKEN_SECRET` for one run.
const MINTED_TOKEN_LIFETIME: u64 = 3600;

/// Which API the requests go to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Api {
    /// `/api/{ns}/{key}`: the legacy API and its default workspace.
    Legacy,
    /// `/api2/{ws}/{ns}/{key}`.
    V2(Uuid),
}

/// The service as one run of a client subcommand sees it: validated flags
/// and the one HTTP client.
pub(super) struct Service {
    http: reqwest::Client,
    /// `--url` without trailing slashes, as the user wrote it.
    base: String,
    token: String,
    pub(super) api: Api,
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
    pub(super) fn new(args: &ClientArgs) -> Result<Self, Failure> {
        Service::build(args, false)
    }

    /// [`Service::new`] for a response that never ends (`watch`): the
    /// timeout bounds connecting and each read, not the whole response.
    pub(super) fn streaming(args: &ClientArgs) -> Result<Self, Failure> {
        Service::build(args, true)
    }

    fn build(args: &ClientArgs, streaming: bool) -> Result<Self, Failure> {
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
        let token = bearer_token(
            args.token.as_ref(),
            args.token_secret.as_ref(),
            "hulykvs",
            Duration::from_secs(MINTED_TOKEN_LIFETIME),
        )?;
        let tls = ClientTls::load(args)?;
        let http = if streaming {
            streaming_client(timeout, &tls)
        } else {
            http_client(timeout, &tls, true)
        }
        .map_err(|e| tls.blame(timeout, e))?;
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

    /// Refuses `flag`, which only API v2 has, on the legacy API.
    pub(super) fn needs_v2(&self, what: &str, flag: &str) -> Result<(), Failure> {
        match self.api {
            Api::V2(_) => Ok(()),
            Api::Legacy => Err(Failure::usage(format!(
                "{what}: {flag} needs -w WORKSPACE (the legacy API has no such request)"
            ))),
        }
    }

    /// The URL of one value.
    pub(super) fn value_url(&self, what: &str, namespace: &str, key: &str) -> Result<Url, Failure> {
        let ns = path_part(what, "namespace", namespace)?;
        let key = path_part(what, "key", key)?;
        self.url(what, &format!("{}/{ns}/{key}", self.prefix()))
    }

    /// The URL of one page of a listing.
    pub(super) fn list_url(
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

    /// The URL of a watch stream of `namespace`.
    pub(super) fn watch_url(
        &self,
        what: &str,
        namespace: &str,
        prefix: Option<&str>,
        since: Option<u64>,
    ) -> Result<Url, Failure> {
        let ns = path_part(what, "namespace", namespace)?;
        let mut url = self.url(what, &format!("{}/{ns}", self.prefix()))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_key_only("watch");
            if let Some(prefix) = prefix {
                query.append_pair("prefix", prefix);
            }
            if let Some(since) = since {
                query.append_pair("since", &since.to_string());
            }
        }
        Ok(url)
    }

    /// The URL of a transaction of the workspace (API v2).
    pub(super) fn txn_url(&self, what: &str) -> Result<Url, Failure> {
        let mut url = self.url(what, &self.prefix())?;
        url.set_query(Some("txn"));
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
    pub(super) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// Sends a request; only a failure to get a response is an error here.
    pub(super) async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, Failure> {
        request.send().await.map_err(|e| self.transport(what, e))
    }

    /// The line for a request that got no (complete) response.
    pub(super) fn transport(&self, what: &str, e: reqwest::Error) -> Failure {
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
pub(super) fn if_match_value(text: &str) -> Result<HeaderValue, Failure> {
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
pub(super) async fn refused(what: &str, response: Response, precondition: &str) -> Failure {
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

/// `namespace/key` for messages, escaped if it would break the line.
pub(super) fn shown_path(namespace: &str, key: &str) -> String {
    format!("{}/{}", shown(namespace), shown(key))
}

/// A name for messages: as is, or escaped when it holds control characters.
pub(super) fn shown(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_owned()
    }
}

/// `30s`, `1500ms`: a duration as the user would write it.
pub(super) fn shown_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth;
    use crate::cli::flags::Secret;
    use crate::cli::{Cli, Command};
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
    fn messages_stay_on_one_line() {
        assert_eq!(shown_path("ns", "a/b c"), "ns/a/b c");
        assert_eq!(shown_path("ns", "a\nb"), "ns/a\\nb");
        assert_eq!(shown_duration(Duration::from_secs(30)), "30s");
        assert_eq!(shown_duration(Duration::from_millis(1500)), "1500ms");
    }
}
