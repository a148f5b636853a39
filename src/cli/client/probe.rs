//! `probe`: the container's health check. One `GET /readyz`, exit `0` on
//! `200`, `1` otherwise with one line saying why. Without `--url` it finds
//! the server of its own container from the settings `serve` reads
//! (`HULY_BIND_HOST`, `HULY_BIND_PORT`, `HULY_TLS_CERT`), so a `HEALTHCHECK`
//! needs no arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use reqwest::{StatusCode, Url};

use super::service::shown_duration;
use super::tls::{cause, client_builder, ClientTls};
use crate::config::parse_duration;
use crate::exit::Failure;
use crate::wire::ErrorBody;

/// `probe`: is the service ready?
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Base URL of the service [default: the local server, http or https as HULY_TLS_CERT says,
    /// on HULY_BIND_HOST and HULY_BIND_PORT].
    #[arg(long)]
    pub url: Option<String>,

    /// How long to wait for the answer, such as 5s or 500ms.
    #[arg(long, default_value = "5s")]
    pub timeout: String,

    /// The address the local server listens on (0.0.0.0 and :: are probed on loopback).
    #[arg(long, env = "HULY_BIND_HOST", default_value = "0.0.0.0", hide = true)]
    pub bind_host: String,

    /// The port the local server listens on.
    #[arg(long, env = "HULY_BIND_PORT", default_value = "8094", hide = true)]
    pub bind_port: String,

    /// Set when the local server serves HTTPS: the default URL is then https. Its certificate is
    /// not checked against a name on that loopback URL (the probe sends no token).
    #[arg(long, env = "HULY_TLS_CERT", hide = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the CA certificate(s) to trust for an https --url.
    #[arg(long, env = "HULY_KVS_CA_CERT", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate for a server that asks for one (HULY_TLS_CLIENT_CA); needs
    /// --client-key.
    #[arg(
        long,
        env = "HULY_KVS_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "HULY_KVS_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

/// Where the probe goes and how.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The `/readyz` URL.
    url: Url,
    /// Whether the server's certificate is checked: not on the derived loopback URL, where the
    /// certificate names the service, not 127.0.0.1.
    verify: bool,
}

impl Target {
    fn of(args: &ProbeArgs) -> Result<Target, Failure> {
        let (base, verify) = match &args.url {
            Some(url) => (url.trim().trim_end_matches('/').to_owned(), true),
            None => (local_base(args)?, false),
        };
        let url = Url::parse(&format!("{base}/readyz"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--url {base:?}: expected an http:// or https:// URL"
                ))
            })?;
        Ok(Target { url, verify })
    }
}

/// The base URL of the server `serve` would start with these settings.
fn local_base(args: &ProbeArgs) -> Result<String, Failure> {
    let port: u16 = args.bind_port.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "HULY_BIND_PORT {:?}: expected a port number",
            args.bind_port
        ))
    })?;
    let host = match args.bind_host.trim() {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        host if host.contains(':') && !host.starts_with('[') => format!("[{host}]"),
        host => host.to_owned(),
    };
    let scheme = match args.tls_cert {
        Some(_) => "https",
        None => "http",
    };
    Ok(format!("{scheme}://{host}:{port}"))
}

/// Runs the probe: `Ok` when `/readyz` answered `200`.
pub async fn probe(args: &ProbeArgs) -> Result<(), Failure> {
    let target = Target::of(args)?;
    let timeout = parse_duration(&args.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Failure::usage(format!("--timeout {:?}: not a duration", args.timeout)))?;
    let tls = ClientTls::from_files(
        args.ca_cert.as_deref(),
        args.client_cert.as_deref(),
        args.client_key.as_deref(),
    )?;
    let http = client_builder(timeout, &tls, true)
        .timeout(timeout)
        .danger_accept_invalid_certs(!target.verify)
        .build()
        .map_err(|e| Failure::error(format!("cannot set up HTTP: {}", cause(&e))))?;
    let url = &target.url;
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| Failure::error(format!("probe {url}: {}", unreachable(&e, timeout))))?;
    let status = response.status();
    if status == StatusCode::OK {
        return Ok(());
    }
    let body = tokio::time::timeout(timeout, response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let why = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => format!("{status} ({}): {}", e.code, e.error),
        Err(_) => status.to_string(),
    };
    Err(Failure::error(format!(
        "probe {url}: {}",
        why.replace(['\r', '\n'], " ")
    )))
}

/// Why no answer came, in a few words.
fn unreachable(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}", shown_duration(timeout))
    } else {
        cause(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        probe: ProbeArgs,
    }

    fn target(args: &[&str]) -> Result<Target, Failure> {
        let mut argv = vec!["probe"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| Failure::usage(e.to_string()))?;
        Target::of(&cli.probe)
    }

    #[test]
    fn the_default_is_the_local_server_unverified() {
        let t = target(&["--bind-host", "0.0.0.0", "--bind-port", "9000"]).unwrap();
        assert_eq!(t.url.as_str(), "http://127.0.0.1:9000/readyz");
        assert!(!t.verify);
        let t = target(&[
            "--bind-host",
            "::",
            "--bind-port",
            "1",
            "--tls-cert",
            "c.pem",
        ])
        .unwrap();
        assert_eq!(t.url.as_str(), "https://[::1]:1/readyz");
        let t = target(&["--bind-host", "fd00::5", "--bind-port", "2"]).unwrap();
        assert_eq!(t.url.as_str(), "http://[fd00::5]:2/readyz");
    }

    #[test]
    fn a_given_url_is_verified() {
        let t = target(&["--url", "https://kvs.example/"]).unwrap();
        assert_eq!(t.url.as_str(), "https://kvs.example/readyz");
        assert!(t.verify);
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        for args in [
            &["--bind-host", "0.0.0.0", "--bind-port", "http"][..],
            &["--url", "ftp://x"][..],
            &["--url", "http://x/?a=b"][..],
        ] {
            let e = target(args).unwrap_err();
            assert_eq!(e.exit, crate::exit::Exit::Usage, "{args:?}: {e:?}");
        }
    }
}
